//! Build steps of weft-proxy:
//!
//! 1. Compiles the client side of Weft's CA protocol
//!    (`api/proto/weft/ca/v1/ca.proto`) with tonic-prost-build; protoc comes
//!    from `$PROTOC` when set, otherwise from `protoc-bin-vendored`.
//! 2. Copies the protobuf descriptor set that `envoy-types` ships
//!    (`src/generated/types.bin`) into OUT_DIR, so the static bootstrap
//!    loader can read Envoy's canonical JSON/YAML with `prost-reflect`.
//!    envoy-types does not export it, so it is found next to the crate's
//!    sources in the Cargo registry (or at `WEFT_ENVOY_DESCRIPTORS`).

use std::path::{Path, PathBuf};

fn main() {
    compile_ca_proto().unwrap_or_else(|e| panic!("compiling ca.proto: {e}"));
    println!("cargo:rerun-if-env-changed=WEFT_ENVOY_DESCRIPTORS");
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let source = match std::env::var_os("WEFT_ENVOY_DESCRIPTORS") {
        Some(p) => PathBuf::from(p),
        None => find_in_registry().unwrap_or_else(|e| panic!("{e}")),
    };
    std::fs::copy(&source, out.join("envoy_descriptors.bin")).unwrap_or_else(|e| {
        panic!("copying {}: {e}", source.display());
    });
}

fn envoy_types_version() -> Result<String, String> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let lock = manifest
        .ancestors()
        .map(|d| d.join("Cargo.lock"))
        .find(|p| p.exists())
        .ok_or("no Cargo.lock above the dataplane crate")?;
    let text = std::fs::read_to_string(&lock).map_err(|e| e.to_string())?;
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "name = \"envoy-types\""
            && let Some(v) = lines
                .next()
                .and_then(|l| l.trim().strip_prefix("version = "))
        {
            return Ok(v.trim_matches('"').to_owned());
        }
    }
    Err("envoy-types is not in Cargo.lock".into())
}

fn find_in_registry() -> Result<PathBuf, String> {
    let version = envoy_types_version()?;
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .ok_or("neither CARGO_HOME nor HOME is set")?;
    let src = home.join("registry").join("src");
    let entries = std::fs::read_dir(&src).map_err(|e| format!("{}: {e}", src.display()))?;
    for entry in entries.flatten() {
        let candidate = entry
            .path()
            .join(format!("envoy-types-{version}"))
            .join("src/generated/types.bin");
        if candidate.exists() {
            println!("cargo:rerun-if-changed={}", candidate.display());
            return Ok(candidate);
        }
    }
    Err(format!(
        "envoy-types {version} descriptor set not found under {}; set WEFT_ENVOY_DESCRIPTORS to its src/generated/types.bin",
        src.display()
    ))
}

fn compile_ca_proto() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=../api/proto/weft/ca/v1/ca.proto");
    println!("cargo:rerun-if-env-changed=PROTOC");
    let mut config = tonic_prost_build::Config::new();
    if std::env::var_os("PROTOC").is_none() {
        config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    }
    tonic_prost_build::configure()
        .build_server(false)
        .compile_with_config(
            config,
            &["../api/proto/weft/ca/v1/ca.proto"],
            &["../api/proto"],
        )?;
    Ok(())
}
