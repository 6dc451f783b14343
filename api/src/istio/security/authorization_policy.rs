//! `AuthorizationPolicy`: which requests a workload allows, denies, audits or
//! hands to an external authorizer.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::target_ref::PolicyTargetReference;
use super::{PolicyError, check_selector, is_ip_or_cidr};
use crate::istio::common::{IstioStatus, WorkloadSelector};

/// Access control for the workloads in scope.
///
/// Evaluation per request: matching `CUSTOM` policies first (the external
/// authorizer may deny), then any matching `DENY` policy denies, then if no
/// `ALLOW` policy applies to the workload the request is allowed, otherwise it
/// is allowed only when some `ALLOW` policy matches. `AUDIT` policies only mark
/// requests for auditing.
///
/// An empty spec (`spec: {}`) is an `ALLOW` policy with no rules: it matches
/// nothing, so it denies every request to the workloads in scope (deny all).
/// `rules: [{}]` instead matches, and so allows, every request.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "security.istio.io",
    version = "v1",
    kind = "AuthorizationPolicy",
    plural = "authorizationpolicies",
    namespaced,
    status = "IstioStatus",
    shortname = "ap",
    category = "istio-io",
    category = "security-istio-io",
    cel,
    derive = "Default",
    derive = "PartialEq",
    printcolumn(
        name = "Action",
        type_ = "string",
        description = "The action taken on matching requests.",
        json_path = ".spec.action"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        description = "When the object was created.",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "(has(self.selector) ? 1 : 0) + (has(self.targetRef) ? 1 : 0) + (has(self.targetRefs) ? 1 : 0) <= 1",
        "message": "at most one of selector, targetRef and targetRefs may be set"
    },
    {
        "rule": "!has(self.provider) || (has(self.action) && self.action == 'CUSTOM')",
        "message": "provider may only be set when action is CUSTOM",
        "fieldPath": ".provider"
    },
    {
        "rule": "!has(self.action) || self.action != 'CUSTOM' || (has(self.provider) && has(self.provider.name) && size(self.provider.name) > 0)",
        "message": "provider.name is required when action is CUSTOM",
        "fieldPath": ".provider"
    },
    {
        "rule": "!has(self.action) || !(self.action in ['DENY', 'CUSTOM']) || (has(self.rules) && size(self.rules) > 0)",
        "message": "rules are required when action is DENY or CUSTOM (without rules the policy never triggers); add an empty rule {} to match every request",
        "fieldPath": ".rules"
    },
    {
        "rule": "!has(self.action) || self.action != 'CUSTOM' || !has(self.rules) || self.rules.all(r, !has(r.from) || r.from.all(f, !has(f.source) || !(has(f.source.principals) || has(f.source.notPrincipals) || has(f.source.requestPrincipals) || has(f.source.notRequestPrincipals) || has(f.source.namespaces) || has(f.source.notNamespaces) || has(f.source.serviceAccounts) || has(f.source.notServiceAccounts))))",
        "message": "a CUSTOM policy cannot match on identities: its sources may only use ipBlocks and remoteIpBlocks (and their not* forms)",
        "fieldPath": ".rules"
    }
]))]
pub struct AuthorizationPolicySpec {
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

    /// The request matchers; a request matches the policy when any rule
    /// matches. No rules: the policy matches nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 512))]
    pub rules: Vec<Rule>,

    /// What to do with matching requests. Absent: `ALLOW`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,

    /// The external authorizer of a `CUSTOM` policy; only with `CUSTOM`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ExtensionProvider>,
}

/// Condition keys matched exactly, and the check their values need.
const CONDITION_KEYS: &[(&str, ValueCheck)] = &[
    ("source.ip", ValueCheck::IpOrCidr),
    ("remote.ip", ValueCheck::IpOrCidr),
    ("source.namespace", ValueCheck::Any),
    ("source.principal", ValueCheck::Any),
    ("source.serviceAccount", ValueCheck::Any),
    ("request.auth.principal", ValueCheck::Any),
    ("request.auth.audiences", ValueCheck::Any),
    ("request.auth.presenter", ValueCheck::Any),
    ("destination.ip", ValueCheck::IpOrCidr),
    ("destination.port", ValueCheck::Port),
    ("connection.sni", ValueCheck::Any),
];

