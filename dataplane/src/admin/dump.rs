//! `/config_dump` and `/certs`: the current resources in Envoy's JSON
//! form (decoded with the Envoy descriptors), the last rejected update,
//! and the workload certificate and trust bundle in use. Private keys
//! never appear.

use prost_reflect::{DescriptorPool, DynamicMessage};
use serde_json::{Value, json};

use crate::config::{ConfigHandle, type_url};
use crate::proxy::Proxy;
use crate::tls::spiffe;

fn pool() -> Option<DescriptorPool> {
    crate::config::bootstrap::descriptor_pool().ok()
}

pub fn config_dump(config: &ConfigHandle) -> Value {
    let resources = config.resources();
    let pool = pool();
    let mut out = Vec::new();
    for t in type_url::ALL {
        for (name, any) in resources.of_type(t) {
            let full = t.rsplit('/').next().unwrap_or(t);
            let decoded = pool
                .as_ref()
                .and_then(|p| p.get_message_by_name(full))
                .and_then(|d| DynamicMessage::decode(d, any.value.as_slice()).ok())
                .and_then(|m| serde_json::to_value(&m).ok());
            let mut v = match decoded {
                Some(Value::Object(mut m)) => {
                    if t == type_url::SECRET {
                        redact_secret(&mut m);
                    }
                    m
                }
                _ => {
                    let mut m = serde_json::Map::new();
                    m.insert("name".into(), Value::String(name.to_owned()));
                    m.insert("undecoded_bytes".into(), Value::from(any.value.len()));
                    m
                }
            };
            v.insert("@type".into(), Value::String(t.to_owned()));
            out.push(Value::Object(v));
        }
    }
    json!({
        "version": config.version(),
        "last_rejected_update": config.last_error(),
        "resources": out,
    })
}

fn redact_secret(m: &mut serde_json::Map<String, Value>) {
    if let Some(Value::Object(tls)) = m.get_mut("tlsCertificate")
        && tls.contains_key("privateKey")
    {
        tls.insert("privateKey".into(), Value::String("[redacted]".into()));
    }
}

pub fn certs(proxy: &Proxy) -> Value {
    let id = proxy.identity.current();
    let describe = |c: &rustls::pki_types::CertificateDer<'_>| {
        json!({
            "uri_sans": spiffe::uri_sans(c),
            "dns_sans": spiffe::dns_sans(c),
            "not_after_unix": spiffe::not_after(c),
        })
    };
    let snapshot = proxy.config.current();
    let gateway: Vec<Value> = snapshot
        .secrets
        .iter()
        .filter_map(|(name, s)| match s {
            crate::config::model::SecretConfig::Certificate(c) => Some(json!({
                "name": name,
                "dns_names": c.names,
                "not_after_unix": c.not_after,
            })),
            _ => None,
        })
        .collect();
    json!({
        "workload": {
            "spiffe_id": id.id.to_string(),
            "generation": id.generation,
            "not_after_unix": id.not_after,
            "chain": id.chain.iter().map(describe).collect::<Vec<_>>(),
        },
        "trust_bundle": id.roots.iter().map(describe).collect::<Vec<_>>(),
        "gateway_certificates": gateway,
    })
}
