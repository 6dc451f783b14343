//! Incremental (delta) xDS, one type on one stream: the client's
//! subscription, the version of every resource weftd believes it holds,
//! the responses awaiting an answer and its last NACK. A push sends only
//! resources whose version differs from what the client holds, and the
//! names it holds that are gone. Pure: requests in, responses out.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource as WireResource,
};

use super::sotw::{Outcome, Verdict};
use super::subscription::Subscription;
use crate::resources::{Change, Resources};

fn wire(r: &crate::resources::Resource) -> WireResource {
    WireResource {
        name: r.name.clone(),
        version: r.version.clone(),
        resource: Some(r.body.clone()),
        ..Default::default()
    }
}

/// How many unanswered responses are remembered per type: a client answers
/// each one in order, so only a misbehaving one exceeds it.
const MAX_PENDING: usize = 64;

#[derive(Clone, Debug, Default)]
pub struct DeltaType {
    pub type_url: String,
    pub subscription: Subscription,
    /// name → version the client holds (after the responses sent so far).
    held: BTreeMap<String, String>,
    /// Names newly subscribed: each is answered once even if it does not
    /// exist (in `removed_resources`, so the client stops waiting for it).
    newly_subscribed: BTreeSet<String>,
    /// nonce → system version of each response not yet answered.
    pending: BTreeMap<String, String>,
    /// The nonce of the last response sent.
    pub last_nonce: Option<String>,
    /// The set the last response was computed from, while `held` is
    /// exactly its subscribed part: the next response then only walks what
    /// changed since (see [`Resources::changes`]). Any subscription change
    /// clears it.
    basis: Option<Arc<Resources>>,
}

impl DeltaType {
    /// State for the first request of `type_url` on a stream; the client's
    /// `initial_resource_versions` (what it kept from an earlier stream)
    /// count as held, so unchanged resources are not sent again.
    pub fn new(type_url: &str, first: &DeltaDiscoveryRequest) -> (Self, Outcome) {
        let mut state = Self {
            type_url: type_url.to_owned(),
            subscription: Subscription::first(&first.resource_names_subscribe),
            ..Self::default()
        };
        state.newly_subscribed = state
            .subscription
            .names
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>();
        state.held = first
            .initial_resource_versions
            .iter()
            .filter(|(n, _)| state.subscription.wants(n))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        (
            state,
            Outcome {
                verdict: Verdict::Subscribe,
                respond: true,
            },
        )
    }

    /// A later request: an answer to a response and/or subscription changes.
    pub fn on_request(&mut self, req: &DeltaDiscoveryRequest) -> Outcome {
        if !req.resource_names_subscribe.is_empty() || !req.resource_names_unsubscribe.is_empty() {
            self.basis = None;
        }
        let added = self.subscription.add(&req.resource_names_subscribe);
        self.subscription.remove(&req.resource_names_unsubscribe);
        for n in &req.resource_names_unsubscribe {
            // The client drops what it unsubscribed from.
            self.held.remove(n);
            self.newly_subscribed.remove(n);
        }
        if !self.subscription.wildcard {
            let sub = &self.subscription;
            self.held.retain(|n, _| sub.wants(n));
        }
        self.newly_subscribed.extend(
            added
                .iter()
                .filter(|n| n.as_str() != super::subscription::WILDCARD)
                .cloned(),
        );
        let verdict = if req.response_nonce.is_empty() {
            Verdict::Subscribe
        } else {
            match self.pending.remove(&req.response_nonce) {
                None => Verdict::Stale,
                Some(version) => match &req.error_detail {
                    Some(status) => Verdict::Nack {
                        version,
                        message: status.message.clone(),
                    },
                    None => Verdict::Ack { version },
                },
            }
        };
        Outcome {
            verdict,
            respond: !added.is_empty(),
        }
    }