/// Condition keys written `<prefix>[<name>]` (claims may nest: `[a][b]`).
const BRACKETED_CONDITION_KEYS: &[&str] = &["request.headers", "request.auth.claims"];

/// Condition keys an external authorizer (action `CUSTOM`) is not given.
const NOT_WITH_CUSTOM: &[&str] = &[
    "source.namespace",
    "source.serviceAccount",
    "source.principal",
];

#[derive(Clone, Copy, Debug)]
enum ValueCheck {
    Any,
    IpOrCidr,
    Port,
}

fn is_port(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 5
        && text.bytes().all(|b| b.is_ascii_digit())
        && text.parse::<u16>().is_ok()
}

/// The check a condition key's values need, or `None` for an unknown key.
fn condition_key_check(key: &str) -> Option<ValueCheck> {
    if let Some((_, check)) = CONDITION_KEYS.iter().find(|(k, _)| *k == key) {
        return Some(*check);
    }
    if key.starts_with("experimental.envoy.filters.") {
        return Some(ValueCheck::Any);
    }
    BRACKETED_CONDITION_KEYS.iter().find_map(|prefix| {
        let names = key
            .strip_prefix(prefix)?
            .strip_prefix('[')?
            .strip_suffix(']')?;
        names
            .split("][")
            .all(|name| !name.is_empty() && !name.contains(['[', ']']))
            .then_some(ValueCheck::Any)
    })
}

