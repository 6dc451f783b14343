//! Validation of Istio networking and security objects, the pure core of
//! the validating webhook: the CRD schema and CEL rules
//! ([`weft_api::validate::Schemas`]), the security kinds' own `validate()`,
//! and what neither can express ([`rules`]): RE2 regex syntax, header
//! names, duplicate or conflicting definitions inside one object and
//! malformed label selectors. Each finding names its field.

pub mod rules;
pub mod syntax;

use serde::de::DeserializeOwned;
use serde_json::Value;
use weft_api::istio::security::{
    AuthorizationPolicySpec, PeerAuthenticationSpec, PolicyError, RequestAuthenticationSpec,
};
use weft_api::validate::{Schemas, ValidateError, Violation};

/// Why an object could not be checked at all.
#[derive(Debug, thiserror::Error)]
pub enum ValidationError {
    #[error("{0}")]
    Schema(#[from] ValidateError),
}

impl ValidationError {
    /// A stable short label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Schema(ValidateError::NoKind) => "NoKind",
            Self::Schema(ValidateError::UnknownKind { .. }) => "UnknownKind",
            Self::Schema(ValidateError::NoSchema(_)) => "NoSchema",
        }
    }
}

/// Every problem with `object`; empty when it is valid.
pub fn validate(schemas: &Schemas, object: &Value) -> Result<Vec<Violation>, ValidationError> {
    let mut violations = schemas.validate(object)?;
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let spec = object.get("spec");
    // Typed checks need an object of the right shape: only after the schema passed.
    if violations.is_empty() {
        violations.extend(match kind {
            "AuthorizationPolicy" => policy::<AuthorizationPolicySpec>(spec, |s| s.validate()),
            "PeerAuthentication" => policy::<PeerAuthenticationSpec>(spec, |s| s.validate()),
            "RequestAuthentication" => policy::<RequestAuthenticationSpec>(spec, |s| s.validate()),
            _ => Vec::new(),
        });
    }
    violations.extend(rules::check(kind, spec));
    Ok(violations)
}

fn policy<T: DeserializeOwned + Default>(
    spec: Option<&Value>,
    check: impl Fn(&T) -> Result<(), Vec<PolicyError>>,
) -> Vec<Violation> {
    let parsed = match spec {
        None => Ok(T::default()),
        Some(spec) => T::deserialize(spec),
    };
    match parsed {
        Err(e) => vec![Violation {
            field: "spec".to_owned(),
            message: format!("cannot be read: {e}"),
        }],
        Ok(spec) => check(&spec)
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(policy_violation)
            .collect(),
    }
}

fn policy_violation(error: PolicyError) -> Violation {
    let field = match &error {
        PolicyError::EmptyValue { field }
        | PolicyError::NotAnIpOrCidr { field, .. }
        | PolicyError::NotAPort { field, .. }
        | PolicyError::NotAServiceAccount { field, .. }
        | PolicyError::UnknownConditionKey { field, .. }
        | PolicyError::NotWithCustom { field, .. }
        | PolicyError::BadSelectorLabel { field, .. }
        | PolicyError::NotAJwks { field, .. } => field.clone(),
    };
    // PolicyError's message starts with "<field>: "; keep the reason only.
    let message = error.to_string();
    let message = message
        .strip_prefix(&format!("{field}: "))
        .unwrap_or(&message)
        .to_owned();
    Violation { field, message }
}

/// One line per violation, for the AdmissionResponse's message.
pub fn describe(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests;
