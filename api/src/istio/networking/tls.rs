//! TLS settings: the client side used towards upstreams (DestinationRule) and
//! the server side used on gateway and sidecar listeners.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How a proxy secures its connection to an upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ClientTlsMode {
    /// Plain text; no TLS.
    #[serde(rename = "DISABLE")]
    Disable,
    /// TLS that verifies the server only.
    #[serde(rename = "SIMPLE")]
    Simple,
    /// Mutual TLS with certificates the user supplies.
    #[serde(rename = "MUTUAL")]
    Mutual,
    /// Mutual TLS with the mesh's own workload certificates.
    #[serde(rename = "ISTIO_MUTUAL")]
    IstioMutual,
}

/// TLS used by a proxy when it connects to an upstream.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "!has(self.mode) || self.mode != 'MUTUAL' || has(self.credentialName) || (has(self.clientCertificate) && has(self.privateKey))"
).message("tls.mode MUTUAL needs credentialName, or clientCertificate and privateKey"))]
pub struct ClientTlsSettings {
    /// Whether and how the connection is secured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ClientTlsMode>,
    /// Path of the client certificate file; used with mode MUTUAL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<String>,
    /// Path of the client's private key file; used with mode MUTUAL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    /// Path of the CA bundle that verifies the server's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<String>,
    /// Name of a Secret holding the client certificate, key and CA bundle;
    /// used instead of the file paths (gateways only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_name: Option<String>,
    /// Identities the server certificate must present, one of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
    /// SNI sent in the TLS handshake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// Skip verifying the server certificate and its names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
    /// Path of a certificate revocation list used to check the server certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_crl: Option<String>,
}

/// How a listener treats incoming TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ServerTlsMode {
    /// Forward the connection untouched, routed by its SNI.
    #[serde(rename = "PASSTHROUGH")]
    Passthrough,
    /// Terminate TLS with a server certificate.
    #[serde(rename = "SIMPLE")]
    Simple,
    /// Terminate TLS and require a client certificate.
    #[serde(rename = "MUTUAL")]
    Mutual,
    /// Forward untouched, routed by SNI with no VirtualService needed.
    #[serde(rename = "AUTO_PASSTHROUGH")]
    AutoPassthrough,
    /// Terminate mutual TLS with the mesh's own workload certificates.
    #[serde(rename = "ISTIO_MUTUAL")]
    IstioMutual,
    /// Terminate TLS and verify a client certificate if one is presented.
    #[serde(rename = "OPTIONAL_MUTUAL")]
    OptionalMutual,
}

/// TLS protocol versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TlsProtocol {
    /// The proxy's default: TLS 1.2 as minimum, 1.3 as maximum.
    #[serde(rename = "TLS_AUTO")]
    Auto,
    /// TLS 1.0.
    #[serde(rename = "TLSV1_0")]
    V1_0,
    /// TLS 1.1.
    #[serde(rename = "TLSV1_1")]
    V1_1,
    /// TLS 1.2.
    #[serde(rename = "TLSV1_2")]
    V1_2,
    /// TLS 1.3.
    #[serde(rename = "TLSV1_3")]
    V1_3,
}

/// One certificate and key pair served by a listener.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsCertificate {
    /// Path of the server certificate file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_certificate: Option<String>,
    /// Path of the private key file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    /// Path of the CA bundle that verifies client certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<String>,
}

/// TLS a listener applies to incoming connections.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "(has(self.credentialName) ? 1 : 0) + (has(self.credentialNames) ? 1 : 0) + (has(self.tlsCertificates) ? 1 : 0) + (has(self.serverCertificate) ? 1 : 0) <= 1"
).message("tls: set only one of credentialName, credentialNames, tlsCertificates or serverCertificate"))]
#[x_kube(validation = Rule::new(
    "!has(self.mode) || !(self.mode in ['SIMPLE', 'MUTUAL', 'OPTIONAL_MUTUAL']) || has(self.credentialName) || has(self.credentialNames) || has(self.tlsCertificates) || (has(self.serverCertificate) && has(self.privateKey))"
).message("tls.mode SIMPLE, MUTUAL and OPTIONAL_MUTUAL need credentialName, credentialNames, tlsCertificates, or serverCertificate and privateKey"))]
pub struct ServerTlsSettings {
    /// Answer plain HTTP on this server with a redirect to HTTPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https_redirect: Option<bool>,
    /// How incoming TLS is treated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ServerTlsMode>,
    /// Path of the server certificate file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_certificate: Option<String>,
    /// Path of the server's private key file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    /// Path of the CA bundle that verifies client certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<String>,
    /// Path of a certificate revocation list used to check client certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_crl: Option<String>,
    /// Name of a Secret holding the certificate, key and optionally CA bundle
    /// (gateways only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_name: Option<String>,
    /// Up to two Secrets, e.g. one RSA and one ECDSA certificate (gateways only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 2))]
    pub credential_names: Vec<String>,
    /// Up to two certificate and key file pairs, e.g. one RSA and one ECDSA.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 2))]
    pub tls_certificates: Vec<TlsCertificate>,
    /// Identities accepted in client certificates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
    /// Base64 SHA-256 hashes of client certificates' public keys (SPKI) that are accepted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify_certificate_spki: Vec<String>,
    /// Hex SHA-256 hashes of client certificates that are accepted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify_certificate_hash: Vec<String>,
    /// Lowest TLS version accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_protocol_version: Option<TlsProtocol>,
    /// Highest TLS version accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_protocol_version: Option<TlsProtocol>,
    /// Cipher suites offered, in order of preference; defaults to the proxy's list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cipher_suites: Vec<String>,
}
