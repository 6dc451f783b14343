//! The mesh CA's signing material: a signing certificate (usually an
//! intermediate) with its key, the chain up to the root, and the root(s)
//! workloads trust. Loaded from Istio's `cacerts` layout (a Secret or a
//! directory with `ca-cert.pem`, `ca-key.pem`, `root-cert.pem`,
//! `cert-chain.pem`) or generated in memory for a standalone dev run.
//!
//! Loading checks what would otherwise surface as broken mTLS hours later:
//! the key belongs to the certificate, the certificate is a CA and valid
//! now, and the chain really leads to a root in `root-cert.pem`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use rcgen::{
    CertificateParams, DistinguishedName, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData, SanType, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
use rustls::pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::pem::Pem;
use x509_parser::prelude::{FromDer, X509Certificate};

pub use weft_api::cacerts::{CA_CERT, CA_KEY, CERT_CHAIN, CaFiles, LayoutError, ROOT_CERT};

/// Lifetime of a generated (dev) root.
const GENERATED_ROOT_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Lifetime of a generated (dev) intermediate.
const GENERATED_INTERMEDIATE_TTL: Duration = Duration::from_secs(365 * 24 * 3600);
/// Issued certificates start this much before "now", so that a peer whose
/// clock runs slightly behind does not reject a fresh certificate.
const BACKDATE: Duration = Duration::from_secs(60);

/// Why CA material could not be loaded, generated or used.
#[derive(Debug, thiserror::Error)]
pub enum AuthorityError {
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error("reading {path}: {source}")]
    ReadFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: `{key}` is not valid PEM: {detail}")]
    Pem {
        origin: String,
        key: &'static str,
        detail: String,
    },
    #[error("{origin}: `{key}` holds no CERTIFICATE block")]
    NoCertificate { origin: String, key: &'static str },
    #[error("{origin}: `{key}` holds {count} certificates, expected exactly one")]
    NotOneCertificate {
        origin: String,
        key: &'static str,
        count: usize,
    },
    #[error("{origin}: a certificate in `{key}` cannot be parsed: {detail}")]
    BadCertificate {
        origin: String,
        key: &'static str,
        detail: String,
    },
    #[error("{origin}: `ca-key.pem` cannot be used: {detail}")]
    Key { origin: String, detail: String },
    #[error(
        "{origin}: `ca-key.pem` is not the key of `ca-cert.pem` ({subject}); put the matching pair in the Secret"
    )]
    KeyMismatch { origin: String, subject: String },
    #[error(
        "{origin}: `ca-cert.pem` ({subject}) is not a CA certificate (basicConstraints CA:TRUE is missing)"
    )]
    NotCa { origin: String, subject: String },
    #[error(
        "{origin}: {subject} in `{key}` is valid from {not_before} to {not_after} (unix seconds), not now ({now}); rotate the CA material"
    )]
    OutOfValidity {
        origin: String,
        key: &'static str,
        subject: String,
        not_before: i64,
        not_after: i64,
        now: i64,
    },
    #[error(
        "{origin}: {subject} is not signed by {issuer}; `cert-chain.pem` must run from `ca-cert.pem` up towards a root in `root-cert.pem`"
    )]
    ChainBroken {
        origin: String,
        subject: String,
        issuer: String,
    },
    #[error(
        "{origin}: the chain ends at {subject}, which is not signed by any root in `root-cert.pem`"
    )]
    Untrusted { origin: String, subject: String },
    #[error("generating the dev CA failed: {0}")]
    Generate(#[source] rcgen::Error),
    #[error("the signing certificate expires at {not_after} (unix seconds): rotate the CA")]
    SigningCertExpired { not_after: i64 },
    #[error("signing a certificate failed: {0}")]
    Sign(#[source] rcgen::Error),
    #[error("the system clock is before 1970")]
    Clock,
}

/// Reads the `cacerts` files from a directory (e.g. a mounted Secret).
pub fn read_dir(dir: &Path) -> Result<CaFiles, AuthorityError> {
    let mut data = BTreeMap::new();
    for key in [CA_CERT, CA_KEY, ROOT_CERT, CERT_CHAIN] {
        let path = dir.join(key);
        match std::fs::read(&path) {
            Ok(bytes) => {
                data.insert(key.to_owned(), bytes);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(AuthorityError::ReadFile {
                    path: path.display().to_string(),
                    source,
                });
            }
        }
    }
    Ok(CaFiles::from_map(&dir.display().to_string(), &data)?)
}

/// A certificate just issued: `chain_pem[0]` is the leaf, followed by the
/// CA chain.
#[derive(Clone, Debug)]
pub struct Issued {
    pub chain_pem: Vec<String>,
    pub chain_der: Vec<CertificateDer<'static>>,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
}

/// A loaded, checked CA that signs workload and serving certificates.
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    signing_not_after: i64,
    /// `ca-cert.pem`, then the rest of `cert-chain.pem` (PEM and DER).
    chain_pem: Vec<String>,
    chain_der: Vec<CertificateDer<'static>>,
    roots_pem: Vec<String>,
    roots_der: Vec<CertificateDer<'static>>,
    rng: SystemRandom,
}

