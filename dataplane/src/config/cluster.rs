//! Cluster and ClusterLoadAssignment compilation: EDS, static and
//! original-destination clusters, round-robin / least-request / random
//! balancing, HTTP/2 upstreams, and `transport_socket_matches` choosing mesh
//! mTLS (with the SPIFFE IDs the peer must present) or plaintext per
//! endpoint; endpoints carry health, locality, priority and weight.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::{Cluster as PbCluster, cluster};
use envoy_types::pb::envoy::config::core::v3::{
    BindConfig, HealthStatus, Metadata, TransportSocket, socket_address, transport_socket,
};
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, lb_endpoint};
use envoy_types::pb::envoy::extensions::transport_sockets::raw_buffer::v3::RawBuffer;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    UpstreamTlsContext, common_tls_context, subject_alt_name_matcher,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions, http_protocol_options,
};
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher;
use envoy_types::pb::google::protobuf::{Struct, value};
use prost::Name;

use super::error::{ConfigError, Ctx};
use super::listener::socket_addr;
use super::model::{
    Cluster, Discovery, Endpoint, Health, LbPolicy, TransportSocketMatch, UpstreamTls,
};

const SOCKET_MATCH_KEY: &str = "envoy.transport_socket_match";
const HTTP_OPTIONS_KEY: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// Compiles a cluster; EDS clusters get their endpoints from `cla`.
pub fn compile(
    ctx: &Ctx<'_>,
    c: &PbCluster,
    eds: impl Fn(&str) -> Option<Arc<[Endpoint]>>,
) -> Result<Cluster, ConfigError> {
    use cluster::DiscoveryType as D;
    let kind = match &c.cluster_discovery_type {
        Some(cluster::ClusterDiscoveryType::Type(t)) => D::try_from(*t).ok(),
        None => Some(D::Static),
        Some(_) => None,
    };
    let (discovery, endpoints) = match kind {
        Some(D::Eds) => {
            let service_name = c
                .eds_cluster_config
                .as_ref()
                .map(|e| e.service_name.clone())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| c.name.clone());
            // Endpoints that have not arrived yet: an empty set (503s) until
            // they do, as Envoy does while a cluster warms.
            let eps = eds(&service_name).unwrap_or_else(|| Arc::from(Vec::new()));
            (Discovery::Eds { service_name }, eps)
        }
        Some(D::Static) => {
            let eps = match &c.load_assignment {
                Some(cla) => endpoints(ctx, "load_assignment", cla)?,
                None => Arc::from(Vec::new()),
            };
            (Discovery::Static, eps)
        }
        Some(D::OriginalDst) => (Discovery::OriginalDst, Arc::from(Vec::new())),
        _ => {
            return Err(ctx.err(
                "cluster_discovery_type",
                "only EDS, STATIC and ORIGINAL_DST clusters are supported",
            ));
        }
    };
    use cluster::LbPolicy as L;
    let lb = match L::try_from(c.lb_policy) {
        Ok(L::RoundRobin | L::ClusterProvided) => LbPolicy::RoundRobin,
        Ok(L::LeastRequest) => LbPolicy::LeastRequest,
        Ok(L::Random) => LbPolicy::Random,
        _ => {
            return Err(ctx.err(
                "lb_policy",
                "only ROUND_ROBIN, LEAST_REQUEST, RANDOM and CLUSTER_PROVIDED are supported",
            ));
        }
    };
    let connect_timeout = c
        .connect_timeout
        .as_ref()
        .and_then(|d| {
            Some(Duration::new(
                u64::try_from(d.seconds).ok()?,
                u32::try_from(d.nanos).ok()?,
            ))
        })
        .filter(|d| !d.is_zero())
        .unwrap_or(Duration::from_secs(5));
    let mut http2 = false;
    for (key, any) in &c.typed_extension_protocol_options {
        let field = format!("typed_extension_protocol_options[{key:?}]");
        if key != HTTP_OPTIONS_KEY {
            return Err(ctx.err(field, "unsupported protocol options"));
        }
        let opts: HttpProtocolOptions = ctx.decode_any(&field, any)?;
        use http_protocol_options::UpstreamProtocolOptions as U;
        use http_protocol_options::explicit_http_config::ProtocolConfig as P;
        http2 = match opts.upstream_protocol_options {
            Some(U::ExplicitHttpConfig(e)) => match e.protocol_config {
                Some(P::Http2ProtocolOptions(_)) => true,
                Some(P::HttpProtocolOptions(_)) | None => false,
                Some(_) => {
                    return Err(ctx.err(
                        format!("{field}.explicit_http_config"),
                        "only HTTP/1.1 and HTTP/2 upstreams are supported",
                    ));
                }
            },
            None => false,
            Some(_) => {
                return Err(ctx.err(
                    format!("{field}.upstream_protocol_options"),
                    "only explicit_http_config is supported",
                ));
            }
        };
    }
    let mut matches = Vec::new();
    for (i, m) in c.transport_socket_matches.iter().enumerate() {
        let field = format!("transport_socket_matches[{i}]");
        let criteria = struct_strings(ctx, &format!("{field}.match"), m.r#match.as_ref())?;
        let tls = upstream_tls(
            ctx,
            &format!("{field}.transport_socket"),
            m.transport_socket.as_ref(),
        )?;
        matches.push(TransportSocketMatch {
            name: m.name.clone(),
            criteria,
            tls,
        });
    }
    let default_tls = upstream_tls(ctx, "transport_socket", c.transport_socket.as_ref())?;
    let bind_source = match &c.upstream_bind_config {
        Some(b) => Some(bind_source(ctx, b)?),
        None => None,
    };
    Ok(Cluster {
        name: c.name.clone(),
        service: service_of(&c.name).map(Arc::from),
        discovery,
        lb,
        connect_timeout,
        http2,
        transport_socket_matches: matches,
        default_tls,
        endpoints,
        bind_source,
        rr: Default::default(),
    })
}

