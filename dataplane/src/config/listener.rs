//! Listener compilation: the sidecar capture listeners (15001 outbound
//! with `use_original_dst`, 15006 inbound with the original_dst and
//! tls_inspector listener filters) and gateway listeners; filter chains
//! with destination port / prefix / SNI / transport matches, mesh or
//! terminating downstream TLS, and a tcp_proxy or HTTP connection manager.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::{Address, TransportSocket, address, socket_address};
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain as PbChain, Listener as PbListener, filter, listener_filter,
};
use envoy_types::pb::envoy::extensions::filters::listener::original_dst::v3::OriginalDst;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager, http_filter,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};
use envoy_types::pb::envoy::extensions::transport_sockets::raw_buffer::v3::RawBuffer;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    DownstreamTlsContext, common_tls_context,
};
use prost::Name;

use super::error::{ConfigError, Ctx};
use super::model::{
    ChainMatch, Cidr, DownstreamTls, FilterChain, Listener, NetworkFilter, RouteSource, Transport,
};
use super::route;

const HCM: &str = "envoy.filters.network.http_connection_manager";
const TCP_PROXY: &str = "envoy.filters.network.tcp_proxy";

pub fn compile(ctx: &Ctx<'_>, l: &PbListener) -> Result<Listener, ConfigError> {
    let address = socket_addr(ctx, "address", l.address.as_ref())?;
    for (i, f) in l.listener_filters.iter().enumerate() {
        let field = format!("listener_filters[{i}]");
        match &f.config_type {
            Some(listener_filter::ConfigType::TypedConfig(any)) => {
                if any.type_url != OriginalDst::type_url()
                    && any.type_url != TlsInspector::type_url()
                {
                    return Err(ctx.err(
                        format!("{field}.typed_config"),
                        format!(
                            "unsupported listener filter {}; supported: original_dst, tls_inspector",
                            any.type_url
                        ),
                    ));
                }
            }
            _ => return Err(ctx.err(field, "listener filter without typed_config")),
        }
    }
    let chains = l
        .filter_chains
        .iter()
        .enumerate()
        .map(|(i, c)| chain(ctx, &format!("filter_chains[{i}]"), c))
        .collect::<Result<Vec<_>, _>>()?;
    let default_chain = l
        .default_filter_chain
        .as_ref()
        .map(|c| chain(ctx, "default_filter_chain", c))
        .transpose()?;
    Ok(Listener {
        name: l.name.clone(),
        address,
        use_original_dst: l.use_original_dst.as_ref().is_some_and(|b| b.value),
        chains,
        default_chain,
    })
}

pub fn socket_addr(
    ctx: &Ctx<'_>,
    field: &str,
    a: Option<&Address>,
) -> Result<SocketAddr, ConfigError> {
    let Some(Address {
        address: Some(address::Address::SocketAddress(sa)),
    }) = a
    else {
        return Err(ctx.err(field, "a socket_address is required"));
    };
    let ip: IpAddr = sa.address.parse().map_err(|_| {
        ctx.err(
            format!("{field}.socket_address.address"),
            format!("{:?} is not an IP address", sa.address),
        )
    })?;
    let port = match sa.port_specifier {
        Some(socket_address::PortSpecifier::PortValue(p)) => u16::try_from(p).map_err(|_| {
            ctx.err(
                format!("{field}.socket_address.port_value"),
                format!("{p} is not a port"),
            )
        })?,
        _ => {
            return Err(ctx.err(
                format!("{field}.socket_address.port_value"),
                "a numeric port is required (named ports are not supported)",
            ));
        }
    };
    Ok(SocketAddr::new(ip, port))
}

fn chain(ctx: &Ctx<'_>, field: &str, c: &PbChain) -> Result<FilterChain, ConfigError> {
    let mut matcher = ChainMatch::default();
    if let Some(m) = &c.filter_chain_match {
        let mf = format!("{field}.filter_chain_match");
        if !m.application_protocols.is_empty()
            || !m.source_prefix_ranges.is_empty()
            || !m.source_ports.is_empty()
            || !m.direct_source_prefix_ranges.is_empty()
            || m.source_type != 0
        {
            return Err(ctx.err(
                mf,
                "only destination_port, prefix_ranges, server_names and transport_protocol are supported",
            ));
        }
        matcher.destination_port = m
            .destination_port
            .as_ref()
            .map(|p| {
                u16::try_from(p.value).map_err(|_| {
                    ctx.err(
                        format!("{mf}.destination_port"),
                        format!("{} is not a port", p.value),
                    )
                })
            })
            .transpose()?;
        for (i, r) in m.prefix_ranges.iter().enumerate() {
            let rf = format!("{mf}.prefix_ranges[{i}]");
            let addr: IpAddr = r.address_prefix.parse().map_err(|_| {
                ctx.err(
                    format!("{rf}.address_prefix"),
                    format!("{:?} is not an IP address", r.address_prefix),
                )
            })?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let len = r.prefix_len.as_ref().map_or(max, |l| l.value);
            let len = u8::try_from(len)
                .ok()
                .filter(|l| u32::from(*l) <= max)
                .ok_or_else(|| {
                    ctx.err(format!("{rf}.prefix_len"), format!("{len} exceeds {max}"))
                })?;
            matcher.prefix_ranges.push(Cidr { addr, len });
        }
        matcher.server_names = m.server_names.clone();
        matcher.transport = match m.transport_protocol.as_str() {
            "" => None,
            "tls" => Some(Transport::Tls),
            "raw_buffer" => Some(Transport::RawBuffer),
            other => {
                return Err(ctx.err(
                    format!("{mf}.transport_protocol"),
                    format!("unknown transport {other:?}; expected tls or raw_buffer"),
                ));
            }
        };
    }
    let tls = c
        .transport_socket
        .as_ref()
        .map(|t| downstream_tls(ctx, &format!("{field}.transport_socket"), t))
        .transpose()?
        .flatten();
    let [f] = c.filters.as_slice() else {
        return Err(ctx.err(
            format!("{field}.filters"),
            format!(
                "exactly one network filter (tcp_proxy or http_connection_manager) is supported, got {}",
                c.filters.len()
            ),
        ));
    };
    let filter = network_filter(ctx, &format!("{field}.filters[0]"), f)?;
    Ok(FilterChain {
        name: c.name.clone(),
        matcher,
        tls,
        filter,
    })
}

