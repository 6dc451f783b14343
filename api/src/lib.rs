//! Weft's API: the `weft.dev` lifecycle resources, the Istio-compatible
//! policy resources and the Gateway API resources Weft reads.
//!
//! This crate holds types, schemas, defaults and validation helpers, and
//! behind features the pieces the operator and weftd both run: the
//! Kubernetes client (`client`), CA generation (`cacerts`) and log set-up
//! (`logging`).

pub mod cacerts;
#[cfg(feature = "client")]
pub mod client;
pub mod crd;
pub mod documents;
pub mod gateway;
pub mod injection;
pub mod istio;
pub mod kinds;
#[cfg(feature = "logging")]
pub mod logging;
pub mod proxy_bootstrap;
pub mod validate;
pub mod validator;
pub mod weft;
