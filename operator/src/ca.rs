//! The mesh CA material the operator hands weftd, in Istio's `cacerts`
//! layout: generated (a self-signed root and an intermediate, made with
//! rcgen), or the platform team's plugged-in Secret, checked before it is
//! used: the key belongs to `ca-cert.pem`, `ca-cert.pem` is a CA valid now,
//! and the chain leads to a root in `root-cert.pem`. A Secret that fails
//! is reported, never applied, so a running weftd keeps what it loaded.
//!
//! Private keys never reach logs, Events or status: [`CaFiles`]' `Debug`
//! redacts the key and errors name files, not contents.

use std::time::SystemTime;

use rcgen::{KeyPair, PublicKeyData};
use x509_parser::prelude::{FromDer, X509Certificate};

pub use weft_api::cacerts::{CaFiles, LayoutError};

use crate::contract::{CA_CERT, CERT_CHAIN, ROOT_CERT};

/// Why CA material cannot be used. The `Display` is the condition message:
/// `<secret>/<file> …`, saying what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaError {
    #[error(
        "{secret} not found: create it with ca-cert.pem, ca-key.pem, root-cert.pem and cert-chain.pem"
    )]
    SecretMissing { secret: String },
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error("{secret}/{key} is not PEM text: {detail}")]
    Pem {
        secret: String,
        key: &'static str,
        detail: String,
    },
    #[error("{secret}/{key} holds {count} certificates, expected exactly one")]
    NotOneCertificate {
        secret: String,
        key: &'static str,
        count: usize,
    },
    #[error("{secret}/{key}: a certificate cannot be parsed: {detail}")]
    BadCertificate {
        secret: String,
        key: &'static str,
        detail: String,
    },
    #[error("{secret}/ca-key.pem cannot be read: {detail}; it must be an unencrypted PKCS#8 key")]
    BadKey { secret: String, detail: String },
    #[error("{secret}/ca-key.pem does not match ca-cert.pem")]
    KeyMismatch { secret: String },
    #[error("{secret}/ca-cert.pem is not a CA certificate (basicConstraints CA:TRUE is missing)")]
    NotCa { secret: String },
    #[error(
        "{secret}/{key} is not valid now (valid from {not_before} to {not_after}): rotate the CA material"
    )]
    OutOfValidity {
        secret: String,
        key: &'static str,
        not_before: String,
        not_after: String,
    },
    #[error("{secret}/cert-chain.pem is broken: {subject} is not signed by {issuer}")]
    ChainBroken {
        secret: String,
        subject: String,
        issuer: String,
    },
    #[error("{secret}/root-cert.pem does not hold the root that signed {subject}")]
    Untrusted { secret: String, subject: String },
}

/// What status may say about a CA: nothing secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaSummary {
    /// SHA-256 of the first root's DER, lower-case hex.
    pub root_fingerprint: String,
    /// When the first root expires, RFC 3339.
    pub root_not_after: String,
}

/// Checks the material as weftd will use it; `secret` names it in errors.
pub fn check(files: &CaFiles, secret: &str, now: SystemTime) -> Result<CaSummary, CaError> {
    let ca = certs(secret, CA_CERT, &files.ca_cert)?;
    if ca.len() != 1 {
        return Err(CaError::NotOneCertificate {
            secret: secret.to_owned(),
            key: CA_CERT,
            count: ca.len(),
        });
    }
    let roots = certs(secret, ROOT_CERT, &files.root_cert)?;
    let chain_rest = certs(secret, CERT_CHAIN, files.chain())?;
    let key = KeyPair::from_pem(&files.ca_key).map_err(|e| CaError::BadKey {
        secret: secret.to_owned(),
        detail: e.to_string(),
    })?;

    let ca_x509 = parse(secret, CA_CERT, &ca[0])?;
    if ca_x509.public_key().raw != key.subject_public_key_info().as_slice() {
        return Err(CaError::KeyMismatch {
            secret: secret.to_owned(),
        });
    }
    if !ca_x509.is_ca() {
        return Err(CaError::NotCa {
            secret: secret.to_owned(),
        });
    }
    let now_unix = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    check_validity(secret, CA_CERT, &ca_x509, now_unix)?;

    // The chain from ca-cert up: ca-cert, then cert-chain without its copy of ca-cert.
    let mut chain: Vec<&Vec<u8>> = vec![&ca[0]];
    chain.extend(chain_rest.iter().filter(|c| **c != ca[0]));
    let chain: Vec<X509Certificate<'_>> = chain
        .into_iter()
        .map(|der| parse(secret, CERT_CHAIN, der))
        .collect::<Result<_, _>>()?;
    for pair in chain.windows(2) {
        if pair[0]
            .verify_signature(Some(pair[1].public_key()))
            .is_err()
        {
            return Err(CaError::ChainBroken {
                secret: secret.to_owned(),
                subject: pair[0].subject().to_string(),
                issuer: pair[1].subject().to_string(),
            });
        }
    }
    let parsed_roots: Vec<X509Certificate<'_>> = roots
        .iter()
        .map(|der| parse(secret, ROOT_CERT, der))
        .collect::<Result<_, _>>()?;
    let last = chain.last().unwrap_or(&ca_x509);
    let anchored = parsed_roots.iter().any(|root| {
        root.public_key().raw == last.public_key().raw
            || last.verify_signature(Some(root.public_key())).is_ok()
    });
    if !anchored {
        return Err(CaError::Untrusted {
            secret: secret.to_owned(),
            subject: last.subject().to_string(),
        });
    }
    let first_root = parsed_roots.first().ok_or_else(|| CaError::Pem {
        secret: secret.to_owned(),
        key: ROOT_CERT,
        detail: "no CERTIFICATE block".to_owned(),
    })?;
    check_validity(secret, ROOT_CERT, first_root, now_unix)?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &roots[0]);
    Ok(CaSummary {
        root_fingerprint: digest.as_ref().iter().map(|b| format!("{b:02x}")).collect(),
        root_not_after: first_root
            .validity()
            .not_after
            .to_datetime()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
    })
}

