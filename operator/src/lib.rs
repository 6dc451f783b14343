//! weft-operator: one `MeshInstallation` in, a running mesh out. Pure
//! cores ([`resolve`], [`ca`], [`render`], [`status`]) and thin edges
//! ([`apply`], [`controller`], [`leader`], [`server`]).

pub mod apply;
pub mod ca;
pub mod contract;
pub mod labels;
pub mod metrics;
pub mod render;
pub mod resolve;
pub mod status;
