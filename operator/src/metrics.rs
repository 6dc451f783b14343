//! The operator's Prometheus metrics: reconciles, errors and durations
//! per controller, and every write it makes to the API server (so "zero
//! writes in steady state" can be read off `/metrics`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    controller: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriteLabels {
    verb: String,
    kind: String,
}

/// Shared handle to the metrics (cheap to clone).
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    reconciles: Family<ControllerLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    durations: Family<ControllerLabels, Histogram>,
    writes: Family<WriteLabels, Counter>,
    leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("weft_operator");
        let reconciles = Family::<ControllerLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let durations = Family::<ControllerLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 14))
        });
        let writes = Family::<WriteLabels, Counter>::default();
        let leader = Gauge::default();
        registry.register(
            "reconciles",
            "Reconciles run, per controller",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, per controller and reason",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "How long reconciles take, per controller",
            durations.clone(),
        );
        registry.register(
            "api_writes",
            "Writes to the API server (apply, delete, status, event, lease), per kind",
            writes.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease",
            leader.clone(),
        );
        Self {
            registry: Arc::new(Mutex::new(registry)),
            reconciles,
            errors,
            durations,
            writes,
            leader,
        }
    }

    /// Records one reconcile of `controller`, its duration and outcome.
    pub fn reconciled(&self, controller: &str, took: Duration, error: Option<&str>) {
        let labels = ControllerLabels {
            controller: controller.to_owned(),
        };
        self.reconciles.get_or_create(&labels).inc();
        self.durations
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        if let Some(reason) = error {
            self.errors
                .get_or_create(&ErrorLabels {
                    controller: controller.to_owned(),
                    reason: reason.to_owned(),
                })
                .inc();
        }
    }

    /// Counts a write to the API server.
    pub fn write(&self, verb: &str, kind: &str) {
        self.writes
            .get_or_create(&WriteLabels {
                verb: verb.to_owned(),
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Writes of `verb` so far (all kinds).
    pub fn writes_total(&self, verb: Option<&str>) -> u64 {
        let registry_text = self.encode();
        registry_text
            .lines()
            .filter(|l| l.starts_with("weft_operator_api_writes_total{"))
            .filter(|l| verb.is_none_or(|v| l.contains(&format!("verb=\"{v}\""))))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// The OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self
            .registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_show_up_in_the_text() {
        let m = Metrics::new();
        m.reconciled("meshinstallation", Duration::from_millis(12), None);
        m.reconciled("meshinstallation", Duration::from_millis(12), Some("Apply"));
        m.write("apply", "Deployment");
        m.write("status", "MeshInstallation");
        let text = m.encode();
        assert!(
            text.contains("weft_operator_reconciles_total{controller=\"meshinstallation\"} 2"),
            "{text}"
        );
        assert!(text.contains("reason=\"Apply\""), "{text}");
        assert_eq!(m.writes_total(None), 2);
        assert_eq!(m.writes_total(Some("apply")), 1);
    }
}
