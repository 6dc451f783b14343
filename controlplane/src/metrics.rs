//! weftd's Prometheus metrics: one registry, served as text on
//! `:15014/metrics` by [`crate::debug`]. Components get a clone of
//! [`Metrics`] and increment the metric that concerns them (the xDS server
//! its pushes and NACKs, the CA its signed and refused CSRs); a component
//! with metrics of its own adds them through [`Metrics::register`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry};

/// xDS type label: the message name (`Cluster`, `ClusterLoadAssignment`…).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabel {
    pub r#type: String,
}

impl TypeLabel {
    pub fn of(type_url: &str) -> Self {
        Self {
            r#type: type_url.rsplit('.').next().unwrap_or(type_url).to_owned(),
        }
    }
}

/// Why a CSR was refused (a stable short label).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

fn latency_histogram() -> Histogram {
    // 1 ms … ~16 s
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// Every metric weftd exports. Cheap to clone (handles to shared values).
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    pushes: Family<TypeLabel, Counter>,
    push_latency: Family<TypeLabel, Histogram, fn() -> Histogram>,
    nacks: Family<TypeLabel, Counter>,
    connected_proxies: Gauge,
    csr_signed: Counter,
    csr_refused: Family<ReasonLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("weftd");
        let pushes = Family::<TypeLabel, Counter>::default();
        let push_latency = Family::<TypeLabel, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let nacks = Family::<TypeLabel, Counter>::default();
        let connected_proxies = Gauge::default();
        let csr_signed = Counter::default();
        let csr_refused = Family::<ReasonLabel, Counter>::default();
        registry.register("xds_pushes", "xDS responses sent, by type", pushes.clone());
        registry.register(
            "xds_push_latency_seconds",
            "Time from the first configuration change of a push to the response being sent, by type",
            push_latency.clone(),
        );
        registry.register(
            "xds_nacks",
            "xDS responses rejected by proxies, by type",
            nacks.clone(),
        );
        registry.register(
            "xds_connected_proxies",
            "xDS streams currently open",
            connected_proxies.clone(),
        );
        registry.register(
            "ca_csr_signed",
            "Workload certificates signed",
            csr_signed.clone(),
        );
        registry.register(
            "ca_csr_refused",
            "Certificate requests refused, by reason",
            csr_refused.clone(),
        );
        Self {
            registry: Arc::new(Mutex::new(registry)),
            pushes,
            push_latency,
            nacks,
            connected_proxies,
            csr_signed,
            csr_refused,
        }
    }

    /// Adds a component's own metric (`weftd_` is prefixed to `name`).
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.lock().register(name, help, metric);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        // The registry is only appended to; a panic elsewhere cannot leave
        // it half-written.
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Prometheus text exposition of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.lock())?;
        Ok(out)
    }

    /// An xDS response was sent; `latency` is set for pushes caused by a
    /// configuration change (not for answers to a new subscription).
    pub fn push(&self, type_url: &str, latency: Option<Duration>) {
        let label = TypeLabel::of(type_url);
        self.pushes.get_or_create(&label).inc();
        if let Some(latency) = latency {
            self.push_latency
                .get_or_create(&label)
                .observe(latency.as_secs_f64());
        }
    }

    pub fn nack(&self, type_url: &str) {
        self.nacks.get_or_create(&TypeLabel::of(type_url)).inc();
    }

    pub fn proxy_connected(&self) {
        self.connected_proxies.inc();
    }

    pub fn proxy_disconnected(&self) {
        self.connected_proxies.dec();
    }

    /// The CA signed a workload certificate.
    pub fn csr_signed(&self) {
        self.csr_signed.inc();
    }

    /// The CA refused a CSR; `reason` is the error's stable short label.
    pub fn csr_refused(&self, reason: &str) {
        self.csr_refused
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::type_url;

    #[test]
    fn exposition_names_and_values() {
        let m = Metrics::new();
        m.push(type_url::ENDPOINT, Some(Duration::from_millis(3)));
        m.push(type_url::ENDPOINT, Some(Duration::from_millis(3)));
        m.push(type_url::ENDPOINT, None);
        m.nack(type_url::LISTENER);
        m.proxy_connected();
        m.csr_signed();
        m.csr_refused("WrongServiceAccount");
        let extra = Counter::<u64>::default();
        m.register("extra_things", "for the test", extra.clone());
        extra.inc();
        let text = m.encode().expect("encode");
        for want in [
            "weftd_xds_pushes_total{type=\"ClusterLoadAssignment\"} 3",
            "weftd_xds_push_latency_seconds_count{type=\"ClusterLoadAssignment\"} 2",
            "weftd_xds_nacks_total{type=\"Listener\"} 1",
            "weftd_xds_connected_proxies 1",
            "weftd_ca_csr_signed_total 1",
            "weftd_ca_csr_refused_total{reason=\"WrongServiceAccount\"} 1",
            "weftd_extra_things_total 1",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
    }
}
