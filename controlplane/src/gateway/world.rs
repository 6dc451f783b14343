//! The cluster state the gateway controller decides from, as plain data:
//! built from the watches by the glue, from literals in tests.

use std::collections::{BTreeMap, BTreeSet};

use weft_api::gateway::gatewayclasses::GatewayClass;
use weft_api::gateway::gateways::Gateway;
use weft_api::gateway::httproutes::HttpRoute;
use weft_api::gateway::referencegrants::ReferenceGrant;

/// `(namespace, name)`.
pub type Key = (String, String);

pub fn key(namespace: &str, name: &str) -> Key {
    (namespace.to_owned(), name.to_owned())
}

/// What status needs to know about a Service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceFacts {
    pub ports: Vec<i32>,
    pub cluster_ip: Option<String>,
    /// `status.loadBalancer.ingress`: `(type, value)` with type `IPAddress`
    /// or `Hostname`.
    pub ingress: Vec<(String, String)>,
}

/// What status needs to know about a gateway's Deployment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeploymentFacts {
    pub available_replicas: i32,
}

/// Everything the gateway statuses depend on.
#[derive(Clone, Debug, Default)]
pub struct World {
    pub classes: BTreeMap<String, GatewayClass>,
    pub gateways: Vec<Gateway>,
    pub routes: Vec<HttpRoute>,
    /// Namespace name → its labels.
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
    pub services: BTreeMap<Key, ServiceFacts>,
    /// Secrets that exist (only their names: Secret data never enters here).
    pub secrets: BTreeSet<Key>,
    pub grants: Vec<ReferenceGrant>,
    pub deployments: BTreeMap<Key, DeploymentFacts>,
}

/// One side of a reference: `group` (`""` for core), `kind`, namespace.
#[derive(Clone, Copy, Debug)]
pub struct RefEnd<'a> {
    pub group: &'a str,
    pub kind: &'a str,
    pub namespace: &'a str,
}

impl World {
    /// Whether a ReferenceGrant in `to.namespace` lets `from` refer to the
    /// `to` object named `name`. Same-namespace references need no grant.
    pub fn reference_allowed(&self, from: RefEnd<'_>, to: RefEnd<'_>, name: &str) -> bool {
        if from.namespace == to.namespace {
            return true;
        }
        self.grants
            .iter()
            .filter(|g| g.metadata.namespace.as_deref() == Some(to.namespace))
            .any(|g| {
                let from_ok = g.spec.from.iter().any(|f| {
                    f.group == from.group && f.kind == from.kind && f.namespace == from.namespace
                });
                let to_ok = g.spec.to.iter().any(|t| {
                    t.group == to.group
                        && t.kind == to.kind
                        && t.name.as_deref().is_none_or(|n| n == name)
                });
                from_ok && to_ok
            })
    }
}

