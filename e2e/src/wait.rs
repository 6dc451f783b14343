//! Waiting on the API server by watching (or, where nothing can be watched,
//! by polling), always with a timeout and an error naming what was awaited.

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::wait::{Condition, await_condition, conditions};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::time::Instant;

/// Default time to wait for a workload to come up on the local cluster.
pub const WORKLOAD_TIMEOUT: Duration = Duration::from_secs(180);

/// Errors while waiting.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error("timed out after {timeout:?} waiting for {what}; last seen: {last}")]
    Timeout {
        what: String,
        timeout: Duration,
        last: String,
    },
    #[error("watching while waiting for {what} failed: {source}")]
    Watch {
        what: String,
        #[source]
        source: kube::runtime::wait::Error,
    },
    #[error("{what}: the object does not exist (or was deleted while waiting)")]
    Gone { what: String },
    #[error("{what}: {detail}")]
    Failed { what: String, detail: String },
}

/// Watches `name` until `cond` holds; returns the object (`None` only if the
/// condition accepts absence, e.g. [`conditions::is_deleted`]).
pub async fn wait_for<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    timeout: Duration,
    cond: impl Condition<K>,
) -> Result<Option<K>, WaitError>
where
    K: Clone + Debug + Send + DeserializeOwned + Resource + serde::Serialize + 'static,
{
    match tokio::time::timeout(timeout, await_condition(api.clone(), name, cond)).await {
        Ok(Ok(obj)) => Ok(obj),
        Ok(Err(source)) => Err(WaitError::Watch {
            what: what.to_owned(),
            source,
        }),
        Err(_) => Err(WaitError::Timeout {
            what: what.to_owned(),
            timeout,
            last: describe(api, name).await,
        }),
    }
}

/// Like [`wait_for`] for a condition that needs the object to exist.
pub async fn wait_for_object<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    timeout: Duration,
    cond: impl Condition<K>,
) -> Result<K, WaitError>
where
    K: Clone + Debug + Send + DeserializeOwned + Resource + serde::Serialize + 'static,
{
    wait_for(api, name, what, timeout, cond)
        .await?
        .ok_or_else(|| WaitError::Gone {
            what: what.to_owned(),
        })
}

/// Waits until the object `name` with `uid` is gone (404 or a new uid).
pub async fn wait_deleted<K>(
    api: &Api<K>,
    name: &str,
    uid: &str,
    what: &str,
    timeout: Duration,
) -> Result<(), WaitError>
where
    K: Clone + Debug + Send + DeserializeOwned + Resource + serde::Serialize + 'static,
{
    wait_for(api, name, what, timeout, conditions::is_deleted::<K>(uid))
        .await
        .map(drop)
}

/// The object's status (or "absent") for timeout messages, cut to 1500 chars.
async fn describe<K>(api: &Api<K>, name: &str) -> String
where
    K: Clone + Debug + DeserializeOwned + Resource + serde::Serialize,
{
    match api.get_opt(name).await {
        Ok(Some(obj)) => {
            let value = serde_json::to_value(&obj).unwrap_or_default();
            let status = value.get("status").cloned().unwrap_or(value);
            let mut text = status.to_string();
            if text.len() > 1500 {
                let cut = (0..=1500)
                    .rev()
                    .find(|i| text.is_char_boundary(*i))
                    .unwrap_or(0);
                text.truncate(cut);
                text.push('…');
            }
            format!("{} {}", obj.name_any(), text)
        }
        Ok(None) => "absent".to_owned(),
        Err(e) => format!("(could not read it: {e})"),
    }
}

/// Polls `check` every `interval` until it returns `Ok(Some(_))`, for things
/// that cannot be watched (HTTP endpoints, command output). `Ok(None)` and
/// errors keep polling; the last error is reported on timeout.
pub async fn poll_until<T, E, F, Fut>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut check: F,
) -> Result<T, WaitError>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, E>>,
{
    let deadline = Instant::now() + timeout;
    let mut last = "not yet".to_owned();
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, check()).await {
            Ok(Ok(Some(value))) => return Ok(value),
            Ok(Ok(None)) => last = "condition not met".to_owned(),
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => {}
        }
        if Instant::now() + interval >= deadline {
            return Err(WaitError::Timeout {
                what: what.to_owned(),
                timeout,
                last,
            });
        }
        tokio::time::sleep(interval).await;
    }
}

/// Deployment `Available=True` with every desired replica available and the
/// latest generation observed.
pub fn deployment_available() -> impl Condition<Deployment> {
    |obj: Option<&Deployment>| obj.is_some_and(is_deployment_available)
}

