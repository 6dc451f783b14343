//! Shared by the weft-api integration tests: locating and reading the
//! sample and invalid YAML files of the repository.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The repository root (the workspace above `api/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("api/ has a parent")
        .to_path_buf()
}

/// Every `.yaml` file below `dir`, sorted, recursively.
pub fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("read {}: {e}", d.display())) {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The documents of a YAML file.
pub fn documents(path: &Path) -> Vec<Value> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    weft_api::documents::from_yaml(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
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
                text.lines()
                    .find_map(|l| l.strip_prefix(&format!("# {key}: ")))
                    .unwrap_or_else(|| panic!("{} lacks a '# {key}:' line", path.display()))
                    .trim()
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
