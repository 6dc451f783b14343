//! Getting the first certificate (retrying until weftd answers) and
//! keeping it renewed at half-life; every new certificate goes to a
//! `watch` channel whose receivers (TLS, xDS) pick it up live.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::CaError;
use super::cert::{WorkloadCert, unix};
use super::client::CaClient;
use crate::backoff::Backoff;

/// Shortest wait before a renewal (a certificate with almost no life left
/// is not renewed in a tight loop).
const MIN_RENEW_WAIT: Duration = Duration::from_secs(1);

/// The backoff between failed requests.
pub fn default_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(500), Duration::from_secs(30))
}

/// How long to wait from `now` before renewing `cert`.
pub fn renew_wait(cert: &WorkloadCert, now: SystemTime) -> Duration {
    cert.renew_at()
        .duration_since(now)
        .unwrap_or_default()
        .max(MIN_RENEW_WAIT)
}

/// Requests until one succeeds, waiting per `backoff` in between. Each
/// failure is logged with what to fix; the token is never logged.
pub async fn fetch_with_retry(client: &CaClient, backoff: &mut Backoff) -> WorkloadCert {
    loop {
        match client.fetch().await {
            Ok(cert) => {
                backoff.reset();
                tracing::info!(
                    spiffe_id = %cert.spiffe_id,
                    not_after = unix(cert.not_after),
                    "workload certificate issued"
                );
                return cert;
            }
            Err(e) => {
                let wait = backoff.next_delay();
                log_failure(&e, backoff.attempts(), wait);
                tokio::time::sleep(wait).await;
            }
        }
    }
}

fn log_failure(e: &CaError, attempt: u32, wait: Duration) {
    tracing::warn!(
        error = %e,
        label = e.label(),
        attempt,
        retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
        "workload certificate request failed"
    );
}

/// Renews the certificate in `tx` at half-life, forever (until every
/// receiver is gone). A failed renewal is retried with backoff while the
/// current certificate stays in use.
pub async fn keep_renewed(
    client: CaClient,
    tx: watch::Sender<Arc<WorkloadCert>>,
    mut backoff: Backoff,
) {
    loop {
        let wait = renew_wait(&tx.borrow(), SystemTime::now());
        tokio::select! {
            _ = tx.closed() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let cert = fetch_with_retry(&client, &mut backoff).await;
        if tx.send(Arc::new(cert)).is_err() {
            return;
        }
    }
}

/// The first certificate, then a task renewing it; the receiver sees each
/// new one.
pub async fn start(client: CaClient) -> watch::Receiver<Arc<WorkloadCert>> {
    let mut backoff = default_backoff();
    let first = fetch_with_retry(&client, &mut backoff).await;
    let (tx, rx) = watch::channel(Arc::new(first));
    tokio::spawn(keep_renewed(client, tx, backoff));
    rx
}
