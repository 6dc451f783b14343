//! State of the world, one type on one stream: what the client subscribed
//! to, what was sent (version, nonce), what it acknowledged, its last NACK.
//! Pure: requests in, verdicts and responses out.

use std::hash::{Hash, Hasher};

use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};

use super::subscription::Subscription;
use crate::resources::Resources;

/// What a request meant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// First request for the type on this stream.
    Subscribe,
    /// The client applied the response with this nonce.
    Ack { version: String },
    /// The client rejected the response with this nonce and keeps its
    /// previous configuration.
    Nack { version: String, message: String },
    /// Answers a response that is no longer the latest: ignored, as the
    /// xDS protocol says (the client will answer the newer one).
    Stale,
}

/// A request's effect: its meaning, and whether the client must get a
/// response now (new subscription or changed resource names).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    pub respond: bool,
}

/// The last response sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    pub version: String,
    pub nonce: String,
    pub names: Vec<String>,
}

#[derive(Clone, Debug, Default)]
pub struct SotwType {
    pub type_url: String,
    pub subscription: Subscription,
    pub sent: Option<Sent>,
}

impl SotwType {
    /// State for the first request of `type_url`.
    pub fn new(type_url: &str, first: &DiscoveryRequest) -> (Self, Outcome) {
        let state = Self {
            type_url: type_url.to_owned(),
            subscription: Subscription::first(&first.resource_names),
            sent: None,
        };
        (
            state,
            Outcome {
                verdict: Verdict::Subscribe,
                respond: true,
            },
        )
    }

    /// A later request for the type.
    pub fn on_request(&mut self, req: &DiscoveryRequest) -> Outcome {
        let latest = self.sent.as_ref().map(|s| s.nonce.as_str());
        if req.response_nonce.is_empty() {
            // The client restarted the type (e.g. after a reconnect it did
            // not notice): treat as a new subscription.
            self.subscription = Subscription::first(&req.resource_names);
            return Outcome {
                verdict: Verdict::Subscribe,
                respond: true,
            };
        }
        if Some(req.response_nonce.as_str()) != latest {
            return Outcome {
                verdict: Verdict::Stale,
                respond: false,
            };
        }
        let resubscribed = self.subscription.replace(&req.resource_names);
        let verdict = match &req.error_detail {
            Some(status) => Verdict::Nack {
                version: req.version_info.clone(),
                message: status.message.clone(),
            },
            None => Verdict::Ack {
                version: req.version_info.clone(),
            },
        };
        Outcome {
            verdict,
            respond: resubscribed,
        }
    }

