//! The webhook's serving TLS config from PEM files (a `kubernetes.io/tls`
//! Secret mounted as files), for when the mesh CA does not provide one.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::WebhookError;

/// A rustls server config for `cert_pem` (chain, leaf first) and `key_pem`,
/// offering HTTP/2 and HTTP/1.1.
pub fn server_config(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<rustls::ServerConfig>, WebhookError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| WebhookError::Pem(format!("certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(WebhookError::Pem(
            "no CERTIFICATE block in the certificate file".to_owned(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| WebhookError::Pem(format!("private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(WebhookError::Tls)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(WebhookError::Tls)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// [`server_config`] from files, e.g. `/var/run/secrets/weftd-webhook/tls.crt` and `tls.key`.
pub fn server_config_from_files(
    cert: &Path,
    key: &Path,
) -> Result<Arc<rustls::ServerConfig>, WebhookError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| WebhookError::ReadFile {
            path: path.to_owned(),
            source,
        })
    };
    server_config(&read(cert)?, &read(key)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_from_generated_pem_and_refuses_garbage() {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["weftd.weft-system.svc".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let config = server_config(cert.pem().as_bytes(), key.serialize_pem().as_bytes())
            .expect("valid PEM builds");
        assert_eq!(config.alpn_protocols[0], b"h2");
        let err = server_config(b"nope", key.serialize_pem().as_bytes()).expect_err("no cert");
        assert!(err.to_string().contains("CERTIFICATE"), "{err}");
        assert!(server_config(cert.pem().as_bytes(), b"nope").is_err());
    }
}
