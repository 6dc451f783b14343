//! TLS for weftd's gRPC port 15012 (xDS and the CA).
//!
//! - The serving certificate names weftd's Services
//!   (`weftd-<revision>.<namespace>.svc[.<cluster domain>]`, and `istiod…`
//!   aliases so clients configured for Istio find it), is issued by the mesh
//!   CA itself and renewed at half-life without restarting the listener.
//! - Client certificates are optional at the TLS layer (a proxy has none
//!   before its first CSR) but, when presented, must chain to the mesh
//!   root. [`incoming`] yields tokio-rustls streams, so tonic records the
//!   verified chain as `TlsConnectInfo<TcpConnectInfo>` in every request's
//!   extensions; [`crate::xds::peer::peer_identity`] reads the SPIFFE ID
//!   from it, and xDS refuses streams without one.

use std::io;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rcgen::{KeyPair, SanType};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

use crate::ca::{Authority, AuthorityError};

/// A TLS handshake that takes longer is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Lifetime of weftd's own serving certificate.
pub const SERVING_CERT_TTL: Duration = Duration::from_secs(24 * 3600);
/// After a failed renewal, try again this soon.
const RENEW_RETRY: Duration = Duration::from_secs(30);

/// Errors building the TLS configuration or the serving certificate.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("issuing weftd's serving certificate: {0}")]
    Issue(#[from] AuthorityError),
    #[error("generating weftd's serving key: {0}")]
    Key(#[source] rcgen::Error),
    #[error("weftd's serving name {name:?} is not a valid DNS name: {detail}")]
    Name { name: String, detail: String },
    #[error("building the TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("the mesh root cannot verify client certificates: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// The DNS names weftd serves 15012 (and 15017) under.
pub fn serving_names(revision: &str, namespace: &str, cluster_domain: &str) -> Vec<String> {
    let mut names = Vec::new();
    for service in [
        format!("weftd-{revision}"),
        format!("istiod-{revision}"),
        "istiod".to_owned(),
    ] {
        names.push(format!("{service}.{namespace}.svc"));
        names.push(format!("{service}.{namespace}.svc.{cluster_domain}"));
    }
    names.push(format!("weftd-{revision}.{namespace}"));
    names.dedup();
    names
}

/// The current serving certificate, swapped on renewal; handshakes pick it
/// up without the listener restarting.
#[derive(Debug)]
pub struct ServingCert {
    current: RwLock<Arc<CertifiedKey>>,
    /// (not_before, not_after) of the current certificate, unix seconds.
    validity: RwLock<(i64, i64)>,
}

impl ServingCert {
    /// Issues the first certificate for `names`.
    pub fn issue(authority: &Authority, names: &[String]) -> Result<Self, TlsError> {
        let (key, validity) = issue_serving(authority, names, SystemTime::now())?;
        Ok(Self {
            current: RwLock::new(key),
            validity: RwLock::new(validity),
        })
    }

    /// Replaces the certificate with a fresh one.
    pub fn renew(&self, authority: &Authority, names: &[String]) -> Result<(), TlsError> {
        let (key, validity) = issue_serving(authority, names, SystemTime::now())?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = key;
        *self
            .validity
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = validity;
        Ok(())
    }

    /// (not_before, not_after) of the current certificate, unix seconds.
    pub fn validity(&self) -> (i64, i64) {
        *self
            .validity
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// When the current certificate is due for renewal (half-life), unix seconds.
    pub fn renew_at(&self) -> i64 {
        let (nb, na) = self.validity();
        nb + (na - nb) / 2
    }

    /// Renews at half-life until `shutdown` turns true.
    pub async fn keep_renewed(
        self: Arc<Self>,
        authority: Arc<Authority>,
        names: Vec<String>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut wait = until(self.renew_at());
        loop {
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => return,
                _ = tokio::time::sleep(wait) => {}
            }
            match self.renew(&authority, &names) {
                Ok(()) => {
                    let (_, not_after) = self.validity();
                    tracing::info!(not_after, "renewed weftd's serving certificate");
                    wait = until(self.renew_at());
                }
                Err(e) => {
                    tracing::error!(error = %e, "renewing weftd's serving certificate failed; retrying");
                    wait = RENEW_RETRY;
                }
            }
        }
    }
}

fn until(unix_secs: i64) -> Duration {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Duration::from_secs(u64::try_from(unix_secs).unwrap_or(0).saturating_sub(now))
}

impl ResolvesServerCert for ServingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        )
    }
}

