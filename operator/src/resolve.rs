//! From a `MeshInstallation` to the settings the renderers use: defaults
//! filled in, names derived, and every check the API server's schema
//! cannot make. Pure: no client, no clock.

use std::time::Duration;

use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use weft_api::weft::names::{is_dns_label, revision_for_version};
use weft_api::weft::{
    CaType, DEFAULT_TRUST_DOMAIN, GatewayKind, GatewaySpec, LogLevel, MeshInstallationSpec,
    MeshRevisionSpec, ServiceType, UpdateStrategyType,
};

use crate::contract::CA_SECRET;

/// Namespace the control plane runs in when the spec names none.
pub const DEFAULT_MESH_NAMESPACE: &str = "weft-system";
/// The revision name of an `InPlace` installation: it is upgraded in place,
/// so its name does not follow the version.
pub const IN_PLACE_REVISION: &str = "default";
/// Default CPU and memory of weftd.
const WEFTD_REQUESTS: [(&str, &str); 2] = [("cpu", "100m"), ("memory", "128Mi")];
const WEFTD_LIMITS: [(&str, &str); 1] = [("memory", "1Gi")];
/// Default CPU and memory of a gateway proxy.
const GATEWAY_REQUESTS: [(&str, &str); 2] = [("cpu", "100m"), ("memory", "128Mi")];
const GATEWAY_LIMITS: [(&str, &str); 1] = [("memory", "1Gi")];

/// A spec the operator cannot carry out. Each message names the field and
/// says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error(
        "metadata.name {0:?} must be a DNS label (lower-case letters, digits and '-', at most 63 characters): it becomes a label value on everything Weft creates"
    )]
    InstallationName(String),
    #[error(
        "spec.version {0:?} does not give a valid revision name: use a version like 1.2.3 or 1.2.3-rc.1"
    )]
    Version(String),
    #[error("{field} {value:?} must be a DNS label (lower-case letters, digits and '-')")]
    Namespace { field: String, value: String },
    #[error("{field}: {detail}")]
    Duration { field: String, detail: String },
    #[error("{field} is {value}: weftd needs at least 1s")]
    DurationTooShort { field: String, value: String },
    #[error(
        "spec.certificates.ca.secretRef is required when spec.certificates.ca.type is PluggedIn: name the Secret holding ca-cert.pem, ca-key.pem, root-cert.pem and cert-chain.pem"
    )]
    PluggedInWithoutSecret,
    #[error(
        "spec.gateways[{index}] ({name}) and spec.gateways[{other}] run in the same namespace {namespace} under the same name"
    )]
    DuplicateGateway {
        index: usize,
        other: usize,
        name: String,
        namespace: String,
    },
    #[error(
        "spec.gateways[{index}] ({name}) would run in {namespace} as weftd-*: rename the gateway"
    )]
    GatewayName {
        index: usize,
        name: String,
        namespace: String,
    },
    #[error("spec.profile {0} is not supported by this operator yet: use default, minimal or demo")]
    Profile(String),
    #[error("spec.multiCluster.role remote is not supported by this operator yet")]
    RemoteRole,
}

impl SpecError {
    /// The condition reason (PascalCase, stable).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InstallationName(_) => "InvalidName",
            Self::Version(_) => "InvalidVersion",
            Self::Namespace { .. } => "InvalidNamespace",
            Self::Duration { .. } | Self::DurationTooShort { .. } => "InvalidDuration",
            Self::PluggedInWithoutSecret => "PluggedInCASecretMissing",
            Self::DuplicateGateway { .. } | Self::GatewayName { .. } => "InvalidGateway",
            Self::Profile(_) | Self::RemoteRole => "Unsupported",
        }
    }
}

/// Where the mesh CA comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaSource {
    /// The operator generates a root and an intermediate (and keeps them).
    SelfSigned,
    /// A Secret the platform team provides, copied into the mesh namespace
    /// unless it already is the CA Secret there.
    PluggedIn { namespace: String, name: String },
}

/// The mesh CA as the operator runs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaSettings {
    pub source: CaSource,
    /// The Secret weftd loads, in the mesh namespace.
    pub secret_name: String,
    pub root_ttl: Duration,
    pub intermediate_ttl: Duration,
    pub workload_ttl: Duration,
}

