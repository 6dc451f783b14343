//! weftd's admission webhooks on 15017: sidecar injection (`/inject`,
//! around the pure [`crate::inject`] core) and validation of Istio objects
//! (`/validate`, around [`crate::validation`]), plus the webhook
//! registrations the operator applies ([`config`]).
//!
//! Wiring (from `run.rs`):
//! ```no_run
//! # async fn run(client: kube::Client) -> Result<(), weftd::webhook::WebhookError> {
//! use std::sync::Arc;
//! use weftd::inject::InjectSettings;
//! use weftd::webhook::{WebhookServer, certs};
//! let settings = InjectSettings::new("1-2", "weft-system", "weft.local/weft-proxy:dev");
//! let (_settings_tx, settings_rx) = tokio::sync::watch::channel(settings);
//! let tls = certs::server_config_from_files("tls.crt".as_ref(), "tls.key".as_ref())?;
//! let server = WebhookServer::new(settings_rx, Arc::new(client), tls);
//! server
//!     .bind_and_serve(([0, 0, 0, 0], 15017).into(), std::future::pending())
//!     .await
//! # }
//! ```

pub mod admission;
pub mod certs;
pub mod config;
pub mod server;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use server::{NamespaceSource, WEBHOOK_PORT, WebhookServer};

/// Errors of the webhook server.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("binding the webhook port {addr}: {source}; is another weftd running here?")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("reading {path}: {source}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("webhook serving certificate: {0}: expected PEM")]
    Pem(String),
    #[error("webhook TLS configuration: {0}")]
    Tls(#[source] rustls::Error),
    #[error("reading namespace {name} from the API server: {source}")]
    Namespace {
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("namespace {0} is not in weftd's cache yet: retry in a moment")]
    NamespaceUnknown(String),
}

impl WebhookError {
    /// A stable short label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Bind { .. } => "Bind",
            Self::ReadFile { .. } => "ReadFile",
            Self::Pem(_) => "Pem",
            Self::Tls(_) => "Tls",
            Self::Namespace { .. } => "Namespace",
            Self::NamespaceUnknown(_) => "NamespaceUnknown",
        }
    }
}
