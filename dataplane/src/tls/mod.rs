//! TLS for the proxy: rustls 0.23 with ring, TLS 1.3 only.
//!
//! * [`WorkloadIdentity`] / [`IdentityStore`]: the SPIFFE workload
//!   certificate and trust bundle, swapped live.
//! * Mesh mTLS: clients verify the peer chain against the trust bundle and
//!   the SPIFFE ID expected for the destination; servers require a client
//!   certificate from the trust domain ([`verify`]).
//! * [`ServingCert`]: gateway certificates from SDS secrets, chosen by SNI.

mod identity;
mod serving;
pub mod spiffe;
pub mod verify;

pub use identity::{
    ALPN_H2, ALPN_HTTP1, ALPN_TCP, IdentityState, IdentityStore, WorkloadIdentity, mesh_server_name,
};
pub use serving::{ServingCert, terminate_config};
pub use spiffe::SpiffeId;

/// One error enum for TLS material and configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{what}: not valid PEM: {reason}")]
    Pem { what: &'static str, reason: String },
    #[error("the certificate chain is empty")]
    EmptyChain,
    #[error("the workload certificate carries no single spiffe:// URI SAN")]
    NoSpiffeId,
    #[error("trust bundle: {0}")]
    TrustBundle(String),
    #[error("private key: {0}")]
    Key(String),
    #[error("rustls: {0}")]
    Rustls(#[source] rustls::Error),
}

impl TlsError {
    pub fn label(&self) -> &'static str {
        match self {
            Self::Pem { .. } => "pem",
            Self::EmptyChain => "empty_chain",
            Self::NoSpiffeId => "no_spiffe_id",
            Self::TrustBundle(_) => "trust_bundle",
            Self::Key(_) => "key",
            Self::Rustls(_) => "rustls",
        }
    }
}
