//! Reading Kubernetes YAML as users write it: several documents in one file,
//! separated by `---`, comments and empty documents allowed.

use std::path::{Path, PathBuf};

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
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    InFile {
        path: PathBuf,
        source: Box<DocumentError>,
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

/// Every document of a YAML file.
pub fn from_file(path: &Path) -> Result<Vec<Value>, DocumentError> {
    let text = std::fs::read_to_string(path).map_err(|source| DocumentError::Read {
        path: path.to_owned(),
        source,
    })?;
    from_yaml(&text).map_err(|e| DocumentError::InFile {
        path: path.to_owned(),
        source: Box::new(e),
    })
}

/// Every `.yaml` file below `dir`, recursively, sorted.
pub fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>, DocumentError> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let read = |source| DocumentError::Read {
            path: d.clone(),
            source,
        };
        for entry in std::fs::read_dir(&d).map_err(read)? {
            let path = entry.map_err(read)?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The value of a `# key: value` comment line, as the invalid-document
/// table (`api/tests/invalid/`) uses for `field` and `reason`.
pub fn comment_header<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# "))
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(str::trim)
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

    #[test]
    fn comment_headers() {
        let text = "# field: spec.x\n# reason: must be set\napiVersion: v1\n";
        assert_eq!(comment_header(text, "field"), Some("spec.x"));
        assert_eq!(comment_header(text, "reason"), Some("must be set"));
        assert_eq!(comment_header(text, "other"), None);
    }
}
