//! Client-side validation of a YAML/JSON document against Weft's CRDs, the
//! way the API server does it: the structural schema (types, enums,
//! patterns, ranges, lengths, required and unknown fields) and the CEL rules
//! (`x-kubernetes-validations`). Used by tests, `weftctl analyze` and the
//! validating webhook, so users hear about bad input before it is stored.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

use crate::crd;

/// One thing wrong with a document, named by its field path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Path of the offending field, e.g. `spec.http[0].route`.
    pub field: String,
    /// What is wrong and, where possible, what to write instead.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Why a document could not be validated at all.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error("document has no apiVersion/kind: every Kubernetes object names both")]
    NoKind,
    #[error("{api_version} {kind} is not a Weft CRD kind: check apiVersion and kind")]
    UnknownKind { api_version: String, kind: String },
    #[error("CRD {0} has no openAPIV3Schema for the requested version")]
    NoSchema(String),
}

/// The CRD schemas, compiled once, looked up by `apiVersion` and `kind`.
#[derive(Debug)]
pub struct Schemas {
    by_kind: BTreeMap<(String, String), Value>,
}

impl Default for Schemas {
    fn default() -> Self {
        Self::new(crd::all())
    }
}

impl Schemas {
    /// Indexes the schema of every served version of `crds`.
    pub fn new(crds: Vec<CustomResourceDefinition>) -> Self {
        let mut by_kind = BTreeMap::new();
        for crd in crds {
            for version in crd.spec.versions.iter().filter(|v| v.served) {
                let schema = version
                    .schema
                    .as_ref()
                    .and_then(|s| s.open_api_v3_schema.as_ref())
                    .and_then(|s| serde_json::to_value(s).ok());
                if let Some(schema) = schema {
                    let api_version = format!("{}/{}", crd.spec.group, version.name);
                    by_kind.insert((api_version, crd.spec.names.kind.clone()), schema);
                }
            }
        }
        Self { by_kind }
    }

    /// The openAPIV3Schema for `apiVersion` and `kind`.
    pub fn schema(&self, api_version: &str, kind: &str) -> Option<&Value> {
        self.by_kind.get(&(api_version.to_owned(), kind.to_owned()))
    }

