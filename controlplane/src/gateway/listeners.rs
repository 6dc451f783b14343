//! Listener checks: protocol support, TLS certificate references, route
//! kinds and conflicts between listeners, with the Gateway API's reasons.

use weft_api::gateway::gateways::{Gateway, GatewayListeners, GatewayListenersTlsMode};

use super::conditions::Cond;
use super::world::{RefEnd, World, key};

pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";
pub const HTTP_ROUTE: &str = "HTTPRoute";

/// What Weft's gateway proxy serves today: HTTP, and HTTPS terminated at
/// the gateway. TLS passthrough, TCP and UDP listeners are refused with
/// `UnsupportedProtocol` until the proxy and translation support them.
pub fn protocol_supported(protocol: &str) -> bool {
    matches!(protocol, "HTTP" | "HTTPS")
}

/// A listener's verdict and its conditions (without `Programmed`, which
/// depends on the running Deployment too).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerVerdict {
    pub name: String,
    pub accepted: bool,
    pub resolved: bool,
    pub conflicted: bool,
    /// Route kinds this listener takes (`HTTPRoute` or nothing).
    pub http_routes: bool,
    pub conditions: Vec<Cond>,
}

impl ListenerVerdict {
    /// Can carry traffic once the proxy runs.
    pub fn valid(&self) -> bool {
        self.accepted && self.resolved && !self.conflicted
    }
}

/// Whether `listener` accepts HTTPRoutes (its `allowedRoutes.kinds`, or by
/// default what its protocol carries).
pub fn accepts_http_routes(listener: &GatewayListeners) -> bool {
    if !protocol_supported(&listener.protocol) {
        return false;
    }
    match listener
        .allowed_routes
        .as_ref()
        .and_then(|a| a.kinds.as_ref())
    {
        None => true,
        Some(kinds) => kinds.iter().any(|k| {
            k.kind == HTTP_ROUTE && k.group.as_deref().unwrap_or(GATEWAY_GROUP) == GATEWAY_GROUP
        }),
    }
}

fn invalid_route_kinds(listener: &GatewayListeners) -> Vec<String> {
    listener
        .allowed_routes
        .as_ref()
        .and_then(|a| a.kinds.as_ref())
        .into_iter()
        .flatten()
        .filter(|k| {
            !(k.kind == HTTP_ROUTE
                && k.group.as_deref().unwrap_or(GATEWAY_GROUP) == GATEWAY_GROUP
                && protocol_supported(&listener.protocol))
        })
        .map(|k| format!("{}/{}", k.group.as_deref().unwrap_or(GATEWAY_GROUP), k.kind))
        .collect()
}

/// The first problem with the listener's TLS certificates, as
/// `(reason, message)`.
fn certificate_problem(
    gateway: &Gateway,
    listener: &GatewayListeners,
    world: &World,
) -> Option<(&'static str, String)> {
    if listener.protocol != "HTTPS" {
        return None;
    }
    let gw_ns = gateway.metadata.namespace.as_deref().unwrap_or_default();
    let refs = listener
        .tls
        .as_ref()
        .and_then(|t| t.certificate_refs.as_ref())
        .filter(|r| !r.is_empty());
    let Some(refs) = refs else {
        return Some((
            "InvalidCertificateRef",
            "HTTPS listener needs tls.certificateRefs naming a kubernetes.io/tls Secret".to_owned(),
        ));
    };
    for r in refs {
        let group = r.group.as_deref().unwrap_or("");
        let kind = r.kind.as_deref().unwrap_or("Secret");
        let ns = r.namespace.as_deref().unwrap_or(gw_ns);
        if !(group.is_empty() || group == "core") || kind != "Secret" {
            return Some((
                "InvalidCertificateRef",
                format!(
                    "certificateRef {group}/{kind} {ns}/{}: only core Secrets are supported",
                    r.name
                ),
            ));
        }
        let from = RefEnd {
            group: GATEWAY_GROUP,
            kind: "Gateway",
            namespace: gw_ns,
        };
        let to = RefEnd {
            group: "",
            kind: "Secret",
            namespace: ns,
        };
        if !world.reference_allowed(from, to, &r.name) {
            return Some((
                "RefNotPermitted",
                format!(
                    "Secret {ns}/{} is in another namespace and no ReferenceGrant in {ns} allows Gateways from {gw_ns} to use it",
                    r.name
                ),
            ));
        }
        if !world.secrets.contains(&key(ns, &r.name)) {
            return Some((
                "InvalidCertificateRef",
                format!(
                    "Secret {ns}/{} does not exist: create it (type kubernetes.io/tls)",
                    r.name
                ),
            ));
        }
    }
    None
}

