//! Connecting to weftd, running one delta ADS stream, and reconnecting
//! with backoff (glue around [`super::state`]).

use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use super::state::{Answer, DeltaState};
use super::{ConfigSink, XdsError};
use crate::backoff::Backoff;
use crate::ca_client::WorkloadCert;
use crate::config::type_url;
use crate::control_channel::WeftdAddress;

/// A stream that lived this long was healthy: the next reconnect starts
/// from the initial backoff.
const HEALTHY_STREAM: Duration = Duration::from_secs(10);

/// Settings of the client.
#[derive(Clone, Debug)]
pub struct XdsClientConfig {
    pub weftd: WeftdAddress,
    pub node: Node,
    /// After this long on a new stream, the proxy counts as configured
    /// even if some type got no answer (weftd sends nothing for a type the
    /// proxy has nothing of), like Envoy's `initial_fetch_timeout`.
    pub initial_fetch_timeout: Duration,
    pub backoff: Backoff,
}

impl XdsClientConfig {
    pub fn new(weftd: WeftdAddress, node: Node) -> Self {
        Self {
            weftd,
            node,
            initial_fetch_timeout: Duration::from_secs(5),
            backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(30)),
        }
    }
}

/// What the client has done so far (for readiness and the admin page).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct XdsStatus {
    /// A stream is open now.
    pub connected: bool,
    /// The first configuration was received (every type answered, or the
    /// initial fetch timed out). Stays true across reconnects: the last
    /// good configuration keeps serving.
    pub synced: bool,
    pub acks: u64,
    pub nacks: u64,
    /// The message of the last NACK.
    pub last_nack: Option<String>,
    /// Why the last stream ended.
    pub last_error: Option<String>,
    /// Streams opened.
    pub streams: u64,
}

/// The delta ADS client: owns the sink and what it holds.
#[derive(Debug)]
pub struct XdsClient<S> {
    config: XdsClientConfig,
    sink: S,
    state: DeltaState,
    status: watch::Sender<XdsStatus>,
}

impl<S: ConfigSink> XdsClient<S> {
    pub fn new(config: XdsClientConfig, sink: S) -> Self {
        Self {
            config,
            sink,
            state: DeltaState::default(),
            status: watch::Sender::new(XdsStatus::default()),
        }
    }

    /// Watches the client's status.
    pub fn status(&self) -> watch::Receiver<XdsStatus> {
        self.status.subscribe()
    }

    /// Runs streams forever, reconnecting with backoff, presenting the
    /// current certificate of `identity` on each connection.
    pub async fn run(mut self, identity: watch::Receiver<Arc<WorkloadCert>>) {
        loop {
            let cert = identity.borrow().clone();
            let started = tokio::time::Instant::now();
            let result = self.stream_once(&cert).await;
            self.status.send_modify(|s| s.connected = false);
            if started.elapsed() >= HEALTHY_STREAM {
                self.config.backoff.reset();
            }
            let wait = self.config.backoff.next_delay();
            let attempt = self.config.backoff.attempts();
            let retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
            match result {
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        label = e.label(),
                        attempt,
                        retry_in_ms,
                        "xDS stream to weftd ended; serving the last good configuration"
                    );
                    self.status
                        .send_modify(|s| s.last_error = Some(e.to_string()));
                }
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// One stream, until it breaks.
    async fn stream_once(&mut self, cert: &WorkloadCert) -> Result<(), XdsError> {
        let channel = self
            .config
            .weftd
            .connect(&cert.roots_pem(), Some(cert.identity_pem()), None)
            .await?;
        let (tx, rx) = mpsc::channel::<DeltaDiscoveryRequest>(16);
        let opening = self.state.opening_requests(&self.config.node);
        for request in opening {
            // Capacity 16 holds the 5 opening requests.
            tx.try_send(request).map_err(|_| XdsError::Closed)?;
        }
        let mut responses = AggregatedDiscoveryServiceClient::new(channel)
            .delta_aggregated_resources(ReceiverStream::new(rx))
            .await
            .map_err(|s| XdsError::Refused {
                code: s.code(),
                message: s.message().to_owned(),
            })?
            .into_inner();
        self.status.send_modify(|s| {
            s.connected = true;
            s.streams += 1;
        });
        tracing::info!(
            address = %self.config.weftd.address,
            node = %self.config.node.id,
            identity = %cert.spiffe_id,
            "xDS stream to weftd open"
        );
        let fetch_deadline = tokio::time::sleep(self.config.initial_fetch_timeout);
        tokio::pin!(fetch_deadline);
        loop {
            let synced = self.status.borrow().synced;
            tokio::select! {
                () = &mut fetch_deadline, if !synced => {
                    tracing::info!("initial xDS fetch: not every type answered; serving what was received");
                    self.status.send_modify(|s| s.synced = true);
                }
                message = responses.message() => {
                    let response = match message {
                        Ok(Some(r)) => r,
                        Ok(None) => return Err(XdsError::Closed),
                        Err(s) => {
                            return Err(XdsError::Stream {
                                code: s.code(),
                                message: s.message().to_owned(),
                            });
                        }
                    };
                    self.config.backoff.reset();
                    let kind = type_url::short(&response.type_url).to_owned();
                    let (added, removed) = (response.resources.len(), response.removed_resources.len());
                    let answer = self.state.on_response(response, &mut self.sink);
                    let all = self.state.all_answered();
                    match &answer {
                        Answer::Ack(_) => {
                            tracing::debug!(%kind, added, removed, "xDS update applied");
                            self.status.send_modify(|s| {
                                s.acks += 1;
                                s.synced |= all;
                            });
                        }
                        Answer::Nack { message, .. } => {
                            tracing::warn!(%kind, added, removed, %message, "xDS update refused (NACK); keeping the last good configuration");
                            self.status.send_modify(|s| {
                                s.nacks += 1;
                                s.last_nack = Some(message.clone());
                                s.synced |= all;
                            });
                        }
                    }
                    if tx.send(answer.request().clone()).await.is_err() {
                        return Err(XdsError::Closed);
                    }
                }
            }
        }
    }
}
