//! One-shot pods: run a command to completion, collect exit code and logs.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use kube::api::{AttachParams, LogParams, ObjectMeta, PostParams};
use kube::{Api, ResourceExt};
use serde::de::DeserializeOwned;

use crate::namespace::TestNamespace;
use crate::wait::{WaitError, pod_finished_or_stuck, pod_stuck, wait_for_object};

/// Default time for a one-shot pod to start, run and finish.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// Errors running a one-shot pod.
#[derive(Debug, thiserror::Error)]
pub enum PodError {
    #[error("creating pod {ns}/{name}: {source}")]
    Create {
        ns: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("pod {ns}/{name} cannot start: {reason} (was the image loaded? run `make images`)")]
    Stuck {
        ns: String,
        name: String,
        reason: String,
    },
    #[error("reading logs of pod {ns}/{name}: {source}")]
    Logs {
        ns: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("exec in pod {ns}/{name}: {detail}")]
    Exec {
        ns: String,
        name: String,
        detail: String,
    },
    #[error("exec in pod {ns}/{name} did not finish within {timeout:?}")]
    ExecTimeout {
        ns: String,
        name: String,
        timeout: Duration,
    },
    #[error(transparent)]
    Wait(#[from] WaitError),
    #[error("pod {name} ended in phase {phase} with exit code {exit_code:?}; logs:\n{logs}")]
    Failed {
        name: String,
        phase: String,
        exit_code: Option<i32>,
        logs: String,
    },
}

/// How a one-shot pod ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRun {
    pub name: String,
    pub phase: String,
    /// Exit code of the first container.
    pub exit_code: Option<i32>,
    /// Logs of the first container (stdout and stderr interleaved).
    pub logs: String,
}

impl PodRun {
    pub fn succeeded(&self) -> bool {
        self.phase == "Succeeded" && self.exit_code == Some(0)
    }

    /// `Ok` if the pod succeeded, else an error carrying its logs.
    pub fn assert_success(&self) -> Result<&Self, PodError> {
        if self.succeeded() {
            Ok(self)
        } else {
            Err(PodError::Failed {
                name: self.name.clone(),
                phase: self.phase.clone(),
                exit_code: self.exit_code,
                logs: self.logs.clone(),
            })
        }
    }

    /// The log lines that parse as `T` (JSON), skipping log noise.
    pub fn json_lines<T: DeserializeOwned>(&self) -> Vec<T> {
        json_lines(&self.logs)
    }
}

/// Lines of `text` that parse as `T`.
pub fn json_lines<T: DeserializeOwned>(text: &str) -> Vec<T> {
    text.lines()
        .filter_map(|l| serde_json::from_str(l.trim()).ok())
        .collect()
}

