//! Pure checks on a workload's certificate signing request: it must be a
//! well-formed PKCS#10 request with a valid self-signature, asking for
//! exactly one URI SAN equal to the SPIFFE ID of the authenticated
//! service account, for a key weftd can certify, and nothing surprising.
//!
//! Only the public key is taken from the CSR; everything else in the issued
//! certificate (SANs, usages, lifetime) is decided by weftd.

use rcgen::SubjectPublicKeyInfo;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

use crate::identity::SpiffeId;

/// Largest CSR accepted (a P-256 CSR is ~500 bytes, RSA 4096 ~1.7 KiB).
pub const MAX_CSR_BYTES: usize = 16 * 1024;
/// Smallest RSA modulus accepted.
pub const MIN_RSA_BITS: usize = 2048;

/// Why a CSR is refused. Each variant has a stable label for metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrError {
    #[error("the CSR is {0} bytes, more than the {MAX_CSR_BYTES} accepted")]
    TooLarge(usize),
    #[error("the CSR is not PEM: {0}; send a PEM `CERTIFICATE REQUEST`")]
    Pem(String),
    #[error("the PEM block is `{0}`, expected `CERTIFICATE REQUEST`")]
    Label(String),
    #[error("the CSR is not a valid PKCS#10 request: {0}")]
    Parse(String),
    #[error("the CSR's signature does not verify: it must be signed with the key it certifies")]
    Signature,
    #[error("the CSR has no subjectAltName extension: it must ask for the URI SAN {want}")]
    NoSan { want: String },
    #[error(
        "the CSR asks for {got:?}, but the token is for {want}: a workload may only ask for the SPIFFE ID of its own service account"
    )]
    WrongIdentity { want: String, got: Vec<String> },
    #[error(
        "the CSR asks for {0}, which is not a URI SAN: only the workload's SPIFFE ID may be requested"
    )]
    NonUriSan(String),
    #[error("the CSR asks for a CA certificate: workloads get leaf certificates only")]
    AsksForCa,
    #[error(
        "the CSR carries the extension {0}, which weftd does not sign: request only subjectAltName (and optionally keyUsage, extendedKeyUsage)"
    )]
    Extension(String),
    #[error(
        "the CSR's key ({0}) is not supported: use ECDSA P-256/P-384, Ed25519 or RSA of at least {MIN_RSA_BITS} bits"
    )]
    Key(String),
}

impl CsrError {
    /// Stable short label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Self::TooLarge(_) | Self::Pem(_) | Self::Label(_) | Self::Parse(_) => "csr_malformed",
            Self::Signature => "csr_signature",
            Self::NoSan { .. } | Self::WrongIdentity { .. } | Self::NonUriSan(_) => "csr_identity",
            Self::AsksForCa | Self::Extension(_) => "csr_extension",
            Self::Key(_) => "csr_key",
        }
    }
}

/// A CSR that passed every check: the DER SubjectPublicKeyInfo to certify.
#[derive(Debug)]
pub struct CheckedCsr {
    pub public_key: SubjectPublicKeyInfo,
}

/// Checks `csr_pem` for `want` (the identity of the authenticated token).
pub fn check_csr(csr_pem: &str, want: &SpiffeId) -> Result<CheckedCsr, CsrError> {
    if csr_pem.len() > MAX_CSR_BYTES {
        return Err(CsrError::TooLarge(csr_pem.len()));
    }
    let pem = Pem::iter_from_buffer(csr_pem.as_bytes())
        .next()
        .ok_or_else(|| CsrError::Pem("no PEM block found".to_owned()))?
        .map_err(|e| CsrError::Pem(e.to_string()))?;
    if pem.label != "CERTIFICATE REQUEST" && pem.label != "NEW CERTIFICATE REQUEST" {
        return Err(CsrError::Label(pem.label));
    }
    let csr = match X509CertificationRequest::from_der(&pem.contents) {
        Ok(([], csr)) => csr,
        Ok(_) => {
            return Err(CsrError::Parse(
                "trailing bytes after the request".to_owned(),
            ));
        }
        Err(e) => return Err(CsrError::Parse(e.to_string())),
    };
    csr.verify_signature().map_err(|_| CsrError::Signature)?;

    let want_uri = want.to_string();
    let mut sans: Option<Vec<String>> = None;
    for ext in csr.requested_extensions().into_iter().flatten() {
        match ext {
            ParsedExtension::SubjectAlternativeName(san) => {
                let mut uris = sans.take().unwrap_or_default();
                for name in &san.general_names {
                    match name {
                        GeneralName::URI(uri) => uris.push((*uri).to_owned()),
                        other => return Err(CsrError::NonUriSan(other.to_string())),
                    }
                }
                sans = Some(uris);
            }
            ParsedExtension::BasicConstraints(bc) if bc.ca => return Err(CsrError::AsksForCa),
            ParsedExtension::BasicConstraints(_)
            | ParsedExtension::KeyUsage(_)
            | ParsedExtension::ExtendedKeyUsage(_) => {}
            ParsedExtension::UnsupportedExtension { oid } => {
                return Err(CsrError::Extension(oid.to_id_string()));
            }
            other => return Err(CsrError::Extension(format!("{other:?}"))),
        }
    }
    let sans = sans.ok_or_else(|| CsrError::NoSan {
        want: want_uri.clone(),
    })?;
    if sans.len() != 1 || sans[0] != want_uri {
        return Err(CsrError::WrongIdentity {
            want: want_uri,
            got: sans,
        });
    }

    let spki = &csr.certification_request_info.subject_pki;
    if let Ok(PublicKey::RSA(rsa)) = spki.parsed()
        && rsa.key_size() < MIN_RSA_BITS
    {
        return Err(CsrError::Key(format!("RSA {} bits", rsa.key_size())));
    }
    let public_key = SubjectPublicKeyInfo::from_der(spki.raw)
        .map_err(|_| CsrError::Key(spki.algorithm.algorithm.to_id_string()))?;
    Ok(CheckedCsr { public_key })
}

