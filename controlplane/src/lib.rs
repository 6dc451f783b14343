//! `weftd`, Weft's per-revision control plane: it watches Kubernetes, keeps
//! a pure in-memory [`index`], [`translate`]s it into Envoy v3 resources per
//! proxy, serves them over [`xds`], signs workload certificates ([`ca`]),
//! injects sidecars ([`inject`]), programs Gateway API gateways
//! ([`gateway`]) and serves its state for debugging ([`debug`]).
//!
//! The cores (index, translation, CSR checks, injection patches) are plain
//! functions over plain data; the watches, gRPC and HTTP servers are thin
//! glue around them.

pub mod ca;
pub mod config;
pub mod debug;
pub mod gateway;
pub mod identity;
pub mod index;
pub mod inject;
pub mod metrics;
pub mod resources;
pub mod run;
pub mod tls;
pub mod translate;
pub mod validation;
pub mod webhook;
pub mod xds;
