//! Proxyless gRPC clients (gRFC A27): for every service port, a Listener
//! named `<fqdn>:<port>` whose `api_listener` is an HttpConnectionManager
//! fetching the route configuration of the same name (router filter last),
//! that route configuration, and EDS clusters. gRPC's resolver asks for
//! exactly the target's authority, e.g. `xds:///echo.ns.svc.cluster.local:7070`.

use std::collections::BTreeSet;

use envoy_types::pb::envoy::config::listener::v3::{ApiListener, Listener};
use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost};

use super::clusters::{self, Upstream};
use super::envoy;
use super::model::Mesh;
use super::routes::{self, Backend};
use crate::identity::ProxyIdentity;
use crate::resources::{Resource, Resources, type_url};

pub fn translate(mesh: &Mesh<'_>, proxy: &ProxyIdentity, out: &mut Resources) {
    let vses = mesh.mesh_virtual_services(proxy.namespace());
    for svc in mesh.services.values() {
        for port in &svc.ports {
            let name = format!("{}:{}", svc.fqdn, port.number);
            let listener = Listener {
                name: name.clone(),
                api_listener: Some(ApiListener {
                    api_listener: Some(envoy::any(&envoy::hcm_rds(&name, &name))),
                }),
                ..Default::default()
            };
            out.insert(Resource::from_message(&name, type_url::LISTENER, &listener));
            let vs = vses.iter().find(|(_, hosts)| hosts.contains(&svc.fqdn));
            let routes = match vs {
                Some((vs, _)) => {
                    let ns = vs.metadata.namespace.clone().unwrap_or_default();
                    let mut unused = BTreeSet::<Backend>::new();
                    routes::virtual_service_routes(
                        mesh,
                        &vs.spec.http,
                        &ns,
                        Some(port.number),
                        &mut unused,
                    )
                }
                None => vec![routes::default_route(&clusters::outbound_name(
                    port.number,
                    "",
                    &svc.fqdn,
                ))],
            };
            let rc = RouteConfiguration {
                name: name.clone(),
                virtual_hosts: vec![VirtualHost {
                    name: name.clone(),
                    domains: routes::domains(svc, port.number, proxy.namespace()),
                    routes,
                    ..Default::default()
                }],
                ..Default::default()
            };
            out.insert(Resource::from_message(&name, type_url::ROUTE, &rc));
            clusters::add_service_port(
                out,
                mesh,
                svc,
                port,
                proxy.namespace(),
                Upstream::Plaintext,
            );
        }
    }
}
