//! `RequestAuthentication`: which JSON Web Tokens a workload accepts and how
//! it finds and checks them.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::target_ref::PolicyTargetReference;
use super::{PolicyError, check_selector};
use crate::istio::common::{Duration, IstioStatus, WorkloadSelector};

/// The JWTs the workloads in scope validate. A request carrying an invalid
/// token is rejected; a request carrying none is let through without a
/// request identity, so pair this with an `AuthorizationPolicy` (e.g. on
/// `requestPrincipals`) to require a token.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "security.istio.io",
    version = "v1",
    kind = "RequestAuthentication",
    namespaced,
    status = "IstioStatus",
    shortname = "ra",
    category = "istio-io",
    category = "security-istio-io",
    cel,
    derive = "Default",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "(has(self.selector) ? 1 : 0) + (has(self.targetRef) ? 1 : 0) + (has(self.targetRefs) ? 1 : 0) <= 1",
        "message": "at most one of selector, targetRef and targetRefs may be set"
    }
]))]
pub struct RequestAuthenticationSpec {
    /// The workloads (pods) the policy applies to, in the policy's namespace
    /// (every namespace, in the root namespace). Absent, together with
    /// `targetRef(s)`: every workload in scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,

    /// A single resource (e.g. a Gateway) the policy attaches to. Superseded
    /// by `targetRefs`; at most one of `selector`, `targetRef`, `targetRefs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<PolicyTargetReference>,

    /// The resources (Services, ServiceEntries, Gateways, GatewayClasses) the
    /// policy attaches to, instead of a `selector`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub target_refs: Vec<PolicyTargetReference>,

    /// The accepted token issuers. Each rule applies to tokens found at its
    /// locations; when several tokens are present the identity taken is
    /// unspecified.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4096))]
    pub jwt_rules: Vec<JwtRule>,
}

impl RequestAuthenticationSpec {
    /// Istio's checks the CRD does not make: selector labels may not be
    /// empty or contain `*`, and an inline `jwks` must be a JSON Web Key Set
    /// (a JSON object with a `keys` list).
    pub fn validate(&self) -> Result<(), Vec<PolicyError>> {
        let mut errors = Vec::new();
        check_selector(self.selector.as_ref(), &mut errors);
        for (i, rule) in self.jwt_rules.iter().enumerate() {
            let Some(jwks) = &rule.jwks else { continue };
            let reason = match serde_json::from_str::<serde_json::Value>(jwks) {
                Err(e) => Some(format!("invalid JSON: {e}")),
                Ok(set) if !set["keys"].is_array() => Some("no \"keys\" list".to_owned()),
                Ok(_) => None,
            };
            if let Some(reason) = reason {
                errors.push(PolicyError::NotAJwks {
                    field: format!("spec.jwtRules[{i}].jwks"),
                    reason,
                });
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// How to find and validate the tokens of one issuer.
///
/// Without `fromHeaders`, `fromParams` and `fromCookies` the token is read from
/// `Authorization: Bearer <token>`, then from the `access_token` query parameter.
// The rules name `jwks_uri` as the API server does (it escapes only `__`, `.`,
// `-` and `/` in CEL names). kube-cel 0.8 escapes a single `_` as well, so
// client-side `validate_cel` does not see `jwks_uri`: it misses a `jwks` +
// `jwks_uri` clash and refuses a rule whose only key source is `jwks_uri`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "(has(self.jwksUri) ? 1 : 0) + (has(self.jwks_uri) ? 1 : 0) + (has(self.jwks) ? 1 : 0) <= 1",
        "message": "only one of jwks and jwksUri may be set"
    },
    {
        "rule": "has(self.issuer) || has(self.jwksUri) || has(self.jwks_uri)",
        "message": "issuer is required unless jwksUri is set",
        "fieldPath": ".issuer"
    }
]))]
pub struct JwtRule {
    /// The token issuer (`iss` claim), e.g. `https://auth.example.com`;
    /// tokens from other issuers do not match this rule. Required unless
    /// `jwksUri` is set, in which case any issuer whose tokens verify against
    /// that key set matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub issuer: Option<String>,

    /// Accepted audiences (`aud` claim); any may match. Absent: the service name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(length(min = 1)))]
    pub audiences: Vec<String>,

