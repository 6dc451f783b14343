//! weftd's index + xDS server on the host against the real API server of
//! the local cluster: Services, EndpointSlices and a Pod created in a test
//! namespace reach a delta ADS client as standard Envoy resources, and an
//! EndpointSlice change pushes exactly the affected ClusterLoadAssignment.
//!
//! Run: `WEFT_E2E_CLUSTER_A=<x> cargo test -p weftd --test xds_cluster -- --ignored`
//! (or `make test-e2e`).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::address;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use weft_e2e::{Cluster, TestNamespace, ensure};
use weftd::resources::type_url;

use common::{DeltaClient, WeftdOnHost};

fn service(name: &str, port: i32, port_name: &str) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            ports: Some(vec![ServicePort {
                name: Some(port_name.to_owned()),
                port,
                protocol: Some("TCP".to_owned()),
                app_protocol: Some(port_name.to_owned()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn slice(service: &str, port: i32, port_name: &str, ips: &[&str]) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(format!("{service}-1")),
            labels: Some(BTreeMap::from([(
                "kubernetes.io/service-name".to_owned(),
                service.to_owned(),
            )])),
            ..Default::default()
        },
        address_type: "IPv4".to_owned(),
        endpoints: ips
            .iter()
            .map(|ip| Endpoint {
                addresses: vec![(*ip).to_owned()],
                conditions: Some(EndpointConditions {
                    ready: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect(),
        ports: Some(vec![EndpointPort {
            name: Some(port_name.to_owned()),
            port: Some(port),
            protocol: Some("TCP".to_owned()),
            ..Default::default()
        }]),
    }
}

fn endpoint_ips(cla: &ClusterLoadAssignment) -> Vec<String> {
    let mut ips: Vec<String> = cla
        .endpoints
        .iter()
        .flat_map(|l| &l.lb_endpoints)
        .filter_map(|e| match &e.host_identifier {
            Some(HostIdentifier::Endpoint(ep)) => match ep.address.as_ref()?.address.as_ref()? {
                address::Address::SocketAddress(sa) => Some(sa.address.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    ips.sort();
    ips
}

#[tokio::test]
#[ignore = "needs the local cluster: run via make test-e2e"]
async fn endpoint_slice_change_pushes_only_its_cluster_load_assignment()
-> Result<(), weft_e2e::Error> {
    weft_e2e::init_tracing();
    let cluster = Cluster::a().await?;
    let ns = TestNamespace::create(&cluster, "xds").await?;
    let n = ns.name().to_owned();
    let pp = PostParams::default();
    ns.api::<Service>()
        .create(&pp, &service("alpha", 9090, "grpc"))
        .await?;
    ns.api::<Service>()
        .create(&pp, &service("beta", 8080, "http"))
        .await?;
    ns.api::<EndpointSlice>()
        .create(&pp, &slice("alpha", 9090, "grpc", &["10.250.0.1"]))
        .await?;
    ns.api::<EndpointSlice>()
        .create(&pp, &slice("beta", 8080, "http", &["10.250.1.1"]))
        .await?;
    // The proxy's own pod, kept Pending (no node matches) so its status
    // does not change under the test.
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some("client".to_owned()),
            labels: Some(BTreeMap::from([("app".to_owned(), "client".to_owned())])),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_selector: Some(BTreeMap::from([(
                "weft.dev/no-such-node".to_owned(),
                "true".to_owned(),
            )])),
            containers: vec![Container {
                name: "c".to_owned(),
                image: Some("weft.local/toolbox:1".to_owned()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    ns.api::<Pod>().create(&pp, &pod).await?;

    weft_e2e::crds::install(&cluster).await?;
    let weftd = WeftdOnHost::start(&cluster).await?;
    let node_id = format!("sidecar~~client.{n}~{n}.svc.cluster.local");
    let mut proxy = DeltaClient::connect(weftd.addr, &node_id, &n).await?;

    let alpha = format!("outbound|9090||alpha.{n}.svc.cluster.local");
    let beta = format!("outbound|8080||beta.{n}.svc.cluster.local");
    proxy
        .wait_until(|held| {
            held.contains(type_url::CLUSTER, &alpha)
                && held.contains(type_url::CLUSTER, &beta)
                && held
                    .decode::<ClusterLoadAssignment>(type_url::ENDPOINT, &alpha)
                    .is_some_and(|c| endpoint_ips(&c) == ["10.250.0.1"])
                && held
                    .decode::<ClusterLoadAssignment>(type_url::ENDPOINT, &beta)
                    .is_some_and(|c| endpoint_ips(&c) == ["10.250.1.1"])
        })
        .await?;
    // The proxy may connect before weftd's pod watch has its pod: the
    // identity is completed on the next push.
    let registry = weftd.registry.clone();
    weft_e2e::wait::poll_until(
        "weftd finds the proxy's pod and labels in the index",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let found = registry.proxies().iter().any(|p| {
                p.node_id == node_id
                    && p.pod.as_deref() == Some("client")
                    && p.labels.get("app").map(String::as_str) == Some("client")
            });
            std::future::ready(Ok::<_, String>(found.then_some(())))
        },
    )
    .await?;
    // Let the initial burst settle (all answered), then change one slice.
    proxy.settle(Duration::from_millis(500)).await?;
    ns.api::<EndpointSlice>()
        .patch(
            "alpha-1",
            &PatchParams::apply("weftd-test").force(),
            &Patch::Apply(slice("alpha", 9090, "grpc", &["10.250.0.1", "10.250.0.2"])),
        )
        .await?;
    let pushed = proxy.next_response().await?;
    ensure(
        pushed.type_url == type_url::ENDPOINT
            && pushed
                .resources
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>()
                == [alpha.as_str()]
            && pushed.removed_resources.is_empty(),
        || {
            format!(
                "want exactly {alpha} pushed, got {} {:?} removed {:?}",
                pushed.type_url,
                pushed.resources.iter().map(|r| &r.name).collect::<Vec<_>>(),
                pushed.removed_resources
            )
        },
    )?;
    let held = proxy.held();
    ensure(
        held.decode::<ClusterLoadAssignment>(type_url::ENDPOINT, &alpha)
            .is_some_and(|c| endpoint_ips(&c) == ["10.250.0.1", "10.250.0.2"]),
        || "alpha's ClusterLoadAssignment does not list both endpoints".to_owned(),
    )?;
    // nothing else follows
    proxy
        .expect_nothing_for(Duration::from_millis(1500))
        .await?;

    drop(proxy);
    weftd.stop().await;
    ns.cleanup().await?;
    Ok(())
}
