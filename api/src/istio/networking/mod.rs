//! `networking.istio.io`: VirtualService, DestinationRule, Gateway, ServiceEntry, Sidecar.
//!
//! The types follow Istio's protobuf JSON names (camelCase) and enum
//! spellings, so YAML written for Istio parses and serializes back to the same
//! JSON. A protobuf `oneof` is modelled as sibling `Option` fields plus a CEL
//! rule that allows at most one of them, which keeps the schema structural and
//! the round trip exact.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub mod connection_pool;
pub mod destination;
pub mod destination_rule;
pub mod gateway;
pub mod headers;
pub mod service_entry;
pub mod sidecar;
pub mod tls;
pub mod virtual_service;
pub mod workload_selector;

pub use destination_rule::{DestinationRule, DestinationRuleSpec};
pub use gateway::{Gateway, GatewaySpec};
pub use service_entry::{ServiceEntry, ServiceEntrySpec};
pub use sidecar::{Sidecar, SidecarSpec};
pub use virtual_service::{VirtualService, VirtualServiceSpec};

/// The CRDs of this group at version `v1` ([`crate::crd`] adds `v1beta1`).
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        VirtualService::crd(),
        DestinationRule::crd(),
        Gateway::crd(),
        ServiceEntry::crd(),
        Sidecar::crd(),
    ]
}

/// The CEL rule every duration field carries: Envoy rejects zero and
/// sub-millisecond timeouts, so Istio requires at least `1ms`.
/// `message` names the field, e.g. `"timeout must be at least 1ms"`.
pub(crate) fn min_1ms(message: &str) -> kube::core::Rule {
    kube::core::Rule::new("duration(self) >= duration('1ms')").message(message)
}

/// Most items a list may hold when a CEL rule iterates over it. The API server
/// estimates a rule's cost from the list bounds and refuses a CRD whose rules
/// could cost too much; this bound is far above what real configurations use.
pub const MAX_ITERATED_ITEMS: u32 = 256;

#[cfg(test)]
pub(crate) mod test_support {
    //! Helpers shared by the kinds' tests.

    use serde::{Serialize, de::DeserializeOwned};

    /// Parses YAML into `T`, serializes it back and asserts that the JSON is
    /// exactly what the YAML said: no field lost, none added.
    pub fn assert_round_trip<T: Serialize + DeserializeOwned>(yaml: &str) -> T {
        let typed: T = serde_yaml_ng::from_str(yaml).expect("YAML parses into the type");
        let want: serde_json::Value = serde_yaml_ng::from_str(yaml).expect("YAML parses as JSON");
        let got = serde_json::to_value(&typed).expect("type serializes");
        assert_eq!(got, want, "round trip changed the object");
        typed
    }

    /// The messages of the CEL rules an object breaks.
    pub fn cel_messages(result: Result<(), kube::core::cel::ValidationErrors>) -> Vec<String> {
        match result {
            Ok(()) => Vec::new(),
            Err(errors) => errors.iter().map(|e| e.message.clone()).collect(),
        }
    }

    /// Asserts that exactly the given rule message is reported (among possibly
    /// others) and returns all messages for further checks.
    pub fn assert_rejected(result: Result<(), kube::core::cel::ValidationErrors>, message: &str) {
        let messages = cel_messages(result);
        assert!(
            messages.iter().any(|m| m == message),
            "expected rejection {message:?}, got {messages:?}"
        );
    }

    /// Wraps a spec (YAML, unindented) into a full object of `kind`.
    pub fn with_spec(kind: &str, spec: &str) -> String {
        let indented: Vec<String> = spec.lines().map(|l| format!("  {l}")).collect();
        format!(
            "apiVersion: networking.istio.io/v1\nkind: {kind}\nmetadata:\n  name: test\n  namespace: payments\nspec:\n{}\n",
            indented.join("\n")
        )
    }

    /// Parses YAML into `T`, panicking with the error when it does not fit.
    pub fn parse<T: DeserializeOwned>(yaml: &str) -> T {
        serde_yaml_ng::from_str(yaml).unwrap_or_else(|e| panic!("YAML does not parse: {e}\n{yaml}"))
    }

    /// Reads a file below the crate's repository root.
    pub fn repo_file(path: &str) -> String {
        let full = format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("reading {full}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind is served at v1 with a status subresource; set
    /// `WEFT_DUMP_CRDS=<dir>` to also write them out for `kubectl apply`.
    #[test]
    fn crds_are_v1_with_status() {
        for crd in crds() {
            assert_eq!(crd.spec.group, "networking.istio.io");
            let [version] = crd.spec.versions.as_slice() else {
                panic!("{}: one version expected", crd.spec.names.kind)
            };
            assert_eq!(version.name, "v1");
            assert!(
                version
                    .subresources
                    .as_ref()
                    .is_some_and(|s| s.status.is_some())
            );
            if let Ok(dir) = std::env::var("WEFT_DUMP_CRDS") {
                let text = serde_yaml_ng::to_string(&crd).expect("CRD serializes");
                let path = format!("{dir}/{}.yaml", crd.spec.names.kind);
                std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {path}: {e}"));
            }
        }
    }

    #[test]
    fn crds_have_istio_names() {
        let names: Vec<(String, Vec<String>)> = crds()
            .into_iter()
            .map(|c| {
                (
                    c.spec.names.plural,
                    c.spec.names.short_names.unwrap_or_default(),
                )
            })
            .collect();
        let want = [
            ("virtualservices", vec!["vs"]),
            ("destinationrules", vec!["dr"]),
            ("gateways", vec!["gw"]),
            ("serviceentries", vec!["se"]),
            ("sidecars", vec![]),
        ];
        assert_eq!(names.len(), want.len());
        for ((plural, short), (want_plural, want_short)) in names.iter().zip(want) {
            assert_eq!(plural, want_plural);
            assert_eq!(short, &want_short);
        }
    }
}
