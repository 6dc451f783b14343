//! RouteConfiguration compilation: virtual hosts, path / header / query
//! matches, forwarding to one or weighted clusters with timeout, rewrite
//! and retry policy, direct responses and redirects — what weftd emits for
//! VirtualServices and HTTPRoutes.

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::data_source;
use envoy_types::pb::envoy::config::route::v3::{
    HeaderMatcher, Route as PbRoute, RouteConfiguration, header_matcher, query_parameter_matcher,
    redirect_action, route, route_action, route_match,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher};
use regex::Regex;

use super::error::{ConfigError, Ctx};
use super::model::{
    Forward, HeaderMatch, PathMatch, QueryMatch, Redirect, RetryPolicy, Route, RouteAction,
    RouteMatch, RouteTable, StringMatch, VirtualHost,
};

pub fn compile(
    ctx: &Ctx<'_>,
    field: &str,
    rc: &RouteConfiguration,
) -> Result<RouteTable, ConfigError> {
    let mut virtual_hosts = Vec::with_capacity(rc.virtual_hosts.len());
    for (i, vh) in rc.virtual_hosts.iter().enumerate() {
        let vf = format!("{field}virtual_hosts[{i}]");
        if vh.domains.is_empty() {
            return Err(ctx.err(format!("{vf}.domains"), "at least one domain is required"));
        }
        let routes = vh
            .routes
            .iter()
            .enumerate()
            .map(|(j, r)| compile_route(ctx, &format!("{vf}.routes[{j}]"), r))
            .collect::<Result<Vec<_>, _>>()?;
        virtual_hosts.push(VirtualHost {
            name: vh.name.clone(),
            domains: vh.domains.clone(),
            routes,
        });
    }
    Ok(RouteTable {
        name: rc.name.clone(),
        virtual_hosts,
    })
}

fn duration(d: &envoy_types::pb::google::protobuf::Duration) -> Option<Duration> {
    let secs = u64::try_from(d.seconds).ok()?;
    let nanos = u32::try_from(d.nanos).ok()?;
    let d = Duration::new(secs, nanos);
    (!d.is_zero()).then_some(d)
}

fn regex(ctx: &Ctx<'_>, field: &str, re: &str) -> Result<Regex, ConfigError> {
    // Envoy's safe_regex matches the whole value.
    Regex::new(&format!("^(?:{re})$"))
        .map_err(|e| ctx.err(field, format!("invalid regex {re:?}: {e}")))
}

fn string_match(ctx: &Ctx<'_>, field: &str, m: &StringMatcher) -> Result<StringMatch, ConfigError> {
    use string_matcher::MatchPattern;
    Ok(match &m.match_pattern {
        Some(MatchPattern::Exact(s)) => StringMatch::Exact(s.clone()),
        Some(MatchPattern::Prefix(s)) => StringMatch::Prefix(s.clone()),
        Some(MatchPattern::Suffix(s)) => StringMatch::Suffix(s.clone()),
        Some(MatchPattern::Contains(s)) => StringMatch::Contains(s.clone()),
        Some(MatchPattern::SafeRegex(r)) => {
            StringMatch::Regex(regex(ctx, &format!("{field}.safe_regex"), &r.regex)?)
        }
        _ => return Err(ctx.err(field, "unsupported string matcher")),
    })
}

fn header(ctx: &Ctx<'_>, field: &str, h: &HeaderMatcher) -> Result<HeaderMatch, ConfigError> {
    use header_matcher::HeaderMatchSpecifier as S;
    let (value, ignore_case) = match &h.header_match_specifier {
        None => (None, false),
        Some(S::PresentMatch(true)) => (None, false),
        Some(S::StringMatch(m)) => (
            Some(string_match(ctx, &format!("{field}.string_match"), m)?),
            m.ignore_case,
        ),
        Some(_) => {
            return Err(ctx.err(
                format!("{field}.header_match_specifier"),
                "only string_match and present_match are supported",
            ));
        }
    };
    Ok(HeaderMatch {
        name: h.name.to_ascii_lowercase(),
        value,
        ignore_case,
        invert: h.invert_match,
    })
}

