use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use rustls::pki_types::UnixTime;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::*;

fn now() -> SystemTime {
    SystemTime::now()
}

fn generated() -> CaFiles {
    CaFiles::generate(
        "cluster.local",
        GENERATED_ROOT_TTL,
        GENERATED_INTERMEDIATE_TTL,
        now(),
    )
    .expect("generates")
}

fn uri(s: &str) -> SanType {
    SanType::URI(s.try_into().expect("ia5"))
}

/// The real verifier weftd's TLS port uses: path building to the roots,
/// validity, clientAuth EKU.
fn verify_as_client(
    ca: &Authority,
    chain: &[CertificateDer<'static>],
) -> Result<(), rustls::Error> {
    let mut store = rustls::RootCertStore::empty();
    for root in ca.roots_der() {
        store.add(root.clone()).expect("root parses");
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(store),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .expect("verifier");
    verifier
        .verify_client_cert(&chain[0], &chain[1..], UnixTime::now())
        .map(|_| ())
}

#[test]
fn generated_ca_signs_leaves_that_chain_to_the_root() {
    let ca = Authority::generate("cluster.local", now()).expect("loads");
    let key = KeyPair::generate().expect("key");
    let id = "spiffe://cluster.local/ns/orders/sa/orders-svc";
    let issued = ca
        .issue(&key, vec![uri(id)], Duration::from_secs(24 * 3600), now())
        .expect("issued");
    assert_eq!(
        issued.chain_pem.len(),
        2,
        "leaf + intermediate (the root travels as the trust bundle)"
    );
    assert_eq!(issued.chain_der.len(), 2);
    verify_as_client(&ca, &issued.chain_der).expect("chain verifies to the root");
    assert!(
        ca.trust_bundle_pem()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    assert!(
        !ca.trust_bundle_pem().contains(&issued.chain_pem[1]),
        "root is not the intermediate"
    );

    let (_, leaf) = X509Certificate::from_der(&issued.chain_der[0]).expect("leaf parses");
    let san = leaf
        .subject_alternative_name()
        .expect("SAN ok")
        .expect("SAN present");
    assert_eq!(san.value.general_names, vec![GeneralName::URI(id)]);
    assert!(!leaf.is_ca());
    let eku = leaf
        .extended_key_usage()
        .expect("eku ok")
        .expect("eku present");
    assert!(eku.value.client_auth && eku.value.server_auth);
    assert_eq!(
        leaf.public_key().raw,
        key.subject_public_key_info().as_slice(),
        "certifies the requested key"
    );
    // TTL: 24h from now, started a minute early for clock skew.
    let ttl = leaf.validity().not_after.timestamp() - leaf.validity().not_before.timestamp();
    assert_eq!(ttl, 24 * 3600 + 60);
    assert_eq!(issued.not_after, leaf.validity().not_after.timestamp());
}

#[test]
fn serials_differ() {
    let ca = Authority::generate("cluster.local", now()).expect("loads");
    let key = KeyPair::generate().expect("key");
    let serial = |_| {
        let issued = ca
            .issue(
                &key,
                vec![uri("spiffe://td/ns/a/sa/b")],
                Duration::from_secs(60),
                now(),
            )
            .expect("issued");
        let (_, leaf) = X509Certificate::from_der(&issued.chain_der[0]).expect("parses");
        leaf.raw_serial().to_vec()
    };
    assert_ne!(serial(1), serial(2));
}

#[test]
fn leaves_never_outlive_the_signing_certificate() {
    // A CA whose intermediate expires in one hour.
    let start = now();
    let files = CaFiles {
        cert_chain: None,
        ..CaFiles::generate(
            "td",
            Duration::from_secs(24 * 3600),
            Duration::from_secs(3600),
            start,
        )
        .expect("generates")
    };
    let ca = Authority::load("short", &files, start).expect("loads");
    let issued = ca
        .issue(
            &KeyPair::generate().expect("key"),
            vec![uri("spiffe://td/ns/a/sa/b")],
            Duration::from_secs(86400),
            start,
        )
        .expect("issued");
    assert!(
        issued.not_after <= ca.signing_not_after(),
        "cut at the intermediate's expiry"
    );
    // And once it has expired, nothing is signed.
    let later = start + Duration::from_secs(7200);
    let err = ca
        .issue(
            &KeyPair::generate().expect("key"),
            vec![],
            Duration::from_secs(60),
            later,
        )
        .expect_err("expired CA signs nothing");
    assert!(
        matches!(err, AuthorityError::SigningCertExpired { .. }),
        "{err}"
    );
}

#[test]
fn loads_from_secret_data() {
    let files = generated();
    let secret = Secret {
        data: Some(files.to_secret_data()),
        ..Default::default()
    };
    let read = CaFiles::from_secret("Secret istio-system/cacerts", &secret).expect("reads");
    assert_eq!(read, files);
    Authority::load("Secret istio-system/cacerts", &read, now()).expect("loads");
}

#[test]
fn loads_openssl_made_rsa_cacerts_with_pkcs1_key() {
    // api/testdata/cacerts-rsa: made with `openssl genrsa -traditional`
    // and `openssl x509 -req` (root → intermediate), the way Istio's docs
    // do; weft-api's checks read it too.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../api/testdata/cacerts-rsa");
    let files = read_dir(&dir).expect("reads");
    assert!(files.ca_key.contains("BEGIN RSA PRIVATE KEY"));
    let ca = Authority::load("testdata", &files, now()).expect("loads");
    let issued = ca
        .issue(
            &KeyPair::generate().expect("key"),
            vec![uri("spiffe://cluster.local/ns/a/sa/b")],
            Duration::from_secs(3600),
            now(),
        )
        .expect("issued with an RSA intermediate");
    verify_as_client(&ca, &issued.chain_der).expect("chain verifies to the openssl root");
}

#[test]
fn debug_output_hides_the_key() {
    let ca = Authority::load("s", &generated(), now()).expect("loads");
    assert!(!format!("{ca:?}").contains("PRIVATE"));
}
