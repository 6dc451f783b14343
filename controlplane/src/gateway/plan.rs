//! One pass of the controller as a pure function: from the [`World`] to
//! what must be written — objects to apply, objects to prune, and only the
//! statuses that differ from what the objects already carry.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use weft_api::gateway::gatewayclasses::{GatewayClass, GatewayClassStatus};
use weft_api::gateway::gateways::GatewayStatus;
use weft_api::gateway::httproutes::HttpRouteStatus;

use super::conditions::is_stale;
use super::render::{GatewayObjects, render, render_class};
use super::settings::GatewaySettings;
use super::status::{attached_routes, class_status, gateway_status, our_class, route_status};
use super::world::{Key, World, key};

/// Kinds of the objects Weft renders for a gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ManagedKind {
    ServiceAccount,
    Deployment,
    Service,
}

/// An object in the cluster that carries Weft's gateway labels.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ManagedRef {
    pub kind: ManagedKind,
    pub namespace: String,
    pub name: String,
}

/// A status to write, guarded by the resourceVersion it was computed from.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusWrite<S> {
    pub namespace: Option<String>,
    pub name: String,
    pub resource_version: Option<String>,
    pub status: S,
}

/// What one pass writes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub classes: Vec<GatewayClass>,
    pub objects: Vec<GatewayObjects>,
    pub prune: Vec<ManagedRef>,
    pub class_statuses: Vec<StatusWrite<GatewayClassStatus>>,
    pub gateway_statuses: Vec<StatusWrite<GatewayStatus>>,
    pub route_statuses: Vec<StatusWrite<HttpRouteStatus>>,
    /// Gateways that could not be rendered, with the reason.
    pub errors: Vec<String>,
}

fn write<S>(meta: &ObjectMeta, status: S) -> StatusWrite<S> {
    StatusWrite {
        namespace: meta.namespace.clone(),
        name: meta.name.clone().unwrap_or_default(),
        resource_version: meta.resource_version.clone(),
        status,
    }
}

fn conditions_stale(
    conditions: Option<&Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>>,
    meta: &ObjectMeta,
) -> bool {
    conditions.is_some_and(|c| is_stale(c, meta.generation.unwrap_or(0)))
}

/// Computes the pass. `managed` lists the objects in the cluster that carry
/// Weft's gateway labels (candidates for pruning).
pub fn plan(world: &World, managed: &[ManagedRef], settings: &GatewaySettings, now: &Time) -> Plan {
    let mut plan = Plan::default();
    if settings.manage_classes {
        plan.classes = settings.classes.iter().map(render_class).collect();
    }
    for class in world.classes.values() {
        let stale = conditions_stale(
            class.status.as_ref().and_then(|s| s.conditions.as_ref()),
            &class.metadata,
        );
        if let Some(status) = class_status(class, settings, now)
            .filter(|s| !stale && Some(s) != class.status.as_ref())
        {
            plan.class_statuses.push(write(&class.metadata, status));
        }
    }

    let attached = attached_routes(world, settings);
    let mut desired: BTreeSet<Key> = BTreeSet::new();
    for gateway in world
        .gateways
        .iter()
        .filter(|g| our_class(g, world, settings).is_some())
    {
        match render(gateway, settings) {
            Ok(objects) => {
                let meta = &objects.deployment.metadata;
                desired.insert(key(
                    meta.namespace.as_deref().unwrap_or_default(),
                    meta.name.as_deref().unwrap_or_default(),
                ));
                plan.objects.push(objects);
            }
            Err(e) => plan.errors.push(format!(
                "gateway {}/{}: {e}",
                gateway.metadata.namespace.as_deref().unwrap_or_default(),
                gateway.metadata.name.as_deref().unwrap_or_default()
            )),
        }
        let stale = conditions_stale(
            gateway.status.as_ref().and_then(|s| s.conditions.as_ref()),
            &gateway.metadata,
        );
        if let Some(status) = gateway_status(gateway, world, settings, &attached, now)
            .filter(|s| !stale && Some(s) != gateway.status.as_ref())
        {
            plan.gateway_statuses.push(write(&gateway.metadata, status));
        }
    }
    plan.prune = managed
        .iter()
        .filter(|m| !desired.contains(&key(&m.namespace, &m.name)))
        .cloned()
        .collect();

    for route in &world.routes {
        let generation = route.metadata.generation.unwrap_or(0);
        let stale = route.status.iter().flat_map(|s| &s.parents).any(|p| {
            settings.is_our_controller(&p.controller_name) && is_stale(&p.conditions, generation)
        });
        if let Some(status) = route_status(route, world, settings, now)
            .filter(|s| !stale && Some(s) != route.status.as_ref())
        {
            plan.route_statuses.push(write(&route.metadata, status));
        }
    }
    plan
}
