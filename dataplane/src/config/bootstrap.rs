//! Static bootstrap: Envoy v3 resources in Envoy's canonical JSON (or the
//! same as YAML), each with its `@type`, loaded into [`Resources`]. Used by
//! tests and benchmarks that run without a control plane:
//!
//! ```yaml
//! resources:
//! - "@type": type.googleapis.com/envoy.config.listener.v3.Listener
//!   name: virtualOutbound
//!   address: { socket_address: { address: 0.0.0.0, port_value: 15001 } }
//!   ...
//! ```
//!
//! A bare list of resources is accepted too. JSON mapping goes through the
//! descriptors `envoy-types` ships (see build.rs), so every Envoy field
//! name and nested `typed_config` with `@type` works as in Envoy.

use std::path::Path;

use prost_reflect::{DescriptorPool, DynamicMessage};
use serde_json::Value;

use super::{Any, ConfigError, Resources};

pub(crate) static DESCRIPTORS: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptors.bin"));

/// The Envoy protobuf descriptors (decoded on each call: only bootstrap
/// loading and the admin dump need them, and they are large).
pub fn descriptor_pool() -> Result<DescriptorPool, String> {
    DescriptorPool::decode(DESCRIPTORS).map_err(|e| format!("embedded Envoy descriptors: {e}"))
}

fn err(path: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Bootstrap {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// Loads a bootstrap file (JSON, or YAML for `.yaml`/`.yml`).
pub fn load_file(path: &Path) -> Result<Resources, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| err(&shown, e.to_string()))?;
    let yaml = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    let value: Value = if yaml {
        serde_yaml_ng::from_str(&text).map_err(|e| err(&shown, e.to_string()))?
    } else {
        serde_json::from_str(&text).map_err(|e| err(&shown, e.to_string()))?
    };
    load_value(&shown, value)
}

/// Loads bootstrap resources from an already parsed document.
pub fn load_value(source: &str, value: Value) -> Result<Resources, ConfigError> {
    let items = match value {
        Value::Array(items) => items,
        Value::Object(mut map) => match map.remove("resources") {
            Some(Value::Array(items)) => items,
            _ => return Err(err(source, "expected a `resources` list")),
        },
        _ => return Err(err(source, "expected a list of resources")),
    };
    let pool = descriptor_pool().map_err(|e| err(source, e))?;
    let mut out = Resources::default();
    for (i, item) in items.into_iter().enumerate() {
        let Value::Object(mut obj) = item else {
            return Err(err(source, format!("resources[{i}]: not an object")));
        };
        let Some(Value::String(type_url)) = obj.remove("@type") else {
            return Err(err(source, format!("resources[{i}]: `@type` is required")));
        };
        let full_name = type_url.rsplit('/').next().unwrap_or(&type_url);
        let desc = pool
            .get_message_by_name(full_name)
            .ok_or_else(|| err(source, format!("resources[{i}]: unknown type {type_url}")))?;
        let name_field = if full_name.ends_with("ClusterLoadAssignment") {
            "cluster_name"
        } else {
            "name"
        };
        let name = obj
            .get(name_field)
            .or_else(|| obj.get("clusterName"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                err(
                    source,
                    format!("resources[{i}]: `{name_field}` is required"),
                )
            })?;
        let msg = DynamicMessage::deserialize(desc, Value::Object(obj))
            .map_err(|e| err(source, format!("resources[{i}] ({name}): {e}")))?;
        let body = Any {
            type_url: type_url.clone(),
            value: prost::Message::encode_to_vec(&msg),
        };
        out.apply(&type_url, vec![(name, body)], &[]);
    }
    Ok(out)
}
