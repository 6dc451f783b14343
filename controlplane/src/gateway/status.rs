//! Pure status computation for GatewayClass, Gateway and HTTPRoute, with the
//! condition types and reasons of the Gateway API spec. Each function returns
//! the whole status to write, merged with the one on the object (other
//! controllers' entries and conditions kept); the glue writes it only when
//! it differs.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use weft_api::gateway::gatewayclasses::{GatewayClass, GatewayClassStatus};
use weft_api::gateway::gateways::{
    Gateway, GatewayListenersAllowedRoutesNamespacesFrom, GatewayStatus, GatewayStatusAddresses,
    GatewayStatusListeners, GatewayStatusListenersSupportedKinds,
};
use weft_api::gateway::httproutes::{
    HttpRoute, HttpRouteParentRefs, HttpRouteStatus, HttpRouteStatusParents,
    HttpRouteStatusParentsParentRef,
};

use super::conditions::{Cond, merge};
use super::listeners::{self, GATEWAY_GROUP, HTTP_ROUTE, ListenerVerdict};
use super::render::object_name;
use super::settings::GatewaySettings;
use super::world::{Key, RefEnd, World, key, listener_accepts_hostnames, selector_matches};

fn generation(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> i64 {
    meta.generation.unwrap_or(0)
}

/// `Accepted` of a GatewayClass Weft answers for.
pub fn class_conditions(class: &GatewayClass) -> Vec<Cond> {
    if class.spec.parameters_ref.is_some() {
        return vec![Cond::new(
            "Accepted",
            false,
            "InvalidParameters",
            "parametersRef is not supported by Weft: remove it and configure gateways through MeshInstallation",
        )];
    }
    vec![Cond::new("Accepted", true, "Accepted", "handled by weftd")]
}

/// The status to write on `class`, or `None` if the class is not Weft's.
pub fn class_status(
    class: &GatewayClass,
    settings: &GatewaySettings,
    now: &Time,
) -> Option<GatewayClassStatus> {
    if !settings.is_our_controller(&class.spec.controller_name) {
        return None;
    }
    let existing = class.status.clone().unwrap_or_default();
    let conditions = merge(
        existing.conditions.as_deref().unwrap_or_default(),
        &class_conditions(class),
        generation(&class.metadata),
        now,
    );
    Some(GatewayClassStatus {
        conditions: Some(conditions),
        ..existing
    })
}

/// The class of `gateway` if Weft serves it: the GatewayClass exists and
/// names one of Weft's controllers.
pub fn our_class<'w>(
    gateway: &Gateway,
    world: &'w World,
    settings: &GatewaySettings,
) -> Option<&'w GatewayClass> {
    world
        .classes
        .get(&gateway.spec.gateway_class_name)
        .filter(|c| settings.is_our_controller(&c.spec.controller_name))
}

fn gateway_key(gateway: &Gateway) -> Key {
    key(
        gateway.metadata.namespace.as_deref().unwrap_or_default(),
        gateway.metadata.name.as_deref().unwrap_or_default(),
    )
}

/// The Gateway a parentRef points at, if it points at a Gateway.
fn parent_gateway(parent: &HttpRouteParentRefs, route_ns: &str) -> Option<Key> {
    let group = parent.group.as_deref().unwrap_or(GATEWAY_GROUP);
    let kind = parent.kind.as_deref().unwrap_or("Gateway");
    (group == GATEWAY_GROUP && kind == "Gateway").then(|| {
        key(
            parent.namespace.as_deref().unwrap_or(route_ns),
            &parent.name,
        )
    })
}

/// How one parentRef of a route fares on one Gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParentVerdict {
    pub accepted: Cond,
    /// Listeners the route is attached to (empty unless accepted).
    pub listeners: Vec<String>,
}

fn namespace_allowed(
    gateway: &Gateway,
    listener: &weft_api::gateway::gateways::GatewayListeners,
    route_ns: &str,
    world: &World,
) -> bool {
    let gw_ns = gateway.metadata.namespace.as_deref().unwrap_or_default();
    let namespaces = listener
        .allowed_routes
        .as_ref()
        .and_then(|a| a.namespaces.as_ref());
    let from = namespaces.and_then(|n| n.from.clone());
    match from.unwrap_or(GatewayListenersAllowedRoutesNamespacesFrom::Same) {
        GatewayListenersAllowedRoutesNamespacesFrom::Same => route_ns == gw_ns,
        GatewayListenersAllowedRoutesNamespacesFrom::All => true,
        GatewayListenersAllowedRoutesNamespacesFrom::Selector => {
            let Some(selector) = namespaces.and_then(|n| n.selector.as_ref()) else {
                return false;
            };
            let expressions: Vec<(String, String, Vec<String>)> = selector
                .match_expressions
                .iter()
                .flatten()
                .map(|e| {
                    (
                        e.key.clone(),
                        e.operator.clone(),
                        e.values.clone().unwrap_or_default(),
                    )
                })
                .collect();
            let empty = BTreeMap::new();
            let labels = world.namespaces.get(route_ns).unwrap_or(&empty);
            selector_matches(selector.match_labels.as_ref(), &expressions, labels)
        }
    }
}

