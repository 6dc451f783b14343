//! Gateway TLS termination: certificates from SDS secrets, chosen by the
//! client's SNI (exact DNS SAN, then wildcard, then the first one).

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::TlsError;
use super::spiffe::dns_sans;

/// A parsed serving certificate.
#[derive(Debug)]
pub struct ServingCert {
    pub names: Vec<String>,
    pub not_after: Option<i64>,
    pub chain: Vec<CertificateDer<'static>>,
    key: Arc<CertifiedKey>,
}

impl ServingCert {
    pub fn from_pem(chain: &[u8], key: &[u8]) -> Result<Self, TlsError> {
        let chain = CertificateDer::pem_slice_iter(chain)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::Pem {
                what: "certificate_chain",
                reason: e.to_string(),
            })?;
        let leaf = chain.first().ok_or(TlsError::EmptyChain)?;
        let names = dns_sans(leaf);
        let not_after = super::spiffe::not_after(leaf);
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| TlsError::Pem {
            what: "private_key",
            reason: e.to_string(),
        })?;
        let signing = rustls::crypto::ring::default_provider()
            .key_provider
            .load_private_key(key)
            .map_err(|e| TlsError::Key(e.to_string()))?;
        let certified = CertifiedKey::new(chain.clone(), signing);
        certified
            .keys_match()
            .map_err(|e| TlsError::Key(format!("the key does not match the certificate: {e}")))?;
        Ok(Self {
            names,
            not_after,
            chain,
            key: Arc::new(certified),
        })
    }

    fn score(&self, sni: &str) -> u8 {
        self.names
            .iter()
            .map(|n| {
                if n.eq_ignore_ascii_case(sni) {
                    2
                } else if let Some(suffix) = n.strip_prefix("*.") {
                    u8::from(
                        sni.split_once('.')
                            .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(suffix)),
                    )
                } else {
                    0
                }
            })
            .max()
            .unwrap_or(0)
    }
}

#[derive(Debug)]
struct BySni(Vec<Arc<ServingCert>>);

impl ResolvesServerCert for BySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let sni = hello.server_name().unwrap_or("");
        self.0
            .iter()
            .enumerate()
            .max_by_key(|(i, c)| (c.score(sni), std::cmp::Reverse(*i)))
            .map(|(_, c)| c.key.clone())
    }
}

/// A TLS 1.3 termination config serving `certs`, chosen by SNI.
pub fn terminate_config(certs: Vec<Arc<ServingCert>>) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(TlsError::Rustls)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(BySni(certs)));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