    /// URL of the issuer's JSON Web Key Set. Absent (and no `jwks`): found
    /// through OpenID Connect discovery on the issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 2048),
        extend("x-kubernetes-validations" = [
            {
                "rule": "isURL(self) && url(self).getScheme() in ['http', 'https']",
                "message": "jwksUri must be an http:// or https:// URL"
            }
        ])
    )]
    pub jwks_uri: Option<String>,

    /// `jwksUri` under its protobuf field name, which Istio also accepts;
    /// kept as written. Use `jwksUri` in new YAML.
    #[serde(rename = "jwks_uri", default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 2048),
        extend("x-kubernetes-validations" = [
            {
                "rule": "isURL(self) && url(self).getScheme() in ['http', 'https']",
                "message": "jwks_uri must be an http:// or https:// URL"
            }
        ])
    )]
    pub jwks_uri_proto_name: Option<String>,

    /// The JSON Web Key Set itself, inline, instead of `jwksUri`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<String>,

    /// Headers that may carry the token.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_headers: Vec<JwtHeader>,

    /// Query parameters that may carry the token.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(length(min = 1)))]
    pub from_params: Vec<String>,

    /// Cookies that may carry the token.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(length(min = 1)))]
    pub from_cookies: Vec<String>,

    /// Header to send the verified payload (base64 JSON) upstream in. Absent:
    /// not sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_payload_to_header: Option<String>,

    /// Keep the token on the request forwarded upstream. Absent: `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_original_token: Option<bool>,

    /// Claims to copy into request headers once the token is verified.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output_claim_to_headers: Vec<ClaimToHeader>,

    /// Claims whose string value is a space-separated list (e.g. `scope`),
    /// to be matched per element.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1)))]
    pub space_delimited_claims: Vec<String>,

    /// How long to wait when fetching the key set from `jwksUri`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [
        {
            "rule": "duration(self) >= duration('1ms')",
            "message": "timeout must be a duration of at least 1ms"
        }
    ]))]
    pub timeout: Option<Duration>,
}

/// A header that carries the token.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JwtHeader {
    /// Header name, e.g. `x-jwt-assertion`.
    #[schemars(length(min = 1))]
    pub name: String,

    /// Text before the token to strip, e.g. `"Bearer "` (note the space); a
    /// header without it is invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// Copies one claim of a verified token into a request header.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClaimToHeader {
    /// Name of the header to set.
    #[schemars(length(min = 1), regex(pattern = r"^[-_A-Za-z0-9]+$"))]
    pub header: String,

    /// Name of the claim to copy.
    #[schemars(length(min = 1))]
    pub claim: String,
}

#[cfg(test)]
mod tests {
    use kube::CustomResourceExt;

    use super::*;
    use crate::istio::security::testing::{assert_rejected, reference_docs, round_trip};

    const FULL: &str =
        include_str!("../../../../config/samples/istio/security/requestauthentication-full.yaml");

    fn ra(yaml: &str) -> RequestAuthentication {
        round_trip(yaml)
    }

    /// A policy with one JWT rule whose fields are `rule_yaml` (indented six spaces).
    fn with_rule(rule_yaml: &str) -> RequestAuthentication {
        ra(&format!(
            "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata:\n  name: t\n  namespace: n\nspec:\n  jwtRules:\n    - issuer: https://issuer.example\n{rule_yaml}"
        ))
    }

    #[test]
    fn reference_document_parses_and_round_trips() {
        let docs = reference_docs("RequestAuthentication");
        assert_eq!(docs.len(), 1);
        let obj = ra(&docs[0]);
        assert_eq!(
            obj.spec.jwt_rules[0].issuer.as_deref(),
            Some("https://auth.corp.com")
        );
        assert_eq!(obj.spec.jwt_rules[0].audiences, ["payments-api"]);
        assert_eq!(obj.validate_cel(), Ok(()));
    }

    #[test]
    fn full_sample_round_trips_and_passes_validation() {
        let obj = ra(FULL);
        let rule = &obj.spec.jwt_rules[0];
        assert_eq!(rule.from_headers[0].prefix.as_deref(), Some("Bearer "));
        assert_eq!(rule.output_claim_to_headers[1].claim, "tenant");
        assert_eq!(
            rule.timeout.as_ref().map(|t| t.parse()),
            Some(Ok(std::time::Duration::from_secs(5)))
        );
        assert_eq!(obj.spec.jwt_rules[1].forward_original_token, Some(false));
        assert_eq!(obj.validate_cel(), Ok(()));
    }

    #[test]
    fn proto_spelling_of_jwks_uri_is_kept() {
        let obj = with_rule("      jwks_uri: https://issuer.example/keys\n");
        let rule = &obj.spec.jwt_rules[0];
        assert_eq!(
            rule.jwks_uri_proto_name.as_deref(),
            Some("https://issuer.example/keys")
        );
        assert_eq!(rule.jwks_uri, None);
        assert_eq!(obj.validate_cel(), Ok(()));
    }

