//! Golden tests of the injection patch: each `testdata/<case>.pod.json` is
//! injected with the settings of [`settings_for`] and the patch compared
//! with `testdata/<case>.patch.json`. `UPDATE_GOLDEN=1 cargo test -p weftd
//! inject::golden` rewrites the expected files; review them like code.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;

use super::settings::InjectSettings;
use super::{InjectError, inject};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/inject/testdata")
}

fn settings_for(case: &str) -> InjectSettings {
    let mut s = InjectSettings::new("1-2", "weft-system", "weft.local/weft-proxy:dev");
    s.tags = vec!["default".into()];
    if case == "no-hold" {
        s.hold_application_until_proxy_starts = false;
        s.root_cert_config_map = None;
        s.limits.clear();
    }
    s
}

fn cases() -> Vec<String> {
    let mut cases: Vec<String> = std::fs::read_dir(testdata())
        .expect("testdata directory exists in the source tree")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".pod.json"))
                .map(str::to_owned)
        })
        .collect();
    cases.sort();
    cases
}

#[test]
fn patches_match_golden_files() {
    let cases = cases();
    assert!(cases.len() >= 4, "golden cases are missing: {cases:?}");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    for case in cases {
        let input = std::fs::read_to_string(testdata().join(format!("{case}.pod.json")))
            .expect("reading a golden input");
        let pod: Pod = serde_json::from_str(&input).expect("golden input is a Pod");
        let injected = inject(&pod, &settings_for(&case)).expect("golden input injects");
        let got = serde_json::to_string_pretty(&injected.patch).expect("patch serializes") + "\n";
        let path = testdata().join(format!("{case}.patch.json"));
        if update {
            std::fs::write(&path, &got).expect("writing golden file");
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            got, want,
            "{case}: patch differs from {path:?}; run UPDATE_GOLDEN=1 and review"
        );

        // The patch applied to the pod as the API server holds it gives
        // exactly the injected pod.
        let mut doc: serde_json::Value = serde_json::from_str(&input).expect("json");
        json_patch::patch(&mut doc, &injected.patch).expect("patch applies");
        let applied: Pod = serde_json::from_value(doc).expect("patched pod is a Pod");
        assert_eq!(
            applied, injected.pod,
            "{case}: patch does not reproduce the pod"
        );
    }
}

#[test]
fn injected_pod_has_sidecar_init_and_volumes() {
    let input = std::fs::read_to_string(testdata().join("probes.pod.json")).expect("input");
    let pod: Pod = serde_json::from_str(&input).expect("pod");
    let injected = inject(&pod, &settings_for("probes")).expect("injects").pod;
    let spec = injected.spec.expect("spec");
    let inits = spec.init_containers.expect("init containers");
    assert_eq!(inits[0].name, "weft-init");
    assert_eq!(inits[1].name, "weft-proxy");
    assert_eq!(inits[1].restart_policy.as_deref(), Some("Always"));
    let caps = inits[0]
        .security_context
        .as_ref()
        .and_then(|s| s.capabilities.as_ref())
        .and_then(|c| c.add.clone());
    assert_eq!(
        caps,
        Some(vec!["NET_ADMIN".to_owned(), "NET_RAW".to_owned()])
    );
    let token = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "weft-token")
        .and_then(|v| v.projected.as_ref())
        .and_then(|p| p.sources.as_ref())
        .and_then(|s| s.first())
        .and_then(|s| s.service_account_token.as_ref())
        .and_then(|t| t.audience.clone());
    assert_eq!(token.as_deref(), Some("weft-ca"));
    let labels = injected.metadata.labels.expect("labels");
    assert_eq!(labels["security.istio.io/tlsMode"], "istio");
    let env = inits[1].env.clone().unwrap_or_default();
    assert!(env.iter().any(|e| e.name == "WEFT_APP_PROBES"));
}

#[test]
fn bad_annotation_refuses_injection() {
    let input = std::fs::read_to_string(testdata().join("annotations.pod.json")).expect("input");
    let mut pod: Pod = serde_json::from_str(&input).expect("pod");
    pod.metadata.annotations.get_or_insert_default().insert(
        "traffic.sidecar.istio.io/excludeOutboundIPRanges".into(),
        "10.0.0.0/99".into(),
    );
    let err = inject(&pod, &settings_for("annotations")).expect_err("refused");
    assert!(matches!(err, InjectError::BadAnnotation { .. }), "{err}");
}