fn compile_route(ctx: &Ctx<'_>, field: &str, r: &PbRoute) -> Result<Route, ConfigError> {
    let Some(m) = &r.r#match else {
        return Err(ctx.err(format!("{field}.match"), "a match is required"));
    };
    let mf = format!("{field}.match");
    use route_match::PathSpecifier as P;
    let path = match &m.path_specifier {
        Some(P::Prefix(p)) => PathMatch::Prefix(p.clone()),
        Some(P::Path(p)) => PathMatch::Exact(p.clone()),
        Some(P::PathSeparatedPrefix(p)) => PathMatch::SeparatedPrefix(p.clone()),
        Some(P::SafeRegex(re)) => {
            PathMatch::Regex(regex(ctx, &format!("{mf}.safe_regex"), &re.regex)?)
        }
        _ => {
            return Err(ctx.err(
                format!("{mf}.path_specifier"),
                "prefix, path, path_separated_prefix or safe_regex is required",
            ));
        }
    };
    let headers = m
        .headers
        .iter()
        .enumerate()
        .map(|(i, h)| header(ctx, &format!("{mf}.headers[{i}]"), h))
        .collect::<Result<Vec<_>, _>>()?;
    let mut query = Vec::new();
    for (i, q) in m.query_parameters.iter().enumerate() {
        use query_parameter_matcher::QueryParameterMatchSpecifier as Q;
        let qf = format!("{mf}.query_parameters[{i}]");
        let (value, ignore_case) = match &q.query_parameter_match_specifier {
            Some(Q::StringMatch(s)) => (
                Some(string_match(ctx, &format!("{qf}.string_match"), s)?),
                s.ignore_case,
            ),
            Some(Q::PresentMatch(true)) | None => (None, false),
            Some(Q::PresentMatch(false)) => {
                return Err(ctx.err(qf, "present_match: false is not supported"));
            }
        };
        query.push(QueryMatch {
            name: q.name.clone(),
            value,
            ignore_case,
        });
    }
    let matcher = RouteMatch {
        path,
        case_sensitive: m.case_sensitive.as_ref().is_none_or(|b| b.value),
        headers,
        query,
    };
    let action = match &r.action {
        Some(route::Action::Route(ra)) => {
            let af = format!("{field}.route");
            use route_action::ClusterSpecifier as C;
            let clusters = match &ra.cluster_specifier {
                Some(C::Cluster(c)) => vec![(c.clone(), 1)],
                Some(C::WeightedClusters(w)) => {
                    let cs: Vec<(String, u32)> = w
                        .clusters
                        .iter()
                        .map(|c| (c.name.clone(), c.weight.as_ref().map_or(1, |w| w.value)))
                        .collect();
                    if cs.is_empty() || cs.iter().all(|(_, w)| *w == 0) {
                        return Err(ctx.err(
                            format!("{af}.weighted_clusters"),
                            "at least one cluster with a positive weight is required",
                        ));
                    }
                    cs
                }
                _ => {
                    return Err(ctx.err(
                        format!("{af}.cluster_specifier"),
                        "cluster or weighted_clusters is required",
                    ));
                }
            };
            let host_rewrite = match &ra.host_rewrite_specifier {
                None => None,
                Some(route_action::HostRewriteSpecifier::HostRewriteLiteral(h)) => {
                    Some(http::uri::Authority::try_from(h.as_str()).map_err(|e| {
                        ctx.err(
                            format!("{af}.host_rewrite_literal"),
                            format!("{h:?} is not a host[:port]: {e}"),
                        )
                    })?)
                }
                Some(_) => {
                    return Err(ctx.err(
                        format!("{af}.host_rewrite_specifier"),
                        "only host_rewrite_literal is supported",
                    ));
                }
            };
            let retry = ra.retry_policy.as_ref().map(|p| RetryPolicy {
                retry_on: p
                    .retry_on
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
                num_retries: p.num_retries.as_ref().map_or(1, |n| n.value),
                per_try_timeout: p.per_try_timeout.as_ref().and_then(duration),
            });
            RouteAction::Forward(Forward {
                clusters,
                timeout: ra.timeout.as_ref().and_then(duration),
                prefix_rewrite: (!ra.prefix_rewrite.is_empty()).then(|| ra.prefix_rewrite.clone()),
                host_rewrite,
                retry,
            })
        }
        Some(route::Action::DirectResponse(d)) => {
            let status = u16::try_from(d.status)
                .ok()
                .filter(|s| (200..600).contains(s))
                .ok_or_else(|| {
                    ctx.err(
                        format!("{field}.direct_response.status"),
                        format!("{} is not an HTTP status", d.status),
                    )
                })?;
            let body = match d.body.as_ref().and_then(|b| b.specifier.as_ref()) {
                None => None,
                Some(data_source::Specifier::InlineString(s)) => Some(s.clone()),
                Some(data_source::Specifier::InlineBytes(b)) => {
                    Some(String::from_utf8_lossy(b).into_owned())
                }
                Some(_) => {
                    return Err(ctx.err(
                        format!("{field}.direct_response.body"),
                        "only inline bodies are supported",
                    ));
                }
            };
            RouteAction::Direct { status, body }
        }
        Some(route::Action::Redirect(r)) => {
            use redirect_action::RedirectResponseCode as Code;
            let status = match Code::try_from(r.response_code) {
                Ok(Code::Found) => 302,
                Ok(Code::SeeOther) => 303,
                Ok(Code::TemporaryRedirect) => 307,
                Ok(Code::PermanentRedirect) => 308,
                _ => 301,
            };
            let path = match &r.path_rewrite_specifier {
                None => None,
                Some(redirect_action::PathRewriteSpecifier::PathRedirect(p)) => Some(p.clone()),
                Some(_) => {
                    return Err(ctx.err(
                        format!("{field}.redirect.path_rewrite_specifier"),
                        "only path_redirect is supported",
                    ));
                }
            };
            let scheme = match &r.scheme_rewrite_specifier {
                None => None,
                Some(redirect_action::SchemeRewriteSpecifier::SchemeRedirect(s)) => Some(s.clone()),
                Some(redirect_action::SchemeRewriteSpecifier::HttpsRedirect(true)) => {
                    Some("https".into())
                }
                Some(redirect_action::SchemeRewriteSpecifier::HttpsRedirect(false)) => None,
            };
            RouteAction::Redirect(Redirect {
                host: (!r.host_redirect.is_empty()).then(|| r.host_redirect.clone()),
                port: u16::try_from(r.port_redirect).ok().filter(|p| *p != 0),
                path,
                scheme,
                status,
            })
        }
        _ => {
            return Err(ctx.err(
                field.to_owned(),
                "route, direct_response or redirect is required",
            ));
        }
    };
    Ok(Route {
        name: r.name.clone(),
        matcher,
        action,
    })
}
