//! `networking.istio.io`: VirtualService, DestinationRule, Gateway, ServiceEntry, Sidecar.
//!
//! The types follow Istio's protobuf JSON names (camelCase) and enum
//! spellings, so YAML written for Istio parses and serializes back to the same
//! JSON. A protobuf `oneof` is modelled as sibling `Option` fields plus a CEL
//! rule that allows at most one of them, which keeps the schema structural and
//! the round trip exact.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub mod connection_pool;
pub mod destination;
pub mod destination_rule;
pub mod gateway;
pub mod headers;
pub mod service_entry;
pub mod sidecar;
pub mod tls;
pub mod virtual_service;
pub mod workload_selector;

pub use destination_rule::{DestinationRule, DestinationRuleSpec};
pub use gateway::{Gateway, GatewaySpec};
pub use service_entry::{ServiceEntry, ServiceEntrySpec};
pub use sidecar::{Sidecar, SidecarSpec};
pub use virtual_service::{VirtualService, VirtualServiceSpec};

/// The CRDs of this group at version `v1` ([`crate::crd`] adds `v1beta1`).
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        VirtualService::crd(),
        DestinationRule::crd(),
        Gateway::crd(),
        ServiceEntry::crd(),
        Sidecar::crd(),
    ]
}

/// The CEL rule every duration field carries: Envoy rejects zero and
/// sub-millisecond timeouts, so Istio requires at least `1ms`.
/// `message` names the field, e.g. `"timeout must be at least 1ms"`.
pub(crate) fn min_1ms(message: &str) -> kube::core::Rule {
    kube::core::Rule::new("duration(self) >= duration('1ms')").message(message)
}

/// Most items a list may hold when a CEL rule iterates over it. The API server
/// estimates a rule's cost from the list bounds and refuses a CRD whose rules
/// could cost too much; this bound is far above what real configurations use.
pub const MAX_ITERATED_ITEMS: u32 = 256;

#[cfg(test)]
pub(crate) mod test_support {
    //! Helpers shared by the kinds' tests.

    use serde::{Serialize, de::DeserializeOwned};

    /// Parses YAML into `T`, serializes it back and asserts that the JSON is
    /// exactly what the YAML said: no field lost, none added.
    pub fn assert_round_trip<T: Serialize + DeserializeOwned>(yaml: &str) -> T {
        let typed: T = serde_yaml_ng::from_str(yaml).expect("YAML parses into the type");
        let want: serde_json::Value = serde_yaml_ng::from_str(yaml).expect("YAML parses as JSON");
        let got = serde_json::to_value(&typed).expect("type serializes");
        assert_eq!(got, want, "round trip changed the object");
        typed
    }

    /// The messages of the CEL rules an object breaks.
    pub fn cel_messages(result: Result<(), kube::core::cel::ValidationErrors>) -> Vec<String> {
        match result {
            Ok(()) => Vec::new(),
            Err(errors) => errors.iter().map(|e| e.message.clone()).collect(),
        }
    }

    /// Asserts that exactly the given rule message is reported (among possibly
    /// others) and returns all messages for further checks.
    pub fn assert_rejected(result: Result<(), kube::core::cel::ValidationErrors>, message: &str) {
        let messages = cel_messages(result);
        assert!(
            messages.iter().any(|m| m == message),
            "expected rejection {message:?}, got {messages:?}"
        );
    }

    /// Wraps a spec (YAML, unindented) into a full object of `kind`.
    pub fn with_spec(kind: &str, spec: &str) -> String {
        let indented: Vec<String> = spec.lines().map(|l| format!("  {l}")).collect();
        format!(
            "apiVersion: networking.istio.io/v1\nkind: {kind}\nmetadata:\n  name: test\n  namespace: payments\nspec:\n{}\n",
            indented.join("\n")
        )
    }

    /// Parses YAML into `T`, panicking with the error when it does not fit.
    pub fn parse<T: DeserializeOwned>(yaml: &str) -> T {
        serde_yaml_ng::from_str(yaml).unwrap_or_else(|e| panic!("YAML does not parse: {e}\n{yaml}"))
    }