    /// The response that brings the client from what it holds to
    /// `snapshot`, or `None` when nothing differs (after the first). What
    /// is sent counts as held right away: if the client NACKs it, it is
    /// not sent again until its content changes.
    pub fn response(
        &mut self,
        snapshot: &Arc<Resources>,
        system_version: &str,
        nonce: impl FnOnce() -> String,
    ) -> Option<DeltaDiscoveryResponse> {
        let (resources, removed) = match self.basis.take() {
            Some(basis) if self.newly_subscribed.is_empty() => self.walk_changes(&basis, snapshot),
            _ => self.compare_all(snapshot),
        };
        self.basis = Some(snapshot.clone());
        // The first response of a type is sent even when empty: the client
        // waits for an answer to each type before it calls itself ready.
        if resources.is_empty() && removed.is_empty() && self.last_nonce.is_some() {
            return None;
        }
        let nonce = nonce();
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_first();
        }
        self.pending
            .insert(nonce.clone(), system_version.to_owned());
        self.last_nonce = Some(nonce.clone());
        Some(DeltaDiscoveryResponse {
            system_version_info: system_version.to_owned(),
            resources,
            type_url: self.type_url.clone(),
            removed_resources: removed.into_iter().collect(),
            nonce,
            ..Default::default()
        })
    }

    /// What to send and to remove, from the changes between `basis` (which
    /// `held` mirrors) and `snapshot`.
    fn walk_changes(
        &mut self,
        basis: &Resources,
        snapshot: &Resources,
    ) -> (Vec<WireResource>, BTreeSet<String>) {
        let mut resources = Vec::new();
        let mut removed = BTreeSet::new();
        for change in basis.changes(snapshot, &self.type_url) {
            match change {
                Change::Upsert(r) => {
                    if self.subscription.wants(&r.name)
                        && self.held.get(&r.name) != Some(&r.version)
                    {
                        self.held.insert(r.name.clone(), r.version.clone());
                        resources.push(wire(r));
                    }
                }
                Change::Removed(name) => {
                    if self.held.remove(name).is_some() {
                        removed.insert(name.to_owned());
                    }
                }
            }
        }
        (resources, removed)
    }

    /// What to send and to remove, comparing every resource of the type
    /// with what the client holds.
    fn compare_all(&mut self, snapshot: &Resources) -> (Vec<WireResource>, BTreeSet<String>) {
        let mut resources = Vec::new();
        let mut present = BTreeSet::new();
        for r in snapshot.of_type(&self.type_url) {
            if !self.subscription.wants(&r.name) {
                continue;
            }
            present.insert(r.name.as_str());
            if self.held.get(&r.name) != Some(&r.version) {
                self.held.insert(r.name.clone(), r.version.clone());
                resources.push(wire(r));
            }
        }
        let mut removed: BTreeSet<String> = self
            .held
            .keys()
            .filter(|n| !present.contains(n.as_str()))
            .cloned()
            .collect();
        self.held.retain(|n, _| present.contains(n.as_str()));
        removed.extend(
            std::mem::take(&mut self.newly_subscribed)
                .into_iter()
                .filter(|n| !present.contains(n.as_str())),
        );
        (resources, removed)
    }

    /// The versions the client holds (for status and tests).
    pub fn held(&self) -> &BTreeMap<String, String> {
        &self.held
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::google::rpc::Status;

    use super::*;
    use crate::resources::{Resource, type_url};

    const T: &str = type_url::ENDPOINT;

    fn snapshot(items: &[(&str, &str)]) -> Arc<Resources> {
        let mut r = Resources::default();
        for (name, body) in items {
            r.insert(Resource::new(*name, T, body.as_bytes().to_vec()));
        }
        Arc::new(r)
    }

    fn v(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn req(sub: &[&str], unsub: &[&str], nonce: &str, nack: Option<&str>) -> DeltaDiscoveryRequest {
        DeltaDiscoveryRequest {
            type_url: T.to_owned(),
            resource_names_subscribe: v(sub),
            resource_names_unsubscribe: v(unsub),
            response_nonce: nonce.to_owned(),
            error_detail: nack.map(|m| Status {
                code: 3,
                message: m.to_owned(),
                details: vec![],
            }),
            ..Default::default()
        }
    }

    fn sent(r: &DeltaDiscoveryResponse) -> (Vec<&str>, Vec<&str>) {
        (
            r.resources.iter().map(|x| x.name.as_str()).collect(),
            r.removed_resources.iter().map(String::as_str).collect(),
        )
    }

    #[test]
    fn pushes_only_changes_and_removals() {
        let (mut st, out) = DeltaType::new(T, &req(&[], &[], "", None));
        assert!(out.respond);
        let s1 = snapshot(&[("a", "1"), ("b", "1"), ("c", "1")]);
        let r = st.response(&s1, "1", || "n1".into()).expect("initial");
        assert_eq!(sent(&r), (vec!["a", "b", "c"], vec![]));
        assert_eq!(
            st.on_request(&req(&[], &[], "n1", None)).verdict,
            Verdict::Ack {
                version: "1".into()
            }
        );
        assert!(st.response(&s1, "2", || "x".into()).is_none());

        let s2 = snapshot(&[("a", "1"), ("b", "2"), ("d", "1")]);
        let r = st.response(&s2, "2", || "n2".into()).expect("changes");
        assert_eq!(sent(&r), (vec!["b", "d"], vec!["c"]));
    }

    /// Pushes `step`'s snapshot through `fast` (which keeps its basis) and
    /// `slow` (which compares everything every time): both must answer
    /// the same.
    fn same_answer(fast: &mut DeltaType, slow: &mut DeltaType, snap: &Arc<Resources>, step: &str) {
        slow.basis = None;
        let a = fast.response(snap, "v", || "n".into());
        let b = slow.response(snap, "v", || "n".into());
        let sorted = |r: Option<DeltaDiscoveryResponse>| {
            r.map(|r| {
                let (mut s, mut d) = (
                    r.resources
                        .iter()
                        .map(|x| x.name.clone())
                        .collect::<Vec<_>>(),
                    r.removed_resources,
                );
                s.sort();
                d.sort();
                (s, d)
            })
        };
        assert_eq!(sorted(a), sorted(b), "{step}");
        assert_eq!(fast.held(), slow.held(), "{step}");
    }

    #[test]
    fn walking_changes_answers_as_comparing_everything() {
        let mut base = Resources::default();
        for i in 0..40 {
            base.insert(Resource::new(format!("r{i:02}"), T, vec![i]));
        }
        for (label, sub) in [
            ("wildcard", vec![]),
            ("named", vec!["r01", "r05", "r07", "gone"]),
        ] {
            let (mut fast, _) = DeltaType::new(T, &req(&sub, &[], "", None));
            let (mut slow, _) = DeltaType::new(T, &req(&sub, &[], "", None));
            let mut current = Arc::new(base.clone());
            same_answer(&mut fast, &mut slow, &current, label);
            type Edit = Box<dyn Fn(&mut Resources)>;
            let edits: Vec<(&str, Edit)> = vec![
                (
                    "one changed",
                    Box::new(|r| r.insert(Resource::new("r05", T, b"x".to_vec()))),
                ),
                (
                    "one added",
                    Box::new(|r| r.insert(Resource::new("r99", T, b"y".to_vec()))),
                ),
                ("nothing", Box::new(|_| {})),
                (
                    "rebuilt equal",
                    Box::new(|r| {
                        let mut fresh = Resources::default();
                        for x in r.of_type(T) {
                            fresh.insert(x.clone());
                        }
                        *r = fresh;
                    }),
                ),
                (
                    "one removed",
                    Box::new(|r| {
                        let mut fresh = Resources::default();
                        for x in r.of_type(T).filter(|x| x.name != "r07") {
                            fresh.insert(x.clone());
                        }
                        *r = fresh;
                    }),
                ),
                (
                    "changed back",
                    Box::new(|r| r.insert(Resource::new("r05", T, vec![5]))),
                ),
            ];
            for (step, edit) in &edits {
                let mut next = (*current).clone();
                edit(&mut next);
                current = Arc::new(next);
                same_answer(&mut fast, &mut slow, &current, &format!("{label}: {step}"));
            }
            // a subscription change, then more changes
            for st in [&mut fast, &mut slow] {
                st.on_request(&req(&["r10"], &["r01"], "", None));
            }
            same_answer(
                &mut fast,
                &mut slow,
                &current,
                &format!("{label}: resubscribed"),
            );
            let mut next = (*current).clone();
            next.insert(Resource::new("r10", T, b"z".to_vec()));
            next.insert(Resource::new("r01", T, b"z".to_vec()));
            current = Arc::new(next);
            same_answer(
                &mut fast,
                &mut slow,
                &current,
                &format!("{label}: after resubscribe"),
            );
        }
    }

    #[test]
    fn first_answer_is_sent_even_when_empty() {
        let (mut st, _) = DeltaType::new(T, &req(&[], &[], "", None));
        let empty = Arc::new(Resources::default());
        let r = st
            .response(&empty, "1", || "n1".into())
            .expect("first answer");
        assert_eq!(sent(&r), (vec![], vec![]));
        assert!(st.response(&empty, "2", || "n2".into()).is_none());
    }

    #[test]
    fn nack_keeps_belief_and_does_not_loop() {
        let (mut st, _) = DeltaType::new(T, &req(&[], &[], "", None));
        st.response(&snapshot(&[("a", "1")]), "1", || "n1".into());
        let bad = snapshot(&[("a", "bad")]);
        st.response(&bad, "2", || "n2".into()).expect("push");
        let out = st.on_request(&req(&[], &[], "n2", Some("field foo unknown")));
        assert_eq!(
            out.verdict,
            Verdict::Nack {
                version: "2".into(),
                message: "field foo unknown".into()
            }
        );
        assert!(!out.respond);
        assert!(
            st.response(&bad, "3", || "x".into()).is_none(),
            "no resend loop"
        );
        assert!(
            st.response(&snapshot(&[("a", "fixed")]), "4", || "n4".into())
                .is_some()
        );
        assert_eq!(
            st.on_request(&req(&[], &[], "n-unknown", None)).verdict,
            Verdict::Stale
        );
    }

    #[test]
    fn named_subscriptions_and_initial_versions() {
        let s = snapshot(&[("a", "1"), ("b", "1"), ("c", "1")]);
        let a_version = s.get(T, "a").expect("a").version.clone();
        let mut first = req(&["a", "b", "missing"], &[], "", None);
        first.initial_resource_versions = [
            ("a".to_owned(), a_version),
            ("c".to_owned(), "x".to_owned()),
        ]
        .into_iter()
        .collect();
        let (mut st, _) = DeltaType::new(T, &first);
        let r = st.response(&s, "1", || "n1".into()).expect("initial");
        // a is already held, c is not subscribed, missing does not exist
        assert_eq!(sent(&r), (vec!["b"], vec!["missing"]));

        let out = st.on_request(&req(&["c"], &["a"], "n1", None));
        assert!(out.respond);
        let r = st.response(&s, "1", || "n2".into()).expect("c");
        assert_eq!(sent(&r), (vec!["c"], vec![]));
        assert_eq!(st.held().keys().collect::<Vec<_>>(), ["b", "c"]);
        // an unsubscribed name is not reported removed when it disappears
        assert!(
            st.response(&snapshot(&[("b", "1"), ("c", "1")]), "2", || "x".into())
                .is_none()
        );
    }
}