/// A pod that runs `image` with `args` once (restartPolicy Never, local
/// image only, no grace period).
pub fn one_shot_pod(name: &str, image: &str, args: &[&str]) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some([("app".to_owned(), name.to_owned())].into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            restart_policy: Some("Never".to_owned()),
            termination_grace_period_seconds: Some(0),
            automount_service_account_token: Some(false),
            containers: vec![Container {
                name: "main".to_owned(),
                image: Some(image.to_owned()),
                image_pull_policy: Some("Never".to_owned()),
                args: Some(args.iter().map(|a| (*a).to_owned()).collect()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Creates `pod` in `ns`, waits (watching) until it finishes, returns its
/// phase, exit code and logs. A pod that cannot start fails fast.
pub async fn run_pod(ns: &TestNamespace, pod: Pod, timeout: Duration) -> Result<PodRun, PodError> {
    let api: Api<Pod> = ns.api();
    let name = pod.name_any();
    let err_ns = ns.name().to_owned();
    api.create(&PostParams::default(), &pod)
        .await
        .map_err(|source| PodError::Create {
            ns: err_ns.clone(),
            name: name.clone(),
            source,
        })?;
    let what = format!("pod {}/{name} to finish", ns.name());
    let done = wait_for_object(&api, &name, &what, timeout, pod_finished_or_stuck()).await?;
    if let Some(reason) = pod_stuck(&done) {
        return Err(PodError::Stuck {
            ns: err_ns,
            name,
            reason,
        });
    }
    let status = done.status.unwrap_or_default();
    let exit_code = status
        .container_statuses
        .as_ref()
        .and_then(|cs| cs.first())
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.as_ref())
        .map(|t| t.exit_code);
    let logs = api
        .logs(&name, &LogParams::default())
        .await
        .map_err(|source| PodError::Logs {
            ns: err_ns,
            name: name.clone(),
            source,
        })?;
    let run = PodRun {
        name,
        phase: status.phase.unwrap_or_default(),
        exit_code,
        logs,
    };
    tracing::info!(pod = %run.name, phase = %run.phase, exit_code = ?run.exit_code, "one-shot pod finished");
    Ok(run)
}

/// What a command run with [`exec`] printed, and whether it succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub stdout: String,
    pub stderr: String,
    /// The API server's verdict: `Success`, or the failure message (which
    /// names the exit code).
    pub success: bool,
    pub message: String,
}

/// Runs `cmd` in `pod` (first container unless `container`) through the
/// API server's exec subresource (websocket), without kubectl.
pub async fn exec(
    ns: &TestNamespace,
    pod: &str,
    container: Option<&str>,
    cmd: &[&str],
    timeout: Duration,
) -> Result<ExecOutput, PodError> {
    use tokio::io::AsyncReadExt;
    let err = |detail: String| PodError::Exec {
        ns: ns.name().to_owned(),
        name: pod.to_owned(),
        detail,
    };
    let api: Api<Pod> = ns.api();
    let mut params = AttachParams::default()
        .stdin(false)
        .stdout(true)
        .stderr(true);
    if let Some(c) = container {
        params = params.container(c);
    }
    let run = async {
        let mut process = api
            .exec(pod, cmd.iter().copied(), &params)
            .await
            .map_err(|e| err(e.to_string()))?;
        let status = process.take_status();
        let (mut out, mut errs) = (Vec::new(), Vec::new());
        let (stdout, stderr) = (process.stdout(), process.stderr());
        let read_out = async {
            if let Some(mut s) = stdout {
                s.read_to_end(&mut out).await?;
            }
            Ok::<_, std::io::Error>(())
        };
        let read_err = async {
            if let Some(mut s) = stderr {
                s.read_to_end(&mut errs).await?;
            }
            Ok::<_, std::io::Error>(())
        };
        let (r1, r2) = tokio::join!(read_out, read_err);
        r1.and(r2)
            .map_err(|e| err(format!("reading output: {e}")))?;
        let status = match status {
            Some(s) => s.await,
            None => None,
        };
        process.join().await.map_err(|e| err(e.to_string()))?;
        let success = status.as_ref().and_then(|s| s.status.as_deref()) == Some("Success");
        let message = status.and_then(|s| s.message).unwrap_or_default();
        Ok(ExecOutput {
            stdout: String::from_utf8_lossy(&out).into_owned(),
            stderr: String::from_utf8_lossy(&errs).into_owned(),
            success,
            message,
        })
    };
    tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| PodError::ExecTimeout {
            ns: ns.name().to_owned(),
            name: pod.to_owned(),
            timeout,
        })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shot_pods_never_restart_and_use_local_images() {
        let pod = one_shot_pod(
            "probe",
            "weft.local/echo:dev",
            &["client", "--url", "http://x/"],
        );
        let spec = pod.spec.expect("spec");
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        let c = &spec.containers[0];
        assert_eq!(c.image_pull_policy.as_deref(), Some("Never"));
        assert_eq!(c.args.as_ref().map(Vec::len), Some(3));
    }

    #[test]
    fn json_lines_skip_noise() {
        #[derive(serde::Deserialize)]
        struct L {
            a: u32,
        }
        let lines: Vec<L> = json_lines("noise\n{\"a\":1}\n{\"b\":2}\n {\"a\":3} \n");
        assert_eq!(lines.iter().map(|l| l.a).collect::<Vec<_>>(), vec![1, 3]);
    }
}
