//! The mesh CA material the operator hands weftd, in Istio's `cacerts`
//! layout: generated (a self-signed root and an intermediate, made with
//! rcgen), or the platform team's plugged-in Secret, checked before it is
//! used with the checks weftd runs when it loads it (`CaFiles::check`): the
//! key belongs to `ca-cert.pem`, `ca-cert.pem` is a CA valid now, and the
//! chain leads to a root in `root-cert.pem` that is valid now. A Secret
//! that fails is reported, never applied, so a running weftd keeps what it
//! loaded.
//!
//! Private keys never reach logs, Events or status: [`CaFiles`]' `Debug`
//! redacts the key and errors name files, not contents.

use std::time::SystemTime;

pub use weft_api::cacerts::{CaFiles, CheckError, LayoutError};

/// Why CA material cannot be used. The `Display` is the condition message:
/// `<secret>/<file> …`, saying what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaError {
    #[error(
        "{secret} not found: create it with ca-cert.pem, ca-key.pem, root-cert.pem and cert-chain.pem"
    )]
    SecretMissing { secret: String },
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Check(#[from] CheckError),
}

/// What status may say about a CA: nothing secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaSummary {
    /// SHA-256 of the first root's DER, lower-case hex.
    pub root_fingerprint: String,
    /// When the first root expires, RFC 3339.
    pub root_not_after: String,
}

/// Checks the material as weftd will (the same checks); `secret` names
/// it in errors. What status may say: the first root's fingerprint and
/// expiry.
pub fn check(files: &CaFiles, secret: &str, now: SystemTime) -> Result<CaSummary, CaError> {
    let checked = files.check(secret, now)?;
    let root = &checked.roots[0];
    let digest = ring::digest::digest(&ring::digest::SHA256, &root.der);
    let root_not_after = root
        .parsed()
        .ok()
        .and_then(|c| {
            c.validity()
                .not_after
                .to_datetime()
                .format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    Ok(CaSummary {
        root_fingerprint: digest.as_ref().iter().map(|b| format!("{b:02x}")).collect(),
        root_not_after,
    })
}

/// The root certificate(s), PEM, as workloads and the API server trust them.
pub fn trust_bundle(files: &CaFiles) -> String {
    files.root_cert.clone()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use k8s_openapi::api::core::v1::Secret;

    use super::*;
    use crate::contract::{CA_CERT, CA_KEY, ROOT_CERT};

    const DAY: Duration = Duration::from_secs(86400);

    fn generated() -> CaFiles {
        CaFiles::generate("cluster.local", 3650 * DAY, 365 * DAY, SystemTime::now())
            .expect("generates")
    }

    #[test]
    fn the_summary_says_which_root_and_until_when() {
        let files = generated();
        let summary = check(&files, "cacerts", SystemTime::now()).expect("valid");
        assert_eq!(summary.root_fingerprint.len(), 64);
        assert!(
            summary
                .root_fingerprint
                .chars()
                .all(|c| c.is_ascii_hexdigit())
        );
        let not_after = time::OffsetDateTime::parse(
            &summary.root_not_after,
            &time::format_description::well_known::Rfc3339,
        )
        .expect("RFC 3339");
        let expected = time::OffsetDateTime::now_utc() + 3650 * DAY;
        assert!(
            (not_after - expected).abs() < time::Duration::hours(1),
            "{}",
            summary.root_not_after
        );
        let other = check(&generated(), "cacerts", SystemTime::now()).expect("valid");
        assert_ne!(summary.root_fingerprint, other.root_fingerprint);
    }

    #[test]
    fn condition_messages_name_the_secret_and_the_file() {
        let mut files = generated();
        files.ca_key = generated().ca_key;
        let err = check(&files, "cacerts", SystemTime::now()).expect_err("mismatch");
        assert!(matches!(
            err,
            CaError::Check(CheckError::KeyMismatch { .. })
        ));
        assert!(
            err.to_string()
                .starts_with("cacerts/ca-key.pem is not the key of ca-cert.pem"),
            "{err}"
        );
        let later = SystemTime::now() + 400 * DAY;
        assert!(matches!(
            check(&generated(), "cacerts", later),
            Err(CaError::Check(CheckError::OutOfValidity {
                key: CA_CERT,
                ..
            }))
        ));
        let mut secret = Secret {
            data: Some(generated().to_secret_data()),
            ..Default::default()
        };
        secret.data.as_mut().map(|d| d.remove(CA_KEY));
        let err = CaFiles::from_secret("cacerts", &secret).map_err(CaError::from);
        assert!(
            matches!(
                &err,
                Err(CaError::Layout(LayoutError::MissingKey { key: CA_KEY, .. }))
            ),
            "{err:?}"
        );
        let mut files = generated();
        files.root_cert = generated().root_cert;
        let err = check(&files, "cacerts", SystemTime::now()).expect_err("untrusted");
        assert!(
            err.to_string().starts_with(&format!("cacerts/{ROOT_CERT}")),
            "{err}"
        );
    }
}
