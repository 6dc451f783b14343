//! `weft-proxy`, Weft's data plane.
//!
//! - [`init`]: `weft-proxy init`, the pod's traffic capture (iptables).

pub mod init;