/// The service an Istio-style cluster name points at, for metrics:
/// `outbound|<port>|<subset>|<fqdn>` → fqdn.
pub fn service_of(cluster: &str) -> Option<&str> {
    let mut parts = cluster.splitn(4, '|');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("outbound"), Some(_), Some(_), Some(fqdn)) if !fqdn.is_empty() => Some(fqdn),
        _ => None,
    }
}

/// `upstream_bind_config`: only a source IP (port 0, no other options).
fn bind_source(ctx: &Ctx<'_>, b: &BindConfig) -> Result<std::net::IpAddr, ConfigError> {
    let field = "upstream_bind_config.source_address";
    let Some(sa) = &b.source_address else {
        return Err(ctx.err(field, "a source address is required"));
    };
    if !matches!(
        sa.port_specifier,
        None | Some(socket_address::PortSpecifier::PortValue(0))
    ) {
        return Err(ctx.err(
            format!("{field}.port_value"),
            "only port 0 (any) is supported",
        ));
    }
    if b.freebind.is_some() || !b.socket_options.is_empty() || !b.extra_source_addresses.is_empty()
    {
        return Err(ctx.err("upstream_bind_config", "only source_address is supported"));
    }
    sa.address.parse().map_err(|_| {
        ctx.err(
            format!("{field}.address"),
            format!("{:?} is not an IP address", sa.address),
        )
    })
}

fn struct_strings(
    ctx: &Ctx<'_>,
    field: &str,
    s: Option<&Struct>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut out = BTreeMap::new();
    for (k, v) in s.map(|s| &s.fields).into_iter().flatten() {
        match &v.kind {
            Some(value::Kind::StringValue(s)) => {
                out.insert(k.clone(), s.clone());
            }
            _ => {
                return Err(ctx.err(
                    format!("{field}.{k}"),
                    "only string values are supported in socket matches",
                ));
            }
        }
    }
    Ok(out)
}

