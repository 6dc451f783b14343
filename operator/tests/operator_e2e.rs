//! End to end against a local cluster: the operator installed the way
//! users install it (`kubectl apply -k config/default`, images
//! weft.local/weft-operator:dev and weft.local/weftd:dev loaded), then one
//! MeshInstallation through its life: Ready, steady state without writes,
//! bad input, spec edits (replicas, a gateway added and removed), leader
//! failover, a plugged-in CA that breaks, and uninstall.
//!
//! `WEFT_E2E_CLUSTER_A=f cargo test -p weft-operator --test operator_e2e -- --ignored --nocapture`
//!
//! Traffic through the gateway and between injected workloads is checked
//! by `mesh_traffic_e2e.rs`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use weft_api::weft::{MeshInstallation, MeshRevision};
use weft_e2e::wait::poll_until;
use weft_e2e::{Cluster, Error, TestNamespace, ensure};

mod common;
use common::{OPERATOR_NS, install_operator, kubectl, remove_operator, repo};
use weft_operator::ca::CaFiles;

const MI: &str = "default";
const MESH_NS: &str = "weft-system";
const RESYNC_SECS: u64 = 10;

fn assert_err(message: String) -> Error {
    Error::Assert(message)
}

/// A condition of the MeshInstallation: (status, reason, message).
fn condition(mi: &MeshInstallation, type_: &str) -> Option<(bool, String, String)> {
    mi.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status == "True", c.reason.clone(), c.message.clone()))
}