impl CaSettings {
    /// Whether weftd reads the user's own Secret (a plugged-in Secret that
    /// already is in the mesh namespace): the operator then never writes it.
    pub fn uses_user_secret_in_place(&self, mesh_namespace: &str) -> bool {
        matches!(&self.source, CaSource::PluggedIn { namespace, name }
            if namespace == mesh_namespace && *name == self.secret_name)
    }
}

/// A gateway of `spec.gateways`, defaults filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct GatewaySettings {
    pub name: String,
    pub namespace: String,
    pub kind: GatewayKind,
    pub replicas: i32,
    pub service_type: ServiceType,
    /// (name, port, target port, node port)
    pub ports: Vec<(String, i32, i32, Option<i32>)>,
    pub labels: std::collections::BTreeMap<String, String>,
    pub resources: ResourceRequirements,
}

/// Everything the renderers need, resolved from the spec.
#[derive(Clone, Debug, PartialEq)]
pub struct MeshSettings {
    pub installation: String,
    pub version: String,
    pub revision: String,
    pub namespace: String,
    pub trust_domain: String,
    pub weftd_replicas: i32,
    pub weftd_resources: ResourceRequirements,
    pub weftd_log_level: LogLevel,
    pub weftd_env: Vec<EnvVar>,
    pub ca: CaSettings,
    pub gateways: Vec<GatewaySettings>,
}

fn quantities(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned())))
        .collect()
}

fn default_resources(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(quantities(requests)),
        limits: Some(quantities(limits)),
        ..Default::default()
    }
}

fn duration(
    field: &str,
    value: Option<&weft_api::istio::common::Duration>,
    default: &str,
) -> Result<Duration, SpecError> {
    let text = value
        .map(|d| d.0.clone())
        .unwrap_or_else(|| default.to_owned());
    let parsed = weft_api::istio::common::Duration(text.clone())
        .parse()
        .map_err(|e| SpecError::Duration {
            field: field.to_owned(),
            detail: e.to_string(),
        })?;
    if parsed < Duration::from_secs(1) {
        return Err(SpecError::DurationTooShort {
            field: field.to_owned(),
            value: text,
        });
    }
    Ok(parsed)
}

/// The revision an installation runs: `default` when upgraded in place,
/// else derived from the version (`1.2.3` → `1-2-3`).
pub fn revision_name(spec: &MeshInstallationSpec) -> Result<String, SpecError> {
    let strategy = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_)
        .unwrap_or_default();
    match strategy {
        UpdateStrategyType::InPlace => Ok(IN_PLACE_REVISION.to_owned()),
        UpdateStrategyType::RevisionBased => revision_for_version(&spec.version)
            .ok_or_else(|| SpecError::Version(spec.version.clone())),
    }
}

/// The namespace the control plane runs in: `spec.meshConfig.rootNamespace`,
/// else `weft-system`.
pub fn mesh_namespace(spec: &MeshInstallationSpec) -> String {
    spec.mesh_config
        .as_ref()
        .and_then(|m| m.root_namespace.clone())
        .unwrap_or_else(|| DEFAULT_MESH_NAMESPACE.to_owned())
}

/// The MeshRevision spec for an installation: what the revision runs, copied.
pub fn revision_spec(installation: &str, spec: &MeshInstallationSpec) -> MeshRevisionSpec {
    MeshRevisionSpec {
        installation: installation.to_owned(),
        version: spec.version.clone(),
        control_plane: spec.control_plane.clone(),
        dataplane: spec.dataplane.clone(),
        mesh_config: spec.mesh_config.clone(),
        certificates: spec.certificates.clone(),
        multi_cluster: spec.multi_cluster.clone(),
    }
}

fn gateway_settings(
    index: usize,
    g: &GatewaySpec,
    mesh_namespace: &str,
) -> Result<GatewaySettings, SpecError> {
    let namespace = g
        .namespace
        .clone()
        .unwrap_or_else(|| mesh_namespace.to_owned());
    if !is_dns_label(&namespace) {
        return Err(SpecError::Namespace {
            field: format!("spec.gateways[{index}].namespace"),
            value: namespace,
        });
    }
    if namespace == mesh_namespace && g.name.starts_with("weftd-") {
        return Err(SpecError::GatewayName {
            index,
            name: g.name.clone(),
            namespace,
        });
    }
    let service = g.service.clone().unwrap_or_default();
    let ports = if service.ports.is_empty() {
        match g.kind {
            GatewayKind::Ingress => vec![
                ("http".to_owned(), 80, 8080, None),
                ("https".to_owned(), 443, 8443, None),
            ],
            GatewayKind::Egress => vec![("https".to_owned(), 443, 8443, None)],
            GatewayKind::Eastwest => vec![("tls".to_owned(), 15443, 15443, None)],
        }
    } else {
        service
            .ports
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    p.port,
                    p.target_port.unwrap_or(p.port),
                    p.node_port,
                )
            })
            .collect()
    };
    Ok(GatewaySettings {
        name: g.name.clone(),
        namespace,
        kind: g.kind,
        replicas: g.replicas.unwrap_or(1),
        service_type: service.type_.unwrap_or_default(),
        ports,
        labels: g.labels.clone(),
        resources: g
            .resources
            .clone()
            .unwrap_or_else(|| default_resources(&GATEWAY_REQUESTS, &GATEWAY_LIMITS)),
    })
}

