//! What weftd knows about each connected proxy, for `/debug/proxies` and
//! `/debug/config_dump`: who it is, since when, per type what was sent and
//! acknowledged, and its last NACK.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use k8s_openapi::jiff::Timestamp;
use serde::Serialize;

use super::subscription::Subscription;
use crate::identity::{ProxyIdentity, ProxyKind};
use crate::resources::{Resource, Resources, type_url};

/// A rejected response.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NackStatus {
    pub at: String,
    pub version: String,
    pub nonce: String,
    pub message: String,
}

/// One type on one stream.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TypeStatus {
    pub wildcard: bool,
    pub subscribed_names: usize,
    pub last_sent_version: Option<String>,
    pub last_sent_nonce: Option<String>,
    pub last_sent_at: Option<String>,
    pub last_acked_version: Option<String>,
    pub last_acked_nonce: Option<String>,
    pub last_nack: Option<NackStatus>,
    #[serde(skip)]
    subscription: Subscription,
}

/// One connected proxy.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProxyStatus {
    pub connection: u64,
    pub node_id: String,
    pub identity: String,
    pub kind: &'static str,
    pub pod: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub revision: String,
    /// `sotw` or `delta`.
    pub protocol: &'static str,
    pub connected_since: String,
    pub types: BTreeMap<String, TypeStatus>,
}

#[derive(Debug)]
struct Entry {
    status: ProxyStatus,
    /// The snapshot the last response was cut from.
    last_pushed: Option<Arc<Resources>>,
}

/// Every connected proxy, shared by the xDS streams (writers) and the
/// debug server (reader).
#[derive(Clone, Debug, Default)]
pub struct ProxyRegistry {
    inner: Arc<Mutex<BTreeMap<u64, Entry>>>,
}

fn now() -> String {
    Timestamp::now().to_string()
}

fn kind_name(kind: &ProxyKind) -> &'static str {
    match kind {
        ProxyKind::Sidecar => "sidecar",
        ProxyKind::Gateway => "gateway",
        ProxyKind::Proxyless => "proxyless",
    }
}

impl ProxyRegistry {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, Entry>> {
        // Entries are plain data updated field by field: a panic in another
        // holder leaves nothing half-built worth refusing to show.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A stream identified its proxy; the handle unregisters it on drop.
    pub fn register(
        &self,
        connection: u64,
        proxy: &ProxyIdentity,
        protocol: &'static str,
    ) -> Registration {
        let status = ProxyStatus {
            connection,
            node_id: proxy.node_id.clone(),
            identity: proxy.id.to_string(),
            kind: kind_name(&proxy.kind),
            pod: proxy.pod.clone(),
            labels: proxy.labels.clone(),
            revision: proxy.revision.clone(),
            protocol,
            connected_since: now(),
            types: BTreeMap::new(),
        };
        self.lock().insert(
            connection,
            Entry {
                status,
                last_pushed: None,
            },
        );
        Registration {
            registry: self.clone(),
            connection,
        }
    }

    fn update(&self, connection: u64, type_url: &str, f: impl FnOnce(&mut TypeStatus)) {
        if let Some(e) = self.lock().get_mut(&connection) {
            f(e.status.types.entry(type_url.to_owned()).or_default());
        }
    }

    /// Every connected proxy, by node ID then connection.
    pub fn proxies(&self) -> Vec<ProxyStatus> {
        let mut all: Vec<_> = self.lock().values().map(|e| e.status.clone()).collect();
        all.sort_by(|a, b| (&a.node_id, a.connection).cmp(&(&b.node_id, b.connection)));
        all
    }

    pub fn connected(&self) -> usize {
        self.lock().len()
    }

