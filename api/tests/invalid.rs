//! The table of invalid documents in `api/tests/invalid/`: each is refused
//! by client-side validation with a message naming its field and reason.
//! (`e2e/tests/crds.rs` checks the real API server says the same.)

mod common;

use weft_api::validate::Schemas;

#[test]
fn every_invalid_document_is_refused_with_its_reason() {
    let schemas = Schemas::default();
    let table = common::invalid_documents();
    assert!(
        table.len() >= 10,
        "the invalid table should cover each rule family, found {}",
        table.len()
    );
    let mut failures = Vec::new();
    for case in &table {
        let violations = schemas
            .validate(&case.document)
            .unwrap_or_else(|e| panic!("{}: {e}", case.path.display()));
        let hit = violations.iter().any(|v| {
            let text = v.to_string();
            text.contains(&case.reason) && text.contains(&case.field)
        });
        if !hit {
            failures.push(format!(
                "{}: want a violation naming {:?} with {:?}, got {violations:?}",
                case.path.display(),
                case.field,
                case.reason
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
