//! Issue 2's API-server acceptance: every generated CRD is accepted and
//! becomes Established, every sample in `config/samples/` is accepted
//! (server-side dry run, strict field validation), and every document in
//! `api/tests/invalid/` is refused with a message naming its field and
//! reason. Run with `make test-e2e`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use weft_e2e::{Cluster, Error, Kubectl, TestNamespace, ensure};

const APPLY_TIMEOUT: Duration = Duration::from_secs(120);

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    weft_api::documents::yaml_files(dir).unwrap_or_else(|e| panic!("{e}"))
}

fn documents(path: &Path) -> Vec<Value> {
    weft_api::documents::from_file(path).unwrap_or_else(|e| panic!("{e}"))
}

/// Whether Weft's CRD for this document's kind is namespaced.
fn namespaced(doc: &Value) -> bool {
    let group = doc["apiVersion"]
        .as_str()
        .and_then(|v| v.rsplit_once('/'))
        .map_or("", |(g, _)| g);
    let kind = doc["kind"].as_str().unwrap_or_default();
    weft_api::crd::all()
        .iter()
        .any(|c| c.spec.group == group && c.spec.names.kind == kind && c.spec.scope == "Namespaced")
}

/// Writes `doc` (moved into `ns` when namespaced) to a file and runs
/// `kubectl apply --dry-run=server --validate=strict` on it.
async fn dry_run(
    kubectl: &Kubectl,
    ns: &str,
    dir: &Path,
    index: usize,
    mut doc: Value,
) -> Result<weft_e2e::kubectl::KubectlOutput, Error> {
    if namespaced(&doc) {
        doc["metadata"]["namespace"] = Value::String(ns.to_owned());
    }
    let file = dir.join(format!("doc-{index}.json"));
    std::fs::write(&file, serde_json::to_vec(&doc).expect("JSON serializes"))
        .map_err(|e| Error::Assert(format!("write {}: {e}", file.display())))?;
    let file = file.to_string_lossy().into_owned();
    Ok(kubectl
        .output(
            &[
                "apply",
                "--dry-run=server",
                "--validate=strict",
                "-f",
                &file,
            ],
            APPLY_TIMEOUT,
        )
        .await?)
}

#[tokio::test]
#[ignore = "needs the local cluster: run via make test-e2e"]
async fn the_api_server_accepts_crds_and_samples_and_refuses_invalid_documents() -> Result<(), Error>
{
    weft_e2e::init_tracing();
    let cluster = Cluster::a().await?;
    let kubectl = cluster.kubectl();
    weft_e2e::crds::install(&cluster).await?;

    let ns = TestNamespace::create(&cluster, "crds").await?;
    let scratch = std::env::temp_dir().join(format!("weft-e2e-{}", ns.name()));
    std::fs::create_dir_all(&scratch)
        .map_err(|e| Error::Assert(format!("create {}: {e}", scratch.display())))?;
    let mut failures = Vec::new();
    let mut index = 0;

    let samples = yaml_files(&weft_e2e::repo_root().join("config/samples"));
    ensure(!samples.is_empty(), || "config/samples is empty".into())?;
    for file in &samples {
        for doc in documents(file) {
            index += 1;
            let out = dry_run(&kubectl, ns.name(), &scratch, index, doc).await?;
            if out.code != Some(0) {
                failures.push(format!(
                    "{}: refused: {}",
                    file.display(),
                    out.stderr.trim()
                ));
            }
        }
    }

    let invalid = yaml_files(&weft_e2e::repo_root().join("api/tests/invalid"));
    ensure(!invalid.is_empty(), || "api/tests/invalid is empty".into())?;
    for file in &invalid {
        let text = std::fs::read_to_string(file)
            .map_err(|e| Error::Assert(format!("read {}: {e}", file.display())))?;
        let header = |key: &str| weft_api::documents::comment_header(&text, key);
        let (Some(field), Some(reason)) = (header("field"), header("reason")) else {
            failures.push(format!(
                "{}: lacks '# field:' or '# reason:'",
                file.display()
            ));
            continue;
        };
        for doc in documents(file) {
            index += 1;
            let out = dry_run(&kubectl, ns.name(), &scratch, index, doc).await?;
            let said = out.stderr.trim();
            if out.code == Some(0) {
                failures.push(format!(
                    "{}: accepted, want refusal naming {field}",
                    file.display()
                ));
            } else if !(said.contains(field) && said.contains(reason)) {
                failures.push(format!(
                    "{}: want {field:?} and {reason:?} in the refusal, got: {said}",
                    file.display()
                ));
            }
        }
    }

    let _ = std::fs::remove_dir_all(&scratch);
    ns.cleanup().await?;
    ensure(failures.is_empty(), || failures.join("\n"))
}
