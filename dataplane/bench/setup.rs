//! Writes what `make bench-proxy` (dataplane/bench/run.sh) runs two
//! `weft-proxy sidecar` processes with: a fresh mesh CA, the client's and
//! the server's SPIFFE certificates and keys, and one static bootstrap per
//! proxy in the shapes weftd emits (tests/common/envoy.rs). Keys are
//! generated on each run into the given (temporary) directory.
//!
//! ```text
//! cargo run --release -p weft-proxy --features bench-setup --bin bench_setup -- DIR H1_PORT H2_PORT
//! ```
//!
//! Topology (loopback, no iptables; proxies take the original
//! destination from their listening address):
//! * the application listens on 127.0.0.1:H1_PORT (HTTP/1.1 upstream) and
//!   127.0.0.1:H2_PORT (HTTP/2 upstream);
//! * the client proxy's outbound listeners are the service VIP
//!   127.0.0.3:{H1_PORT,H2_PORT};
//! * the server proxy's inbound listeners are the pod IP
//!   127.0.0.2:{H1_PORT,H2_PORT} (STRICT mTLS).
//!
//! Files: `roots.pem`, `{client,server}-chain.pem`, `{client,server}-key.pem`,
//! `{client,server}.json` and the same as binary bootstraps
//! `{client,server}.pb`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
#[path = "../tests/common/certs.rs"]
mod certs;
#[allow(dead_code)]
#[path = "../tests/common/envoy.rs"]
mod envoy;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use prost_reflect::DynamicMessage;
use rustls::pki_types::CertificateDer;
use serde_json::{Value, json};
use weft_proxy::config::{Resources, bootstrap, type_url};

const TD: &str = "cluster.local";
const VIP: &str = "127.0.0.3";
const POD_IP: &str = "127.0.0.2";
const APP_IP: &str = "127.0.0.1";
const SERVER_ID: &str = "spiffe://cluster.local/ns/bench/sa/echo";

fn pem(der: &[u8], label: &str) -> String {
    pem::encode(&pem::Pem::new(label, der.to_vec()))
}

/// The resources as a bootstrap document (Envoy JSON with `@type`).
fn to_bootstrap(r: &Resources) -> Value {
    let pool = bootstrap::descriptor_pool().expect("embedded descriptors");
    let mut out = Vec::new();
    for t in type_url::ALL {
        for (_, any) in r.of_type(t) {
            let full = t.rsplit('/').next().unwrap_or(t);
            let desc = pool.get_message_by_name(full).expect("known type");
            let msg = DynamicMessage::decode(desc, any.value.as_slice()).expect("decodes");
            let mut v = serde_json::to_value(&msg).expect("serialises");
            if let Value::Object(m) = &mut v {
                m.insert("@type".into(), Value::String(t.to_owned()));
            }
            out.push(v);
        }
    }
    json!({ "resources": out })
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap_or_else(|e| panic!("writing {name}: {e}"));
}

fn write_identity(dir: &Path, who: &str, chain: &[CertificateDer<'_>], key: &[u8]) {
    let chain: String = chain.iter().map(|c| pem(c, "CERTIFICATE")).collect();
    write(dir, &format!("{who}-chain.pem"), &chain);
    write(dir, &format!("{who}-key.pem"), &pem(key, "PRIVATE KEY"));
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dir, h1, h2) = match args.as_slice() {
        [dir, h1, h2] => match (h1.parse::<u16>(), h2.parse::<u16>()) {
            (Ok(h1), Ok(h2)) => (PathBuf::from(dir), h1, h2),
            _ => {
                eprintln!("ports must be numbers 1-65535, got {h1} {h2}");
                return ExitCode::FAILURE;
            }
        },
        _ => {
            eprintln!("usage: bench_setup DIR H1_PORT H2_PORT");
            return ExitCode::FAILURE;
        }
    };
    std::fs::create_dir_all(&dir).unwrap();

    let ca = certs::Ca::new("weft-bench-root");
    write(&dir, "roots.pem", &ca.pem);
    let client = ca.workload(TD, "bench", "client", &[&ca]);
    write_identity(&dir, "client", &client.chain, client.key.secret_der());
    let server = ca.workload(TD, "bench", "echo", &[&ca]);
    write_identity(&dir, "server", &server.chain, server.key.secret_der());

    let mut sr = Resources::default();
    envoy::inbound(
        &mut sr,
        APP_IP,
        &[(h1, false), (h2, true)].map(|(port, http2)| envoy::WorkloadPort {
            port,
            http: true,
            http2,
            mode: envoy::Mtls::Strict,
        }),
    );
    let mut cr = Resources::default();
    envoy::outbound(
        &mut cr,
        &[(h1, "echo-h1", false), (h2, "echo-h2", true)].map(|(port, name, http2)| {
            envoy::Service {
                fqdn: format!("{name}.bench.svc.cluster.local"),
                vip: VIP.into(),
                port,
                http: true,
                http2,
                endpoints: vec![(POD_IP.into(), port)],
                ids: vec![SERVER_ID.into()],
                meshed: true,
            }
        }),
    );
    for (who, r) in [("server", &sr), ("client", &cr)] {
        write(&dir, &format!("{who}.json"), &to_bootstrap(r).to_string());
        std::fs::write(dir.join(format!("{who}.pb")), bootstrap::to_binary(r))
            .unwrap_or_else(|e| panic!("writing {who}.pb: {e}"));
    }
    ExitCode::SUCCESS
}