fn describe(mi: &MeshInstallation) -> String {
    mi.status
        .as_ref()
        .map(|s| {
            s.conditions
                .iter()
                .map(|c| format!("{}={} {}: {}", c.type_, c.status, c.reason, c.message))
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .unwrap_or_else(|| "no status".to_owned())
}

/// Polls the MeshInstallation until `check` holds for the current generation.
async fn wait_mi(
    client: &Client,
    what: &str,
    timeout: Duration,
    check: impl Fn(&MeshInstallation) -> bool,
) -> Result<MeshInstallation, Error> {
    let api: Api<MeshInstallation> = Api::all(client.clone());
    let last = std::sync::Mutex::new(String::new());
    let found = poll_until(what, timeout, Duration::from_millis(500), || {
        let api = api.clone();
        let check = &check;
        let last = &last;
        async move {
            let mi = api.get(MI).await?;
            if let Ok(mut l) = last.lock() {
                *l = describe(&mi);
            }
            let current =
                mi.status.as_ref().and_then(|s| s.observed_generation) == mi.metadata.generation;
            Ok::<_, kube::Error>((current && check(&mi)).then_some(mi))
        }
    })
    .await;
    found.map_err(|e| {
        let last = last.lock().map(|l| l.clone()).unwrap_or_default();
        assert_err(format!("{e}; status: {last}"))
    })
}

fn ready(mi: &MeshInstallation) -> bool {
    condition(mi, "Ready").is_some_and(|c| c.0)
}

/// resourceVersion of every object the operator made for the installation,
/// plus the installation and its revision themselves (status writes count).
async fn versions(client: &Client) -> Result<BTreeMap<String, String>, Error> {
    let kinds = [
        ApiResource::erase::<Namespace>(&()),
        ApiResource::erase::<ServiceAccount>(&()),
        ApiResource::erase::<ClusterRole>(&()),
        ApiResource::erase::<ClusterRoleBinding>(&()),
        ApiResource::erase::<Secret>(&()),
        ApiResource::erase::<ConfigMap>(&()),
        ApiResource::erase::<Service>(&()),
        ApiResource::erase::<Deployment>(&()),
        ApiResource::erase::<PodDisruptionBudget>(&()),
        ApiResource::erase::<MutatingWebhookConfiguration>(&()),
        ApiResource::erase::<ValidatingWebhookConfiguration>(&()),
        ApiResource::erase::<MeshRevision>(&()),
        ApiResource::erase::<MeshInstallation>(&()),
    ];
    let mut out = BTreeMap::new();
    for ar in kinds {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        let params = if ar.kind == "MeshInstallation" {
            ListParams::default()
        } else {
            ListParams::default().labels(&format!("weft.dev/installation={MI}"))
        };
        for o in api.list(&params).await?.items {
            let key = format!(
                "{} {}/{}",
                ar.kind,
                o.namespace().unwrap_or_default(),
                o.name_any()
            );
            out.insert(key, o.resource_version().unwrap_or_default());
        }
    }
    Ok(out)
}

fn same_versions(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> Result<(), Error> {
    let changed: Vec<String> = before
        .iter()
        .filter(|(k, v)| after.get(*k) != Some(v))
        .map(|(k, v)| format!("{k}: {v} -> {:?}", after.get(k)))
        .collect();
    ensure(changed.is_empty(), || {
        format!("objects were rewritten: {changed:?}")
    })
}

/// The operator's writes so far (all but Lease renewals), from the leader's /metrics.
async fn operator_writes(cluster: &Cluster, pod: &str) -> Result<u64, Error> {
    let path = format!("/api/v1/namespaces/{OPERATOR_NS}/pods/{pod}:8080/proxy/metrics");
    let text = kubectl(cluster, &["get", "--raw", &path]).await?;
    Ok(text
        .lines()
        .filter(|l| {
            l.starts_with("weft_operator_api_writes_total{") && !l.contains("verb=\"lease\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64)
}

async fn leader(client: &Client) -> Result<String, Error> {
    let api: Api<Lease> = Api::namespaced(client.clone(), OPERATOR_NS);
    let lease = api.get("weft-operator").await?;
    // The holder is `<pod>_<random>`: the pod name is what tests use.
    lease
        .spec
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty())
        .map(|h| {
            h.rsplit_once('_')
                .map(|(pod, _)| pod.to_owned())
                .unwrap_or(h)
        })
        .ok_or_else(|| assert_err("the Lease has no holder".into()))
}

async fn patch_mi(client: &Client, patch: serde_json::Value) -> Result<(), Error> {
    let api: Api<MeshInstallation> = Api::all(client.clone());
    api.patch(MI, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

fn test_pod(name: &str) -> Result<Pod, Error> {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": weft_e2e::echo::image()}]}
    }))
    .map_err(|e| assert_err(e.to_string()))
}

fn has_proxy(pod: &Pod) -> bool {
    pod.spec.as_ref().is_some_and(|s| {
        s.containers
            .iter()
            .chain(s.init_containers.iter().flatten())
            .any(|c| c.name == "weft-proxy")
    })
}

#[tokio::test]
#[ignore = "needs the local cluster with weft-operator and weftd images: run via make test-e2e"]
async fn operator_installs_reconciles_fails_over_and_uninstalls() -> Result<(), Error> {
    weft_e2e::init_tracing();
    let cluster = Cluster::a().await?;
    let client = cluster.client.clone();
    install_operator(&cluster, &[format!("WEFT_RESYNC={RESYNC_SECS}s")]).await?;
    let result = lifecycle(&cluster, &client).await;
    if result.is_err() {
        let _ = kubectl(&cluster, &["get", "mi", MI, "-o", "yaml"])
            .await
            .map(|s| eprintln!("{s}"));
        let _ = kubectl(
            &cluster,
            &[
                "-n",
                OPERATOR_NS,
                "logs",
                "-l",
                "app.kubernetes.io/name=weft-operator",
                "--tail=40",
            ],
        )
        .await
        .map(|s| eprintln!("{s}"));
        // Leave nothing behind that could block pod creation.
        let api: Api<MeshInstallation> = Api::all(client.clone());
        let _ = api.delete(MI, &DeleteParams::default()).await;
    }
    remove_operator(&cluster).await?;
    result
}

async fn lifecycle(cluster: &Cluster, client: &Client) -> Result<(), Error> {
    let mis: Api<MeshInstallation> = Api::all(client.clone());
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), MESH_NS);

    // 1. Install → Ready.
    let labelled = TestNamespace::create(cluster, "op-injected").await?;
    Api::<Namespace>::all(client.clone())
        .patch(
            labelled.name(),
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"istio-injection": "enabled"}}})),
        )
        .await?;
    let mi: MeshInstallation = serde_yaml_ng::from_str(
        &std::fs::read_to_string(repo().join("config/samples/weft/meshinstallation-minimal.yaml"))
            .map_err(|e| assert_err(e.to_string()))?,
    )
    .map_err(|e| assert_err(e.to_string()))?;
    let started = Instant::now();
    mis.create(&PostParams::default(), &mi).await?;
    let installed = wait_mi(
        client,
        "MeshInstallation Ready",
        Duration::from_secs(240),
        ready,
    )
    .await?;
    let settled = |mi: &MeshInstallation| {
        ready(mi)
            && condition(mi, "Progressing").is_some_and(|c| !c.0)
            && condition(mi, "Degraded").is_some_and(|c| !c.0)
    };
    let to_ready = started.elapsed();
    eprintln!("FIGURE apply-to-Ready: {:.1}s", to_ready.as_secs_f64());
    ensure(
        condition(&installed, "Reconciled").is_some_and(|c| c.0),
        || describe(&installed),
    )?;
    ensure(
        installed
            .status
            .as_ref()
            .and_then(|s| s.active_revision.as_deref())
            == Some("default"),
        || "status.activeRevision is not default".into(),
    )?;

    wait_mi(
        client,
        "MeshInstallation settled",
        Duration::from_secs(60),
        settled,
    )
    .await?;

    // Injection answers for istio-injection=enabled (the pod cannot run
    // without weft-proxy's image; creation is what is checked).
    let pods: Api<Pod> = Api::namespaced(client.clone(), labelled.name());
    let injected = pods
        .create(&PostParams::default(), &test_pod("injected")?)
        .await?;
    ensure(has_proxy(&injected), || {
        "a pod in an istio-injection=enabled namespace got no weft-proxy".into()
    })?;
    pods.delete("injected", &DeleteParams::default().grace_period(0))
        .await?;

    // 2. Steady state: nothing rewritten across several resync periods.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = versions(client).await?;
    let leader_pod = leader(client).await?;
    let writes_before = operator_writes(cluster, &leader_pod).await?;
    let window = Duration::from_secs(RESYNC_SECS * 4 + 2);
    tokio::time::sleep(window).await;
    let after = versions(client).await?;
    same_versions(&before, &after)?;
    let writes = operator_writes(cluster, &leader_pod).await? - writes_before;
    eprintln!(
        "FIGURE steady-state writes (excluding Lease renewals): {writes} in {}s over {} objects",
        window.as_secs(),
        before.len()
    );
    ensure(writes == 0, || {
        format!("{writes} API writes in steady state")
    })?;

    // 3. Bad input: refused with a reason, nothing running touched.
    let weftd_before = deployments.get("weftd-default").await?.resource_version();
    patch_mi(
        client,
        json!({"spec": {"certificates": {"workloadCertTTL": "10ms"}}}),
    )
    .await?;
    let bad = wait_mi(
        client,
        "Reconciled=False for a too short TTL",
        Duration::from_secs(60),
        |mi| condition(mi, "Reconciled").is_some_and(|c| !c.0 && c.1 == "InvalidDuration"),
    )
    .await?;
    ensure(condition(&bad, "Ready").is_some_and(|c| c.0), || {
        format!("Ready dropped: {}", describe(&bad))
    })?;
    ensure(
        deployments.get("weftd-default").await?.resource_version() == weftd_before,
        || "weftd's Deployment changed because of a bad spec".into(),
    )?;
    patch_mi(client, json!({"spec": {"certificates": null}})).await?;
    wait_mi(client, "Reconciled again", Duration::from_secs(60), |mi| {
        condition(mi, "Reconciled").is_some_and(|c| c.0) && ready(mi)
    })
    .await?;

    // 4. Replicas follow the spec.
    patch_mi(client, json!({"spec": {"controlPlane": {"replicas": 2}}})).await?;
    wait_mi(
        client,
        "weftd at 2 replicas, settled",
        Duration::from_secs(180),
        |mi| {
            ready(mi)
                && condition(mi, "Progressing").is_some_and(|c| !c.0)
                && condition(mi, "Ready").is_some_and(|c| c.2.contains("2/2 available"))
        },
    )
    .await?;
    let d = deployments.get("weftd-default").await?;
    ensure(d.spec.and_then(|s| s.replicas) == Some(2), || {
        "weftd-default is not at 2 replicas".into()
    })?;

    // 5. A gateway added, then removed.
    patch_mi(
        client,
        json!({"spec": {"gateways": [{"name": "e2e-ingress", "kind": "ingress", "service": {"type": "ClusterIP"}}]}}),
    )
    .await?;
    let with_gw = wait_mi(
        client,
        "status reports the gateway",
        Duration::from_secs(90),
        |mi| describe(mi).contains("weft-system/e2e-ingress"),
    )
    .await?;
    eprintln!("gateway status: {}", describe(&with_gw));
    deployments.get("e2e-ingress").await?;
    Api::<Service>::namespaced(client.clone(), MESH_NS)
        .get("e2e-ingress")
        .await?;
    patch_mi(client, json!({"spec": {"gateways": null}})).await?;
    wait_mi(
        client,
        "the gateway is gone from status",
        Duration::from_secs(90),
        |mi| !describe(mi).contains("e2e-ingress") && ready(mi),
    )
    .await?;
    poll_until(
        "gateway objects deleted",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async {
            let d = deployments.get_opt("e2e-ingress").await?;
            let s = Api::<Service>::namespaced(client.clone(), MESH_NS)
                .get_opt("e2e-ingress")
                .await?;
            Ok::<_, kube::Error>((d.is_none() && s.is_none()).then_some(()))
        },
    )
    .await?;
    wait_mi(
        client,
        "settled after the gateway",
        Duration::from_secs(120),
        |mi| {
            ready(mi)
                && condition(mi, "Progressing").is_some_and(|c| !c.0)
                && condition(mi, "Degraded").is_some_and(|c| !c.0)
        },
    )
    .await?;

    // 6. Kill the active operator: the other takes over, nothing is rewritten.
    let old_leader = leader(client).await?;
    tokio::time::sleep(Duration::from_secs(RESYNC_SECS + 2)).await;
    let before = versions(client).await?;
    let operator_pods: Api<Pod> = Api::namespaced(client.clone(), OPERATOR_NS);
    let killed = Instant::now();
    operator_pods
        .delete(&old_leader, &DeleteParams::default().grace_period(0))
        .await?;
    let new_leader = poll_until(
        "another operator replica takes the Lease",
        Duration::from_secs(30),
        Duration::from_millis(250),
        || async {
            let holder = leader(client).await.ok();
            Ok::<_, Error>(holder.filter(|h| *h != old_leader))
        },
    )
    .await?;
    let failover = killed.elapsed();
    eprintln!(
        "FIGURE failover: {:.1}s ({old_leader} -> {new_leader})",
        failover.as_secs_f64()
    );
    ensure(failover <= Duration::from_secs(15), || {
        format!("failover took {failover:?}")
    })?;
    tokio::time::sleep(Duration::from_secs(RESYNC_SECS * 2 + 2)).await;
    same_versions(&before, &versions(client).await?)?;

    // 7. A plugged-in CA: copied in, weftd restarts with it; then broken.
    let ca_ns = TestNamespace::create(cluster, "op-ca").await?;
    let day = Duration::from_secs(86400);
    let files = CaFiles::generate("cluster.local", 3650 * day, 365 * day, SystemTime::now())
        .map_err(|e| assert_err(e.to_string()))?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ca_ns.name());
    secrets
        .create(
            &PostParams::default(),
            &Secret {
                metadata: kube::api::ObjectMeta {
                    name: Some("e2e-ca".into()),
                    ..Default::default()
                },
                data: Some(files.to_secret_data()),
                ..Default::default()
            },
        )
        .await?;
    patch_mi(
        client,
        json!({"spec": {"certificates": {"ca": {"type": "PluggedIn", "secretRef": {"name": "e2e-ca", "namespace": ca_ns.name()}}}}}),
    )
    .await?;
    let mesh_secrets: Api<Secret> = Api::namespaced(client.clone(), MESH_NS);
    poll_until(
        "cacerts holds the plugged-in root",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async {
            let s = mesh_secrets.get("cacerts").await?;
            let root = s
                .data
                .and_then(|d| d.get("root-cert.pem").map(|b| b.0.clone()))
                .unwrap_or_default();
            Ok::<_, kube::Error>((root == files.root_cert.as_bytes()).then_some(()))
        },
    )
    .await?;
    // weftd reads its CA at start: the new material rolls it.
    let fingerprint = weft_operator::render::controlplane::ca_fingerprint(
        files.ca_cert.as_bytes(),
        files.root_cert.as_bytes(),
    );
    poll_until(
        "weftd rolled out with the plugged-in CA",
        Duration::from_secs(240),
        Duration::from_secs(1),
        || async {
            let d = deployments.get("weftd-default").await?;
            let annotated = d
                .spec
                .as_ref()
                .and_then(|s| s.template.metadata.as_ref())
                .and_then(|m| m.annotations.as_ref())
                .and_then(|a| a.get("weft.dev/ca-fingerprint"))
                == Some(&fingerprint);
            let rolled = weft_e2e::wait::is_deployment_available(&d)
                && d.status.as_ref().and_then(|s| s.updated_replicas)
                    == d.spec.as_ref().and_then(|s| s.replicas)
                && d.status.as_ref().and_then(|s| s.replicas)
                    == d.spec.as_ref().and_then(|s| s.replicas);
            Ok::<_, kube::Error>((annotated && rolled).then_some(()))
        },
    )
    .await?;
    wait_mi(
        client,
        "Ready with the plugged-in CA",
        Duration::from_secs(240),
        |mi| ready(mi) && condition(mi, "Progressing").is_some_and(|c| !c.0),
    )
    .await?;
    let weftd_rv = deployments.get("weftd-default").await?.resource_version();
    let weftd_pods: Vec<String> = Api::<Pod>::namespaced(client.clone(), MESH_NS)
        .list(&ListParams::default().labels("app.kubernetes.io/name=weftd"))
        .await?
        .items
        .iter()
        .filter_map(|p| p.metadata.uid.clone())
        .collect();
    let cacerts_rv = mesh_secrets.get("cacerts").await?.resource_version();
    let other = CaFiles::generate("cluster.local", 3650 * day, 365 * day, SystemTime::now())
        .map_err(|e| assert_err(e.to_string()))?;
    secrets
        .patch(
            "e2e-ca",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"ca-key.pem": other.ca_key}})),
        )
        .await?;
    let broken = wait_mi(
        client,
        "Degraded: PluggedInCASecretInvalid",
        Duration::from_secs(60),
        |mi| condition(mi, "Degraded").is_some_and(|c| c.0 && c.1 == "PluggedInCASecretInvalid"),
    )
    .await?;
    let (_, _, message) = condition(&broken, "Degraded").unwrap_or_default();
    eprintln!("broken CA status: {}", describe(&broken));
    ensure(
        message.starts_with("e2e-ca/ca-key.pem is not the key of ca-cert.pem"),
        || message.clone(),
    )?;
    ensure(
        condition(&broken, "Reconciled").is_some_and(|c| !c.0 && c.1 == "PluggedInCASecretInvalid"),
        || describe(&broken),
    )?;
    ensure(ready(&broken), || {
        format!(
            "the running mesh stopped being Ready: {}",
            describe(&broken)
        )
    })?;
    tokio::time::sleep(Duration::from_secs(RESYNC_SECS + 2)).await;
    ensure(
        deployments.get("weftd-default").await?.resource_version() == weftd_rv,
        || "weftd's Deployment was changed".into(),
    )?;
    ensure(
        mesh_secrets.get("cacerts").await?.resource_version() == cacerts_rv,
        || "cacerts was rewritten with a broken CA".into(),
    )?;
    let pods_now: Vec<String> = Api::<Pod>::namespaced(client.clone(), MESH_NS)
        .list(&ListParams::default().labels("app.kubernetes.io/name=weftd"))
        .await?
        .items
        .iter()
        .filter_map(|p| p.metadata.uid.clone())
        .collect();
    ensure(pods_now == weftd_pods, || {
        "weftd's pods were replaced".into()
    })?;

    // 8. Uninstall: everything Weft made goes, webhooks first; user objects stay.
    mis.delete(MI, &DeleteParams::default()).await?;
    poll_until(
        "the MeshInstallation is gone",
        Duration::from_secs(120),
        Duration::from_millis(500),
        || async { Ok::<_, kube::Error>(mis.get_opt(MI).await?.is_none().then_some(())) },
    )
    .await?;
    // Pod creation in a labelled namespace works right away.
    let plain = pods
        .create(&PostParams::default(), &test_pod("after-uninstall")?)
        .await?;
    ensure(!has_proxy(&plain), || {
        "a pod was injected after uninstall".into()
    })?;
    let left = poll_until(
        "every object Weft made is deleted",
        Duration::from_secs(180),
        Duration::from_secs(1),
        || async {
            let left = versions(client).await?;
            Ok::<_, Error>(left.is_empty().then_some(()))
        },
    )
    .await;
    if left.is_err() {
        return Err(assert_err(format!(
            "left behind: {:?}",
            versions(client).await?
        )));
    }
    ensure(secrets.get_opt("e2e-ca").await?.is_some(), || {
        "the user's CA Secret was deleted".into()
    })?;
    Api::<Namespace>::all(client.clone())
        .get(labelled.name())
        .await?;
    labelled.cleanup().await?;
    ca_ns.cleanup().await?;
    Ok(())
}
