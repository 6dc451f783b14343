//! The pure half of the CA exchange: a fresh key and the CSR for a SPIFFE
//! ID, and the checked workload certificate from the CA's answer.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{CertificateParams, KeyPair, SanType};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::CaError;

/// `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`.
pub fn spiffe_id(trust_domain: &str, namespace: &str, service_account: &str) -> String {
    format!("spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}")
}

/// A key generated in memory (never written anywhere) and its CSR.
pub struct KeyAndCsr {
    pub key: KeyPair,
    pub csr_pem: String,
}

impl fmt::Debug for KeyAndCsr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyAndCsr").finish_non_exhaustive()
    }
}

/// A new ECDSA P-256 key and a CSR asking for exactly the URI SAN `id`
/// (what weftd's CA signs).
pub fn key_and_csr(id: &str) -> Result<KeyAndCsr, CaError> {
    let key = KeyPair::generate().map_err(|e| CaError::Key(e.to_string()))?;
    let uri = id
        .to_owned()
        .try_into()
        .map_err(|e: rcgen::Error| CaError::Key(format!("{id} as a URI SAN: {e}")))?;
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![SanType::URI(uri)];
    let csr_pem = params
        .serialize_request(&key)
        .and_then(|c| c.pem())
        .map_err(|e| CaError::Key(format!("building the CSR: {e}")))?;
    Ok(KeyAndCsr { key, csr_pem })
}

/// The workload's identity: certificate chain (leaf first), private key,
/// trust bundle, validity.
pub struct WorkloadCert {
    pub spiffe_id: String,
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub roots: Vec<CertificateDer<'static>>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// When this proxy received it (renewal is planned from here: the CA
    /// backdates `not_before` for clock skew).
    pub received: SystemTime,
}

impl Clone for WorkloadCert {
    fn clone(&self) -> Self {
        Self {
            spiffe_id: self.spiffe_id.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            roots: self.roots.clone(),
            not_before: self.not_before,
            not_after: self.not_after,
            received: self.received,
        }
    }
}

impl fmt::Debug for WorkloadCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // never the key
        f.debug_struct("WorkloadCert")
            .field("spiffe_id", &self.spiffe_id)
            .field("chain_len", &self.chain.len())
            .field("roots", &self.roots.len())
            .field("not_after", &unix(self.not_after))
            .finish_non_exhaustive()
    }
}

/// Unix seconds (0 before the epoch).
pub fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl WorkloadCert {
    /// Checks the CA's answer to the CSR of `key` for `id`.
    pub fn from_response(
        id: &str,
        key: &KeyPair,
        chain_pem: &[String],
        trust_bundle_pem: &str,
        received: SystemTime,
    ) -> Result<Self, CaError> {
        let bad = |what: String| CaError::BadResponse(what);
        let mut chain = Vec::new();
        for pem in chain_pem {
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                chain.push(cert.map_err(|e| bad(format!("cert_chain_pem: {e}")))?);
            }
        }
        let roots = CertificateDer::pem_slice_iter(trust_bundle_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("trust_bundle_pem: {e}")))?;
        if roots.is_empty() {
            return Err(bad("trust_bundle_pem holds no certificate".into()));
        }
        let leaf = chain
            .first()
            .ok_or_else(|| bad("cert_chain_pem is empty".into()))?;
        let (_, x509) = X509Certificate::from_der(leaf.as_ref())
            .map_err(|e| bad(format!("the leaf certificate: {e}")))?;
        let uris = crate::tls::spiffe::uri_sans_of(&x509)
            .map_err(|e| bad(format!("the leaf's SAN: {e}")))?;
        if uris != [id] {
            return Err(bad(format!(
                "the certificate is for {uris:?}, the CSR asked for {id}"
            )));
        }
        if x509.public_key().raw != rcgen::PublicKeyData::subject_public_key_info(key).as_slice() {
            return Err(bad(
                "the certificate's public key is not the one of the CSR".into(),
            ));
        }
        let time = |ts: i64| UNIX_EPOCH + Duration::from_secs(u64::try_from(ts).unwrap_or(0));
        let validity = x509.validity();
        let (not_before, not_after) = (
            time(validity.not_before.timestamp()),
            time(validity.not_after.timestamp()),
        );
        if not_after <= received {
            return Err(bad(format!(
                "the certificate expired already (not_after {})",
                unix(not_after)
            )));
        }
        Ok(Self {
            spiffe_id: id.to_owned(),
            chain,
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            roots,
            not_before,
            not_after,
            received,
        })
    }

    /// When to renew: half-way through the rest of its life (from when it
    /// was received, or `not_before` if later).
    pub fn renew_at(&self) -> SystemTime {
        let start = self.received.max(self.not_before);
        let life = self.not_after.duration_since(start).unwrap_or_default();
        start + life / 2
    }

    /// The chain and key as PEM (for tonic's client identity; stays in memory).
    pub fn identity_pem(&self) -> (String, String) {
        let chain = self
            .chain
            .iter()
            .map(|c| pem_block("CERTIFICATE", c.as_ref()))
            .collect();
        let key = pem_block("PRIVATE KEY", self.key.secret_der());
        (chain, key)
    }

    /// The trust bundle as PEM.
    pub fn roots_pem(&self) -> String {
        self.roots
            .iter()
            .map(|c| pem_block("CERTIFICATE", c.as_ref()))
            .collect()
    }
}

