//! The xDS server: Envoy's aggregated discovery service, state of the
//! world and delta, for sidecars, gateways and proxyless gRPC clients.
//!
//! - [`source`]: where configuration comes from ([`ConfigSource`]).
//! - [`debounce`]: bursts of changes become one push (quiet period,
//!   bounded delay).
//! - [`subscription`], [`sotw`], [`delta`]: the pure per-type protocol
//!   state (subscriptions, versions, nonces, ACK/NACK).
//! - [`node`], [`peer`]: who the proxy is (certificate on 15012, node
//!   metadata on the plaintext dev port 15010).
//! - [`status`]: per-proxy status for the debug endpoint.
//! - [`protocol`]: the two protocols as the one stream loop drives them.
//! - [`server`]: the tonic service tying them together.

pub mod debounce;
pub mod delta;
pub mod index_source;
pub mod node;
pub mod peer;
pub mod protocol;
pub mod server;
pub mod sotw;
pub mod source;
pub mod status;
pub mod subscription;

pub use debounce::DebounceConfig;
pub use index_source::IndexSource;
pub use peer::PeerSpiffeId;
pub use server::{AdsService, Authentication, XdsConfig, XdsServer};
pub use source::{ConfigSource, StaticSource};
pub use status::{ProxyRegistry, ProxyStatus};

/// Errors of the xDS listeners.
#[derive(Debug, thiserror::Error)]
pub enum XdsError {
    #[error("xDS listener: {0}: is another process using the port?")]
    Listen(#[source] std::io::Error),
    #[error("xDS server failed: {0}")]
    Serve(#[source] tonic::transport::Error),
}

impl XdsError {
    /// Stable short label (logs, metrics).
    pub fn label(&self) -> &'static str {
        match self {
            Self::Listen(_) => "Listen",
            Self::Serve(_) => "Serve",
        }
    }
}
