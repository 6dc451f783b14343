//! The gRPC echo service `weft.echo.v1.Echo/Echo` (see proto/echo.proto).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tonic::metadata::KeyAndValueRef;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};
use tracing::info;

use crate::report::Identity;

/// Code generated from proto/echo.proto.
#[allow(missing_debug_implementations, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("weft.echo.v1");
}

use proto::echo_server::{Echo, EchoServer};
use proto::{EchoRequest, EchoResponse};

/// Errors of the gRPC server.
#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    #[error("gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// The service implementation.
#[derive(Debug, Clone)]
pub struct EchoService {
    identity: Arc<Identity>,
}

impl EchoService {
    pub fn new(identity: Arc<Identity>) -> Self {
        Self { identity }
    }
}

/// Builds the response for a request. Pure apart from reading its inputs.
pub fn echo_response(
    identity: &Identity,
    message: String,
    peer: Option<std::net::SocketAddr>,
    metadata: &tonic::metadata::MetadataMap,
) -> EchoResponse {
    let mut map = std::collections::HashMap::new();
    for entry in metadata.iter() {
        if let KeyAndValueRef::Ascii(key, value) = entry
            && let Ok(value) = value.to_str()
        {
            map.insert(key.as_str().to_owned(), value.to_owned());
        }
    }
    EchoResponse {
        message,
        pod: identity.pod.clone(),
        namespace: identity.namespace.clone(),
        version: identity.version.clone(),
        hostname: identity.hostname.clone(),
        peer: peer.map(|p| p.to_string()).unwrap_or_default(),
        metadata: map,
    }
}

#[tonic::async_trait]
impl Echo for EchoService {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoResponse>, Status> {
        let peer = request.remote_addr().map(crate::report::canonical);
        let response = echo_response(
            &self.identity,
            request.get_ref().message.clone(),
            peer,
            request.metadata(),
        );
        info!(peer = %response.peer, "grpc echo");
        Ok(Response::new(response))
    }
}

/// Serves `weft.echo.v1.Echo` (HTTP/2) on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, identity: Arc<Identity>) -> Result<(), GrpcError> {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "gRPC echo listening");
    }
    tonic::transport::Server::builder()
        .add_service(EchoServer::new(EchoService::new(identity)))
        .serve_with_incoming(TcpIncoming::from(listener))
        .await?;
    Ok(())
}

/// What `weft-echo grpc-client` prints per call (one JSON line).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrpcReport {
    pub message: String,
    pub pod: String,
    pub namespace: String,
    pub version: String,
    pub hostname: String,
    pub peer: String,
    pub metadata: BTreeMap<String, String>,
}

impl From<EchoResponse> for GrpcReport {
    fn from(r: EchoResponse) -> Self {
        Self {
            message: r.message,
            pod: r.pod,
            namespace: r.namespace,
            version: r.version,
            hostname: r.hostname,
            peer: r.peer,
            metadata: r.metadata.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_carries_identity_peer_and_ascii_metadata() {
        let identity = Identity {
            pod: "p".into(),
            namespace: "n".into(),
            version: "v2".into(),
            hostname: "h".into(),
        };
        let mut md = tonic::metadata::MetadataMap::new();
        md.insert("x-test", "yes".parse().expect("ascii value"));
        md.insert_bin(
            "x-bin-bin",
            tonic::metadata::MetadataValue::from_bytes(b"\x00\x01"),
        );
        let peer = "10.1.2.3:5555".parse().ok();
        let r = echo_response(&identity, "hi".into(), peer, &md);
        assert_eq!(r.message, "hi");
        assert_eq!(r.version, "v2");
        assert_eq!(r.peer, "10.1.2.3:5555");
        assert_eq!(r.metadata.get("x-test").map(String::as_str), Some("yes"));
        assert!(!r.metadata.contains_key("x-bin-bin"));
        let report = GrpcReport::from(r);
        assert_eq!(report.pod, "p");
    }
}
