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

/// What tells one request series from another within a connection
/// (the rest of Istio's labels are the connection's).
#[derive(Clone, Copy, Debug)]
pub struct SeriesKey<'a> {
    pub service: &'a str,
    pub upstream_peer: Option<&'a str>,
    pub status: u16,
    pub protocol: &'static str,
}

#[derive(Debug)]
struct CachedSeries {
    service: Box<str>,
    upstream_peer: Option<Box<str>>,
    status: u16,
    protocol: &'static str,
    requests: Counter,
    duration: Histogram,
}

impl CachedSeries {
    fn is(&self, key: &SeriesKey<'_>) -> bool {
        self.status == key.status
            && self.protocol == key.protocol
            && *self.service == *key.service
            && self.upstream_peer.as_deref() == key.upstream_peer
    }
}

/// The request series one connection has used, resolved once: its
/// requests mostly share their labels, so each finds its counter and
/// histogram here instead of building and hashing Istio's eleven labels.
#[derive(Debug, Default)]
pub struct SeriesCache {
    entries: std::sync::Mutex<Vec<CachedSeries>>,
}

/// Series a connection keeps resolved; past this the cache starts over.
const CACHED_SERIES: usize = 16;

impl Metrics {
    /// Counts a finished request and its duration. `labels` builds the
    /// connection's labels, called only for a series the cache lacks.
    pub fn record_request(
        &self,
        cache: &SeriesCache,
        key: SeriesKey<'_>,
        labels: impl FnOnce() -> Peers,
        ms: f64,
    ) {
        let mut entries = match cache.entries.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let found = entries.iter().position(|e| e.is(&key));
        let series = match found {
            Some(i) => &entries[i],
            None => {
                let labels = RequestLabels {
                    peers: labels(),
                    response_code: key.status.to_string(),
                    request_protocol: key.protocol.to_owned(),
                };
                let series = CachedSeries {
                    service: key.service.into(),
                    upstream_peer: key.upstream_peer.map(Into::into),
                    status: key.status,
                    protocol: key.protocol,
                    requests: self.requests.get_or_create(&labels).clone(),
                    duration: self.duration.get_or_create(&labels).clone(),
                };
                if entries.len() >= CACHED_SERIES {
                    entries.clear();
                }
                entries.push(series);
                &entries[entries.len() - 1]
            }
        };
        series.duration.observe(ms);
        series.requests.inc();
    }

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
    fn cached_series_count_into_the_same_metrics() {
        let m = Metrics::default();
        let cache = SeriesCache::default();
        let mut built = 0;
        let key = |status| SeriesKey {
            service: "echo.test.svc.cluster.local",
            upstream_peer: Some("spiffe://td/ns/test/sa/echo"),
            status,
            protocol: "http",
        };
        for status in [200, 200, 503, 200] {
            m.record_request(
                &cache,
                key(status),
                || {
                    built += 1;
                    Peers {
                        reporter: "source".into(),
                        ..Default::default()
                    }
                },
                1.0,
            );
        }
        assert_eq!(built, 2, "labels are built once per series");
        let text = m.encode();
        let count = |code: &str| {
            text.lines()
                .find(|l| {
                    l.starts_with("istio_requests_total{")
                        && l.contains(&format!("response_code=\"{code}\""))
                })
                .and_then(|l| l.rsplit(' ').next())
                .map(str::to_owned)
        };
        assert_eq!(count("200").as_deref(), Some("3"), "{text}");
        assert_eq!(count("503").as_deref(), Some("1"), "{text}");
        // Another connection's cache finds the same series.
        let other = SeriesCache::default();
        m.record_request(
            &other,
            key(200),
            || Peers {
                reporter: "source".into(),
                ..Default::default()
            },
            1.0,
        );
        assert_eq!(count_in(&m.encode(), "200"), 4);
    }

    fn count_in(text: &str, code: &str) -> u64 {
        text.lines()
            .filter(|l| {
                l.starts_with("istio_requests_total{")
                    && l.contains("reporter=\"source\"")
                    && l.contains(&format!("response_code=\"{code}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

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
