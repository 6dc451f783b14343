//! Istio-compatible APIs Weft reads, so Istio users can bring their YAML.
//! Served at `v1` and `v1beta1` with the same schema (see [`crate::crd`]).

pub mod common;
pub mod networking;
pub mod security;
