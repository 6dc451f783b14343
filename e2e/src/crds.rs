//! Weft's CRDs (`config/crd`, the same kustomization users apply) in a
//! test cluster.

use crate::cluster::Cluster;
use crate::kubectl::KubectlError;

/// Applies every CRD of `config/crd` with server-side apply and waits until
/// the API server reports them Established. Idempotent: tests sharing a
/// cluster may all call it.
pub async fn install(cluster: &Cluster) -> Result<(), KubectlError> {
    let kubectl = cluster.kubectl();
    let crds = crate::repo_root().join("config/crd");
    kubectl
        .run(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=weft-e2e",
            "-k",
            &crds.to_string_lossy(),
        ])
        .await?;
    kubectl
        .run(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd",
            "-l",
            "app.kubernetes.io/part-of=weft",
        ])
        .await?;
    Ok(())
}
