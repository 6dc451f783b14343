//! Golden files of everything the operator renders for representative
//! MeshInstallations (`operator/tests/golden/<case>.yaml`): minimal, with
//! gateways, plugged-in CA, custom namespace. Secret data and CA bundles
//! are placeholders (the CA is generated per run); their contents are
//! checked by assertions instead. `UPDATE_GOLDEN=1` rewrites the files;
//! review the diff.

use std::collections::BTreeSet;
use std::time::SystemTime;

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use weft_api::weft::MeshInstallation;
use weft_operator::ca::CaFiles;
use weft_operator::render::installation::{self, InstallationInput};
use weft_operator::render::manifest::to_review_yaml;
use weft_operator::render::revision::{self, RevisionInput};

mod common;
use common::repo;
use weft_operator::render::{Images, Manifest, Owner};
use weft_operator::resolve;

fn sample(name: &str) -> MeshInstallation {
    let path = repo().join("config/samples/weft").join(name);
    let text = std::fs::read_to_string(&path).expect("sample readable");
    serde_yaml_ng::from_str(&text).expect("sample parses")
}

fn inline(text: &str) -> MeshInstallation {
    serde_yaml_ng::from_str(text).expect("inline sample parses")
}

struct Rendered {
    all: Vec<Manifest>,
    ca: CaFiles,
}

fn render(mi: &MeshInstallation) -> Rendered {
    let name = mi.metadata.name.clone().expect("named");
    let mesh = resolve::resolve(&name, &mi.spec).expect("resolves");
    let ca = CaFiles::generate(
        &mesh.trust_domain,
        mesh.ca.root_ttl,
        mesh.ca.intermediate_ttl,
        SystemTime::now(),
    )
    .expect("CA");
    let images = Images::default();
    let owner = Owner {
        api_version: "weft.dev/v1alpha1".into(),
        kind: "MeshInstallation".into(),
        name: name.clone(),
        uid: "00000000-0000-0000-0000-00000000000a".into(),
    };
    let namespaces: BTreeSet<String> = ["default", "kube-system", "shop"]
        .into_iter()
        .map(String::from)
        .collect();
    let ownable = installation::used_namespaces(&mesh);
    let in_place = mesh.ca.uses_user_secret_in_place(&mesh.namespace);
    let mut all = installation::render(&InstallationInput {
        mesh: &mesh,
        spec: &mi.spec,
        images: &images,
        owner: &owner,
        ca_secret: (!in_place).then_some(&ca),
        trust_bundle: &ca.root_cert,
        namespaces: &namespaces,
        ownable_namespaces: &ownable,
    })
    .expect("installation renders");
    let rev_owner = Owner {
        kind: "MeshRevision".into(),
        name: mesh.revision.clone(),
        uid: "00000000-0000-0000-0000-00000000000b".into(),
        ..owner.clone()
    };
    all.extend(
        revision::render(&RevisionInput {
            mesh: &mesh,
            images: &images,
            owner: &rev_owner,
            default: true,
            ca_bundle: &ca.root_cert,
            ca_fingerprint: "0123456789abcdef",
            webhooks: true,
        })
        .expect("revision renders"),
    );
    Rendered { all, ca }
}

fn golden(case: &str, rendered: &Rendered) {
    let path = repo()
        .join("operator/tests/golden")
        .join(format!("{case}.yaml"));
    let got = to_review_yaml(&rendered.all);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &got).expect("writing golden file");
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        got == want,
        "{} differs from the rendering; run UPDATE_GOLDEN=1 cargo test -p weft-operator --test golden and review the diff",
        path.display()
    );
}

fn find<'a>(all: &'a [Manifest], kind: &str, name: &str) -> &'a Manifest {
    all.iter()
        .find(|m| m.resource.kind == kind && m.name() == name)
        .unwrap_or_else(|| panic!("{kind} {name} not rendered: {all:?}"))
}

fn typed<K: serde::de::DeserializeOwned>(m: &Manifest) -> K {
    serde_json::from_value(serde_json::to_value(&m.object).expect("json")).expect("typed")
}

/// Every rendered object carries Weft's labels (pruning depends on them).
fn assert_labelled(all: &[Manifest]) {
    for m in all {
        let labels = m.object.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels
                .get("app.kubernetes.io/managed-by")
                .map(String::as_str),
            Some("weft-operator"),
            "{}",
            m.id()
        );
        assert!(labels.contains_key("weft.dev/installation"), "{}", m.id());
        assert!(m.hash().is_some(), "{} has no desired hash", m.id());
        assert!(
            m.object
                .metadata
                .owner_references
                .as_ref()
                .is_some_and(|o| o.len() == 1),
            "{} has no owner",
            m.id()
        );
    }
}

