//! `make bench-controlplane`: the xDS server under a mesh of 1,000
//! services and 10,000 endpoints with 100 simulated proxies (in-process
//! delta ADS clients over loopback gRPC, each ACKing every response).
//!
//! Prints, never fails on timing:
//! - full push: time from the first connection until every proxy holds
//!   every resource, and the process RSS before and after;
//! - one EndpointSlice change (one ClusterLoadAssignment) until the last
//!   proxy ACKs it, p50/p99/max over N isolated changes (150 ms apart, as
//!   pods coming and going are), with weftd's default debounce (leading
//!   edge, 100 ms quiet), with a trailing-only 100 ms debounce (Istio's
//!   `PILOT_DEBOUNCE_AFTER` behaviour: the baseline) and with debouncing
//!   off, which separates the debounce wait from the server's own work.
//!
//! Two meshes, side by side:
//! - `weftd`: Services and EndpointSlices in weftd's index, translated per
//!   proxy by [`IndexSource`] exactly as a running weftd does (index →
//!   translate → diff → push);
//! - `xds only`: the same sizes as pre-built standard Envoy resources in a
//!   [`StaticSource`] shared by all proxies: the xDS server's own share
//!   (diffing, encoding, streaming, ACK handling).
//!
//! The simulated proxies run in a child process (this binary again, with
//! `BENCH_CLIENTS_OF=<address>`), so the RSS printed is weftd's alone: the
//! index, the per-proxy translations and the xDS streams. The child reports
//! each ACK on a line of its stdout; the parent timestamps the line when it
//! reads it (a pipe hop of some microseconds is counted in the latency).
//!
//! Sizes: BENCH_SERVICES, BENCH_ENDPOINTS_PER_SERVICE, BENCH_PROXIES,
//! BENCH_CHANGES.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::{
    Address, Node, SocketAddress, address, socket_address,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost};
use envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{
    Endpoint as SliceEndpoint, EndpointConditions, EndpointPort, EndpointSlice,
};
use kube::api::ObjectMeta;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use weftd::index::Index;
use weftd::metrics::Metrics;
use weftd::resources::{Resource, Resources, type_url};
use weftd::translate::MeshSettings;
use weftd::xds::{
    ConfigSource, DebounceConfig, IndexSource, ProxyRegistry, StaticSource, XdsConfig, XdsServer,
};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn fqdn(i: usize) -> String {
    format!("svc-{i}.ns-{}.svc.cluster.local", i % 50)
}

fn endpoint_ip(i: usize, endpoints: usize, e: usize) -> String {
    format!(
        "10.{}.{}.{}",
        112 + (i / 60_000) % 8,
        (i * endpoints + e) / 250 % 250,
        (i * endpoints + e) % 250
    )
}

fn cla(i: usize, endpoints: usize, generation: usize) -> Resource {
    let name = format!("outbound|8080||{}", fqdn(i));
    let lb_endpoints = (0..endpoints)
        .map(|e| LbEndpoint {
            host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                address: Some(Address {
                    address: Some(address::Address::SocketAddress(SocketAddress {
                        address: endpoint_ip(i, endpoints, e),
                        port_specifier: Some(socket_address::PortSpecifier::PortValue(
                            8080 + generation as u32,
                        )),
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            })),
            load_balancing_weight: Some(envoy_types::pb::google::protobuf::UInt32Value {
                value: 1,
            }),
            ..Default::default()
        })
        .collect();
    Resource::from_message(
        name.clone(),
        type_url::ENDPOINT,
        &ClusterLoadAssignment {
            cluster_name: name,
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints,
                ..Default::default()
            }],
            ..Default::default()
        },
    )
}

fn mesh(services: usize, endpoints: usize) -> Resources {
    let mut r = Resources::default();
    let mut hosts = Vec::with_capacity(services);
    for i in 0..services {
        let name = format!("outbound|8080||{}", fqdn(i));
        r.insert(Resource::from_message(
            name.clone(),
            type_url::CLUSTER,
            &Cluster {
                name: name.clone(),
                cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
                    cluster::DiscoveryType::Eds as i32,
                )),
                ..Default::default()
            },
        ));
        r.insert(cla(i, endpoints, 0));
        hosts.push(VirtualHost {
            name: format!("{}:8080", fqdn(i)),
            domains: vec![
                fqdn(i),
                format!("svc-{i}"),
                format!("svc-{i}.ns-{}", i % 50),
            ],
            ..Default::default()
        });
    }
    r.insert(Resource::from_message(
        "8080",
        type_url::ROUTE,
        &RouteConfiguration {
            name: "8080".to_owned(),
            virtual_hosts: hosts,
            ..Default::default()
        },
    ));
    r.insert(Resource::from_message(
        "virtualOutbound",
        type_url::LISTENER,
        &Listener {
            name: "virtualOutbound".to_owned(),
            ..Default::default()
        },
    ));
    r
}

