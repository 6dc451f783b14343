//! `config/crd/` is exactly what the types generate: a type change without
//! `make crds` fails here.

mod common;

use std::collections::BTreeMap;

#[test]
fn committed_crds_match_the_types() {
    let dir = common::repo_root().join("config/crd");
    let want: BTreeMap<String, String> = weft_api::crd::render_all()
        .expect("CRDs render")
        .into_iter()
        .collect();
    let mut have = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).expect("config/crd exists: run `make crds`") {
        let path = entry.expect("directory entry").path();
        let name = path
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .into_owned();
        have.insert(
            name,
            std::fs::read_to_string(&path).expect("readable CRD file"),
        );
    }
    let stale: Vec<_> = have.keys().filter(|k| !want.contains_key(*k)).collect();
    let missing: Vec<_> = want.keys().filter(|k| !have.contains_key(*k)).collect();
    let changed: Vec<_> = want
        .iter()
        .filter(|(k, v)| have.get(*k).is_some_and(|h| h != *v))
        .map(|(k, _)| k)
        .collect();
    assert!(
        stale.is_empty() && missing.is_empty() && changed.is_empty(),
        "config/crd is out of date: run `make crds` and commit.\n stale: {stale:?}\n missing: {missing:?}\n changed: {changed:?}"
    );
}
