use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;

use super::*;
use crate::identity::{ProxyKind, SpiffeId};

fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).expect("test object parses")
}

fn service(ns: &str, name: &str, port: i32) -> Service {
    obj(json!({"metadata": {"namespace": ns, "name": name},
        "spec": {"ports": [{"port": port}]}}))
}

fn slice(ns: &str, name: &str, svc: &str, ip: &str) -> EndpointSlice {
    obj(json!({"metadata": {"namespace": ns, "name": name,
            "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ip]}]}))
}

fn pod(ns: &str, name: &str, sa: &str, ip: &str, labels: serde_json::Value) -> Pod {
    obj(
        json!({"metadata": {"namespace": ns, "name": name, "labels": labels},
        "spec": {"serviceAccountName": sa, "containers": []},
        "status": {"podIP": ip, "podIPs": [{"ip": ip}]}}),
    )
}

#[test]
fn apply_publishes_a_new_generation_with_what_changed() {
    let mut index = Index::new();
    let rx = index.subscribe();
    index.apply(service("shop", "cart", 80));
    let snap = rx.borrow().clone();
    assert_eq!(snap.generation, 1);
    assert!(snap.services.contains_key(&ObjectKey::new("shop", "cart")));
    assert_eq!(
        snap.changes_since(0),
        Some(
            [Change {
                kind: Kind::Service,
                key: ObjectKey::new("shop", "cart")
            }]
            .into()
        )
    );
}

#[test]
fn an_unchanged_object_publishes_nothing() {
    let mut index = Index::new();
    index.apply(service("shop", "cart", 80));
    let mut same = service("shop", "cart", 80);
    same.metadata.resource_version = Some("42".into());
    index.apply(same);
    assert_eq!(index.snapshot().generation, 1);
    index.apply(service("shop", "cart", 8080));
    assert_eq!(index.snapshot().generation, 2);
}

#[test]
fn delete_and_reset_remove_objects() {
    let mut index = Index::new();
    index.apply(service("shop", "cart", 80));
    index.apply(service("shop", "pay", 80));
    index.delete::<Service>(&ObjectKey::new("shop", "cart"));
    let snap = index.snapshot();
    assert_eq!(snap.generation, 3);
    assert_eq!(snap.services.len(), 1);
    // Deleting something absent is no change.
    index.delete::<Service>(&ObjectKey::new("shop", "cart"));
    assert_eq!(index.snapshot().generation, 3);

    index.reset(vec![service("shop", "new", 80)]);
    let snap = index.snapshot();
    let names: Vec<_> = snap.services.keys().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["new"]);
    assert!(snap.is_synced(&[Kind::Service]));
    assert!(!snap.is_synced(&[Kind::Service, Kind::Pod]));
    let changed: Vec<_> = snap
        .changes_since(3)
        .expect("log reaches back")
        .into_iter()
        .map(|c| c.key.name)
        .collect();
    assert_eq!(changed, ["new", "pay"]);
}

#[test]
fn an_empty_reset_still_marks_the_kind_synced() {
    let mut index = Index::new();
    index.reset::<Pod>(Vec::new());
    let snap = index.snapshot();
    assert!(snap.is_synced(&[Kind::Pod]));
    assert_eq!(snap.generation, 1);
}

#[test]
fn old_snapshots_do_not_change() {
    let mut index = Index::new();
    index.apply(service("shop", "cart", 80));
    let before = index.snapshot();
    index.apply(service("shop", "pay", 80));
    assert_eq!(before.services.len(), 1);
    assert_eq!(index.snapshot().services.len(), 2);
}

#[test]
fn change_log_reports_when_it_no_longer_reaches_back() {
    let mut index = Index::new();
    for i in 0..(CHANGE_LOG_LEN + 10) {
        index.apply(service("shop", &format!("s{i}"), 80));
    }
    let snap = index.snapshot();
    assert_eq!(snap.changes_since(0), None);
    let recent = snap
        .changes_since(snap.generation - 2)
        .expect("recent changes are logged");
    assert_eq!(recent.len(), 2);
    assert_eq!(snap.changes_since(snap.generation), Some(BTreeSet::new()));
}

#[test]
fn endpoint_slices_are_found_by_service_and_follow_relabels() {
    let mut index = Index::new();
    index.apply(slice("shop", "cart-abc", "cart", "10.0.0.1"));
    index.apply(slice("shop", "cart-def", "cart", "10.0.0.2"));
    let cart = ObjectKey::new("shop", "cart");
    assert_eq!(index.snapshot().slices_of(&cart).count(), 2);
    index.apply(slice("shop", "cart-def", "other", "10.0.0.2"));
    let snap = index.snapshot();
    assert_eq!(snap.slices_of(&cart).count(), 1);
    assert_eq!(snap.slices_of(&ObjectKey::new("shop", "other")).count(), 1);
    index.delete::<EndpointSlice>(&ObjectKey::new("shop", "cart-abc"));
    assert_eq!(index.snapshot().slices_of(&cart).count(), 0);
    assert!(!index.snapshot().slices_by_service.contains_key(&cart));
}

fn tls_secret(ns: &str, name: &str) -> Secret {
    let mut data = BTreeMap::new();
    data.insert("tls.crt".to_owned(), ByteString(b"CERT".to_vec()));
    data.insert("tls.key".to_owned(), ByteString(b"KEY".to_vec()));
    Secret {
        metadata: kube::api::ObjectMeta {
            namespace: Some(ns.into()),
            name: Some(name.into()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(data),
        ..Default::default()
    }
}

#[test]
fn only_secrets_referenced_by_a_gateway_are_published() {
    let mut index = Index::new();
    index.apply_secret(&tls_secret("payments", "payments-tls"));
    index.apply_secret(&tls_secret("payments", "unrelated"));
    assert!(index.snapshot().secrets.is_empty());
    let gw: gateways::Gateway = obj(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"namespace": "payments", "name": "payments-gateway"},
        "spec": {"gatewayClassName": "istio", "listeners": [{"name": "https", "port": 443,
            "protocol": "HTTPS", "tls": {"mode": "Terminate",
            "certificateRefs": [{"name": "payments-tls"}]}}]}}));
    index.apply(gw);
    let snap = index.snapshot();
    let keys: Vec<String> = snap.secrets.keys().map(ToString::to_string).collect();
    assert_eq!(keys, ["payments/payments-tls"]);
    assert_eq!(
        snap.secrets.values().next().map(|c| c.cert_chain.clone()),
        Some(b"CERT".to_vec())
    );
    assert!(
        snap.changes_since(snap.generation - 1)
            .expect("logged")
            .contains(&Change {
                kind: Kind::Secret,
                key: ObjectKey::new("payments", "payments-tls")
            })
    );
    assert!(!format!("{snap:?}").contains("KEY"), "keys never printed");
    index.delete::<gateways::Gateway>(&ObjectKey::new("payments", "payments-gateway"));
    assert!(index.snapshot().secrets.is_empty());
}

#[test]
fn proxy_identity_comes_from_the_pod_of_the_certificate_identity() {
    let mut index = Index::new();
    let ns: Namespace =
        obj(json!({"metadata": {"name": "shop", "labels": {"istio.io/rev": "1-2"}}}));
    index.apply(ns);
    index.apply(pod(
        "shop",
        "cart-1",
        "cart",
        "10.0.0.5",
        json!({"app": "cart"}),
    ));
    index.apply(pod(
        "shop",
        "pay-1",
        "pay",
        "10.0.0.6",
        json!({"app": "pay", "istio.io/rev": "canary"}),
    ));
    let snap = index.snapshot();
    let cart = SpiffeId::new("cluster.local", "shop", "cart");
    let pay = SpiffeId::new("cluster.local", "shop", "pay");

    let cases: &[(&SpiffeId, &str, Option<&str>, &str, ProxyKind)] = &[
        // Istio-style node ID: found by IP, revision from the namespace.
        (
            &cart,
            "sidecar~10.0.0.5~cart-1.shop~shop.svc.cluster.local",
            Some("cart-1"),
            "1-2",
            ProxyKind::Sidecar,
        ),
        // By pod name; the pod's own revision label wins.
        (&pay, "pay-1", Some("pay-1"), "canary", ProxyKind::Sidecar),
        // A router node ID is a gateway.
        (
            &pay,
            "router~10.0.0.6~x.shop~shop.svc.cluster.local",
            Some("pay-1"),
            "canary",
            ProxyKind::Gateway,
        ),
        // cart's certificate cannot claim pay's pod.
        (&cart, "pay-1", None, "1-2", ProxyKind::Sidecar),
        (&cart, "10.0.0.6", None, "1-2", ProxyKind::Sidecar),
    ];
    for (id, node, want_pod, want_rev, want_kind) in cases {
        let p = snap.proxy_identity(id, node, None, "default");
        assert_eq!(p.pod.as_deref(), *want_pod, "{node}");
        assert_eq!(p.revision, *want_rev, "{node}");
        assert_eq!(&p.kind, want_kind, "{node}");
        if want_pod.is_none() {
            assert!(p.labels.is_empty() && p.ips.is_empty(), "{node}");
        }
    }
    let p = snap.proxy_identity(&cart, "cart-1", Some(ProxyKind::Proxyless), "default");
    assert_eq!(p.kind, ProxyKind::Proxyless);
    assert_eq!(p.ips, ["10.0.0.5"]);
    assert_eq!(p.labels.get("app").map(String::as_str), Some("cart"));
}

#[test]
fn node_ids_parse() {
    assert_eq!(
        NodeId::parse("sidecar~10.1.2.3~web-0.shop~shop.svc.cluster.local"),
        NodeId {
            kind: Some(ProxyKind::Sidecar),
            ip: Some("10.1.2.3".into()),
            pod: Some("web-0".into())
        }
    );
    assert_eq!(NodeId::parse("fd00::1").ip.as_deref(), Some("fd00::1"));
    assert_eq!(NodeId::parse("web-0").pod.as_deref(), Some("web-0"));
    assert_eq!(NodeId::parse(""), NodeId::default());
}
