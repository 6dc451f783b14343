//! Compiles the client side of Weft's CA protocol
//! (`api/proto/weft/ca/v1/ca.proto`) with tonic-prost-build.
//!
//! protoc comes from `$PROTOC` when set, otherwise from the
//! `protoc-bin-vendored` crate, so a plain `cargo build` needs nothing
//! installed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
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
