//! HTTP probes of application containers, rewritten to go through the
//! proxy's status port (`15020/app-health/<container>/<probe>`). Under
//! STRICT mTLS the kubelet's plain-text probe would be refused by the
//! inbound listener; the proxy calls the application on the kubelet's
//! behalf, from inside the pod, with the original probe.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, HTTPGetAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use super::settings::STATUS_PORT;

/// Annotation that turns probe rewriting off for a pod (`false`).
pub const REWRITE_PROBES_ANNOTATION: &str = "sidecar.istio.io/rewriteAppHTTPProbers";

/// Env var of the proxy holding the original probes, JSON keyed by the
/// rewritten path.
pub const APP_PROBES_ENV: &str = "WEFT_APP_PROBES";

/// The original probe the proxy performs for one rewritten path.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppProbe {
    /// The application's own HTTP GET, with the port resolved to a number.
    pub http_get: HTTPGetAction,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i32>,
}

/// Rewrites the HTTP probes of `containers` in place and returns the
/// originals keyed by their new path.
pub fn rewrite(containers: &mut [Container]) -> BTreeMap<String, AppProbe> {
    let mut originals = BTreeMap::new();
    for container in containers {
        let name = container.name.clone();
        let ports = container.ports.clone().unwrap_or_default();
        let probes = [
            ("readyz", &mut container.readiness_probe),
            ("livez", &mut container.liveness_probe),
            ("startupz", &mut container.startup_probe),
        ];
        for (kind, probe) in probes {
            let Some(probe) = probe.as_mut() else {
                continue;
            };
            let Some(get) = probe.http_get.as_ref() else {
                continue;
            };
            let port = match &get.port {
                IntOrString::Int(p) => *p,
                IntOrString::String(port_name) => {
                    match ports
                        .iter()
                        .find(|p| p.name.as_deref() == Some(port_name.as_str()))
                    {
                        Some(p) => p.container_port,
                        // The kubelet would fail this probe anyway; leave it
                        // as written so the user sees their own mistake.
                        None => continue,
                    }
                }
            };
            let path = format!("/app-health/{name}/{kind}");
            originals.insert(
                path.clone(),
                AppProbe {
                    http_get: HTTPGetAction {
                        port: IntOrString::Int(port),
                        ..get.clone()
                    },
                    timeout_seconds: probe.timeout_seconds,
                },
            );
            probe.http_get = Some(HTTPGetAction {
                path: Some(path),
                port: IntOrString::Int(i32::from(STATUS_PORT)),
                scheme: Some("HTTP".to_owned()),
                ..Default::default()
            });
        }
    }
    originals
}

/// Whether a probe should be rewritten for a pod with these annotations.
pub fn enabled(annotations: Option<&BTreeMap<String, String>>) -> bool {
    annotations
        .and_then(|a| a.get(REWRITE_PROBES_ANNOTATION))
        .is_none_or(|v| super::decision::truthy(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerPort, HTTPHeader, Probe, TCPSocketAction};

    fn http_probe(port: IntOrString, path: &str) -> Option<Probe> {
        Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some(path.to_owned()),
                port,
                http_headers: Some(vec![HTTPHeader {
                    name: "x-probe".into(),
                    value: "1".into(),
                }]),
                ..Default::default()
            }),
            period_seconds: Some(5),
            timeout_seconds: Some(2),
            ..Default::default()
        })
    }

    #[test]
    fn http_probes_go_through_the_status_port() {
        let mut containers = vec![Container {
            name: "app".into(),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: 8080,
                ..Default::default()
            }]),
            readiness_probe: http_probe(IntOrString::String("http".into()), "/ready"),
            liveness_probe: http_probe(IntOrString::Int(9000), "/live"),
            startup_probe: Some(Probe {
                tcp_socket: Some(TCPSocketAction {
                    port: IntOrString::Int(8080),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }];
        let originals = rewrite(&mut containers);
        let c = &containers[0];
        let ready = c.readiness_probe.as_ref().and_then(|p| p.http_get.as_ref());
        assert_eq!(
            ready.and_then(|g| g.path.as_deref()),
            Some("/app-health/app/readyz")
        );
        assert_eq!(ready.map(|g| &g.port), Some(&IntOrString::Int(15020)));
        assert_eq!(ready.and_then(|g| g.http_headers.as_ref()), None);
        assert_eq!(
            c.readiness_probe.as_ref().and_then(|p| p.period_seconds),
            Some(5),
            "timing is kept"
        );
        assert!(
            c.startup_probe
                .as_ref()
                .is_some_and(|p| p.tcp_socket.is_some())
        );
        assert_eq!(originals.len(), 2);
        let ready = &originals["/app-health/app/readyz"];
        assert_eq!(
            ready.http_get.port,
            IntOrString::Int(8080),
            "named port resolved"
        );
        assert_eq!(ready.http_get.path.as_deref(), Some("/ready"));
        assert_eq!(ready.timeout_seconds, Some(2));
        assert!(ready.http_get.http_headers.is_some(), "headers kept");
        assert_eq!(
            originals["/app-health/app/livez"].http_get.port,
            IntOrString::Int(9000)
        );
    }

    #[test]
    fn unknown_named_port_is_left_alone() {
        let probe = http_probe(IntOrString::String("nope".into()), "/ready");
        let mut containers = vec![Container {
            name: "app".into(),
            readiness_probe: probe.clone(),
            ..Default::default()
        }];
        assert!(rewrite(&mut containers).is_empty());
        assert_eq!(containers[0].readiness_probe, probe);
    }

    #[test]
    fn annotation_turns_rewriting_off() {
        let off = BTreeMap::from([(REWRITE_PROBES_ANNOTATION.to_owned(), "false".to_owned())]);
        assert!(!enabled(Some(&off)));
        assert!(enabled(None));
    }
}
