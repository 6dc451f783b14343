//! The traffic path: capture listeners (outbound 15001, inbound 15006),
//! gateway listeners, protocol sniffing, filter chain selection, mesh mTLS
//! termination, HTTP and TCP proxying, upstream pools and load balancing.
//!
//! Proxy to proxy: the outbound proxy dials the endpoint's own address
//! (pod IP and target port) with mTLS; the peer pod's iptables sends it to
//! its inbound listener, which learns the port from `SO_ORIGINAL_DST`.
//! HTTP rides one multiplexed HTTP/2 connection per (endpoint, identity),
//! whose writes are batched until h2 flushes (`batched_write`);
//! TCP and upgrades get their own mTLS connection (ALPN `istio` and
//! `http/1.1`). Without iptables (loopback tests) the inbound listener is
//! bound on the endpoint address itself ([`OriginalDstMode::LocalAddr`]).

mod batched_write;
mod headers;
pub mod http;
pub mod lb;
mod orig_dst;
pub mod server;
pub mod sniff;
mod tcp;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use orig_dst::{OriginalDstMode, canonical, original_dst};

use crate::config::ConfigHandle;
use crate::drain::Drain;
use crate::metrics::{Metrics, Peers};
use crate::tls::IdentityStore;
use crate::workers::Workers;

/// Which way traffic flows through a listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From the local application to the mesh (15001).
    Outbound,
    /// From the mesh to the local application (15006).
    Inbound,
    /// Into the mesh through a gateway listener.
    Gateway,
}

/// The workload this proxy serves (metric labels).
#[derive(Clone, Debug)]
pub struct Workload {
    pub name: String,
    pub namespace: String,
}

impl Default for Workload {
    fn default() -> Self {
        Self {
            name: "unknown".into(),
            namespace: "unknown".into(),
        }
    }
}

/// Settings of the traffic path.
#[derive(Clone, Debug)]
pub struct ProxySettings {
    pub workload: Workload,
    /// How long to wait for a connection's first bytes before treating it
    /// as opaque TCP.
    pub sniff_timeout: Duration,
    pub original_dst: OriginalDstMode,
    /// Where listeners accept and connections run.
    pub workers: Workers,
}

impl Default for ProxySettings {
    fn default() -> Self {
        Self {
            workload: Workload::default(),
            sniff_timeout: Duration::from_secs(5),
            original_dst: OriginalDstMode::SocketOption,
            workers: Workers::default(),
        }
    }
}

/// Everything the traffic path shares.
#[derive(Debug)]
pub struct Proxy {
    pub config: ConfigHandle,
    pub identity: Arc<IdentityStore>,
    pub pools: Arc<upstream::Pools>,
    pub outstanding: lb::Outstanding,
    pub metrics: Arc<Metrics>,
    pub drain: Drain,
    pub settings: ProxySettings,
}

impl Proxy {
    pub fn new(
        config: ConfigHandle,
        identity: Arc<IdentityStore>,
        metrics: Arc<Metrics>,
        drain: Drain,
        settings: ProxySettings,
    ) -> Arc<Self> {
        Arc::new(Self {
            config,
            pools: Arc::new(upstream::Pools::new(
                identity.clone(),
                settings.workers.count(),
            )),
            identity,
            outstanding: lb::Outstanding::default(),
            metrics,
            drain,
            settings,
        })
    }

    /// The peer labels of Istio's metrics for traffic on `down` to
    /// `service`; `upstream_peer` is the SPIFFE ID the upstream presented
    /// (outbound and gateway traffic over mTLS).
    fn peers(&self, down: &Downstream, service: &str, upstream_peer: Option<&str>) -> Peers {
        let own = self.identity.current().id_text.clone();
        let me = &self.settings.workload;
        let unknown = || "unknown".to_owned();
        let policy = |mtls: bool| if mtls { "mutual_tls" } else { "none" }.to_owned();
        match down.direction {
            Direction::Inbound => Peers {
                reporter: "destination".into(),
                source_workload: unknown(),
                source_workload_namespace: down.peer_id.as_deref().map_or_else(unknown, ns_of),
                source_principal: down.peer_id.clone().unwrap_or_else(unknown),
                destination_workload: me.name.clone(),
                destination_workload_namespace: me.namespace.clone(),
                destination_principal: if down.peer_id.is_some() {
                    own
                } else {
                    unknown()
                },
                destination_service: service.to_owned(),
                connection_security_policy: policy(down.peer_id.is_some()),
            },
            Direction::Outbound | Direction::Gateway => Peers {
                reporter: "source".into(),
                source_workload: me.name.clone(),
                source_workload_namespace: me.namespace.clone(),
                source_principal: if upstream_peer.is_some() {
                    own
                } else {
                    unknown()
                },
                destination_workload: unknown(),
                destination_workload_namespace: upstream_peer.map_or_else(unknown, ns_of),
                destination_principal: upstream_peer.map_or_else(unknown, str::to_owned),
                destination_service: service.to_owned(),
                connection_security_policy: policy(upstream_peer.is_some()),
            },
        }
    }
}

/// The namespace of a SPIFFE ID (`unknown` when it is not one).
fn ns_of(principal: &str) -> String {
    crate::tls::SpiffeId::parse(principal)
        .and_then(|id| id.namespace_and_account().map(|(ns, _)| ns.to_owned()))
        .unwrap_or_else(|| "unknown".into())
}

/// What is known of a downstream connection.
#[derive(Debug)]
pub struct Downstream {
    pub direction: Direction,
    pub peer: SocketAddr,
    /// The address the connection was accepted on.
    pub local: SocketAddr,
    pub original_dst: SocketAddr,
    /// The verified SPIFFE ID of an mTLS client.
    pub peer_id: Option<String>,
    /// TLS was terminated here.
    pub tls: bool,
    /// The request metric series this connection's requests used.
    pub series: crate::metrics::SeriesCache,
}