impl fmt::Debug for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authority")
            .field("signing_not_after", &self.signing_not_after)
            .field("chain_len", &self.chain_der.len())
            .field("roots", &self.roots_der.len())
            .finish_non_exhaustive()
    }
}

/// One certificate read from a PEM file, with what the checks need.
struct Cert {
    der: CertificateDer<'static>,
    pem: String,
}

impl Cert {
    fn parsed(&self) -> Result<X509Certificate<'_>, String> {
        match X509Certificate::from_der(&self.der) {
            Ok(([], cert)) => Ok(cert),
            Ok(_) => Err("trailing bytes after the certificate".to_owned()),
            Err(e) => Err(e.to_string()),
        }
    }
}

fn read_certs(origin: &str, key: &'static str, text: &str) -> Result<Vec<Cert>, AuthorityError> {
    let mut certs = Vec::new();
    for pem in Pem::iter_from_buffer(text.as_bytes()) {
        let pem = pem.map_err(|e| AuthorityError::Pem {
            origin: origin.to_owned(),
            key,
            detail: e.to_string(),
        })?;
        if pem.label != "CERTIFICATE" {
            continue;
        }
        let cert = Cert {
            pem: pem_encode("CERTIFICATE", &pem.contents),
            der: CertificateDer::from(pem.contents),
        };
        cert.parsed()
            .map_err(|detail| AuthorityError::BadCertificate {
                origin: origin.to_owned(),
                key,
                detail,
            })?;
        certs.push(cert);
    }
    if certs.is_empty() {
        return Err(AuthorityError::NoCertificate {
            origin: origin.to_owned(),
            key,
        });
    }
    Ok(certs)
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new(label, der), config)
}

