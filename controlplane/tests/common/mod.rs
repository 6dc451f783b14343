//! Shared by the cluster tests: weftd's index + xDS server running on the
//! host against a local cluster, and a delta ADS test client.

#![allow(dead_code)] // each test binary uses part of it

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};
use envoy_types::pb::google::protobuf::{Any, Struct, Value, value::Kind};
use kube::runtime::events::Reporter;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use weft_e2e::{Cluster, Error};
use weftd::index::Index;
use weftd::metrics::Metrics;
use weftd::resources::type_url;
use weftd::translate::MeshSettings;
use weftd::xds::index_source::IndexSource;
use weftd::xds::{DebounceConfig, ProxyRegistry, XdsConfig, XdsServer};

pub const WAIT: Duration = Duration::from_secs(60);

/// weftd's index (kube watches) and plaintext xDS on 127.0.0.1.
pub struct WeftdOnHost {
    pub addr: SocketAddr,
    pub registry: ProxyRegistry,
    watches: Vec<JoinHandle<()>>,
    server: XdsServer,
    stop: tokio::sync::oneshot::Sender<()>,
    serving: JoinHandle<()>,
}

impl WeftdOnHost {
    pub async fn start(cluster: &Cluster) -> Result<Self, Error> {
        let client = kube::Client::try_from(
            kube::Config::from_custom_kubeconfig(
                kube::config::Kubeconfig::read_from(cluster.kubeconfig())
                    .map_err(|e| Error::Assert(format!("kubeconfig: {e}")))?,
                &kube::config::KubeConfigOptions::default(),
            )
            .await
            .map_err(|e| Error::Assert(format!("kubeconfig: {e}")))?,
        )?;
        let index = Arc::new(Mutex::new(Index::new()));
        let snapshots = index
            .lock()
            .map_err(|_| Error::Assert("index lock".into()))?
            .subscribe();
        let watches = weftd::index::watch::spawn(
            client,
            index.clone(),
            Reporter {
                controller: "weftd-test".into(),
                instance: None,
            },
        );
        let source = Arc::new(IndexSource::new(snapshots, MeshSettings::default()));
        let registry = ProxyRegistry::default();
        let server = XdsServer::new(
            source,
            XdsConfig {
                debounce: DebounceConfig {
                    quiet: Duration::from_millis(50),
                    max_delay: Duration::from_millis(500),
                    leading_edge: false,
                },
                ..XdsConfig::default()
            },
            registry.clone(),
            Metrics::new(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| Error::Assert(format!("bind: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Assert(format!("bind: {e}")))?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn({
            let server = server.clone();
            async move {
                if let Err(e) = server
                    .serve_plaintext(listener, async {
                        let _ = stopped.await;
                    })
                    .await
                {
                    tracing::error!(error = %e, "xDS server");
                }
            }
        });
        Ok(Self {
            addr,
            registry,
            watches,
            server,
            stop,
            serving,
        })
    }

    pub async fn stop(self) {
        self.server.close_streams();
        let _ = self.stop.send(());
        let _ = self.serving.await;
        for w in self.watches {
            w.abort();
        }
    }
}

/// What a delta client holds: type → name → resource.
#[derive(Clone, Debug, Default)]
pub struct Held(BTreeMap<String, BTreeMap<String, Any>>);

impl Held {
    pub fn contains(&self, type_url: &str, name: &str) -> bool {
        self.0.get(type_url).is_some_and(|m| m.contains_key(name))
    }

    pub fn decode<M: prost::Message + Default>(&self, type_url: &str, name: &str) -> Option<M> {
        let any = self.0.get(type_url)?.get(name)?;
        M::decode(&any.value[..]).ok()
    }

    pub fn names(&self, type_url: &str) -> Vec<String> {
        self.0
            .get(type_url)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn apply(&mut self, r: &DeltaDiscoveryResponse) {
        let m = self.0.entry(r.type_url.clone()).or_default();
        for x in &r.resources {
            if let Some(any) = &x.resource {
                m.insert(x.name.clone(), any.clone());
            }
        }
        for n in &r.removed_resources {
            m.remove(n);
        }
    }
}

/// A sidecar-like delta ADS client: wildcard on the four main types,
/// ACKs every response.
pub struct DeltaClient {
    tx: mpsc::Sender<DeltaDiscoveryRequest>,
    responses: Streaming<DeltaDiscoveryResponse>,
    held: Held,
}

fn string(v: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(v.to_owned())),
    }
}

impl DeltaClient {
    pub async fn connect(addr: SocketAddr, node_id: &str, namespace: &str) -> Result<Self, Error> {
        let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{addr}"))
            .await
            .map_err(|e| Error::Assert(format!("connect to weftd at {addr}: {e}")))?
            .max_decoding_message_size(64 << 20);
        let (tx, rx) = mpsc::channel(16);
        let node = Node {
            id: node_id.to_owned(),
            metadata: Some(Struct {
                fields: [("NAMESPACE".to_owned(), string(namespace))]
                    .into_iter()
                    .collect(),
            }),
            ..Default::default()
        };
        for t in [
            type_url::CLUSTER,
            type_url::ENDPOINT,
            type_url::LISTENER,
            type_url::ROUTE,
        ] {
            tx.send(DeltaDiscoveryRequest {
                node: Some(node.clone()),
                type_url: t.to_owned(),
                ..Default::default()
            })
            .await
            .map_err(|e| Error::Assert(format!("send: {e}")))?;
        }
        let responses = client
            .delta_aggregated_resources(ReceiverStream::new(rx))
            .await
            .map_err(|e| Error::Assert(format!("delta stream: {e}")))?
            .into_inner();
        Ok(Self {
            tx,
            responses,
            held: Held::default(),
        })
    }