fn service(i: usize) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(format!("svc-{i}")),
            namespace: Some(format!("ns-{}", i % 50)),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some(format!("10.96.{}.{}", i / 250 % 250, i % 250)),
            ports: Some(vec![ServicePort {
                name: Some("http".to_owned()),
                port: 8080,
                protocol: Some("TCP".to_owned()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn slice(i: usize, endpoints: usize, generation: usize) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(format!("svc-{i}-1")),
            namespace: Some(format!("ns-{}", i % 50)),
            labels: Some([("kubernetes.io/service-name".to_owned(), format!("svc-{i}"))].into()),
            ..Default::default()
        },
        address_type: "IPv4".to_owned(),
        endpoints: (0..endpoints)
            .map(|e| SliceEndpoint {
                addresses: vec![endpoint_ip(i, endpoints, e)],
                conditions: Some(EndpointConditions {
                    ready: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect(),
        ports: Some(vec![EndpointPort {
            name: Some("http".to_owned()),
            port: Some(8080 + generation as i32),
            protocol: Some("TCP".to_owned()),
            ..Default::default()
        }]),
    }
}

/// Where the proxies' configuration comes from, and how one EndpointSlice
/// change is made to it.
enum Mesh {
    Indexed(Box<Index>, Arc<IndexSource>),
    Static(Arc<StaticSource>, Resources),
}

impl Mesh {
    fn build(indexed: bool, services: usize, endpoints: usize) -> Self {
        if indexed {
            let mut index = Index::new();
            index.reset((0..services).map(service).collect());
            index.reset((0..services).map(|i| slice(i, endpoints, 0)).collect());
            let source = Arc::new(IndexSource::new(index.subscribe(), MeshSettings::default()));
            Self::Indexed(Box::new(index), source)
        } else {
            let initial = mesh(services, endpoints);
            Self::Static(Arc::new(StaticSource::new(initial.clone())), initial)
        }
    }

    fn source(&self) -> Arc<dyn ConfigSource> {
        match self {
            Self::Indexed(_, s) => s.clone(),
            Self::Static(s, _) => s.clone(),
        }
    }

    /// Service `i`'s endpoints change (their port moves to 8080+generation).
    fn change(&mut self, i: usize, endpoints: usize, generation: usize) {
        match self {
            Self::Indexed(index, _) => index.apply(slice(i, endpoints, generation)),
            Self::Static(source, current) => {
                current.insert(cla(i, endpoints, generation));
                source.set(current.clone());
            }
        }
    }
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// What a simulated proxy reports: it ACKed a response of `type_url`
/// carrying these names.
#[derive(Debug)]
struct Acked {
    proxy: usize,
    type_url: String,
    names: Vec<String>,
    at: Instant,
}

async fn proxy(
    i: usize,
    addr: std::net::SocketAddr,
    report: mpsc::UnboundedSender<Acked>,
) -> Result<(), String> {
    let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{addr}"))
        .await
        .map_err(|e| format!("proxy {i}: connect: {e}"))?
        .max_decoding_message_size(256 << 20);
    let (tx, rx) = mpsc::channel(16);
    let node = Node {
        id: format!("sidecar~10.200.0.{i}~bench-{i}.bench~bench.svc.cluster.local"),
        metadata: Some(Struct {
            fields: HashMap::from([(
                "NAMESPACE".to_owned(),
                Value {
                    kind: Some(Kind::StringValue("bench".to_owned())),
                },
            )]),
        }),
        ..Default::default()
    };
    for t in type_url::PUSH_ORDER {
        tx.send(DeltaDiscoveryRequest {
            node: Some(node.clone()),
            type_url: t.to_owned(),
            ..Default::default()
        })
        .await
        .map_err(|e| format!("proxy {i}: {e}"))?;
    }
    let mut responses = client
        .delta_aggregated_resources(ReceiverStream::new(rx))
        .await
        .map_err(|e| format!("proxy {i}: stream: {e}"))?
        .into_inner();
    while let Some(r) = responses.next().await {
        let r = r.map_err(|e| format!("proxy {i}: {e}"))?;
        tx.send(DeltaDiscoveryRequest {
            type_url: r.type_url.clone(),
            response_nonce: r.nonce.clone(),
            ..Default::default()
        })
        .await
        .map_err(|e| format!("proxy {i}: ack: {e}"))?;
        let _ = report.send(Acked {
            proxy: i,
            type_url: r.type_url,
            names: r.resources.into_iter().map(|x| x.name).collect(),
            at: Instant::now(),
        });
    }
    Ok(())
}

/// A sidecar in namespace `bench` (not one of the mesh's namespaces).
fn sample_proxy() -> weftd::identity::ProxyIdentity {
    weftd::identity::ProxyIdentity {
        node_id: "sidecar~10.200.0.1~bench-1.bench~bench.svc.cluster.local".to_owned(),
        id: weftd::identity::SpiffeId::new("cluster.local", "bench", "default"),
        kind: weftd::identity::ProxyKind::Sidecar,
        pod: None,
        labels: Default::default(),
        revision: "default".to_owned(),
        ips: vec!["10.200.0.1".to_owned()],
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

struct Run {
    indexed: bool,
    debounce: DebounceConfig,
    label: &'static str,
}

async fn run(
    run: Run,
    services: usize,
    endpoints: usize,
    proxies: usize,
    changes: usize,
) -> Result<(), String> {
    println!(
        "\n== {} (debounce quiet {:?}, max {:?}) ==",
        run.label, run.debounce.quiet, run.debounce.max_delay
    );
    let rss_start = rss_mib();
    let built = Instant::now();
    let mut mesh = Mesh::build(run.indexed, services, endpoints);
    let source = mesh.source();
    // what a proxy holds once the full push is done
    let sample = source.resources(&sample_proxy());
    let types: Vec<&str> = type_url::PUSH_ORDER
        .into_iter()
        .filter(|t| sample.of_type(t).next().is_some())
        .collect();
    let resources: usize = types.iter().map(|t| sample.of_type(t).count()).sum();
    let bytes: usize = types
        .iter()
        .flat_map(|t| sample.of_type(t))
        .map(|r| r.body.value.len())
        .sum();
    println!(
        "mesh: {services} services x {endpoints} endpoints = {} endpoints; per proxy {resources} resources, {:.1} MiB encoded; built (and translated once) in {}",
        services * endpoints,
        bytes as f64 / 1048576.0,
        ms(built.elapsed())
    );
    drop(sample);
    let server = XdsServer::new(
        source,
        XdsConfig {
            debounce: run.debounce,
            ..XdsConfig::default()
        },
        ProxyRegistry::default(),
        Metrics::new(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.clone().serve_plaintext(listener, async {
        let _ = stopped.await;
    }));
    let rss_mesh = rss_mib();

    let (report, mut acks) = mpsc::unbounded_channel();
    let t0 = Instant::now();
    let mut clients = spawn_clients(addr, proxies, report)?;
    // full push: every proxy ACKed one response of each type
    let mut have: HashMap<usize, usize> = HashMap::new();
    let mut complete = 0;
    while complete < proxies {
        let a = tokio::time::timeout(Duration::from_secs(120), acks.recv())
            .await
            .map_err(|_| "full push did not complete within 120 s".to_owned())?
            .ok_or("all proxies ended")?;
        let n = have.entry(a.proxy).or_default();
        *n += 1;
        if *n == types.len() {
            complete += 1;
        }
    }
    let full = t0.elapsed();
    let rss_full = rss_mib();
    println!(
        "full push to {proxies} proxies: {} (every proxy ACKed all {resources} resources)",
        ms(full)
    );
    println!(
        "weftd RSS (index, translations, xDS server; clients run in another process): start {rss_start:.0} MiB, mesh built {rss_mesh:.0} MiB, after full push {rss_full:.0} MiB (+{:.0} MiB for {proxies} connected proxies)",
        rss_full - rss_mesh
    );

    // one EndpointSlice change at a time → that CLA at every proxy
    let mut latencies = Vec::with_capacity(changes);
    for c in 0..changes {
        let svc = (c * 7919) % services;
        let name = format!("outbound|8080||{}", fqdn(svc));
        // isolated changes: the previous push is over
        tokio::time::sleep(Duration::from_millis(150)).await;
        while acks.try_recv().is_ok() {}
        let start = Instant::now();
        mesh.change(svc, endpoints, c + 1);
        let mut acked = std::collections::HashSet::new();
        let mut last = start;
        while acked.len() < proxies {
            let a = tokio::time::timeout(Duration::from_secs(30), acks.recv())
                .await
                .map_err(|_| {
                    format!(
                        "change {c}: only {} of {proxies} proxies ACKed {name}",
                        acked.len()
                    )
                })?
                .ok_or("all proxies ended")?;
            if a.type_url == type_url::ENDPOINT && a.names.contains(&name) {
                if a.names.len() != 1 {
                    return Err(format!(
                        "change {c}: proxy {} got {} resources, want only {name}",
                        a.proxy,
                        a.names.len()
                    ));
                }
                acked.insert(a.proxy);
                last = a.at;
            }
        }
        latencies.push(last - start);
    }
    latencies.sort();
    println!(
        "EndpointSlice change -> last of {proxies} proxies ACKed (delta: only that ClusterLoadAssignment), {changes} changes: p50 {}, p99 {}, max {}  (target p99 < 100 ms)",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().unwrap_or(&Duration::ZERO)),
    );
    server.close_streams();
    let _ = stop.send(());
    let _ = serving.await;
    match clients.wait() {
        Ok(status) if status.success() => {}
        Ok(status) => return Err(format!("client process: {status}")),
        Err(e) => return Err(format!("client process: {e}")),
    }
    Ok(())
}

/// The child process: `proxies` simulated proxies against `addr`, each ACK
/// printed as `<proxy>\t<type URL>\t<name>,<name>…`.
fn clients(addr: &str, proxies: usize, rt: &tokio::runtime::Runtime) -> Result<(), String> {
    let addr: std::net::SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    rt.block_on(async {
        let (report, mut acks) = mpsc::unbounded_channel();
        for i in 0..proxies {
            tokio::spawn(proxy(i, addr, report.clone()));
        }
        drop(report);
        let mut out = std::io::stdout().lock();
        while let Some(a) = acks.recv().await {
            use std::io::Write;
            writeln!(out, "{}\t{}\t{}", a.proxy, a.type_url, a.names.join(","))
                .and_then(|()| out.flush())
                .map_err(|e| format!("clients: stdout: {e}"))?;
        }
        Ok(())
    })
}

/// Starts the child process of simulated proxies; its ACK lines arrive on
/// `report`, timestamped when read.
fn spawn_clients(
    addr: std::net::SocketAddr,
    proxies: usize,
    report: mpsc::UnboundedSender<Acked>,
) -> Result<std::process::Child, String> {
    let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
    let mut child = std::process::Command::new(exe)
        .env("BENCH_CLIENTS_OF", addr.to_string())
        .env("BENCH_PROXIES", proxies.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting the client process: {e}"))?;
    let stdout = child.stdout.take().ok_or("client process without stdout")?;
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            let mut f = line.splitn(3, '\t');
            let (Some(p), Some(t), Some(names)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            let Ok(proxy) = p.parse() else { continue };
            let a = Acked {
                proxy,
                type_url: t.to_owned(),
                names: names
                    .split(',')
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned)
                    .collect(),
                at: Instant::now(),
            };
            if report.send(a).is_err() {
                return;
            }
        }
    });
    Ok(child)
}

fn main() {
    let services = env("BENCH_SERVICES", 1000);
    let endpoints = env("BENCH_ENDPOINTS_PER_SERVICE", 10);
    let proxies = env("BENCH_PROXIES", 100);
    let changes = env("BENCH_CHANGES", 50);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench: cannot start a Tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Ok(addr) = std::env::var("BENCH_CLIENTS_OF") {
        if let Err(e) = clients(&addr, proxies, &rt) {
            eprintln!("bench clients: {e}");
            std::process::exit(1);
        }
        return;
    }
    println!(
        "weftd xDS bench: {proxies} delta ADS clients (in a child process) over loopback gRPC, {} worker threads",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let trailing = DebounceConfig {
        leading_edge: false,
        ..DebounceConfig::default()
    };
    let off = DebounceConfig {
        quiet: Duration::ZERO,
        max_delay: Duration::ZERO,
        leading_edge: false,
    };
    let runs = [true, false].into_iter().flat_map(|indexed| {
        let mesh = if indexed {
            "weftd (index + translation)"
        } else {
            "xds only (pre-built resources)"
        };
        [
            (
                DebounceConfig::default(),
                "default debounce: leading edge + 100 ms quiet",
            ),
            (
                trailing,
                "baseline: trailing-only 100 ms debounce (Istio's default)",
            ),
            (off, "debounce off"),
        ]
        .map(|(debounce, what)| Run {
            indexed,
            debounce,
            label: Box::leak(format!("{mesh}, {what}").into_boxed_str()),
        })
    });
    for r in runs {
        if let Err(e) = rt.block_on(run(r, services, endpoints, proxies, changes)) {
            eprintln!("bench: {e}");
            std::process::exit(1);
        }
    }
}