/// See [`deployment_available`].
pub fn is_deployment_available(d: &Deployment) -> bool {
    let Some(status) = &d.status else {
        return false;
    };
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let observed = status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
    let available = status.conditions.as_ref().is_some_and(|cs| {
        cs.iter()
            .any(|c| c.type_ == "Available" && c.status == "True")
    });
    observed
        && available
        && status.available_replicas.unwrap_or(0) >= want
        && status.updated_replicas.unwrap_or(0) >= want
}

/// Container waiting reasons that will not resolve by waiting.
pub const STUCK_REASONS: &[&str] = &[
    "ErrImageNeverPull",
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
    "CrashLoopBackOff",
];

/// Pod phase Succeeded or Failed, or a container stuck for a reason listed
/// in [`STUCK_REASONS`].
pub fn pod_finished_or_stuck() -> impl Condition<Pod> {
    |obj: Option<&Pod>| obj.is_some_and(|p| pod_finished(p) || pod_stuck(p).is_some())
}

/// Phase `Succeeded` or `Failed`.
pub fn pod_finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// `Some("container: Reason: message")` when a container is stuck.
pub fn pod_stuck(pod: &Pod) -> Option<String> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    statuses.iter().find_map(|cs| {
        let waiting = cs.state.as_ref()?.waiting.as_ref()?;
        let reason = waiting.reason.as_deref()?;
        STUCK_REASONS.contains(&reason).then(|| {
            format!(
                "container {}: {reason}: {}",
                cs.name,
                waiting.message.as_deref().unwrap_or("")
            )
        })
    })
}

/// Pod `Ready=True`.
pub fn pod_ready() -> impl Condition<Pod> {
    |obj: Option<&Pod>| {
        obj.and_then(|p| p.status.as_ref())
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentSpec, DeploymentStatus};
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateWaiting, ContainerStatus, PodStatus,
    };

    fn deployment(
        replicas: i32,
        available: i32,
        cond: &str,
        generation: i64,
        observed: i64,
    ) -> Deployment {
        let mut d = Deployment {
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                ..Default::default()
            }),
            status: Some(DeploymentStatus {
                available_replicas: Some(available),
                updated_replicas: Some(available),
                observed_generation: Some(observed),
                conditions: Some(vec![DeploymentCondition {
                    type_: "Available".into(),
                    status: cond.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        d.metadata.generation = Some(generation);
        d
    }

    #[test]
    fn deployment_availability_table() {
        assert!(is_deployment_available(&deployment(1, 1, "True", 1, 1)));
        assert!(!is_deployment_available(&deployment(2, 1, "True", 1, 1)));
        assert!(!is_deployment_available(&deployment(1, 1, "False", 1, 1)));
        assert!(!is_deployment_available(&deployment(1, 1, "True", 2, 1)));
        assert!(!is_deployment_available(&Deployment::default()));
    }

    #[test]
    fn stuck_pods_are_reported() {
        let pod = |reason: &str| Pod {
            status: Some(PodStatus {
                phase: Some("Pending".into()),
                container_statuses: Some(vec![ContainerStatus {
                    name: "c".into(),
                    state: Some(ContainerState {
                        waiting: Some(ContainerStateWaiting {
                            reason: Some(reason.into()),
                            message: Some("m".into()),
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            pod_stuck(&pod("ErrImageNeverPull")).as_deref(),
            Some("container c: ErrImageNeverPull: m")
        );
        assert_eq!(pod_stuck(&pod("ContainerCreating")), None);
        assert!(!pod_finished(&pod("ContainerCreating")));
    }

    #[tokio::test]
    async fn poll_until_reports_the_last_error() {
        let mut n = 0;
        let ok = poll_until(
            "n reaches 3",
            Duration::from_secs(5),
            Duration::from_millis(1),
            || {
                n += 1;
                let v = n;
                async move {
                    if v >= 3 {
                        Ok::<_, String>(Some(v))
                    } else {
                        Ok(None)
                    }
                }
            },
        )
        .await
        .expect("reaches 3");
        assert_eq!(ok, 3);
        let err = poll_until(
            "never",
            Duration::from_millis(30),
            Duration::from_millis(5),
            || async { Err::<Option<()>, _>("boom") },
        )
        .await
        .expect_err("times out");
        let text = err.to_string();
        assert!(text.contains("never") && text.contains("boom"), "{text}");
    }
}