fn upstream_tls(
    ctx: &Ctx<'_>,
    field: &str,
    t: Option<&TransportSocket>,
) -> Result<UpstreamTls, ConfigError> {
    let Some(t) = t else {
        return Ok(UpstreamTls::Plaintext);
    };
    let Some(transport_socket::ConfigType::TypedConfig(any)) = &t.config_type else {
        return Err(ctx.err(field, "transport socket without typed_config"));
    };
    if any.type_url == RawBuffer::type_url() {
        return Ok(UpstreamTls::Plaintext);
    }
    let tf = format!("{field}.typed_config");
    let u: UpstreamTlsContext = ctx.decode_any(&tf, any)?;
    let common = u.common_tls_context.unwrap_or_default();
    let cf = format!("{tf}.common_tls_context");
    let certs: Vec<&str> = common
        .tls_certificate_sds_secret_configs
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    if certs != [crate::config::WORKLOAD_CERT] {
        return Err(ctx.err(
            format!("{cf}.tls_certificate_sds_secret_configs"),
            format!(
                "upstream TLS must present the workload certificate {:?} (mesh mTLS); other upstream TLS is not supported",
                crate::config::WORKLOAD_CERT
            ),
        ));
    }
    use common_tls_context::ValidationContextType as V;
    let sans = match &common.validation_context_type {
        Some(V::CombinedValidationContext(c)) => {
            let sds = c
                .validation_context_sds_secret_config
                .as_ref()
                .map(|s| s.name.as_str());
            if sds != Some(crate::config::ROOT_CA) {
                return Err(ctx.err(
                    format!(
                        "{cf}.combined_validation_context.validation_context_sds_secret_config"
                    ),
                    format!("must be the {:?} trust bundle", crate::config::ROOT_CA),
                ));
            }
            let mut sans = Vec::new();
            let dv = c.default_validation_context.clone().unwrap_or_default();
            for (i, m) in dv.match_typed_subject_alt_names.iter().enumerate() {
                let mf = format!(
                    "{cf}.combined_validation_context.default_validation_context.match_typed_subject_alt_names[{i}]"
                );
                if m.san_type != subject_alt_name_matcher::SanType::Uri as i32 {
                    return Err(ctx.err(&mf, "only URI SAN matchers are supported"));
                }
                match m.matcher.as_ref().and_then(|m| m.match_pattern.as_ref()) {
                    Some(string_matcher::MatchPattern::Exact(s)) => sans.push(s.clone()),
                    _ => {
                        return Err(
                            ctx.err(format!("{mf}.matcher"), "only exact matches are supported")
                        );
                    }
                }
            }
            sans
        }
        Some(V::ValidationContextSdsSecretConfig(s)) if s.name == crate::config::ROOT_CA => {
            Vec::new()
        }
        _ => {
            return Err(ctx.err(
                format!("{cf}.validation_context_type"),
                "mesh mTLS needs the ROOTCA trust bundle as validation context",
            ));
        }
    };
    Ok(UpstreamTls::Mesh {
        sni: u.sni.into(),
        sans: sans.into(),
    })
}

fn socket_match(
    ctx: &Ctx<'_>,
    field: &str,
    m: Option<&Metadata>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    struct_strings(
        ctx,
        &format!("{field}.filter_metadata[{SOCKET_MATCH_KEY:?}]"),
        m.and_then(|m| m.filter_metadata.get(SOCKET_MATCH_KEY)),
    )
}

/// The endpoints of a ClusterLoadAssignment.
pub fn endpoints(
    ctx: &Ctx<'_>,
    field: &str,
    cla: &ClusterLoadAssignment,
) -> Result<Arc<[Endpoint]>, ConfigError> {
    let prefix = if field.is_empty() {
        String::new()
    } else {
        format!("{field}.")
    };
    let mut out = Vec::new();
    for (i, loc) in cla.endpoints.iter().enumerate() {
        let lf = format!("{prefix}endpoints[{i}]");
        let locality = loc.locality.clone().unwrap_or_default();
        for (j, lb) in loc.lb_endpoints.iter().enumerate() {
            let ef = format!("{lf}.lb_endpoints[{j}]");
            let Some(lb_endpoint::HostIdentifier::Endpoint(ep)) = &lb.host_identifier else {
                return Err(ctx.err(&ef, "an endpoint address is required"));
            };
            let address = socket_addr(ctx, &format!("{ef}.endpoint.address"), ep.address.as_ref())?;
            let health = match HealthStatus::try_from(lb.health_status) {
                Ok(HealthStatus::Healthy) => Health::Healthy,
                Ok(HealthStatus::Unhealthy) => Health::Unhealthy,
                Ok(HealthStatus::Draining) => Health::Draining,
                Ok(HealthStatus::Timeout) => Health::Timeout,
                Ok(HealthStatus::Degraded) => Health::Degraded,
                _ => Health::Unknown,
            };
            out.push(Endpoint {
                address,
                health,
                weight: lb
                    .load_balancing_weight
                    .as_ref()
                    .map_or(1, |w| w.value.max(1)),
                region: locality.region.clone(),
                zone: locality.zone.clone(),
                priority: loc.priority,
                socket_match: socket_match(ctx, &format!("{ef}.metadata"), lb.metadata.as_ref())?,
            });
        }
    }
    Ok(Arc::from(out))
}

#[cfg(test)]
mod tests {
    use super::service_of;

    #[test]
    fn outbound_cluster_names_point_at_their_service() {
        assert_eq!(
            service_of("outbound|8080|v1|echo.ns.svc.cluster.local"),
            Some("echo.ns.svc.cluster.local")
        );
        assert_eq!(
            service_of("outbound|80||a.b.svc.cluster.local"),
            Some("a.b.svc.cluster.local")
        );
        assert_eq!(service_of("outbound|80||"), None);
        assert_eq!(service_of("inbound|8080||"), None);
        assert_eq!(service_of("passthrough"), None);
    }
}
