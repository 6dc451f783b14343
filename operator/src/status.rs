//! Conditions from observations, pure: what the reconcilers saw (spec
//! errors, CA problems, apply results, Deployments, pods, the webhook
//! probe) → Reconciled / Ready / Progressing / Degraded with stable
//! PascalCase reasons and messages that say what to do. A condition's
//! `lastTransitionTime` moves only when its status changes, so an
//! unchanged world gives an identical status and no write.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use weft_api::weft::ConditionType;
use weft_api::weft::conditions::State;

/// A condition's content, before times and generations are added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cond {
    pub type_: ConditionType,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl Cond {
    pub fn new(
        type_: ConditionType,
        status: bool,
        reason: &str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }
}

/// Merges `conds` into `existing`: a condition whose status did not change
/// keeps its `lastTransitionTime`; the others get `now`.
pub fn merge(
    existing: &[Condition],
    conds: &[Cond],
    generation: i64,
    now: &Time,
) -> Vec<Condition> {
    conds
        .iter()
        .map(|c| {
            let status = if c.status { "True" } else { "False" }.to_owned();
            let previous = existing.iter().find(|e| e.type_ == c.type_.as_str());
            let last_transition_time = match previous {
                Some(p) if p.status == status => p.last_transition_time.clone(),
                _ => now.clone(),
            };
            Condition {
                type_: c.type_.as_str().to_owned(),
                status,
                reason: c.reason.clone(),
                message: truncate(&c.message),
                observed_generation: Some(generation),
                last_transition_time,
            }
        })
        .collect()
}

/// Condition messages are limited to 32768 bytes by the API.
fn truncate(message: &str) -> String {
    const MAX: usize = 4096;
    if message.len() <= MAX {
        return message.to_owned();
    }
    let mut end = MAX;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &message[..end])
}

/// Replaces Ready and Progressing in `conds` by what `existing` says (for a
/// reconcile that observed nothing because the spec is refused).
pub fn keep_observed(conds: &mut [Cond], existing: &[Condition]) {
    for c in conds.iter_mut() {
        if !matches!(c.type_, ConditionType::Ready | ConditionType::Progressing) {
            continue;
        }
        if let Some(e) = existing.iter().find(|e| e.type_ == c.type_.as_str()) {
            c.status = e.status == "True";
            c.reason = e.reason.clone();
            c.message = e.message.clone();
        }
    }
}

/// How a Deployment the operator runs is doing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rollout {
    pub name: String,
    pub desired: i32,
    pub updated: i32,
    pub available: i32,
    /// The Deployment controller saw the current spec.
    pub observed: bool,
    /// A pod cannot start its image: (image, detail).
    pub image_problem: Option<(String, String)>,
}

impl Rollout {
    /// From a Deployment (None: it does not exist yet) and its pods.
    pub fn observe(name: &str, deployment: Option<&Deployment>, pods: &[Pod]) -> Self {
        let Some(d) = deployment else {
            return Self {
                name: name.to_owned(),
                ..Default::default()
            };
        };
        let status = d.status.clone().unwrap_or_default();
        let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let observed = status.observed_generation.is_some()
            && status.observed_generation == d.metadata.generation;
        Self {
            name: name.to_owned(),
            desired,
            updated: status.updated_replicas.unwrap_or(0),
            available: status.available_replicas.unwrap_or(0),
            observed,
            image_problem: image_problem(pods),
        }
    }

    /// All desired replicas run the current spec and are available.
    pub fn complete(&self) -> bool {
        self.observed && self.updated >= self.desired && self.available >= self.desired
    }

    pub fn summary(&self) -> String {
        format!(
            "{}: {}/{} available, {} updated",
            self.name, self.available, self.desired, self.updated
        )
    }
}

/// Waiting reasons that mean the image is not on the node and cannot be pulled.
const IMAGE_REASONS: [&str; 4] = [
    "ErrImageNeverPull",
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
];

fn image_problem(pods: &[Pod]) -> Option<(String, String)> {
    pods.iter()
        .filter_map(|p| p.status.as_ref())
        .flat_map(|s| {
            s.container_statuses
                .iter()
                .flatten()
                .chain(s.init_container_statuses.iter().flatten())
        })
        .find_map(|cs| {
            let waiting = cs.state.as_ref()?.waiting.as_ref()?;
            let reason = waiting.reason.clone()?;
            IMAGE_REASONS.contains(&reason.as_str()).then(|| {
                (
                    cs.image.clone(),
                    format!("{reason}: {}", waiting.message.clone().unwrap_or_default()),
                )
            })
        })
}

/// Whether weftd's webhook answered the operator's probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookProbe {
    Answering,
    NotAnswering(String),
    /// Not registered yet (weftd was never available).
    NotRegistered,
}

/// What the revision controller observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevisionObservation {
    pub revision: String,
    /// Why the last reconcile could not apply: (reason, message).
    pub failure: Option<(String, String)>,
    pub weftd: Rollout,
    pub webhook: WebhookProbe,
    pub namespaces_in_use: i32,
}

