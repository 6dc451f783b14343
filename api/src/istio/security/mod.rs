//! `security.istio.io`: PeerAuthentication, AuthorizationPolicy, RequestAuthentication.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::istio::common::WorkloadSelector;

pub mod authorization_policy;
pub mod peer_authentication;
pub mod request_authentication;
pub mod target_ref;

pub use authorization_policy::{AuthorizationPolicy, AuthorizationPolicySpec};
pub use peer_authentication::{PeerAuthentication, PeerAuthenticationSpec};
pub use request_authentication::{RequestAuthentication, RequestAuthenticationSpec};
pub use target_ref::PolicyTargetReference;

/// A mistake in a security policy that Istio's admission webhook refuses but
/// the CRD cannot check: the API server would have to iterate lists nested
/// three deep, over its CEL cost budget. Weft's webhook and controllers call
/// the kinds' `validate()` for these.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("{field}: an empty string never matches: remove it or write a value")]
    EmptyValue { field: String },
    #[error("{field}: {value:?} is not an IP address or CIDR range, e.g. 10.0.0.1 or 10.0.0.0/8")]
    NotAnIpOrCidr { field: String, value: String },
    #[error("{field}: {value:?} is not a port number between 0 and 65535")]
    NotAPort { field: String, value: String },
    #[error(
        "{field}: {value:?} is not a service account: write <namespace>/<name>, without wildcards"
    )]
    NotAServiceAccount { field: String, value: String },
    #[error(
        "{field}: {key:?} is not a supported condition key (e.g. request.headers[x-user], source.ip, request.auth.claims[iss])"
    )]
    UnknownConditionKey { field: String, key: String },
    #[error(
        "{field}: {key:?} cannot be used with action CUSTOM: the external authorizer is not given identities"
    )]
    NotWithCustom { field: String, key: String },
    #[error("{field}: selector labels may not be empty or contain '*' ({label:?})")]
    BadSelectorLabel { field: String, label: String },
    #[error("{field}: not a JSON Web Key Set ({reason}): write {{\"keys\": [...]}}")]
    NotAJwks { field: String, reason: String },
}

impl PolicyError {
    /// A stable short label for metrics and Events.
    pub fn label(&self) -> &'static str {
        match self {
            Self::EmptyValue { .. } => "EmptyValue",
            Self::NotAnIpOrCidr { .. } => "NotAnIpOrCidr",
            Self::NotAPort { .. } => "NotAPort",
            Self::NotAServiceAccount { .. } => "NotAServiceAccount",
            Self::UnknownConditionKey { .. } => "UnknownConditionKey",
            Self::NotWithCustom { .. } => "NotWithCustom",
            Self::BadSelectorLabel { .. } => "BadSelectorLabel",
            Self::NotAJwks { .. } => "NotAJwks",
        }
    }
}

/// Istio refuses selector labels with an empty key or a `*` in key or value.
pub(crate) fn check_selector(selector: Option<&WorkloadSelector>, errors: &mut Vec<PolicyError>) {
    for (key, value) in selector.iter().flat_map(|s| &s.match_labels) {
        if key.is_empty() || key.contains('*') || value.contains('*') {
            errors.push(PolicyError::BadSelectorLabel {
                field: "spec.selector.matchLabels".to_owned(),
                label: format!("{key}={value}"),
            });
        }
    }
}

/// Whether `text` is an IP address or a CIDR range, as Istio accepts them.
pub(crate) fn is_ip_or_cidr(text: &str) -> bool {
    match text.split_once('/') {
        None => text.parse::<std::net::IpAddr>().is_ok(),
        Some((addr, bits)) => match (addr.parse::<std::net::IpAddr>(), bits.parse::<u8>()) {
            (Ok(std::net::IpAddr::V4(_)), Ok(bits)) => bits <= 32,
            (Ok(std::net::IpAddr::V6(_)), Ok(bits)) => bits <= 128,
            _ => false,
        },
    }
}

/// The CRDs of this group at version `v1` ([`crate::crd`] adds `v1beta1`).
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        PeerAuthentication::crd(),
        AuthorizationPolicy::crd(),
        RequestAuthentication::crd(),
    ]
}

/// Helpers shared by the tests of the three kinds.
#[cfg(test)]
pub(crate) mod testing {
    use kube::core::cel::ValidationErrors;
    use serde::Serialize;
    use serde::de::DeserializeOwned;