#[test]
fn minimal() {
    let r = render(&sample("meshinstallation-minimal.yaml"));
    golden("minimal", &r);
    assert_labelled(&r.all);
    // The webhooks trust the mesh root: weftd's serving certificate comes from it.
    let hook: MutatingWebhookConfiguration = typed(find(
        &r.all,
        "MutatingWebhookConfiguration",
        "weft-sidecar-injector-default",
    ));
    for w in hook.webhooks.unwrap_or_default() {
        let bundle = w.client_config.ca_bundle.expect("caBundle").0;
        assert_eq!(bundle, r.ca.root_cert.as_bytes(), "{}", w.name);
    }
    // The CA Secret holds what weftd's --ca-source secret loads.
    let secret = find(&r.all, "Secret", "cacerts");
    let data = secret.object.data.get("data").expect("data");
    for key in [
        "ca-cert.pem",
        "ca-key.pem",
        "root-cert.pem",
        "cert-chain.pem",
    ] {
        assert!(data.get(key).is_some(), "cacerts lacks {key}");
    }
    let d: Deployment = typed(find(&r.all, "Deployment", "weftd-default"));
    let args = d
        .spec
        .and_then(|s| s.template.spec)
        .map(|s| s.containers[0].args.clone().unwrap_or_default())
        .unwrap_or_default();
    assert!(args.contains(&"--ca-secret=cacerts".to_owned()), "{args:?}");
    assert!(
        args.contains(&"--namespace=weft-system".to_owned()),
        "{args:?}"
    );
}

#[test]
fn with_gateways() {
    let mi = inline(
        r#"
apiVersion: weft.dev/v1alpha1
kind: MeshInstallation
metadata: {name: default}
spec:
  version: 1.0.0
  updateStrategy: {type: RevisionBased}
  controlPlane:
    replicas: 2
    logLevel: debug
    env: [{name: WEFT_PUSH_DEBOUNCE, value: 100ms}]
  gateways:
    - name: ingress
      namespace: istio-ingress
      kind: ingress
      replicas: 2
      labels: {istio: ingressgateway}
      service:
        type: NodePort
        ports:
          - {name: http, port: 80, targetPort: 8080, nodePort: 30080}
    - name: egress
      kind: egress
      service: {type: ClusterIP}
"#,
    );
    let r = render(&mi);
    golden("with-gateways", &r);
    assert_labelled(&r.all);
    let d: Deployment = typed(find(&r.all, "Deployment", "ingress"));
    assert_eq!(d.metadata.namespace.as_deref(), Some("istio-ingress"));
    let pod = d.spec.expect("spec").template;
    let labels = pod.metadata.and_then(|m| m.labels).unwrap_or_default();
    assert_eq!(
        labels.get("istio").map(String::as_str),
        Some("ingressgateway")
    );
    assert_eq!(
        labels.get("sidecar.istio.io/inject").map(String::as_str),
        Some("false")
    );
    let c = &pod.spec.expect("pod spec").containers[0];
    let env: Vec<(String, String)> = c
        .env
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|e| e.value.map(|v| (e.name, v)))
        .collect();
    assert!(env.contains(&(
        "WEFT_XDS_ADDRESS".into(),
        "weftd-1-0-0.weft-system.svc:15012".into()
    )));
    // Both gateway namespaces get the trust bundle.
    find(&r.all, "Namespace", "istio-ingress");
    let bundles: Vec<String> = r
        .all
        .iter()
        .filter(|m| m.resource.kind == "ConfigMap" && m.name() == "weft-ca-root-cert")
        .filter_map(|m| m.namespace())
        .collect();
    assert_eq!(bundles, ["default", "istio-ingress", "shop", "weft-system"]);
}

