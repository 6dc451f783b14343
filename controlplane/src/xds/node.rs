//! Who is on the other end of an xDS stream. On the mTLS port (15012) the
//! namespace and service account come from the client certificate's SPIFFE
//! ID and nothing the proxy claims can change them; the node metadata only
//! adds what a certificate does not carry (pod name, labels, IPs, kind).
//! On the plaintext dev port (15010) the metadata is all there is.
//!
//! Metadata keys follow Istio's so existing bootstraps work: `NAMESPACE`,
//! `SERVICE_ACCOUNT`, `NAME` (pod), `LABELS` (struct), `INSTANCE_IPS`
//! (comma-separated), `GENERATOR=grpc` (proxyless gRPC), `REVISION`; node
//! IDs of the form `sidecar~<ip>~<pod>.<ns>~<ns>.svc.cluster.local`
//! (`router~…` for gateways) fill in what the metadata lacks.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};

use crate::identity::{ProxyIdentity, ProxyKind, SpiffeId, SpiffeIdError};

/// Why a stream's identity could not be established.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NodeError {
    #[error("the first xDS request carried no node: the proxy's bootstrap must set node.id")]
    NoNode,
    #[error(
        "node {node:?} sent no NAMESPACE in its metadata and its id is not <type>~<ip>~<pod>.<ns>~…: plaintext xDS needs one of them"
    )]
    NoNamespace { node: String },
    #[error(
        "no client certificate on the xDS stream of node {node:?}: connect with the mesh certificate (port 15012 requires mTLS)"
    )]
    NoCertificate { node: String },
    #[error("client certificate of node {node:?} has no usable SPIFFE ID: {reason}")]
    BadCertificate { node: String, reason: String },
    #[error(
        "node {node:?} claims {claimed} in its metadata but its certificate is {certified}: fix the proxy's bootstrap"
    )]
    ClaimMismatch {
        node: String,
        claimed: String,
        certified: String,
    },
    #[error(transparent)]
    Spiffe(#[from] SpiffeIdError),
}

impl NodeError {
    /// Stable short label (logs, metrics).
    pub fn label(&self) -> &'static str {
        match self {
            Self::NoNode => "NoNode",
            Self::NoNamespace { .. } => "NoNamespace",
            Self::NoCertificate { .. } => "NoCertificate",
            Self::BadCertificate { .. } => "BadCertificate",
            Self::ClaimMismatch { .. } => "ClaimMismatch",
            Self::Spiffe(_) => "BadSpiffeId",
        }
    }
}

/// What the node says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeClaims {
    pub node_id: String,
    pub namespace: Option<String>,
    pub service_account: Option<String>,
    pub pod: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub ips: Vec<String>,
    pub kind: ProxyKind,
    pub revision: Option<String>,
}

fn string(v: &Value) -> Option<String> {
    match &v.kind {
        Some(Kind::StringValue(s)) => Some(s.clone()),
        _ => None,
    }
}

fn field(meta: Option<&Struct>, key: &str) -> Option<String> {
    meta.and_then(|m| m.fields.get(key))
        .and_then(string)
        .filter(|s| !s.is_empty())
}

