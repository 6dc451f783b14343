//! Helpers for Weft's end-to-end tests against the local clusters that
//! `e2e/cluster` starts (`make cluster-up CLUSTER=a|b`).
//!
//! A test typically does:
//!
//! ```no_run
//! # async fn t() -> Result<(), weft_e2e::Error> {
//! use weft_e2e::{Cluster, TestNamespace, echo};
//! let cluster = Cluster::a().await?;
//! let ns = TestNamespace::create(&cluster, "echo").await?;
//! echo::deploy(&ns, "echo", "v1").await?;
//! let run = echo::run_client(&ns, "probe", &["client", "--url", "http://echo:8080/"]).await?;
//! run.assert_success()?;
//! ns.cleanup().await?;
//! # Ok(()) }
//! ```
//!
//! Every wait watches (or polls) with a timeout and fails with a message
//! naming what it waited for; none sleeps blindly.

// Errors here carry kube::Error plus context for the failure message; they
// are built once per failing test, never on a hot path.
#![allow(clippy::result_large_err)]

pub mod certs;
pub mod cluster;
pub mod crds;
pub mod echo;
pub mod kubectl;
pub mod namespace;
pub mod pods;
pub mod wait;

pub use cluster::{Cluster, pinned_kubernetes_version, repo_root};
pub use kubectl::Kubectl;
pub use namespace::TestNamespace;
pub use pods::PodRun;

/// Any helper's error, for tests returning `Result<(), weft_e2e::Error>`.
/// Every module error converts into it with `?`; variants are boxed so the
/// `Result` stays small. Its `Debug` (what a failing test prints) is the
/// message and its sources.
#[derive(thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Cluster(Box<cluster::ClusterError>),
    #[error(transparent)]
    Namespace(Box<namespace::NamespaceError>),
    #[error(transparent)]
    Wait(Box<wait::WaitError>),
    #[error(transparent)]
    Pod(Box<pods::PodError>),
    #[error(transparent)]
    Kubectl(Box<kubectl::KubectlError>),
    #[error(transparent)]
    Echo(Box<echo::EchoError>),
    #[error(transparent)]
    Cert(Box<certs::CertError>),
    #[error("Kubernetes API call failed: {0}")]
    Kube(Box<kube::Error>),
    #[error("assertion failed: {0}")]
    Assert(String),
}

macro_rules! boxed_from {
    ($($variant:ident($ty:ty)),* $(,)?) => {$(
        impl From<$ty> for Error {
            fn from(e: $ty) -> Self {
                Error::$variant(Box::new(e))
            }
        }
    )*};
}

boxed_from!(
    Cluster(cluster::ClusterError),
    Namespace(namespace::NamespaceError),
    Wait(wait::WaitError),
    Pod(pods::PodError),
    Kubectl(kubectl::KubectlError),
    Echo(echo::EchoError),
    Cert(certs::CertError),
    Kube(kube::Error),
);

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")?;
        let mut source = std::error::Error::source(self);
        while let Some(s) = source {
            write!(f, "\n  caused by: {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

/// Fails the test with `message` unless `condition` holds (for `?` in tests).
pub fn ensure(condition: bool, message: impl FnOnce() -> String) -> Result<(), Error> {
    if condition {
        Ok(())
    } else {
        Err(Error::Assert(message()))
    }
}

/// Logs of the helpers to the test's stderr (`RUST_LOG` overrides `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .with_ansi(false)
        .try_init();
}