    /// What the newest stream of `node_id` was last sent, per type.
    pub fn last_sent(
        &self,
        node_id: &str,
    ) -> Option<(ProxyStatus, BTreeMap<String, Vec<Resource>>)> {
        let guard = self.lock();
        let entry = guard
            .values()
            .filter(|e| e.status.node_id == node_id)
            .max_by_key(|e| e.status.connection)?;
        let mut by_type = BTreeMap::new();
        if let Some(snapshot) = &entry.last_pushed {
            for t in type_url::PUSH_ORDER {
                let Some(ts) = entry.status.types.get(t) else {
                    continue;
                };
                if ts.last_sent_nonce.is_none() {
                    continue;
                }
                let sent: Vec<Resource> = snapshot
                    .of_type(t)
                    .filter(|r| ts.subscription.wants(&r.name))
                    .cloned()
                    .collect();
                by_type.insert(t.to_owned(), sent);
            }
        }
        Some((entry.status.clone(), by_type))
    }
}

/// A registered stream: reports its events, and leaves the registry when
/// the stream ends.
#[derive(Debug)]
pub struct Registration {
    registry: ProxyRegistry,
    connection: u64,
}

impl Registration {
    /// The proxy's identity was completed or changed (its pod appeared in
    /// the index, its labels changed).
    pub fn identified(&self, proxy: &ProxyIdentity) {
        if let Some(e) = self.registry.lock().get_mut(&self.connection) {
            e.status.pod = proxy.pod.clone();
            e.status.labels = proxy.labels.clone();
            e.status.revision = proxy.revision.clone();
            e.status.kind = kind_name(&proxy.kind);
        }
    }

    pub fn subscribed(&self, type_url: &str, sub: &Subscription) {
        self.registry.update(self.connection, type_url, |t| {
            t.wildcard = sub.wildcard;
            t.subscribed_names = sub.names.len();
            t.subscription = sub.clone();
        });
    }

    pub fn sent(&self, type_url: &str, version: &str, nonce: &str, snapshot: &Arc<Resources>) {
        if let Some(e) = self.registry.lock().get_mut(&self.connection) {
            e.last_pushed = Some(snapshot.clone());
            let t = e.status.types.entry(type_url.to_owned()).or_default();
            t.last_sent_version = Some(version.to_owned());
            t.last_sent_nonce = Some(nonce.to_owned());
            t.last_sent_at = Some(now());
        }
    }

    pub fn acked(&self, type_url: &str, version: &str, nonce: &str) {
        self.registry.update(self.connection, type_url, |t| {
            t.last_acked_version = Some(version.to_owned());
            t.last_acked_nonce = Some(nonce.to_owned());
        });
    }

    pub fn nacked(&self, type_url: &str, version: &str, nonce: &str, message: &str) {
        self.registry.update(self.connection, type_url, |t| {
            t.last_nack = Some(NackStatus {
                at: now(),
                version: version.to_owned(),
                nonce: nonce.to_owned(),
                message: message.to_owned(),
            });
        });
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.connection);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::SpiffeId;

    fn proxy(node: &str) -> ProxyIdentity {
        ProxyIdentity {
            node_id: node.to_owned(),
            id: SpiffeId::new("td", "ns", "sa"),
            kind: ProxyKind::Sidecar,
            pod: None,
            labels: BTreeMap::new(),
            revision: "r".to_owned(),
            ips: vec![],
        }
    }

    #[test]
    fn records_sent_acked_nacked_and_unregisters() {
        let reg = ProxyRegistry::default();
        let r = reg.register(7, &proxy("n1"), "sotw");
        let mut snap = Resources::default();
        snap.insert(Resource::new("a", type_url::CLUSTER, b"1".to_vec()));
        snap.insert(Resource::new("b", type_url::CLUSTER, b"1".to_vec()));
        let snap = Arc::new(snap);
        r.subscribed(type_url::CLUSTER, &Subscription::first(&["a".to_owned()]));
        r.sent(type_url::CLUSTER, "v1", "1", &snap);
        r.acked(type_url::CLUSTER, "v1", "1");
        r.nacked(type_url::CLUSTER, "v0", "0", "bad");
        let all = reg.proxies();
        assert_eq!(all.len(), 1);
        let t = &all[0].types[type_url::CLUSTER];
        assert_eq!(t.last_acked_version.as_deref(), Some("v1"));
        assert_eq!(
            t.last_nack.as_ref().map(|n| n.message.as_str()),
            Some("bad")
        );
        let (_, sent) = reg.last_sent("n1").expect("known node");
        let names: Vec<_> = sent[type_url::CLUSTER]
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(names, ["a"], "only what the subscription selected");
        assert!(reg.last_sent("other").is_none());
        drop(r);
        assert_eq!(reg.connected(), 0);
    }
}
