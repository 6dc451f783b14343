//! The mesh CA's signing material: a signing certificate (usually an
//! intermediate) with its key, the chain up to the root, and the root(s)
//! workloads trust. Loaded from Istio's `cacerts` layout (a Secret or a
//! directory with `ca-cert.pem`, `ca-key.pem`, `root-cert.pem`,
//! `cert-chain.pem`) or generated in memory for a standalone dev run.
//!
//! Loading runs the checks the operator also runs before it hands the
//! material over ([`CaFiles::check`]): the key belongs to the certificate,
//! the certificate is a CA and valid now, and the chain really leads to a
//! root in `root-cert.pem`.

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

pub use weft_api::cacerts::{
    CA_CERT, CA_KEY, CERT_CHAIN, CaFiles, CheckError, LayoutError, ROOT_CERT,
};

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
    #[error(transparent)]
    Check(#[from] CheckError),
    #[error("{origin}/ca-cert.pem cannot sign: {detail}")]
    Signer { origin: String, detail: String },
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

fn unix(t: SystemTime) -> Result<i64, AuthorityError> {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .map_err(|_| AuthorityError::Clock)
}

impl Authority {
    /// Loads and checks CA material. `origin` names it in errors
    /// (e.g. `Secret istio-system/cacerts`).
    pub fn load(origin: &str, files: &CaFiles, now: SystemTime) -> Result<Self, AuthorityError> {
        let checked = files.check(origin, now)?;
        let issuer = Issuer::from_ca_cert_der(
            &CertificateDer::from(checked.chain[0].der.as_slice()),
            checked.key,
        )
        .map_err(|e| AuthorityError::Signer {
            origin: origin.to_owned(),
            detail: e.to_string(),
        })?;
        let (chain, roots) = (checked.chain, checked.roots);
        Ok(Self {
            issuer,
            signing_not_after: checked.signing_not_after,
            chain_pem: chain.iter().map(|c| c.pem.clone()).collect(),
            chain_der: chain
                .into_iter()
                .map(|c| CertificateDer::from(c.der))
                .collect(),
            roots_pem: roots.iter().map(|c| c.pem.clone()).collect(),
            roots_der: roots
                .into_iter()
                .map(|c| CertificateDer::from(c.der))
                .collect(),
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
