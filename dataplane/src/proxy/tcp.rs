//! Opaque TCP: a tcp_proxy chain's cluster, one endpoint picked per
//! connection, mesh mTLS (ALPN `istio`) or plaintext, bytes copied both
//! ways; Istio's TCP metrics at open and close.

use std::sync::Arc;

use super::lb::{self, InFlight};
use super::upstream::{self, Io};
use super::{Downstream, Proxy};
use crate::config::Snapshot;
use crate::config::model::{Discovery, UpstreamTls};
use crate::tls::ALPN_TCP;

/// Proxies `io` to `cluster` until either side closes.
pub async fn proxy(
    proxy: Arc<Proxy>,
    down: Downstream,
    snapshot: Arc<Snapshot>,
    cluster_name: &str,
    mut io: Box<dyn Io>,
) {
    let Some(cluster) = snapshot.clusters.get(cluster_name).cloned() else {
        tracing::info!(
            cluster = cluster_name,
            "TCP connection closed: cluster not configured"
        );
        return;
    };
    let (addr, tls) = match &cluster.discovery {
        Discovery::OriginalDst => (down.original_dst, UpstreamTls::Plaintext),
        _ if cluster.endpoints.is_empty() && cluster.discovery == Discovery::Static => {
            tracing::debug!(cluster = cluster_name, "TCP connection closed: black hole");
            return;
        }
        _ => match lb::pick(&cluster, |a| proxy.outstanding.get(a), lb::random) {
            Some(ep) => (ep.address, cluster.tls_for(ep).clone()),
            None => {
                tracing::info!(
                    cluster = cluster_name,
                    "TCP connection closed: no healthy upstream"
                );
                return;
            }
        },
    };
    if addr == down.local {
        tracing::warn!(%addr, "TCP connection closed: it would loop back into the proxy");
        return;
    }
    let connected = match upstream::connect(
        &proxy.identity,
        addr,
        cluster.bind_source,
        &tls,
        ALPN_TCP,
        cluster.connect_timeout,
    )
    .await
    {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(cluster = cluster_name, error = %e, "TCP upstream connect failed");
            return;
        }
    };
    let service = cluster_name
        .splitn(4, '|')
        .nth(3)
        .filter(|s| !s.is_empty())
        .unwrap_or(cluster_name)
        .to_owned();
    let labels = proxy.peers(&down, &service, connected.peer_id.as_deref());
    proxy.metrics.tcp_opened.get_or_create(&labels).inc();
    let _in_flight = InFlight::start(proxy.outstanding.counter(addr));
    let mut up = connected.io;
    let (received, sent) = match tokio::io::copy_bidirectional(&mut io, &mut up).await {
        Ok(counts) => counts,
        Err(e) => {
            tracing::debug!(error = %e, "TCP connection ended with an error");
            (0, 0)
        }
    };
    proxy
        .metrics
        .tcp_received
        .get_or_create(&labels)
        .inc_by(received);
    proxy.metrics.tcp_sent.get_or_create(&labels).inc_by(sent);
    proxy.metrics.tcp_closed.get_or_create(&labels).inc();
}
