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
//! name and nested `typed_config` with `@type` works as in Envoy. Only the
//! descriptor files the document's `@type`s need (and their imports) are
//! decoded: the whole set takes ~50 MB while it is decoded, memory the
//! process would otherwise keep for its lifetime. Even that subset leaves
//! ~11 MB of freed heap resident (glibc keeps it).
//!
//! A binary bootstrap (`.pb`, as Envoy accepts one) needs no descriptors:
//! an xDS `DiscoveryResponse` whose `resources` are the Envoy resources,
//! the bytes weftd would send.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use prost_reflect::{DescriptorPool, DynamicMessage};
use serde_json::Value;

use envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse;

use super::{Any, ConfigError, Resources};

pub(crate) static DESCRIPTORS: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptors.bin"));

/// The Envoy protobuf descriptors (decoded on each call: only bootstrap
/// loading and the admin dump need them, and they are large).
pub fn descriptor_pool() -> Result<DescriptorPool, String> {
    DescriptorPool::decode(DESCRIPTORS).map_err(|e| format!("embedded Envoy descriptors: {e}"))
}

/// One file of the embedded descriptor set: (name, imports, top-level
/// message full names, encoded `FileDescriptorProto`).
type DescriptorFile = (String, Vec<String>, Vec<String>, &'static [u8]);

/// The embedded descriptor set's files, decoded one at a time.
fn descriptor_files() -> Result<Vec<DescriptorFile>, String> {
    use prost::Message;
    let bad = |e: &dyn std::fmt::Display| format!("embedded Envoy descriptors: {e}");
    let mut buf: &'static [u8] = DESCRIPTORS;
    let mut files = Vec::new();
    while !buf.is_empty() {
        // FileDescriptorSet { repeated FileDescriptorProto file = 1; }
        let key = prost::encoding::decode_varint(&mut buf).map_err(|e| bad(&e))?;
        if key & 7 != 2 {
            return Err(bad(&format!("unexpected wire type in field {}", key >> 3)));
        }
        let len = prost::encoding::decode_varint(&mut buf).map_err(|e| bad(&e))?;
        let len = usize::try_from(len)
            .ok()
            .filter(|l| *l <= buf.len())
            .ok_or_else(|| bad(&"truncated file descriptor"))?;
        let (blob, rest) = buf.split_at(len);
        buf = rest;
        if key >> 3 != 1 {
            continue;
        }
        let file =
            prost_reflect::prost_types::FileDescriptorProto::decode(blob).map_err(|e| bad(&e))?;
        let package = file.package();
        let messages = file
            .message_type
            .iter()
            .map(|m| format!("{package}.{}", m.name()))
            .collect();
        files.push((file.name().to_owned(), file.dependency, messages, blob));
    }
    Ok(files)
}

/// A pool with the files defining `types` (message full names) and
/// everything they import. Unknown names are left out (the caller reports
/// them).
pub fn descriptor_pool_for<'a>(
    types: impl IntoIterator<Item = &'a str>,
) -> Result<DescriptorPool, String> {
    let files = descriptor_files()?;
    let by_name: HashMap<&str, usize> = files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.0.as_str(), i))
        .collect();
    let by_message: HashMap<&str, usize> = files
        .iter()
        .enumerate()
        .flat_map(|(i, f)| f.2.iter().map(move |m| (m.as_str(), i)))
        .collect();
    let mut pool = DescriptorPool::new();
    let mut added = vec![false; files.len()];
    // Depth-first, imports before the files that need them.
    let mut stack: Vec<(usize, bool)> = types
        .into_iter()
        .filter_map(|t| by_message.get(t).map(|i| (*i, false)))
        .collect();
    while let Some((i, deps_done)) = stack.pop() {
        if added[i] {
            continue;
        }
        if deps_done {
            pool.decode_file_descriptor_proto(files[i].3)
                .map_err(|e| format!("embedded Envoy descriptors: {}: {e}", files[i].0))?;
            added[i] = true;
            continue;
        }
        stack.push((i, true));
        for dep in &files[i].1 {
            match by_name.get(dep.as_str()) {
                Some(d) if !added[*d] => stack.push((*d, false)),
                Some(_) => {}
                None => {
                    return Err(format!(
                        "embedded Envoy descriptors: {} imports {dep}, which is missing",
                        files[i].0
                    ));
                }
            }
        }
    }
    Ok(pool)
}

