//! Shared by the weft-api integration tests: the sample and invalid YAML
//! files of the repository.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::Value;
use weft_api::documents;

/// The repository root (the workspace above `api/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("api/ has a parent")
        .to_path_buf()
}

/// Every `.yaml` file below `dir`.
pub fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    documents::yaml_files(dir).unwrap_or_else(|e| panic!("{e}"))
}

/// The documents of a YAML file.
pub fn documents(path: &Path) -> Vec<Value> {
    documents::from_file(path).unwrap_or_else(|e| panic!("{e}"))
}

/// An invalid document and what the API server must say about it, from the
/// `# field:` and `# reason:` header lines.
#[derive(Debug)]
pub struct Invalid {
    pub path: PathBuf,
    pub field: String,
    pub reason: String,
    pub document: Value,
}

/// Every file in `api/tests/invalid/`.
pub fn invalid_documents() -> Vec<Invalid> {
    yaml_files(&repo_root().join("api/tests/invalid"))
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("readable invalid document");
            let header = |key: &str| {
                documents::comment_header(&text, key)
                    .unwrap_or_else(|| panic!("{} lacks a '# {key}:' line", path.display()))
                    .to_owned()
            };
            let (field, reason) = (header("field"), header("reason"));
            let mut docs = documents(&path);
            assert_eq!(
                docs.len(),
                1,
                "{}: one document per invalid file",
                path.display()
            );
            Invalid {
                path,
                field,
                reason,
                document: docs.remove(0),
            }
        })
        .collect()
}
