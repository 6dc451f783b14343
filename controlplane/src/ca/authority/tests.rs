use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use rustls::pki_types::UnixTime;
use x509_parser::extensions::GeneralName;

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
    // testdata/cacerts-rsa: made with `openssl genrsa -traditional` and
    // `openssl x509 -req` (root → intermediate), the way Istio's docs do.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cacerts-rsa");
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
fn refuses_broken_material_with_a_clear_error() {
    let good = generated();
    let other = generated();
    let leaf_key = KeyPair::generate().expect("key");
    let leaf_pem = rcgen::CertificateParams::new(vec!["x".to_owned()])
        .expect("params")
        .self_signed(&leaf_key)
        .expect("leaf")
        .pem();
    let far_future = now() + Duration::from_secs(20 * 365 * 24 * 3600);

    type Case = (
        &'static str,
        Box<dyn Fn(&mut CaFiles)>,
        SystemTime,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "garbage cert",
            Box::new(|f: &mut CaFiles| f.ca_cert = "not a cert".into()),
            now(),
            "no CERTIFICATE block",
        ),
        (
            "truncated PEM",
            Box::new(|f: &mut CaFiles| f.ca_cert = f.ca_cert[..f.ca_cert.len() / 2].to_owned()),
            now(),
            "ca-cert.pem",
        ),
        (
            "two certs in ca-cert",
            Box::new(|f: &mut CaFiles| f.ca_cert = f.cert_chain.clone().unwrap_or_default()),
            now(),
            "exactly one",
        ),
        (
            "garbage key",
            Box::new(|f: &mut CaFiles| f.ca_key = "nope".into()),
            now(),
            "no PRIVATE KEY",
        ),
        (
            "key of another CA",
            Box::new(move |f: &mut CaFiles| f.ca_key = other.ca_key.clone()),
            now(),
            "not the key of",
        ),
        (
            "a leaf as CA",
            Box::new(move |f: &mut CaFiles| {
                f.ca_cert = leaf_pem.clone();
                f.ca_key = leaf_key.serialize_pem();
            }),
            now(),
            "not a CA certificate",
        ),
        (
            "expired",
            Box::new(|_: &mut CaFiles| {}),
            far_future,
            "rotate the CA material",
        ),
        (
            "root of another CA",
            Box::new({
                let root = generated().root_cert;
                move |f: &mut CaFiles| {
                    f.root_cert = root.clone();
                    f.cert_chain = None;
                }
            }),
            now(),
            "not signed by any root",
        ),
        (
            "chain of another CA",
            Box::new({
                let chain = generated().cert_chain;
                move |f: &mut CaFiles| f.cert_chain = chain.clone()
            }),
            now(),
            "is not signed by",
        ),
    ];
    for (name, edit, at, want) in cases {
        let mut files = good.clone();
        edit(&mut files);
        let err = Authority::load("Secret istio-system/cacerts", &files, at).expect_err(name);
        let msg = err.to_string();
        assert!(
            msg.contains(want),
            "{name}: {msg:?} should contain {want:?}"
        );
        assert!(
            msg.contains("istio-system/cacerts"),
            "{name}: {msg:?} names the Secret"
        );
        assert!(
            !msg.contains("PRIVATE KEY-----"),
            "{name}: never echoes key material"
        );
    }
}

#[test]
fn refuses_incomplete_secrets() {
    let full = generated().to_map();
    for missing in [CA_CERT, CA_KEY, ROOT_CERT] {
        let mut data = full.clone();
        data.remove(missing);
        let err = CaFiles::from_map("Secret ns/cacerts", &data).expect_err(missing);
        assert!(
            matches!(err, LayoutError::MissingKey { key, .. } if key == missing),
            "{err}"
        );
        assert!(err.to_string().contains("cacerts layout"), "{err}");
    }
    let mut data = full.clone();
    data.remove(CERT_CHAIN);
    assert!(
        CaFiles::from_map("s", &data)
            .expect("optional")
            .cert_chain
            .is_none()
    );
    let mut data = full;
    data.insert(CA_CERT.to_owned(), vec![0xff, 0xfe]);
    assert!(matches!(
        CaFiles::from_map("s", &data),
        Err(LayoutError::NotUtf8 { .. })
    ));
}

#[test]
fn debug_output_hides_the_key() {
    let files = generated();
    assert!(!format!("{files:?}").contains("PRIVATE KEY"));
    let ca = Authority::load("s", &files, now()).expect("loads");
    assert!(!format!("{ca:?}").contains("PRIVATE"));
}

#[test]
fn der_lengths() {
    assert_eq!(der_tlv(0x04, &[1, 2]), vec![0x04, 2, 1, 2]);
    let long = der_tlv(0x04, &[0; 200]);
    assert_eq!(&long[..3], &[0x04, 0x81, 200]);
    let longer = der_tlv(0x04, &[0; 1200]);
    assert_eq!(&longer[..4], &[0x04, 0x82, 0x04, 0xb0]);
}
