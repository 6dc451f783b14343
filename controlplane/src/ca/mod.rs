//! The mesh CA: proxies send a CSR and their pod's projected
//! service-account token; weftd reviews the token ([`token`]), checks that
//! the CSR asks for exactly that service account's SPIFFE ID ([`csr`]) and
//! signs it with the mesh's signing certificate ([`authority`]). The gRPC
//! glue is in [`service`]; counters in [`metrics`].

pub mod authority;
pub mod csr;
pub mod metrics;
pub mod service;
pub mod token;

pub use authority::{Authority, AuthorityError, CaFiles, LayoutError, read_dir};
pub use metrics::{CaMetrics, CaMetricsSnapshot};
pub use service::{CaError, CaPolicy, CertificateServer, pb};
pub use token::{KubeTokenReviewer, TokenReviewer};
