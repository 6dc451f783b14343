//! The Gateway API controller: for every `Gateway` of one of Weft's classes
//! (by default `weft` and `istio`, so YAML written for Istio works) weftd
//! provisions the gateway proxy (ServiceAccount, Deployment, Service) and
//! keeps the standard status on GatewayClass, Gateway and HTTPRoute.
//!
//! - [`render`]: Gateway → its objects (pure, golden-tested).
//! - [`listeners`], [`status`]: conditions and reasons of the Gateway API
//!   spec (pure, table-tested), over the plain-data [`world::World`].
//! - [`controller`]: the thin glue: watches, server-side apply, status
//!   patches only when they differ. Entry points: [`run`], [`run_until`].

pub mod conditions;
pub mod controller;
pub mod listeners;
pub mod plan;
pub mod render;
pub mod settings;
pub mod status;
pub mod world;

#[cfg(test)]
mod golden_tests;
#[cfg(test)]
mod status_tests;

pub use controller::{Error, run, run_until};
pub use settings::{ClassSetting, GatewaySettings, ProxyTemplate, Readiness};