impl AuthorizationPolicySpec {
    /// Istio's checks the CRD cannot afford: IP ranges, ports, service
    /// account names, condition keys and values, empty strings, selector
    /// labels, and condition keys a `CUSTOM` policy cannot use. Returns every
    /// problem found, each naming its field as the API server would.
    pub fn validate(&self) -> Result<(), Vec<PolicyError>> {
        let mut errors = Vec::new();
        check_selector(self.selector.as_ref(), &mut errors);
        let custom = self.action == Some(Action::Custom);
        for (r, rule) in self.rules.iter().enumerate() {
            for (f, source) in rule.from.iter().enumerate() {
                let Some(source) = &source.source else {
                    continue;
                };
                let base = format!("spec.rules[{r}].from[{f}].source");
                let lists: [(&str, &Vec<String>, ValueCheck); 12] = [
                    ("principals", &source.principals, ValueCheck::Any),
                    ("notPrincipals", &source.not_principals, ValueCheck::Any),
                    (
                        "requestPrincipals",
                        &source.request_principals,
                        ValueCheck::Any,
                    ),
                    (
                        "notRequestPrincipals",
                        &source.not_request_principals,
                        ValueCheck::Any,
                    ),
                    ("namespaces", &source.namespaces, ValueCheck::Any),
                    ("notNamespaces", &source.not_namespaces, ValueCheck::Any),
                    ("serviceAccounts", &source.service_accounts, ValueCheck::Any),
                    (
                        "notServiceAccounts",
                        &source.not_service_accounts,
                        ValueCheck::Any,
                    ),
                    ("ipBlocks", &source.ip_blocks, ValueCheck::IpOrCidr),
                    ("notIpBlocks", &source.not_ip_blocks, ValueCheck::IpOrCidr),
                    (
                        "remoteIpBlocks",
                        &source.remote_ip_blocks,
                        ValueCheck::IpOrCidr,
                    ),
                    (
                        "notRemoteIpBlocks",
                        &source.not_remote_ip_blocks,
                        ValueCheck::IpOrCidr,
                    ),
                ];
                for (name, values, check) in lists {
                    check_values(&format!("{base}.{name}"), values, check, &mut errors);
                }
                for (name, values) in [
                    ("serviceAccounts", &source.service_accounts),
                    ("notServiceAccounts", &source.not_service_accounts),
                ] {
                    for (i, value) in values.iter().enumerate() {
                        let valid = value.split_once('/').is_some_and(|(ns, sa)| {
                            !ns.is_empty() && !sa.is_empty() && !sa.contains('/')
                        }) && !value.contains('*');
                        if !valid && !value.is_empty() {
                            errors.push(PolicyError::NotAServiceAccount {
                                field: format!("{base}.{name}[{i}]"),
                                value: value.clone(),
                            });
                        }
                    }
                }
            }
            for (t, to) in rule.to.iter().enumerate() {
                let Some(op) = &to.operation else { continue };
                let base = format!("spec.rules[{r}].to[{t}].operation");
                let lists: [(&str, &Vec<String>, ValueCheck); 8] = [
                    ("hosts", &op.hosts, ValueCheck::Any),
                    ("notHosts", &op.not_hosts, ValueCheck::Any),
                    ("ports", &op.ports, ValueCheck::Port),
                    ("notPorts", &op.not_ports, ValueCheck::Port),
                    ("methods", &op.methods, ValueCheck::Any),
                    ("notMethods", &op.not_methods, ValueCheck::Any),
                    ("paths", &op.paths, ValueCheck::Any),
                    ("notPaths", &op.not_paths, ValueCheck::Any),
                ];
                for (name, values, check) in lists {
                    check_values(&format!("{base}.{name}"), values, check, &mut errors);
                }
            }
            for (w, condition) in rule.when.iter().enumerate() {
                let base = format!("spec.rules[{r}].when[{w}]");
                let key = &condition.key;
                let Some(check) = condition_key_check(key) else {
                    errors.push(PolicyError::UnknownConditionKey {
                        field: format!("{base}.key"),
                        key: key.clone(),
                    });
                    continue;
                };
                if custom
                    && (NOT_WITH_CUSTOM.contains(&key.as_str()) || key.starts_with("request.auth."))
                {
                    errors.push(PolicyError::NotWithCustom {
                        field: format!("{base}.key"),
                        key: key.clone(),
                    });
                }
                check_values(
                    &format!("{base}.values"),
                    &condition.values,
                    check,
                    &mut errors,
                );
                check_values(
                    &format!("{base}.notValues"),
                    &condition.not_values,
                    check,
                    &mut errors,
                );
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// Flags empty strings, and values that fail `check`, in the list at `field`.
fn check_values(field: &str, values: &[String], check: ValueCheck, errors: &mut Vec<PolicyError>) {
    for (i, value) in values.iter().enumerate() {
        let field = format!("{field}[{i}]");
        if value.is_empty() {
            errors.push(PolicyError::EmptyValue { field });
            continue;
        }
        match check {
            ValueCheck::Any => {}
            ValueCheck::IpOrCidr if !is_ip_or_cidr(value) => {
                errors.push(PolicyError::NotAnIpOrCidr {
                    field,
                    value: value.clone(),
                });
            }
            ValueCheck::Port if !is_port(value) => {
                errors.push(PolicyError::NotAPort {
                    field,
                    value: value.clone(),
                });
            }
            ValueCheck::IpOrCidr | ValueCheck::Port => {}
        }
    }
}

/// What a policy does with the requests its rules match.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Action {
    /// Allow matching requests; once any `ALLOW` policy applies to a
    /// workload, requests no `ALLOW` policy matches are denied.
    #[default]
    #[serde(rename = "ALLOW")]
    Allow,
    /// Deny matching requests.
    #[serde(rename = "DENY")]
    Deny,
    /// Mark matching requests for auditing; does not change the decision.
    #[serde(rename = "AUDIT")]
    Audit,
    /// Ask the external authorizer named by `provider` about matching requests.
    #[serde(rename = "CUSTOM")]
    Custom,
}

/// The external authorizer a `CUSTOM` policy delegates to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExtensionProvider {
    /// Name of an extension provider declared in the mesh configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Matches a request when one of `from`, one of `to` and all of `when` match;
/// an absent list matches anything, so an empty rule `{}` matches every request.
///
/// String values match exactly, by prefix (`abc*`), by suffix (`*abc`), or,
/// written `*`, any non-empty value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// Request sources; any one must match. Absent: any source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1, max = 512))]
    pub from: Vec<RuleFrom>,

    /// Request operations; any one must match. Absent: any operation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1, max = 512))]
    pub to: Vec<RuleTo>,

    /// Extra conditions on request attributes; all must match. Absent: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 512))]
    pub when: Vec<Condition>,
}

/// One entry of `from`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.source)", "message": "from[].source is required"}
]))]
pub struct RuleFrom {
    /// The source the request must come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
}

