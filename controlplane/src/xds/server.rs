//! The gRPC glue: `envoy.service.discovery.v3.AggregatedDiscoveryService`
//! with both streams. Each stream identifies its proxy on the first
//! request, then loops over two events: a request from the proxy (handled
//! by the pure per-type state in [`super::sotw`] / [`super::delta`]) and a
//! debounced configuration change (the proxy's resources are fetched from
//! the [`ConfigSource`] and each type is diffed, in `PUSH_ORDER`).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{Instrument, debug, info, info_span, warn};

use super::XdsError;
use super::debounce::{self, DebounceConfig, Trigger};
use super::delta::DeltaType;
use super::node::{NodeClaims, NodeError};
use super::peer::{PeerError, peer_identity};
use super::protocol::Protocol;
use super::sotw::{Outcome, SotwType, Verdict};
use super::source::ConfigSource;
use super::status::{ProxyRegistry, Registration};
use super::subscription::Subscription;
use crate::identity::ProxyIdentity;
use crate::metrics::Metrics;
use crate::resources::{Resources, type_url};

/// How a stream's proxy is identified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Authentication {
    /// mTLS (15012): namespace and service account from the client
    /// certificate; node metadata may only add pod details.
    ClientCertificate,
    /// Plaintext (15010, off by default: dev and proxyless tests): the
    /// node metadata is trusted.
    NodeMetadata,
}

/// Settings of the xDS server.
#[derive(Clone, Debug)]
pub struct XdsConfig {
    pub debounce: DebounceConfig,
    /// Trust domain of plaintext clients' identities, and the only one
    /// accepted in client certificates.
    pub trust_domain: String,
    /// This control plane's revision (proxies that do not say theirs).
    pub revision: String,
    /// Responses queued per stream before pushes wait for the proxy.
    pub stream_buffer: usize,
}

impl Default for XdsConfig {
    fn default() -> Self {
        Self {
            debounce: DebounceConfig::default(),
            trust_domain: "cluster.local".to_owned(),
            revision: "default".to_owned(),
            stream_buffer: 16,
        }
    }
}

/// The xDS server: shared by every stream and by both listeners.
#[derive(Clone)]
pub struct XdsServer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for XdsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdsServer")
            .field("config", &self.inner.config)
            .field("connected", &self.inner.registry.connected())
            .finish_non_exhaustive()
    }
}

struct Inner {
    source: Arc<dyn ConfigSource>,
    pushes: watch::Receiver<Trigger>,
    closing: watch::Sender<bool>,
    registry: ProxyRegistry,
    metrics: Metrics,
    config: XdsConfig,
    connections: AtomicU64,
}

impl XdsServer {
    /// Builds the server and starts its debouncer (call inside a Tokio
    /// runtime). The debouncer stops when the source's change channel closes.
    pub fn new(
        source: Arc<dyn ConfigSource>,
        config: XdsConfig,
        registry: ProxyRegistry,
        metrics: Metrics,
    ) -> Self {
        let (push_tx, pushes) = watch::channel(Trigger {
            generation: 0,
            first_change: Instant::now(),
        });
        tokio::spawn(debounce::run(source.changes(), push_tx, config.debounce));
        Self {
            inner: Arc::new(Inner {
                source,
                pushes,
                closing: watch::Sender::new(false),
                registry,
                metrics,
                config,
                connections: AtomicU64::new(0),
            }),
        }
    }

    /// The gRPC service, identifying proxies as `auth` says.
    pub fn service(&self, auth: Authentication) -> AggregatedDiscoveryServiceServer<AdsService> {
        AggregatedDiscoveryServiceServer::new(AdsService {
            server: self.clone(),
            auth,
        })
        .max_decoding_message_size(16 << 20)
        .max_encoding_message_size(64 << 20)
    }

    /// Ends every open stream (so a graceful shutdown does not wait on
    /// streams that never end by themselves).
    pub fn close_streams(&self) {
        self.inner.closing.send_replace(true);
    }

    pub fn registry(&self) -> &ProxyRegistry {
        &self.inner.registry
    }

    /// Serves plaintext xDS (port 15010: dev and proxyless tests only)
    /// on `listener` until `shutdown` completes.
    pub async fn serve_plaintext(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), XdsError> {
        let addr = listener.local_addr().map_err(XdsError::Listen)?;
        info!(%addr, "serving plaintext xDS (identities from node metadata: not for production)");
        let this = self.clone();
        tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
            .add_service(self.service(Authentication::NodeMetadata))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async move {
                    shutdown.await;
                    this.close_streams();
                },
            )
            .await
            .map_err(XdsError::Serve)
    }
}

