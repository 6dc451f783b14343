//! Gateway API v1 (standard channel) types, from the kube-rs `gateway-api`
//! crate, re-exported so every Weft crate names them from one place.

pub use gateway_api::apis::standard::{
    gatewayclasses, gateways, grpcroutes, httproutes, referencegrants,
};
