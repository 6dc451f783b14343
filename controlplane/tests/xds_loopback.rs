//! The xDS server over a real gRPC connection on loopback: a tonic ADS
//! client speaks state of the world and delta to it; pushes, ACK/NACK and
//! refusals are observed on the wire and on the debug registry.

use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use weftd::metrics::Metrics;
use weftd::resources::{Resource, Resources, type_url};
use weftd::xds::{DebounceConfig, ProxyRegistry, StaticSource, XdsConfig, XdsServer};

const WAIT: Duration = Duration::from_secs(10);

fn cluster(name: &str, connect_ms: u32) -> Resource {
    Resource::from_message(
        name,
        type_url::CLUSTER,
        &Cluster {
            name: name.to_owned(),
            connect_timeout: Some(envoy_types::pb::google::protobuf::Duration {
                seconds: 0,
                nanos: connect_ms as i32 * 1_000_000,
            }),
            ..Default::default()
        },
    )
}

fn cla(name: &str, generation: u32) -> Resource {
    Resource::from_message(
        name,
        type_url::ENDPOINT,
        &ClusterLoadAssignment {
            cluster_name: format!("{name}#{generation}"),
            ..Default::default()
        },
    )
}

fn mesh(clusters: &[(&str, u32)], endpoints: &[(&str, u32)]) -> Resources {
    let mut r = Resources::default();
    for (n, t) in clusters {
        r.insert(cluster(n, *t));
    }
    for (n, g) in endpoints {
        r.insert(cla(n, *g));
    }
    r
}

fn node(id: &str, namespace: Option<&str>) -> Node {
    let mut fields = std::collections::HashMap::new();
    if let Some(ns) = namespace {
        fields.insert(
            "NAMESPACE".to_owned(),
            Value {
                kind: Some(Kind::StringValue(ns.to_owned())),
            },
        );
    }
    Node {
        id: id.to_owned(),
        metadata: Some(Struct { fields }),
        ..Default::default()
    }
}

