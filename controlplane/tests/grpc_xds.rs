//! A third-party xDS client against weftd: gRPC's own xDS resolver
//! (Python `grpcio`, from PyPI) resolves
//! `xds:///echo.<ns>.svc.cluster.local:9090` through weftd's plaintext xDS
//! and calls `weft.echo.v1.Echo/Echo` on the echo pods behind that Service
//! (pod IPs are reachable from the host). This shows weftd's xDS output is
//! standard, not just self-consistent: an `xds:///` target has no other
//! resolver to fall back on.
//!
//! Needs python3 with venv; `tests/grpc-xds/setup-venv.sh` installs grpcio
//! into `$WEFT_CACHE/venv`. Run:
//! `WEFT_E2E_CLUSTER_A=<x> cargo test -p weftd --test grpc_xds -- --ignored`
//! (or `make test-e2e`).

mod common;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;
use weft_e2e::{Cluster, Error, TestNamespace, echo, ensure};

use common::WeftdOnHost;

fn grpc_xds_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/grpc-xds")
}

async fn python() -> Result<String, Error> {
    let out = tokio::process::Command::new(grpc_xds_dir().join("setup-venv.sh"))
        .output()
        .await
        .map_err(|e| Error::Assert(format!("running setup-venv.sh: {e}")))?;
    ensure(out.status.success(), || {
        format!(
            "setup-venv.sh failed (is python3-venv installed and PyPI reachable?): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[tokio::test]
#[ignore = "needs the local cluster: run via make test-e2e"]
async fn grpc_xds_resolver_calls_echo_through_weftd() -> Result<(), Error> {
    weft_e2e::init_tracing();
    let python = python().await?;
    let cluster = Cluster::a().await?;
    let ns = TestNamespace::create(&cluster, "grpcxds").await?;
    let n = ns.name().to_owned();
    echo::deploy(&ns, "echo", "v1").await?;
    weft_e2e::crds::install(&cluster).await?;
    let weftd = WeftdOnHost::start(&cluster).await?;

    let node_id = format!("proxyless~~grpc-client.{n}~{n}.svc.cluster.local");
    let bootstrap = json!({
        "xds_servers": [{
            "server_uri": weftd.addr.to_string(),
            "channel_creds": [{ "type": "insecure" }],
            "server_features": ["xds_v3"],
        }],
        "node": {
            "id": node_id,
            "metadata": { "GENERATOR": "grpc", "NAMESPACE": n },
        },
    });
    let dir = std::env::temp_dir().join(format!("weft-grpc-xds-{n}"));
    std::fs::create_dir_all(&dir).map_err(|e| Error::Assert(format!("{}: {e}", dir.display())))?;
    let bootstrap_path = dir.join("bootstrap.json");
    std::fs::write(&bootstrap_path, bootstrap.to_string())
        .map_err(|e| Error::Assert(format!("{}: {e}", bootstrap_path.display())))?;

    let target = format!("xds:///echo.{n}.svc.cluster.local:{}", echo::GRPC_PORT);
    let run = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(&python)
            .arg(grpc_xds_dir().join("echo_client.py"))
            .arg(&target)
            .arg("3")
            .env("GRPC_XDS_BOOTSTRAP", &bootstrap_path)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| {
        Error::Assert(format!(
            "the grpcio client did not finish within 120 s calling {target}"
        ))
    })?
    .map_err(|e| Error::Assert(format!("running {python}: {e}")))?;
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    let calls: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    ensure(run.status.success() && calls.len() == 3, || {
        format!(
            "grpcio via xDS to {target} failed ({}):\n{stdout}\n{stderr}",
            run.status
        )
    })?;
    for c in &calls {
        ensure(
            c["ok"] == true
                && c["namespace"] == n.as_str()
                && c["pod"].as_str().is_some_and(|p| p.starts_with("echo-")),
            || format!("unexpected answer {c} (want an echo pod of {n})"),
        )?;
    }
    weftd.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    ns.cleanup().await?;
    Ok(())
}
