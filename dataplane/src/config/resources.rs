//! The raw resource set a proxy holds: per type URL, resource name →
//! `Any`, exactly as received (delta or state-of-the-world) or loaded from a
//! static bootstrap. [`Snapshot::build`](super::Snapshot::build) compiles it.

use std::collections::BTreeMap;

use prost::{Message, Name};

/// The protobuf `Any` of `envoy-types` (the type the xDS protos carry).
pub type Any = envoy_types::pb::google::protobuf::Any;

/// Type URLs of the resources the proxy understands.
pub mod type_url {
    pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
    pub const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
    pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
    pub const ENDPOINT: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
    pub const SECRET: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";
    /// Every type, in the order xDS clients subscribe (clusters before
    /// endpoints, listeners before routes).
    pub const ALL: [&str; 5] = [CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET];

    /// The short name used in messages: `Listener`, `Cluster`, …
    pub fn short(type_url: &str) -> &str {
        type_url.rsplit('.').next().unwrap_or(type_url)
    }
}

/// The current resources, per type URL and name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resources {
    by_type: BTreeMap<String, BTreeMap<String, Any>>,
}

impl Resources {
    /// Applies an incremental (delta xDS) update of one type.
    pub fn apply(&mut self, type_url: &str, added: Vec<(String, Any)>, removed: &[String]) {
        let of_type = self.by_type.entry(type_url.to_owned()).or_default();
        for name in removed {
            of_type.remove(name);
        }
        for (name, body) in added {
            of_type.insert(name, body);
        }
    }

    /// Replaces every resource of one type (state-of-the-world xDS).
    pub fn replace(&mut self, type_url: &str, resources: Vec<(String, Any)>) {
        self.by_type
            .insert(type_url.to_owned(), resources.into_iter().collect());
    }

    /// Adds or replaces one resource from a message.
    pub fn insert_message<M: Message + Name>(&mut self, name: &str, msg: &M) {
        self.apply(
            &M::type_url(),
            vec![(
                name.to_owned(),
                Any {
                    type_url: M::type_url(),
                    value: msg.encode_to_vec(),
                },
            )],
            &[],
        );
    }

    pub fn get(&self, type_url: &str, name: &str) -> Option<&Any> {
        self.by_type.get(type_url).and_then(|m| m.get(name))
    }

    /// Resources of one type, by name.
    pub fn of_type(&self, type_url: &str) -> impl Iterator<Item = (&str, &Any)> {
        self.by_type
            .get(type_url)
            .into_iter()
            .flatten()
            .map(|(n, a)| (n.as_str(), a))
    }

    /// Names of the resources of one type (what a subscription asks for).
    pub fn names(&self, type_url: &str) -> Vec<String> {
        self.of_type(type_url).map(|(n, _)| n.to_owned()).collect()
    }

    /// Type URLs that hold at least one resource.
    pub fn type_urls(&self) -> impl Iterator<Item = &str> {
        self.by_type
            .iter()
            .filter(|(_, m)| !m.is_empty())
            .map(|(t, _)| t.as_str())
    }

    pub fn len(&self) -> usize {
        self.by_type.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any(v: u8) -> Any {
        Any {
            type_url: type_url::CLUSTER.into(),
            value: vec![v],
        }
    }

    #[test]
    fn delta_adds_replaces_and_removes() {
        let mut r = Resources::default();
        r.apply(
            type_url::CLUSTER,
            vec![("a".into(), any(1)), ("b".into(), any(2))],
            &[],
        );
        r.apply(type_url::CLUSTER, vec![("a".into(), any(3))], &["b".into()]);
        assert_eq!(r.names(type_url::CLUSTER), vec!["a".to_owned()]);
        assert_eq!(r.get(type_url::CLUSTER, "a"), Some(&any(3)));
        r.replace(type_url::CLUSTER, vec![("c".into(), any(4))]);
        assert_eq!(r.names(type_url::CLUSTER), vec!["c".to_owned()]);
        assert_eq!(r.len(), 1);
    }
}
