//! The `Node` the proxy presents on its xDS stream, in the form weftd
//! reads (`controlplane/src/xds/node.rs`, Istio's conventions): id
//! `<sidecar|router>~<ip>~<pod>.<ns>~<ns>.svc.<domain>` and metadata
//! `NAMESPACE`, `NAME`, `SERVICE_ACCOUNT`, `INSTANCE_IPS`, `REVISION`.
//! On mTLS, weftd takes namespace and service account from the client
//! certificate; the metadata must agree with it.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};

/// Whether the proxy is a sidecar or a gateway (`router` in the node id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyMode {
    Sidecar,
    Gateway,
}

/// What the pod tells the proxy about itself (downward API env).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    pub mode: ProxyMode,
    pub pod: String,
    pub namespace: String,
    pub service_account: String,
    pub ips: Vec<String>,
    pub revision: Option<String>,
    pub cluster_domain: String,
}

fn string(v: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(v.to_owned())),
    }
}

impl NodeInfo {
    /// `sidecar~10.1.2.3~echo-5d.shop~shop.svc.cluster.local`.
    pub fn node_id(&self) -> String {
        let kind = match self.mode {
            ProxyMode::Sidecar => "sidecar",
            ProxyMode::Gateway => "router",
        };
        format!(
            "{kind}~{}~{}.{}~{}.svc.{}",
            self.ips.first().map(String::as_str).unwrap_or(""),
            self.pod,
            self.namespace,
            self.namespace,
            self.cluster_domain
        )
    }

    pub fn to_node(&self) -> Node {
        let mut fields: HashMap<String, Value> = HashMap::new();
        fields.insert("NAMESPACE".into(), string(&self.namespace));
        fields.insert("NAME".into(), string(&self.pod));
        fields.insert("SERVICE_ACCOUNT".into(), string(&self.service_account));
        if !self.ips.is_empty() {
            fields.insert("INSTANCE_IPS".into(), string(&self.ips.join(",")));
        }
        if let Some(rev) = &self.revision {
            fields.insert("REVISION".into(), string(rev));
        }
        Node {
            id: self.node_id(),
            cluster: format!("{}.{}", self.pod, self.namespace),
            metadata: Some(Struct { fields }),
            user_agent_name: "weft-proxy".into(),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_id_and_metadata_as_weftd_reads_them() {
        let info = NodeInfo {
            mode: ProxyMode::Sidecar,
            pod: "echo-5d".into(),
            namespace: "shop".into(),
            service_account: "echo".into(),
            ips: vec!["10.1.2.3".into()],
            revision: Some("1-2".into()),
            cluster_domain: "cluster.local".into(),
        };
        let node = info.to_node();
        assert_eq!(
            node.id,
            "sidecar~10.1.2.3~echo-5d.shop~shop.svc.cluster.local"
        );
        let meta = node.metadata.expect("metadata");
        let get = |k: &str| match meta.fields.get(k).and_then(|v| v.kind.clone()) {
            Some(Kind::StringValue(s)) => s,
            other => panic!("{k}: {other:?}"),
        };
        assert_eq!(get("NAMESPACE"), "shop");
        assert_eq!(get("SERVICE_ACCOUNT"), "echo");
        assert_eq!(get("NAME"), "echo-5d");
        assert_eq!(get("INSTANCE_IPS"), "10.1.2.3");
        assert_eq!(get("REVISION"), "1-2");
        let gw = NodeInfo {
            mode: ProxyMode::Gateway,
            ..info
        };
        assert!(gw.node_id().starts_with("router~"));
    }
}
