//! Configuration: standard Envoy v3 resources (Listener,
//! RouteConfiguration, Cluster, ClusterLoadAssignment, Secret) as weftd
//! generates them, compiled into the immutable [`Snapshot`] the proxy
//! routes with.
//!
//! * [`Resources`]: the raw set, updated by delta or state-of-the-world.
//! * [`Snapshot::build`]: pure validation + compilation; errors name the
//!   type, resource and field (the NACK message).
//! * [`ConfigHandle`]: the live snapshot, swapped atomically; the last
//!   good one stays when an update fails.
//! * [`bootstrap`]: a static file of the same resources.

pub mod bootstrap;
mod cluster;
mod error;
mod handle;
mod listener;
pub mod model;
mod resources;
mod route;
mod secret;
mod snapshot;

pub use cluster::service_of;
pub use error::ConfigError;
pub use handle::ConfigHandle;
pub use resources::{Any, Resources, type_url};
pub use snapshot::Snapshot;

/// Name of the SDS secret of the proxy's own workload certificate (it
/// comes from the mesh CA, never over xDS).
pub const WORKLOAD_CERT: &str = "default";
/// Name of the SDS secret holding the mesh trust bundle.
pub const ROOT_CA: &str = "ROOTCA";
