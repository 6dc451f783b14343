//! Issue 3's acceptance tests for the local real-Kubernetes clusters.
//!
//! They need clusters a and b with the images loaded: run them with
//! `make test-e2e` (which brings the clusters up, loads the images, runs
//! `cargo test -p weft-e2e -- --ignored` and tears everything down). Against
//! clusters that are already up: `make images CLUSTERS="a b"` then
//! `cargo test -p weft-e2e --test cluster -- --ignored`.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::runtime::wait::Condition;
use kube::{Api, ResourceExt};
use weft_e2e::cluster::{cluster_name, node_ready};
use weft_e2e::wait::{WORKLOAD_TIMEOUT, pod_ready, poll_until, wait_deleted, wait_for_object};
use weft_e2e::{Cluster, Error, TestNamespace, certs, echo, ensure, pinned_kubernetes_version};

const SHORT: Duration = Duration::from_secs(60);

/// The pods of Deployment `app` (label `app=<app>`).
async fn pods_of(ns: &TestNamespace, app: &str) -> Result<Vec<Pod>, Error> {
    let pods: Api<Pod> = ns.api();
    Ok(pods
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await?
        .items)
}

async fn the_pod_of(ns: &TestNamespace, app: &str) -> Result<Pod, Error> {
    let mut pods = pods_of(ns, app).await?;
    ensure(pods.len() == 1, || {
        format!("expected one pod of {app}, found {}", pods.len())
    })?;
    Ok(pods.remove(0))
}

fn pod_ip(pod: &Pod) -> Result<String, Error> {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .ok_or_else(|| Error::Assert(format!("pod {} has no IP", pod.name_any())))
}

