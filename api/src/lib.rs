//! Weft's API: the `weft.dev` lifecycle resources, the Istio-compatible
//! policy resources and the Gateway API resources Weft reads.
//!
//! This crate holds types, schemas, defaults and validation helpers, and
//! the pieces the operator and weftd both use: the `cacerts` layout (with
//! feature `cacerts`, its checks and a generated CA), the webhook
//! registrations (`injection`, `validator`), the proxy's bootstrap
//! (`proxy_bootstrap`), the Kubernetes client (feature `client`) and log
//! set-up (feature `logging`).

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
