//! weft-operator: one `MeshInstallation` in, a running mesh out. Pure
//! cores ([`resolve`], [`ca`], [`render`], [`status`]) and thin edges
//! ([`apply`], [`controller`], [`leader`], [`server`]).

pub mod apply;
pub mod ca;
pub mod config;
pub mod contract;
pub mod controller;
pub mod labels;
pub mod leader;
pub mod metrics;
pub mod probe;
pub mod render;
pub mod resolve;
pub mod run;
pub mod server;
pub mod status;