fn pem_block(label: &str, der: &[u8]) -> String {
    pem::encode(&pem::Pem::new(label, der.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "spiffe://cluster.local/ns/shop/sa/echo";

    /// Issues a certificate for `key` with `sans`, valid for `secs`, from a
    /// throwaway CA; returns (chain PEM, root PEM).
    fn issue(key: &KeyPair, sans: Vec<SanType>, secs: i64) -> (Vec<String>, String) {
        let ca_key = KeyPair::generate().expect("ca key");
        let mut ca = CertificateParams::default();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).expect("ca");
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let mut leaf = CertificateParams::default();
        leaf.subject_alt_names = sans;
        let now = time::OffsetDateTime::now_utc();
        leaf.not_before = now - time::Duration::seconds(60);
        leaf.not_after = now + time::Duration::seconds(secs);
        let cert = leaf.signed_by(key, &issuer).expect("leaf");
        (vec![cert.pem()], ca_cert.pem())
    }

    fn uri(u: &str) -> SanType {
        SanType::URI(u.try_into().expect("ia5"))
    }

    #[test]
    fn csr_asks_for_exactly_the_id() {
        assert_eq!(spiffe_id("cluster.local", "shop", "echo"), ID);
        let k = key_and_csr(ID).expect("csr");
        assert!(k.csr_pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
        let csr = rcgen::CertificateSigningRequestParams::from_pem(&k.csr_pem).expect("parse");
        assert_eq!(csr.params.subject_alt_names, vec![uri(ID)]);
        assert!(format!("{k:?}").len() < 40, "no key material in Debug");
    }

    #[test]
    fn accepts_a_matching_certificate_and_plans_renewal() {
        let k = key_and_csr(ID).expect("csr");
        let (chain, root) = issue(&k.key, vec![uri(ID)], 3600);
        let now = SystemTime::now();
        let cert = WorkloadCert::from_response(ID, &k.key, &chain, &root, now).expect("valid");
        assert_eq!(cert.chain.len(), 1);
        assert_eq!(cert.roots.len(), 1);
        let renew = cert
            .renew_at()
            .duration_since(now)
            .expect("later")
            .as_secs();
        assert!(
            (1795..=1800).contains(&renew),
            "half of the remaining hour: {renew}"
        );
        let debug = format!("{cert:?}");
        assert!(!debug.contains("PRIVATE"), "{debug}");
        let (chain_pem, key_pem) = cert.identity_pem();
        assert_eq!(
            CertificateDer::pem_slice_iter(chain_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .expect("pem round trip"),
            cert.chain
        );
        assert_eq!(
            PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
                .expect("key pem")
                .secret_der(),
            cert.key.secret_der()
        );
    }

    #[test]
    fn refuses_wrong_answers() {
        let k = key_and_csr(ID).expect("csr");
        let now = SystemTime::now();
        let (other_id, root) = issue(&k.key, vec![uri("spiffe://cluster.local/ns/x/sa/y")], 3600);
        let err = WorkloadCert::from_response(ID, &k.key, &other_id, &root, now).expect_err("id");
        assert!(err.to_string().contains("ns/x/sa/y"), "{err}");
        let stranger = KeyPair::generate().expect("key");
        let (other_key, root) = issue(&stranger, vec![uri(ID)], 3600);
        let err = WorkloadCert::from_response(ID, &k.key, &other_key, &root, now).expect_err("key");
        assert!(err.to_string().contains("public key"), "{err}");
        let (expired, root) = issue(&k.key, vec![uri(ID)], -10);
        assert!(WorkloadCert::from_response(ID, &k.key, &expired, &root, now).is_err());
        let (chain, _) = issue(&k.key, vec![uri(ID)], 3600);
        let err = WorkloadCert::from_response(ID, &k.key, &chain, "", now).expect_err("no roots");
        assert!(err.to_string().contains("trust_bundle_pem"), "{err}");
        assert!(WorkloadCert::from_response(ID, &k.key, &[], &root_of(&k), now).is_err());
    }

    fn root_of(k: &KeyAndCsr) -> String {
        issue(&k.key, vec![uri(ID)], 10).1
    }
}