/// Checks every listener of `gateway`.
pub fn evaluate(gateway: &Gateway, world: &World) -> Vec<ListenerVerdict> {
    let listeners = &gateway.spec.listeners;
    listeners
        .iter()
        .map(|l| {
            let mut conditions = Vec::new();
            let passthrough = l.protocol == "HTTPS"
                && matches!(
                    l.tls.as_ref().and_then(|t| t.mode.as_ref()),
                    Some(GatewayListenersTlsMode::Passthrough)
                );
            let accepted = if !protocol_supported(&l.protocol) {
                conditions.push(Cond::new(
                    "Accepted",
                    false,
                    "UnsupportedProtocol",
                    format!(
                        "protocol {} is not supported by Weft's gateway yet: use HTTP or HTTPS",
                        l.protocol
                    ),
                ));
                false
            } else if passthrough {
                conditions.push(Cond::new(
                    "Accepted",
                    false,
                    "UnsupportedValue",
                    "HTTPS listeners terminate TLS: tls.mode Passthrough needs protocol TLS",
                ));
                false
            } else {
                conditions.push(Cond::new("Accepted", true, "Accepted", "listener accepted"));
                true
            };

            let bad_kinds = invalid_route_kinds(l);
            let resolved = if let Some((reason, message)) = certificate_problem(gateway, l, world) {
                conditions.push(Cond::new("ResolvedRefs", false, reason, message));
                false
            } else if !bad_kinds.is_empty() {
                conditions.push(Cond::new(
                    "ResolvedRefs",
                    false,
                    "InvalidRouteKinds",
                    format!(
                        "unsupported route kinds {}: this listener takes HTTPRoute",
                        bad_kinds.join(", ")
                    ),
                ));
                false
            } else {
                conditions.push(Cond::new(
                    "ResolvedRefs",
                    true,
                    "ResolvedRefs",
                    "all references resolved",
                ));
                true
            };

            let conflict = conflict_with_others(l, listeners);
            let conflicted = match conflict {
                Some((reason, message)) => {
                    conditions.push(Cond::new("Conflicted", true, reason, message));
                    true
                }
                None => {
                    conditions.push(Cond::new(
                        "Conflicted",
                        false,
                        "NoConflicts",
                        "no conflicts",
                    ));
                    false
                }
            };
            ListenerVerdict {
                name: l.name.clone(),
                accepted,
                resolved,
                conflicted,
                http_routes: accepts_http_routes(l),
                conditions,
            }
        })
        .collect()
}

fn tls_family(protocol: &str) -> &str {
    match protocol {
        "HTTPS" | "TLS" => "tls",
        "HTTP" => "http",
        other => other,
    }
}

fn conflict_with_others(
    l: &GatewayListeners,
    all: &[GatewayListeners],
) -> Option<(&'static str, String)> {
    let others = all.iter().filter(|o| o.name != l.name && o.port == l.port);
    let mut hostname_conflict = None;
    for o in others {
        if tls_family(&o.protocol) != tls_family(&l.protocol)
            || (o.protocol == "TCP") != (l.protocol == "TCP")
        {
            return Some((
                "ProtocolConflict",
                format!(
                    "listener {} uses port {} with protocol {}",
                    o.name, o.port, o.protocol
                ),
            ));
        }
        if o.hostname == l.hostname {
            hostname_conflict = Some((
                "HostnameConflict",
                format!(
                    "listener {} uses port {} with the same hostname {}",
                    o.name,
                    o.port,
                    o.hostname.as_deref().unwrap_or("(any)")
                ),
            ));
        }
    }
    hostname_conflict
}