/// One entry of `to`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.operation)", "message": "to[].operation is required"}
]))]
pub struct RuleTo {
    /// The operation the request must perform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<Operation>,
}

/// The identity and address a request comes from. Every set field must match
/// (fields are ANDed); within a list any entry may match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.principals) || has(self.notPrincipals) || has(self.requestPrincipals) || has(self.notRequestPrincipals) || has(self.namespaces) || has(self.notNamespaces) || has(self.serviceAccounts) || has(self.notServiceAccounts) || has(self.ipBlocks) || has(self.notIpBlocks) || has(self.remoteIpBlocks) || has(self.notRemoteIpBlocks)",
        "message": "source must set at least one field (principals, requestPrincipals, namespaces, serviceAccounts, ipBlocks, remoteIpBlocks or their not* forms)"
    },
    {
        "rule": "(has(self.serviceAccounts) || has(self.notServiceAccounts)) ? (!has(self.principals) && !has(self.notPrincipals) && !has(self.namespaces) && !has(self.notNamespaces)) : true",
        "message": "source.serviceAccounts and source.notServiceAccounts cannot be combined with principals, notPrincipals, namespaces or notNamespaces"
    }
]))]
pub struct Source {
    /// Peer identities from the client certificate, as
    /// `<trust-domain>/ns/<namespace>/sa/<service-account>`; needs mTLS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<String>,

    /// Peer identities that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_principals: Vec<String>,

    /// Request identities from a validated JWT, as `<iss>/<sub>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_principals: Vec<String>,

    /// Request identities that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_request_principals: Vec<String>,

    /// Namespaces of the peer, from its certificate; needs mTLS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,

    /// Peer namespaces that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_namespaces: Vec<String>,

    /// Peer service accounts as `<namespace>/<name>`, no wildcards; needs
    /// mTLS. Not combinable with `principals` or `namespaces`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(max = 320)))]
    pub service_accounts: Vec<String>,

    /// Peer service accounts that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(max = 320)))]
    pub not_service_accounts: Vec<String>,

    /// Source IPs or CIDR ranges of the connection's IP packets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_blocks: Vec<String>,

    /// Source IPs or CIDR ranges that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ip_blocks: Vec<String>,

    /// Original client IPs or CIDR ranges, from `X-Forwarded-For` or the
    /// PROXY protocol (needs the gateway's trusted-proxy count configured).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remote_ip_blocks: Vec<String>,

    /// Original client IPs or CIDR ranges that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_remote_ip_blocks: Vec<String>,
}

/// What a request does. Every set field must match (fields are ANDed);
/// within a list any entry may match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.hosts) || has(self.notHosts) || has(self.ports) || has(self.notPorts) || has(self.methods) || has(self.notMethods) || has(self.paths) || has(self.notPaths)",
        "message": "operation must set at least one field (hosts, ports, methods, paths or their not* forms)"
    }
]))]
pub struct Operation {
    /// HTTP hosts (`Host`/`:authority`), matched case-insensitively; HTTP only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,

    /// HTTP hosts that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_hosts: Vec<String>,

    /// Destination ports of the connection, written as strings (`"8080"`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = r"^[0-9]{1,5}$")))]
    pub ports: Vec<String>,