/// Resolves a MeshInstallation (its name and spec).
pub fn resolve(installation: &str, spec: &MeshInstallationSpec) -> Result<MeshSettings, SpecError> {
    if !is_dns_label(installation) {
        return Err(SpecError::InstallationName(installation.to_owned()));
    }
    match spec.profile.unwrap_or_default() {
        weft_api::weft::Profile::Ambient => return Err(SpecError::Profile("ambient".into())),
        weft_api::weft::Profile::Remote => return Err(SpecError::Profile("remote".into())),
        _ => {}
    }
    if spec
        .multi_cluster
        .as_ref()
        .and_then(|m| m.role)
        .is_some_and(|r| r == weft_api::weft::ClusterRole::Remote)
    {
        return Err(SpecError::RemoteRole);
    }
    let revision = revision_name(spec)?;
    let namespace = mesh_namespace(spec);
    if !is_dns_label(&namespace) {
        return Err(SpecError::Namespace {
            field: "spec.meshConfig.rootNamespace".to_owned(),
            value: namespace,
        });
    }
    let trust_domain = spec
        .mesh_config
        .as_ref()
        .and_then(|m| m.trust_domain.clone())
        .unwrap_or_else(|| DEFAULT_TRUST_DOMAIN.to_owned());

    let certs = spec.certificates.clone().unwrap_or_default();
    let ca_type = certs.ca.as_ref().map(|c| c.type_).unwrap_or_default();
    let source = match ca_type {
        CaType::SelfSigned => CaSource::SelfSigned,
        CaType::PluggedIn => {
            let secret = certs
                .ca
                .as_ref()
                .and_then(|c| c.secret_ref.clone())
                .ok_or(SpecError::PluggedInWithoutSecret)?;
            CaSource::PluggedIn {
                namespace: secret.namespace.unwrap_or_else(|| namespace.clone()),
                name: secret.name,
            }
        }
    };
    let secret_name = match &source {
        CaSource::PluggedIn {
            namespace: ns,
            name,
        } if *ns == namespace => name.clone(),
        _ => CA_SECRET.to_owned(),
    };
    let ca = CaSettings {
        source,
        secret_name,
        root_ttl: duration(
            "spec.certificates.rootCertTTL",
            certs.root_cert_ttl.as_ref(),
            weft_api::weft::DEFAULT_ROOT_CERT_TTL,
        )?,
        intermediate_ttl: duration(
            "spec.certificates.intermediateCertTTL",
            certs.intermediate_cert_ttl.as_ref(),
            weft_api::weft::DEFAULT_INTERMEDIATE_CERT_TTL,
        )?,
        workload_ttl: duration(
            "spec.certificates.workloadCertTTL",
            certs.workload_cert_ttl.as_ref(),
            weft_api::weft::DEFAULT_WORKLOAD_CERT_TTL,
        )?,
    };

    let control_plane = spec.control_plane.clone().unwrap_or_default();
    let gateways = if spec.profile == Some(weft_api::weft::Profile::Minimal) {
        Vec::new()
    } else {
        spec.gateways
            .iter()
            .enumerate()
            .map(|(i, g)| gateway_settings(i, g, &namespace))
            .collect::<Result<Vec<_>, _>>()?
    };
    for (i, a) in gateways.iter().enumerate() {
        if let Some(j) = gateways[..i]
            .iter()
            .position(|b| b.name == a.name && b.namespace == a.namespace)
        {
            return Err(SpecError::DuplicateGateway {
                index: i,
                other: j,
                name: a.name.clone(),
                namespace: a.namespace.clone(),
            });
        }
    }
    let log_level = match (control_plane.log_level, spec.profile) {
        (Some(level), _) => level,
        (None, Some(weft_api::weft::Profile::Demo)) => LogLevel::Debug,
        (None, _) => LogLevel::Info,
    };
    Ok(MeshSettings {
        installation: installation.to_owned(),
        version: spec.version.clone(),
        revision,
        namespace,
        trust_domain,
        weftd_replicas: control_plane.replicas.unwrap_or(1),
        weftd_resources: control_plane
            .resources
            .clone()
            .unwrap_or_else(|| default_resources(&WEFTD_REQUESTS, &WEFTD_LIMITS)),
        weftd_log_level: log_level,
        weftd_env: control_plane.env.clone(),
        ca,
        gateways,
    })
}

