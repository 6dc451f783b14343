//! `PeerAuthentication`: whether a workload accepts plaintext, mutual TLS, or
//! both on its inbound connections.

use std::collections::BTreeMap;
use std::fmt;

use kube::CustomResource;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::{PolicyError, check_selector};
use crate::istio::common::{IstioStatus, WorkloadSelector};

/// The mutual TLS requirements of the selected workloads' inbound traffic.
///
/// Scope: a policy in the mesh root namespace without a selector applies to
/// the whole mesh, one in any other namespace without a selector to that
/// namespace, one with a selector to the matching workloads. The narrower
/// policy wins; `UNSET` inherits from the wider one.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "security.istio.io",
    version = "v1",
    kind = "PeerAuthentication",
    namespaced,
    status = "IstioStatus",
    shortname = "pa",
    category = "istio-io",
    category = "security-istio-io",
    cel,
    derive = "Default",
    derive = "PartialEq",
    printcolumn(
        name = "Mode",
        type_ = "string",
        description = "The mTLS mode of the policy.",
        json_path = ".spec.mtls.mode"
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
        "rule": "!has(self.portLevelMtls) || (has(self.selector) && has(self.selector.matchLabels) && size(self.selector.matchLabels) > 0)",
        "message": "portLevelMtls requires a selector with matchLabels: port-level settings only apply to selected workloads",
        "fieldPath": ".portLevelMtls"
    }
]))]
pub struct PeerAuthenticationSpec {
    /// The workloads (pods) the policy applies to, from the policy's namespace
    /// (or every namespace, in the root namespace). Absent: every workload in scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,

    /// The mutual TLS settings of the selected workloads. Absent: inherited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtls: Option<MutualTls>,

    /// Per-port mutual TLS settings, keyed by the workload's (container) port
    /// number, not the Service port. Requires a `selector`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[serde(deserialize_with = "deserialize_port_map")]
    #[schemars(schema_with = "port_level_mtls_schema")]
    pub port_level_mtls: BTreeMap<u32, MutualTls>,
}

impl PeerAuthenticationSpec {
    /// Istio's checks the CRD does not make: selector labels may not be
    /// empty or contain `*`.
    pub fn validate(&self) -> Result<(), Vec<PolicyError>> {
        let mut errors = Vec::new();
        check_selector(self.selector.as_ref(), &mut errors);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// Mutual TLS settings of a workload or of one of its ports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MutualTls {
    /// Whether inbound connections must, may or must not use mutual TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<MtlsMode>,
}

/// How a workload treats inbound plaintext and mutual TLS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum MtlsMode {
    /// Inherit the mode of the enclosing scope (namespace, then mesh);
    /// `PERMISSIVE` when no scope sets one.
    #[default]
    #[serde(rename = "UNSET")]
    Unset,
    /// Accept plaintext only; mutual TLS is not used.
    #[serde(rename = "DISABLE")]
    Disable,
    /// Accept both plaintext and mutual TLS (the migration setting).
    #[serde(rename = "PERMISSIVE")]
    Permissive,
    /// Accept mutual TLS only: clients must present a certificate.
    #[serde(rename = "STRICT")]
    Strict,
}

/// Schema of `portLevelMtls`: a JSON object keyed by port number (JSON keys
/// are strings), bounded so the API server can cost the key check.
fn port_level_mtls_schema(generator: &mut SchemaGenerator) -> Schema {
    let value = generator.subschema_for::<MutualTls>();
    json_schema!({
        "type": "object",
        "additionalProperties": value,
        "minProperties": 1,
        "maxProperties": 1024,
        "x-kubernetes-validations": [
            {
                "rule": "self.all(port, port.matches('^[1-9][0-9]{0,4}$') && int(port) <= 65535)",
                "message": "portLevelMtls keys must be port numbers between 1 and 65535"
            }
        ]
    })
}

/// A `portLevelMtls` key as written: a YAML integer (`8080:`) or a string
/// (`"8080":`, and every key in JSON).
#[derive(Deserialize)]
#[serde(untagged)]
enum PortKey {
    Number(u32),
    Text(String),
}

