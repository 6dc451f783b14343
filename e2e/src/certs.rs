//! Test PKI: a throwaway CA and a serving certificate for a Service (e.g.
//! an admission webhook), packed into a `kubernetes.io/tls` Secret.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::api::ObjectMeta;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Errors generating certificates.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("generating a test certificate failed: {0}")]
    Rcgen(#[from] rcgen::Error),
}

/// PEM material: `ca_pem` goes into a webhook's `caBundle`, `cert_pem` and
/// `key_pem` into the serving Secret.
#[derive(Clone)]
pub struct ServingCert {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for ServingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingCert")
            .field("ca_pem", &self.ca_pem)
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// DNS names a Service is reached by from the API server and from pods.
pub fn service_dns_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
        format!("{service}.{namespace}"),
        service.to_owned(),
    ]
}

/// A fresh CA and a serving certificate for `<service>.<namespace>.svc`.
pub fn serving_cert_for_service(service: &str, namespace: &str) -> Result<ServingCert, CertError> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("weft-e2e-ca {namespace}"));
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(service_dns_names(service, namespace))?;
    params
        .distinguished_name
        .push(DnType::CommonName, format!("{service}.{namespace}.svc"));
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &issuer)?;
    Ok(ServingCert {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A `kubernetes.io/tls` Secret holding `tls.crt`, `tls.key` and `ca.crt`.
pub fn tls_secret(name: &str, cert: &ServingCert) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".to_owned()),
        string_data: Some(BTreeMap::from([
            ("tls.crt".to_owned(), cert.cert_pem.clone()),
            ("tls.key".to_owned(), cert.key_pem.clone()),
            ("ca.crt".to_owned(), cert.ca_pem.clone()),
        ])),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serving_cert_is_pem_and_names_the_service() {
        let c = serving_cert_for_service("hook", "ns1").expect("generates");
        assert!(c.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(c.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(c.key_pem.contains("PRIVATE KEY"));
        assert_ne!(c.ca_pem, c.cert_pem);
        assert!(service_dns_names("hook", "ns1").contains(&"hook.ns1.svc".to_owned()));
        assert!(!format!("{c:?}").contains("PRIVATE KEY"));
        let s = tls_secret("hook-tls", &c);
        assert_eq!(s.type_.as_deref(), Some("kubernetes.io/tls"));
        assert_eq!(s.string_data.map(|d| d.len()), Some(3));
    }
}