    /// Reads a file below the crate's repository root.
    pub fn repo_file(path: &str) -> String {
        let full = format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("reading {full}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::istio::common::{DURATION_PATTERN, Duration};

    /// Every kind is served at v1 with a status subresource; set
    /// `WEFT_DUMP_CRDS=<dir>` to also write them out for `kubectl apply`.
    #[test]
    fn crds_are_v1_with_status() {
        for crd in crds() {
            assert_eq!(crd.spec.group, "networking.istio.io");
            let [version] = crd.spec.versions.as_slice() else {
                panic!("{}: one version expected", crd.spec.names.kind)
            };
            assert_eq!(version.name, "v1");
            assert!(
                version
                    .subresources
                    .as_ref()
                    .is_some_and(|s| s.status.is_some())
            );
            if let Ok(dir) = std::env::var("WEFT_DUMP_CRDS") {
                let text = serde_yaml_ng::to_string(&crd).expect("CRD serializes");
                let path = format!("{dir}/{}.yaml", crd.spec.names.kind);
                std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {path}: {e}"));
            }
        }
    }

    #[test]
    fn crds_have_istio_names() {
        let names: Vec<(String, Vec<String>)> = crds()
            .into_iter()
            .map(|c| {
                (
                    c.spec.names.plural,
                    c.spec.names.short_names.unwrap_or_default(),
                )
            })
            .collect();
        let want = [
            ("virtualservices", vec!["vs"]),
            ("destinationrules", vec!["dr"]),
            ("gateways", vec!["gw"]),
            ("serviceentries", vec!["se"]),
            ("sidecars", vec![]),
        ];
        assert_eq!(names.len(), want.len());
        for ((plural, short), (want_plural, want_short)) in names.iter().zip(want) {
            assert_eq!(plural, want_plural);
            assert_eq!(short, &want_short);
        }
    }

    /// Walks a schema and reports properties without a description and CEL
    /// rules without a message.
    fn undocumented(node: &Value, path: &str, out: &mut Vec<String>) {
        for rule in node["x-kubernetes-validations"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if rule["message"].as_str().is_none_or(str::is_empty) {
                out.push(format!("{path}: rule {} has no message", rule["rule"]));
            }
        }
        for (name, child) in node["properties"].as_object().into_iter().flatten() {
            let child_path = format!("{path}.{name}");
            if child["description"].as_str().is_none_or(str::is_empty) {
                out.push(format!("{child_path}: no description"));
            }
            undocumented(child, &child_path, out);
        }
        if node["items"].is_object() {
            undocumented(&node["items"], &format!("{path}[]"), out);
        }
        if node["additionalProperties"].is_object() {
            undocumented(&node["additionalProperties"], &format!("{path}{{}}"), out);
        }
    }

    #[test]
    fn every_field_is_described_and_every_rule_explains_itself() {
        for crd in crds() {
            let kind = crd.spec.names.kind.clone();
            let schema = schema_of(&kind);
            let mut problems = Vec::new();
            undocumented(&schema["properties"]["spec"], "spec", &mut problems);
            assert!(problems.is_empty(), "{kind}: {problems:#?}");
        }
    }

    /// The schema of `kind` in this group, as JSON.
    fn schema_of(kind: &str) -> Value {
        let crd = crds()
            .into_iter()
            .find(|c| c.spec.names.kind == kind)
            .unwrap_or_else(|| panic!("{kind} is not a networking.istio.io kind"));
        let schema = crd.spec.versions[0]
            .schema
            .clone()
            .and_then(|s| s.open_api_v3_schema);
        serde_json::to_value(schema).expect("schema serializes")
    }

    /// Checks the OpenAPI keywords the API server applies (required, enum,
    /// minimum/maximum, duration pattern) at `path`, e.g. `spec.http[0].timeout`,
    /// and returns the API server's wording when one of them is broken.
    fn schema_violation(schema: &Value, object: &Value, path: &str) -> Option<String> {
        let mut parent = schema;
        let mut schema = schema;
        let mut value = Some(object);
        let mut last = "";
        for segment in path.split('.') {
            let (name, index) = match segment.split_once('[') {
                Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
                None => (segment, None),
            };
            parent = schema;
            last = name;
            schema = &schema["properties"][name];
            value = value.and_then(|v| v.get(name));
            if let Some(i) = index {
                parent = schema;
                schema = &schema["items"];
                value = value.and_then(|v| v.get(i));
            }
        }
        let Some(value) = value else {
            let required = parent["required"].as_array()?;
            return required
                .iter()
                .any(|r| r == last)
                .then(|| "Required value".to_owned());
        };
        if let Some(allowed) = schema["enum"].as_array()
            && !allowed.contains(value)
        {
            return Some(format!("Unsupported value: {value}"));
        }
        if let (Some(max), Some(v)) = (schema["maximum"].as_f64(), value.as_f64())
            && v > max
        {
            return Some(format!("should be less than or equal to {max}"));
        }
        if let (Some(min), Some(v)) = (schema["minimum"].as_f64(), value.as_f64())
            && v < min
        {
            return Some(format!("should be greater than or equal to {min}"));
        }
        if schema["pattern"] == DURATION_PATTERN
            && let Some(text) = value.as_str()
            && Duration::from(text).parse().is_err()
        {
            return Some(format!("should match '{DURATION_PATTERN}'"));
        }
        None
    }

    #[test]
    fn invalid_documents_are_rejected_for_the_stated_reason() {
        let dir = format!("{}/tests/invalid", env!("CARGO_MANIFEST_DIR"));
        let mut checked = 0;
        let mut paths: Vec<_> = std::fs::read_dir(&dir)
            .expect("api/tests/invalid exists")
            .map(|e| e.expect("directory entry").path())
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                name.starts_with("networking-") && name.ends_with(".yaml")
            })
            .collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path).expect("readable");
            let mut lines = text.lines();
            let field = lines.next().and_then(|l| l.strip_prefix("# field: "));
            let reason = lines.next().and_then(|l| l.strip_prefix("# reason: "));
            let (Some(field), Some(reason)) = (field, reason) else {
                panic!(
                    "{}: must start with `# field:` and `# reason:` lines",
                    path.display()
                )
            };
            let object: Value = serde_yaml_ng::from_str(&text).expect("one YAML document");
            let schema = schema_of(object["kind"].as_str().expect("kind"));
            let cel = kube::core::cel::Validator::new().validate(&schema, &object, None);
            let cel_messages: Vec<String> = cel
                .as_ref()
                .err()
                .into_iter()
                .flatten()
                .map(ToString::to_string)
                .collect();
            let by_cel = cel.as_ref().err().is_some_and(|errors| {
                errors
                    .iter()
                    .any(|e| e.field_path == field && e.message.contains(reason))
            });
            let by_schema = schema_violation(&schema, &object, field);
            assert!(
                by_cel || by_schema.as_deref().is_some_and(|m| m.contains(reason)),
                "{}: expected {field}: {reason}; CEL said {cel_messages:?}, schema said {by_schema:?}",
                path.display()
            );
            checked += 1;
        }
        assert!(checked >= 8, "only {checked} invalid networking documents");
    }
}
