//! Counters of the CA: certificates signed and requests refused (by
//! reason label). Readable in-process as a [`CaMetricsSnapshot`], and
//! forwarded to weftd's Prometheus registry ([`crate::metrics::Metrics`],
//! `weftd_ca_csr_signed_total` / `weftd_ca_csr_refused_total{reason}` on `:15014/metrics`).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::metrics::Metrics;

/// CSRs signed and refused since start. Shared as `Arc<CaMetrics>`.
#[derive(Debug, Default)]
pub struct CaMetrics {
    signed: AtomicU64,
    refused: Mutex<BTreeMap<&'static str, u64>>,
    export: Option<Metrics>,
}

/// A consistent copy of the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaMetricsSnapshot {
    pub signed: u64,
    /// Refusals by reason label (`token_audience`, `csr_identity`, ...).
    pub refused: BTreeMap<&'static str, u64>,
}

impl CaMetricsSnapshot {
    /// Every refusal, whatever the reason.
    pub fn refused_total(&self) -> u64 {
        self.refused.values().sum()
    }
}

impl CaMetrics {
    /// Counters that are also exported through `metrics`.
    pub fn exporting_to(metrics: Metrics) -> Self {
        Self {
            export: Some(metrics),
            ..Self::default()
        }
    }

    pub fn record_signed(&self) {
        self.signed.fetch_add(1, Ordering::Relaxed);
        if let Some(export) = &self.export {
            export.csr_signed();
        }
    }

    pub fn record_refused(&self, reason: &'static str) {
        if let Some(export) = &self.export {
            export.csr_refused(reason);
        }
        let mut refused = self
            .refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *refused.entry(reason).or_default() += 1;
    }

    pub fn snapshot(&self) -> CaMetricsSnapshot {
        let refused = self
            .refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        CaMetricsSnapshot {
            signed: self.signed.load(Ordering::Relaxed),
            refused,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_reason() {
        let m = CaMetrics::default();
        m.record_signed();
        m.record_signed();
        m.record_refused("token_audience");
        m.record_refused("csr_identity");
        m.record_refused("token_audience");
        let s = m.snapshot();
        assert_eq!(s.signed, 2);
        assert_eq!(s.refused.get("token_audience"), Some(&2));
        assert_eq!(s.refused.get("csr_identity"), Some(&1));
        assert_eq!(s.refused_total(), 3);
    }

    #[test]
    fn forwards_to_prometheus() {
        let exported = Metrics::new();
        let m = CaMetrics::exporting_to(exported.clone());
        m.record_signed();
        m.record_refused("csr_identity");
        let text = exported.encode().expect("encodes");
        assert!(text.contains("weftd_ca_csr_signed_total 1"), "{text}");
        assert!(text.contains("reason=\"csr_identity\"} 1"), "{text}");
    }
}