    async fn recv(&mut self, within: Duration) -> Result<Option<DeltaDiscoveryResponse>, Error> {
        match tokio::time::timeout(within, self.responses.next()).await {
            Err(_) => Ok(None),
            Ok(None) => Err(Error::Assert("weftd closed the xDS stream".into())),
            Ok(Some(Err(status))) => Err(Error::Assert(format!("xDS stream failed: {status}"))),
            Ok(Some(Ok(r))) => {
                self.held.apply(&r);
                self.tx
                    .send(DeltaDiscoveryRequest {
                        type_url: r.type_url.clone(),
                        response_nonce: r.nonce.clone(),
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| Error::Assert(format!("ack: {e}")))?;
                Ok(Some(r))
            }
        }
    }

    /// The next response (ACKed), within [`WAIT`].
    pub async fn next_response(&mut self) -> Result<DeltaDiscoveryResponse, Error> {
        self.recv(WAIT)
            .await?
            .ok_or_else(|| Error::Assert(format!("no xDS response within {WAIT:?}")))
    }

    /// Receives until `pred` holds on what the client holds.
    pub async fn wait_until(&mut self, pred: impl Fn(&Held) -> bool) -> Result<(), Error> {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !pred(&self.held) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if self.recv(left).await?.is_none() {
                return Err(Error::Assert(format!(
                    "the expected resources did not arrive within {WAIT:?}; held: clusters {:?}, endpoints {:?}, listeners {:?}, routes {:?}",
                    self.held.names(type_url::CLUSTER),
                    self.held.names(type_url::ENDPOINT),
                    self.held.names(type_url::LISTENER),
                    self.held.names(type_url::ROUTE),
                )));
            }
        }
        Ok(())
    }

    /// Receives until nothing arrived for `quiet` (bounded by [`WAIT`]).
    pub async fn settle(&mut self, quiet: Duration) -> Result<(), Error> {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.recv(quiet).await?.is_some() {
            if tokio::time::Instant::now() > deadline {
                return Err(Error::Assert(format!(
                    "xDS pushes did not settle within {WAIT:?}"
                )));
            }
        }
        Ok(())
    }

    /// Fails if any response arrives within `d`.
    pub async fn expect_nothing_for(&mut self, d: Duration) -> Result<(), Error> {
        match self.recv(d).await? {
            None => Ok(()),
            Some(r) => Err(Error::Assert(format!(
                "unexpected push: {} {:?} removed {:?}",
                r.type_url,
                r.resources.iter().map(|x| &x.name).collect::<Vec<_>>(),
                r.removed_resources
            ))),
        }
    }

    pub fn held(&self) -> &Held {
        &self.held
    }
}