/// The kubelet's message alternates (ErrImagePull, ImagePullBackOff) on
/// every retry: the condition names the image and the fix, not the
/// attempt, so it does not change (and is not rewritten) while it lasts.
fn image_message(image: &str, _detail: &str) -> String {
    format!(
        "image {image} is not present on the node and cannot be pulled: load it (make images) or set the operator's --weftd-image/--proxy-image"
    )
}

/// Conditions of a MeshRevision.
pub fn revision_conditions(o: &RevisionObservation) -> Vec<Cond> {
    use ConditionType::*;
    let reconciled = match &o.failure {
        None => Cond::new(
            Reconciled,
            true,
            "Applied",
            format!("weftd-{} and its webhooks match the revision", o.revision),
        ),
        Some((reason, message)) => Cond::new(Reconciled, false, reason, message.clone()),
    };
    let ready = if let Some((image, detail)) = &o.weftd.image_problem {
        Cond::new(
            Ready,
            false,
            "ImageNotPresent",
            image_message(image, detail),
        )
    } else if o.weftd.available == 0 {
        Cond::new(
            Ready,
            false,
            "ControlPlaneUnavailable",
            format!(
                "{}; see kubectl -n <mesh namespace> describe deployment {} and its pods' logs",
                o.weftd.summary(),
                o.weftd.name
            ),
        )
    } else {
        match &o.webhook {
            WebhookProbe::Answering => Cond::new(
                Ready,
                true,
                "ControlPlaneReady",
                format!("{}; webhook answering", o.weftd.summary()),
            ),
            WebhookProbe::NotAnswering(why) => Cond::new(
                Ready,
                false,
                "WebhookNotAnswering",
                format!("{}; the webhook does not answer: {why}", o.weftd.summary()),
            ),
            WebhookProbe::NotRegistered => Cond::new(
                Ready,
                false,
                "WebhookNotRegistered",
                "waiting for weftd to become available before registering its webhooks",
            ),
        }
    };
    let in_use = Cond::new(
        InUse,
        o.namespaces_in_use > 0,
        if o.namespaces_in_use > 0 {
            "NamespacesSelectRevision"
        } else {
            "NotInUse"
        },
        format!("{} namespace(s) select this revision", o.namespaces_in_use),
    );
    vec![reconciled, ready, in_use]
}

/// What the installation controller observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstallationObservation {
    pub revision: String,
    /// The spec cannot be carried out: (reason, message).
    pub spec_error: Option<(String, String)>,
    /// The CA material cannot be used: (reason, message).
    pub ca_error: Option<(String, String)>,
    /// Applying failed: (reason, message).
    pub apply_error: Option<(String, String)>,
    /// The revision's Ready condition: (status, reason, message), None before it reported.
    pub revision_ready: Option<(bool, String, String)>,
    pub weftd: Option<Rollout>,
    pub gateways: Vec<Rollout>,
}

