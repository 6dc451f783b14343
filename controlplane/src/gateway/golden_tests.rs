//! Golden files of rendered gateway objects (`testdata/*.yaml`), reviewable
//! by eye. `WEFT_UPDATE_GOLDEN=1 cargo test -p weftd gateway::golden`
//! rewrites them after an intended change; review the diff.

use std::path::PathBuf;

use weft_api::gateway::gateways::Gateway;

use super::render::{render, render_class};
use super::settings::{GatewaySettings, ProxyTemplate, Readiness};

fn repo_file(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("src/gateway/testdata")
        .join(name)
}

fn gateway_from(yaml: &str) -> Gateway {
    let mut gateway: Gateway = serde_yaml_ng::from_str(yaml).expect("test gateway parses");
    // What the API server would have assigned.
    gateway.metadata.uid = Some("7f1c2a9e-0000-4000-8000-000000000001".to_owned());
    gateway
}

fn to_yaml<T: serde::Serialize>(docs: &[T]) -> String {
    docs.iter()
        .map(|d| serde_yaml_ng::to_string(d).expect("rendered objects serialize"))
        .collect::<Vec<_>>()
        .join("---\n")
}

fn check_golden(name: &str, got: &str) {
    let path = testdata(name);
    if std::env::var_os("WEFT_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, got).expect("golden file is writable");
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "reading {}: {e}; run with WEFT_UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    assert!(
        want == got,
        "{} differs from the rendering; if the change is intended, rerun with WEFT_UPDATE_GOLDEN=1 and review the diff.\n--- got:\n{got}",
        path.display()
    );
}

fn render_yaml(gateway: &Gateway, settings: &GatewaySettings) -> String {
    let objects = render(gateway, settings).expect("gateway renders");
    [
        to_yaml(&[objects.service_account]),
        to_yaml(&[objects.deployment]),
        to_yaml(&[objects.service]),
    ]
    .join("---\n")
}

#[test]
fn reference_payments_gateway() {
    let yaml = std::fs::read_to_string(repo_file(
        "config/samples/reference/gateway-gateway-payments-gateway.yaml",
    ))
    .expect("the reference sample exists");
    let gateway = gateway_from(&yaml);
    check_golden(
        "payments-gateway.yaml",
        &render_yaml(&gateway, &GatewaySettings::default()),
    );
}

#[test]
fn infrastructure_and_overrides() {
    let gateway = gateway_from(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: edge
  namespace: shop
  annotations:
    networking.istio.io/service-type: NodePort
spec:
  gatewayClassName: weft
  infrastructure:
    labels:
      team: storefront
    annotations:
      networking.istio.io/service-type: ClusterIP
      example.com/owner: storefront
  listeners:
    - name: http
      port: 8080
      protocol: HTTP
    - name: http-shop
      port: 8080
      protocol: HTTP
      hostname: shop.example.com
    - name: https
      port: 8443
      protocol: HTTPS
      tls:
        certificateRefs:
          - name: shop-tls
"#,
    );
    let settings = GatewaySettings {
        proxy: ProxyTemplate {
            image: "weft.local/echo:dev".to_owned(),
            image_pull_policy: "Never".to_owned(),
            args: vec!["serve".to_owned()],
            readiness: Readiness {
                port: 8080,
                path: "/healthz".to_owned(),
            },
        },
        xds_address: "weftd-1-2.weft-system.svc:15012".to_owned(),
        ..GatewaySettings::default()
    };
    check_golden("edge-overrides.yaml", &render_yaml(&gateway, &settings));
}

#[test]
fn weft_classes() {
    let settings = GatewaySettings::default();
    let classes: Vec<_> = settings.classes.iter().map(render_class).collect();
    check_golden("gatewayclasses.yaml", &to_yaml(&classes));
}

#[test]
fn names_are_dns_labels() {
    use super::render::object_name;
    assert_eq!(
        object_name("payments-gateway", "istio"),
        "payments-gateway-istio"
    );
    let long = "g".repeat(70);
    let a = object_name(&long, "weft");
    let b = object_name(&format!("{long}x"), "weft");
    assert!(a.len() <= 63 && b.len() <= 63, "{a} {b}");
    assert_ne!(a, b, "long names stay distinct");
    assert!(!a.ends_with('-'));
}

#[test]
fn missing_uid_is_an_error_not_a_panic() {
    let mut gateway = gateway_from(
        "metadata: {name: g, namespace: n}\nspec: {gatewayClassName: weft, listeners: []}\n",
    );
    gateway.metadata.uid = None;
    assert!(render(&gateway, &GatewaySettings::default()).is_err());
}
