//! Header manipulation and header/query-parameter matching.

use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::istio::common::StringMatch;

/// Header changes applied to requests and to responses.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Headers {
    /// Changes made to the request before it is forwarded to the destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<HeaderOperations>,
    /// Changes made to the response before it is returned to the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<HeaderOperations>,
}

/// Operations on one set of headers, applied in the order remove, set, add.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderOperations {
    /// Headers to set, replacing any value already present.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    /// Headers to append to, keeping values already present.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub add: BTreeMap<String, String>,
    /// Names of headers to delete.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// How a header or query parameter is matched. Istio lets the value be an
/// empty object, `{}`, which only checks that the header is present; that is
/// `KeyMatch(None)`. Otherwise it is a [`StringMatch`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyMatch(pub Option<StringMatch>);

impl KeyMatch {
    /// A match that only requires the key to be present.
    pub fn present() -> Self {
        Self(None)
    }
}

impl From<StringMatch> for KeyMatch {
    fn from(m: StringMatch) -> Self {
        Self(Some(m))
    }
}

impl Serialize for KeyMatch {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Some(m) => m.serialize(s),
            None => serde_json::Map::new().serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for KeyMatch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        if map.is_empty() {
            return Ok(Self(None));
        }
        serde_json::from_value(serde_json::Value::Object(map))
            .map(|m| Self(Some(m)))
            .map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for KeyMatch {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "KeyMatch".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "description": "Match on the value: one of exact, prefix or regex; an empty object only checks presence.",
            "maxProperties": 1,
            "properties": {
                "exact": { "type": "string", "description": "Exact string match." },
                "prefix": { "type": "string", "description": "Prefix-based match." },
                "regex": { "type": "string", "description": "RE2 style regex-based match." },
            },
        })
    }

    fn inline_schema() -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_match_keeps_presence_and_values() {
        for text in [
            r#"{}"#,
            r#"{"exact":""}"#,
            r#"{"prefix":"Bearer "}"#,
            r#"{"regex":"^v[0-9]+$"}"#,
        ] {
            let m: KeyMatch = serde_json::from_str(text).expect("valid key match");
            assert_eq!(serde_json::to_string(&m).expect("serializes"), text);
        }
        let m: KeyMatch = serde_json::from_str("{}").expect("presence match");
        assert_eq!(m, KeyMatch::present());
        assert!(serde_json::from_str::<KeyMatch>(r#"{"suffix":"x"}"#).is_err());
    }
}