fn issue_serving(
    authority: &Authority,
    names: &[String],
    now: SystemTime,
) -> Result<(Arc<CertifiedKey>, (i64, i64)), TlsError> {
    let key = KeyPair::generate().map_err(TlsError::Key)?;
    let sans = names
        .iter()
        .map(|name| {
            name.clone()
                .try_into()
                .map(SanType::DnsName)
                .map_err(|e: rcgen::Error| TlsError::Name {
                    name: name.clone(),
                    detail: e.to_string(),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let issued = authority.issue(&key, sans, SERVING_CERT_TTL, now)?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signer = rustls::crypto::ring::sign::any_supported_type(&der)?;
    Ok((
        Arc::new(CertifiedKey::new(issued.chain_der, signer)),
        (issued.not_before, issued.not_after),
    ))
}

/// The rustls server configuration of 15012: `serving` as certificate,
/// client certificates optional but verified against `roots` when sent,
/// HTTP/2 only (gRPC).
pub fn server_config(
    roots: &[CertificateDer<'static>],
    serving: Arc<ServingCert>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add(root.clone())?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(store), provider.clone())
        .allow_unauthenticated()
        .build()?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(serving);
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The rustls server configuration of the webhook port 15017: `serving`
/// as certificate (the API server trusts the mesh root through the
/// webhooks' `caBundle`), no client certificates, HTTP/2 and HTTP/1.1.
pub fn webhook_server_config(
    serving: Arc<ServingCert>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(serving);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts TCP connections on `listener` and completes TLS handshakes
/// concurrently (a slow client cannot stall the others); yields finished
/// connections for `tonic::transport::Server::serve_with_incoming`. Failed
/// handshakes are logged and dropped. Stops when the receiver is dropped.
pub fn incoming(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
) -> ReceiverStream<Result<TlsStream<TcpStream>, io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = tx.closed() => return,
                accepted = listener.accept() => accepted,
            };
            let (tcp, remote_addr) = match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection on the TLS port failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let client_cert = tls.get_ref().1.peer_certificates().is_some();
                        tracing::debug!(peer = %remote_addr, client_cert, "TLS connection");
                        let _ = tx.send(Ok(tls)).await;
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(peer = %remote_addr, error = %e, "TLS handshake failed");
                    }
                    Err(_) => {
                        tracing::debug!(peer = %remote_addr, "TLS handshake timed out");
                    }
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cover_weftd_and_istiod() {
        let names = serving_names("1-24", "istio-system", "cluster.local");
        for want in [
            "weftd-1-24.istio-system.svc",
            "weftd-1-24.istio-system.svc.cluster.local",
            "istiod-1-24.istio-system.svc",
            "istiod.istio-system.svc",
        ] {
            assert!(
                names.iter().any(|n| n == want),
                "{want} missing from {names:?}"
            );
        }
    }

    #[test]
    fn serving_cert_renews_at_half_life() {
        let ca = Authority::generate("cluster.local", SystemTime::now()).expect("CA");
        let names = serving_names("r1", "ns", "cluster.local");
        let cert = ServingCert::issue(&ca, &names).expect("issued");
        let (nb, na) = cert.validity();
        assert_eq!(
            na - nb,
            SERVING_CERT_TTL.as_secs() as i64 + 60,
            "TTL plus backdating"
        );
        assert_eq!(cert.renew_at(), nb + (na - nb) / 2);
        let before = cert.current.read().expect("lock").cert[0].clone();
        cert.renew(&ca, &names).expect("renewed");
        let after = cert.current.read().expect("lock").cert[0].clone();
        assert_ne!(before, after, "renewal swaps the certificate");
    }
}
