//! Types shared by the Istio-compatible `networking.istio.io` and
//! `security.istio.io` kinds: durations written as `30s`, percentages written
//! as `{value: 0.1}`, string matches, workload and port selectors, and the
//! free-form status Istio keeps on every object.

use std::collections::BTreeMap;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// A protobuf-style duration as Istio users write it: `30s`, `1.5s`, `100ms`,
/// `1h30m`. Kept as the user's text so it round-trips unchanged; [`Duration::parse`]
/// turns it into a [`std::time::Duration`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Duration(pub String);

/// Why a duration string was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DurationError {
    #[error("duration {0:?} is empty: write a number and a unit, e.g. \"30s\" or \"250ms\"")]
    Empty(String),
    #[error("duration {0:?} has no unit after {1:?}: use one of h, m, s, ms, us, ns")]
    MissingUnit(String, String),
    #[error("duration {0:?} has unknown unit {1:?}: use one of h, m, s, ms, us, ns")]
    UnknownUnit(String, String),
    #[error("duration {0:?} has no number before its unit")]
    MissingNumber(String),
}

/// The regular expression the API server applies to every duration field.
pub const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(h|m|s|ms|us|µs|ns))+$";

impl Duration {
    /// Parses Go/protobuf duration text (`1h2m3.5s`, `100ms`).
    pub fn parse(&self) -> Result<std::time::Duration, DurationError> {
        let text = self.0.as_str();
        if text.is_empty() {
            return Err(DurationError::Empty(text.to_owned()));
        }
        let mut total = 0f64;
        let mut rest = text;
        while !rest.is_empty() {
            let num_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            if num_len == 0 {
                return Err(DurationError::MissingNumber(text.to_owned()));
            }
            let (num, after) = rest.split_at(num_len);
            let value: f64 = num
                .parse()
                .map_err(|_| DurationError::MissingNumber(text.to_owned()))?;
            let unit_len = after
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(after.len());
            let (unit, next) = after.split_at(unit_len);
            let scale = match unit {
                "h" => 3600.0,
                "m" => 60.0,
                "s" => 1.0,
                "ms" => 1e-3,
                "us" | "µs" => 1e-6,
                "ns" => 1e-9,
                "" => return Err(DurationError::MissingUnit(text.to_owned(), num.to_owned())),
                other => {
                    return Err(DurationError::UnknownUnit(
                        text.to_owned(),
                        other.to_owned(),
                    ));
                }
            };
            total += value * scale;
            rest = next;
        }
        Ok(std::time::Duration::from_secs_f64(total))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Duration {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A duration such as 30s, 250ms or 1h30m.",
            "pattern": DURATION_PATTERN,
        })
    }

    fn inline_schema() -> bool {
        true
    }
}

/// A percentage written as an object, `{value: 0.1}` meaning 0.1 %.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Percent {
    /// Percentage in the range [0.0, 100.0].
    #[schemars(range(min = 0.0, max = 100.0))]
    pub value: f64,
}

/// How a string is matched: exactly, by prefix, or by an RE2 regular expression.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum StringMatch {
    /// Exact string match.
    Exact(String),
    /// Prefix-based match.
    Prefix(String),
    /// RE2 style regex-based match.
    Regex(String),
}

// Read as a one-key object rather than through serde's enum access: YAML
// deserializers (serde_yaml_ng) only accept enums written as `!tag`, so a
// derived impl cannot read `{exact: canary}` from YAML. JSON is unaffected.
impl<'de> Deserialize<'de> for StringMatch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Fields {
            exact: Option<String>,
            prefix: Option<String>,
            regex: Option<String>,
        }
        let fields = Fields::deserialize(d)?;
        match (fields.exact, fields.prefix, fields.regex) {
            (Some(s), None, None) => Ok(Self::Exact(s)),
            (None, Some(s), None) => Ok(Self::Prefix(s)),
            (None, None, Some(s)) => Ok(Self::Regex(s)),
            _ => Err(serde::de::Error::custom(
                "a string match needs exactly one of exact, prefix or regex",
            )),
        }
    }
}

/// Selects the pods a policy applies to by their labels.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSelector {
    /// Labels a pod must carry, all of them, for the policy to apply.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
}

/// Selects a port by number.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PortSelector {
    /// Valid port number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub number: Option<u32>,
}

/// The status Istio-compatible objects carry. Istio writes validation
/// messages and conditions here; Weft keeps whatever is present.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IstioStatus(pub serde_json::Map<String, serde_json::Value>);

impl JsonSchema for IstioStatus {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "IstioStatus".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true,
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
    fn durations_parse_like_go() {
        let cases: &[(&str, std::time::Duration)] = &[
            ("30s", std::time::Duration::from_secs(30)),
            ("2s", std::time::Duration::from_secs(2)),
            ("250ms", std::time::Duration::from_millis(250)),
            ("1h30m", std::time::Duration::from_secs(5400)),
            ("1.5s", std::time::Duration::from_millis(1500)),
        ];
        for (text, want) in cases {
            assert_eq!(Duration::from(*text).parse().as_ref(), Ok(want), "{text}");
        }
    }

    #[test]
    fn bad_durations_say_what_is_wrong() {
        assert!(matches!(
            Duration::from("").parse(),
            Err(DurationError::Empty(_))
        ));
        assert!(matches!(
            Duration::from("30").parse(),
            Err(DurationError::MissingUnit(..))
        ));
        assert!(matches!(
            Duration::from("3d").parse(),
            Err(DurationError::UnknownUnit(..))
        ));
        assert!(matches!(
            Duration::from("s").parse(),
            Err(DurationError::MissingNumber(_))
        ));
    }

    #[test]
    fn string_match_is_a_one_key_object() {
        let m: StringMatch = serde_json::from_str(r#"{"exact":"canary"}"#).expect("valid match");
        assert_eq!(m, StringMatch::Exact("canary".into()));
        assert_eq!(
            serde_json::to_string(&m).expect("serializes"),
            r#"{"exact":"canary"}"#
        );
    }

    #[test]
    fn string_match_reads_from_yaml_and_needs_one_key() {
        let m: StringMatch = serde_yaml_ng::from_str("prefix: /v1/").expect("YAML match");
        assert_eq!(m, StringMatch::Prefix("/v1/".into()));
        assert!(serde_json::from_str::<StringMatch>("{}").is_err());
        assert!(serde_json::from_str::<StringMatch>(r#"{"exact":"a","regex":"b"}"#).is_err());
    }
}