/// One listener's view of the server.
#[derive(Clone, Debug)]
pub struct AdsService {
    server: XdsServer,
    auth: Authentication,
}

type ResponseStream<T> = ReceiverStream<Result<T, Status>>;

fn refused(e: &NodeError) -> Status {
    match e {
        NodeError::NoNode | NodeError::NoNamespace { .. } => {
            Status::invalid_argument(e.to_string())
        }
        _ => Status::permission_denied(e.to_string()),
    }
}

/// Establishes who a stream's proxy is (see [`Authentication`]).
pub fn identify(
    auth: Authentication,
    config: &XdsConfig,
    ext: &http::Extensions,
    node: Option<&Node>,
) -> Result<ProxyIdentity, NodeError> {
    let claims = NodeClaims::from_node(node)?;
    match auth {
        Authentication::NodeMetadata => {
            claims.into_claimed_identity(&config.trust_domain, &config.revision)
        }
        Authentication::ClientCertificate => {
            let node = claims.node_id.clone();
            let id = peer_identity(ext).map_err(|e| match e {
                PeerError::NoCertificate => NodeError::NoCertificate { node: node.clone() },
                other => NodeError::BadCertificate {
                    node: node.clone(),
                    reason: other.to_string(),
                },
            })?;
            if id.trust_domain != config.trust_domain {
                return Err(NodeError::BadCertificate {
                    node,
                    reason: format!(
                        "{id} is not in this mesh's trust domain {:?}",
                        config.trust_domain
                    ),
                });
            }
            claims.into_certified_identity(id, &config.revision)
        }
    }
}

/// The per-stream state both protocols share: identity, registration,
/// the current snapshot, nonces.
struct Stream {
    inner: Arc<Inner>,
    /// What the stream itself established (certificate, node ID).
    authenticated: ProxyIdentity,
    /// That, completed by the source (pod, labels, revision): refreshed on
    /// every push, since a proxy often connects before weftd's pod watch
    /// has seen its pod.
    proxy: ProxyIdentity,
    reg: Registration,
    pushes: watch::Receiver<Trigger>,
    snapshot: Arc<Resources>,
    generation: u64,
    nonces: u64,
}

impl Stream {
    fn open(inner: Arc<Inner>, authenticated: ProxyIdentity, protocol: &'static str) -> Self {
        let proxy = inner.source.identify(authenticated.clone());
        let connection = inner.connections.fetch_add(1, Ordering::Relaxed) + 1;
        let reg = inner.registry.register(connection, &proxy, protocol);
        inner.metrics.proxy_connected();
        let mut pushes = inner.pushes.clone();
        let generation = pushes.borrow_and_update().generation;
        let snapshot = inner.source.resources(&proxy);
        info!(node = %proxy.node_id, identity = %proxy.id, protocol, "proxy connected");
        Self {
            inner,
            authenticated,
            proxy,
            reg,
            pushes,
            snapshot,
            generation,
            nonces: 0,
        }
    }

    fn nonce(&mut self) -> String {
        self.nonces += 1;
        self.nonces.to_string()
    }

    /// Refreshes the snapshot to the newest trigger. A push marks the
    /// trigger seen; answering a request does not, so the push that follows
    /// still diffs every other type against the new snapshot.
    fn refresh(&mut self, mark_seen: bool) -> Trigger {
        let trigger = if mark_seen {
            *self.pushes.borrow_and_update()
        } else {
            *self.pushes.borrow()
        };
        if trigger.generation != self.generation {
            self.generation = trigger.generation;
            let proxy = self.inner.source.identify(self.authenticated.clone());
            if proxy != self.proxy {
                info!(node = %proxy.node_id, pod = ?proxy.pod, revision = %proxy.revision, "proxy identity completed from the index");
                self.reg.identified(&proxy);
                self.proxy = proxy;
            }
            self.snapshot = self.inner.source.resources(&self.proxy);
        }
        trigger
    }