    /// Validates one object. `Ok(vec![])` means the API server would accept it.
    pub fn validate(&self, object: &Value) -> Result<Vec<Violation>, ValidateError> {
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .ok_or(ValidateError::NoKind)?;
        let kind = object
            .get("kind")
            .and_then(Value::as_str)
            .ok_or(ValidateError::NoKind)?;
        let schema = self
            .schema(api_version, kind)
            .ok_or_else(|| ValidateError::UnknownKind {
                api_version: api_version.to_owned(),
                kind: kind.to_owned(),
            })?;
        let mut violations = Vec::new();
        check_structure(schema, object, "", &mut violations);
        if violations.is_empty()
            && let Err(errors) = kube::core::cel::Validator::new().validate(schema, object, None)
        {
            violations.extend(errors.into_vec().into_iter().map(|e| Violation {
                field: e.field_path,
                message: e.message,
            }));
        }
        Ok(violations)
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn violation(out: &mut Vec<Violation>, field: &str, message: String) {
    out.push(Violation {
        field: field.to_owned(),
        message,
    });
}

/// Checks `value` against a structural schema the way the API server's
/// OpenAPI validation does, collecting every violation.
pub fn check_structure(schema: &Value, value: &Value, path: &str, out: &mut Vec<Violation>) {
    if value.is_null() {
        // The API server prunes nulls of non-nullable fields instead of refusing them.
        return;
    }
    let flag = |name: &str| schema.get(name).and_then(Value::as_bool).unwrap_or(false);
    if flag("x-kubernetes-int-or-string") {
        if !(value.is_i64() || value.is_u64() || value.is_string()) {
            violation(
                out,
                path,
                format!("must be an integer or a string, got {}", type_name(value)),
            );
        }
        return;
    }
    let ty = schema.get("type").and_then(Value::as_str);
    match (ty, value) {
        (Some("object"), Value::Object(map)) => check_object(
            schema,
            map,
            path,
            flag("x-kubernetes-preserve-unknown-fields"),
            out,
        ),
        (Some("array"), Value::Array(items)) => check_array(schema, items, path, out),
        (Some("string"), Value::String(s)) => check_string(schema, s, path, out),
        (Some("integer"), Value::Number(n)) if n.is_i64() || n.is_u64() => {
            check_number(schema, n.as_f64().unwrap_or_default(), path, out)
        }
        (Some("number"), Value::Number(n)) => {
            check_number(schema, n.as_f64().unwrap_or_default(), path, out)
        }
        (Some("boolean"), Value::Bool(_)) => {}
        (None, _) => {
            if let Value::Object(map) = value
                && schema.get("properties").is_some()
            {
                check_object(
                    schema,
                    map,
                    path,
                    flag("x-kubernetes-preserve-unknown-fields"),
                    out,
                );
            }
        }
        (Some(want), got) => violation(
            out,
            path,
            format!("must be of type {want}, got {}", type_name(got)),
        ),
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let names: Vec<String> = allowed.iter().map(|v| v.to_string()).collect();
        violation(
            out,
            path,
            format!(
                "Unsupported value: {value}: supported values: {}",
                names.join(", ")
            ),
        );
    }
    check_one_of(schema, value, path, out);
}

fn check_object(
    schema: &Value,
    map: &serde_json::Map<String, Value>,
    path: &str,
    preserve_unknown: bool,
    out: &mut Vec<Violation>,
) {
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(name) {
                violation(out, &join(path, name), "Required value".into());
            }
        }
    }
    for (key, child) in map {
        // metadata is validated by the API server itself, not by the CRD schema.
        if path.is_empty() && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        let field = join(path, key);
        match (properties.and_then(|p| p.get(key)), additional) {
            (Some(sub), _) | (None, Some(sub)) => check_structure(sub, child, &field, out),
            (None, None) if preserve_unknown => {}
            (None, None) => violation(out, &field, format!("unknown field \"{field}\"")),
        }
    }
    if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
        && map.len() as u64 > max
    {
        violation(
            out,
            path,
            format!("Too many: {}: must have at most {max} items", map.len()),
        );
    }
}

fn check_array(schema: &Value, items: &[Value], path: &str, out: &mut Vec<Violation>) {
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
        && items.len() as u64 > max
    {
        violation(
            out,
            path,
            format!("Too many: {}: must have at most {max} items", items.len()),
        );
    }
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
        && (items.len() as u64) < min
    {
        violation(out, path, format!("must have at least {min} items"));
    }
    if let Some(item_schema) = schema.get("items") {
        for (i, item) in items.iter().enumerate() {
            check_structure(item_schema, item, &format!("{path}[{i}]"), out);
        }
    }
}