/// Whether the route may attach through `parent` to `gateway`, and where.
pub fn parent_verdict(
    route: &HttpRoute,
    parent: &HttpRouteParentRefs,
    gateway: &Gateway,
    world: &World,
) -> ParentVerdict {
    let route_ns = route.metadata.namespace.as_deref().unwrap_or_default();
    let candidates: Vec<_> = gateway
        .spec
        .listeners
        .iter()
        .filter(|l| parent.section_name.as_ref().is_none_or(|s| *s == l.name))
        .filter(|l| parent.port.is_none_or(|p| p == l.port))
        .collect();
    let reject = |reason, message: String| ParentVerdict {
        accepted: Cond::new("Accepted", false, reason, message),
        listeners: vec![],
    };
    if candidates.is_empty() {
        return reject(
            "NoMatchingParent",
            format!(
                "gateway has no listener matching sectionName {} and port {}",
                parent.section_name.as_deref().unwrap_or("(any)"),
                parent.port.map_or("(any)".to_owned(), |p| p.to_string())
            ),
        );
    }
    let allowed: Vec<_> = candidates
        .into_iter()
        .filter(|l| {
            listeners::accepts_http_routes(l) && namespace_allowed(gateway, l, route_ns, world)
        })
        .collect();
    if allowed.is_empty() {
        return reject(
            "NotAllowedByListeners",
            format!("no listener allows HTTPRoutes from namespace {route_ns} (see allowedRoutes)"),
        );
    }
    let hostnames = route.spec.hostnames.clone().unwrap_or_default();
    let matching: Vec<String> = allowed
        .into_iter()
        .filter(|l| listener_accepts_hostnames(l.hostname.as_deref(), &hostnames))
        .map(|l| l.name.clone())
        .collect();
    if matching.is_empty() {
        return reject(
            "NoMatchingListenerHostname",
            format!(
                "no listener hostname intersects the route's hostnames {}",
                hostnames.join(", ")
            ),
        );
    }
    ParentVerdict {
        accepted: Cond::new(
            "Accepted",
            true,
            "Accepted",
            format!("attached to listeners {}", matching.join(", ")),
        ),
        listeners: matching,
    }
}

