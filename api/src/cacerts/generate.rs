//! A fresh root and intermediate in the `cacerts` layout (feature
//! `cacerts`).

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::OffsetDateTime;

use super::CaFiles;

/// Generated certificates start this much before "now", so that a peer
/// whose clock runs slightly behind does not reject them.
const BACKDATE: Duration = Duration::from_secs(60);

impl CaFiles {
    /// A fresh self-signed root (valid `root_ttl`) and an intermediate it
    /// signs (valid `intermediate_ttl`, never past the root), both ECDSA
    /// P-256 with the trust domain as their organisation. The intermediate
    /// signs workload certificates (path length 0). Its key only lives in
    /// the returned value.
    pub fn generate(
        trust_domain: &str,
        root_ttl: Duration,
        intermediate_ttl: Duration,
        now: SystemTime,
    ) -> Result<CaFiles, rcgen::Error> {
        let now = OffsetDateTime::from(now);
        let root_key = KeyPair::generate()?;
        let mut root = ca_params(
            format!("Weft root CA ({trust_domain})"),
            trust_domain,
            BasicConstraints::Unconstrained,
        );
        root.not_before = now - BACKDATE;
        root.not_after = now + root_ttl;
        let root_cert = root.self_signed(&root_key)?;
        let root_issuer = Issuer::new(root, root_key);

        let key = KeyPair::generate()?;
        let mut inter = ca_params(
            format!("Weft intermediate CA ({trust_domain})"),
            trust_domain,
            BasicConstraints::Constrained(0),
        );
        inter.not_before = now - BACKDATE;
        inter.not_after = now + intermediate_ttl.min(root_ttl);
        let inter_cert = inter.signed_by(&key, &root_issuer)?;
        Ok(CaFiles {
            ca_cert: inter_cert.pem(),
            ca_key: key.serialize_pem(),
            root_cert: root_cert.pem(),
            cert_chain: Some(format!("{}{}", inter_cert.pem(), root_cert.pem())),
        })
    }
}

fn ca_params(
    common_name: String,
    trust_domain: &str,
    constraints: BasicConstraints,
) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, trust_domain);
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(constraints);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_intermediate_is_signed_by_the_root_and_never_outlives_it() {
        let day = Duration::from_secs(24 * 3600);
        let now = SystemTime::now();
        let ca = CaFiles::generate("cluster.local", day, 10 * day, now).expect("generates");
        let chain = ca.cert_chain.as_deref().expect("generated with a chain");
        assert!(chain.starts_with(&ca.ca_cert));
        assert!(chain.ends_with(&ca.root_cert));
        assert!(ca.ca_key.contains("PRIVATE KEY"));
        assert!(!format!("{ca:?}").contains("PRIVATE KEY"));
        let pem = |text: &str| pem::parse(text).expect("PEM").into_contents();
        let root = pem(&ca.root_cert);
        let inter = pem(&ca.ca_cert);
        let (_, root) = x509_parser::parse_x509_certificate(&root).expect("root parses");
        let (_, inter) = x509_parser::parse_x509_certificate(&inter).expect("parses");
        assert_eq!(inter.issuer(), root.subject());
        assert!(inter.verify_signature(Some(root.public_key())).is_ok());
        assert_eq!(inter.validity().not_after, root.validity().not_after);
        assert!(inter.is_ca() && root.is_ca());
    }
}
