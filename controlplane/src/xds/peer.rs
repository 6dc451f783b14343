//! The SPIFFE identity of an mTLS peer, from the certificate the TLS
//! handshake verified (the listener on 15012 verifies the chain against
//! the mesh trust bundle; this only reads the verified leaf).

use std::sync::Arc;

use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::identity::SpiffeId;

/// A peer identity a layer in front of the xDS service already
/// established (for listeners that do not hand tonic their TLS stream):
/// inserted into the request extensions, it wins over the certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerSpiffeId(pub SpiffeId);

/// Why the peer has no usable identity.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PeerError {
    #[error("no client certificate")]
    NoCertificate,
    #[error("client certificate is not valid DER X.509: {0}")]
    Parse(String),
    #[error("client certificate has no spiffe:// URI SAN")]
    NoSpiffeUri,
    #[error(
        "client certificate has {0} spiffe:// URI SANs: a workload certificate has exactly one"
    )]
    SeveralSpiffeUris(usize),
    #[error(transparent)]
    Spiffe(#[from] crate::identity::SpiffeIdError),
}

/// The one `spiffe://` URI SAN of a DER certificate.
pub fn spiffe_id_of(der: &[u8]) -> Result<SpiffeId, PeerError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| PeerError::Parse(e.to_string()))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| PeerError::Parse(e.to_string()))?;
    let uris: Vec<&str> = san
        .iter()
        .flat_map(|s| s.value.general_names.iter())
        .filter_map(|n| match n {
            GeneralName::URI(u) if u.starts_with("spiffe://") => Some(*u),
            _ => None,
        })
        .collect();
    match uris.as_slice() {
        [] => Err(PeerError::NoSpiffeUri),
        [one] => Ok(SpiffeId::parse(one)?),
        many => Err(PeerError::SeveralSpiffeUris(many.len())),
    }
}

/// The peer identity of a request: a [`PeerSpiffeId`] extension, else the
/// leaf of the TLS client certificate chain tonic recorded.
pub fn peer_identity(ext: &http::Extensions) -> Result<SpiffeId, PeerError> {
    if let Some(PeerSpiffeId(id)) = ext.get::<PeerSpiffeId>() {
        return Ok(id.clone());
    }
    let certs: Option<Arc<Vec<_>>> = ext
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(|i| i.peer_certs());
    let leaf = certs
        .as_ref()
        .and_then(|c| c.first())
        .ok_or(PeerError::NoCertificate)?;
    spiffe_id_of(leaf.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_with(sans: Vec<rcgen::SanType>) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::default();
        params.subject_alt_names = sans;
        params.self_signed(&key).expect("cert").der().to_vec()
    }

    fn uri(u: &str) -> rcgen::SanType {
        rcgen::SanType::URI(u.try_into().expect("ia5"))
    }

    #[test]
    fn reads_exactly_one_spiffe_uri() {
        let ok = cert_with(vec![
            uri("spiffe://cluster.local/ns/shop/sa/echo"),
            uri("https://x.example/"),
        ]);
        assert_eq!(
            spiffe_id_of(&ok),
            Ok(SpiffeId::new("cluster.local", "shop", "echo"))
        );
        assert_eq!(
            spiffe_id_of(&cert_with(vec![])),
            Err(PeerError::NoSpiffeUri)
        );
        let two = cert_with(vec![
            uri("spiffe://cluster.local/ns/shop/sa/echo"),
            uri("spiffe://cluster.local/ns/kube-system/sa/admin"),
        ]);
        assert_eq!(spiffe_id_of(&two), Err(PeerError::SeveralSpiffeUris(2)));
        assert!(matches!(spiffe_id_of(b"junk"), Err(PeerError::Parse(_))));
        assert!(matches!(
            spiffe_id_of(&cert_with(vec![uri("spiffe://cluster.local/ns/shop")])),
            Err(PeerError::Spiffe(_))
        ));
    }

    #[test]
    fn extension_wins_and_absence_is_an_error() {
        let mut ext = http::Extensions::new();
        assert_eq!(peer_identity(&ext), Err(PeerError::NoCertificate));
        let id = SpiffeId::new("td", "a", "b");
        ext.insert(PeerSpiffeId(id.clone()));
        assert_eq!(peer_identity(&ext), Ok(id));
    }
}
