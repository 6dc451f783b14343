//! The static bootstrap: Envoy's canonical JSON/YAML with `@type`,
//! including nested `typed_config`, compiles into a snapshot.
#![allow(clippy::unwrap_used)]

use std::io::Write;

use weft_proxy::config::model::{DownstreamTls, NetworkFilter, RouteSource, UpstreamTls};
use weft_proxy::config::{Snapshot, bootstrap, type_url};

const YAML: &str = r#"
resources:
- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: virtualInbound
  address: { socket_address: { address: 0.0.0.0, port_value: 15006 } }
  listener_filters:
  - name: envoy.filters.listener.tls_inspector
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector
  filter_chains:
  - name: "inbound|8080||mtls"
    filter_chain_match: { destination_port: 8080, transport_protocol: tls }
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
        require_client_certificate: true
        common_tls_context:
          tls_certificate_sds_secret_configs: [{ name: default, sds_config: { ads: {} } }]
          validation_context_sds_secret_config: { name: ROOTCA, sds_config: { ads: {} } }
    filters:
    - name: envoy.filters.network.http_connection_manager
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
        stat_prefix: inbound_8080
        rds: { route_config_name: "8080", config_source: { ads: {} } }
        http_filters:
        - name: envoy.filters.http.router
          typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
- "@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
  name: "8080"
  virtual_hosts:
  - name: echo
    domains: ["*"]
    routes:
    - match: { prefix: / }
      route: { cluster: "outbound|8080||echo.default.svc.cluster.local", timeout: 0s }
- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: "outbound|8080||echo.default.svc.cluster.local"
  type: EDS
  lb_policy: LEAST_REQUEST
  eds_cluster_config: { service_name: "outbound|8080||echo.default.svc.cluster.local", eds_config: { ads: {} } }
  transport_socket_matches:
  - name: tlsMode-istio
    match: { tlsMode: istio }
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: outbound_.8080_._.echo.default.svc.cluster.local
        common_tls_context:
          tls_certificate_sds_secret_configs: [{ name: default }]
          combined_validation_context:
            default_validation_context:
              match_typed_subject_alt_names:
              - san_type: URI
                matcher: { exact: "spiffe://cluster.local/ns/default/sa/echo" }
            validation_context_sds_secret_config: { name: ROOTCA }
- "@type": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment
  cluster_name: "outbound|8080||echo.default.svc.cluster.local"
  endpoints:
  - locality: { region: r1, zone: z1 }
    lb_endpoints:
    - endpoint: { address: { socket_address: { address: 10.0.0.7, port_value: 8080 } } }
      health_status: HEALTHY
      load_balancing_weight: 2
      metadata: { filter_metadata: { envoy.transport_socket_match: { tlsMode: istio } } }
"#;

#[test]
fn yaml_bootstrap_compiles() {
    let dir = std::env::temp_dir().join(format!("weft-bootstrap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bootstrap.yaml");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(YAML.as_bytes())
        .unwrap();
    let resources = bootstrap::load_file(&path).unwrap();
    assert_eq!(resources.len(), 4);
    let snapshot = Snapshot::build(&resources).unwrap();
    let l = &snapshot.listeners["virtualInbound"];
    assert_eq!(l.chains[0].matcher.destination_port, Some(8080));
    assert_eq!(l.chains[0].tls, Some(DownstreamTls::Mesh));
    assert!(matches!(
        &l.chains[0].filter,
        NetworkFilter::Http { routes: RouteSource::Rds(n), .. } if n == "8080"
    ));
    let c = &snapshot.clusters["outbound|8080||echo.default.svc.cluster.local"];
    assert_eq!(c.endpoints.len(), 1);
    assert_eq!(c.endpoints[0].weight, 2);
    assert_eq!(c.endpoints[0].zone, "z1");
    assert_eq!(
        c.tls_for(&c.endpoints[0]),
        &UpstreamTls::Mesh {
            sni: "outbound_.8080_._.echo.default.svc.cluster.local".into(),
            sans: vec!["spiffe://cluster.local/ns/default/sa/echo".to_owned()].into(),
        }
    );
    assert!(snapshot.routes["8080"].virtual_host("anything").is_some());
    assert_eq!(resources.names(type_url::ROUTE), vec!["8080".to_owned()]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bootstrap_errors_name_the_resource() {
    let bad = serde_json::json!({"resources": [{
        "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
        "name": "c",
        "no_such_field": 1
    }]});
    let err = bootstrap::load_value("inline", bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("resources[0] (c)"), "{err}");
}

#[test]
fn binary_bootstrap_holds_the_same_resources() {
    let dir = std::env::temp_dir().join(format!("weft-bootstrap-pb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let yaml = dir.join("bootstrap.yaml");
    std::fs::write(&yaml, YAML).unwrap();
    let from_yaml = bootstrap::load_file(&yaml).unwrap();
    let pb = dir.join("bootstrap.pb");
    std::fs::write(&pb, bootstrap::to_binary(&from_yaml)).unwrap();
    let from_pb = bootstrap::load_file(&pb).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(from_pb, from_yaml);
    assert_eq!(
        from_pb.names(type_url::LISTENER),
        vec!["virtualInbound".to_owned()]
    );
    Snapshot::build(&from_pb).unwrap();

    let e = bootstrap::load_binary("junk.pb", b"\xff\xff\xff").unwrap_err();
    assert!(
        e.to_string().contains("junk.pb") && e.to_string().contains("DiscoveryResponse"),
        "{e}"
    );
}
