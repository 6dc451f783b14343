//! Opaque TCP: a tcp_proxy chain's cluster, one endpoint picked per
//! connection, mesh mTLS (ALPN `istio`) or plaintext, bytes copied both
//! ways; Istio's TCP metrics at open and close.

use std::sync::Arc;

use super::lb::{self, InFlight};
use super::upstream::{self, Io};
use super::{Direction, Downstream, Proxy};
use crate::config::Snapshot;
use crate::config::model::{Discovery, UpstreamTls};
use crate::metrics::Peers;
use crate::tls::ALPN_TCP;

fn tcp_peers(
    proxy: &Proxy,
    down: &Downstream,
    service: &str,
    upstream_peer: Option<&str>,
) -> Peers {
    let own = proxy.identity.current().id_text.clone();
    let me = &proxy.settings.workload;
    let ns = |p: &str| {
        crate::tls::SpiffeId::parse(p)
            .and_then(|id| id.namespace_and_account().map(|(n, _)| n.to_owned()))
            .unwrap_or_else(|| "unknown".into())
    };
    let unknown = || "unknown".to_owned();
    match down.direction {
        Direction::Inbound => Peers {
            reporter: "destination".into(),
            source_workload: unknown(),
            source_workload_namespace: down.peer_id.as_deref().map_or_else(unknown, ns),
            source_principal: down.peer_id.clone().unwrap_or_else(unknown),
            destination_workload: me.name.clone(),
            destination_workload_namespace: me.namespace.clone(),
            destination_principal: if down.peer_id.is_some() {
                own
            } else {
                unknown()
            },
            destination_service: service.to_owned(),
            connection_security_policy: if down.peer_id.is_some() {
                "mutual_tls"
            } else {
                "none"
            }
            .into(),
        },
        _ => Peers {
            reporter: "source".into(),
            source_workload: me.name.clone(),
            source_workload_namespace: me.namespace.clone(),
            source_principal: if upstream_peer.is_some() {
                own
            } else {
                unknown()
            },
            destination_workload: unknown(),
            destination_workload_namespace: upstream_peer.map_or_else(unknown, ns),
            destination_principal: upstream_peer.map_or_else(unknown, str::to_owned),
            destination_service: service.to_owned(),
            connection_security_policy: if upstream_peer.is_some() {
                "mutual_tls"
            } else {
                "none"
            }
            .into(),
        },
    }
}

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
    let labels = tcp_peers(&proxy, &down, &service, connected.peer_id.as_deref());
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
