//! A reference from a security policy to the resource it attaches to, in the
//! style of the Gateway API's policy attachment.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Names the resource a policy attaches to instead of selecting pods by label:
/// a `Service`, a `ServiceEntry`, a Gateway API `Gateway` or a `GatewayClass`
/// in the policy's own namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "(self.kind == 'Service' && (!has(self.group) || self.group == '' || self.group == 'core')) || (self.kind == 'ServiceEntry' && has(self.group) && self.group == 'networking.istio.io') || (self.kind in ['Gateway', 'GatewayClass'] && has(self.group) && self.group == 'gateway.networking.k8s.io')",
        "message": "targetRef must name a core Service, a networking.istio.io ServiceEntry, or a gateway.networking.k8s.io Gateway or GatewayClass"
    }
]))]
pub struct PolicyTargetReference {
    /// API group of the target; empty (or absent) means the core group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 253),
        regex(pattern = r"^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub group: Option<String>,

    /// Kind of the target, e.g. `Gateway` or `Service`.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")
    )]
    pub kind: String,

    /// Name of the target.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,

    /// Namespace of the target. Cross-namespace references are not supported,
    /// so this must be empty when set: the target lives in the policy's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 253),
        extend("x-kubernetes-validations" = [
            {
                "rule": "self.size() == 0",
                "message": "targetRef namespace must be empty: cross-namespace references are not supported"
            }
        ])
    )]
    pub namespace: Option<String>,
}

impl PolicyTargetReference {
    /// The group with the core group spelt as the empty string.
    pub fn canonical_group(&self) -> &str {
        match self.group.as_deref() {
            None | Some("core") => "",
            Some(group) => group,
        }
    }
}