#[cfg(test)]
mod tests {
    use rcgen::{
        CertificateParams, CustomExtension, KeyPair, PKCS_ECDSA_P384_SHA384, PKCS_ED25519, SanType,
    };

    use super::*;

    fn id(ns: &str, sa: &str) -> SpiffeId {
        SpiffeId::new("cluster.local", ns, sa)
    }

    fn csr_with(key: &KeyPair, edit: impl FnOnce(&mut CertificateParams)) -> String {
        let mut params = CertificateParams::default();
        edit(&mut params);
        params
            .serialize_request(key)
            .and_then(|csr| csr.pem())
            .expect("test CSR serializes")
    }

    fn uri(s: &str) -> SanType {
        SanType::URI(s.try_into().expect("ia5"))
    }

    fn csr_for(sans: Vec<SanType>) -> String {
        let key = KeyPair::generate().expect("key");
        csr_with(&key, |p| p.subject_alt_names = sans)
    }

    #[test]
    fn accepts_the_tokens_own_identity() {
        let want = id("orders", "orders-svc");
        for key in [
            KeyPair::generate().expect("p256"),
            KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).expect("p384"),
            KeyPair::generate_for(&PKCS_ED25519).expect("ed25519"),
        ] {
            let pem = csr_with(&key, |p| {
                p.subject_alt_names = vec![uri(&want.to_string())];
            });
            let checked = check_csr(&pem, &want).expect("accepted");
            assert_eq!(
                rcgen::PublicKeyData::der_bytes(&checked.public_key),
                rcgen::PublicKeyData::der_bytes(&key),
                "the certified key is the CSR's key"
            );
        }
    }

    #[test]
    fn refusals() {
        let want = id("orders", "orders-svc");
        let cases: Vec<(&str, String, &str)> = vec![
            (
                "token for sa A asking for sa B",
                csr_for(vec![uri("spiffe://cluster.local/ns/orders/sa/payments")]),
                "csr_identity",
            ),
            (
                "other namespace",
                csr_for(vec![uri("spiffe://cluster.local/ns/other/sa/orders-svc")]),
                "csr_identity",
            ),
            (
                "wrong trust domain",
                csr_for(vec![uri("spiffe://evil.example/ns/orders/sa/orders-svc")]),
                "csr_identity",
            ),
            (
                "extra URI SAN",
                csr_for(vec![
                    uri("spiffe://cluster.local/ns/orders/sa/orders-svc"),
                    uri("spiffe://cluster.local/ns/kube-system/sa/admin"),
                ]),
                "csr_identity",
            ),
            (
                "extra DNS SAN",
                csr_for(vec![
                    uri("spiffe://cluster.local/ns/orders/sa/orders-svc"),
                    SanType::DnsName("kubernetes.default.svc".try_into().expect("ia5")),
                ]),
                "csr_identity",
            ),
            ("no SAN", csr_for(vec![]), "csr_identity"),
            ("not PEM", "hello".to_owned(), "csr_malformed"),
            (
                "a certificate instead of a CSR",
                rcgen::generate_simple_self_signed(vec!["a".to_owned()])
                    .expect("cert")
                    .cert
                    .pem(),
                "csr_malformed",
            ),
            ("too large", "x".repeat(MAX_CSR_BYTES + 1), "csr_malformed"),
            (
                "asks for a CA",
                csr_with(&KeyPair::generate().expect("key"), |p| {
                    p.subject_alt_names = vec![uri(&want.to_string())];
                    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
                }),
                "csr_extension",
            ),
            (
                "unknown extension",
                csr_with(&KeyPair::generate().expect("key"), |p| {
                    p.subject_alt_names = vec![uri(&want.to_string())];
                    p.custom_extensions =
                        vec![CustomExtension::from_oid_content(&[1, 2, 3, 4], vec![5, 0])];
                }),
                "csr_extension",
            ),
        ];
        for (name, pem, label) in cases {
            let err = check_csr(&pem, &want).expect_err(name);
            assert_eq!(err.label(), label, "{name}: {err}");
        }
    }

    #[test]
    fn wrong_identity_message_names_both() {
        let want = id("orders", "orders-svc");
        let pem = csr_for(vec![uri("spiffe://cluster.local/ns/orders/sa/payments")]);
        let msg = check_csr(&pem, &want).expect_err("refused").to_string();
        assert!(
            msg.contains("spiffe://cluster.local/ns/orders/sa/payments"),
            "{msg}"
        );
        assert!(
            msg.contains("spiffe://cluster.local/ns/orders/sa/orders-svc"),
            "{msg}"
        );
    }

    #[test]
    fn tampered_signature_is_refused() {
        let want = id("orders", "orders-svc");
        let pem = csr_for(vec![uri(&want.to_string())]);
        let parsed = ::pem::parse(&pem).expect("pem");
        let mut der = parsed.contents().to_vec();
        // Flip a bit in the last byte: inside the signature.
        let last = der.len() - 1;
        der[last] ^= 1;
        let tampered = ::pem::encode(&::pem::Pem::new("CERTIFICATE REQUEST", der));
        let err = check_csr(&tampered, &want).expect_err("refused");
        assert_eq!(err, CsrError::Signature);
    }
}