#[tokio::test]
#[ignore = "needs the local cluster: run via make test-e2e"]
async fn node_is_ready_and_reports_the_pinned_version() -> Result<(), Error> {
    weft_e2e::init_tracing();
    let pin = pinned_kubernetes_version()?;
    for role in ["a", "b"] {
        let name = cluster_name(role);
        let cluster = Cluster::connect(&name).await?;
        let node = cluster.node().await?;
        let nodes: Api<Node> = Api::all(cluster.client.clone());
        let what = format!("node {} of cluster {name} to be Ready", node.name_any());
        let node = wait_for_object(
            &nodes,
            &node.name_any(),
            &what,
            SHORT,
            |n: Option<&Node>| n.is_some_and(node_ready),
        )
        .await?;
        let version = cluster.server_version().await?;
        ensure(version == pin, || {
            format!("cluster {name}: /version says {version}, e2e/cluster pins {pin}")
        })?;
        let kubelet = node
            .status
            .and_then(|s| s.node_info)
            .map(|i| i.kubelet_version)
            .unwrap_or_default();
        ensure(kubelet == pin, || {
            format!("cluster {name}: kubelet reports {kubelet}, e2e/cluster pins {pin}")
        })?;
    }
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local cluster: run via make test-e2e"]
async fn echo_becomes_available_and_its_endpointslice_lists_the_pod() -> Result<(), Error> {
    weft_e2e::init_tracing();
    let cluster = Cluster::a().await?;
    let ns = TestNamespace::create(&cluster, "echo-available").await?;
    echo::deploy(&ns, "echo", "v1").await?;
    let pod = the_pod_of(&ns, "echo").await?;
    let (pod_name, ip) = (pod.name_any(), pod_ip(&pod)?);

    // The EndpointSlice controller catches up asynchronously: poll it.
    let slices: Api<EndpointSlice> = ns.api();
    let what = format!("EndpointSlice of service echo to list pod {pod_name} ({ip}) as ready");
    poll_until(&what, SHORT, Duration::from_millis(250), || {
        let slices = slices.clone();
        let (pod_name, ip) = (pod_name.clone(), ip.clone());
        async move {
            let list = slices
                .list(&ListParams::default().labels("kubernetes.io/service-name=echo"))
                .await?;
            let found = list.items.iter().flat_map(|s| s.endpoints.iter()).any(|e| {
                e.target_ref.as_ref().and_then(|r| r.name.as_deref()) == Some(pod_name.as_str())
                    && e.addresses.contains(&ip)
                    && e.conditions.as_ref().and_then(|c| c.ready) == Some(true)
            });
            Ok::<_, kube::Error>(found.then_some(()))
        }
    })
    .await?;
    ns.cleanup().await?;
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local cluster: run via make test-e2e"]
async fn pods_reach_echo_through_cluster_ip_and_dns() -> Result<(), Error> {
    weft_e2e::init_tracing();
    let cluster = Cluster::a().await?;
    let ns = TestNamespace::create(&cluster, "echo-reach").await?;
    echo::deploy(&ns, "echo", "v1").await?;
    let echo_pod = the_pod_of(&ns, "echo").await?.name_any();
    let services: Api<Service> = ns.api();
    let cluster_ip = services
        .get("echo")
        .await?
        .spec
        .and_then(|s| s.cluster_ip)
        .ok_or_else(|| Error::Assert("service echo has no ClusterIP".into()))?;
    let host = ns.service_host("echo");

    let http = |target: &str| format!("http://{target}:8080/reach?from=e2e");
    let grpc = |target: &str| format!("http://{target}:9090");
    let (ip_h1, dns_h1, ip_h2, dns_h2) = (
        http(&cluster_ip),
        http(&host),
        http(&cluster_ip),
        http(&host),
    );
    let (ip_grpc, dns_grpc) = (grpc(&cluster_ip), grpc(&host));
    let tcp_dns = format!("{host}:9000");
    let retry = ["--retry-for", "30s"];
    let runs = futures::future::try_join_all(
        [
            ("http1-ip", vec!["client", "--url", &ip_h1, "--count", "2"]),
            (
                "http1-dns",
                vec!["client", "--url", &dns_h1, "--count", "2"],
            ),
            ("h2c-ip", vec!["client", "--http2", "--url", &ip_h2]),
            ("h2c-dns", vec!["client", "--http2", "--url", &dns_h2]),
            ("grpc-ip", vec!["grpc-client", "--addr", &ip_grpc]),
            ("grpc-dns", vec!["grpc-client", "--addr", &dns_grpc]),
            (
                "tcp-dns",
                vec!["tcp-client", "--addr", &tcp_dns, "--message", "weft"],
            ),
        ]
        .into_iter()
        .map(|(name, mut args)| {
            args.extend(retry);
            let ns = &ns;
            async move {
                echo::run_client(ns, name, &args)
                    .await
                    .map(|run| (name, run))
            }
        }),
    )
    .await?;

    for (name, run) in &runs {
        run.assert_success()?;
        match *name {
            n if n.starts_with("http1") || n.starts_with("h2c") => {
                let reports = echo::http_reports(run);
                let want = if n.starts_with("h2c") {
                    "HTTP/2.0"
                } else {
                    "HTTP/1.1"
                };
                ensure(!reports.is_empty(), || {
                    format!("{n}: no report in {:?}", run.logs)
                })?;
                for r in &reports {
                    ensure(
                        r.pod == echo_pod && r.namespace == ns.name() && r.version == "v1",
                        || {
                            format!(
                                "{n}: answered by {}/{} {}, expected {echo_pod}",
                                r.namespace, r.pod, r.version
                            )
                        },
                    )?;
                    ensure(r.protocol == want, || {
                        format!("{n}: protocol {} != {want}", r.protocol)
                    })?;
                    ensure(r.path == "/reach", || format!("{n}: path {}", r.path))?;
                }
            }
            n if n.starts_with("grpc") => {
                let reports = echo::grpc_reports(run);
                ensure(
                    reports.len() == 1
                        && reports[0].pod == echo_pod
                        && reports[0].message == "hello",
                    || format!("{n}: unexpected gRPC answers {reports:?}"),
                )?;
            }
            n => {
                let reports: Vec<weft_echo::TcpReport> = run.json_lines();
                ensure(reports.len() == 1 && reports[0].received == "weft", || {
                    format!("{n}: unexpected TCP answers {reports:?}")
                })?;
            }
        }
    }
    ns.cleanup().await?;
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local cluster: run via make test-e2e"]
async fn kubectl_logs_and_exec_work() -> Result<(), Error> {
    weft_e2e::init_tracing();
    let cluster = Cluster::a().await?;
    let ns = TestNamespace::create(&cluster, "kubectl").await?;
    echo::deploy(&ns, "echo", "v1").await?;
    let pod = the_pod_of(&ns, "echo").await?.name_any();
    let kubectl = ns.kubectl();

    // exec: run the echo client inside the (shell-less) echo container.
    let out = kubectl
        .exec(
            ns.name(),
            &pod,
            &[
                "/weft-echo",
                "client",
                "--url",
                "http://127.0.0.1:8080/exec-probe",
            ],
        )
        .await?;
    let reports: Vec<weft_echo::EchoReport> = weft_e2e::pods::json_lines(&out);
    ensure(
        reports.len() == 1 && reports[0].pod == pod && reports[0].path == "/exec-probe",
        || format!("kubectl exec printed {out:?}"),
    )?;

    // The same through the API server's exec subresource (no kubectl).
    let api_exec = weft_e2e::pods::exec(
        &ns,
        &pod,
        None,
        &[
            "/weft-echo",
            "client",
            "--url",
            "http://127.0.0.1:8080/healthz",
        ],
        SHORT,
    )
    .await?;
    ensure(api_exec.success && api_exec.stdout.trim() == "ok", || {
        format!("exec via the API printed {api_exec:?}")
    })?;
    let failing = weft_e2e::pods::exec(
        &ns,
        &pod,
        None,
        &[
            "/weft-echo",
            "client",
            "--url",
            "http://127.0.0.1:8080/?status=500",
        ],
        SHORT,
    )
    .await?;
    ensure(!failing.success, || {
        format!("a failing command reported success: {failing:?}")
    })?;

    // logs: the server logged that request.
    let what = format!("kubectl logs of {pod} to show the /exec-probe request");
    poll_until(&what, SHORT, Duration::from_millis(250), || async {
        let logs = kubectl.logs(ns.name(), &pod, None).await?;
        Ok::<_, weft_e2e::kubectl::KubectlError>(logs.contains("/exec-probe").then_some(()))
    })
    .await?;
    ns.cleanup().await?;
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local cluster: run via make test-e2e"]
async fn deleting_an_owner_deletes_its_dependents() -> Result<(), Error> {
    weft_e2e::init_tracing();
    let cluster = Cluster::a().await?;
    let ns = TestNamespace::create(&cluster, "gc").await?;

    // A hand-made owner reference between two ConfigMaps.
    let cms: Api<ConfigMap> = ns.api();
    let cm = |name: &str, owner: Option<&ConfigMap>| ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            owner_references: owner.map(|o| {
                vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "ConfigMap".into(),
                    name: o.name_any(),
                    uid: o.uid().unwrap_or_default(),
                    block_owner_deletion: Some(true),
                    controller: Some(false),
                }]
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let owner = cms
        .create(&PostParams::default(), &cm("owner", None))
        .await?;
    let dependent = cms
        .create(&PostParams::default(), &cm("dependent", Some(&owner)))
        .await?;
    cms.delete("owner", &DeleteParams::background()).await?;
    wait_deleted(
        &cms,
        "dependent",
        &dependent.uid().unwrap_or_default(),
        "the garbage collector to delete ConfigMap dependent after its owner",
        SHORT,
    )
    .await?;

    // Deployment → ReplicaSet → Pod, deleted in the background.
    echo::deploy(&ns, "echo", "v1").await?;
    let replicasets: Api<ReplicaSet> = ns.api();
    let rs = replicasets
        .list(&ListParams::default().labels("app=echo"))
        .await?
        .items;
    ensure(rs.len() == 1, || {
        format!("expected one ReplicaSet, found {}", rs.len())
    })?;
    let pod = the_pod_of(&ns, "echo").await?;
    let deployments: Api<Deployment> = ns.api();
    deployments
        .delete("echo", &DeleteParams::background())
        .await?;
    wait_deleted(
        &replicasets,
        &rs[0].name_any(),
        &rs[0].uid().unwrap_or_default(),
        "the ReplicaSet of deleted Deployment echo to be collected",
        SHORT,
    )
    .await?;
    let pods: Api<Pod> = ns.api();
    wait_deleted(
        &pods,
        &pod.name_any(),
        &pod.uid().unwrap_or_default(),
        "the pod of deleted Deployment echo to be collected",
        SHORT,
    )
    .await?;
    ns.cleanup().await?;
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local cluster: run via make test-e2e"]
async fn a_namespace_deletes_completely() -> Result<(), Error> {
    weft_e2e::init_tracing();
    let cluster = Cluster::a().await?;
    let ns = TestNamespace::create(&cluster, "ns-delete").await?;
    let name = ns.name().to_owned();
    echo::deploy(&ns, "echo", "v1").await?;
    let secrets: Api<Secret> = ns.api();
    secrets
        .create(
            &PostParams::default(),
            &Secret {
                metadata: ObjectMeta {
                    name: Some("s".into()),
                    ..Default::default()
                },
                string_data: Some(BTreeMap::from([("k".into(), "v".into())])),
                ..Default::default()
            },
        )
        .await?;
    // cleanup() deletes and watches until the Namespace object is gone,
    // which the namespace controller allows only once its content is gone.
    ns.cleanup().await?;
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    ensure(namespaces.get_opt(&name).await?.is_none(), || {
        format!("namespace {name} still exists")
    })?;
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &name);
    ensure(
        pods.list(&ListParams::default()).await?.items.is_empty(),
        || format!("pods remain in deleted namespace {name}"),
    )?;
    Ok(())
}

/// Deletes the cluster-scoped webhook configuration if the test fails before
/// doing so itself (blocking kubectl: the test's runtime may be gone).
struct WebhookConfigGuard {
    kubectl: weft_e2e::Kubectl,
    name: String,
}

impl Drop for WebhookConfigGuard {
    fn drop(&mut self) {
        let _ = self.kubectl.command_blocking(&[
            "delete",
            "validatingwebhookconfiguration",
            &self.name,
            "--ignore-not-found",
            "--wait=false",
        ]);
    }
}

#[tokio::test]
#[ignore = "needs the local cluster: run via make test-e2e"]
async fn a_validating_webhook_behind_a_service_is_called() -> Result<(), Error> {
    weft_e2e::init_tracing();
    let cluster = Cluster::a().await?;
    let ns = TestNamespace::create(&cluster, "webhook").await?;
    let message = "weft-e2e webhook says no: remove label weft.dev/deny";
    let cert = certs::serving_cert_for_service("deny-hook", ns.name())?;
    echo::create(&ns, &certs::tls_secret("deny-hook-tls", &cert)).await?;
    echo::deploy_objects(
        &ns,
        &echo::webhook_deployment("deny-hook", "deny-hook-tls", "weft.dev/deny", message),
        &echo::webhook_service("deny-hook"),
    )
    .await?;

    let configs: Api<ValidatingWebhookConfiguration> = Api::all(cluster.client.clone());
    let config_name = format!("weft-e2e-{}", ns.name());
    let config = echo::validating_webhook(&config_name, ns.name(), "deny-hook", &cert.ca_pem);
    configs.create(&PostParams::default(), &config).await?;
    let _guard = WebhookConfigGuard {
        kubectl: cluster.kubectl(),
        name: config_name.clone(),
    };

    let cms: Api<ConfigMap> = ns.api();
    let cm = |name: &str, deny: bool| ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: deny.then(|| BTreeMap::from([("weft.dev/deny".to_owned(), "yes".to_owned())])),
            ..Default::default()
        },
        ..Default::default()
    };
    // The API server picks up a new webhook configuration asynchronously:
    // until a labelled ConfigMap is refused, remove it and try again.
    let mut attempt = 0;
    let refusal = poll_until(
        "the API server to call the webhook and refuse a labelled ConfigMap",
        SHORT,
        Duration::from_millis(500),
        || {
            attempt += 1;
            let name = format!("denied-{attempt}");
            let cms = cms.clone();
            async move {
                match cms.create(&PostParams::default(), &cm(&name, true)).await {
                    Ok(_) => {
                        cms.delete(&name, &DeleteParams::default()).await?;
                        Ok(None)
                    }
                    Err(kube::Error::Api(status))
                        if status.message.contains("denied the request") =>
                    {
                        Ok(Some(status))
                    }
                    Err(e) => Err(e),
                }
            }
        },
    )
    .await?;
    ensure(refusal.message.contains(message), || {
        format!(
            "refusal does not carry the webhook's message: {:?}",
            refusal.message
        )
    })?;
    cms.create(&PostParams::default(), &cm("allowed", false))
        .await?;
    // The refusal came from our pod: it logged the review.
    let pod = the_pod_of(&ns, "deny-hook").await?.name_any();
    let logs = ns.kubectl().logs(ns.name(), &pod, None).await?;
    ensure(logs.contains("admission review"), || {
        format!("webhook pod {pod} did not log a review: {logs}")
    })?;

    configs
        .delete(&config_name, &DeleteParams::default())
        .await?;
    ns.cleanup().await?;
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local cluster: run via make test-e2e"]
async fn a_pod_in_cluster_a_reaches_a_pod_and_the_node_of_cluster_b() -> Result<(), Error> {
    weft_e2e::init_tracing();
    let (a, b) = (Cluster::a().await?, Cluster::b().await?);
    let ns_b = TestNamespace::create(&b, "multi-b").await?;
    echo::deploy(&ns_b, "echo", "v1").await?;
    let echo_b = the_pod_of(&ns_b, "echo").await?;
    let echo_b_ip = pod_ip(&echo_b)?;

    // An echo on b's node address: host network, ports clear of the node's daemons.
    let mut host = weft_e2e::pods::one_shot_pod(
        "echo-host",
        &echo::image(),
        &[
            "serve",
            "--http-port=18080",
            "--grpc-port=19090",
            "--tcp-port=19000",
        ],
    );
    if let Some(spec) = host.spec.as_mut() {
        spec.host_network = Some(true);
        spec.containers[0].env = echo::echo_container(vec![]).env;
        spec.containers[0].readiness_probe = Some(k8s_openapi::api::core::v1::Probe {
            tcp_socket: Some(k8s_openapi::api::core::v1::TCPSocketAction {
                port: k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(18080),
                ..Default::default()
            }),
            period_seconds: Some(1),
            ..Default::default()
        });
    }
    let pods_b: Api<Pod> = ns_b.api();
    pods_b.create(&PostParams::default(), &host).await?;
    let ready = pod_ready();
    let host = wait_for_object(
        &pods_b,
        "echo-host",
        "host-network echo on cluster b to be Ready",
        WORKLOAD_TIMEOUT,
        move |p: Option<&Pod>| ready.matches_object(p),
    )
    .await?;
    let node_b_ip = b.node_ip().await?;
    ensure(pod_ip(&host)? == node_b_ip, || {
        format!(
            "host-network pod IP {:?} is not b's node IP {node_b_ip}",
            pod_ip(&host)
        )
    })?;

    let ns_a = TestNamespace::create(&a, "multi-a").await?;
    let to_pod = format!("http://{echo_b_ip}:8080/from-a");
    let to_node = format!("http://{node_b_ip}:18080/from-a");
    let kubelet_b = format!("{node_b_ip}:10250");
    let runs = futures::future::try_join_all(
        [
            (
                "to-pod-b",
                vec!["client", "--url", to_pod.as_str(), "--retry-for", "30s"],
            ),
            (
                "to-node-b",
                vec!["client", "--url", to_node.as_str(), "--retry-for", "30s"],
            ),
            (
                "to-kubelet-b",
                vec![
                    "tcp-client",
                    "--addr",
                    kubelet_b.as_str(),
                    "--connect-only",
                    "--retry-for",
                    "30s",
                ],
            ),
        ]
        .into_iter()
        .map(|(name, args)| {
            let ns = &ns_a;
            async move {
                echo::run_client(ns, name, &args)
                    .await
                    .map(|run| (name, run))
            }
        }),
    )
    .await?;
    for (name, run) in &runs {
        run.assert_success()?;
        if *name == "to-pod-b" || *name == "to-node-b" {
            let want = if *name == "to-pod-b" {
                echo_b.name_any()
            } else {
                "echo-host".to_owned()
            };
            let reports = echo::http_reports(run);
            ensure(
                reports.len() == 1 && reports[0].pod == want && reports[0].namespace == ns_b.name(),
                || {
                    format!(
                        "{name}: expected an answer from {}/{want}, got {reports:?}",
                        ns_b.name()
                    )
                },
            )?;
            tracing::info!(%name, client = ?reports[0].client, "cluster b saw the caller from cluster a");
        }
    }
    ns_a.cleanup().await?;
    ns_b.cleanup().await?;
    Ok(())
}
