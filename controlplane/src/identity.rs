//! Who a proxy is: its SPIFFE identity (taken from its mesh client
//! certificate, never from what it claims) and what weftd knows about its
//! workload.

use std::collections::BTreeMap;
use std::fmt;

/// `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    pub trust_domain: String,
    pub namespace: String,
    pub service_account: String,
}

/// Why a string is not a workload SPIFFE ID.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpiffeIdError {
    #[error("{0:?} is not a SPIFFE ID: it must start with spiffe://")]
    Scheme(String),
    #[error(
        "{0:?} is not a workload SPIFFE ID: want spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>"
    )]
    Path(String),
}

impl SpiffeId {
    /// Builds the ID of a service account.
    pub fn new(trust_domain: &str, namespace: &str, service_account: &str) -> Self {
        Self {
            trust_domain: trust_domain.to_owned(),
            namespace: namespace.to_owned(),
            service_account: service_account.to_owned(),
        }
    }

    /// Parses `spiffe://td/ns/<ns>/sa/<sa>`.
    pub fn parse(uri: &str) -> Result<Self, SpiffeIdError> {
        let rest = uri
            .strip_prefix("spiffe://")
            .ok_or_else(|| SpiffeIdError::Scheme(uri.to_owned()))?;
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            [td, "ns", ns, "sa", sa] if !td.is_empty() && !ns.is_empty() && !sa.is_empty() => {
                Ok(Self::new(td, ns, sa))
            }
            _ => Err(SpiffeIdError::Path(uri.to_owned())),
        }
    }

    /// The principal as Istio policies write it: `<td>/ns/<ns>/sa/<sa>`.
    pub fn principal(&self) -> String {
        format!(
            "{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "spiffe://{}", self.principal())
    }
}

/// What kind of xDS client is connected.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ProxyKind {
    /// A `weft-proxy` next to an application container.
    Sidecar,
    /// A `weft-proxy` running a gateway (Gateway API or Istio `Gateway`).
    Gateway,
    /// A proxyless gRPC client (gRPC's own xDS resolver), which asks for
    /// listeners by target name and has no ports of its own.
    Proxyless,
}

/// Everything translation needs to know about one proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyIdentity {
    /// The xDS node ID the proxy sent (for logs and the debug endpoint).
    pub node_id: String,
    /// The identity from its client certificate.
    pub id: SpiffeId,
    pub kind: ProxyKind,
    /// The pod's name, when weftd found the pod.
    pub pod: Option<String>,
    /// The pod's labels (selectors of policies and gateways match them).
    pub labels: BTreeMap<String, String>,
    /// Control-plane revision the proxy belongs to.
    pub revision: String,
    /// The pod's IP addresses (inbound listeners bind to them).
    pub ips: Vec<String>,
}

impl ProxyIdentity {
    /// The namespace the proxy runs in.
    pub fn namespace(&self) -> &str {
        &self.id.namespace
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_workload_ids() {
        let id = SpiffeId::parse("spiffe://cluster.local/ns/orders/sa/orders-svc").expect("valid");
        assert_eq!(id, SpiffeId::new("cluster.local", "orders", "orders-svc"));
        assert_eq!(id.principal(), "cluster.local/ns/orders/sa/orders-svc");
        assert_eq!(
            id.to_string(),
            "spiffe://cluster.local/ns/orders/sa/orders-svc"
        );
    }

    #[test]
    fn refuses_other_shapes() {
        for bad in [
            "cluster.local/ns/a/sa/b",
            "spiffe://cluster.local/ns/a",
            "spiffe://cluster.local/ns//sa/b",
            "spiffe:///ns/a/sa/b",
            "spiffe://td/ns/a/sa/b/extra",
        ] {
            assert!(SpiffeId::parse(bad).is_err(), "{bad} should be refused");
        }
    }
}
