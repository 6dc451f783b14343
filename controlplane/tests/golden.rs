//! Golden-file tests for translation: each `tests/golden/<case>.yaml` is a
//! mesh (Kubernetes, Istio and Gateway API objects) whose first document
//! describes one proxy; the Envoy resources weftd computes for it are
//! rendered as JSON and compared with `tests/golden/<case>.json`.
//! `UPDATE_GOLDEN=1 cargo test -p weftd --test golden` rewrites the files.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use weft_api::gateway::{gatewayclasses, gateways, grpcroutes, httproutes, referencegrants};
use weft_api::istio::{networking, security};
use weftd::identity::{ProxyKind, SpiffeId};
use weftd::index::{Index, Indexed};
use weftd::translate::{MeshSettings, OutboundPolicy, dump, for_proxy};

/// The first document of a case.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Case {
    spiffe_id: String,
    node_id: String,
    proxy_kind: String,
    #[serde(default)]
    outbound_policy: Option<String>,
}

const TRUST_BUNDLE: &str = "-----BEGIN CERTIFICATE-----\nTEST ROOT\n-----END CERTIFICATE-----\n";

fn typed<K: DeserializeOwned>(doc: Value, file: &Path) -> K {
    serde_json::from_value(doc).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

fn apply<K: Indexed + DeserializeOwned>(index: &mut Index, doc: Value, file: &Path) {
    index.apply(typed::<K>(doc, file));
}

fn load(index: &mut Index, doc: Value, file: &Path) {
    let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
    let group = doc["apiVersion"]
        .as_str()
        .and_then(|v| v.rsplit_once('/'))
        .map_or("", |(g, _)| g)
        .to_owned();
    match (group.as_str(), kind.as_str()) {
        ("", "Service") => apply::<Service>(index, doc, file),
        ("discovery.k8s.io", "EndpointSlice") => apply::<EndpointSlice>(index, doc, file),
        ("", "Pod") => apply::<Pod>(index, doc, file),
        ("", "Namespace") => apply::<Namespace>(index, doc, file),
        ("", "ServiceAccount") => apply::<ServiceAccount>(index, doc, file),
        ("", "Node") => apply::<Node>(index, doc, file),
        ("", "Secret") => index.apply_secret(&typed::<Secret>(doc, file)),
        ("networking.istio.io", "VirtualService") => {
            apply::<networking::VirtualService>(index, doc, file)
        }
        ("networking.istio.io", "DestinationRule") => {
            apply::<networking::DestinationRule>(index, doc, file)
        }
        ("networking.istio.io", "Gateway") => apply::<networking::Gateway>(index, doc, file),
        ("networking.istio.io", "ServiceEntry") => {
            apply::<networking::ServiceEntry>(index, doc, file)
        }
        ("networking.istio.io", "Sidecar") => apply::<networking::Sidecar>(index, doc, file),
        ("security.istio.io", "PeerAuthentication") => {
            apply::<security::PeerAuthentication>(index, doc, file)
        }
        ("security.istio.io", "AuthorizationPolicy") => {
            apply::<security::AuthorizationPolicy>(index, doc, file)
        }
        ("gateway.networking.k8s.io", "GatewayClass") => {
            apply::<gatewayclasses::GatewayClass>(index, doc, file)
        }
        ("gateway.networking.k8s.io", "Gateway") => apply::<gateways::Gateway>(index, doc, file),
        ("gateway.networking.k8s.io", "HTTPRoute") => {
            apply::<httproutes::HttpRoute>(index, doc, file)
        }
        ("gateway.networking.k8s.io", "GRPCRoute") => {
            apply::<grpcroutes::GrpcRoute>(index, doc, file)
        }
        ("gateway.networking.k8s.io", "ReferenceGrant") => {
            apply::<referencegrants::ReferenceGrant>(index, doc, file)
        }
        _ => panic!("{}: kind {group}/{kind} is not loadable", file.display()),
    }
}

fn render(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let mut docs = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", file.display())))
        .filter(|d| !d.is_null());
    let case: Case = typed(docs.next().expect("a case document first"), file);
    let mut index = Index::new();
    for doc in docs {
        load(&mut index, doc, file);
    }
    let snapshot = index.snapshot();
    let kind = match case.proxy_kind.as_str() {
        "Sidecar" => ProxyKind::Sidecar,
        "Gateway" => ProxyKind::Gateway,
        "Proxyless" => ProxyKind::Proxyless,
        other => panic!("{}: unknown proxyKind {other}", file.display()),
    };
    let id = SpiffeId::parse(&case.spiffe_id).expect("valid spiffeId");
    let proxy = snapshot.proxy_identity(&id, &case.node_id, Some(kind), "default");
    let settings = MeshSettings {
        trust_bundle_pem: TRUST_BUNDLE.into(),
        outbound_policy: match case.outbound_policy.as_deref() {
            Some("REGISTRY_ONLY") => OutboundPolicy::RegistryOnly,
            _ => OutboundPolicy::AllowAny,
        },
        ..MeshSettings::default()
    };
    let resources = for_proxy(&snapshot, &proxy, &settings);
    let mut out = serde_json::to_string_pretty(&dump::resources_to_json(&resources)).expect("JSON");
    out.push('\n');
    out
}

fn cases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/golden exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn translation_matches_golden_files() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    let files = cases();
    assert!(
        files.len() >= 5,
        "expected the golden cases, found {files:?}"
    );
    for file in files {
        let got = render(&file);
        let golden = file.with_extension("json");
        if update {
            std::fs::write(&golden, &got).expect("write golden");
            continue;
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_default();
        if got != want {
            let first = got
                .lines()
                .zip(want.lines())
                .position(|(a, b)| a != b)
                .unwrap_or_else(|| got.lines().count().min(want.lines().count()));
            failures.push(format!(
                "{}: differs from {} from line {} (got {:?}); run UPDATE_GOLDEN=1 cargo test -p weftd --test golden and review the diff",
                file.display(),
                golden.display(),
                first + 1,
                got.lines().nth(first).unwrap_or("<end>")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
