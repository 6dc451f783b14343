//! Contract with weftd: every sidecar and gateway golden output of weftd's
//! translation (controlplane/tests/golden/*.json, weftd's readable dump
//! format) compiles into a proxy snapshot. The dump is turned back into
//! Envoy's canonical JSON with the Envoy descriptors: oneof wrappers
//! dropped, enum names restored, bytes re-encoded, Structs unwrapped.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use prost_reflect::{DescriptorPool, FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value};
use weft_proxy::config::model::{DownstreamTls, NetworkFilter, UpstreamTls};
use weft_proxy::config::{Snapshot, bootstrap, type_url};

fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |a, b| (a << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn norm(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '_')
        .collect::<String>()
        .to_ascii_lowercase()
}

fn convert_message(pool: &DescriptorPool, v: &Value, desc: &MessageDescriptor) -> Value {
    match desc.full_name() {
        "google.protobuf.Any" => {
            let Value::Object(obj) = v else {
                return v.clone();
            };
            let url = obj["@type"].as_str().unwrap();
            let inner = pool
                .get_message_by_name(url.rsplit('/').next().unwrap())
                .unwrap_or_else(|| panic!("unknown {url}"));
            let mut out = match convert_message(pool, &Value::Object(obj.clone()), &inner) {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            out.insert("@type".into(), Value::String(url.into()));
            return Value::Object(out);
        }
        "google.protobuf.Struct" => {
            let mut out = Map::new();
            if let Some(Value::Object(fields)) = v.get("fields") {
                for (k, val) in fields {
                    let kind = &val["kind"];
                    let scalar = kind
                        .get("string_value")
                        .or_else(|| kind.get("bool_value"))
                        .or_else(|| kind.get("number_value"))
                        .cloned()
                        .unwrap_or(Value::Null);
                    out.insert(k.clone(), scalar);
                }
            }
            return Value::Object(out);
        }
        name if name.starts_with("google.protobuf.") => return v.clone(),
        _ => {}
    }
    let Value::Object(obj) = v else {
        // An empty message rendered as its type name (e.g. `ads`).
        return Value::Object(Map::new());
    };
    let mut out = Map::new();
    for (k, val) in obj {
        // `@type`, and an empty message in an Any rendered by name.
        if k == "@type" || (k == "value" && val.as_str() == Some(desc.name())) {
            continue;
        }
        if let Some(f) = desc.get_field_by_name(k) {
            out.insert(k.clone(), convert_field(pool, val, &f));
        } else if desc.oneofs().any(|o| o.name() == k) {
            let Value::Object(inner) = val else {
                panic!("oneof {k} is not an object")
            };
            for (fk, fv) in inner {
                let f = desc
                    .get_field_by_name(fk)
                    .unwrap_or_else(|| panic!("{}: no field {fk}", desc.full_name()));
                out.insert(fk.clone(), convert_field(pool, fv, &f));
            }
        } else {
            panic!("{}: no field or oneof {k}", desc.full_name());
        }
    }
    Value::Object(out)
}

fn convert_value(pool: &DescriptorPool, v: &Value, kind: &Kind) -> Value {
    match kind {
        Kind::Message(m) => convert_message(pool, v, m),
        Kind::Enum(e) => match v {
            Value::String(s) => e
                .values()
                .find(|ev| norm(ev.name()) == norm(s))
                .map(|ev| Value::String(ev.name().into()))
                .unwrap_or_else(|| panic!("{}: no value {s}", e.full_name())),
            other => other.clone(),
        },
        Kind::Bytes => match v {
            Value::String(s) => Value::String(base64(s.as_bytes())),
            other => other.clone(),
        },
        _ => v.clone(),
    }
}

fn convert_field(pool: &DescriptorPool, v: &Value, f: &FieldDescriptor) -> Value {
    if f.is_map() {
        let Kind::Message(entry) = f.kind() else {
            unreachable!()
        };
        let value_kind = entry.map_entry_value_field().kind();
        let Value::Object(m) = v else {
            return v.clone();
        };
        return Value::Object(
            m.iter()
                .map(|(k, val)| (k.clone(), convert_value(pool, val, &value_kind)))
                .collect(),
        );
    }
    if f.is_list() {
        let Value::Array(items) = v else {
            return v.clone();
        };
        return Value::Array(
            items
                .iter()
                .map(|i| convert_value(pool, i, &f.kind()))
                .collect(),
        );
    }
    convert_value(pool, v, &f.kind())
}

fn load_golden(case: &str, pem: &(String, String)) -> Snapshot {
    let pool = bootstrap::descriptor_pool().unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../controlplane/tests/golden")
        .join(format!("{case}.json"));
    let dump: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut resources = Vec::new();
    for (_, of_type) in dump.as_object().unwrap() {
        for (_, r) in of_type.as_object().unwrap() {
            let url = r["@type"].as_str().unwrap();
            let desc = pool
                .get_message_by_name(url.rsplit('/').next().unwrap())
                .unwrap();
            let mut v = convert_message(&pool, r, &desc);
            // Golden certificates are placeholders; the proxy parses them.
            if let Some(tls) = v.pointer_mut("/tls_certificate") {
                tls["certificate_chain"] =
                    serde_json::json!({"inline_bytes": base64(pem.0.as_bytes())});
                tls["private_key"] = serde_json::json!({"inline_bytes": base64(pem.1.as_bytes())});
            }
            v.as_object_mut()
                .unwrap()
                .insert("@type".into(), Value::String(url.into()));
            resources.push(v);
        }
    }
    let loaded = bootstrap::load_value(case, serde_json::json!({ "resources": resources }))
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    Snapshot::build(&loaded).unwrap_or_else(|e| panic!("{case}: weftd output refused: {e}"))
}

#[test]
fn every_sidecar_and_gateway_golden_output_compiles() {
    let ca = common::certs::Ca::new("public");
    let pem = ca.server_pem(&["payments.example.com", "*.example.com"]);

    let mesh = load_golden("plain-mesh", &pem);
    let inbound = &mesh.listeners["virtualInbound"];
    assert!(
        inbound
            .chains
            .iter()
            .any(|c| c.tls == Some(DownstreamTls::Mesh))
    );
    let outbound = &mesh.listeners["virtualOutbound"];
    assert!(outbound.use_original_dst);
    assert!(
        outbound
            .chains
            .iter()
            .any(|c| matches!(c.filter, NetworkFilter::TcpProxy { .. })
                && !c.matcher.prefix_ranges.is_empty())
    );
    let meshed = mesh
        .clusters
        .values()
        .flat_map(|c| c.endpoints.iter().map(move |e| (c, e)))
        .any(|(c, e)| matches!(c.tls_for(e), UpstreamTls::Mesh { sans, .. } if !sans.is_empty()));
    assert!(meshed, "meshed endpoints get mTLS with SPIFFE SANs");
    assert!(mesh.trust_bundle_pem().is_some());
    // Everything the listeners and clusters name was delivered.
    for name in mesh.referenced_names(type_url::ROUTE) {
        assert!(mesh.routes.contains_key(&name), "RDS {name}");
    }
    for name in mesh.referenced_names(type_url::ENDPOINT) {
        assert!(
            mesh.resources.get(type_url::ENDPOINT, &name).is_some(),
            "EDS {name}"
        );
    }

    let subsets = load_golden("destination-rule-subsets", &pem);
    assert!(subsets.clusters.keys().any(|k| k.contains("|v1|")));

    for case in ["gateway-api-payments", "istio-gateway"] {
        let gw = load_golden(case, &pem);
        assert!(!gw.listeners.is_empty(), "{case}");
        let terminating = gw
            .listeners
            .values()
            .flat_map(|l| &l.chains)
            .filter_map(|c| match &c.tls {
                Some(DownstreamTls::Terminate { secrets }) => Some(secrets.clone()),
                _ => None,
            })
            .collect::<Vec<_>>();
        for secrets in &terminating {
            assert!(gw.terminations.contains_key(secrets), "{case}: {secrets:?}");
        }
        assert!(!gw.routes.is_empty(), "{case}");
        for name in gw.referenced_names(type_url::SECRET) {
            assert!(gw.secrets.contains_key(&name), "{case}: SDS {name}");
        }
    }
}
