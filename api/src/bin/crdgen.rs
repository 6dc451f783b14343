//! Writes Weft's CRDs to a directory, one YAML file per CRD, and removes
//! generated files that no longer correspond to a CRD.
//!
//! Usage: `crdgen [DIR]` (default `config/crd`).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "config/crd".into()),
    );
    match weft_api::crd::write_all(&dir) {
        Ok(written) => {
            println!("wrote {written} CRDs to {}", dir.display());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("crdgen: {err}");
            ExitCode::FAILURE
        }
    }
}