/// The DER of every CERTIFICATE block in `text`.
fn certs(secret: &str, key: &'static str, text: &str) -> Result<Vec<Vec<u8>>, CaError> {
    let blocks = pem::parse_many(text).map_err(|e| CaError::Pem {
        secret: secret.to_owned(),
        key,
        detail: e.to_string(),
    })?;
    let certs: Vec<Vec<u8>> = blocks
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(|b| b.into_contents())
        .collect();
    if certs.is_empty() {
        return Err(CaError::Pem {
            secret: secret.to_owned(),
            key,
            detail: "no CERTIFICATE block".to_owned(),
        });
    }
    Ok(certs)
}

fn parse<'a>(
    secret: &str,
    key: &'static str,
    der: &'a [u8],
) -> Result<X509Certificate<'a>, CaError> {
    X509Certificate::from_der(der)
        .map(|(_, c)| c)
        .map_err(|e| CaError::BadCertificate {
            secret: secret.to_owned(),
            key,
            detail: e.to_string(),
        })
}

fn check_validity(
    secret: &str,
    key: &'static str,
    cert: &X509Certificate<'_>,
    now: i64,
) -> Result<(), CaError> {
    let validity = cert.validity();
    if now < validity.not_before.timestamp() || now > validity.not_after.timestamp() {
        return Err(CaError::OutOfValidity {
            secret: secret.to_owned(),
            key,
            not_before: validity.not_before.to_string(),
            not_after: validity.not_after.to_string(),
        });
    }
    Ok(())
}

/// The root certificate(s), PEM, as workloads and the API server trust them.
pub fn trust_bundle(files: &CaFiles) -> String {
    files.root_cert.clone()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use k8s_openapi::api::core::v1::Secret;

    use super::*;
    use crate::contract::CA_KEY;

    const DAY: Duration = Duration::from_secs(86400);

    fn generated() -> CaFiles {
        CaFiles::generate("cluster.local", 3650 * DAY, 365 * DAY, SystemTime::now())
            .expect("generates")
    }

    fn secret_of(files: &CaFiles) -> Secret {
        Secret {
            data: Some(files.to_secret_data()),
            ..Default::default()
        }
    }

    #[test]
    fn generated_material_checks_and_round_trips_through_a_secret() {
        let files = generated();
        let summary = check(&files, "cacerts", SystemTime::now()).expect("valid");
        assert_eq!(summary.root_fingerprint.len(), 64);
        let back = CaFiles::from_secret("cacerts", &secret_of(&files)).expect("reads");
        assert_eq!(back, files);
        assert!(
            !format!("{files:?}").contains("PRIVATE KEY"),
            "Debug redacts the key"
        );
    }

    #[test]
    fn a_key_of_another_ca_is_refused_with_the_file_names() {
        let mut files = generated();
        files.ca_key = generated().ca_key;
        let err = check(&files, "cacerts", SystemTime::now()).expect_err("mismatch");
        assert_eq!(
            err.to_string(),
            "cacerts/ca-key.pem does not match ca-cert.pem"
        );
    }

    #[test]
    fn a_chain_to_another_root_is_refused() {
        let mut files = generated();
        files.root_cert = generated().root_cert;
        let err = check(&files, "cacerts", SystemTime::now()).expect_err("untrusted");
        assert!(matches!(err, CaError::Untrusted { .. }), "{err}");
        let mut files = generated();
        let other = generated();
        files.cert_chain = Some(format!("{}{}", files.ca_cert, other.ca_cert));
        let err = check(&files, "cacerts", SystemTime::now()).expect_err("broken");
        assert!(matches!(err, CaError::ChainBroken { .. }), "{err}");
    }

    #[test]
    fn missing_files_and_garbage_are_named() {
        let files = generated();
        let mut secret = secret_of(&files);
        secret.data.as_mut().map(|d| d.remove(CA_KEY));
        let err = CaFiles::from_secret("cacerts", &secret).expect_err("missing");
        assert_eq!(
            err.to_string(),
            "cacerts/ca-key.pem is missing: a CA in Istio's cacerts layout holds ca-cert.pem, ca-key.pem, root-cert.pem and optionally cert-chain.pem"
        );
        let mut files = generated();
        files.ca_cert = "not pem".into();
        assert!(matches!(
            check(&files, "cacerts", SystemTime::now()),
            Err(CaError::Pem { key: CA_CERT, .. })
        ));
    }

    #[test]
    fn an_expired_ca_is_refused() {
        let files = generated();
        let later = SystemTime::now() + 400 * DAY;
        assert!(matches!(
            check(&files, "cacerts", later),
            Err(CaError::OutOfValidity { key: CA_CERT, .. })
        ));
    }

    #[test]
    fn a_missing_chain_means_the_signing_certificate_alone() {
        let files = generated();
        let mut secret = secret_of(&files);
        secret.data.as_mut().map(|d| d.remove(CERT_CHAIN));
        let read = CaFiles::from_secret("cacerts", &secret).expect("reads");
        assert_eq!(
            (read.cert_chain.as_deref(), read.chain()),
            (None, files.ca_cert.as_str())
        );
        check(&read, "cacerts", SystemTime::now()).expect("intermediate signed by root");
    }
}