/// Conditions of a MeshInstallation, and the one-word state.
pub fn installation_conditions(o: &InstallationObservation) -> (Vec<Cond>, State) {
    use ConditionType::*;
    let blocking = o
        .spec_error
        .as_ref()
        .or(o.ca_error.as_ref())
        .or(o.apply_error.as_ref());
    let reconciled = match blocking {
        None => Cond::new(
            Reconciled,
            true,
            "Applied",
            format!(
                "revision {}, {} gateway(s) applied",
                o.revision,
                o.gateways.len()
            ),
        ),
        Some((reason, message)) => Cond::new(Reconciled, false, reason, message.clone()),
    };
    let ready = match &o.revision_ready {
        Some((true, reason, message)) => Cond::new(Ready, true, reason, message.clone()),
        Some((false, reason, message)) => Cond::new(Ready, false, reason, message.clone()),
        None => Cond::new(
            Ready,
            false,
            "RevisionPending",
            format!("revision {} has not reported yet", o.revision),
        ),
    };

    let mut rolling: Vec<String> = Vec::new();
    if let Some(w) = o.weftd.as_ref().filter(|w| !w.complete()) {
        rolling.push(w.summary());
    }
    rolling.extend(
        o.gateways
            .iter()
            .filter(|g| !g.complete())
            .map(|g| format!("gateway {}", g.summary())),
    );
    let progressing = if rolling.is_empty() {
        Cond::new(
            Progressing,
            false,
            "Stable",
            "every Deployment runs the current spec",
        )
    } else {
        Cond::new(Progressing, true, "RollingOut", rolling.join("; "))
    };

    let image = o
        .weftd
        .iter()
        .chain(o.gateways.iter())
        .find_map(|r| r.image_problem.clone().map(|p| (r.name.clone(), p)));
    let degraded = if let Some((reason, message)) = o.spec_error.as_ref().or(o.ca_error.as_ref()) {
        Cond::new(
            Degraded,
            true,
            reason,
            format!("{message}; what runs is left as it was"),
        )
    } else if let Some((name, (img, detail))) = image {
        Cond::new(
            Degraded,
            true,
            "ImageNotPresent",
            format!("{name}: {}", image_message(&img, detail.as_str())),
        )
    } else if let Some((reason, message)) = &o.apply_error {
        Cond::new(Degraded, true, reason, message.clone())
    } else if o.revision_ready.as_ref().is_some_and(|r| !r.0)
        && o.weftd.as_ref().is_some_and(|w| w.available > 0)
    {
        let (_, reason, message) = o.revision_ready.clone().unwrap_or_default();
        Cond::new(Degraded, true, &reason, message)
    } else {
        Cond::new(Degraded, false, "AsExpected", "nothing is degraded")
    };

    let state = if o.spec_error.is_some() {
        State::Error
    } else if degraded.status {
        State::Degraded
    } else if ready.status && !progressing.status {
        State::Ready
    } else {
        State::Reconciling
    };
    (vec![reconciled, ready, progressing, degraded], state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn t(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).expect("valid time"))
    }

    fn available(n: i32) -> Rollout {
        Rollout {
            name: "weftd-default".into(),
            desired: n,
            updated: n,
            available: n,
            observed: true,
            image_problem: None,
        }
    }

    #[test]
    fn transition_time_moves_only_with_the_status() {
        let first = merge(
            &[],
            &[Cond::new(ConditionType::Ready, false, "A", "x")],
            1,
            &t(10),
        );
        let same = merge(
            &first,
            &[Cond::new(ConditionType::Ready, false, "B", "y")],
            2,
            &t(20),
        );
        assert_eq!(same[0].last_transition_time, t(10));
        assert_eq!(same[0].observed_generation, Some(2));
        let flipped = merge(
            &same,
            &[Cond::new(ConditionType::Ready, true, "C", "z")],
            2,
            &t(30),
        );
        assert_eq!(flipped[0].last_transition_time, t(30));
    }

    #[test]
    fn a_healthy_revision_is_ready() {
        let c = revision_conditions(&RevisionObservation {
            revision: "default".into(),
            failure: None,
            weftd: available(1),
            webhook: WebhookProbe::Answering,
            namespaces_in_use: 0,
        });
        assert!(c[0].status && c[1].status, "{c:?}");
        assert_eq!(c[1].reason, "ControlPlaneReady");
    }

    #[test]
    fn a_missing_image_is_named() {
        let mut w = available(1);
        w.available = 0;
        w.image_problem = Some(("weft.local/weftd:dev".into(), "ErrImageNeverPull: x".into()));
        let c = revision_conditions(&RevisionObservation {
            revision: "default".into(),
            failure: None,
            weftd: w,
            webhook: WebhookProbe::NotRegistered,
            namespaces_in_use: 0,
        });
        assert_eq!(c[1].reason, "ImageNotPresent");
        assert!(
            c[1].message.contains("weft.local/weftd:dev"),
            "{}",
            c[1].message
        );
    }

    #[test]
    fn a_bad_ca_degrades_but_keeps_ready_from_what_runs() {
        let (c, state) = installation_conditions(&InstallationObservation {
            revision: "default".into(),
            spec_error: None,
            ca_error: Some((
                "PluggedInCASecretInvalid".into(),
                "cacerts/ca-key.pem does not match ca-cert.pem".into(),
            )),
            apply_error: None,
            revision_ready: Some((true, "ControlPlaneReady".into(), "ok".into())),
            weftd: Some(available(1)),
            gateways: vec![],
        });
        let get = |t: ConditionType| c.iter().find(|x| x.type_ == t).cloned().expect("present");
        assert!(!get(ConditionType::Reconciled).status);
        assert_eq!(
            get(ConditionType::Reconciled).reason,
            "PluggedInCASecretInvalid"
        );
        assert!(get(ConditionType::Ready).status);
        let degraded = get(ConditionType::Degraded);
        assert!(degraded.status);
        assert!(
            degraded
                .message
                .starts_with("cacerts/ca-key.pem does not match ca-cert.pem")
        );
        assert_eq!(state, State::Degraded);
    }

    #[test]
    fn a_gateway_rolling_out_is_progress() {
        let mut g = available(2);
        g.name = "ingress".into();
        g.available = 1;
        let (c, state) = installation_conditions(&InstallationObservation {
            revision: "default".into(),
            spec_error: None,
            ca_error: None,
            apply_error: None,
            revision_ready: Some((true, "ControlPlaneReady".into(), "ok".into())),
            weftd: Some(available(1)),
            gateways: vec![g],
        });
        let p = c
            .iter()
            .find(|x| x.type_ == ConditionType::Progressing)
            .expect("present");
        assert!(p.status);
        assert!(
            p.message.contains("gateway ingress: 1/2 available"),
            "{}",
            p.message
        );
        assert_eq!(state, State::Reconciling);
    }
}
