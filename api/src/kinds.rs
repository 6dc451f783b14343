//! Every kind Weft reads, by `apiVersion` and `kind`: typed parsing of a
//! document for tools and tests that receive arbitrary YAML.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::gateway::{gatewayclasses, gateways, grpcroutes, httproutes, referencegrants};
use crate::istio::{networking, security};
use crate::weft;

/// Why a document did not parse into its type.
#[derive(Debug, thiserror::Error)]
pub enum KindError {
    #[error("document has no apiVersion/kind: every Kubernetes object names both")]
    NoKind,
    #[error("{api_version} {kind} is not a kind Weft reads: check apiVersion and kind")]
    Unknown { api_version: String, kind: String },
    #[error("{kind} {name}: {source}")]
    Parse {
        kind: String,
        name: String,
        source: serde_json::Error,
    },
}

fn reserialize<T: DeserializeOwned + Serialize>(doc: &Value) -> Result<Value, serde_json::Error> {
    let typed: T = serde_json::from_value(doc.clone())?;
    let mut back = serde_json::to_value(typed)?;
    // A kind served at several versions has one Rust type; keep the version the user wrote.
    if let (Some(obj), Some(version)) = (back.as_object_mut(), doc.get("apiVersion")) {
        obj.insert("apiVersion".into(), version.clone());
    }
    Ok(back)
}

/// Parses `doc` into the Rust type of its kind and serializes it back. A
/// result equal to `doc` means the type holds every field the user wrote.
pub fn round_trip(doc: &Value) -> Result<Value, KindError> {
    let api_version = doc
        .get("apiVersion")
        .and_then(Value::as_str)
        .ok_or(KindError::NoKind)?;
    let kind = doc
        .get("kind")
        .and_then(Value::as_str)
        .ok_or(KindError::NoKind)?;
    let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
    let result = match (group, kind) {
        ("weft.dev", "MeshInstallation") => reserialize::<weft::MeshInstallation>(doc),
        ("weft.dev", "MeshRevision") => reserialize::<weft::MeshRevision>(doc),
        ("weft.dev", "MeshRevisionTag") => reserialize::<weft::MeshRevisionTag>(doc),
        ("networking.istio.io", "VirtualService") => reserialize::<networking::VirtualService>(doc),
        ("networking.istio.io", "DestinationRule") => {
            reserialize::<networking::DestinationRule>(doc)
        }
        ("networking.istio.io", "Gateway") => reserialize::<networking::Gateway>(doc),
        ("networking.istio.io", "ServiceEntry") => reserialize::<networking::ServiceEntry>(doc),
        ("networking.istio.io", "Sidecar") => reserialize::<networking::Sidecar>(doc),
        ("security.istio.io", "PeerAuthentication") => {
            reserialize::<security::PeerAuthentication>(doc)
        }
        ("security.istio.io", "AuthorizationPolicy") => {
            reserialize::<security::AuthorizationPolicy>(doc)
        }
        ("security.istio.io", "RequestAuthentication") => {
            reserialize::<security::RequestAuthentication>(doc)
        }
        ("gateway.networking.k8s.io", "GatewayClass") => {
            reserialize::<gatewayclasses::GatewayClass>(doc)
        }
        ("gateway.networking.k8s.io", "Gateway") => reserialize::<gateways::Gateway>(doc),
        ("gateway.networking.k8s.io", "HTTPRoute") => reserialize::<httproutes::HttpRoute>(doc),
        ("gateway.networking.k8s.io", "GRPCRoute") => reserialize::<grpcroutes::GrpcRoute>(doc),
        ("gateway.networking.k8s.io", "ReferenceGrant") => {
            reserialize::<referencegrants::ReferenceGrant>(doc)
        }
        _ => {
            return Err(KindError::Unknown {
                api_version: api_version.to_owned(),
                kind: kind.to_owned(),
            });
        }
    };
    result.map_err(|source| KindError::Parse {
        kind: kind.to_owned(),
        name: doc
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("<unnamed>")
            .to_owned(),
        source,
    })
}
