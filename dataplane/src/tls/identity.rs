//! The workload identity (certificate chain, key, trust bundle) and the
//! [`IdentityStore`] that swaps it live: each replacement prebuilds the
//! server configuration and the client verifier inputs, new handshakes
//! take the current state, established connections keep theirs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ServerConfig};
use tokio::sync::watch;

use super::TlsError;
use super::spiffe::{SpiffeId, not_after, spiffe_id};
use super::verify::{MeshClientVerifier, PeerVerifier, TrustBundle};

/// ALPN a proxy offers when it multiplexes HTTP over HTTP/2 to a peer.
pub const ALPN_H2: &[u8] = b"h2";
/// ALPN of HTTP/1.1 (upgrades: WebSocket, CONNECT).
pub const ALPN_HTTP1: &[u8] = b"http/1.1";
/// ALPN of a raw TCP tunnel between proxies (Istio's `istio`).
pub const ALPN_TCP: &[u8] = b"istio";

/// A workload certificate chain (leaf first), its private key and the
/// trust bundle peers are verified against.
pub struct WorkloadIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub roots: Vec<CertificateDer<'static>>,
}

impl std::fmt::Debug for WorkloadIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkloadIdentity")
            .field("id", &self.chain.first().and_then(spiffe_id))
            .field("chain_len", &self.chain.len())
            .field("key", &"<redacted>")
            .field("roots", &self.roots.len())
            .finish()
    }
}

impl WorkloadIdentity {
    /// Reads PEM files: the chain, the key (PKCS#8, PKCS#1 or SEC1) and the
    /// trust bundle.
    pub fn from_pem(chain: &[u8], key: &[u8], roots: &[u8]) -> Result<Self, TlsError> {
        let certs = |what: &'static str, pem: &[u8]| {
            CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| TlsError::Pem {
                    what,
                    reason: e.to_string(),
                })
                .and_then(|v| {
                    if v.is_empty() {
                        Err(TlsError::Pem {
                            what,
                            reason: "no CERTIFICATE block".into(),
                        })
                    } else {
                        Ok(v)
                    }
                })
        };
        Ok(Self {
            chain: certs("certificate chain", chain)?,
            key: PrivateKeyDer::from_pem_slice(key).map_err(|e| TlsError::Pem {
                what: "private key",
                reason: e.to_string(),
            })?,
            roots: certs("trust bundle", roots)?,
        })
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// One generation of identity: everything a handshake needs.
#[derive(Debug)]
pub struct IdentityState {
    pub generation: u64,
    pub id: SpiffeId,
    /// `id` as text (metric labels, headers).
    pub id_text: String,
    pub chain: Vec<CertificateDer<'static>>,
    pub roots: Vec<CertificateDer<'static>>,
    /// Validity of the leaf, Unix seconds (renew at half-life).
    pub not_before: Option<i64>,
    pub not_after: Option<i64>,
    key: KeyDer,
    certified: Arc<CertifiedKey>,
    bundle: Arc<TrustBundle>,
    /// Inbound mesh mTLS: client certificate required.
    server: Arc<ServerConfig>,
}

