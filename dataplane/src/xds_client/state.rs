//! The client side of delta xDS, pure: what this proxy holds (name →
//! version per type, only what it applied), the requests that open a
//! stream (wildcard subscriptions plus `initial_resource_versions`, so a
//! reconnect does not download everything again), and the answer to each
//! response (ACK, or NACK with the sink's message; a NACKed update leaves
//! both the held versions and the sink's configuration as they were).

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::google::rpc::Status;

use super::ConfigSink;
use crate::config::type_url;

/// gRPC `INVALID_ARGUMENT`, the code of a NACK's `error_detail`.
const INVALID_ARGUMENT: i32 = 3;

/// The types this proxy subscribes to, in subscription order (clusters
/// before endpoints, listeners before routes). weftd sends each proxy
/// exactly what concerns it, so every type is a wildcard subscription.
pub const SUBSCRIBED: [&str; 5] = type_url::ALL;

/// The outcome of one response.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    Ack(DeltaDiscoveryRequest),
    Nack {
        request: DeltaDiscoveryRequest,
        message: String,
    },
}

impl Answer {
    pub fn request(&self) -> &DeltaDiscoveryRequest {
        match self {
            Self::Ack(r) | Self::Nack { request: r, .. } => r,
        }
    }
}

/// What the proxy holds, across streams.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeltaState {
    held: BTreeMap<String, BTreeMap<String, String>>,
    /// Types answered at least once on the current stream.
    answered: BTreeSet<String>,
}

impl DeltaState {
    /// The requests that open a stream: one per type, the first carrying
    /// the node; each with the versions held from earlier streams.
    pub fn opening_requests(&mut self, node: &Node) -> Vec<DeltaDiscoveryRequest> {
        self.answered.clear();
        SUBSCRIBED
            .iter()
            .enumerate()
            .map(|(i, t)| DeltaDiscoveryRequest {
                node: (i == 0).then(|| node.clone()),
                type_url: (*t).to_owned(),
                resource_names_subscribe: vec!["*".to_owned()],
                initial_resource_versions: self
                    .held
                    .get(*t)
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default(),
                ..Default::default()
            })
            .collect()
    }

    /// Applies `response` to `sink` and answers it.
    pub fn on_response(
        &mut self,
        response: DeltaDiscoveryResponse,
        sink: &mut impl ConfigSink,
    ) -> Answer {
        let type_url = response.type_url.clone();
        self.answered.insert(type_url.clone());
        let result = decode(&response).and_then(|(added, versions)| {
            sink.apply(&type_url, added, &response.removed_resources)
                .map(|()| versions)
        });
        let mut request = DeltaDiscoveryRequest {
            type_url: type_url.clone(),
            response_nonce: response.nonce.clone(),
            ..Default::default()
        };
        match result {
            Ok(versions) => {
                let held = self.held.entry(type_url).or_default();
                for name in &response.removed_resources {
                    held.remove(name);
                }
                held.extend(versions);
                Answer::Ack(request)
            }
            Err(message) => {
                request.error_detail = Some(Status {
                    code: INVALID_ARGUMENT,
                    message: message.clone(),
                    details: vec![],
                });
                Answer::Nack { request, message }
            }
        }
    }

    /// Whether every subscribed type has been answered on this stream.
    pub fn all_answered(&self) -> bool {
        SUBSCRIBED.iter().all(|t| self.answered.contains(*t))
    }

    /// Name → version held for a type.
    pub fn held(&self, type_url: &str) -> Option<&BTreeMap<String, String>> {
        self.held.get(type_url)
    }
}

type Decoded = (Vec<(String, Any)>, Vec<(String, String)>);

