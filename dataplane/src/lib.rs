//! weft-proxy: Weft's data plane.
//!
//! * [`config`]: Envoy v3 resources → immutable routing snapshot.
//! * [`tls`]: SPIFFE workload identity, mesh mTLS (TLS 1.3, rustls).
//! * [`proxy`]: sidecar listeners (15001 outbound, 15006 inbound), gateway
//!   listeners, protocol sniffing, HTTP and TCP proxying, pools, LB.
//! * [`admin`]: admin (15000), metrics (15090), health (15021) and app
//!   probes (15020).
//! * [`run`]: the entry points `main.rs` calls.
//! * [`workers`]: one single-threaded runtime per core, each with its own
//!   listening sockets and upstream pools.
//! * [`init`]: `weft-proxy init`, the pod's traffic capture (iptables).
//! * [`ca_client`]: the workload certificate from weftd's mesh CA, renewed
//!   at half-life.
//! * [`xds_client`]: the delta ADS stream to weftd over mTLS.
//! * [`connected`]: sidecar/gateway fed by weftd (CA + xDS) instead of
//!   static files.
//! * [`control_channel`]: the TLS channel to weftd (15012).
//! * [`backoff`]: retry/reconnect delays shared by the links to weftd.

// Tests may unwrap (CONVENTIONS: not on input from users or the network).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod admin;
pub mod backoff;
pub mod ca_client;
pub mod cli;
pub mod config;
pub mod connected;
pub mod control_channel;
pub mod drain;
pub mod init;
pub mod metrics;
pub mod proxy;
pub mod run;
pub mod tls;
pub mod workers;
pub mod xds_client;