    /// Destination ports that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = r"^[0-9]{1,5}$")))]
    pub not_ports: Vec<String>,

    /// HTTP methods (always `POST` for gRPC); HTTP only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,

    /// HTTP methods that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_methods: Vec<String>,

    /// Normalized request paths (`/package.Service/Method` for gRPC); HTTP only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,

    /// Request paths that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_paths: Vec<String>,
}

/// A condition on one request attribute, e.g. `request.headers[x-tenant]`
/// or `request.auth.claims[iss]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "(has(self.values) && size(self.values) > 0) || (has(self.notValues) && size(self.notValues) > 0)",
        "message": "when[] needs values or notValues for its key"
    }
]))]
pub struct Condition {
    /// Name of the attribute (see Istio's list of authorization conditions).
    #[schemars(length(min = 1))]
    pub key: String,

    /// Accepted values of the attribute; any may match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,

    /// Values of the attribute that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_values: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::istio::security::testing::{assert_rejected, failures, reference_docs, round_trip};

    const FULL: &str =
        include_str!("../../../../config/samples/istio/security/authorizationpolicy-full.yaml");

    fn ap(yaml: &str) -> AuthorizationPolicy {
        round_trip(yaml)
    }

    /// A minimal valid policy with `spec` replaced by `spec_yaml` (indented
    /// two spaces).
    fn with_spec(spec_yaml: &str) -> AuthorizationPolicy {
        ap(&format!(
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: t\n  namespace: n\nspec:\n{spec_yaml}"
        ))
    }

    #[test]
    fn reference_documents_parse_and_round_trip() {
        let docs = reference_docs("AuthorizationPolicy");
        assert_eq!(docs.len(), 3);
        for doc in &docs {
            assert_eq!(ap(doc).validate_cel(), Ok(()), "{doc}");
        }
        let charge = ap(&docs[1]);
        assert_eq!(charge.spec.action, Some(Action::Allow));
        assert_eq!(
            charge.spec.rules[0].when[0].key,
            "request.headers[x-tenant]"
        );
    }

    #[test]
    fn empty_spec_is_deny_all_and_stays_empty() {
        let docs = reference_docs("AuthorizationPolicy");
        let deny_all = ap(&docs[0]);
        assert_eq!(deny_all.spec, AuthorizationPolicySpec::default());
        assert!(deny_all.spec.rules.is_empty() && deny_all.spec.action.is_none());
        let json = serde_json::to_value(&deny_all).expect("serializes");
        assert_eq!(json["spec"], serde_json::json!({}));
    }

    #[test]
    fn full_sample_round_trips_and_passes_validation() {
        let obj = ap(FULL);
        let source = obj.spec.rules[0].from[0].source.as_ref().expect("source");
        assert_eq!(source.not_remote_ip_blocks, ["203.0.113.9"]);
        let operation = obj.spec.rules[0].to[0]
            .operation
            .as_ref()
            .expect("operation");
        assert_eq!(operation.not_ports, ["9090"]);
        assert_eq!(obj.spec.rules[1], Rule::default());
        assert_eq!(obj.validate_cel(), Ok(()));
    }

    #[test]
    fn target_refs_round_trip() {
        let single = with_spec(
            "  targetRef:\n    group: gateway.networking.k8s.io\n    kind: Gateway\n    name: gw\n  rules:\n  - {}\n",
        );
        assert_eq!(
            single.spec.target_ref.as_ref().map(|t| t.canonical_group()),
            Some("gateway.networking.k8s.io")
        );
        assert_eq!(single.validate_cel(), Ok(()));
        let many = with_spec(
            "  targetRefs:\n  - kind: Service\n    name: api\n  - group: networking.istio.io\n    kind: ServiceEntry\n    name: ext\n  - group: gateway.networking.k8s.io\n    kind: GatewayClass\n    name: istio\n    namespace: \"\"\n",
        );
        assert_eq!(many.spec.target_refs.len(), 3);
        assert_eq!(many.validate_cel(), Ok(()));
    }