/// `ResolvedRefs` of a route: every backendRef names an existing Service
/// port this route may refer to.
pub fn resolved_refs(route: &HttpRoute, world: &World) -> Cond {
    let route_ns = route.metadata.namespace.as_deref().unwrap_or_default();
    let mut problems: Vec<(&'static str, String)> = Vec::new();
    for rule in route.spec.rules.iter().flatten() {
        for b in rule.backend_refs.iter().flatten() {
            let group = b.group.as_deref().unwrap_or("");
            let kind = b.kind.as_deref().unwrap_or("Service");
            let ns = b.namespace.as_deref().unwrap_or(route_ns);
            if !group.is_empty() || kind != "Service" {
                problems.push((
                    "InvalidKind",
                    format!(
                        "backendRef {group}/{kind} {}: only Services are supported",
                        b.name
                    ),
                ));
                continue;
            }
            let from = RefEnd {
                group: GATEWAY_GROUP,
                kind: HTTP_ROUTE,
                namespace: route_ns,
            };
            let to = RefEnd {
                group: "",
                kind: "Service",
                namespace: ns,
            };
            if !world.reference_allowed(from, to, &b.name) {
                problems.push((
                    "RefNotPermitted",
                    format!("Service {ns}/{} is in another namespace and no ReferenceGrant in {ns} allows HTTPRoutes from {route_ns}", b.name),
                ));
                continue;
            }
            match world.services.get(&key(ns, &b.name)) {
                None => problems.push((
                    "BackendNotFound",
                    format!("Service {ns}/{} does not exist", b.name),
                )),
                Some(svc) => {
                    if let Some(port) = b.port.filter(|p| !svc.ports.contains(p)) {
                        problems.push((
                            "BackendNotFound",
                            format!("Service {ns}/{} has no port {port}", b.name),
                        ));
                    }
                }
            }
        }
    }
    match problems.first() {
        None => Cond::new(
            "ResolvedRefs",
            true,
            "ResolvedRefs",
            "all backend references resolved",
        ),
        Some((reason, _)) => Cond::new(
            "ResolvedRefs",
            false,
            reason,
            problems
                .iter()
                .map(|(_, m)| m.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        ),
    }
}

/// For every Weft gateway, the number of routes attached to each listener.
pub fn attached_routes(
    world: &World,
    settings: &GatewaySettings,
) -> BTreeMap<Key, BTreeMap<String, i32>> {
    let gateways: BTreeMap<Key, &Gateway> = world
        .gateways
        .iter()
        .filter(|g| our_class(g, world, settings).is_some())
        .map(|g| (gateway_key(g), g))
        .collect();
    let mut counts: BTreeMap<Key, BTreeMap<String, i32>> = BTreeMap::new();
    for route in &world.routes {
        let route_ns = route.metadata.namespace.as_deref().unwrap_or_default();
        let mut attached: BTreeMap<Key, std::collections::BTreeSet<String>> = BTreeMap::new();
        for parent in route.spec.parent_refs.iter().flatten() {
            let Some(gw_key) = parent_gateway(parent, route_ns) else {
                continue;
            };
            let Some(gateway) = gateways.get(&gw_key) else {
                continue;
            };
            let verdict = parent_verdict(route, parent, gateway, world);
            attached
                .entry(gw_key)
                .or_default()
                .extend(verdict.listeners);
        }
        for (gw_key, listeners) in attached {
            let per_listener = counts.entry(gw_key).or_default();
            for l in listeners {
                *per_listener.entry(l).or_default() += 1;
            }
        }
    }
    counts
}

/// The status to write on a Weft gateway (`None` if it is not Weft's).
pub fn gateway_status(
    gateway: &Gateway,
    world: &World,
    settings: &GatewaySettings,
    attached: &BTreeMap<Key, BTreeMap<String, i32>>,
    now: &Time,
) -> Option<GatewayStatus> {
    our_class(gateway, world, settings)?;
    let generation = generation(&gateway.metadata);
    let gw_key = gateway_key(gateway);
    let verdicts = listeners::evaluate(gateway, world);
    let valid = verdicts.iter().filter(|v| v.valid()).count();

    let accepted = if gateway
        .spec
        .addresses
        .as_ref()
        .is_some_and(|a| !a.is_empty())
    {
        Cond::new(
            "Accepted",
            false,
            "UnsupportedAddress",
            "spec.addresses is not supported by Weft yet: remove it; the address comes from the gateway's Service",
        )
    } else if gateway
        .spec
        .infrastructure
        .as_ref()
        .is_some_and(|i| i.parameters_ref.is_some())
    {
        Cond::new(
            "Accepted",
            false,
            "InvalidParameters",
            "spec.infrastructure.parametersRef is not supported by Weft yet: remove it",
        )
    } else if valid == 0 {
        Cond::new(
            "Accepted",
            false,
            "ListenersNotValid",
            "no listener is valid: see status.listeners",
        )
    } else if valid < verdicts.len() {
        Cond::new(
            "Accepted",
            true,
            "ListenersNotValid",
            "some listeners are not valid: see status.listeners",
        )
    } else {
        Cond::new("Accepted", true, "Accepted", "gateway accepted")
    };

    let name = object_name(&gw_key.1, &gateway.spec.gateway_class_name);
    let object = key(&gw_key.0, &name);
    let deployment_ready = world
        .deployments
        .get(&object)
        .is_some_and(|d| d.available_replicas > 0);
    let service = world.services.get(&object);
    let programmed = if !accepted.status {
        Cond::new(
            "Programmed",
            false,
            "Invalid",
            "gateway is not accepted: see the Accepted condition",
        )
    } else if !deployment_ready {
        Cond::new(
            "Programmed",
            false,
            "Pending",
            format!("waiting for Deployment {name} to have an available replica"),
        )
    } else if service.is_none() {
        Cond::new(
            "Programmed",
            false,
            "Pending",
            format!("waiting for Service {name}"),
        )
    } else {
        Cond::new(
            "Programmed",
            true,
            "Programmed",
            format!("gateway runs as Deployment {name} behind Service {name}"),
        )
    };

    let existing = gateway.status.clone().unwrap_or_default();
    let conditions = merge(
        existing.conditions.as_deref().unwrap_or_default(),
        &[accepted, programmed.clone()],
        generation,
        now,
    );

    let counts = attached.get(&gw_key);
    let listeners = verdicts
        .iter()
        .map(|v| {
            listener_status(
                v,
                &programmed,
                counts,
                existing.listeners.as_deref().unwrap_or_default(),
                generation,
                now,
            )
        })
        .collect();

    let addresses = service.map(addresses).filter(|a| !a.is_empty());
    Some(GatewayStatus {
        addresses,
        conditions: Some(conditions),
        listeners: Some(listeners),
        ..existing
    })
}

fn listener_status(
    v: &ListenerVerdict,
    gateway_programmed: &Cond,
    counts: Option<&BTreeMap<String, i32>>,
    existing: &[GatewayStatusListeners],
    generation: i64,
    now: &Time,
) -> GatewayStatusListeners {
    let mut ours = v.conditions.clone();
    ours.push(if !v.valid() {
        Cond::new(
            "Programmed",
            false,
            "Invalid",
            "listener is not valid: see its other conditions",
        )
    } else if gateway_programmed.status {
        Cond::new("Programmed", true, "Programmed", "listener programmed")
    } else {
        // The gateway's reason (Invalid or Pending) is the listener's too.
        Cond::new(
            "Programmed",
            false,
            gateway_programmed.reason,
            gateway_programmed.message.clone(),
        )
    });
    let previous = existing
        .iter()
        .find(|l| l.name == v.name)
        .map(|l| l.conditions.as_slice())
        .unwrap_or_default();
    GatewayStatusListeners {
        attached_routes: counts.and_then(|c| c.get(&v.name)).copied().unwrap_or(0),
        conditions: merge(previous, &ours, generation, now),
        name: v.name.clone(),
        supported_kinds: Some(if v.http_routes {
            vec![GatewayStatusListenersSupportedKinds {
                group: Some(GATEWAY_GROUP.to_owned()),
                kind: HTTP_ROUTE.to_owned(),
            }]
        } else {
            vec![]
        }),
    }
}

fn addresses(service: &super::world::ServiceFacts) -> Vec<GatewayStatusAddresses> {
    let address = |type_: &str, value: &str| GatewayStatusAddresses {
        r#type: Some(type_.to_owned()),
        value: value.to_owned(),
    };
    if !service.ingress.is_empty() {
        return service.ingress.iter().map(|(t, v)| address(t, v)).collect();
    }
    service
        .cluster_ip
        .iter()
        .filter(|ip| !ip.is_empty() && *ip != "None")
        .map(|ip| address("IPAddress", ip))
        .collect()
}

fn status_parent_ref(p: &HttpRouteParentRefs) -> HttpRouteStatusParentsParentRef {
    HttpRouteStatusParentsParentRef {
        group: p.group.clone(),
        kind: p.kind.clone(),
        name: p.name.clone(),
        namespace: p.namespace.clone(),
        port: p.port,
        section_name: p.section_name.clone(),
    }
}

/// The status to write on `route`: one entry per parentRef that names a
/// Weft gateway, entries of other controllers kept. `None` if the route
/// concerns no Weft gateway and carries no entry of ours.
pub fn route_status(
    route: &HttpRoute,
    world: &World,
    settings: &GatewaySettings,
    now: &Time,
) -> Option<HttpRouteStatus> {
    let route_ns = route.metadata.namespace.as_deref().unwrap_or_default();
    let generation = generation(&route.metadata);
    let existing = route.status.clone().unwrap_or_default();
    let mut parents: Vec<HttpRouteStatusParents> = existing
        .parents
        .iter()
        .filter(|p| !settings.is_our_controller(&p.controller_name))
        .cloned()
        .collect();
    let had_ours = parents.len() != existing.parents.len();
    let resolved = resolved_refs(route, world);
    let mut seen = Vec::new();
    for parent in route.spec.parent_refs.iter().flatten() {
        let Some(gw_key) = parent_gateway(parent, route_ns) else {
            continue;
        };
        let Some(gateway) = world.gateways.iter().find(|g| gateway_key(g) == gw_key) else {
            continue;
        };
        let Some(class) = our_class(gateway, world, settings) else {
            continue;
        };
        let parent_ref = status_parent_ref(parent);
        if seen.contains(&parent_ref) {
            continue;
        }
        seen.push(parent_ref.clone());
        let verdict = parent_verdict(route, parent, gateway, world);
        let previous = existing
            .parents
            .iter()
            .find(|p| p.parent_ref == parent_ref && p.controller_name == class.spec.controller_name)
            .map(|p| p.conditions.as_slice())
            .unwrap_or_default();
        parents.push(HttpRouteStatusParents {
            conditions: merge(
                previous,
                &[verdict.accepted, resolved.clone()],
                generation,
                now,
            ),
            controller_name: class.spec.controller_name.clone(),
            parent_ref,
        });
    }
    (had_ours || !seen.is_empty()).then_some(HttpRouteStatus { parents })
}