/// A label selector (`matchLabels` + `matchExpressions`) against labels; an
/// unknown operator matches nothing (fail closed).
pub fn selector_matches(
    match_labels: Option<&BTreeMap<String, String>>,
    expressions: &[(String, String, Vec<String>)],
    labels: &BTreeMap<String, String>,
) -> bool {
    let labels_ok = match_labels
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let expressions_ok = expressions.iter().all(|(key, op, values)| {
        let value = labels.get(key);
        match op.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    labels_ok && expressions_ok
}

/// Whether two Gateway API hostnames overlap. A leading `*.` matches one or
/// more labels (`*.example.com` covers `a.example.com` and
/// `a.b.example.com`, not `example.com`).
pub fn hostname_overlaps(a: &str, b: &str) -> bool {
    let a = a.to_ascii_lowercase();
    let b = b.to_ascii_lowercase();
    match (a.strip_prefix('*'), b.strip_prefix('*')) {
        (None, None) => a == b,
        (Some(sa), None) => b.ends_with(sa) && b.len() > sa.len(),
        (None, Some(sb)) => a.ends_with(sb) && a.len() > sb.len(),
        (Some(sa), Some(sb)) => sa.ends_with(sb) || sb.ends_with(sa),
    }
}

/// Whether a listener (hostname or none) accepts a route (hostnames or
/// none): an absent side matches everything.
pub fn listener_accepts_hostnames(listener: Option<&str>, route: &[String]) -> bool {
    match listener {
        None => true,
        Some(_) if route.is_empty() => true,
        Some(l) => route.iter().any(|r| hostname_overlaps(l, r)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_api::gateway::referencegrants::{
        ReferenceGrantFrom, ReferenceGrantSpec, ReferenceGrantTo,
    };

    #[test]
    fn hostname_table() {
        let cases = [
            ("a.example.com", "a.example.com", true),
            ("A.Example.com", "a.example.COM", true),
            ("a.example.com", "b.example.com", false),
            ("*.example.com", "a.example.com", true),
            ("*.example.com", "a.b.example.com", true),
            ("*.example.com", "example.com", false),
            ("*.example.com", "a.example.net", false),
            ("a.example.com", "*.example.com", true),
            ("*.example.com", "*.example.com", true),
            ("*.example.com", "*.a.example.com", true),
            ("*.a.example.com", "*.b.example.com", false),
        ];
        for (a, b, want) in cases {
            assert_eq!(hostname_overlaps(a, b), want, "{a} vs {b}");
        }
        assert!(listener_accepts_hostnames(None, &["x.y".to_owned()]));
        assert!(listener_accepts_hostnames(Some("x.y"), &[]));
        assert!(!listener_accepts_hostnames(
            Some("x.y"),
            &["z.y".to_owned()]
        ));
    }

    #[test]
    fn selector_table() {
        let labels = BTreeMap::from([("team".to_owned(), "pay".to_owned())]);
        let ml = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
        let ex = |k: &str, op: &str, vs: &[&str]| {
            vec![(
                k.to_owned(),
                op.to_owned(),
                vs.iter().map(|s| s.to_string()).collect(),
            )]
        };
        assert!(selector_matches(Some(&ml("team", "pay")), &[], &labels));
        assert!(!selector_matches(Some(&ml("team", "ops")), &[], &labels));
        assert!(selector_matches(
            None,
            &ex("team", "In", &["pay", "x"]),
            &labels
        ));
        assert!(!selector_matches(
            None,
            &ex("team", "NotIn", &["pay"]),
            &labels
        ));
        assert!(selector_matches(
            None,
            &ex("env", "DoesNotExist", &[]),
            &labels
        ));
        assert!(selector_matches(None, &ex("team", "Exists", &[]), &labels));
        assert!(!selector_matches(None, &ex("team", "Bogus", &[]), &labels));
    }

    #[test]
    fn reference_grants() {
        let grant = ReferenceGrant {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("g".to_owned()),
                namespace: Some("certs".to_owned()),
                ..Default::default()
            },
            spec: ReferenceGrantSpec {
                from: vec![ReferenceGrantFrom {
                    group: "gateway.networking.k8s.io".to_owned(),
                    kind: "Gateway".to_owned(),
                    namespace: "edge".to_owned(),
                }],
                to: vec![ReferenceGrantTo {
                    group: String::new(),
                    kind: "Secret".to_owned(),
                    name: Some("tls".to_owned()),
                }],
            },
        };
        let world = World {
            grants: vec![grant],
            ..Default::default()
        };
        let from = |ns| RefEnd {
            group: "gateway.networking.k8s.io",
            kind: "Gateway",
            namespace: ns,
        };
        let to = |ns| RefEnd {
            group: "",
            kind: "Secret",
            namespace: ns,
        };
        assert!(world.reference_allowed(from("edge"), to("certs"), "tls"));
        assert!(!world.reference_allowed(from("edge"), to("certs"), "other"));
        assert!(!world.reference_allowed(from("dev"), to("certs"), "tls"));
        assert!(world.reference_allowed(from("certs"), to("certs"), "anything"));
        assert!(!world.reference_allowed(from("edge"), to("elsewhere"), "tls"));
    }
}