    #[test]
    fn at_most_one_of_selector_target_ref_target_refs() {
        let refs = "  targetRefs:\n  - kind: Service\n    name: api\n";
        let selector = "  selector:\n    matchLabels:\n      app: api\n";
        let target_ref = "  targetRef:\n    kind: Service\n    name: api\n";
        for spec in [
            format!("{selector}{refs}"),
            format!("{selector}{target_ref}"),
            format!("{target_ref}{refs}"),
        ] {
            assert_rejected(
                with_spec(&spec).validate_cel(),
                "spec",
                "at most one of selector, targetRef and targetRefs may be set",
            );
        }
    }

    #[test]
    fn target_refs_must_be_supported_kinds_in_the_same_namespace() {
        assert_rejected(
            with_spec("  targetRef:\n    kind: Deployment\n    name: api\n").validate_cel(),
            "spec.targetRef",
            "targetRef must name a core Service",
        );
        assert_rejected(
            with_spec("  targetRefs:\n  - group: gateway.networking.k8s.io\n    kind: Gateway\n    name: gw\n    namespace: other\n")
                .validate_cel(),
            "spec.targetRefs[0].namespace",
            "cross-namespace references are not supported",
        );
    }

    #[test]
    fn provider_goes_with_custom_only() {
        let custom = "  action: CUSTOM\n  provider:\n    name: ext-authz\n  rules:\n  - to:\n    - operation:\n        paths: [\"/admin/*\"]\n";
        assert_eq!(with_spec(custom).validate_cel(), Ok(()));
        assert_rejected(
            with_spec("  action: DENY\n  provider:\n    name: ext-authz\n  rules:\n  - {}\n")
                .validate_cel(),
            "spec.provider",
            "provider may only be set when action is CUSTOM",
        );
        assert_rejected(
            with_spec("  provider:\n    name: ext-authz\n").validate_cel(),
            "spec.provider",
            "provider may only be set when action is CUSTOM",
        );
        assert_rejected(
            with_spec("  action: CUSTOM\n  rules:\n  - {}\n").validate_cel(),
            "spec.provider",
            "provider.name is required when action is CUSTOM",
        );
        assert_rejected(
            with_spec("  action: CUSTOM\n  provider: {}\n  rules:\n  - {}\n").validate_cel(),
            "spec.provider",
            "provider.name is required when action is CUSTOM",
        );
    }

    #[test]
    fn custom_policies_match_on_addresses_not_identities() {
        let custom = "  action: CUSTOM\n  provider:\n    name: ext-authz\n  rules:\n  - from:\n    - source:\n        ipBlocks: [\"10.0.0.0/8\"]\n        notRemoteIpBlocks: [\"203.0.113.0/24\"]\n";
        assert_eq!(with_spec(custom).validate_cel(), Ok(()));
        for field in [
            "principals",
            "notRequestPrincipals",
            "namespaces",
            "serviceAccounts",
        ] {
            let spec = format!(
                "  action: CUSTOM\n  provider:\n    name: ext-authz\n  rules:\n  - {{}}\n  - from:\n    - source:\n        ipBlocks: [\"10.0.0.0/8\"]\n    - source:\n        {field}: [\"a/b\"]\n"
            );
            assert_rejected(
                with_spec(&spec).validate_cel(),
                "spec.rules",
                "a CUSTOM policy cannot match on identities",
            );
        }
        let allow = "  rules:\n  - from:\n    - source:\n        principals: [\"a\"]\n";
        assert_eq!(with_spec(allow).validate_cel(), Ok(()));
    }