#[test]
fn plugged_in_ca_from_another_namespace_is_copied() {
    let r = render(&sample("meshinstallation-plugged-in-ca.yaml"));
    golden("plugged-in-ca", &r);
    assert_labelled(&r.all);
    // The sample's Secret is istio-system/cacerts; the mesh runs in weft-system.
    let secret = find(&r.all, "Secret", "cacerts");
    assert_eq!(secret.namespace().as_deref(), Some("weft-system"));
    assert!(
        !r.all.iter().any(
            |m| m.namespace().as_deref() == Some("istio-system") && m.resource.kind == "Secret"
        ),
        "the user's Secret is read, never written"
    );
    let d: Deployment = typed(find(&r.all, "Deployment", "weftd-default"));
    let args = d
        .spec
        .and_then(|s| s.template.spec)
        .map(|s| s.containers[0].args.clone().unwrap_or_default())
        .unwrap_or_default();
    assert!(
        args.contains(&"--trust-domain=corp.example".to_owned()),
        "{args:?}"
    );
    assert!(
        args.contains(&"--workload-cert-ttl=43200s".to_owned()),
        "{args:?}"
    );
}

#[test]
fn custom_namespace_with_a_plugged_in_secret_there_is_used_in_place() {
    let mi = inline(
        r#"
apiVersion: weft.dev/v1alpha1
kind: MeshInstallation
metadata: {name: corp}
spec:
  version: 2.1.0
  meshConfig: {rootNamespace: mesh-control, trustDomain: corp.example}
  certificates:
    ca:
      type: PluggedIn
      secretRef: {name: corp-ca}
"#,
    );
    let r = render(&mi);
    golden("custom-namespace", &r);
    assert_labelled(&r.all);
    assert!(
        !r.all.iter().any(|m| m.resource.kind == "Secret"),
        "mesh-control/corp-ca is the user's: weftd reads it where it is"
    );
    find(&r.all, "Namespace", "mesh-control");
    find(&r.all, "Service", "weftd-default");
    let d: Deployment = typed(find(&r.all, "Deployment", "weftd-default"));
    let args = d
        .spec
        .and_then(|s| s.template.spec)
        .map(|s| s.containers[0].args.clone().unwrap_or_default())
        .unwrap_or_default();
    assert!(args.contains(&"--ca-secret=corp-ca".to_owned()), "{args:?}");
    assert!(
        args.contains(&"--namespace=mesh-control".to_owned()),
        "{args:?}"
    );
    let v = find(
        &r.all,
        "ValidatingWebhookConfiguration",
        "weft-validator-default-mesh-control",
    );
    assert_eq!(
        v.object
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("weft.dev/installation"))
            .map(String::as_str),
        Some("corp")
    );
}

#[test]
fn rendering_is_stable_and_a_change_changes_the_hash() {
    let mi = sample("meshinstallation-minimal.yaml");
    let a = render(&mi);
    let mut changed = mi.clone();
    changed.spec.control_plane = Some(weft_api::weft::ControlPlane {
        replicas: Some(3),
        ..Default::default()
    });
    let b = render(&changed);
    let hash =
        |r: &Rendered, kind: &str, name: &str| find(&r.all, kind, name).hash().map(str::to_owned);
    assert_eq!(
        hash(&a, "Service", "weftd-default"),
        hash(&b, "Service", "weftd-default")
    );
    assert_ne!(
        hash(&a, "Deployment", "weftd-default"),
        hash(&b, "Deployment", "weftd-default")
    );
}

/// The operator can only grant weftd what it holds itself: its ClusterRole
/// in config/rbac/role.yaml must cover every rule of weftd's.
#[test]
fn operator_role_covers_weftd_rules() {
    let text = std::fs::read_to_string(repo().join("config/rbac/role.yaml")).expect("role.yaml");
    let role: k8s_openapi::api::rbac::v1::ClusterRole =
        serde_yaml_ng::from_str(&text).expect("parses");
    let held = role.rules.unwrap_or_default();
    for rule in held.iter() {
        for field in [&rule.api_groups, &rule.resources] {
            assert!(
                !field.iter().flatten().any(|v| v == "*"),
                "no wildcards: {rule:?}"
            );
        }
        assert!(
            !rule.verbs.iter().any(|v| v == "*"),
            "no wildcards: {rule:?}"
        );
    }
    for needed in weft_operator::render::controlplane::weftd_rules() {
        for group in needed.api_groups.iter().flatten() {
            for resource in needed.resources.iter().flatten() {
                for verb in &needed.verbs {
                    let covered = held.iter().any(|r| {
                        r.api_groups.iter().flatten().any(|g| g == group)
                            && r.resources.iter().flatten().any(|x| x == resource)
                            && r.verbs.iter().any(|v| v == verb)
                    });
                    assert!(
                        covered,
                        "config/rbac/role.yaml lacks {verb} {group}/{resource} that weftd is granted"
                    );
                }
            }
        }
    }
}
