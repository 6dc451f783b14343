//! Where `weft-proxy sidecar`/`gateway` get configuration from: static
//! files with `--bootstrap`, weftd when `WEFT_XDS_ADDRESS` is set (the
//! injector's env), and a message saying what to set otherwise.

use clap::Parser;
use weft_proxy::cli::{Cli, Command, Source, SourceError, source};
use weft_proxy::xds_client::ProxyMode;

fn sidecar(args: &[&str]) -> Result<Source, SourceError> {
    let argv = ["weft-proxy", "sidecar"].iter().chain(args);
    let cli = Cli::try_parse_from(argv).expect("flags parse");
    match cli.command {
        Command::Sidecar(a) => source(&a.files, &a.weftd, &a.common, ProxyMode::Sidecar),
        other => panic!("{other:?}"),
    }
}

#[test]
fn static_files_weftd_or_a_clear_error() {
    match sidecar(&[
        "--bootstrap=b.yaml",
        "--cert-chain=c.pem",
        "--key=k.pem",
        "--roots=r.pem",
    ]) {
        Ok(Source::Static(files)) => assert_eq!(files.bootstrap.to_string_lossy(), "b.yaml"),
        other => panic!("{other:?}"),
    }

    match sidecar(&[
        "--xds-address=weftd-1-2.weft-system.svc:15012",
        "--roots=/var/run/secrets/weft/root-cert.pem",
        "--pod-name=echo-5d9c7b-x2x9z",
        "--pod-namespace=shop",
        "--service-account=echo",
        "--instance-ip=10.1.2.3",
    ]) {
        Ok(Source::Weftd(s)) => {
            assert_eq!(s.weftd.address, "weftd-1-2.weft-system.svc:15012");
            assert_eq!(
                s.node.to_node().id,
                "sidecar~10.1.2.3~echo-5d9c7b-x2x9z.shop~shop.svc.cluster.local"
            );
            assert_eq!(s.node.service_account, "echo");
            assert_eq!(
                s.token_path.to_string_lossy(),
                "/var/run/secrets/tokens/weft-token"
            );
        }
        other => panic!("{other:?}"),
    }

    let missing = sidecar(&[]).expect_err("no source");
    assert!(matches!(missing, SourceError::Missing));
    assert!(
        missing.to_string().contains("WEFT_XDS_ADDRESS"),
        "{missing}"
    );
    let no_root =
        sidecar(&["--xds-address=weftd:15012", "--pod-namespace=shop"]).expect_err("no root");
    assert!(
        no_root.to_string().contains("WEFT_ROOT_CERT_PATH"),
        "{no_root}"
    );
}