    /// The response that brings the client to `snapshot`, or `None` when it
    /// already has it (unless `force`: a subscription changed, and the
    /// client must hear about it even if nothing it gets differs).
    /// A version the client NACKed is not resent: the comparison is with
    /// what was sent, not with what was acknowledged.
    pub fn response(
        &mut self,
        snapshot: &Resources,
        nonce: impl FnOnce() -> String,
        force: bool,
    ) -> Option<DiscoveryResponse> {
        let selected: Vec<_> = snapshot
            .of_type(&self.type_url)
            .filter(|r| self.subscription.wants(&r.name))
            .collect();
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for r in &selected {
            r.name.hash(&mut hasher);
            r.version.hash(&mut hasher);
        }
        let version = format!("{:016x}", hasher.finish());
        if !force && self.sent.as_ref().is_some_and(|s| s.version == version) {
            return None;
        }
        let nonce = nonce();
        self.sent = Some(Sent {
            version: version.clone(),
            nonce: nonce.clone(),
            names: selected.iter().map(|r| r.name.clone()).collect(),
        });
        Some(DiscoveryResponse {
            version_info: version,
            resources: selected.into_iter().map(|r| r.body.clone()).collect(),
            type_url: self.type_url.clone(),
            nonce,
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::google::rpc::Status;

    use super::*;
    use crate::resources::{Resource, type_url};

    const T: &str = type_url::CLUSTER;

    fn snapshot(items: &[(&str, &str)]) -> Resources {
        let mut r = Resources::default();
        for (name, body) in items {
            r.insert(Resource::new(*name, T, body.as_bytes().to_vec()));
        }
        r
    }

    fn req(names: &[&str], version: &str, nonce: &str, nack: Option<&str>) -> DiscoveryRequest {
        DiscoveryRequest {
            type_url: T.to_owned(),
            resource_names: names.iter().map(|s| s.to_string()).collect(),
            version_info: version.to_owned(),
            response_nonce: nonce.to_owned(),
            error_detail: nack.map(|m| Status {
                code: 3,
                message: m.to_owned(),
                details: vec![],
            }),
            ..Default::default()
        }
    }

    fn names(r: &DiscoveryResponse, snap: &Resources) -> Vec<String> {
        snap.of_type(T)
            .filter(|x| r.resources.contains(&x.body))
            .map(|x| x.name.clone())
            .collect()
    }

    #[test]
    fn ack_nack_and_no_resend_loop() {
        let s1 = snapshot(&[("a", "a1"), ("b", "b1")]);
        let (mut st, out) = SotwType::new(T, &req(&[], "", "", None));
        assert!(out.respond);
        let r1 = st
            .response(&s1, || "n1".into(), true)
            .expect("first response");
        assert_eq!(names(&r1, &s1), ["a", "b"]);

        let out = st.on_request(&req(&[], &r1.version_info, "n1", None));
        assert_eq!(
            out.verdict,
            Verdict::Ack {
                version: r1.version_info.clone()
            }
        );
        assert!(!out.respond);
        assert!(
            st.response(&s1, || "x".into(), false).is_none(),
            "nothing changed"
        );

        let s2 = snapshot(&[("a", "a2"), ("b", "b1")]);
        let r2 = st.response(&s2, || "n2".into(), false).expect("a changed");
        assert_ne!(r2.version_info, r1.version_info);
        let out = st.on_request(&req(&[], &r1.version_info, "n2", Some("bad field x")));
        assert_eq!(
            out.verdict,
            Verdict::Nack {
                version: r1.version_info.clone(),
                message: "bad field x".into()
            }
        );
        assert!(!out.respond);
        assert!(
            st.response(&s2, || "x".into(), false).is_none(),
            "the NACKed version is not pushed again"
        );
        let s3 = snapshot(&[("a", "a3"), ("b", "b1")]);
        assert!(
            st.response(&s3, || "n3".into(), false).is_some(),
            "a fix is pushed"
        );
    }

    #[test]
    fn stale_nonces_are_ignored() {
        let s1 = snapshot(&[("a", "1")]);
        let (mut st, _) = SotwType::new(T, &req(&[], "", "", None));
        st.response(&s1, || "n1".into(), true);
        st.response(&snapshot(&[("a", "2")]), || "n2".into(), false);
        let out = st.on_request(&req(&[], "", "n1", Some("late NACK of n1")));
        assert_eq!(out.verdict, Verdict::Stale);
        assert!(!out.respond);
    }

    #[test]
    fn named_subscriptions_select_and_resubscribe() {
        let snap = snapshot(&[("a", "a1"), ("b", "b1"), ("c", "c1")]);
        let (mut st, _) = SotwType::new(T, &req(&["b"], "", "", None));
        let r = st.response(&snap, || "n1".into(), true).expect("response");
        assert_eq!(names(&r, &snap), ["b"]);
        let out = st.on_request(&req(&["b", "c"], &r.version_info, "n1", None));
        assert!(out.respond, "new names need a response");
        let r = st.response(&snap, || "n2".into(), true).expect("response");
        assert_eq!(names(&r, &snap), ["b", "c"]);
        // subscribing to a missing name still answers (the client learns
        // it does not exist), with the same version
        let out = st.on_request(&req(&["b", "c", "zz"], &r.version_info, "n2", None));
        assert!(out.respond);
        let again = st.response(&snap, || "n3".into(), true).expect("forced");
        assert_eq!(again.version_info, r.version_info);
    }
}