    /// The `security.istio.io` documents of the reference guide Istio users
    /// come from (`shared/reference/000_7af9a1dd72f122f9.txt`), as written there.
    pub const REFERENCE_DOCS: &str = r#"
# peer-authentication-strict.yaml
# Mesh-wide STRICT mTLS — refuses any plaintext traffic
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: istio-system    # Mesh-wide when in root namespace
spec:
  mtls:
    mode: STRICT
---
# Namespace-level PERMISSIVE allows mTLS-aware and plaintext during migration
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: legacy-permissive
  namespace: legacy-system
spec:
  mtls:
    mode: PERMISSIVE
---
# authz-payments-strict.yaml
# Default deny everything in the payments namespace
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-all
  namespace: payments
spec:
  {}    # Empty spec = deny all
---
# Allow only the orders SA to call POST /charge
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: allow-orders-to-charge
  namespace: payments
spec:
  selector:
    matchLabels:
      app: payments-api
  action: ALLOW
  rules:
    - from:
        - source:
            principals:
              - "cluster.local/ns/orders/sa/orders-svc"
      to:
        - operation:
            methods: ["POST"]
            paths: ["/v1/charge"]
      when:
        - key: request.headers[x-tenant]
          values: ["acme", "globex"]
---
# Allow ingress gateway to call read-only endpoints with a valid JWT
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata:
  name: jwt-auth
  namespace: payments
spec:
  selector:
    matchLabels:
      app: payments-api
  jwtRules:
    - issuer: "https://auth.corp.com"
      jwksUri: "https://auth.corp.com/.well-known/jwks.json"
      audiences: ["payments-api"]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: allow-jwt-readonly
  namespace: payments
spec:
  selector:
    matchLabels:
      app: payments-api
  action: ALLOW
  rules:
    - from:
        - source:
            requestPrincipals: ["https://auth.corp.com/*"]
      to:
        - operation:
            methods: ["GET"]
      when:
        - key: request.auth.claims[scope]
          values: ["payments:read"]
"#;

    /// Every document of `REFERENCE_DOCS` of the given kind, as written.
    pub fn reference_docs(kind: &str) -> Vec<String> {
        REFERENCE_DOCS
            .split("\n---\n")
            .filter(|doc| doc.contains(&format!("\nkind: {kind}\n")))
            .map(str::to_owned)
            .collect()
    }

    /// Parses `yaml` as `T` and checks that serializing it gives back exactly
    /// the JSON of the YAML: nothing lost, nothing added.
    pub fn round_trip<T: DeserializeOwned + Serialize>(yaml: &str) -> T {
        let typed: T = serde_yaml_ng::from_str(yaml)
            .unwrap_or_else(|e| panic!("document does not parse: {e}\n{yaml}"));
        let want: serde_json::Value = serde_yaml_ng::from_str(yaml).expect("valid YAML");
        let got = serde_json::to_value(&typed).expect("serializes");
        assert_eq!(got, want, "round trip changed the document:\n{yaml}");
        typed
    }

    /// The (field path, message) pairs of a CEL validation result.
    pub fn failures(result: Result<(), ValidationErrors>) -> Vec<(String, String)> {
        match result {
            Ok(()) => Vec::new(),
            Err(errors) => errors
                .as_slice()
                .iter()
                .map(|e| (e.field_path.clone(), e.message.clone()))
                .collect(),
        }
    }

    /// Asserts the result is exactly one failure at `field` whose message
    /// contains `message`.
    pub fn assert_rejected(result: Result<(), ValidationErrors>, field: &str, message: &str) {
        let failures = failures(result);
        assert!(
            failures.len() == 1 && failures[0].0 == field && failures[0].1.contains(message),
            "want one failure at {field} containing {message:?}, got {failures:?}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crds_are_the_three_kinds_at_v1() {
        let names: Vec<_> = crds()
            .iter()
            .map(|crd| {
                (
                    crd.metadata.name.clone().unwrap_or_default(),
                    crd.spec.versions[0].name.clone(),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                (
                    "peerauthentications.security.istio.io".to_owned(),
                    "v1".to_owned()
                ),
                (
                    "authorizationpolicies.security.istio.io".to_owned(),
                    "v1".to_owned()
                ),
                (
                    "requestauthentications.security.istio.io".to_owned(),
                    "v1".to_owned()
                ),
            ]
        );
        for crd in crds() {
            assert_eq!(crd.spec.scope, "Namespaced");
        }
    }
}
