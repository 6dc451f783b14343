//! The delta ADS client against weftd's real xDS server over mTLS on
//! loopback (weftd is a dev-dependency only): weftd identifies the proxy
//! by its workload certificate; updates are ACKed, a refused update is
//! NACKed with the sink's message and the last good configuration stays;
//! after weftd restarts the client reconnects and receives only what
//! changed (it announced what it held).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::google::protobuf::Any;
use prost::Message;
use rcgen::{KeyPair, SanType};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use weft_proxy::ca_client::WorkloadCert;
use weft_proxy::control_channel::WeftdAddress;
use weft_proxy::xds_client::{
    ConfigSink, NodeInfo, ProxyMode, XdsClient, XdsClientConfig, XdsStatus,
};
use weftd::ca::Authority;
use weftd::metrics::Metrics;
use weftd::resources::{Resource, Resources, type_url};
use weftd::tls::{self, ServingCert};
use weftd::xds::{
    Authentication, DebounceConfig, ProxyRegistry, ProxyStatus, StaticSource, XdsConfig, XdsServer,
};

const SERVER_NAME: &str = "weftd-default.weft-system.svc";
const ID: &str = "spiffe://cluster.local/ns/shop/sa/echo";
const WAIT: Duration = Duration::from_secs(15);

fn cluster(name: &str, connect_ms: i32) -> Resource {
    Resource::from_message(
        name,
        type_url::CLUSTER,
        &Cluster {
            name: name.to_owned(),
            connect_timeout: Some(envoy_types::pb::google::protobuf::Duration {
                seconds: 0,
                nanos: connect_ms * 1_000_000,
            }),
            ..Default::default()
        },
    )
}

fn mesh(clusters: &[(&str, i32)]) -> Resources {
    let mut r = Resources::default();
    for (name, ms) in clusters {
        r.insert(cluster(name, *ms));
    }
    r
}

/// What the sink holds, and every batch of names it was given.
#[derive(Default)]
struct Held {
    by_type: BTreeMap<String, BTreeMap<String, Any>>,
    batches: Vec<Vec<String>>,
}

/// Applies like the data path would: refuses a Cluster named `bad-*`
/// (naming the resource and field), applying nothing of that batch.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Held>>);

impl ConfigSink for Sink {
    fn apply(
        &mut self,
        type_url: &str,
        added: Vec<(String, Any)>,
        removed: &[String],
    ) -> Result<(), String> {
        for (name, any) in &added {
            let c = Cluster::decode(any.value.as_slice()).map_err(|e| format!("{name}: {e}"))?;
            if c.name.starts_with("bad") {
                return Err(format!(
                    "Cluster {name:?}: cluster_discovery_type: unsupported by weft-proxy"
                ));
            }
        }
        let mut held = self.0.lock().expect("lock");
        held.batches
            .push(added.iter().map(|(n, _)| n.clone()).collect());
        let of_type = held.by_type.entry(type_url.to_owned()).or_default();
        for name in removed {
            of_type.remove(name);
        }
        of_type.extend(added);
        Ok(())
    }
}

impl Sink {
    fn clusters(&self) -> Vec<String> {
        let held = self.0.lock().expect("lock");
        held.by_type
            .get(type_url::CLUSTER)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn batches(&self) -> Vec<Vec<String>> {
        self.0.lock().expect("lock").batches.clone()
    }
}

/// weftd's xDS server on 15012-style mTLS.
struct Weftd {
    registry: ProxyRegistry,
    xds: XdsServer,
    stop: Option<oneshot::Sender<()>>,
}

impl Weftd {
    async fn start(
        authority: &Authority,
        source: Arc<StaticSource>,
        listener: TcpListener,
    ) -> Self {
        let serving = Arc::new(
            ServingCert::issue(authority, &[SERVER_NAME.to_owned()]).expect("serving cert"),
        );
        let config = tls::server_config(authority.roots_der(), serving).expect("tls");
        let registry = ProxyRegistry::default();
        let xds = XdsServer::new(
            source,
            XdsConfig {
                debounce: DebounceConfig {
                    quiet: Duration::from_millis(10),
                    max_delay: Duration::from_millis(100),
                    ..DebounceConfig::default()
                },
                ..XdsConfig::default()
            },
            registry.clone(),
            Metrics::new(),
        );
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(xds.service(Authentication::ClientCertificate))
                .serve_with_incoming_shutdown(tls::incoming(listener, config), async {
                    let _ = stopped.await;
                }),
        );
        Self {
            registry,
            xds,
            stop: Some(stop),
        }
    }

    fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.xds.close_streams();
    }
}

impl Drop for Weftd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn workload_cert(authority: &Authority) -> WorkloadCert {
    let key = KeyPair::generate().expect("key");
    let now = SystemTime::now();
    let issued = authority
        .issue(
            &key,
            vec![SanType::URI(ID.try_into().expect("ia5"))],
            Duration::from_secs(3600),
            now,
        )
        .expect("issued");
    WorkloadCert {
        spiffe_id: ID.to_owned(),
        chain: issued.chain_der,
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        roots: authority.roots_der().to_vec(),
        not_before: now,
        not_after: now + Duration::from_secs(3600),
        received: now,
    }
}

fn node() -> NodeInfo {
    NodeInfo {
        mode: ProxyMode::Sidecar,
        pod: "echo-1".into(),
        namespace: "shop".into(),
        service_account: "echo".into(),
        ips: vec!["10.0.0.7".into()],
        revision: None,
        cluster_domain: "cluster.local".into(),
    }
}

