//! TLS credentials for gateways: taken from Secrets, published only for the
//! Secrets a gateway references, and never printed.

use std::collections::BTreeSet;
use std::fmt;

use k8s_openapi::api::core::v1::Secret;

use super::{ObjectKey, Snapshot};

/// A certificate chain and its private key (PEM), plus an optional CA bundle.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsCredential {
    pub cert_chain: Vec<u8>,
    pub private_key: Vec<u8>,
    pub ca: Option<Vec<u8>>,
}

impl fmt::Debug for TlsCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsCredential")
            .field("cert_chain_bytes", &self.cert_chain.len())
            .field("private_key", &"<redacted>")
            .field("ca", &self.ca.as_ref().map(Vec::len))
            .finish()
    }
}

impl TlsCredential {
    /// Reads `tls.crt`/`tls.key` (type `kubernetes.io/tls`, optional
    /// `ca.crt`) or Istio's generic layout `cert`/`key` (optional `cacert`).
    /// `None` when the Secret holds neither.
    pub fn from_secret(secret: &Secret) -> Option<Self> {
        let data = secret.data.as_ref()?;
        let get = |k: &str| data.get(k).map(|b| b.0.clone()).filter(|b| !b.is_empty());
        let (cert_chain, private_key, ca) = match (get("tls.crt"), get("tls.key")) {
            (Some(c), Some(k)) => (c, k, get("ca.crt")),
            _ => (get("cert")?, get("key")?, get("cacert")),
        };
        Some(Self {
            cert_chain,
            private_key,
            ca,
        })
    }
}

/// The Secrets gateways reference: Gateway API listeners'
/// `tls.certificateRefs` (kind Secret, namespace defaulting to the
/// Gateway's) and Istio Gateway servers' `tls.credentialName(s)` (in the
/// Gateway's namespace).
pub(super) fn referenced_secrets(state: &Snapshot) -> BTreeSet<ObjectKey> {
    let mut out = BTreeSet::new();
    for (key, gw) in state.gateways.iter() {
        for listener in &gw.spec.listeners {
            let refs = listener
                .tls
                .as_ref()
                .and_then(|t| t.certificate_refs.as_ref());
            for r in refs.into_iter().flatten() {
                let is_secret = r.kind.as_deref().unwrap_or("Secret") == "Secret"
                    && r.group.as_deref().unwrap_or("").is_empty();
                if is_secret {
                    let ns = r.namespace.clone().unwrap_or_else(|| key.namespace.clone());
                    out.insert(ObjectKey::new(ns, &r.name));
                }
            }
        }
    }
    for (key, gw) in state.istio_gateways.iter() {
        for server in &gw.spec.servers {
            let Some(tls) = &server.tls else { continue };
            for name in tls.credential_name.iter().chain(&tls.credential_names) {
                out.insert(ObjectKey::new(&key.namespace, name));
            }
        }
    }
    out
}