/// The added resources (name, body) and their versions; a resource
/// without a body, or of another type than the response, is refused.
fn decode(response: &DeltaDiscoveryResponse) -> Result<Decoded, String> {
    let short = type_url::short(&response.type_url);
    let mut added = Vec::with_capacity(response.resources.len());
    let mut versions = Vec::with_capacity(response.resources.len());
    for r in &response.resources {
        let body = r
            .resource
            .clone()
            .ok_or_else(|| format!("{short} {:?}: resources[].resource is empty", r.name))?;
        if body.type_url != response.type_url {
            return Err(format!(
                "{short} {:?}: resources[].resource.type_url is {:?}, the response is for {:?}",
                r.name, body.type_url, response.type_url
            ));
        }
        versions.push((r.name.clone(), r.version.clone()));
        added.push((r.name.clone(), body));
    }
    Ok((added, versions))
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::service::discovery::v3::Resource;

    use super::*;

    /// Records what it applied; refuses names starting with `bad`.
    #[derive(Default)]
    struct Recorder {
        applied: Vec<(String, Vec<String>, Vec<String>)>,
    }

    impl ConfigSink for Recorder {
        fn apply(
            &mut self,
            type_url: &str,
            added: Vec<(String, Any)>,
            removed: &[String],
        ) -> Result<(), String> {
            if let Some((name, _)) = added.iter().find(|(n, _)| n.starts_with("bad")) {
                return Err(format!(
                    "Cluster {name:?}: type: unsupported discovery type"
                ));
            }
            self.applied.push((
                type_url.to_owned(),
                added.into_iter().map(|(n, _)| n).collect(),
                removed.to_vec(),
            ));
            Ok(())
        }
    }

    fn response(
        t: &str,
        nonce: &str,
        added: &[(&str, &str)],
        removed: &[&str],
    ) -> DeltaDiscoveryResponse {
        DeltaDiscoveryResponse {
            type_url: t.to_owned(),
            nonce: nonce.to_owned(),
            resources: added
                .iter()
                .map(|(name, version)| Resource {
                    name: (*name).to_owned(),
                    version: (*version).to_owned(),
                    resource: Some(Any {
                        type_url: t.to_owned(),
                        value: vec![],
                    }),
                    ..Default::default()
                })
                .collect(),
            removed_resources: removed.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        }
    }

    fn node() -> Node {
        Node {
            id: "sidecar~10.0.0.1~p.shop~shop.svc.cluster.local".into(),
            ..Default::default()
        }
    }

    #[test]
    fn opening_requests_subscribe_to_everything_once() {
        let mut st = DeltaState::default();
        let reqs = st.opening_requests(&node());
        assert_eq!(
            reqs.iter().map(|r| r.type_url.as_str()).collect::<Vec<_>>(),
            SUBSCRIBED
        );
        assert!(reqs[0].node.is_some());
        assert!(reqs[1..].iter().all(|r| r.node.is_none()));
        assert!(reqs.iter().all(|r| r.resource_names_subscribe == ["*"]));
        assert!(reqs.iter().all(|r| r.initial_resource_versions.is_empty()));
    }

    #[test]
    fn ack_records_versions_nack_keeps_them() {
        let mut st = DeltaState::default();
        let mut sink = Recorder::default();
        let c = type_url::CLUSTER;
        let a = st.on_response(
            response(c, "1", &[("a", "v1"), ("b", "v1")], &[]),
            &mut sink,
        );
        assert_eq!(
            a,
            Answer::Ack(DeltaDiscoveryRequest {
                type_url: c.to_owned(),
                response_nonce: "1".into(),
                ..Default::default()
            })
        );
        let a = st.on_response(
            response(c, "2", &[("b", "v2"), ("bad-x", "v1")], &["a"]),
            &mut sink,
        );
        match &a {
            Answer::Nack { request, message } => {
                assert_eq!(request.response_nonce, "2");
                let detail = request.error_detail.as_ref().expect("error_detail");
                assert_eq!(detail.code, INVALID_ARGUMENT);
                assert!(detail.message.contains("bad-x"), "{message}");
                assert!(message.contains("unsupported discovery type"));
            }
            other => panic!("expected a NACK, got {other:?}"),
        }
        // the NACKed update changed nothing held
        let held = st.held(c).expect("held");
        assert_eq!(held.get("a").map(String::as_str), Some("v1"));
        assert_eq!(held.get("b").map(String::as_str), Some("v1"));
        assert_eq!(sink.applied.len(), 1);

        let a = st.on_response(response(c, "3", &[("b", "v2")], &["a"]), &mut sink);
        assert!(matches!(a, Answer::Ack(_)));
        let held = st.held(c).expect("held");
        assert_eq!(held.keys().collect::<Vec<_>>(), ["b"]);
        assert_eq!(
            sink.applied[1],
            (c.to_owned(), vec!["b".to_owned()], vec!["a".to_owned()])
        );

        // a reconnect announces what is held
        let reqs = st.opening_requests(&node());
        let clusters = reqs.iter().find(|r| r.type_url == c).expect("clusters");
        assert_eq!(
            clusters
                .initial_resource_versions
                .get("b")
                .map(String::as_str),
            Some("v2")
        );
        assert!(!st.all_answered(), "a new stream starts unanswered");
    }

    #[test]
    fn malformed_resources_are_nacked_with_the_field() {
        let mut st = DeltaState::default();
        let mut sink = Recorder::default();
        let mut r = response(type_url::LISTENER, "1", &[("l", "v")], &[]);
        r.resources[0].resource = None;
        match st.on_response(r, &mut sink) {
            Answer::Nack { message, .. } => {
                assert!(message.contains("resources[].resource"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        let mut r = response(type_url::LISTENER, "2", &[("l", "v")], &[]);
        if let Some(any) = r.resources[0].resource.as_mut() {
            any.type_url = type_url::CLUSTER.to_owned();
        }
        assert!(matches!(st.on_response(r, &mut sink), Answer::Nack { .. }));
        assert!(sink.applied.is_empty());
    }

    #[test]
    fn all_answered_after_each_type() {
        let mut st = DeltaState::default();
        let mut sink = Recorder::default();
        st.opening_requests(&node());
        for (i, t) in SUBSCRIBED.iter().enumerate() {
            assert!(!st.all_answered());
            st.on_response(response(t, &i.to_string(), &[], &[]), &mut sink);
        }
        assert!(st.all_answered());
    }
}
