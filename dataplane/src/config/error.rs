//! Why a resource set cannot be used. Messages name the resource type,
//! the resource and the field path: they are sent back to weftd as the
//! NACK's `error_detail` and shown by `/config_dump`.

/// One error enum for configuration building and loading.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{kind} {name:?}: {field}: {reason}")]
    Invalid {
        kind: &'static str,
        name: String,
        field: String,
        reason: String,
    },
    #[error("{kind} {name:?}: the resource does not decode as {kind}: {source}")]
    Decode {
        kind: &'static str,
        name: String,
        source: prost::DecodeError,
    },
    #[error("resource {name:?} has unsupported type {type_url}")]
    UnsupportedType { type_url: String, name: String },
    #[error("bootstrap {path}: {reason}")]
    Bootstrap { path: String, reason: String },
}

impl ConfigError {
    /// Stable short label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Invalid { .. } => "invalid_field",
            Self::Decode { .. } => "undecodable",
            Self::UnsupportedType { .. } => "unsupported_type",
            Self::Bootstrap { .. } => "bootstrap",
        }
    }
}

/// The resource being compiled, to name it in errors.
#[derive(Clone, Debug)]
pub(crate) struct Ctx<'a> {
    pub kind: &'static str,
    pub name: &'a str,
}

impl Ctx<'_> {
    pub fn err(&self, field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            kind: self.kind,
            name: self.name.to_owned(),
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn decode<M: prost::Message + Default>(&self, bytes: &[u8]) -> Result<M, ConfigError> {
        M::decode(bytes).map_err(|source| ConfigError::Decode {
            kind: self.kind,
            name: self.name.to_owned(),
            source,
        })
    }

    /// Decodes an embedded `Any` at `field` that must be of type `M`.
    pub fn decode_any<M: prost::Message + prost::Name + Default>(
        &self,
        field: &str,
        any: &super::Any,
    ) -> Result<M, ConfigError> {
        if any.type_url != M::type_url() {
            return Err(self.err(
                field,
                format!("expected {}, got {}", M::type_url(), any.type_url),
            ));
        }
        M::decode(any.value.as_slice())
            .map_err(|e| self.err(field, format!("does not decode as {}: {e}", M::full_name())))
    }
}