    #[test]
    fn deny_and_custom_policies_need_rules() {
        assert_eq!(
            with_spec("  action: DENY\n  rules:\n  - {}\n").validate_cel(),
            Ok(())
        );
        assert_eq!(with_spec("  action: ALLOW\n").validate_cel(), Ok(()));
        assert_eq!(with_spec("  action: AUDIT\n").validate_cel(), Ok(()));
        assert_rejected(
            with_spec("  action: DENY\n").validate_cel(),
            "spec.rules",
            "rules are required when action is DENY or CUSTOM",
        );
        let no_rules_custom =
            failures(with_spec("  action: CUSTOM\n  provider:\n    name: x\n").validate_cel());
        assert_eq!(no_rules_custom.len(), 1, "{no_rules_custom:?}");
        assert_eq!(no_rules_custom[0].0, "spec.rules");
    }

    #[test]
    fn sources_and_operations_must_say_something() {
        assert_rejected(
            with_spec("  rules:\n  - from:\n    - {}\n").validate_cel(),
            "spec.rules[0].from[0]",
            "from[].source is required",
        );
        assert_rejected(
            with_spec("  rules:\n  - from:\n    - source: {}\n").validate_cel(),
            "spec.rules[0].from[0].source",
            "source must set at least one field",
        );
        assert_rejected(
            with_spec("  rules:\n  - to:\n    - {}\n").validate_cel(),
            "spec.rules[0].to[0]",
            "to[].operation is required",
        );
        assert_rejected(
            with_spec("  rules:\n  - to:\n    - operation: {}\n").validate_cel(),
            "spec.rules[0].to[0].operation",
            "operation must set at least one field",
        );
    }

    #[test]
    fn service_accounts_exclude_principals_and_namespaces() {
        assert_eq!(
            with_spec("  rules:\n  - from:\n    - source:\n        serviceAccounts: [\"ns/sa\"]\n        ipBlocks: [\"10.0.0.0/8\"]\n")
                .validate_cel(),
            Ok(())
        );
        for other in ["principals", "notPrincipals", "namespaces", "notNamespaces"] {
            let spec = format!(
                "  rules:\n  - from:\n    - source:\n        notServiceAccounts: [\"ns/sa\"]\n        {other}: [\"x\"]\n"
            );
            assert_rejected(
                with_spec(&spec).validate_cel(),
                "spec.rules[0].from[0].source",
                "cannot be combined with principals",
            );
        }
    }

    #[test]
    fn conditions_need_values_or_not_values() {
        assert_eq!(
            with_spec(
                "  rules:\n  - when:\n    - key: source.ip\n      notValues: [\"10.0.0.1\"]\n"
            )
            .validate_cel(),
            Ok(())
        );
        assert_rejected(
            with_spec("  rules:\n  - when:\n    - key: request.headers[x-a]\n").validate_cel(),
            "spec.rules[0].when[0]",
            "when[] needs values or notValues",
        );
        let mut explicit_empty =
            with_spec("  rules:\n  - when:\n    - key: k\n      values: [\"v\"]\n");
        explicit_empty.spec.rules[0].when[0].values.clear();
        assert_rejected(
            explicit_empty.validate_cel(),
            "spec.rules[0].when[0]",
            "when[] needs values or notValues",
        );
        assert!(
            serde_yaml_ng::from_str::<Condition>("values: [\"v\"]\n").is_err(),
            "key is required"
        );
    }

    #[test]
    fn validate_accepts_the_samples() {
        assert_eq!(ap(FULL).spec.validate(), Ok(()));
        for doc in reference_docs("AuthorizationPolicy") {
            assert_eq!(ap(&doc).spec.validate(), Ok(()), "{doc}");
        }
        let keys = [
            "request.headers[x-user]",
            "request.auth.claims[groups]",
            "request.auth.claims[nested][key]",
            "source.namespace",
            "request.auth.audiences",
            "connection.sni",
            "experimental.envoy.filters.network.mysql_proxy[db.table]",
        ];
        for key in keys {
            let spec = format!("  rules:\n  - when:\n    - key: {key}\n      values: [\"v\"]\n");
            assert_eq!(with_spec(&spec).spec.validate(), Ok(()), "{key}");
        }
    }

