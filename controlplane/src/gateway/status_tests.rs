//! Table-driven tests of the status computation and of a whole pass.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use weft_api::gateway::gatewayclasses::GatewayClass;
use weft_api::gateway::gateways::Gateway;
use weft_api::gateway::httproutes::{
    HttpRoute, HttpRouteStatus, HttpRouteStatusParents, HttpRouteStatusParentsParentRef,
};
use weft_api::gateway::referencegrants::ReferenceGrant;

use super::plan::{ManagedKind, ManagedRef, plan};
use super::settings::GatewaySettings;
use super::status::{attached_routes, class_status, gateway_status, route_status};
use super::world::{DeploymentFacts, ServiceFacts, World, key};

fn time(secs: i64) -> Time {
    Time(Timestamp::from_second(secs).expect("valid timestamp"))
}

fn class(name: &str, controller: &str) -> GatewayClass {
    serde_yaml_ng::from_str(&format!(
        "metadata: {{name: {name}, generation: 1}}\nspec: {{controllerName: {controller}}}\n"
    ))
    .expect("class parses")
}

fn gateway(yaml: &str) -> Gateway {
    let mut g: Gateway = serde_yaml_ng::from_str(yaml).expect("gateway parses");
    g.metadata.uid = Some("uid-1".to_owned());
    g.metadata.generation = Some(3);
    g
}

fn route(yaml: &str) -> HttpRoute {
    let mut r: HttpRoute = serde_yaml_ng::from_str(yaml).expect("route parses");
    r.metadata.generation = Some(2);
    r
}

fn grant(yaml: &str) -> ReferenceGrant {
    serde_yaml_ng::from_str(yaml).expect("grant parses")
}

const PAYMENTS: &str = r#"
metadata: {name: payments-gateway, namespace: payments}
spec:
  gatewayClassName: istio
  listeners:
    - name: https
      port: 443
      protocol: HTTPS
      tls:
        mode: Terminate
        certificateRefs:
          - name: payments-tls
      allowedRoutes:
        namespaces:
          from: Same
"#;

const PAYMENTS_ROUTE: &str = r#"
metadata: {name: payments-api, namespace: payments}
spec:
  parentRefs:
    - name: payments-gateway
  hostnames: [api.payments.corp.com]
  rules:
    - backendRefs:
        - name: payments-api
          port: 8080
"#;

/// The reference mesh: classes, the payments gateway and route, its TLS
/// Secret, backend Service, and a running gateway Deployment and Service.
fn payments_world() -> World {
    let mut w = World {
        classes: BTreeMap::from([
            (
                "istio".to_owned(),
                class("istio", "istio.io/gateway-controller"),
            ),
            (
                "weft".to_owned(),
                class("weft", "weft.dev/gateway-controller"),
            ),
            ("other".to_owned(), class("other", "example.com/other")),
        ]),
        gateways: vec![gateway(PAYMENTS)],
        routes: vec![route(PAYMENTS_ROUTE)],
        ..Default::default()
    };
    w.namespaces.insert(
        "payments".to_owned(),
        BTreeMap::from([("team".to_owned(), "pay".to_owned())]),
    );
    w.namespaces.insert(
        "shop".to_owned(),
        BTreeMap::from([("team".to_owned(), "shop".to_owned())]),
    );
    w.secrets.insert(key("payments", "payments-tls"));
    w.services.insert(
        key("payments", "payments-api"),
        ServiceFacts {
            ports: vec![8080],
            cluster_ip: Some("10.0.0.9".to_owned()),
            ingress: vec![],
        },
    );
    w.services.insert(
        key("payments", "payments-gateway-istio"),
        ServiceFacts {
            ports: vec![443],
            cluster_ip: Some("10.0.0.10".to_owned()),
            ingress: vec![],
        },
    );
    w.deployments.insert(
        key("payments", "payments-gateway-istio"),
        DeploymentFacts {
            available_replicas: 1,
        },
    );
    w
}

