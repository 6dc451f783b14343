//! Weft's API: the `weft.dev` lifecycle resources, the Istio-compatible
//! policy resources and the Gateway API resources Weft reads.
//!
//! This crate holds types, schemas, defaults and validation helpers only; it
//! has no client logic.

#[cfg(feature = "client")]
pub mod client;
pub mod crd;
pub mod documents;
pub mod gateway;
pub mod injection;
pub mod istio;
pub mod kinds;
pub mod proxy_bootstrap;
pub mod validate;
pub mod weft;
