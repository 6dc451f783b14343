//! Istio's standard metrics, so existing dashboards work:
//! `istio_requests_total`, `istio_request_duration_milliseconds`,
//! `istio_tcp_sent_bytes_total`, `istio_tcp_received_bytes_total`,
//! `istio_tcp_connections_opened_total`, `istio_tcp_connections_closed_total`,
//! with Istio's labels.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels shared by request and TCP metrics.
#[derive(Clone, Debug, Default, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Peers {
    pub reporter: String,
    pub source_workload: String,
    pub source_workload_namespace: String,
    pub source_principal: String,
    pub destination_workload: String,
    pub destination_workload_namespace: String,
    pub destination_principal: String,
    pub destination_service: String,
    pub connection_security_policy: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    #[prometheus(flatten)]
    pub peers: Peers,
    pub response_code: String,
    pub request_protocol: String,
}

/// The proxy's metrics.
#[derive(Debug)]
pub struct Metrics {
    pub requests: Family<RequestLabels, Counter>,
    pub duration: Family<RequestLabels, Histogram>,
    pub tcp_sent: Family<Peers, Counter>,
    pub tcp_received: Family<Peers, Counter>,
    pub tcp_opened: Family<Peers, Counter>,
    pub tcp_closed: Family<Peers, Counter>,
    registry: Registry,
}

fn histogram() -> Histogram {
    // Istio's default buckets (ms).
    Histogram::new([
        0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
        30000.0, 60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
    ])
}

impl Default for Metrics {
    fn default() -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let duration = Family::<RequestLabels, Histogram>::new_with_constructor(
            histogram as fn() -> Histogram,
        );
        let tcp_sent = Family::<Peers, Counter>::default();
        let tcp_received = Family::<Peers, Counter>::default();
        let tcp_opened = Family::<Peers, Counter>::default();
        let tcp_closed = Family::<Peers, Counter>::default();
        let mut registry = Registry::default();
        // prometheus-client appends `_total` to counters.
        registry.register("istio_requests", "Requests handled", requests.clone());
        registry.register(
            "istio_request_duration_milliseconds",
            "Request duration in milliseconds",
            duration.clone(),
        );
        registry.register(
            "istio_tcp_sent_bytes",
            "Bytes sent to the downstream in TCP connections",
            tcp_sent.clone(),
        );
        registry.register(
            "istio_tcp_received_bytes",
            "Bytes received from the downstream in TCP connections",
            tcp_received.clone(),
        );
        registry.register(
            "istio_tcp_connections_opened",
            "TCP connections opened",
            tcp_opened.clone(),
        );
        registry.register(
            "istio_tcp_connections_closed",
            "TCP connections closed",
            tcp_closed.clone(),
        );
        Self {
            requests,
            duration,
            tcp_sent,
            tcp_received,
            tcp_opened,
            tcp_closed,
            registry,
        }
    }
}

impl Metrics {
    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            tracing::warn!("metrics encoding failed");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels_are_istios() {
        let m = Metrics::default();
        let labels = RequestLabels {
            peers: Peers {
                reporter: "destination".into(),
                source_principal: "spiffe://td/ns/a/sa/b".into(),
                ..Default::default()
            },
            response_code: "200".into(),
            request_protocol: "http".into(),
        };
        m.requests.get_or_create(&labels).inc();
        m.duration.get_or_create(&labels).observe(3.0);
        m.tcp_opened.get_or_create(&labels.peers).inc();
        let text = m.encode();
        assert!(
            text.contains("istio_requests_total{reporter=\"destination\""),
            "{text}"
        );
        assert!(text.contains("source_principal=\"spiffe://td/ns/a/sa/b\""));
        assert!(text.contains("response_code=\"200\""));
        assert!(text.contains("istio_request_duration_milliseconds_bucket"));
        assert!(text.contains("istio_tcp_connections_opened_total"));
    }
}