fn downstream_tls(
    ctx: &Ctx<'_>,
    field: &str,
    t: &TransportSocket,
) -> Result<Option<DownstreamTls>, ConfigError> {
    use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;
    let Some(ConfigType::TypedConfig(any)) = &t.config_type else {
        return Err(ctx.err(field, "transport socket without typed_config"));
    };
    if any.type_url == RawBuffer::type_url() {
        return Ok(None);
    }
    let tf = format!("{field}.typed_config");
    let d: DownstreamTlsContext = ctx.decode_any(&tf, any)?;
    let common = d.common_tls_context.unwrap_or_default();
    let secrets: Vec<String> = common
        .tls_certificate_sds_secret_configs
        .iter()
        .map(|s| s.name.clone())
        .collect();
    if !common.tls_certificates.is_empty() {
        return Err(ctx.err(
            format!("{tf}.common_tls_context.tls_certificates"),
            "inline certificates are not supported; use SDS secrets",
        ));
    }
    let require_client = d
        .require_client_certificate
        .as_ref()
        .is_some_and(|b| b.value);
    let validation = match &common.validation_context_type {
        None => None,
        Some(common_tls_context::ValidationContextType::ValidationContextSdsSecretConfig(s)) => {
            Some(s.name.clone())
        }
        Some(_) => {
            return Err(ctx.err(
                format!("{tf}.common_tls_context.validation_context_type"),
                "only validation_context_sds_secret_config is supported downstream",
            ));
        }
    };
    match (require_client, validation) {
        (true, Some(v)) => {
            if secrets != [crate::config::WORKLOAD_CERT] || v != crate::config::ROOT_CA {
                return Err(ctx.err(
                    format!("{tf}.common_tls_context"),
                    format!(
                        "mesh mTLS must use the {:?} certificate and the {:?} trust bundle",
                        crate::config::WORKLOAD_CERT,
                        crate::config::ROOT_CA
                    ),
                ));
            }
            Ok(Some(DownstreamTls::Mesh))
        }
        (false, None) => {
            if secrets.is_empty() {
                return Err(ctx.err(
                    format!("{tf}.common_tls_context.tls_certificate_sds_secret_configs"),
                    "TLS termination needs at least one certificate secret",
                ));
            }
            Ok(Some(DownstreamTls::Terminate { secrets }))
        }
        _ => Err(ctx.err(
            format!("{tf}.require_client_certificate"),
            "client certificates are only supported for mesh mTLS (required, validated by ROOTCA)",
        )),
    }
}

fn network_filter(ctx: &Ctx<'_>, field: &str, f: &Filter) -> Result<NetworkFilter, ConfigError> {
    let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type else {
        return Err(ctx.err(field, "filter without typed_config"));
    };
    let tf = format!("{field}.typed_config");
    if any.type_url == TcpProxy::type_url() {
        let t: TcpProxy = ctx.decode_any(&tf, any)?;
        match t.cluster_specifier {
            Some(tcp_proxy::ClusterSpecifier::Cluster(cluster)) => Ok(NetworkFilter::TcpProxy {
                stat_prefix: t.stat_prefix,
                cluster,
            }),
            _ => Err(ctx.err(
                format!("{tf}.cluster_specifier"),
                "only a single cluster is supported",
            )),
        }
    } else if any.type_url == HttpConnectionManager::type_url() {
        let h: HttpConnectionManager = ctx.decode_any(&tf, any)?;
        for (i, hf) in h.http_filters.iter().enumerate() {
            let router = matches!(&hf.config_type,
                Some(http_filter::ConfigType::TypedConfig(a))
                    if a.type_url == envoy_types::pb::envoy::extensions::filters::http::router::v3::Router::type_url());
            if !router {
                return Err(ctx.err(
                    format!("{tf}.http_filters[{i}]"),
                    format!(
                        "unsupported HTTP filter {:?}; only the router is supported",
                        hf.name
                    ),
                ));
            }
        }
        let routes = match h.route_specifier {
            Some(http_connection_manager::RouteSpecifier::Rds(rds)) => {
                RouteSource::Rds(rds.route_config_name)
            }
            Some(http_connection_manager::RouteSpecifier::RouteConfig(rc)) => RouteSource::Inline(
                Arc::new(route::compile(ctx, &format!("{tf}.route_config."), &rc)?),
            ),
            _ => {
                return Err(ctx.err(
                    format!("{tf}.route_specifier"),
                    "rds or route_config is required (scoped routes are not supported)",
                ));
            }
        };
        Ok(NetworkFilter::Http {
            stat_prefix: h.stat_prefix,
            routes,
        })
    } else {
        Err(ctx.err(
            tf,
            format!(
                "unsupported network filter {} ({}); supported: {TCP_PROXY}, {HCM}",
                any.type_url, f.name
            ),
        ))
    }
}