impl NodeClaims {
    /// Reads the node of a stream's first request.
    pub fn from_node(node: Option<&Node>) -> Result<Self, NodeError> {
        let node = node.ok_or(NodeError::NoNode)?;
        let meta = node.metadata.as_ref();
        // <type>~<ip>~<pod>.<ns>~<ns>.svc.<domain>
        let parts: Vec<&str> = node.id.split('~').collect();
        let (id_kind, id_ip, id_pod_ns) = match parts.as_slice() {
            [kind, ip, pod_ns, _] => (Some(*kind), Some(*ip), pod_ns.split_once('.')),
            _ => (None, None, None),
        };
        let kind = if field(meta, "GENERATOR").as_deref() == Some("grpc") {
            ProxyKind::Proxyless
        } else if id_kind == Some("router") {
            ProxyKind::Gateway
        } else {
            ProxyKind::Sidecar
        };
        let labels = match meta.and_then(|m| m.fields.get("LABELS")).map(|v| &v.kind) {
            Some(Some(Kind::StructValue(s))) => s
                .fields
                .iter()
                .filter_map(|(k, v)| string(v).map(|v| (k.clone(), v)))
                .collect(),
            _ => BTreeMap::new(),
        };
        let mut ips: Vec<String> = field(meta, "INSTANCE_IPS")
            .map(|s| {
                s.split(',')
                    .map(|ip| ip.trim().to_owned())
                    .filter(|ip| !ip.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if ips.is_empty() {
            ips.extend(id_ip.filter(|ip| !ip.is_empty()).map(str::to_owned));
        }
        Ok(Self {
            node_id: node.id.clone(),
            namespace: field(meta, "NAMESPACE").or(id_pod_ns.map(|(_, ns)| ns.to_owned())),
            service_account: field(meta, "SERVICE_ACCOUNT"),
            pod: field(meta, "NAME").or(id_pod_ns.map(|(pod, _)| pod.to_owned())),
            labels,
            ips,
            kind,
            revision: field(meta, "REVISION"),
        })
    }

    /// The identity of a plaintext client: taken from its claims.
    pub fn into_claimed_identity(
        self,
        trust_domain: &str,
        revision: &str,
    ) -> Result<ProxyIdentity, NodeError> {
        let namespace = self
            .namespace
            .clone()
            .ok_or_else(|| NodeError::NoNamespace {
                node: self.node_id.clone(),
            })?;
        let sa = self
            .service_account
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let id = SpiffeId::new(trust_domain, &namespace, &sa);
        Ok(self.into_identity(id, revision))
    }

    /// The identity of an mTLS client: namespace and service account from
    /// its certificate; a claim that contradicts it is refused.
    pub fn into_certified_identity(
        self,
        certified: SpiffeId,
        revision: &str,
    ) -> Result<ProxyIdentity, NodeError> {
        let ns_differs = self
            .namespace
            .as_ref()
            .is_some_and(|ns| *ns != certified.namespace);
        let sa_differs = self
            .service_account
            .as_ref()
            .is_some_and(|sa| *sa != certified.service_account);
        if ns_differs || sa_differs {
            return Err(NodeError::ClaimMismatch {
                node: self.node_id.clone(),
                claimed: format!(
                    "ns/{}/sa/{}",
                    self.namespace.as_deref().unwrap_or(&certified.namespace),
                    self.service_account
                        .as_deref()
                        .unwrap_or(&certified.service_account)
                ),
                certified: certified.to_string(),
            });
        }
        Ok(self.into_identity(certified, revision))
    }

    fn into_identity(self, id: SpiffeId, revision: &str) -> ProxyIdentity {
        ProxyIdentity {
            node_id: self.node_id,
            id,
            kind: self.kind,
            pod: self.pod,
            labels: self.labels,
            revision: self.revision.unwrap_or_else(|| revision.to_owned()),
            ips: self.ips,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value {
            kind: Some(Kind::StringValue(v.to_owned())),
        }
    }

    fn node(id: &str, meta: &[(&str, Value)]) -> Node {
        Node {
            id: id.to_owned(),
            metadata: Some(Struct {
                fields: meta
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn metadata_and_node_id() {
        let labels = Value {
            kind: Some(Kind::StructValue(Struct {
                fields: [("app".to_owned(), s("echo"))].into_iter().collect(),
            })),
        };
        let n = node(
            "sidecar~10.1.2.3~echo-5d.shop~shop.svc.cluster.local",
            &[("SERVICE_ACCOUNT", s("echo")), ("LABELS", labels)],
        );
        let c = NodeClaims::from_node(Some(&n)).expect("claims");
        assert_eq!(c.namespace.as_deref(), Some("shop"));
        assert_eq!(c.pod.as_deref(), Some("echo-5d"));
        assert_eq!(c.ips, ["10.1.2.3"]);
        assert_eq!(c.kind, ProxyKind::Sidecar);
        assert_eq!(c.labels.get("app").map(String::as_str), Some("echo"));
        let id = c
            .into_claimed_identity("cluster.local", "1-0")
            .expect("identity");
        assert_eq!(id.id.to_string(), "spiffe://cluster.local/ns/shop/sa/echo");
        assert_eq!(id.revision, "1-0");

        let g = node(
            "anything",
            &[("GENERATOR", s("grpc")), ("NAMESPACE", s("t"))],
        );
        let c = NodeClaims::from_node(Some(&g)).expect("claims");
        assert_eq!(c.kind, ProxyKind::Proxyless);
        let id = c.into_claimed_identity("td", "r").expect("identity");
        assert_eq!(id.id.service_account, "default");

        let gw = node(
            "router~10.0.0.1~gw-1.ingress~ingress.svc.cluster.local",
            &[],
        );
        assert_eq!(
            NodeClaims::from_node(Some(&gw)).expect("claims").kind,
            ProxyKind::Gateway
        );
    }

    #[test]
    fn refusals() {
        assert_eq!(NodeClaims::from_node(None), Err(NodeError::NoNode));
        let bare = NodeClaims::from_node(Some(&node("x", &[]))).expect("claims");
        assert!(matches!(
            bare.into_claimed_identity("td", "r"),
            Err(NodeError::NoNamespace { .. })
        ));
        let cert = SpiffeId::new("td", "shop", "echo");
        let liar =
            NodeClaims::from_node(Some(&node("x", &[("NAMESPACE", s("bank"))]))).expect("claims");
        assert!(matches!(
            liar.into_certified_identity(cert.clone(), "r"),
            Err(NodeError::ClaimMismatch { .. })
        ));
        // the certificate decides; metadata may be silent
        let quiet = NodeClaims::from_node(Some(&node("x", &[]))).expect("claims");
        let id = quiet
            .into_certified_identity(cert.clone(), "r")
            .expect("identity");
        assert_eq!(id.id, cert);
    }
}
