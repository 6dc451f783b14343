//! End to end against a local cluster: weftd's webhook server runs in this
//! test process on the host side of the cluster's veth (10.100.<n>.1), the
//! API server calls it through the rendered webhook registrations, and the
//! test inspects what the API server stored.
//!
//! `WEFT_E2E_CLUSTER_A=e cargo test -p weftd --test webhook_e2e -- --ignored`

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Api, Client};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use serde_json::json;
use weft_e2e::wait::poll_until;
use weft_e2e::{Cluster, Error, TestNamespace, ensure};
use weftd::inject::InjectSettings;
use weftd::webhook::config::{
    Endpoint, mutating_webhook_configuration, validating_webhook_configuration,
};
use weftd::webhook::{WebhookServer, certs};

/// Label scoping this run's webhooks to this run's namespaces, so a shared
/// cluster's other pods never reach a webhook that is about to go away.
const RUN_LABEL: &str = "weft.dev/e2e-webhook-run";
const PROPAGATION: Duration = Duration::from_secs(60);

/// A CA and a serving certificate for `ip` (the API server dials the IP).
fn serving_cert(ip: IpAddr) -> Result<(String, String, String), rcgen::Error> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "weftd webhook e2e CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(Vec::<String>::new())?;
    leaf.subject_alt_names = vec![SanType::IpAddress(ip)];
    leaf.distinguished_name
        .push(DnType::CommonName, ip.to_string());
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = leaf.signed_by(&key, &issuer)?;
    Ok((ca_cert.pem(), cert.pem(), key.serialize_pem()))
}

/// The host side of the cluster's veth: the node is 10.100.<n>.2, the host .1.
async fn host_ip(cluster: &Cluster) -> Result<IpAddr, Error> {
    let node: std::net::Ipv4Addr = cluster
        .node_ip()
        .await?
        .parse()
        .map_err(|e| Error::Assert(format!("node IP is not IPv4: {e}")))?;
    let [a, b, c, _] = node.octets();
    Ok(IpAddr::from([a, b, c, 1]))
}

fn scope(selector: &mut Option<LabelSelector>, run: &str) {
    selector
        .get_or_insert_with(Default::default)
        .match_expressions
        .get_or_insert_with(Vec::new)
        .push(LabelSelectorRequirement {
            key: RUN_LABEL.to_owned(),
            operator: "In".to_owned(),
            values: Some(vec![run.to_owned()]),
        });
}

async fn label_namespace(
    client: &Client,
    ns: &str,
    labels: serde_json::Value,
) -> Result<(), Error> {
    Api::<Namespace>::all(client.clone())
        .patch(
            ns,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": labels}})),
        )
        .await?;
    Ok(())
}

fn pod(name: &str, labels: serde_json::Value) -> Result<Pod, Error> {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "containers": [{
                "name": "app",
                "image": weft_e2e::echo::image(),
                "ports": [{"name": "http", "containerPort": 8080}],
                "readinessProbe": {"httpGet": {"path": "/", "port": "http"}}
            }]
        }
    }))
    .map_err(|e| Error::Assert(format!("test pod: {e}")))
}

fn init_names(pod: &Pod) -> Vec<String> {
    pod.spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten())
        .map(|c| c.name.clone())
        .collect()
}

fn virtual_service(regex: &str) -> Result<DynamicObject, Error> {
    serde_json::from_value(json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "reviews"},
        "spec": {
            "hosts": ["reviews"],
            "http": [{"match": [{"uri": {"regex": regex}}], "route": [{"destination": {"host": "reviews"}}]}]
        }
    }))
    .map_err(|e| Error::Assert(format!("test VirtualService: {e}")))
}