fn check_string(schema: &Value, s: &str, path: &str, out: &mut Vec<Violation>) {
    let len = s.chars().count() as u64;
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && len > max
    {
        violation(
            out,
            path,
            format!("Too long: may not be more than {max} bytes"),
        );
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && len < min
    {
        violation(
            out,
            path,
            format!("Invalid value: \"{s}\": should be at least {min} chars long"),
        );
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        match regex::Regex::new(pattern) {
            Ok(re) if !re.is_match(s) => {
                violation(
                    out,
                    path,
                    format!("Invalid value: \"{s}\": should match '{pattern}'"),
                );
            }
            Ok(_) => {}
            Err(err) => violation(
                out,
                path,
                format!("schema pattern '{pattern}' does not compile: {err}"),
            ),
        }
    }
}

fn check_number(schema: &Value, n: f64, path: &str, out: &mut Vec<Violation>) {
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
        && n < min
    {
        violation(
            out,
            path,
            format!("Invalid value: {n}: should be greater than or equal to {min}"),
        );
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
        && n > max
    {
        violation(
            out,
            path,
            format!("Invalid value: {n}: should be less than or equal to {max}"),
        );
    }
}

/// `oneOf`/`anyOf` in structural schemas only list `required` sets (which of
/// several mutually exclusive fields is present): count the sets satisfied.
fn check_one_of(schema: &Value, value: &Value, path: &str, out: &mut Vec<Violation>) {
    let Value::Object(map) = value else { return };
    let satisfied = |options: &Vec<Value>| {
        options
            .iter()
            .filter(|option| {
                option
                    .get("required")
                    .and_then(Value::as_array)
                    .is_some_and(|req| {
                        req.iter()
                            .filter_map(Value::as_str)
                            .all(|k| map.contains_key(k))
                    })
            })
            .count()
    };
    let names = |options: &Vec<Value>| {
        let keys: Vec<String> = options
            .iter()
            .filter_map(|o| o.get("required").and_then(Value::as_array))
            .map(|req| {
                req.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("+")
            })
            .collect();
        keys.join(", ")
    };
    if let Some(options) = schema.get("oneOf").and_then(Value::as_array)
        && satisfied(options) != 1
    {
        violation(
            out,
            path,
            format!("must set exactly one of: {}", names(options)),
        );
    }
    if let Some(options) = schema.get("anyOf").and_then(Value::as_array)
        && satisfied(options) == 0
    {
        violation(
            out,
            path,
            format!("must set at least one of: {}", names(options)),
        );
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn violations(object: Value) -> Vec<String> {
        Schemas::default()
            .validate(&object)
            .expect("a Weft kind")
            .into_iter()
            .map(|v| v.to_string())
            .collect()
    }

    fn installation(spec: Value) -> Value {
        json!({"apiVersion": "weft.dev/v1alpha1", "kind": "MeshInstallation", "metadata": {"name": "mesh"}, "spec": spec})
    }

    #[test]
    fn a_valid_installation_has_no_violations() {
        assert_eq!(
            violations(installation(json!({"version": "1.0.0"}))),
            Vec::<String>::new()
        );
    }

    #[test]
    fn structural_violations_name_the_field() {
        let cases = [
            (json!({}), "spec.version: Required value"),
            (
                json!({"version": "one"}),
                "spec.version: Invalid value: \"one\": should match",
            ),
            (
                json!({"version": "1.0.0", "profile": "huge"}),
                "spec.profile: Unsupported value: \"huge\"",
            ),
            (
                json!({"version": "1.0.0", "controlPlane": {"replicas": 0}}),
                "spec.controlPlane.replicas: Invalid value: 0",
            ),
            (
                json!({"version": "1.0.0", "controlPlane": {"replicas": "two"}}),
                "spec.controlPlane.replicas: must be of type integer, got string",
            ),
            (
                json!({"version": "1.0.0", "colour": "blue"}),
                "spec.colour: unknown field \"spec.colour\"",
            ),
        ];
        for (spec, want) in cases {
            let got = violations(installation(spec.clone()));
            assert!(
                got.iter().any(|v| v.starts_with(want)),
                "{spec}: want {want:?}, got {got:?}"
            );
        }
    }

    #[test]
    fn cel_rules_are_evaluated() {
        let got = violations(installation(
            json!({"version": "1.0.0", "certificates": {"ca": {"type": "PluggedIn"}}}),
        ));
        assert!(
            got.iter()
                .any(|v| v.contains("spec.certificates.ca.secretRef is required")),
            "{got:?}"
        );
    }

    #[test]
    fn unknown_kinds_are_reported() {
        let err = Schemas::default().validate(&json!({"apiVersion": "v1", "kind": "Pod"}));
        assert!(matches!(err, Err(ValidateError::UnknownKind { .. })));
    }
}
