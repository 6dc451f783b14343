//! Istio's `cacerts` layout, shared by the operator (which writes and
//! checks it) and weftd (which loads it): the four file names, the
//! material as PEM text ([`CaFiles`], read from a Secret or a map of files)
//! and (feature `cacerts`) its checks as a CA and a freshly generated root
//! and intermediate.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;

/// Signing certificate (the intermediate, or the root itself).
pub const CA_CERT: &str = "ca-cert.pem";
/// Private key of [`CA_CERT`] (PKCS#8, or PKCS#1 RSA, unencrypted).
pub const CA_KEY: &str = "ca-key.pem";
/// Root certificate(s) workloads trust.
pub const ROOT_CERT: &str = "root-cert.pem";
/// Chain from [`CA_CERT`] up to the root (optional; defaults to `ca-cert.pem`).
pub const CERT_CHAIN: &str = "cert-chain.pem";

/// Why files do not form the `cacerts` layout. `origin` names where they
/// came from (a Secret, a directory).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error(
        "{origin}/{key} is missing: a CA in Istio's cacerts layout holds ca-cert.pem, ca-key.pem, root-cert.pem and optionally cert-chain.pem"
    )]
    MissingKey { origin: String, key: &'static str },
    #[error("{origin}/{key} is not UTF-8 text; it must be PEM")]
    NotUtf8 { origin: String, key: &'static str },
}

/// CA material in the `cacerts` layout, as PEM text. Its `Debug` leaves
/// the private key out.
#[derive(Clone, PartialEq, Eq)]
pub struct CaFiles {
    pub ca_cert: String,
    pub ca_key: String,
    pub root_cert: String,
    /// `cert-chain.pem` when given (without it, [`CA_CERT`] alone).
    pub cert_chain: Option<String>,
}

impl fmt::Debug for CaFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaFiles")
            .field("ca_cert", &self.ca_cert)
            .field("ca_key", &"<redacted>")
            .field("root_cert", &self.root_cert)
            .field("cert_chain", &self.cert_chain)
            .finish()
    }
}

impl CaFiles {
    /// From file name → contents (a Secret's data, a directory's files).
    /// A blank `cert-chain.pem` counts as absent.
    pub fn from_map(origin: &str, data: &BTreeMap<String, Vec<u8>>) -> Result<Self, LayoutError> {
        let text = |key: &'static str| -> Result<Option<String>, LayoutError> {
            data.get(key)
                .map(|bytes| {
                    String::from_utf8(bytes.clone()).map_err(|_| LayoutError::NotUtf8 {
                        origin: origin.to_owned(),
                        key,
                    })
                })
                .transpose()
        };
        let required = |key: &'static str| -> Result<String, LayoutError> {
            text(key)?.ok_or_else(|| LayoutError::MissingKey {
                origin: origin.to_owned(),
                key,
            })
        };
        Ok(Self {
            ca_cert: required(CA_CERT)?,
            ca_key: required(CA_KEY)?,
            root_cert: required(ROOT_CERT)?,
            cert_chain: text(CERT_CHAIN)?.filter(|c| !c.trim().is_empty()),
        })
    }

    /// From a Secret: its `data`, and the `stringData` of an object not
    /// stored yet.
    pub fn from_secret(origin: &str, secret: &Secret) -> Result<Self, LayoutError> {
        let mut data: BTreeMap<String, Vec<u8>> = secret
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect();
        for (k, v) in secret.string_data.iter().flatten() {
            data.insert(k.clone(), v.clone().into_bytes());
        }
        Self::from_map(origin, &data)
    }

    /// File name → contents, the layout [`Self::from_map`] reads.
    pub fn to_map(&self) -> BTreeMap<String, Vec<u8>> {
        let mut map = BTreeMap::from([
            (CA_CERT.to_owned(), self.ca_cert.clone().into_bytes()),
            (CA_KEY.to_owned(), self.ca_key.clone().into_bytes()),
            (ROOT_CERT.to_owned(), self.root_cert.clone().into_bytes()),
        ]);
        if let Some(chain) = &self.cert_chain {
            map.insert(CERT_CHAIN.to_owned(), chain.clone().into_bytes());
        }
        map
    }

    /// A Secret's `data` holding the material.
    pub fn to_secret_data(&self) -> BTreeMap<String, ByteString> {
        self.to_map()
            .into_iter()
            .map(|(k, v)| (k, ByteString(v)))
            .collect()
    }
}

#[cfg(feature = "cacerts")]
mod check;
#[cfg(feature = "cacerts")]
mod generate;

#[cfg(feature = "cacerts")]
pub use check::{Cert, CheckError, CheckedCa};

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> CaFiles {
        CaFiles {
            ca_cert: "inter".into(),
            ca_key: "-----BEGIN PRIVATE KEY-----".into(),
            root_cert: "root".into(),
            cert_chain: Some("inter root".into()),
        }
    }

    #[test]
    fn secrets_round_trip_and_a_blank_chain_counts_as_absent() {
        let f = files();
        let secret = Secret {
            data: Some(f.to_secret_data()),
            ..Default::default()
        };
        assert_eq!(CaFiles::from_secret("cacerts", &secret), Ok(f.clone()));
        let mut data = f.to_map();
        data.insert(CERT_CHAIN.to_owned(), b"  \n".to_vec());
        let read = CaFiles::from_map("cacerts", &data).expect("reads");
        assert_eq!(read.cert_chain, None);
        let staged = Secret {
            string_data: Some(BTreeMap::from([
                (CA_CERT.to_owned(), "inter".to_owned()),
                (CA_KEY.to_owned(), "key".to_owned()),
                (ROOT_CERT.to_owned(), "root".to_owned()),
            ])),
            ..Default::default()
        };
        assert_eq!(
            CaFiles::from_secret("s", &staged).expect("reads").ca_key,
            "key"
        );
    }

    #[test]
    fn missing_and_binary_files_are_named() {
        for key in [CA_CERT, CA_KEY, ROOT_CERT] {
            let mut data = files().to_map();
            data.remove(key);
            let err = CaFiles::from_map("ns/cacerts", &data).expect_err(key);
            assert_eq!(
                err,
                LayoutError::MissingKey {
                    origin: "ns/cacerts".into(),
                    key
                }
            );
            assert!(
                err.to_string()
                    .starts_with(&format!("ns/cacerts/{key} is missing"))
            );
        }
        let mut data = files().to_map();
        data.insert(CA_KEY.to_owned(), vec![0xff, 0xfe]);
        assert_eq!(
            CaFiles::from_map("s", &data),
            Err(LayoutError::NotUtf8 {
                origin: "s".into(),
                key: CA_KEY
            })
        );
    }

    #[test]
    fn debug_leaves_the_key_out() {
        let shown = format!("{:?}", files());
        assert!(!shown.contains("PRIVATE KEY") && shown.contains("<redacted>"));
    }
}