/// Reads `ca-key.pem`: PKCS#8 (`PRIVATE KEY`) or PKCS#1 RSA (`RSA PRIVATE
/// KEY`, as Istio's sample certificates ship it).
fn read_key(origin: &str, text: &str) -> Result<KeyPair, AuthorityError> {
    let err = |detail: String| AuthorityError::Key {
        origin: origin.to_owned(),
        detail,
    };
    let mut found = None;
    for pem in Pem::iter_from_buffer(text.as_bytes()) {
        let pem = pem.map_err(|e| err(format!("not valid PEM: {e}")))?;
        if pem.label.ends_with("PRIVATE KEY") {
            found = Some(pem);
            break;
        }
    }
    let pem = found.ok_or_else(|| err("no PRIVATE KEY block".to_owned()))?;
    let pkcs8 = match pem.label.as_str() {
        "PRIVATE KEY" => pem.contents,
        "RSA PRIVATE KEY" => pkcs1_to_pkcs8(&pem.contents),
        "EC PRIVATE KEY" => {
            return Err(err(
                "SEC1 `EC PRIVATE KEY` is not supported: convert it with `openssl pkcs8 -topk8 -nocrypt -in ca-key.pem`".to_owned(),
            ));
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

fn bad(origin: &str, key: &'static str) -> impl Fn(String) -> AuthorityError {
    let origin = origin.to_owned();
    move |detail| AuthorityError::BadCertificate {
        origin: origin.clone(),
        key,
        detail,
    }
}

/// Checks `ca-cert.pem` against its key and the clock; returns its expiry.
fn check_signing_cert(
    origin: &str,
    ca: &Cert,
    key: &KeyPair,
    now: i64,
) -> Result<i64, AuthorityError> {
    let x509 = ca.parsed().map_err(bad(origin, CA_CERT))?;
    let subject = x509.subject().to_string();
    if x509.public_key().raw != key.subject_public_key_info().as_slice() {
        return Err(AuthorityError::KeyMismatch {
            origin: origin.to_owned(),
            subject,
        });
    }
    if !x509.is_ca() {
        return Err(AuthorityError::NotCa {
            origin: origin.to_owned(),
            subject,
        });
    }
    let (not_before, not_after) = (
        x509.validity().not_before.timestamp(),
        x509.validity().not_after.timestamp(),
    );
    if now < not_before || now > not_after {
        return Err(AuthorityError::OutOfValidity {
            origin: origin.to_owned(),
            key: CA_CERT,
            subject,
            not_before,
            not_after,
            now,
        });
    }
    Ok(not_after)
}

/// Every link of `chain` is signed by the next; the last one is a root or
/// signed by one.
fn verify_chain(origin: &str, chain: &[Cert], roots: &[Cert]) -> Result<(), AuthorityError> {
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
            return Err(AuthorityError::ChainBroken {
                origin: origin.to_owned(),
                subject: pair[0].subject().to_string(),
                issuer: pair[1].subject().to_string(),
            });
        }
    }
    let Some(last) = chain.last() else {
        return Err(AuthorityError::Untrusted {
            origin: origin.to_owned(),
            subject: "(empty chain)".to_owned(),
        });
    };
    let anchored = roots.iter().any(|root| {
        root.public_key().raw == last.public_key().raw
            || last.verify_signature(Some(root.public_key())).is_ok()
    });
    if anchored {
        Ok(())
    } else {
        Err(AuthorityError::Untrusted {
            origin: origin.to_owned(),
            subject: last.subject().to_string(),
        })
    }
}

fn unix(t: SystemTime) -> Result<i64, AuthorityError> {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .map_err(|_| AuthorityError::Clock)
}

impl Authority {
    /// Loads and checks CA material. `origin` names it in errors
    /// (e.g. `Secret istio-system/cacerts`).
    pub fn load(origin: &str, files: &CaFiles, now: SystemTime) -> Result<Self, AuthorityError> {
        let now_unix = unix(now)?;
        let ca = {
            let mut certs = read_certs(origin, CA_CERT, &files.ca_cert)?;
            if certs.len() != 1 {
                return Err(AuthorityError::NotOneCertificate {
                    origin: origin.to_owned(),
                    key: CA_CERT,
                    count: certs.len(),
                });
            }
            certs.remove(0)
        };
        let roots = read_certs(origin, ROOT_CERT, &files.root_cert)?;
        let rest = match &files.cert_chain {
            Some(text) => read_certs(origin, CERT_CHAIN, text)?,
            None => Vec::new(),
        };
        let key = read_key(origin, &files.ca_key)?;

        let not_after = check_signing_cert(origin, &ca, &key, now_unix)?;
        // The chain handed to workloads: ca-cert, then cert-chain without
        // its copy of ca-cert.
        let ca_der = ca.der.clone();
        let mut chain = vec![ca];
        chain.extend(rest.into_iter().filter(|c| c.der != ca_der));
        verify_chain(origin, &chain, &roots)?;

        // Roots are sent as the trust bundle, not as part of the chain.
        let is_root = |c: &Cert| roots.iter().any(|r| r.der == c.der);
        let mut chain: Vec<Cert> = chain.into_iter().collect();
        while chain.len() > 1 && chain.last().is_some_and(is_root) {
            chain.pop();
        }

        let issuer = Issuer::from_ca_cert_der(&chain[0].der, key).map_err(|e| {
            AuthorityError::BadCertificate {
                origin: origin.to_owned(),
                key: CA_CERT,
                detail: e.to_string(),
            }
        })?;
        Ok(Self {
            issuer,
            signing_not_after: not_after,
            chain_pem: chain.iter().map(|c| c.pem.clone()).collect(),
            chain_der: chain.into_iter().map(|c| c.der).collect(),
            roots_pem: roots.iter().map(|c| c.pem.clone()).collect(),
            roots_der: roots.into_iter().map(|c| c.der).collect(),
            rng: SystemRandom::new(),
        })
    }

    /// A generated in-memory CA for a standalone dev run.
    pub fn generate(trust_domain: &str, now: SystemTime) -> Result<Self, AuthorityError> {
        let files = CaFiles::generate(
            trust_domain,
            GENERATED_ROOT_TTL,
            GENERATED_INTERMEDIATE_TTL,
            now,
        )
        .map_err(AuthorityError::Generate)?;
        Self::load("generated dev CA", &files, now)
    }

    /// The trust bundle: every root, PEM, concatenated.
    pub fn trust_bundle_pem(&self) -> String {
        self.roots_pem.concat()
    }

    /// The roots as DER (for TLS verifiers).
    pub fn roots_der(&self) -> &[CertificateDer<'static>] {
        &self.roots_der
    }

    /// When the signing certificate expires (unix seconds): nothing issued
    /// outlives it.
    pub fn signing_not_after(&self) -> i64 {
        self.signing_not_after
    }

    /// Signs a leaf for `public_key` with exactly `sans`, valid from now
    /// (minus a minute of clock skew) for `ttl`, cut at the signing
    /// certificate's expiry. Usable for TLS server and client auth.
    pub fn issue(
        &self,
        public_key: &impl PublicKeyData,
        sans: Vec<SanType>,
        ttl: Duration,
        now: SystemTime,
    ) -> Result<Issued, AuthorityError> {
        let now_unix = unix(now)?;
        let remaining = self.signing_not_after.saturating_sub(now_unix);
        if remaining <= 0 {
            return Err(AuthorityError::SigningCertExpired {
                not_after: self.signing_not_after,
            });
        }
        let ttl = ttl.min(Duration::from_secs(remaining.unsigned_abs()));
        let start = OffsetDateTime::from(now);

        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params.not_before = start - BACKDATE;
        params.not_after = start + ttl;
        let mut serial = [0u8; 16];
        self.rng
            .fill(&mut serial)
            .map_err(|_| AuthorityError::Sign(rcgen::Error::RingUnspecified))?;
        serial[0] &= 0x7f; // positive INTEGER
        params.serial_number = Some(SerialNumber::from_slice(&serial));

        let leaf = params
            .signed_by(public_key, &self.issuer)
            .map_err(AuthorityError::Sign)?;
        let mut chain_pem = vec![leaf.pem()];
        chain_pem.extend(self.chain_pem.iter().cloned());
        let mut chain_der = vec![leaf.der().clone()];
        chain_der.extend(self.chain_der.iter().cloned());
        Ok(Issued {
            chain_pem,
            chain_der,
            not_before: params.not_before.unix_timestamp(),
            not_after: params.not_after.unix_timestamp(),
        })
    }
}

#[cfg(test)]
mod tests;
