//! TLS for weftd's gRPC port 15012 (xDS and the CA).
//!
//! - The serving certificate names weftd's Services
//!   (`weftd-<revision>.<namespace>.svc[.<cluster domain>]`, and `istiod…`
//!   aliases so clients configured for Istio find it), is issued by the mesh
//!   CA itself and renewed at half-life without restarting the listener.
//! - Client certificates are optional at the TLS layer (a proxy has none
//!   before its first CSR) but, when presented, must chain to the mesh
//!   root. The SPIFFE ID of a verified client certificate travels with the
//!   connection as [`MeshPeer`]; request handlers get it with
//!   [`peer_identity`], and xDS refuses streams without one.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use rcgen::{KeyPair, SanType};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::ca::{Authority, AuthorityError};
use crate::identity::SpiffeId;

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

/// Who is on the other end of a 15012 connection. Inserted into every
/// request's extensions by tonic (see [`peer_identity`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshPeer {
    pub remote_addr: SocketAddr,
    /// The SPIFFE ID of the client certificate rustls verified against the
    /// mesh root; `None` when the client sent no certificate (or one
    /// without a SPIFFE ID).
    pub id: Option<SpiffeId>,
}

/// The SPIFFE ID in a certificate: its only URI SAN, when that is a
/// workload SPIFFE ID.
pub fn spiffe_id_of(cert: &CertificateDer<'_>) -> Option<SpiffeId> {
    let (_, x509) = X509Certificate::from_der(cert).ok()?;
    let san = x509.subject_alternative_name().ok()??;
    let mut uris = san.value.general_names.iter().filter_map(|n| match n {
        GeneralName::URI(uri) => Some(*uri),
        _ => None,
    });
    let uri = uris.next()?;
    if uris.next().is_some() {
        return None;
    }
    SpiffeId::parse(uri).ok()
}

/// The verified SPIFFE ID of the client of `request` (served through
/// [`incoming`]); `Unauthenticated` when it presented no mesh certificate.
pub fn peer_identity<T>(request: &tonic::Request<T>) -> Result<SpiffeId, tonic::Status> {
    request
        .extensions()
        .get::<MeshPeer>()
        .and_then(|peer| peer.id.clone())
        .ok_or_else(|| {
            tonic::Status::unauthenticated(
                "this stream requires the proxy's mesh client certificate: get one from weft.ca.v1.CertificateService first, then reconnect presenting it",
            )
        })
}

/// A server-side TLS connection with its [`MeshPeer`].
#[derive(Debug)]
pub struct MeshTlsStream {
    inner: TlsStream<TcpStream>,
    peer: MeshPeer,
}

impl MeshTlsStream {
    pub fn peer(&self) -> &MeshPeer {
        &self.peer
    }
}

impl Connected for MeshTlsStream {
    type ConnectInfo = MeshPeer;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.peer.clone()
    }
}

impl AsyncRead for MeshTlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for MeshTlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Accepts TCP connections on `listener` and completes TLS handshakes
/// concurrently (a slow client cannot stall the others); yields finished
/// connections for `tonic::transport::Server::serve_with_incoming`. Failed
/// handshakes are logged and dropped. Stops when the receiver is dropped.
pub fn incoming(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
) -> ReceiverStream<Result<MeshTlsStream, io::Error>> {
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
                        let id = tls
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|certs| certs.first())
                            .and_then(spiffe_id_of);
                        let peer = MeshPeer { remote_addr, id };
                        tracing::debug!(peer = %remote_addr, id = ?peer.id, "TLS connection");
                        let _ = tx.send(Ok(MeshTlsStream { inner: tls, peer })).await;
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

    #[test]
    fn spiffe_ids_from_certificates() {
        let ca = Authority::generate("cluster.local", SystemTime::now()).expect("CA");
        let key = KeyPair::generate().expect("key");
        let uri = |s: &str| SanType::URI(s.try_into().expect("ia5"));
        let issue = |sans| {
            ca.issue(&key, sans, Duration::from_secs(60), SystemTime::now())
                .expect("issued")
                .chain_der[0]
                .clone()
        };
        assert_eq!(
            spiffe_id_of(&issue(vec![uri("spiffe://cluster.local/ns/a/sa/b")])),
            Some(SpiffeId::new("cluster.local", "a", "b"))
        );
        assert_eq!(
            spiffe_id_of(&issue(vec![
                uri("spiffe://cluster.local/ns/a/sa/b"),
                uri("spiffe://cluster.local/ns/c/sa/d"),
            ])),
            None,
            "two identities: none"
        );
        assert_eq!(
            spiffe_id_of(&issue(vec![SanType::DnsName(
                "x.y".try_into().expect("ia5")
            )])),
            None
        );
    }
}
