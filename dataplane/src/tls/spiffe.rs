//! SPIFFE IDs (`spiffe://<trust domain>/ns/<ns>/sa/<sa>`) and reading them
//! from certificates' URI SANs.

use std::fmt;

use rustls::pki_types::CertificateDer;
use x509_parser::error::X509Error;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// A parsed SPIFFE ID.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    pub trust_domain: String,
    /// The path, with its leading `/`.
    pub path: String,
}

impl SpiffeId {
    pub fn parse(uri: &str) -> Option<Self> {
        let rest = uri.strip_prefix("spiffe://")?;
        let (td, path) = rest.split_once('/').unwrap_or((rest, ""));
        if td.is_empty() || td.contains([':', '@', '?', '#']) {
            return None;
        }
        Some(Self {
            trust_domain: td.to_ascii_lowercase(),
            path: if path.is_empty() {
                String::new()
            } else {
                format!("/{path}")
            },
        })
    }

    /// `ns` and `sa` of an Istio-style ID (`/ns/<ns>/sa/<sa>`).
    pub fn namespace_and_account(&self) -> Option<(&str, &str)> {
        let mut parts = self.path.strip_prefix('/')?.split('/');
        match (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) {
            (Some("ns"), Some(ns), Some("sa"), Some(sa), None) => Some((ns, sa)),
            _ => None,
        }
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "spiffe://{}{}", self.trust_domain, self.path)
    }
}

/// The URI SANs of a certificate (empty when it does not parse).
pub fn uri_sans(cert: &CertificateDer<'_>) -> Vec<String> {
    X509Certificate::from_der(cert.as_ref())
        .ok()
        .and_then(|(_, parsed)| uri_sans_of(&parsed).ok())
        .unwrap_or_default()
}

/// The URI SANs of a parsed certificate; `Err` when its SAN extension is
/// malformed.
pub fn uri_sans_of(cert: &X509Certificate<'_>) -> Result<Vec<String>, X509Error> {
    Ok(cert
        .subject_alternative_name()?
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::URI(u) => Some((*u).to_owned()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default())
}

/// The SPIFFE ID the peer of a TLS connection presented (its leaf
/// certificate's), as text.
pub fn peer_id(tls: &rustls::CommonState) -> Option<String> {
    tls.peer_certificates()
        .and_then(|c| c.first())
        .and_then(spiffe_id)
        .map(|id| id.to_string())
}

/// The SPIFFE ID of a certificate: its one `spiffe://` URI SAN.
pub fn spiffe_id(cert: &CertificateDer<'_>) -> Option<SpiffeId> {
    let ids: Vec<SpiffeId> = uri_sans(cert)
        .iter()
        .filter_map(|u| SpiffeId::parse(u))
        .collect();
    match ids.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

/// DNS SANs of a certificate (for SNI selection at gateways).
pub fn dns_sans(cert: &CertificateDer<'_>) -> Vec<String> {
    let Ok((_, parsed)) = X509Certificate::from_der(cert.as_ref()) else {
        return Vec::new();
    };
    let mut names: Vec<String> = match parsed.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    if names.is_empty()
        && let Some(cn) = parsed
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
    {
        names.push(cn.to_ascii_lowercase());
    }
    names
}

/// The start of the certificate's validity as Unix seconds.
pub fn not_before(cert: &CertificateDer<'_>) -> Option<i64> {
    X509Certificate::from_der(cert.as_ref())
        .ok()
        .map(|(_, c)| c.validity().not_before.timestamp())
}

/// The certificate's expiry as Unix seconds.
pub fn not_after(cert: &CertificateDer<'_>) -> Option<i64> {
    X509Certificate::from_der(cert.as_ref())
        .ok()
        .map(|(_, c)| c.validity().not_after.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_istio_ids() {
        let id = SpiffeId::parse("spiffe://cluster.local/ns/shop/sa/web").unwrap();
        assert_eq!(id.trust_domain, "cluster.local");
        assert_eq!(id.namespace_and_account(), Some(("shop", "web")));
        assert_eq!(id.to_string(), "spiffe://cluster.local/ns/shop/sa/web");
        assert!(SpiffeId::parse("https://x/ns/a/sa/b").is_none());
        assert!(SpiffeId::parse("spiffe:///ns/a").is_none());
        assert_eq!(
            SpiffeId::parse("spiffe://td/x")
                .unwrap()
                .namespace_and_account(),
            None
        );
    }
}
