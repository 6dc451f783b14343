//! `weft-proxy`, Weft's data plane.
//!
//! - [`init`]: `weft-proxy init`, the pod's traffic capture (iptables).
//! - [`ca_client`]: the workload certificate from weftd's mesh CA, renewed
//!   at half-life.
//! - [`backoff`]: reconnect/retry delays shared by the links to weftd.

pub mod backoff;
pub mod ca_client;
pub mod init;
