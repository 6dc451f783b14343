//! weft-proxy: Weft's data plane.
//!
//! * [`config`]: Envoy v3 resources → immutable routing snapshot.
//! * [`tls`]: SPIFFE workload identity, mesh mTLS (TLS 1.3, rustls).
//! * [`proxy`]: sidecar listeners (15001 outbound, 15006 inbound), gateway
//!   listeners, protocol sniffing, HTTP and TCP proxying, pools, LB.
//! * [`admin`]: admin (15000), metrics (15090), health (15021) and app
//!   probes (15020).
//! * [`run`]: the entry points `main.rs` calls.

// Tests may unwrap (CONVENTIONS: not on input from users or the network).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod admin;
pub mod cli;
pub mod config;
pub mod drain;
pub mod metrics;
pub mod proxy;
pub mod run;
pub mod tls;