struct Harness {
    source: Arc<StaticSource>,
    registry: ProxyRegistry,
    metrics: Metrics,
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Harness {
    async fn start(initial: Resources) -> Self {
        let source = Arc::new(StaticSource::new(initial));
        let registry = ProxyRegistry::default();
        let metrics = Metrics::new();
        let config = XdsConfig {
            debounce: DebounceConfig {
                quiet: Duration::from_millis(10),
                max_delay: Duration::from_millis(100),
                leading_edge: false,
            },
            ..XdsConfig::default()
        };
        let server = XdsServer::new(source.clone(), config, registry.clone(), metrics.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = tokio::sync::oneshot::channel();
        tokio::spawn(server.serve_plaintext(listener, async {
            let _ = stopped.await;
        }));
        Self {
            source,
            registry,
            metrics,
            addr,
            stop: Some(stop),
        }
    }

    async fn client(&self) -> AggregatedDiscoveryServiceClient<tonic::transport::Channel> {
        AggregatedDiscoveryServiceClient::connect(format!("http://{}", self.addr))
            .await
            .expect("connect to the xDS server")
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

async fn next<T>(stream: &mut Streaming<T>) -> T {
    tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("a response within the timeout")
        .expect("stream open")
        .expect("no stream error")
}

/// Nothing arrives for `d` (a bounded wait for an absence).
async fn nothing_for<T: std::fmt::Debug>(stream: &mut Streaming<T>, d: Duration) {
    if let Ok(got) = tokio::time::timeout(d, stream.next()).await {
        panic!("expected no response, got {got:?}");
    }
}

fn cluster_names(r: &DiscoveryResponse) -> Vec<String> {
    let mut names: Vec<String> = r
        .resources
        .iter()
        .map(|a| {
            prost::Message::decode(&a.value[..])
                .map(|c: Cluster| c.name)
                .expect("a Cluster")
        })
        .collect();
    names.sort();
    names
}

fn delta_names(r: &DeltaDiscoveryResponse) -> Vec<&str> {
    r.resources.iter().map(|x| x.name.as_str()).collect()
}

/// Waits until the registry shows `pred` for the proxy (watch-free: the
/// registry is plain state, polled briefly).
async fn registry_shows(
    reg: &ProxyRegistry,
    what: &str,
    pred: impl Fn(&weftd::xds::ProxyStatus) -> bool,
) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if reg.proxies().iter().any(&pred) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "registry never showed {what}: {:#?}",
            reg.proxies()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn state_of_the_world_push_ack_nack() {
    let h = Harness::start(mesh(&[("a", 1), ("b", 1)], &[])).await;
    let mut client = h.client().await;
    let (tx, rx) = mpsc::channel(8);
    tx.send(DiscoveryRequest {
        node: Some(node("sidecar~10.0.0.1~p.shop~shop.svc.cluster.local", None)),
        type_url: type_url::CLUSTER.to_owned(),
        ..Default::default()
    })
    .await
    .expect("send");
    let mut responses = client
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
        .expect("stream")
        .into_inner();

    let r1 = next(&mut responses).await;
    assert_eq!(cluster_names(&r1), ["a", "b"]);
    tx.send(DiscoveryRequest {
        type_url: type_url::CLUSTER.to_owned(),
        version_info: r1.version_info.clone(),
        response_nonce: r1.nonce.clone(),
        ..Default::default()
    })
    .await
    .expect("ack");
    registry_shows(&h.registry, "the ACK", |p| {
        p.identity == "spiffe://cluster.local/ns/shop/sa/default"
            && p.types[type_url::CLUSTER].last_acked_nonce.as_deref() == Some(r1.nonce.as_str())
    })
    .await;

    // a change is pushed; the proxy NACKs it
    h.source.set(mesh(&[("a", 2), ("b", 1)], &[]));
    let r2 = next(&mut responses).await;
    assert_ne!(r2.version_info, r1.version_info);
    tx.send(DiscoveryRequest {
        type_url: type_url::CLUSTER.to_owned(),
        version_info: r1.version_info.clone(),
        response_nonce: r2.nonce.clone(),
        error_detail: Some(RpcStatus {
            code: 3,
            message: "cluster a: unsupported field connect_timeout".to_owned(),
            details: vec![],
        }),
        ..Default::default()
    })
    .await
    .expect("nack");
    registry_shows(&h.registry, "the NACK", |p| {
        p.types[type_url::CLUSTER]
            .last_nack
            .as_ref()
            .is_some_and(|n| n.message.contains("unsupported field"))
            && p.types[type_url::CLUSTER].last_acked_version.as_deref()
                == Some(r1.version_info.as_str())
    })
    .await;
    assert!(
        h.metrics
            .encode()
            .expect("metrics")
            .contains("weftd_xds_nacks_total{type=\"Cluster\"} 1")
    );
    // an unrelated source change with the same content: nothing is resent
    h.source.set(mesh(&[("a", 2), ("b", 1)], &[]));
    nothing_for(&mut responses, Duration::from_millis(300)).await;

    // a fix is pushed
    h.source.set(mesh(&[("a", 3), ("b", 1)], &[]));
    let r3 = next(&mut responses).await;
    assert_eq!(cluster_names(&r3), ["a", "b"]);
    assert_ne!(r3.version_info, r2.version_info);
}

#[tokio::test]
async fn delta_pushes_only_what_changed() {
    let h = Harness::start(mesh(&[("a", 1)], &[("a", 1), ("b", 1), ("c", 1)])).await;
    let mut client = h.client().await;
    let (tx, rx) = mpsc::channel(8);
    for t in [type_url::CLUSTER, type_url::ENDPOINT] {
        tx.send(DeltaDiscoveryRequest {
            node: Some(node("delta-1", Some("shop"))),
            type_url: t.to_owned(),
            ..Default::default()
        })
        .await
        .expect("send");
    }
    let mut responses = client
        .delta_aggregated_resources(ReceiverStream::new(rx))
        .await
        .expect("stream")
        .into_inner();
    let mut initial = vec![next(&mut responses).await, next(&mut responses).await];
    initial.sort_by(|a, b| a.type_url.cmp(&b.type_url));
    assert_eq!(initial[0].type_url, type_url::CLUSTER);
    assert_eq!(delta_names(&initial[1]), ["a", "b", "c"]);
    for r in &initial {
        tx.send(DeltaDiscoveryRequest {
            type_url: r.type_url.clone(),
            response_nonce: r.nonce.clone(),
            ..Default::default()
        })
        .await
        .expect("ack");
    }

    // one endpoint set changes: only its ClusterLoadAssignment is pushed
    h.source
        .set(mesh(&[("a", 1)], &[("a", 1), ("b", 2), ("c", 1)]));
    let r = next(&mut responses).await;
    assert_eq!(r.type_url, type_url::ENDPOINT);
    assert_eq!(delta_names(&r), ["b"]);
    assert!(r.removed_resources.is_empty());
    tx.send(DeltaDiscoveryRequest {
        type_url: type_url::ENDPOINT.to_owned(),
        response_nonce: r.nonce.clone(),
        ..Default::default()
    })
    .await
    .expect("ack");
    nothing_for(&mut responses, Duration::from_millis(200)).await;

    // removal
    h.source.set(mesh(&[("a", 1)], &[("a", 1), ("b", 2)]));
    let r = next(&mut responses).await;
    assert!(r.resources.is_empty());
    assert_eq!(r.removed_resources, ["c"]);

    // a NACKed delta is not resent
    h.source.set(mesh(&[("a", 1)], &[("a", 9), ("b", 2)]));
    let r = next(&mut responses).await;
    assert_eq!(delta_names(&r), ["a"]);
    tx.send(DeltaDiscoveryRequest {
        type_url: type_url::ENDPOINT.to_owned(),
        response_nonce: r.nonce.clone(),
        error_detail: Some(RpcStatus {
            code: 3,
            message: "endpoint a: bad weight".to_owned(),
            details: vec![],
        }),
        ..Default::default()
    })
    .await
    .expect("nack");
    registry_shows(&h.registry, "the delta NACK", |p| {
        p.protocol == "delta"
            && p.types
                .get(type_url::ENDPOINT)
                .and_then(|t| t.last_nack.as_ref())
                .is_some_and(|n| n.message == "endpoint a: bad weight")
    })
    .await;
    h.source.set(mesh(&[("a", 1)], &[("a", 9), ("b", 2)]));
    nothing_for(&mut responses, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_node_without_namespace_is_refused_on_plaintext() {
    let h = Harness::start(Resources::default()).await;
    let mut client = h.client().await;
    let (tx, rx) = mpsc::channel(1);
    tx.send(DiscoveryRequest {
        node: Some(node("who-knows", None)),
        type_url: type_url::LISTENER.to_owned(),
        ..Default::default()
    })
    .await
    .expect("send");
    let mut responses = client
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
        .expect("stream")
        .into_inner();
    let err = tokio::time::timeout(WAIT, responses.next())
        .await
        .expect("an answer")
        .expect("an item")
        .expect_err("refused");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("NAMESPACE"), "{}", err.message());
    assert_eq!(h.registry.connected(), 0);
}