/// Reads `portLevelMtls` whichever way its keys are written. Text keys must be
/// a plain decimal number so the map serializes back to the same keys.
fn deserialize_port_map<'de, D>(deserializer: D) -> Result<BTreeMap<u32, MutualTls>, D::Error>
where
    D: Deserializer<'de>,
{
    struct PortMap;

    impl<'de> Visitor<'de> for PortMap {
        type Value = BTreeMap<u32, MutualTls>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map from port number to mTLS settings")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut ports = BTreeMap::new();
            while let Some((key, value)) = map.next_entry::<PortKey, MutualTls>()? {
                let port = match key {
                    PortKey::Number(port) => port,
                    PortKey::Text(text) => text
                        .parse::<u32>()
                        .ok()
                        .filter(|port| port.to_string() == text)
                        .ok_or_else(|| {
                            de::Error::custom(format!(
                                "portLevelMtls key {text:?} is not a port number: write e.g. 8080"
                            ))
                        })?,
                };
                ports.insert(port, value);
            }
            Ok(ports)
        }
    }

    deserializer.deserialize_map(PortMap)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::istio::security::testing::{assert_rejected, reference_docs, round_trip};

    const FULL: &str =
        include_str!("../../../../config/samples/istio/security/peerauthentication-full.yaml");

    fn pa(yaml: &str) -> PeerAuthentication {
        round_trip(yaml)
    }

    #[test]
    fn reference_documents_parse_and_round_trip() {
        let docs = reference_docs("PeerAuthentication");
        assert_eq!(docs.len(), 2);
        let modes: Vec<_> = docs
            .iter()
            .map(|doc| pa(doc).spec.mtls.and_then(|m| m.mode))
            .collect();
        assert_eq!(modes, [Some(MtlsMode::Strict), Some(MtlsMode::Permissive)]);
        for doc in &docs {
            assert_eq!(pa(doc).validate_cel(), Ok(()));
        }
    }

    #[test]
    fn full_sample_round_trips_and_passes_validation() {
        let obj = pa(FULL);
        assert_eq!(
            obj.spec.mtls.as_ref().and_then(|m| m.mode),
            Some(MtlsMode::Strict)
        );
        assert_eq!(
            obj.spec.port_level_mtls.get(&8080).and_then(|m| m.mode),
            Some(MtlsMode::Disable)
        );
        assert_eq!(obj.spec.port_level_mtls.len(), 3);
        assert_eq!(obj.validate_cel(), Ok(()));
    }

    #[test]
    fn port_keys_may_be_quoted_but_must_be_plain_numbers() {
        let quoted = r#"{"spec": {"selector": {"matchLabels": {"app": "a"}}, "portLevelMtls": {"8080": {"mode": "STRICT"}}}}"#;
        let spec: PeerAuthenticationSpec = serde_json::from_value(
            serde_json::from_str::<serde_json::Value>(quoted).expect("json")["spec"].clone(),
        )
        .expect("quoted key parses");
        assert!(spec.port_level_mtls.contains_key(&8080));
        let yaml_quoted: PeerAuthenticationSpec =
            serde_yaml_ng::from_str("portLevelMtls:\n  '9090':\n    mode: DISABLE\n")
                .expect("parses");
        assert!(yaml_quoted.port_level_mtls.contains_key(&9090));
        for bad in ["'08080'", "http", "'-1'"] {
            let yaml = format!("portLevelMtls:\n  {bad}:\n    mode: DISABLE\n");
            let err = serde_yaml_ng::from_str::<PeerAuthenticationSpec>(&yaml).expect_err(bad);
            assert!(err.to_string().contains("port"), "{bad}: {err}");
        }
    }

    #[test]
    fn port_level_mtls_requires_a_selector() {
        let valid = pa(FULL);
        assert_eq!(valid.validate_cel(), Ok(()));

        let mut no_selector = valid.clone();
        no_selector.spec.selector = None;
        assert_rejected(
            no_selector.validate_cel(),
            "spec.portLevelMtls",
            "portLevelMtls requires a selector",
        );

        let mut empty_labels = valid;
        empty_labels.spec.selector = Some(WorkloadSelector::default());
        assert_rejected(
            empty_labels.validate_cel(),
            "spec.portLevelMtls",
            "portLevelMtls requires a selector",
        );
    }

    #[test]
    fn port_keys_must_be_ports() {
        let valid = pa(FULL);
        for port in [1, 65535] {
            let mut ok = valid.clone();
            ok.spec.port_level_mtls.insert(port, MutualTls::default());
            assert_eq!(ok.validate_cel(), Ok(()), "port {port}");
        }
        for port in [0, 65536, 99999] {
            let mut bad = valid.clone();
            bad.spec.port_level_mtls.insert(port, MutualTls::default());
            assert_rejected(
                bad.validate_cel(),
                "spec.portLevelMtls",
                "portLevelMtls keys must be port numbers between 1 and 65535",
            );
        }
    }

    #[test]
    fn validate_refuses_wildcard_and_empty_selector_labels() {
        assert_eq!(pa(FULL).spec.validate(), Ok(()));
        for labels in ["'*': x", "app: '*'", "'': x"] {
            let spec: PeerAuthenticationSpec =
                serde_yaml_ng::from_str(&format!("selector:\n  matchLabels:\n    {labels}\n"))
                    .expect("parses");
            let errors = spec.validate().expect_err(labels);
            assert_eq!(
                errors.iter().map(PolicyError::label).collect::<Vec<_>>(),
                ["BadSelectorLabel"]
            );
        }
    }

    #[test]
    fn modes_use_istio_spellings() {
        for (mode, text) in [
            (MtlsMode::Unset, "UNSET"),
            (MtlsMode::Disable, "DISABLE"),
            (MtlsMode::Permissive, "PERMISSIVE"),
            (MtlsMode::Strict, "STRICT"),
        ] {
            assert_eq!(serde_json::to_value(mode).expect("serializes"), text);
        }
        assert!(serde_json::from_str::<MtlsMode>(r#""strict""#).is_err());
    }

    #[test]
    fn crd_has_istio_names_and_columns() {
        use kube::CustomResourceExt;
        let crd = PeerAuthentication::crd();
        assert_eq!(crd.spec.names.short_names, Some(vec!["pa".to_owned()]));
        let columns: Vec<_> = crd.spec.versions[0]
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| (c.name.as_str(), c.json_path.as_str()))
            .collect();
        assert_eq!(
            columns,
            [
                ("Mode", ".spec.mtls.mode"),
                ("Age", ".metadata.creationTimestamp")
            ]
        );
    }
}
