//! The xDS resources weftd serves, as plain data: per type URL, named
//! resources with a content version. Translation produces a [`Resources`]
//! per proxy; the xDS server diffs two of them to push only what changed.

use std::cmp::Ordering;
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

/// One type's resources by name. A persistent map: a copy of a proxy's
/// set patched in a few entries shares every other entry and node with the
/// original, so copying is cheap and two sets derived from each other are
/// compared by walking them side by side.
pub type TypeMap = imbl::OrdMap<String, Arc<Resource>>;

/// Every resource for one proxy, by type URL and name. Resources are
/// shared (`Arc`), and so are the maps' nodes: copying a proxy's set to
/// patch a few entries, or handing the same set to many proxies, copies no
/// encoded bodies and no untouched entries.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resources {
    by_type: BTreeMap<String, TypeMap>,
}

/// One difference between two sets of one type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Change<'a> {
    /// New, or with another version than before.
    Upsert(&'a Resource),
    /// A name no longer present.
    Removed(&'a str),
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

    /// What differs, for one type, from `self` to `next`, in name order.
    /// Free when the type's map is shared, and otherwise one walk over
    /// both maps in which an entry shared by both costs a pointer compare.
    pub fn changes<'a>(&'a self, next: &'a Resources, type_url: &str) -> Vec<Change<'a>> {
        let (old, new) = (self.by_type.get(type_url), next.by_type.get(type_url));
        if let (Some(o), Some(n)) = (old, new)
            && o.ptr_eq(n)
        {
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut a = old.into_iter().flat_map(|m| m.iter()).peekable();
        let mut b = new.into_iter().flat_map(|m| m.iter()).peekable();
        loop {
            let order = match (a.peek(), b.peek()) {
                (None, None) => break,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some((ka, _)), Some((kb, _))) => ka.cmp(kb),
            };
            match order {
                Ordering::Less => {
                    if let Some((k, _)) = a.next() {
                        out.push(Change::Removed(k));
                    }
                }
                Ordering::Greater => {
                    if let Some((_, r)) = b.next() {
                        out.push(Change::Upsert(r));
                    }
                }
                Ordering::Equal => {
                    if let (Some((_, ra)), Some((_, rb))) = (a.next(), b.next())
                        && !Arc::ptr_eq(ra, rb)
                        && ra.version != rb.version
                    {
                        out.push(Change::Upsert(rb));
                    }
                }
            }
        }
        out
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
    fn changes_lists_only_upserts_and_removals() {
        let mut old = Resources::default();
        old.insert(res("same", b"1"));
        old.insert(res("changed", b"1"));
        old.insert(res("gone", b"1"));
        let mut new = Resources::default();
        new.insert(res("same", b"1"));
        new.insert(res("changed", b"2"));
        new.insert(res("added", b"1"));
        let names = |c: &[Change<'_>]| -> Vec<String> {
            c.iter()
                .map(|c| match c {
                    Change::Upsert(r) => format!("+{}", r.name),
                    Change::Removed(n) => format!("-{n}"),
                })
                .collect()
        };
        assert_eq!(
            names(&old.changes(&new, type_url::CLUSTER)),
            ["+added", "+changed", "-gone"]
        );
        assert!(new.changes(&new, type_url::CLUSTER).is_empty());
        assert_eq!(
            names(&Resources::default().changes(&new, type_url::CLUSTER)),
            ["+added", "+changed", "+same"]
        );
        assert_eq!(
            names(&new.changes(&Resources::default(), type_url::CLUSTER)),
            ["-added", "-changed", "-same"]
        );
        assert_ne!(
            old.type_version(type_url::CLUSTER),
            new.type_version(type_url::CLUSTER)
        );
    }

    #[test]
    fn a_patched_copy_differs_only_where_patched() {
        let mut base = Resources::default();
        for i in 0..500 {
            base.insert(res(&format!("r{i:03}"), format!("{i}").as_bytes()));
        }
        let mut patched = base.clone();
        patched.insert(res("r250", b"new"));
        patched.insert(res("r600", b"added"));
        let changes = base.changes(&patched, type_url::CLUSTER);
        let names: Vec<_> = changes
            .iter()
            .map(|c| match c {
                Change::Upsert(r) => r.name.as_str(),
                Change::Removed(n) => n,
            })
            .collect();
        assert_eq!(names, ["r250", "r600"]);
        // an equal body under a new Arc is no change
        let mut same = base.clone();
        same.insert(res("r100", b"100"));
        assert!(base.changes(&same, type_url::CLUSTER).is_empty());
    }
}