    /// Logs and records what a request meant.
    fn record(&self, type_url: &str, nonce: &str, outcome: &Outcome, sub: &Subscription) {
        self.reg.subscribed(type_url, sub);
        match &outcome.verdict {
            Verdict::Subscribe => {
                debug!(node = %self.proxy.node_id, type_url, wildcard = sub.wildcard, names = sub.names.len(), "subscribed")
            }
            Verdict::Ack { version } => self.reg.acked(type_url, version, nonce),
            Verdict::Nack { version, message } => {
                warn!(
                    node = %self.proxy.node_id,
                    identity = %self.proxy.id,
                    type_url,
                    nonce,
                    kept_version = %version,
                    error = %message,
                    "proxy rejected configuration (NACK): it keeps its last accepted version; weftd sends this type again only when its content changes"
                );
                self.inner.metrics.nack(type_url);
                self.reg.nacked(type_url, version, nonce, message);
            }
            Verdict::Stale => {
                debug!(node = %self.proxy.node_id, type_url, nonce, "answer to an older response ignored")
            }
        }
    }

    fn sent(
        &self,
        type_url: &str,
        version: &str,
        nonce: &str,
        latency: Option<std::time::Duration>,
    ) {
        self.reg.sent(type_url, version, nonce, &self.snapshot);
        self.inner.metrics.push(type_url, latency);
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.inner.metrics.proxy_disconnected();
        self.inner.source.disconnected(&self.proxy);
        info!(node = %self.proxy.node_id, "proxy disconnected");
    }
}

/// Where a stream loop's next event comes from.
enum Event<R> {
    Request(R),
    Push,
    End,
}

async fn next_event<R>(
    requests: &mut Streaming<R>,
    pushes: &mut watch::Receiver<Trigger>,
    closing: &mut watch::Receiver<bool>,
) -> Event<R> {
    tokio::select! {
        m = requests.message() => match m {
            Ok(Some(r)) => Event::Request(r),
            Ok(None) => Event::End,
            Err(status) => {
                debug!(%status, "xDS stream ended by the client");
                Event::End
            }
        },
        changed = pushes.changed() => if changed.is_ok() { Event::Push } else { Event::End },
        _ = closing.wait_for(|c| *c) => Event::End,
    }
}

