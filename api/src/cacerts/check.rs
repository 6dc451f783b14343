//! Checking `cacerts` material as a CA (feature `cacerts`), once for the
//! operator (before it hands a Secret to weftd) and weftd (before it signs
//! with it): the key belongs to `ca-cert.pem`, `ca-cert.pem` is a CA valid
//! now, every link of the chain is signed by the next, and the chain ends
//! at a root of `root-cert.pem` that is valid now. Each of these would
//! otherwise surface as broken mTLS hours later.
//!
//! Errors name the file (`<origin>/<file>`) and what to fix, never key
//! material.

use std::fmt;
use std::time::SystemTime;

use rcgen::{KeyPair, PublicKeyData};
use x509_parser::pem::Pem;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::{CA_CERT, CA_KEY, CERT_CHAIN, CaFiles, ROOT_CERT};

/// Why CA material cannot sign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    #[error("{origin}/{key} is not valid PEM: {detail}")]
    Pem {
        origin: String,
        key: &'static str,
        detail: String,
    },
    #[error("{origin}/{key} holds no CERTIFICATE block")]
    NoCertificate { origin: String, key: &'static str },
    #[error("{origin}/{key} holds {count} certificates, expected exactly one")]
    NotOneCertificate {
        origin: String,
        key: &'static str,
        count: usize,
    },
    #[error("{origin}/{key}: a certificate cannot be parsed: {detail}")]
    BadCertificate {
        origin: String,
        key: &'static str,
        detail: String,
    },
    #[error("{origin}/ca-key.pem cannot be used: {detail}")]
    Key { origin: String, detail: String },
    #[error(
        "{origin}/ca-key.pem is not the key of ca-cert.pem ({subject}): put the matching pair in the Secret"
    )]
    KeyMismatch { origin: String, subject: String },
    #[error(
        "{origin}/ca-cert.pem ({subject}) is not a CA certificate (basicConstraints CA:TRUE is missing)"
    )]
    NotCa { origin: String, subject: String },
    #[error(
        "{origin}/{key}: {subject} is valid from {not_before} to {not_after}, not now: rotate the CA material"
    )]
    OutOfValidity {
        origin: String,
        key: &'static str,
        subject: String,
        not_before: String,
        not_after: String,
    },
    #[error(
        "{origin}/cert-chain.pem: {subject} is not signed by {issuer}; the chain must run from ca-cert.pem up towards a root in root-cert.pem"
    )]
    ChainBroken {
        origin: String,
        subject: String,
        issuer: String,
    },
    #[error(
        "{origin}/root-cert.pem: the chain ends at {subject}, which is not signed by any root in it"
    )]
    Untrusted { origin: String, subject: String },
    #[error("the system clock is before 1970")]
    Clock,
}

/// One certificate as read: normalised PEM and DER.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cert {
    pub pem: String,
    pub der: Vec<u8>,
}