impl IdentityState {
    fn build(generation: u64, identity: WorkloadIdentity) -> Result<Self, TlsError> {
        let leaf = identity.chain.first().ok_or(TlsError::EmptyChain)?;
        let id = spiffe_id(leaf).ok_or(TlsError::NoSpiffeId)?;
        let not_after = not_after(leaf);
        let not_before = super::spiffe::not_before(leaf);
        let bundle = Arc::new(
            TrustBundle::new(&identity.roots).map_err(|e| TlsError::TrustBundle(e.to_string()))?,
        );
        let provider = provider();
        let key = KeyDer(identity.key.clone_key());
        let signing_key = provider
            .key_provider
            .load_private_key(identity.key)
            .map_err(|e| TlsError::Key(e.to_string()))?;
        let certified = Arc::new(CertifiedKey::new(identity.chain.clone(), signing_key));
        certified
            .keys_match()
            .map_err(|e| TlsError::Key(format!("the key does not match the certificate: {e}")))?;
        let verifier = Arc::new(MeshClientVerifier {
            bundle: bundle.clone(),
            trust_domain: id.trust_domain.clone(),
        });
        let mut server = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(TlsError::Rustls)?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(Single(certified.clone())));
        server.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP1.to_vec(), ALPN_TCP.to_vec()];
        Ok(Self {
            generation,
            id_text: id.to_string(),
            id,
            chain: identity.chain,
            roots: identity.roots,
            not_before,
            not_after,
            key,
            certified,
            bundle,
            server: Arc::new(server),
        })
    }

    /// Server configuration for inbound mesh mTLS.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.server.clone()
    }

    /// Client configuration towards a peer that must present one of
    /// `expected` (any ID of the trust domain when empty), offering `alpn`.
    pub fn client_config(
        &self,
        expected: Arc<[String]>,
        alpn: &[u8],
    ) -> Result<Arc<ClientConfig>, TlsError> {
        let verifier = Arc::new(PeerVerifier {
            bundle: self.bundle.clone(),
            trust_domain: self.id.trust_domain.clone(),
            expected,
        });
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(TlsError::Rustls)?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_cert_resolver(Arc::new(Single(self.certified.clone())));
        config.alpn_protocols = vec![alpn.to_vec()];
        Ok(Arc::new(config))
    }
}

/// A private key that never prints.
struct KeyDer(PrivateKeyDer<'static>);

impl std::fmt::Debug for KeyDer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Resolves every handshake to one certificate.
#[derive(Debug)]
struct Single(Arc<CertifiedKey>);

impl rustls::server::ResolvesServerCert for Single {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

impl rustls::client::ResolvesClientCert for Single {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The live workload identity.
#[derive(Debug)]
pub struct IdentityStore {
    current: RwLock<Arc<IdentityState>>,
    /// `current`'s generation, read without the lock on every request.
    generation: AtomicU64,
    changes: watch::Sender<u64>,
}

impl IdentityStore {
    pub fn new(identity: WorkloadIdentity) -> Result<Self, TlsError> {
        let state = IdentityState::build(1, identity)?;
        Ok(Self {
            current: RwLock::new(Arc::new(state)),
            generation: AtomicU64::new(1),
            changes: watch::Sender::new(1),
        })
    }

    /// Swaps certificate, key and trust bundle; new handshakes use them,
    /// established connections are untouched.
    pub fn replace(&self, identity: WorkloadIdentity) -> Result<(), TlsError> {
        let generation = self.current().generation + 1;
        let state = Arc::new(IdentityState::build(generation, identity)?);
        tracing::info!(id = %state.id, generation, "workload identity replaced");
        match self.current.write() {
            Ok(mut g) => *g = state,
            Err(poisoned) => *poisoned.into_inner() = state,
        }
        self.generation.store(generation, Ordering::Release);
        self.changes.send_replace(generation);
        Ok(())
    }

    /// Replaces only the trust bundle (a new `ROOTCA` secret).
    pub fn replace_roots(&self, roots: Vec<CertificateDer<'static>>) -> Result<(), TlsError> {
        let cur = self.current();
        if cur.roots == roots {
            return Ok(());
        }
        self.replace(WorkloadIdentity {
            chain: cur.chain.clone(),
            key: cur.key.0.clone_key(),
            roots,
        })
    }

    pub fn current(&self) -> Arc<IdentityState> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The generation of [`Self::current`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Generations as they change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

/// The server name sent in mesh handshakes (rustls needs one; peers
/// verify identity by SPIFFE ID, not by name).
pub fn mesh_server_name(sni: &str) -> ServerName<'static> {
    ServerName::try_from(sni.to_owned()).unwrap_or(ServerName::IpAddress(
        std::net::IpAddr::from(std::net::Ipv4Addr::LOCALHOST).into(),
    ))
}