/// Polls `cond` until it holds (state the test does not get notified of).
async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn cluster_status(reg: &ProxyRegistry) -> Option<ProxyStatus> {
    reg.proxies().into_iter().find(|p| p.identity == ID)
}

async fn status_until(
    rx: &mut watch::Receiver<XdsStatus>,
    what: &str,
    f: impl Fn(&XdsStatus) -> bool,
) {
    let reached = tokio::time::timeout(WAIT, rx.wait_for(|s| f(s)))
        .await
        .map(|r| r.is_ok());
    assert!(
        matches!(reached, Ok(true)),
        "status never: {what}: {:?}",
        *rx.borrow()
    );
}

#[tokio::test]
async fn ack_nack_keep_last_good_and_reconnect() {
    let authority = Authority::generate("cluster.local", SystemTime::now()).expect("CA");
    let source = Arc::new(StaticSource::new(mesh(&[("a", 100), ("b", 100)])));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let mut weftd = Weftd::start(&authority, source.clone(), listener).await;

    let sink = Sink::default();
    let mut config = XdsClientConfig::new(
        WeftdAddress {
            address: addr.to_string(),
            server_name: Some(SERVER_NAME.to_owned()),
        },
        node().to_node(),
    );
    config.initial_fetch_timeout = Duration::from_millis(500);
    let client = XdsClient::new(config, sink.clone());
    let mut status = client.status();
    let (_id_tx, id_rx) = watch::channel(Arc::new(workload_cert(&authority)));
    let task = tokio::spawn(client.run(id_rx));

    // 1. The first push is applied and ACKed; weftd knows who we are
    //    from the certificate.
    until("clusters a, b applied", || sink.clusters() == ["a", "b"]).await;
    until("weftd saw the ACK", || {
        cluster_status(&weftd.registry).is_some_and(|p| {
            p.node_id == "sidecar~10.0.0.7~echo-1.shop~shop.svc.cluster.local"
                && p.types
                    .get(type_url::CLUSTER)
                    .is_some_and(|t| t.last_acked_version.is_some() && t.wildcard)
        })
    })
    .await;
    status_until(&mut status, "synced", |s| s.synced && s.connected).await;

    // 2. An update the sink refuses is NACKed with its message; the last
    //    good configuration stays.
    source.set(mesh(&[("a", 100), ("b", 100), ("bad-c", 100)]));
    until("weftd saw the NACK", || {
        cluster_status(&weftd.registry).is_some_and(|p| {
            p.types[type_url::CLUSTER]
                .last_nack
                .as_ref()
                .is_some_and(|n| {
                    n.message.contains("bad-c") && n.message.contains("cluster_discovery_type")
                })
        })
    })
    .await;
    status_until(&mut status, "nack counted", |s| s.nacks == 1).await;
    assert_eq!(sink.clusters(), ["a", "b"], "last good config kept");

    // 3. A fixed update is applied: a changed, b removed.
    source.set(mesh(&[("a", 200), ("d", 100)]));
    until("a changed, b gone, d added", || {
        sink.clusters() == ["a", "d"]
    })
    .await;

    // 4. weftd goes away; the client keeps its config and reconnects to
    //    the new weftd, which sends only what changed meanwhile.
    weftd.stop();
    status_until(&mut status, "disconnected", |s| !s.connected).await;
    assert_eq!(
        sink.clusters(),
        ["a", "d"],
        "serving the last good config while weftd is away"
    );
    source.set(mesh(&[("a", 200), ("d", 100), ("e", 100)]));
    let batches_before = sink.batches().len();
    let listener = loop {
        match TcpListener::bind(addr).await {
            Ok(l) => break l,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let weftd2 = Weftd::start(&authority, source.clone(), listener).await;
    until("e arrived after the reconnect", || {
        sink.clusters() == ["a", "d", "e"]
    })
    .await;
    // (each other type's first answer on the new stream is empty)
    let after: Vec<Vec<String>> = sink.batches()[batches_before..]
        .iter()
        .filter(|b| !b.is_empty())
        .cloned()
        .collect();
    assert_eq!(
        after,
        vec![vec!["e".to_owned()]],
        "only the change is sent: the client announced a and d (initial_resource_versions)"
    );
    status_until(&mut status, "second stream", |s| {
        s.connected && s.streams >= 2
    })
    .await;
    until("the new weftd has the ACK", || {
        cluster_status(&weftd2.registry).is_some_and(|p| {
            p.types
                .get(type_url::CLUSTER)
                .is_some_and(|t| t.last_acked_version.is_some())
        })
    })
    .await;
    task.abort();
}

#[tokio::test]
async fn a_certificate_from_another_mesh_is_refused() {
    let authority = Authority::generate("cluster.local", SystemTime::now()).expect("CA");
    let stranger = Authority::generate("cluster.local", SystemTime::now()).expect("CA");
    let source = Arc::new(StaticSource::new(mesh(&[("a", 100)])));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let _weftd = Weftd::start(&authority, source, listener).await;
    let sink = Sink::default();
    let mut cert = workload_cert(&stranger);
    // it trusts the right root, but its own certificate is not from this mesh
    cert.roots = authority.roots_der().to_vec();
    let client = XdsClient::new(
        XdsClientConfig::new(
            WeftdAddress {
                address: addr.to_string(),
                server_name: Some(SERVER_NAME.to_owned()),
            },
            node().to_node(),
        ),
        sink.clone(),
    );
    let mut status = client.status();
    let (_tx, rx) = watch::channel(Arc::new(cert));
    let task = tokio::spawn(client.run(rx));
    status_until(&mut status, "an error", |s| s.last_error.is_some()).await;
    assert!(sink.clusters().is_empty());
    assert!(!status.borrow().synced);
    task.abort();
}
