//! The xDS resources weftd serves, as plain data: per type URL, named
//! resources with a content version. Translation produces a [`Resources`]
//! per proxy; the xDS server diffs two of them to push only what changed.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use envoy_types::pb::google::protobuf::Any;

/// Envoy v3 type URLs weftd serves.
pub mod type_url {
    pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
    pub const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
    pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
    pub const ENDPOINT: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
    pub const SECRET: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

    /// The order resources are sent in so a client never sees a reference
    /// before its target (clusters before endpoints, listeners before routes).
    pub const PUSH_ORDER: [&str; 5] = [CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET];
}

/// One named resource and the version of its content.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    pub name: String,
    /// Stable hash of the encoded resource: equal content, equal version.
    pub version: String,
    pub body: Any,
}

impl Resource {
    /// Wraps an encoded message under `type_url`, versioned by its content.
    pub fn new(name: impl Into<String>, type_url: &str, value: Vec<u8>) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        value.hash(&mut hasher);
        Self {
            name: name.into(),
            version: format!("{:016x}", hasher.finish()),
            body: Any {
                type_url: type_url.to_owned(),
                value,
            },
        }
    }

    /// Wraps a prost message.
    pub fn from_message<M: prost::Message>(
        name: impl Into<String>,
        type_url: &str,
        msg: &M,
    ) -> Self {
        Self::new(name, type_url, msg.encode_to_vec())
    }
}

/// Every resource for one proxy, by type URL and name. Resources are
/// shared (`Arc`): copying a proxy's set to patch a few entries, or
/// handing the same set to many proxies, copies no encoded bodies.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resources {
    by_type: BTreeMap<String, BTreeMap<String, Arc<Resource>>>,
}

/// What differs between two sets of one type.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Delta {
    /// New or changed resources.
    pub changed: Vec<Resource>,
    /// Names no longer present.
    pub removed: Vec<String>,
}

impl Delta {
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.removed.is_empty()
    }
}

impl Resources {
    /// Adds or replaces a resource.
    pub fn insert(&mut self, resource: Resource) {
        self.by_type
            .entry(resource.body.type_url.clone())
            .or_default()
            .insert(resource.name.clone(), Arc::new(resource));
    }

    /// The resources of one type, by name.
    pub fn of_type(&self, type_url: &str) -> impl Iterator<Item = &Resource> {
        self.by_type
            .get(type_url)
            .into_iter()
            .flat_map(|m| m.values())
            .map(|r| &**r)
    }

    /// One resource.
    pub fn get(&self, type_url: &str, name: &str) -> Option<&Resource> {
        self.by_type
            .get(type_url)
            .and_then(|m| m.get(name))
            .map(|r| &**r)
    }

    /// A version for the whole set of one type (state-of-the-world responses).
    pub fn type_version(&self, type_url: &str) -> String {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for r in self.of_type(type_url) {
            r.name.hash(&mut hasher);
            r.version.hash(&mut hasher);
        }
        format!("{:016x}", hasher.finish())
    }

    /// What a client holding `self` must receive to hold `next`, for one type.
    pub fn delta(&self, next: &Resources, type_url: &str) -> Delta {
        let empty = BTreeMap::new();
        let old = self.by_type.get(type_url).unwrap_or(&empty);
        let new = next.by_type.get(type_url).unwrap_or(&empty);
        Delta {
            changed: new
                .values()
                .filter(|r| old.get(&r.name).is_none_or(|o| o.version != r.version))
                .map(|r| (**r).clone())
                .collect(),
            removed: old
                .keys()
                .filter(|k| !new.contains_key(*k))
                .cloned()
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(name: &str, body: &[u8]) -> Resource {
        Resource::new(name, type_url::CLUSTER, body.to_vec())
    }

    #[test]
    fn equal_content_has_equal_versions() {
        assert_eq!(res("a", b"x").version, res("b", b"x").version);
        assert_ne!(res("a", b"x").version, res("a", b"y").version);
    }

    #[test]
    fn delta_lists_only_changes_and_removals() {
        let mut old = Resources::default();
        old.insert(res("same", b"1"));
        old.insert(res("changed", b"1"));
        old.insert(res("gone", b"1"));
        let mut new = Resources::default();
        new.insert(res("same", b"1"));
        new.insert(res("changed", b"2"));
        new.insert(res("added", b"1"));
        let d = old.delta(&new, type_url::CLUSTER);
        let names: Vec<_> = d.changed.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["added", "changed"]);
        assert_eq!(d.removed, ["gone"]);
        assert!(new.delta(&new, type_url::CLUSTER).is_empty());
        assert_ne!(
            old.type_version(type_url::CLUSTER),
            new.type_version(type_url::CLUSTER)
        );
    }
}