/// A duration as weftd's flags take it (whole seconds: `86400s`).
pub fn weftd_duration(d: Duration) -> String {
    format!("{}s", d.as_secs().max(1))
}

/// The `RUST_LOG` filter of a log level.
pub fn rust_log(level: LogLevel) -> String {
    let level = match level {
        LogLevel::Error => "error",
        LogLevel::Warn => "warn",
        LogLevel::Info => "info",
        LogLevel::Debug => "debug",
        LogLevel::Trace => "trace",
    };
    format!("{level},kube=warn,h2=warn")
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_api::weft::{CertificateAuthority, MeshConfig, SecretReference, UpdateStrategy};

    fn spec(version: &str) -> MeshInstallationSpec {
        MeshInstallationSpec {
            version: version.to_owned(),
            ..Default::default()
        }
    }

    #[test]
    fn minimal_defaults() {
        let s = resolve("default", &spec("1.0.0")).expect("resolves");
        assert_eq!(s.revision, "default");
        assert_eq!(s.namespace, "weft-system");
        assert_eq!(s.trust_domain, "cluster.local");
        assert_eq!(s.weftd_replicas, 1);
        assert_eq!(s.ca.source, CaSource::SelfSigned);
        assert_eq!(s.ca.secret_name, "cacerts");
        assert_eq!(s.ca.workload_ttl, Duration::from_secs(86400));
    }

    #[test]
    fn revision_based_names_the_revision_after_the_version() {
        let mut sp = spec("v1.25.0-rc.1");
        sp.update_strategy = Some(UpdateStrategy {
            type_: Some(UpdateStrategyType::RevisionBased),
            ..Default::default()
        });
        assert_eq!(
            resolve("mesh", &sp).expect("resolves").revision,
            "1-25-0-rc-1"
        );
    }

    #[test]
    fn plugged_in_in_the_mesh_namespace_is_used_in_place() {
        let mut sp = spec("1.0.0");
        sp.mesh_config = Some(MeshConfig {
            root_namespace: Some("istio-system".into()),
            ..Default::default()
        });
        sp.certificates = Some(weft_api::weft::Certificates {
            ca: Some(CertificateAuthority {
                type_: CaType::PluggedIn,
                secret_ref: Some(SecretReference {
                    name: "my-ca".into(),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        });
        let s = resolve("default", &sp).expect("resolves");
        assert_eq!(s.ca.secret_name, "my-ca");
        assert!(s.ca.uses_user_secret_in_place("istio-system"));
    }

    #[test]
    fn bad_input_is_refused_with_the_field() {
        let e = resolve("Bad_Name", &spec("1.0.0")).expect_err("bad name");
        assert_eq!(e.reason(), "InvalidName");
        let mut sp = spec("1.0.0");
        sp.certificates = Some(weft_api::weft::Certificates {
            workload_cert_ttl: Some(weft_api::istio::common::Duration("10ms".into())),
            ..Default::default()
        });
        let e = resolve("default", &sp).expect_err("too short");
        assert!(e.to_string().contains("workloadCertTTL"), "{e}");
        let mut sp = spec("1.0.0");
        sp.gateways = vec![
            GatewaySpec {
                name: "in".into(),
                ..Default::default()
            },
            GatewaySpec {
                name: "in".into(),
                ..Default::default()
            },
        ];
        assert_eq!(
            resolve("default", &sp).expect_err("dup").reason(),
            "InvalidGateway"
        );
    }

    #[test]
    fn weftd_durations_are_whole_seconds() {
        assert_eq!(weftd_duration(Duration::from_secs(43200)), "43200s");
    }
}
