//! Installing and removing the operator the way users do
//! (`kubectl apply -k config/default`), shared by the operator's e2e tests.
//! Each test installs into the same `weft-operator` namespace, so removal
//! waits until the namespace is gone and installation waits for a
//! namespace still terminating from an earlier test.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use weft_e2e::wait::poll_until;
use weft_e2e::{Cluster, Error};

pub const OPERATOR_NS: &str = "weft-operator";
const NAMESPACE_GONE: Duration = Duration::from_secs(120);

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub async fn kubectl(cluster: &Cluster, args: &[&str]) -> Result<String, Error> {
    Ok(cluster.kubectl().run(args).await?)
}

/// Until the operator's namespace is absent or active (not terminating).
async fn namespace_usable(cluster: &Cluster) -> Result<(), Error> {
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    poll_until(
        "the weft-operator namespace is not terminating",
        NAMESPACE_GONE,
        Duration::from_millis(500),
        || async {
            let ns = namespaces.get_opt(OPERATOR_NS).await?;
            let terminating = ns
                .and_then(|n| n.status?.phase)
                .is_some_and(|p| p == "Terminating");
            Ok::<_, kube::Error>((!terminating).then_some(()))
        },
    )
    .await?;
    Ok(())
}

/// `kubectl apply -k config/default`, `env` set on the operator's
/// Deployment, then its rollout.
pub async fn install_operator(cluster: &Cluster, env: &[String]) -> Result<(), Error> {
    namespace_usable(cluster).await?;
    let default = repo().join("config/default");
    kubectl(
        cluster,
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=weft-e2e",
            "-k",
            &default.to_string_lossy(),
        ],
    )
    .await?;
    if !env.is_empty() {
        let mut args = vec!["-n", OPERATOR_NS, "set", "env", "deployment/weft-operator"];
        args.extend(env.iter().map(String::as_str));
        kubectl(cluster, &args).await?;
    }
    kubectl(
        cluster,
        &[
            "-n",
            OPERATOR_NS,
            "rollout",
            "status",
            "deployment/weft-operator",
            "--timeout=180s",
        ],
    )
    .await?;
    Ok(())
}

/// Deletes the operator (Deployment, RBAC, namespace; the CRDs stay) and
/// waits until its namespace is gone.
pub async fn remove_operator(cluster: &Cluster) -> Result<(), Error> {
    for dir in ["config/manager", "config/rbac"] {
        let path = repo().join(dir);
        kubectl(
            cluster,
            &[
                "delete",
                "--ignore-not-found",
                "--wait=false",
                "-k",
                &path.to_string_lossy(),
            ],
        )
        .await?;
    }
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    poll_until(
        "the weft-operator namespace is gone",
        NAMESPACE_GONE,
        Duration::from_millis(500),
        || async {
            Ok::<_, kube::Error>(
                namespaces
                    .get_opt(OPERATOR_NS)
                    .await?
                    .is_none()
                    .then_some(()),
            )
        },
    )
    .await?;
    Ok(())
}
