//! The workload selector of Sidecar and ServiceEntry. Unlike the one of
//! DestinationRule and the security kinds ([`crate::istio::common::WorkloadSelector`],
//! written `matchLabels`), Istio spells this one's field `labels`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Selects workloads (pods, WorkloadEntries) by their labels, written `labels:`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadLabelSelector {
    /// Labels a workload must carry, all of them, to be selected.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(length(max = 256))]
    pub labels: BTreeMap<String, String>,
}
