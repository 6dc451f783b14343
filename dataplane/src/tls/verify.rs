//! Certificate verification for mesh mTLS: the peer chain must lead to the
//! trust bundle, and the peer's SPIFFE ID must be one expected for the
//! destination (client side) or belong to the trust domain (server side).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

use super::spiffe::{SpiffeId, spiffe_id};

/// Trust anchors and signature algorithms shared by both verifiers.
#[derive(Debug)]
pub struct TrustBundle {
    anchors: Vec<TrustAnchor<'static>>,
    algs: WebPkiSupportedAlgorithms,
}

impl TrustBundle {
    pub fn new(roots: &[CertificateDer<'static>]) -> Result<Self, webpki::Error> {
        let anchors = roots
            .iter()
            .map(|r| webpki::anchor_from_trusted_cert(r).map(|a| a.to_owned()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            anchors,
            algs: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        })
    }

    /// Verifies the chain for `usage` and returns the leaf's SPIFFE ID.
    fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        usage: webpki::KeyUsage,
    ) -> Result<SpiffeId, Error> {
        let cert = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
        cert.verify_for_usage(
            self.algs.all,
            &self.anchors,
            intermediates,
            now,
            usage,
            None,
            None,
        )
        .map_err(webpki_error)?;
        spiffe_id(end_entity).ok_or_else(|| {
            Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
                PeerIdError("the peer certificate carries no single spiffe:// URI SAN".into()),
            ))))
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct PeerIdError(String);

fn webpki_error(e: webpki::Error) -> Error {
    use webpki::Error as W;
    Error::InvalidCertificate(match e {
        W::CertExpired { .. } => CertificateError::Expired,
        W::CertNotValidYet { .. } => CertificateError::NotValidYet,
        W::UnknownIssuer => CertificateError::UnknownIssuer,
        W::InvalidSignatureForPublicKey => CertificateError::BadSignature,
        W::RequiredEkuNotFoundContext(_) => CertificateError::InvalidPurpose,
        other => CertificateError::Other(rustls::OtherError(Arc::new(PeerIdError(format!(
            "{other}"
        ))))),
    })
}

fn wrong_identity(msg: String) -> Error {
    Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
        PeerIdError(msg),
    ))))
}

/// Client side: verifies the peer proxy against the trust bundle and the
/// SPIFFE IDs expected for the destination.
#[derive(Debug)]
pub struct PeerVerifier {
    pub bundle: Arc<TrustBundle>,
    pub trust_domain: String,
    /// Any of these IDs is accepted; empty: any ID of the trust domain.
    pub expected: Arc<[String]>,
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let id = self.bundle.verify(
            end_entity,
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
        )?;
        let text = id.to_string();
        let ok = if self.expected.is_empty() {
            id.trust_domain == self.trust_domain
        } else {
            self.expected.contains(&text)
        };
        if ok {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(wrong_identity(format!(
                "peer identity {text} is not one expected for this destination ({})",
                if self.expected.is_empty() {
                    format!("trust domain {}", self.trust_domain)
                } else {
                    self.expected.join(", ")
                }
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.bundle.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.bundle.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.bundle.algs.supported_schemes()
    }
}

/// Server side: requires a client certificate chaining to the trust bundle
/// whose SPIFFE ID is in the trust domain.
#[derive(Debug)]
pub struct MeshClientVerifier {
    pub bundle: Arc<TrustBundle>,
    pub trust_domain: String,
}

impl ClientCertVerifier for MeshClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let id = self.bundle.verify(
            end_entity,
            intermediates,
            now,
            webpki::KeyUsage::client_auth(),
        )?;
        if id.trust_domain == self.trust_domain {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(wrong_identity(format!(
                "client identity {id} is not in trust domain {}",
                self.trust_domain
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.bundle.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.bundle.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.bundle.algs.supported_schemes()
    }
}