type Expect = Vec<(&'static str, &'static str, &'static str)>;

fn summary(conditions: &[Condition]) -> Vec<(String, String, String)> {
    conditions
        .iter()
        .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
        .collect()
}

fn expect(e: &Expect) -> Vec<(String, String, String)> {
    e.iter()
        .map(|(t, s, r)| (t.to_string(), s.to_string(), r.to_string()))
        .collect()
}

#[test]
fn gateway_class_status() {
    let settings = GatewaySettings::default();
    let now = time(10);
    let s = class_status(
        &class("weft", "weft.dev/gateway-controller"),
        &settings,
        &now,
    )
    .expect("ours");
    assert_eq!(
        summary(s.conditions.as_deref().unwrap_or_default()),
        expect(&vec![("Accepted", "True", "Accepted")])
    );
    let s = class_status(
        &class("istio", "istio.io/gateway-controller"),
        &settings,
        &now,
    )
    .expect("ours");
    assert_eq!(
        s.conditions.as_ref().map(|c| c[0].observed_generation),
        Some(Some(1))
    );
    assert!(class_status(&class("other", "example.com/other"), &settings, &now).is_none());
    let mut with_params = class("weft", "weft.dev/gateway-controller");
    with_params.spec.parameters_ref = Some(Default::default());
    let s = class_status(&with_params, &settings, &now).expect("ours");
    assert_eq!(
        summary(s.conditions.as_deref().unwrap_or_default()),
        expect(&vec![("Accepted", "False", "InvalidParameters")])
    );
}

#[test]
fn gateway_status_table() {
    struct Case {
        name: &'static str,
        change: fn(&mut World),
        gateway: Expect,
        /// Per listener: conditions and attached routes.
        listeners: Vec<(&'static str, Expect, i32)>,
        addresses: Vec<&'static str>,
    }
    let ok_listener: Expect = vec![
        ("Accepted", "True", "Accepted"),
        ("ResolvedRefs", "True", "ResolvedRefs"),
        ("Conflicted", "False", "NoConflicts"),
        ("Programmed", "True", "Programmed"),
    ];
    let cases = vec![
        Case {
            name: "reference payments gateway, running",
            change: |_| {},
            gateway: vec![
                ("Accepted", "True", "Accepted"),
                ("Programmed", "True", "Programmed"),
            ],
            listeners: vec![("https", ok_listener.clone(), 1)],
            addresses: vec!["10.0.0.10"],
        },
        Case {
            name: "deployment not available yet",
            change: |w| {
                w.deployments.insert(
                    key("payments", "payments-gateway-istio"),
                    DeploymentFacts {
                        available_replicas: 0,
                    },
                );
            },
            gateway: vec![
                ("Accepted", "True", "Accepted"),
                ("Programmed", "False", "Pending"),
            ],
            listeners: vec![(
                "https",
                vec![
                    ("Accepted", "True", "Accepted"),
                    ("ResolvedRefs", "True", "ResolvedRefs"),
                    ("Conflicted", "False", "NoConflicts"),
                    ("Programmed", "False", "Pending"),
                ],
                1,
            )],
            addresses: vec!["10.0.0.10"],
        },
        Case {
            name: "deployment missing",
            change: |w| {
                w.deployments.clear();
            },
            gateway: vec![
                ("Accepted", "True", "Accepted"),
                ("Programmed", "False", "Pending"),
            ],
            listeners: vec![(
                "https",
                vec![
                    ("Accepted", "True", "Accepted"),
                    ("ResolvedRefs", "True", "ResolvedRefs"),
                    ("Conflicted", "False", "NoConflicts"),
                    ("Programmed", "False", "Pending"),
                ],
                1,
            )],
            addresses: vec!["10.0.0.10"],
        },
        Case {
            name: "TLS Secret missing",
            change: |w| {
                w.secrets.clear();
            },
            gateway: vec![
                ("Accepted", "False", "ListenersNotValid"),
                ("Programmed", "False", "Invalid"),
            ],
            listeners: vec![(
                "https",
                vec![
                    ("Accepted", "True", "Accepted"),
                    ("ResolvedRefs", "False", "InvalidCertificateRef"),
                    ("Conflicted", "False", "NoConflicts"),
                    ("Programmed", "False", "Invalid"),
                ],
                // Attachment does not depend on the listener's health.
                1,
            )],
            addresses: vec!["10.0.0.10"],
        },
        Case {
            name: "cross-namespace certificate without ReferenceGrant",
            change: |w| {
                w.gateways[0].spec.listeners[0]
                    .tls
                    .as_mut()
                    .and_then(|t| t.certificate_refs.as_mut())
                    .expect("refs")[0]
                    .namespace = Some("certs".to_owned());
                w.secrets.insert(key("certs", "payments-tls"));
            },
            gateway: vec![
                ("Accepted", "False", "ListenersNotValid"),
                ("Programmed", "False", "Invalid"),
            ],
            listeners: vec![(
                "https",
                vec![
                    ("Accepted", "True", "Accepted"),
                    ("ResolvedRefs", "False", "RefNotPermitted"),
                    ("Conflicted", "False", "NoConflicts"),
                    ("Programmed", "False", "Invalid"),
                ],
                1,
            )],
            addresses: vec!["10.0.0.10"],
        },
        Case {
            name: "cross-namespace certificate with ReferenceGrant",
            change: |w| {
                w.gateways[0].spec.listeners[0]
                    .tls
                    .as_mut()
                    .and_then(|t| t.certificate_refs.as_mut())
                    .expect("refs")[0]
                    .namespace = Some("certs".to_owned());
                w.secrets.insert(key("certs", "payments-tls"));
                w.grants.push(grant(
                    "metadata: {name: g, namespace: certs}\nspec:\n  from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: payments}]\n  to: [{group: '', kind: Secret}]\n",
                ));
            },
            gateway: vec![
                ("Accepted", "True", "Accepted"),
                ("Programmed", "True", "Programmed"),
            ],
            listeners: vec![("https", ok_listener.clone(), 1)],
            addresses: vec!["10.0.0.10"],
        },
        Case {
            name: "unsupported protocol next to a good listener",
            change: |w| {
                let mut tcp = w.gateways[0].spec.listeners[0].clone();
                tcp.name = "tcp".to_owned();
                tcp.port = 9000;
                tcp.protocol = "TCP".to_owned();
                tcp.tls = None;
                w.gateways[0].spec.listeners.push(tcp);
            },
            gateway: vec![
                ("Accepted", "True", "ListenersNotValid"),
                ("Programmed", "True", "Programmed"),
            ],
            listeners: vec![
                ("https", ok_listener.clone(), 1),
                (
                    "tcp",
                    vec![
                        ("Accepted", "False", "UnsupportedProtocol"),
                        ("ResolvedRefs", "True", "ResolvedRefs"),
                        ("Conflicted", "False", "NoConflicts"),
                        ("Programmed", "False", "Invalid"),
                    ],
                    0,
                ),
            ],
            addresses: vec!["10.0.0.10"],
        },
        Case {
            name: "HTTP and HTTPS on one port conflict",
            change: |w| {
                let mut http = w.gateways[0].spec.listeners[0].clone();
                http.name = "http".to_owned();
                http.protocol = "HTTP".to_owned();
                http.tls = None;
                w.gateways[0].spec.listeners.push(http);
            },
            gateway: vec![
                ("Accepted", "False", "ListenersNotValid"),
                ("Programmed", "False", "Invalid"),
            ],
            listeners: vec![
                (
                    "https",
                    vec![
                        ("Accepted", "True", "Accepted"),
                        ("ResolvedRefs", "True", "ResolvedRefs"),
                        ("Conflicted", "True", "ProtocolConflict"),
                        ("Programmed", "False", "Invalid"),
                    ],
                    1,
                ),
                (
                    "http",
                    vec![
                        ("Accepted", "True", "Accepted"),
                        ("ResolvedRefs", "True", "ResolvedRefs"),
                        ("Conflicted", "True", "ProtocolConflict"),
                        ("Programmed", "False", "Invalid"),
                    ],
                    1,
                ),
            ],
            addresses: vec!["10.0.0.10"],
        },
        Case {
            name: "unsupported route kind",
            change: |w| {
                w.gateways[0].spec.listeners[0]
                    .allowed_routes
                    .as_mut()
                    .expect("allowedRoutes")
                    .kinds = Some(vec![
                    serde_yaml_ng::from_str("{kind: TCPRoute}").expect("kind parses"),
                ]);
            },
            gateway: vec![
                ("Accepted", "False", "ListenersNotValid"),
                ("Programmed", "False", "Invalid"),
            ],
            listeners: vec![(
                "https",
                vec![
                    ("Accepted", "True", "Accepted"),
                    ("ResolvedRefs", "False", "InvalidRouteKinds"),
                    ("Conflicted", "False", "NoConflicts"),
                    ("Programmed", "False", "Invalid"),
                ],
                0,
            )],
            addresses: vec!["10.0.0.10"],
        },
        Case {
            name: "static addresses are refused",
            change: |w| {
                w.gateways[0].spec.addresses = Some(vec![
                    serde_yaml_ng::from_str("{value: 1.2.3.4}").expect("address parses"),
                ]);
            },
            gateway: vec![
                ("Accepted", "False", "UnsupportedAddress"),
                ("Programmed", "False", "Invalid"),
            ],
            listeners: vec![(
                "https",
                vec![
                    ("Accepted", "True", "Accepted"),
                    ("ResolvedRefs", "True", "ResolvedRefs"),
                    ("Conflicted", "False", "NoConflicts"),
                    ("Programmed", "False", "Invalid"),
                ],
                1,
            )],
            addresses: vec!["10.0.0.10"],
        },
        Case {
            name: "load-balancer ingress wins over the ClusterIP",
            change: |w| {
                if let Some(s) = w
                    .services
                    .get_mut(&key("payments", "payments-gateway-istio"))
                {
                    s.ingress = vec![("IPAddress".to_owned(), "203.0.113.7".to_owned())];
                }
            },
            gateway: vec![
                ("Accepted", "True", "Accepted"),
                ("Programmed", "True", "Programmed"),
            ],
            listeners: vec![("https", ok_listener.clone(), 1)],
            addresses: vec!["203.0.113.7"],
        },
    ];
    let settings = GatewaySettings::default();
    for case in cases {
        let mut world = payments_world();
        (case.change)(&mut world);
        let attached = attached_routes(&world, &settings);
        let status = gateway_status(&world.gateways[0], &world, &settings, &attached, &time(50))
            .expect("a Weft gateway");
        let conditions = status.conditions.clone().unwrap_or_default();
        assert_eq!(
            summary(&conditions),
            expect(&case.gateway),
            "{}: gateway conditions",
            case.name
        );
        assert!(
            conditions.iter().all(|c| c.observed_generation == Some(3)),
            "{}: observedGeneration",
            case.name
        );
        let listeners = status.listeners.clone().unwrap_or_default();
        assert_eq!(listeners.len(), case.listeners.len(), "{}", case.name);
        for (got, (name, want, attached)) in listeners.iter().zip(&case.listeners) {
            assert_eq!(got.name, *name, "{}", case.name);
            assert_eq!(
                summary(&got.conditions),
                expect(want),
                "{}: listener {name}",
                case.name
            );
            assert_eq!(
                got.attached_routes, *attached,
                "{}: attachedRoutes of {name}",
                case.name
            );
        }
        let addresses: Vec<_> = status
            .addresses
            .iter()
            .flatten()
            .map(|a| a.value.as_str())
            .collect();
        assert_eq!(addresses, case.addresses, "{}: addresses", case.name);
    }
}

#[test]
fn gateways_of_other_classes_are_left_alone() {
    let mut world = payments_world();
    world.gateways[0].spec.gateway_class_name = "other".to_owned();
    let settings = GatewaySettings::default();
    let attached = attached_routes(&world, &settings);
    assert!(gateway_status(&world.gateways[0], &world, &settings, &attached, &time(1)).is_none());
    assert!(route_status(&world.routes[0], &world, &settings, &time(1)).is_none());
    world.gateways[0].spec.gateway_class_name = "missing".to_owned();
    assert!(gateway_status(&world.gateways[0], &world, &settings, &attached, &time(1)).is_none());
}

#[test]
fn route_status_table() {
    struct Case {
        name: &'static str,
        change: fn(&mut World),
        want: Expect,
    }
    let accepted_resolved: Expect = vec![
        ("Accepted", "True", "Accepted"),
        ("ResolvedRefs", "True", "ResolvedRefs"),
    ];
    let cases = vec![
        Case {
            name: "reference route",
            change: |_| {},
            want: accepted_resolved.clone(),
        },
        Case {
            name: "missing backend Service",
            change: |w| {
                w.services.remove(&key("payments", "payments-api"));
            },
            want: vec![
                ("Accepted", "True", "Accepted"),
                ("ResolvedRefs", "False", "BackendNotFound"),
            ],
        },
        Case {
            name: "backend port the Service does not have",
            change: |w| {
                w.services.insert(
                    key("payments", "payments-api"),
                    ServiceFacts {
                        ports: vec![9090],
                        ..Default::default()
                    },
                );
            },
            want: vec![
                ("Accepted", "True", "Accepted"),
                ("ResolvedRefs", "False", "BackendNotFound"),
            ],
        },
        Case {
            name: "unsupported backend kind",
            change: |w| {
                let b = &mut w.routes[0].spec.rules.as_mut().expect("rules")[0]
                    .backend_refs
                    .as_mut()
                    .expect("refs")[0];
                b.kind = Some("ConfigMap".to_owned());
            },
            want: vec![
                ("Accepted", "True", "Accepted"),
                ("ResolvedRefs", "False", "InvalidKind"),
            ],
        },
        Case {
            name: "cross-namespace backend without ReferenceGrant",
            change: |w| {
                w.routes[0].spec.rules.as_mut().expect("rules")[0]
                    .backend_refs
                    .as_mut()
                    .expect("refs")[0]
                    .namespace = Some("shop".to_owned());
                w.services.insert(
                    key("shop", "payments-api"),
                    ServiceFacts {
                        ports: vec![8080],
                        ..Default::default()
                    },
                );
            },
            want: vec![
                ("Accepted", "True", "Accepted"),
                ("ResolvedRefs", "False", "RefNotPermitted"),
            ],
        },
        Case {
            name: "cross-namespace backend with ReferenceGrant",
            change: |w| {
                w.routes[0].spec.rules.as_mut().expect("rules")[0]
                    .backend_refs
                    .as_mut()
                    .expect("refs")[0]
                    .namespace = Some("shop".to_owned());
                w.services.insert(
                    key("shop", "payments-api"),
                    ServiceFacts {
                        ports: vec![8080],
                        ..Default::default()
                    },
                );
                w.grants.push(grant(
                    "metadata: {name: g, namespace: shop}\nspec:\n  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: payments}]\n  to: [{group: '', kind: Service, name: payments-api}]\n",
                ));
            },
            want: accepted_resolved.clone(),
        },
        Case {
            name: "route from another namespace, listener allows Same",
            change: |w| {
                w.routes[0].metadata.namespace = Some("shop".to_owned());
                w.routes[0].spec.parent_refs.as_mut().expect("parents")[0].namespace =
                    Some("payments".to_owned());
                w.services.insert(
                    key("shop", "payments-api"),
                    ServiceFacts {
                        ports: vec![8080],
                        ..Default::default()
                    },
                );
            },
            want: vec![
                ("Accepted", "False", "NotAllowedByListeners"),
                ("ResolvedRefs", "True", "ResolvedRefs"),
            ],
        },
        Case {
            name: "route from another namespace, listener allows All",
            change: |w| {
                w.routes[0].metadata.namespace = Some("shop".to_owned());
                w.routes[0].spec.parent_refs.as_mut().expect("parents")[0].namespace =
                    Some("payments".to_owned());
                w.services.insert(
                    key("shop", "payments-api"),
                    ServiceFacts {
                        ports: vec![8080],
                        ..Default::default()
                    },
                );
                w.gateways[0].spec.listeners[0].allowed_routes =
                    Some(serde_yaml_ng::from_str("{namespaces: {from: All}}").expect("parses"));
            },
            want: accepted_resolved.clone(),
        },
        Case {
            name: "selector matches the route's namespace",
            change: |w| {
                w.routes[0].metadata.namespace = Some("shop".to_owned());
                w.routes[0].spec.parent_refs.as_mut().expect("parents")[0].namespace =
                    Some("payments".to_owned());
                w.services.insert(
                    key("shop", "payments-api"),
                    ServiceFacts {
                        ports: vec![8080],
                        ..Default::default()
                    },
                );
                w.gateways[0].spec.listeners[0].allowed_routes = Some(
                    serde_yaml_ng::from_str(
                        "{namespaces: {from: Selector, selector: {matchLabels: {team: shop}}}}",
                    )
                    .expect("parses"),
                );
            },
            want: accepted_resolved.clone(),
        },
        Case {
            name: "selector does not match",
            change: |w| {
                w.routes[0].metadata.namespace = Some("shop".to_owned());
                w.routes[0].spec.parent_refs.as_mut().expect("parents")[0].namespace =
                    Some("payments".to_owned());
                w.services.insert(
                    key("shop", "payments-api"),
                    ServiceFacts {
                        ports: vec![8080],
                        ..Default::default()
                    },
                );
                w.gateways[0].spec.listeners[0].allowed_routes =
                    Some(serde_yaml_ng::from_str("{namespaces: {from: Selector, selector: {matchExpressions: [{key: team, operator: In, values: [pay]}]}}}").expect("parses"));
            },
            want: vec![
                ("Accepted", "False", "NotAllowedByListeners"),
                ("ResolvedRefs", "True", "ResolvedRefs"),
            ],
        },
        Case {
            name: "listener hostname does not intersect",
            change: |w| {
                w.gateways[0].spec.listeners[0].hostname = Some("*.shop.example.com".to_owned());
            },
            want: vec![
                ("Accepted", "False", "NoMatchingListenerHostname"),
                ("ResolvedRefs", "True", "ResolvedRefs"),
            ],
        },
        Case {
            name: "wildcard listener hostname intersects",
            change: |w| {
                w.gateways[0].spec.listeners[0].hostname = Some("*.corp.com".to_owned());
            },
            want: accepted_resolved.clone(),
        },
        Case {
            name: "sectionName names no listener",
            change: |w| {
                w.routes[0].spec.parent_refs.as_mut().expect("parents")[0].section_name =
                    Some("http".to_owned());
            },
            want: vec![
                ("Accepted", "False", "NoMatchingParent"),
                ("ResolvedRefs", "True", "ResolvedRefs"),
            ],
        },
        Case {
            name: "port names no listener",
            change: |w| {
                w.routes[0].spec.parent_refs.as_mut().expect("parents")[0].port = Some(80);
            },
            want: vec![
                ("Accepted", "False", "NoMatchingParent"),
                ("ResolvedRefs", "True", "ResolvedRefs"),
            ],
        },
    ];
    let settings = GatewaySettings::default();
    for case in cases {
        let mut world = payments_world();
        (case.change)(&mut world);
        let status = route_status(&world.routes[0], &world, &settings, &time(50))
            .expect("route has a Weft parent");
        assert_eq!(status.parents.len(), 1, "{}", case.name);
        let p = &status.parents[0];
        assert_eq!(
            p.controller_name, "istio.io/gateway-controller",
            "{}",
            case.name
        );
        assert_eq!(p.parent_ref.name, "payments-gateway", "{}", case.name);
        assert_eq!(summary(&p.conditions), expect(&case.want), "{}", case.name);
        assert!(
            p.conditions
                .iter()
                .all(|c| c.observed_generation == Some(2)),
            "{}",
            case.name
        );
        // attachedRoutes counts exactly the accepted routes.
        let attached = attached_routes(&world, &settings);
        let count = attached
            .get(&key("payments", "payments-gateway"))
            .and_then(|l| l.get("https"))
            .copied()
            .unwrap_or(0);
        let accepted = p.conditions[0].status == "True";
        assert_eq!(count, i32::from(accepted), "{}: attachedRoutes", case.name);
    }
}

#[test]
fn route_status_keeps_other_controllers_and_drops_our_stale_entries() {
    let mut world = payments_world();
    let entry = |controller: &str, gateway: &str| HttpRouteStatusParents {
        conditions: vec![],
        controller_name: controller.to_owned(),
        parent_ref: HttpRouteStatusParentsParentRef {
            name: gateway.to_owned(),
            ..Default::default()
        },
    };
    world.routes[0].status = Some(HttpRouteStatus {
        parents: vec![
            entry("example.com/other", "theirs"),
            entry("weft.dev/gateway-controller", "gone"),
        ],
    });
    let status = route_status(
        &world.routes[0],
        &world,
        &GatewaySettings::default(),
        &time(1),
    )
    .expect("status");
    let names: Vec<_> = status
        .parents
        .iter()
        .map(|p| (p.controller_name.as_str(), p.parent_ref.name.as_str()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("example.com/other", "theirs"),
            ("istio.io/gateway-controller", "payments-gateway")
        ]
    );

    // A route that no longer names a Weft gateway loses our entry.
    world.routes[0].spec.parent_refs = Some(vec![]);
    let status = route_status(
        &world.routes[0],
        &world,
        &GatewaySettings::default(),
        &time(1),
    )
    .expect("our old entry is removed");
    assert_eq!(status.parents.len(), 1);
    assert_eq!(status.parents[0].controller_name, "example.com/other");
}

/// Applies a plan's statuses to the world, as the API server would.
fn write_back(world: &mut World, p: &super::plan::Plan) {
    for w in &p.gateway_statuses {
        if let Some(g) = world
            .gateways
            .iter_mut()
            .find(|g| g.metadata.name.as_deref() == Some(w.name.as_str()))
        {
            g.status = Some(w.status.clone());
        }
    }
    for w in &p.route_statuses {
        if let Some(r) = world
            .routes
            .iter_mut()
            .find(|r| r.metadata.name.as_deref() == Some(w.name.as_str()))
        {
            r.status = Some(w.status.clone());
        }
    }
    for w in &p.class_statuses {
        if let Some(c) = world.classes.get_mut(&w.name) {
            c.status = Some(w.status.clone());
        }
    }
}

#[test]
fn a_second_pass_writes_nothing_and_transitions_keep_their_time() {
    let settings = GatewaySettings::default();
    let mut world = payments_world();
    world.deployments.insert(
        key("payments", "payments-gateway-istio"),
        DeploymentFacts {
            available_replicas: 0,
        },
    );
    let first = plan(&world, &[], &settings, &time(100));
    assert_eq!(first.gateway_statuses.len(), 1);
    assert_eq!(first.route_statuses.len(), 1);
    // Weft's three classes? Two are ours; `other` is not touched.
    assert_eq!(first.class_statuses.len(), 2);
    write_back(&mut world, &first);

    let second = plan(&world, &[], &settings, &time(200));
    assert!(
        second.gateway_statuses.is_empty()
            && second.route_statuses.is_empty()
            && second.class_statuses.is_empty(),
        "{second:?}"
    );

    // The Deployment becomes available: only Programmed moves.
    world.deployments.insert(
        key("payments", "payments-gateway-istio"),
        DeploymentFacts {
            available_replicas: 1,
        },
    );
    let third = plan(&world, &[], &settings, &time(300));
    assert_eq!(third.gateway_statuses.len(), 1);
    assert!(third.route_statuses.is_empty());
    let conditions = third.gateway_statuses[0]
        .status
        .conditions
        .clone()
        .unwrap_or_default();
    let times: Vec<_> = conditions
        .iter()
        .map(|c| (c.type_.as_str(), c.last_transition_time.0.as_second()))
        .collect();
    assert_eq!(times, vec![("Accepted", 100), ("Programmed", 300)]);
}

#[test]
fn stale_copies_are_not_written() {
    let settings = GatewaySettings::default();
    let mut world = payments_world();
    let first = plan(&world, &[], &settings, &time(100));
    write_back(&mut world, &first);
    // Our copy is older than the generation the conditions were written for.
    world.gateways[0].metadata.generation = Some(2);
    world.deployments.clear();
    let p = plan(&world, &[], &settings, &time(200));
    assert!(p.gateway_statuses.is_empty());
}

#[test]
fn plan_renders_ours_and_prunes_the_rest() {
    let settings = GatewaySettings::default();
    let world = payments_world();
    let managed = vec![
        ManagedRef {
            kind: ManagedKind::Deployment,
            namespace: "payments".to_owned(),
            name: "payments-gateway-istio".to_owned(),
        },
        ManagedRef {
            kind: ManagedKind::Deployment,
            namespace: "payments".to_owned(),
            name: "old-gateway-weft".to_owned(),
        },
        ManagedRef {
            kind: ManagedKind::Service,
            namespace: "shop".to_owned(),
            name: "payments-gateway-istio".to_owned(),
        },
    ];
    let p = plan(&world, &managed, &settings, &time(1));
    assert_eq!(p.objects.len(), 1);
    assert_eq!(p.classes.len(), 2);
    assert_eq!(p.prune, managed[1..].to_vec());

    let no_classes = GatewaySettings {
        manage_classes: false,
        ..GatewaySettings::default()
    };
    assert!(plan(&world, &[], &no_classes, &time(1)).classes.is_empty());
}