/// Every `@type` in a document, as message full names.
fn type_names(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "@type"
                    && let Value::String(t) = v
                {
                    out.insert(t.rsplit('/').next().unwrap_or(t).to_owned());
                }
                type_names(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| type_names(v, out)),
        _ => {}
    }
}

fn err(path: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Bootstrap {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// Every resource type weft-proxy takes carries its name in field 1
/// (`name`; `cluster_name` for a ClusterLoadAssignment): decoding only
/// that field names a resource of any of them.
#[derive(Clone, PartialEq, prost::Message)]
struct Named {
    #[prost(string, tag = "1")]
    name: String,
}

/// Loads a binary bootstrap: an encoded `DiscoveryResponse`.
pub fn load_binary(source: &str, bytes: &[u8]) -> Result<Resources, ConfigError> {
    let response = <DiscoveryResponse as prost::Message>::decode(bytes)
        .map_err(|e| err(source, format!("not an encoded DiscoveryResponse: {e}")))?;
    let mut out = Resources::default();
    for (i, any) in response.resources.into_iter().enumerate() {
        if !super::type_url::ALL.contains(&any.type_url.as_str()) {
            return Err(err(
                source,
                format!("resources[{i}]: unsupported type {:?}", any.type_url),
            ));
        }
        let name = <Named as prost::Message>::decode(any.value.as_slice())
            .map_err(|e| err(source, format!("resources[{i}]: {e}")))?
            .name;
        if name.is_empty() {
            return Err(err(source, format!("resources[{i}]: the name is empty")));
        }
        let type_url = any.type_url.clone();
        out.apply(&type_url, vec![(name, any)], &[]);
    }
    Ok(out)
}

/// Encodes resources as a binary bootstrap ([`load_binary`] reads it).
pub fn to_binary(resources: &Resources) -> Vec<u8> {
    let response = DiscoveryResponse {
        resources: super::type_url::ALL
            .iter()
            .flat_map(|t| resources.of_type(t).map(|(_, any)| any.clone()))
            .collect(),
        ..Default::default()
    };
    prost::Message::encode_to_vec(&response)
}

/// Loads a bootstrap file: binary for `.pb`, YAML for `.yaml`/`.yml`,
/// else JSON.
pub fn load_file(path: &Path) -> Result<Resources, ConfigError> {
    let shown = path.display().to_string();
    if path.extension().is_some_and(|e| e == "pb") {
        let bytes = std::fs::read(path).map_err(|e| err(&shown, e.to_string()))?;
        return load_binary(&shown, &bytes);
    }
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
    let mut types = BTreeSet::new();
    items.iter().for_each(|i| type_names(i, &mut types));
    let pool = descriptor_pool_for(types.iter().map(String::as_str)).map_err(|e| err(source, e))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_for_holds_the_types_and_their_imports_only() {
        let full = descriptor_pool().unwrap();
        let listener = "envoy.config.listener.v3.Listener";
        let pool = descriptor_pool_for([listener, "no.such.Type"]).unwrap();
        assert!(pool.get_message_by_name(listener).is_some());
        // Imported by listener.proto.
        assert!(
            pool.get_message_by_name("envoy.config.core.v3.Address")
                .is_some()
        );
        // Not imported by it: only in the full set.
        let hcm =
            "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
        assert!(pool.get_message_by_name(hcm).is_none());
        assert!(full.get_message_by_name(hcm).is_some());
        assert!(pool.files().count() < full.files().count());
    }

    #[test]
    fn every_type_of_a_document_is_found() {
        let doc = serde_json::json!([{"@type": "type.googleapis.com/a.B",
            "x": [{"typed_config": {"@type": "type.googleapis.com/c.D"}}]}]);
        let mut types = BTreeSet::new();
        type_names(&doc, &mut types);
        assert_eq!(types.into_iter().collect::<Vec<_>>(), ["a.B", "c.D"]);
    }
}
