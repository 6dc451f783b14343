//! Reading Kubernetes YAML as users write it: several documents in one file,
//! separated by `---`, comments and empty documents allowed.

use serde::Deserialize;
use serde_json::Value;

/// Why a YAML stream could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("YAML document {index} is not valid YAML: {source}")]
    Yaml {
        index: usize,
        source: serde_yaml_ng::Error,
    },
}

/// Every non-empty document of a YAML stream, as JSON values.
pub fn from_yaml(text: &str) -> Result<Vec<Value>, DocumentError> {
    let mut docs = Vec::new();
    for (index, de) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value =
            Value::deserialize(de).map_err(|source| DocumentError::Yaml { index, source })?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_documents_and_skips_empty_ones() {
        let docs = from_yaml("# c\na: 1\n---\n---\nb: [x]\n").expect("valid YAML");
        assert_eq!(
            docs,
            vec![serde_json::json!({"a": 1}), serde_json::json!({"b": ["x"]})]
        );
    }

    #[test]
    fn a_bad_document_is_named() {
        let err = from_yaml("a: 1\n---\nb: [\n").expect_err("invalid YAML");
        assert!(err.to_string().starts_with("YAML document 1"), "{err}");
    }
}
