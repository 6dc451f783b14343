//! The workload certificate from weftd's mesh CA
//! (`weft.ca.v1.CertificateService`, `api/proto/weft/ca/v1/ca.proto`).
//!
//! The proxy generates a key in memory (never written to disk), sends a
//! CSR for `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`
//! to weftd's TLS port (15012) with the pod's projected service-account
//! token as `authorization: Bearer …` (the file is re-read on every call:
//! the kubelet rotates it), and verifies weftd's serving certificate
//! against the mesh root (`WEFT_ROOT_CERT_PATH`). The answer is checked
//! (SAN, public key, validity) and handed out as a [`WorkloadCert`].
//! [`renewal::keep_renewed`] renews it at half-life, retrying with backoff.
//!
//! - [`cert`]: key + CSR, and the checked answer (pure).
//! - [`client`]: the gRPC call (glue).
//! - [`renewal`]: fetch-with-retry and the renewal loop.

pub mod cert;
pub mod client;
pub mod renewal;

pub use cert::{WorkloadCert, spiffe_id};
pub use client::{CaClient, CaClientConfig};

/// Generated protobuf and tonic client of `api/proto/weft/ca/v1/ca.proto`.
#[allow(missing_debug_implementations, clippy::all)]
pub mod pb {
    tonic::include_proto!("weft.ca.v1");
}

/// Why no certificate was obtained.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error(
        "reading the mesh root certificate {path}: {detail}; is the weft-ca-root-cert ConfigMap mounted (WEFT_ROOT_CERT_PATH)?"
    )]
    RootCert { path: String, detail: String },
    #[error(
        "reading the service-account token {path}: {detail}; is the projected token volume mounted (WEFT_TOKEN_PATH)?"
    )]
    Token { path: String, detail: String },
    #[error(transparent)]
    Channel(#[from] crate::control_channel::ChannelError),
    #[error("weftd refused the certificate request ({code:?}): {message}")]
    Refused { code: tonic::Code, message: String },
    #[error("weftd's answer is unusable: {0}")]
    BadResponse(String),
    #[error("generating the workload key or CSR: {0}")]
    Key(String),
}

impl CaError {
    /// Stable short label (logs, metrics).
    pub fn label(&self) -> &'static str {
        match self {
            Self::RootCert { .. } => "RootCert",
            Self::Token { .. } => "Token",
            Self::Channel(_) => "Connect",
            Self::Refused { .. } => "Refused",
            Self::BadResponse(_) => "BadResponse",
            Self::Key(_) => "Key",
        }
    }
}
