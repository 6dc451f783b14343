//! Every sample in `config/samples/` is accepted by the CRD schemas and
//! survives YAML → typed struct → YAML without losing or adding a field.

mod common;

use weft_api::kinds::round_trip;
use weft_api::validate::Schemas;

#[test]
fn every_sample_is_valid_and_round_trips() {
    let schemas = Schemas::default();
    let files = common::yaml_files(&common::repo_root().join("config/samples"));
    assert!(
        files.len() >= 14,
        "expected the reference and MeshInstallation samples, found {files:?}"
    );
    let mut failures = Vec::new();
    for file in &files {
        for doc in common::documents(file) {
            let name = format!("{} ({})", file.display(), doc["kind"]);
            match schemas.validate(&doc) {
                Ok(v) if v.is_empty() => {}
                Ok(v) => failures.push(format!("{name}: refused: {v:?}")),
                Err(e) => failures.push(format!("{name}: {e}")),
            }
            match round_trip(&doc) {
                Ok(back) if same_json(&back, &doc) => {}
                Ok(back) => failures.push(format!(
                    "{name}: round trip changed the document\n  wrote: {doc}\n  got:   {back}"
                )),
                Err(e) => failures.push(format!("{name}: {e}")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_reference_document_is_a_sample() {
    // The Istio reference holds 10 Kubernetes objects Weft reads (its
    // IstioOperator install snippet is replaced by MeshInstallation).
    let dir = common::repo_root().join("config/samples/reference");
    let docs: usize = common::yaml_files(&dir)
        .iter()
        .map(|f| common::documents(f).len())
        .sum();
    assert_eq!(docs, 10);
}

/// JSON equality where `10` and `10.0` are the same number (YAML does not
/// distinguish them; a float field serializes with a fraction).
fn same_json(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}