    #[test]
    fn validate_reports_what_the_crd_cannot_check() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "  rules:\n  - from:\n    - source:\n        ipBlocks: [\"10.0.0.0/8\", \"10.0.0.300\"]\n",
                "spec.rules[0].from[0].source.ipBlocks[1]",
                "NotAnIpOrCidr",
            ),
            (
                "  rules:\n  - from:\n    - source:\n        notRemoteIpBlocks: [\"10.0.0.0/33\"]\n",
                "spec.rules[0].from[0].source.notRemoteIpBlocks[0]",
                "NotAnIpOrCidr",
            ),
            (
                "  rules:\n  - from:\n    - source:\n        principals: [\"\"]\n",
                "spec.rules[0].from[0].source.principals[0]",
                "EmptyValue",
            ),
            (
                "  rules:\n  - from:\n    - source:\n        serviceAccounts: [\"orders-svc\"]\n",
                "spec.rules[0].from[0].source.serviceAccounts[0]",
                "NotAServiceAccount",
            ),
            (
                "  rules:\n  - from:\n    - source:\n        notServiceAccounts: [\"orders/*\"]\n",
                "spec.rules[0].from[0].source.notServiceAccounts[0]",
                "NotAServiceAccount",
            ),
            (
                "  rules:\n  - to:\n    - operation:\n        ports: [\"70000\"]\n",
                "spec.rules[0].to[0].operation.ports[0]",
                "NotAPort",
            ),
            (
                "  rules:\n  - when:\n    - key: request.header[x-user]\n      values: [\"a\"]\n",
                "spec.rules[0].when[0].key",
                "UnknownConditionKey",
            ),
            (
                "  rules:\n  - when:\n    - key: request.headers[]\n      values: [\"a\"]\n",
                "spec.rules[0].when[0].key",
                "UnknownConditionKey",
            ),
            (
                "  rules:\n  - when:\n    - key: source.ip\n      notValues: [\"somewhere\"]\n",
                "spec.rules[0].when[0].notValues[0]",
                "NotAnIpOrCidr",
            ),
            (
                "  rules:\n  - when:\n    - key: destination.port\n      values: [\"http\"]\n",
                "spec.rules[0].when[0].values[0]",
                "NotAPort",
            ),
            (
                "  action: CUSTOM\n  provider:\n    name: ext\n  rules:\n  - when:\n    - key: request.auth.claims[iss]\n      values: [\"a\"]\n",
                "spec.rules[0].when[0].key",
                "NotWithCustom",
            ),
            (
                "  selector:\n    matchLabels:\n      app: \"web-*\"\n",
                "spec.selector.matchLabels",
                "BadSelectorLabel",
            ),
        ];
        for (spec, field, label) in cases {
            let errors = with_spec(spec).spec.validate().expect_err(spec);
            assert_eq!(errors.len(), 1, "{spec}: {errors:?}");
            assert_eq!(errors[0].label(), *label, "{spec}");
            assert!(
                errors[0].to_string().starts_with(&format!("{field}: ")),
                "{spec}: {}",
                errors[0]
            );
        }
    }

    #[test]
    fn actions_use_istio_spellings() {
        for (action, text) in [
            (Action::Allow, "ALLOW"),
            (Action::Deny, "DENY"),
            (Action::Audit, "AUDIT"),
            (Action::Custom, "CUSTOM"),
        ] {
            assert_eq!(serde_json::to_value(action).expect("serializes"), text);
        }
    }

    #[test]
    fn crd_has_istio_names_and_columns() {
        use kube::CustomResourceExt;
        let crd = AuthorizationPolicy::crd();
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("authorizationpolicies.security.istio.io")
        );
        assert_eq!(crd.spec.names.short_names, Some(vec!["ap".to_owned()]));
        let columns: Vec<_> = crd.spec.versions[0]
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| (c.name.as_str(), c.json_path.as_str()))
            .collect();
        assert_eq!(
            columns,
            [
                ("Action", ".spec.action"),
                ("Age", ".metadata.creationTimestamp")
            ]
        );
    }
}