    #[test]
    fn issuer_is_required_unless_jwks_uri_is_set() {
        let rule = |yaml: &str| {
            ra(&format!(
                "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata:\n  name: t\n  namespace: n\nspec:\n  jwtRules:\n    - {yaml}\n"
            ))
        };
        assert_eq!(
            rule("jwksUri: https://issuer.example/keys").validate_cel(),
            Ok(())
        );
        assert_eq!(
            rule("issuer: https://issuer.example").validate_cel(),
            Ok(())
        );
        assert_rejected(
            rule("jwks: '{\"keys\":[]}'").validate_cel(),
            "spec.jwtRules[0].issuer",
            "issuer is required unless jwksUri is set",
        );
        assert_rejected(
            rule("audiences: [\"api\"]").validate_cel(),
            "spec.jwtRules[0].issuer",
            "issuer is required unless jwksUri is set",
        );
    }

    #[test]
    fn jwks_and_jwks_uri_are_exclusive() {
        assert_eq!(
            with_rule("      jwks: '{\"keys\":[]}'\n").validate_cel(),
            Ok(())
        );
        assert_rejected(
            with_rule("      jwks: '{\"keys\":[]}'\n      jwksUri: https://issuer.example/keys\n")
                .validate_cel(),
            "spec.jwtRules[0]",
            "only one of jwks and jwksUri may be set",
        );
        // The API server names `jwks_uri` as is in CEL (it escapes only `__`,
        // `.`, `-`, `/`); kube-cel 0.8 escapes a single `_` too, so it cannot
        // see this field client-side. Check the rule text instead.
        let crd = serde_json::to_string(&RequestAuthentication::crd()).expect("serializes");
        assert!(
            crd.contains("(has(self.jwks_uri) ? 1 : 0)"),
            "the exclusivity rule counts jwks_uri"
        );
    }

    #[test]
    fn jwks_uri_must_be_http_or_https() {
        assert_eq!(
            with_rule("      jwksUri: http://keys.internal:8080/jwks\n").validate_cel(),
            Ok(())
        );
        for bad in ["ftp://issuer.example/keys", "not a url", "/relative/keys"] {
            assert_rejected(
                with_rule(&format!("      jwksUri: \"{bad}\"\n")).validate_cel(),
                "spec.jwtRules[0].jwksUri",
                "jwksUri must be an http:// or https:// URL",
            );
        }
        assert_rejected(
            with_rule("      jwks_uri: ftp://issuer.example/keys\n").validate_cel(),
            "spec.jwtRules[0].jwks_uri",
            "jwks_uri must be an http:// or https:// URL",
        );
    }

    #[test]
    fn timeout_is_at_least_a_millisecond() {
        assert_eq!(with_rule("      timeout: 1ms\n").validate_cel(), Ok(()));
        assert_eq!(with_rule("      timeout: 1m30s\n").validate_cel(), Ok(()));
        assert_rejected(
            with_rule("      timeout: 0s\n").validate_cel(),
            "spec.jwtRules[0].timeout",
            "timeout must be a duration of at least 1ms",
        );
    }

    #[test]
    fn at_most_one_of_selector_target_ref_target_refs() {
        let obj = ra(
            "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata:\n  name: t\n  namespace: n\nspec:\n  selector:\n    matchLabels:\n      app: a\n  targetRef:\n    group: gateway.networking.k8s.io\n    kind: Gateway\n    name: gw\n",
        );
        assert_rejected(
            obj.validate_cel(),
            "spec",
            "at most one of selector, targetRef and targetRefs may be set",
        );
    }

    #[test]
    fn validate_checks_inline_key_sets() {
        assert_eq!(ra(FULL).spec.validate(), Ok(()));
        for (jwks, reason) in [
            ("'{\"keys\":'", "invalid JSON"),
            ("'{\"key\":[]}'", "no \"keys\" list"),
        ] {
            let errors = with_rule(&format!("      jwks: {jwks}\n"))
                .spec
                .validate()
                .expect_err(jwks);
            assert_eq!(errors.len(), 1);
            assert_eq!(errors[0].label(), "NotAJwks");
            let text = errors[0].to_string();
            assert!(
                text.starts_with("spec.jwtRules[0].jwks: ") && text.contains(reason),
                "{text}"
            );
        }
    }

    #[test]
    fn crd_has_istio_names() {
        let crd = RequestAuthentication::crd();
        assert_eq!(crd.spec.names.short_names, Some(vec!["ra".to_owned()]));
        assert_eq!(crd.spec.versions[0].additional_printer_columns, None);
    }
}
