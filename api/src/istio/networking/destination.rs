//! Where traffic goes: a service host, optionally narrowed to a subset and a port.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::istio::common::PortSelector;

/// A service that traffic is sent to once a route matched.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Destination {
    /// Service name as known to the service registry: a Kubernetes short
    /// name (resolved in the rule's namespace), a FQDN, or a ServiceEntry host.
    #[schemars(length(max = 253))]
    pub host: String,
    /// Named subset of the service, defined in a DestinationRule for `host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    /// Port on the host to send to; needed only when the service exposes
    /// more than one port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
}
