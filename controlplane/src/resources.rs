//! The xDS resources weftd serves, as plain data: per type URL, named
//! resources with a content version. Translation produces a [`Resources`]
//! per proxy; the xDS server diffs two of them to push only what changed.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Weak};

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

/// The resources handed out so far, by type and name, to share equal ones
/// (see [`Resources::share`]). Holds them weakly: a resource no proxy's set
/// holds any more is dropped, and its entry pruned.
#[derive(Debug, Default)]
pub struct Interner {
    seen: HashMap<(String, String), Weak<Resource>>,
    /// Entries after the last prune: the next prune happens at twice that.
    pruned_at: usize,
}

impl Interner {
    /// The shared copy of `r`, when one exists and is not `r` itself;
    /// otherwise `r` becomes the shared copy.
    fn shared(&mut self, type_url: &str, r: &Arc<Resource>) -> Option<Arc<Resource>> {
        let key = (type_url.to_owned(), r.name.clone());
        if let Some(existing) = self.seen.get(&key).and_then(Weak::upgrade)
            && existing.version == r.version
        {
            return (!Arc::ptr_eq(&existing, r)).then_some(existing);
        }
        self.seen.insert(key, Arc::downgrade(r));
        None
    }

    fn prune(&mut self) {
        if self.seen.len() > 2 * self.pruned_at.max(1024) {
            self.seen.retain(|_, w| w.strong_count() > 0);
            self.pruned_at = self.seen.len();
        }
    }

    /// How many resources are remembered (for tests).
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
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

    /// Adds or replaces every resource of `type_url` that `other` has
    /// (sharing them, not copying).
    pub fn extend_from(&mut self, other: &Resources, type_url: &str) {
        if let Some(from) = other.by_type.get(type_url) {
            let to = self.by_type.entry(type_url.to_owned()).or_default();
            for (name, r) in from {
                to.insert(name.clone(), r.clone());
            }
        }
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

    /// Replaces every resource equal (same type, name and version) to one
    /// `interner` has seen by that one, so that proxies whose translations
    /// agree hold one copy of each body.
    pub fn share(&mut self, interner: &mut Interner) {
        for (type_url, map) in &mut self.by_type {
            let shared: Vec<Arc<Resource>> = map
                .values()
                .filter_map(|r| interner.shared(type_url, r))
                .collect();
            for r in shared {
                map.insert(r.name.clone(), r);
            }
        }
        interner.prune();
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

    #[test]
    fn shared_sets_hold_one_copy_of_equal_resources() {
        let build = |changed: &[u8]| {
            let mut r = Resources::default();
            r.insert(res("a", b"1"));
            r.insert(res("b", changed));
            r
        };
        let mut interner = Interner::default();
        let mut first = build(b"x");
        first.share(&mut interner);
        let mut second = build(b"x");
        second.share(&mut interner);
        let mut third = build(b"y");
        third.share(&mut interner);
        let arc = |r: &Resources, n: &str| {
            r.by_type[type_url::CLUSTER]
                .get(n)
                .cloned()
                .expect("in the set")
        };
        assert!(Arc::ptr_eq(&arc(&first, "a"), &arc(&second, "a")));
        assert!(Arc::ptr_eq(&arc(&first, "b"), &arc(&second, "b")));
        assert!(Arc::ptr_eq(&arc(&first, "a"), &arc(&third, "a")));
        assert!(
            !Arc::ptr_eq(&arc(&first, "b"), &arc(&third, "b")),
            "other content, other copy"
        );
        assert_eq!(
            third
                .get(type_url::CLUSTER, "b")
                .map(|r| r.body.value.clone()),
            Some(b"y".to_vec())
        );
        assert_eq!(first, second);
        // shared or not, the sets compare and diff by content
        assert!(first.changes(&second, type_url::CLUSTER).is_empty());
        drop((first, second, third));
        assert!(interner.seen.values().all(|w| w.strong_count() == 0));
    }
}