/// One ADS stream, either protocol: identify the proxy from its first
/// request, then answer requests and push new snapshots until either side
/// ends it.
async fn run<P: Protocol>(
    inner: Arc<Inner>,
    auth: Authentication,
    ext: http::Extensions,
    mut requests: Streaming<P::Request>,
    tx: mpsc::Sender<Result<P::Response, Status>>,
) {
    let first = match requests.message().await {
        Ok(Some(r)) => r,
        _ => return,
    };
    let proxy = match identify(auth, &inner.config, &ext, P::node(&first)) {
        Ok(p) => p,
        Err(e) => {
            warn!(error = %e, reason = e.label(), "xDS stream refused");
            let _ = tx.send(Err(refused(&e))).await;
            return;
        }
    };
    let mut closing = inner.closing.subscribe();
    let mut s = Stream::open(inner, proxy, P::NAME);
    let span = info_span!("xds", node = %s.proxy.node_id, protocol = P::NAME);
    async move {
        let mut types: BTreeMap<String, P> = BTreeMap::new();
        let mut next = Some(first);
        loop {
            if let Some(req) = next.take() {
                let type_url = P::type_url(&req).to_owned();
                if type_url.is_empty() {
                    let message = format!(
                        "{} without type_url: ADS requests must name their type",
                        P::REQUEST
                    );
                    let _ = tx.send(Err(Status::invalid_argument(message))).await;
                    return;
                }
                let outcome = match types.get_mut(&type_url) {
                    Some(st) => st.on_request(&req),
                    None => {
                        let (st, o) = P::subscribe(&type_url, &req);
                        types.insert(type_url.clone(), st);
                        o
                    }
                };
                let Some(st) = types.get_mut(&type_url) else {
                    return;
                };
                s.record(
                    &type_url,
                    P::response_nonce(&req),
                    &outcome,
                    st.subscription(),
                );
                if outcome.respond {
                    s.refresh(false);
                    let nonce = s.nonce();
                    if let Some(resp) = st.response(&s.snapshot, s.generation, nonce, true) {
                        let (version, nonce) = P::sent(&resp);
                        s.sent(&type_url, version, nonce, None);
                        if tx.send(Ok(resp)).await.is_err() {
                            return;
                        }
                    }
                }
            }
            match next_event(&mut requests, &mut s.pushes, &mut closing).await {
                Event::Request(r) => next = Some(r),
                Event::End => return,
                Event::Push => {
                    let trigger = s.refresh(true);
                    for t in ordered(&types) {
                        let Some(st) = types.get_mut(&t) else {
                            continue;
                        };
                        let nonce = s.nonce();
                        if let Some(resp) = st.response(&s.snapshot, s.generation, nonce, false) {
                            let (version, nonce) = P::sent(&resp);
                            s.sent(&t, version, nonce, Some(trigger.first_change.elapsed()));
                            if tx.send(Ok(resp)).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        }
    }
    .instrument(span)
    .await;
}

/// The subscribed types in push order (known types first, then the rest).
fn ordered<V>(types: &BTreeMap<String, V>) -> Vec<String> {
    let mut out: Vec<String> = type_url::PUSH_ORDER
        .iter()
        .filter(|t| types.contains_key(**t))
        .map(|t| (*t).to_owned())
        .collect();
    out.extend(
        types
            .keys()
            .filter(|t| !type_url::PUSH_ORDER.contains(&t.as_str()))
            .cloned(),
    );
    out
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsService {
    type StreamAggregatedResourcesStream = ResponseStream<DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = ResponseStream<DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let (_, ext, requests) = request.into_parts();
        let (tx, rx) = mpsc::channel(self.server.inner.config.stream_buffer);
        tokio::spawn(run::<SotwType>(
            self.server.inner.clone(),
            self.auth,
            ext,
            requests,
            tx,
        ));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        let (_, ext, requests) = request.into_parts();
        let (tx, rx) = mpsc::channel(self.server.inner.config.stream_buffer);
        tokio::spawn(run::<DeltaType>(
            self.server.inner.clone(),
            self.auth,
            ext,
            requests,
            tx,
        ));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};

    use super::*;
    use crate::identity::SpiffeId;
    use crate::xds::PeerSpiffeId;

    fn node(meta: &[(&str, &str)]) -> Node {
        Node {
            id: "sidecar~10.0.0.9~web-1.shop~shop.svc.cluster.local".to_owned(),
            metadata: Some(Struct {
                fields: meta
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.to_string(),
                            Value {
                                kind: Some(Kind::StringValue(v.to_string())),
                            },
                        )
                    })
                    .collect(),
            }),
            ..Default::default()
        }
    }

    fn with_peer(id: Option<SpiffeId>) -> http::Extensions {
        let mut ext = http::Extensions::new();
        if let Some(id) = id {
            ext.insert(PeerSpiffeId(id));
        }
        ext
    }

    #[test]
    fn certificate_decides_identity_on_mtls() {
        let config = XdsConfig::default();
        let cert = SpiffeId::new("cluster.local", "shop", "web");
        let auth = Authentication::ClientCertificate;
        // (peer, metadata, expected: Ok(identity) or Err(label))
        type Row<'a> = (
            Option<SpiffeId>,
            Vec<(&'a str, &'a str)>,
            Result<&'a str, &'a str>,
        );
        let table: Vec<Row<'_>> = vec![
            (
                Some(cert.clone()),
                vec![],
                Ok("spiffe://cluster.local/ns/shop/sa/web"),
            ),
            (
                Some(cert.clone()),
                vec![("SERVICE_ACCOUNT", "web"), ("NAMESPACE", "shop")],
                Ok("spiffe://cluster.local/ns/shop/sa/web"),
            ),
            (
                Some(cert.clone()),
                vec![("SERVICE_ACCOUNT", "admin")],
                Err("ClaimMismatch"),
            ),
            (None, vec![("NAMESPACE", "shop")], Err("NoCertificate")),
            (
                Some(SpiffeId::new("other.domain", "shop", "web")),
                vec![],
                Err("BadCertificate"),
            ),
        ];
        for (peer, meta, want) in table {
            let got = identify(auth, &config, &with_peer(peer.clone()), Some(&node(&meta)));
            match (got, want) {
                (Ok(p), Ok(id)) => {
                    assert_eq!(p.id.to_string(), id, "{peer:?} {meta:?}");
                    assert_eq!(p.pod.as_deref(), Some("web-1"));
                }
                (Err(e), Err(label)) => assert_eq!(e.label(), label, "{peer:?} {meta:?}: {e}"),
                (got, want) => panic!("{peer:?} {meta:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn plaintext_trusts_metadata_but_ignores_peer_extensions() {
        let config = XdsConfig::default();
        let p = identify(
            Authentication::NodeMetadata,
            &config,
            &with_peer(None),
            Some(&node(&[("SERVICE_ACCOUNT", "web")])),
        )
        .expect("identity");
        assert_eq!(p.id.to_string(), "spiffe://cluster.local/ns/shop/sa/web");
    }
}