impl Cert {
    /// The parsed certificate (already checked to parse when read).
    pub fn parsed(&self) -> Result<X509Certificate<'_>, String> {
        match X509Certificate::from_der(&self.der) {
            Ok(([], cert)) => Ok(cert),
            Ok(_) => Err("trailing bytes after the certificate".to_owned()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// CA material that passed [`CaFiles::check`]. Its `Debug` leaves the key
/// out.
pub struct CheckedCa {
    /// `ca-cert.pem`, then the certificates of `cert-chain.pem` above it,
    /// without the roots (workloads get those as the trust bundle).
    pub chain: Vec<Cert>,
    pub roots: Vec<Cert>,
    /// The key of `chain[0]`.
    pub key: KeyPair,
    /// When `ca-cert.pem` expires, unix seconds.
    pub signing_not_after: i64,
}

impl fmt::Debug for CheckedCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckedCa")
            .field("chain", &self.chain.len())
            .field("roots", &self.roots.len())
            .field("signing_not_after", &self.signing_not_after)
            .finish_non_exhaustive()
    }
}

impl CaFiles {
    /// Checks the material as a CA at `now`; `origin` names it in errors
    /// (e.g. `Secret istio-system/cacerts`).
    pub fn check(&self, origin: &str, now: SystemTime) -> Result<CheckedCa, CheckError> {
        let now = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .map_err(|_| CheckError::Clock)?;
        let mut signing = read_certs(origin, CA_CERT, &self.ca_cert)?;
        if signing.len() != 1 {
            return Err(CheckError::NotOneCertificate {
                origin: origin.to_owned(),
                key: CA_CERT,
                count: signing.len(),
            });
        }
        let signing = signing.remove(0);
        let roots = read_certs(origin, ROOT_CERT, &self.root_cert)?;
        let rest = match &self.cert_chain {
            Some(text) => read_certs(origin, CERT_CHAIN, text)?,
            None => Vec::new(),
        };
        let key = read_key(origin, &self.ca_key)?;
        let signing_not_after = check_signing_cert(origin, &signing, &key, now)?;

        // ca-cert, then cert-chain without its copy of ca-cert.
        let mut chain = vec![signing.clone()];
        chain.extend(rest.into_iter().filter(|c| c.der != signing.der));
        verify_chain(origin, &chain, &roots, now)?;
        while chain.len() > 1 && chain.last().is_some_and(|c| roots.contains(c)) {
            chain.pop();
        }
        Ok(CheckedCa {
            chain,
            roots,
            key,
            signing_not_after,
        })
    }
}

fn read_certs(origin: &str, key: &'static str, text: &str) -> Result<Vec<Cert>, CheckError> {
    let mut certs = Vec::new();
    for block in Pem::iter_from_buffer(text.as_bytes()) {
        let block = block.map_err(|e| CheckError::Pem {
            origin: origin.to_owned(),
            key,
            detail: e.to_string(),
        })?;
        if block.label != "CERTIFICATE" {
            continue;
        }
        let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
        let cert = Cert {
            pem: pem::encode_config(
                &pem::Pem::new("CERTIFICATE", block.contents.clone()),
                config,
            ),
            der: block.contents,
        };
        cert.parsed().map_err(|detail| CheckError::BadCertificate {
            origin: origin.to_owned(),
            key,
            detail,
        })?;
        certs.push(cert);
    }
    if certs.is_empty() {
        return Err(CheckError::NoCertificate {
            origin: origin.to_owned(),
            key,
        });
    }
    Ok(certs)
}

/// Reads `ca-key.pem`: PKCS#8 (`PRIVATE KEY`) or PKCS#1 RSA (`RSA PRIVATE
/// KEY`, as `openssl genrsa -traditional` and Istio's samples make it).
fn read_key(origin: &str, text: &str) -> Result<KeyPair, CheckError> {
    let err = |detail: String| CheckError::Key {
        origin: origin.to_owned(),
        detail,
    };
    let mut found = None;
    for block in Pem::iter_from_buffer(text.as_bytes()) {
        let block = block.map_err(|e| err(format!("not valid PEM: {e}")))?;
        if block.label.ends_with("PRIVATE KEY") {
            found = Some(block);
            break;
        }
    }
    let block = found.ok_or_else(|| err("no PRIVATE KEY block".to_owned()))?;
    let pkcs8 = match block.label.as_str() {
        "PRIVATE KEY" => block.contents,
        "RSA PRIVATE KEY" => pkcs1_to_pkcs8(&block.contents),
        "EC PRIVATE KEY" => {
            return Err(err(format!(
                "SEC1 `EC PRIVATE KEY` is not supported: convert it with `openssl pkcs8 -topk8 -nocrypt -in {CA_KEY}`"
            )));
        }
        other => {
            return Err(err(format!(
                "`{other}` is not supported: use an unencrypted PKCS#8 `PRIVATE KEY`"
            )));
        }
    };
    KeyPair::try_from(pkcs8.as_slice()).map_err(|e| {
        err(format!(
            "{e}; supported keys are ECDSA P-256/P-384, Ed25519 and RSA 2048-8192"
        ))
    })
}

/// Wraps a PKCS#1 RSAPrivateKey in a PKCS#8 PrivateKeyInfo (version 0,
/// rsaEncryption with NULL parameters).
fn pkcs1_to_pkcs8(pkcs1: &[u8]) -> Vec<u8> {
    const RSA_ALGORITHM: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut body = vec![0x02, 0x01, 0x00];
    body.extend_from_slice(RSA_ALGORITHM);
    body.extend(der_tlv(0x04, pkcs1));
    der_tlv(0x30, &body)
}

fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn bad(origin: &str, key: &'static str) -> impl Fn(String) -> CheckError {
    let origin = origin.to_owned();
    move |detail| CheckError::BadCertificate {
        origin: origin.clone(),
        key,
        detail,
    }
}

fn check_validity(
    origin: &str,
    key: &'static str,
    cert: &X509Certificate<'_>,
    now: i64,
) -> Result<i64, CheckError> {
    let validity = cert.validity();
    let (not_before, not_after) = (
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    );
    if now < not_before || now > not_after {
        return Err(CheckError::OutOfValidity {
            origin: origin.to_owned(),
            key,
            subject: cert.subject().to_string(),
            not_before: validity.not_before.to_string(),
            not_after: validity.not_after.to_string(),
        });
    }
    Ok(not_after)
}

/// Checks `ca-cert.pem` against its key and the clock; returns its expiry.
fn check_signing_cert(
    origin: &str,
    signing: &Cert,
    key: &KeyPair,
    now: i64,
) -> Result<i64, CheckError> {
    let x509 = signing.parsed().map_err(bad(origin, CA_CERT))?;
    if x509.public_key().raw != key.subject_public_key_info().as_slice() {
        return Err(CheckError::KeyMismatch {
            origin: origin.to_owned(),
            subject: x509.subject().to_string(),
        });
    }
    if !x509.is_ca() {
        return Err(CheckError::NotCa {
            origin: origin.to_owned(),
            subject: x509.subject().to_string(),
        });
    }
    check_validity(origin, CA_CERT, &x509, now)
}

/// Every link of `chain` is signed by the next; the last one is a root, or
/// signed by one, that is valid now.
fn verify_chain(origin: &str, chain: &[Cert], roots: &[Cert], now: i64) -> Result<(), CheckError> {
    let roots: Vec<X509Certificate<'_>> = roots
        .iter()
        .map(|r| r.parsed().map_err(bad(origin, ROOT_CERT)))
        .collect::<Result<_, _>>()?;
    let chain: Vec<X509Certificate<'_>> = chain
        .iter()
        .map(|c| c.parsed().map_err(bad(origin, CERT_CHAIN)))
        .collect::<Result<_, _>>()?;
    for pair in chain.windows(2) {
        if pair[0]
            .verify_signature(Some(pair[1].public_key()))
            .is_err()
        {
            return Err(CheckError::ChainBroken {
                origin: origin.to_owned(),
                subject: pair[0].subject().to_string(),
                issuer: pair[1].subject().to_string(),
            });
        }
    }
    let Some(last) = chain.last() else {
        return Err(CheckError::Untrusted {
            origin: origin.to_owned(),
            subject: "(empty chain)".to_owned(),
        });
    };
    let anchor = roots.iter().find(|root| {
        root.public_key().raw == last.public_key().raw
            || last.verify_signature(Some(root.public_key())).is_ok()
    });
    match anchor {
        Some(root) => check_validity(origin, ROOT_CERT, root, now).map(|_| ()),
        None => Err(CheckError::Untrusted {
            origin: origin.to_owned(),
            subject: last.subject().to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer};

    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn now() -> SystemTime {
        SystemTime::now()
    }

    fn generated() -> CaFiles {
        CaFiles::generate("cluster.local", 3650 * DAY, 365 * DAY, now()).expect("generates")
    }

    #[test]
    fn generated_material_checks_and_the_chain_leaves_the_root_out() {
        let files = generated();
        let checked = files.check("cacerts", now()).expect("valid");
        assert_eq!(checked.chain.len(), 1, "the intermediate alone");
        assert_eq!(checked.roots.len(), 1);
        assert_eq!(checked.chain[0].pem, files.ca_cert);
        assert_eq!(checked.roots[0].pem, files.root_cert);
        assert_eq!(
            checked.key.subject_public_key_info(),
            KeyPair::from_pem(&files.ca_key)
                .expect("key")
                .subject_public_key_info()
        );
        assert!(!format!("{checked:?}").contains("PRIVATE"));
        let without_chain = CaFiles {
            cert_chain: None,
            ..files
        };
        assert_eq!(
            without_chain
                .check("cacerts", now())
                .expect("valid")
                .chain
                .len(),
            1
        );
    }

    #[test]
    fn refuses_broken_material_with_a_clear_error() {
        let good = generated();
        let other = generated();
        let leaf_key = KeyPair::generate().expect("key");
        let leaf_pem = CertificateParams::new(vec!["x".to_owned()])
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
            let err = files
                .check("Secret istio-system/cacerts", at)
                .expect_err(name);
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
    fn an_expired_root_is_refused_even_when_the_intermediate_is_valid() {
        let at = now();
        let ca = |not_before, not_after| {
            let mut params = CertificateParams::default();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.not_before = time::OffsetDateTime::from(not_before);
            params.not_after = time::OffsetDateTime::from(not_after);
            params
        };
        let root_key = KeyPair::generate().expect("key");
        let root_params = ca(at - 10 * DAY, at - DAY);
        let root = root_params.self_signed(&root_key).expect("root");
        let root_issuer = Issuer::new(root_params, root_key);
        let key = KeyPair::generate().expect("key");
        let inter = ca(at - DAY, at + DAY)
            .signed_by(&key, &root_issuer)
            .expect("intermediate");
        let files = CaFiles {
            ca_cert: inter.pem(),
            ca_key: key.serialize_pem(),
            root_cert: root.pem(),
            cert_chain: None,
        };
        let err = files.check("cacerts", at).expect_err("expired root");
        assert!(
            matches!(err, CheckError::OutOfValidity { key: ROOT_CERT, .. }),
            "{err}"
        );
    }

    #[test]
    fn openssl_made_rsa_material_with_a_pkcs1_key_checks() {
        // testdata/cacerts-rsa: `openssl genrsa -traditional` keys and
        // `openssl x509 -req` certificates (root → intermediate), the way
        // Istio's docs make plugged-in CAs.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cacerts-rsa");
        let mut data = std::collections::BTreeMap::new();
        for key in [CA_CERT, CA_KEY, ROOT_CERT, CERT_CHAIN] {
            data.insert(
                key.to_owned(),
                std::fs::read(dir.join(key)).expect("testdata"),
            );
        }
        let files = CaFiles::from_map("testdata", &data).expect("layout");
        assert!(files.ca_key.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        let checked = files.check("testdata", now()).expect("PKCS#1 RSA accepted");
        assert_eq!((checked.chain.len(), checked.roots.len()), (1, 1));
    }

    #[test]
    fn der_lengths() {
        assert_eq!(der_tlv(0x04, &[1, 2]), vec![0x04, 2, 1, 2]);
        let long = der_tlv(0x04, &[0; 200]);
        assert_eq!(&long[..3], &[0x04, 0x81, 200]);
        let longer = der_tlv(0x04, &[0; 1200]);
        assert_eq!(&longer[..4], &[0x04, 0x82, 0x04, 0xb0]);
    }
}