#[tokio::test]
#[ignore = "needs the local cluster: run via make test-e2e"]
async fn webhooks_inject_labelled_namespaces_and_refuse_invalid_policy() -> Result<(), Error> {
    weft_e2e::init_tracing();
    let cluster = Cluster::a().await?;
    weft_e2e::crds::install(&cluster).await?;
    let client = cluster.client.clone();

    // weftd's webhook server, on the host side of the node's veth.
    let ip = host_ip(&cluster).await?;
    let (ca_pem, cert_pem, key_pem) =
        serving_cert(ip).map_err(|e| Error::Assert(format!("certificates: {e}")))?;
    let tls = certs::server_config(cert_pem.as_bytes(), key_pem.as_bytes())
        .map_err(|e| Error::Assert(e.to_string()))?;
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(ip, 0))
        .await
        .map_err(|e| Error::Assert(format!("binding {ip}: {e}")))?;
    let port = listener
        .local_addr()
        .map_err(|e| Error::Assert(e.to_string()))?
        .port();

    let injected_ns = TestNamespace::create(&cluster, "inject-on").await?;
    let plain_ns = TestNamespace::create(&cluster, "inject-off").await?;
    let run = injected_ns.name().to_owned();
    let revision = format!("e2e-{}", run.rsplit('-').next().unwrap_or("x"));

    let mut settings = InjectSettings::new(&revision, "weft-system", "weft.local/weft-proxy:dev");
    settings.tags = vec!["default".to_owned()];
    let (_settings_tx, settings_rx) = tokio::sync::watch::channel(settings);
    let server = WebhookServer::new(settings_rx, Arc::new(client.clone()), tls);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(listener, async {
        let _ = stop_rx.await;
    }));

    // The registrations as weftd renders them, scoped to this run.
    let endpoint = Endpoint::Url(format!("https://{ip}:{port}"));
    let mut mutating =
        mutating_webhook_configuration(&revision, &revision, true, &endpoint, ca_pem.as_bytes());
    for w in mutating.webhooks.iter_mut().flatten() {
        scope(&mut w.namespace_selector, &run);
    }
    let mut validating =
        validating_webhook_configuration(&revision, &run, true, &endpoint, ca_pem.as_bytes());
    for w in validating.webhooks.iter_mut().flatten() {
        scope(&mut w.namespace_selector, &run);
    }
    let mutating_api = Api::<MutatingWebhookConfiguration>::all(client.clone());
    let validating_api = Api::<ValidatingWebhookConfiguration>::all(client.clone());
    mutating_api
        .create(&PostParams::default(), &mutating)
        .await?;
    validating_api
        .create(&PostParams::default(), &validating)
        .await?;

    let result = async {
        label_namespace(
            &client,
            injected_ns.name(),
            json!({"istio-injection": "enabled", RUN_LABEL: run}),
        )
        .await?;
        label_namespace(&client, plain_ns.name(), json!({RUN_LABEL: run})).await?;
        let pods_on = injected_ns.api::<Pod>();
        let pods_off = plain_ns.api::<Pod>();

        // The API server picks up new registrations within seconds: probe
        // with dry-run creates until the sidecar shows up.
        let dry = PostParams {
            dry_run: true,
            ..Default::default()
        };
        let probe = pod("probe", json!({}))?;
        poll_until(
            "the API server to call the injector",
            PROPAGATION,
            Duration::from_millis(500),
            || async {
                let p = pods_on.create(&dry, &probe).await?;
                Ok::<_, kube::Error>(
                    init_names(&p)
                        .contains(&"weft-proxy".to_owned())
                        .then_some(()),
                )
            },
        )
        .await?;

        // A pod in the labelled namespace: sidecar and init step.
        let created = pods_on
            .create(&PostParams::default(), &pod("app", json!({"app": "shop"}))?)
            .await?;
        let stored = pods_on.get("app").await?;
        ensure(created.metadata.uid == stored.metadata.uid, || {
            "stored pod differs".into()
        })?;
        let inits = init_names(&stored);
        ensure(
            inits.first().map(String::as_str) == Some("weft-init")
                && inits.get(1).map(String::as_str) == Some("weft-proxy"),
            || format!("init containers {inits:?}, want weft-init then weft-proxy"),
        )?;
        let spec = stored.spec.clone().unwrap_or_default();
        let init_containers = spec.init_containers.clone().unwrap_or_default();
        let init = &init_containers[0];
        let proxy = &init_containers[1];
        ensure(proxy.restart_policy.as_deref() == Some("Always"), || {
            "weft-proxy is not a native sidecar".into()
        })?;
        let args = init.args.clone().unwrap_or_default().join(" ");
        ensure(
            args.starts_with("init ")
                && args.contains("--inbound-capture-port 15006")
                && args.contains("--outbound-capture-port 15001")
                && args.contains("--proxy-uid 1337"),
            || format!("weft-init args: {args}"),
        )?;
        let caps = init
            .security_context
            .as_ref()
            .and_then(|s| s.capabilities.as_ref())
            .and_then(|c| c.add.clone())
            .unwrap_or_default();
        ensure(
            caps.contains(&"NET_ADMIN".to_owned()) && caps.contains(&"NET_RAW".to_owned()),
            || format!("weft-init capabilities {caps:?}"),
        )?;
        let audience = spec
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == "weft-token")
            .and_then(|v| v.projected.as_ref())
            .and_then(|p| p.sources.as_ref())
            .and_then(|s| s.first())
            .and_then(|s| s.service_account_token.as_ref())
            .and_then(|t| t.audience.clone());
        ensure(audience.as_deref() == Some("weft-ca"), || {
            format!("token volume audience {audience:?}")
        })?;
        let probe_path = spec.containers[0]
            .readiness_probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .and_then(|g| g.path.clone());
        ensure(
            probe_path.as_deref() == Some("/app-health/app/readyz"),
            || format!("readiness probe path {probe_path:?}"),
        )?;
        let labels = stored.metadata.labels.clone().unwrap_or_default();
        ensure(
            labels.get("security.istio.io/tlsMode").map(String::as_str) == Some("istio"),
            || format!("labels {labels:?}"),
        )?;
        ensure(
            labels
                .get("service.istio.io/canonical-name")
                .map(String::as_str)
                == Some("shop"),
            || format!("labels {labels:?}"),
        )?;
        let status = stored
            .metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .get("sidecar.istio.io/status")
            .cloned()
            .unwrap_or_default();
        ensure(status.contains(&revision), || {
            format!("status annotation {status:?}")
        })?;

        // Opted out: untouched.
        let opted_out = pods_on
            .create(
                &PostParams::default(),
                &pod("opted-out", json!({"sidecar.istio.io/inject": "false"}))?,
            )
            .await?;
        ensure(init_names(&opted_out).is_empty(), || {
            format!("opted-out pod got {:?}", init_names(&opted_out))
        })?;
        // Unlabelled namespace: untouched.
        let plain = pods_off
            .create(&PostParams::default(), &pod("plain", json!({}))?)
            .await?;
        ensure(init_names(&plain).is_empty(), || {
            format!(
                "pod in an unlabelled namespace got {:?}",
                init_names(&plain)
            )
        })?;

        // An invalid regex is refused by /validate, naming the field.
        let gvk = GroupVersionKind::gvk("networking.istio.io", "v1", "VirtualService");
        let vs_api: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            injected_ns.name(),
            &ApiResource::from_gvk(&gvk),
        );
        let refusal = poll_until(
            "the API server to call the validator",
            PROPAGATION,
            Duration::from_millis(500),
            || async {
                match vs_api.create(&dry, &virtual_service("/api/(v1")?).await {
                    Err(kube::Error::Api(status))
                        if status.message.contains("spec.http[0].match[0].uri.regex") =>
                    {
                        Ok(Some(status.message))
                    }
                    Err(e) => Err(Error::from(e)),
                    Ok(_) => Ok(None),
                }
            },
        )
        .await?;
        ensure(refusal.contains("RE2"), || format!("refusal: {refusal}"))?;
        vs_api
            .create(
                &PostParams::default(),
                &virtual_service("^/api/v[0-9]+/.*")?,
            )
            .await?;
        Ok::<(), Error>(())
    }
    .await;

    // Clean up whatever happened above.
    let dp = DeleteParams::default();
    let _ = mutating_api
        .delete(mutating.metadata.name.as_deref().unwrap_or_default(), &dp)
        .await;
    let _ = validating_api
        .delete(validating.metadata.name.as_deref().unwrap_or_default(), &dp)
        .await;
    let _ = stop_tx.send(());
    let _ = serving.await;
    injected_ns.cleanup().await?;
    plain_ns.cleanup().await?;
    result
}
