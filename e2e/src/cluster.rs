//! Connecting to local cluster `a` or `b`, and facts about it.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Node;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

use crate::kubectl::Kubectl;

/// Errors connecting to a cluster or reading its facts.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "reading kubeconfig {path} of cluster {cluster}: {source}; is the cluster up? run `make cluster-up CLUSTER={cluster}` (or set {env})"
    )]
    Kubeconfig {
        cluster: String,
        path: PathBuf,
        env: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("building a client for cluster {cluster} from {path}: {detail}")]
    Client {
        cluster: String,
        path: PathBuf,
        detail: String,
    },
    #[error("reading the Kubernetes pin {path}: {source}")]
    PinFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no `k8s.io/kubernetes vX.Y.Z` line in {0}: has the pin moved?")]
    NoPin(PathBuf),
    #[error("cluster {cluster} has {count} nodes, expected exactly one")]
    NodeCount { cluster: String, count: usize },
    #[error("node {node} of cluster {cluster} reports no InternalIP address")]
    NoNodeIp { cluster: String, node: String },
    #[error("Kubernetes API call to cluster {cluster} failed: {source}")]
    Api {
        cluster: String,
        #[source]
        source: kube::Error,
    },
}

/// One local cluster: its name, kubeconfig and a client.
#[derive(Clone)]
pub struct Cluster {
    pub name: String,
    pub kubeconfig: PathBuf,
    pub client: Client,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("name", &self.name)
            .field("kubeconfig", &self.kubeconfig)
            .finish_non_exhaustive()
    }
}

/// The harness cluster playing role `role` (`a` or `b`):
/// `$WEFT_E2E_CLUSTER_<ROLE>` if set, else `role` itself. `make test-e2e
/// E2E_CLUSTERS="c d"` uses this to run on clusters c and d, leaving a and b
/// to whoever is using them.
pub fn cluster_name(role: &str) -> String {
    std::env::var(format!("WEFT_E2E_CLUSTER_{}", role.to_ascii_uppercase()))
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| role.to_owned())
}

/// Env var that overrides the kubeconfig of cluster `name`
/// (`WEFT_E2E_KUBECONFIG_A`, `WEFT_E2E_KUBECONFIG_B`, ...).
pub fn kubeconfig_env(name: &str) -> String {
    format!("WEFT_E2E_KUBECONFIG_{}", name.to_ascii_uppercase())
}

/// The admin kubeconfig of cluster `name`: `$WEFT_E2E_KUBECONFIG_<NAME>`,
/// else `${WEFT_STATE:-${WEFT_CACHE:-$HOME/.cache/weft}/clusters}/<name>/kubeconfig`
/// (what `make cluster-kubeconfig CLUSTER=<name>` prints).
pub fn kubeconfig_path(name: &str) -> PathBuf {
    kubeconfig_path_with(name, |k| std::env::var_os(k))
}

/// [`kubeconfig_path`] with the environment passed in (for tests).
pub fn kubeconfig_path_with(
    name: &str,
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> PathBuf {
    let var = |k: &str| env(k).filter(|v| !v.is_empty());
    if let Some(path) = var(&kubeconfig_env(name)) {
        return PathBuf::from(path);
    }
    state_dir_with(&var).join(name).join("kubeconfig")
}

/// `${WEFT_STATE:-${WEFT_CACHE:-$HOME/.cache/weft}/clusters}`.
pub fn state_dir() -> PathBuf {
    state_dir_with(&|k: &str| std::env::var_os(k).filter(|v| !v.is_empty()))
}

fn state_dir_with(var: &dyn Fn(&str) -> Option<std::ffi::OsString>) -> PathBuf {
    if let Some(state) = var("WEFT_STATE") {
        return PathBuf::from(state);
    }
    let cache = var("WEFT_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(var("HOME").unwrap_or_else(|| "/root".into())).join(".cache/weft")
    });
    cache.join("clusters")
}

/// The repository's `e2e/` directory (this crate's manifest dir).
pub fn e2e_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The repository's root (the parent of `e2e/`).
pub fn repo_root() -> PathBuf {
    let e2e = e2e_dir();
    e2e.parent().map(Path::to_path_buf).unwrap_or(e2e)
}

/// The Kubernetes version the harness pins (`k8s.io/kubernetes` in
/// e2e/cluster/go.mod), e.g. `v1.35.4`.
pub fn pinned_kubernetes_version() -> Result<String, ClusterError> {
    let path = e2e_dir().join("cluster/go.mod");
    let text = std::fs::read_to_string(&path).map_err(|source| ClusterError::PinFile {
        path: path.clone(),
        source,
    })?;
    go_mod_version(&text, "k8s.io/kubernetes").ok_or(ClusterError::NoPin(path))
}

/// The version a go.mod requires of `module` (in a `require` block or line).
pub fn go_mod_version(go_mod: &str, module: &str) -> Option<String> {
    go_mod.lines().find_map(|line| {
        let line = line.trim().strip_prefix("require ").unwrap_or(line.trim());
        let mut words = line.split_whitespace();
        (words.next() == Some(module))
            .then(|| words.next())
            .flatten()
            .filter(|v| v.starts_with('v'))
            .map(str::to_owned)
    })
}

impl Cluster {
    /// Connects to cluster `name` with its admin kubeconfig.
    pub async fn connect(name: &str) -> Result<Self, ClusterError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let path = kubeconfig_path(name);
        let kubeconfig =
            Kubeconfig::read_from(&path).map_err(|source| ClusterError::Kubeconfig {
                cluster: name.to_owned(),
                path: path.clone(),
                env: kubeconfig_env(name),
                source,
            })?;
        let client_err = |detail: String| ClusterError::Client {
            cluster: name.to_owned(),
            path: path.clone(),
            detail,
        };
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|e| client_err(e.to_string()))?;
        let client = Client::try_from(config).map_err(|e| client_err(e.to_string()))?;
        Ok(Self {
            name: name.to_owned(),
            kubeconfig: path,
            client,
        })
    }

    /// The first cluster: `a`, or `$WEFT_E2E_CLUSTER_A` (see [`cluster_name`]).
    pub async fn a() -> Result<Self, ClusterError> {
        Self::connect(&cluster_name("a")).await
    }

    /// The second cluster (multi-cluster tests): `b`, or `$WEFT_E2E_CLUSTER_B`.
    pub async fn b() -> Result<Self, ClusterError> {
        Self::connect(&cluster_name("b")).await
    }

    /// kubectl bound to this cluster's kubeconfig.
    pub fn kubectl(&self) -> Kubectl {
        Kubectl::new(&self.kubeconfig)
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    fn api_err(&self) -> impl Fn(kube::Error) -> ClusterError + '_ {
        |source| ClusterError::Api {
            cluster: self.name.clone(),
            source,
        }
    }

    /// The cluster's single node.
    pub async fn node(&self) -> Result<Node, ClusterError> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let mut list = nodes
            .list(&Default::default())
            .await
            .map_err(self.api_err())?
            .items;
        if list.len() != 1 {
            return Err(ClusterError::NodeCount {
                cluster: self.name.clone(),
                count: list.len(),
            });
        }
        Ok(list.remove(0))
    }

    /// The node's InternalIP (reachable from the other cluster's pods).
    pub async fn node_ip(&self) -> Result<String, ClusterError> {
        let node = self.node().await?;
        node_internal_ip(&node).ok_or_else(|| ClusterError::NoNodeIp {
            cluster: self.name.clone(),
            node: node.metadata.name.clone().unwrap_or_default(),
        })
    }

    /// `/version` of the API server, e.g. `v1.35.4`.
    pub async fn server_version(&self) -> Result<String, ClusterError> {
        let info = self
            .client
            .apiserver_version()
            .await
            .map_err(self.api_err())?;
        Ok(info.git_version)
    }
}

/// A node's InternalIP.
pub fn node_internal_ip(node: &Node) -> Option<String> {
    node.status
        .as_ref()?
        .addresses
        .as_ref()?
        .iter()
        .find(|a| a.type_ == "InternalIP")
        .map(|a| a.address.clone())
}

/// Whether the node's `Ready` condition is `True`.
pub fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_versions_from_go_mod() {
        let go_mod = "module x\n\nrequire (\n\tk8s.io/api v0.35.4\n\tk8s.io/kubernetes v1.35.4 // indirect\n)\nrequire go.etcd.io/etcd/server/v3 v3.6.5\n";
        assert_eq!(
            go_mod_version(go_mod, "k8s.io/kubernetes").as_deref(),
            Some("v1.35.4")
        );
        assert_eq!(
            go_mod_version(go_mod, "go.etcd.io/etcd/server/v3").as_deref(),
            Some("v3.6.5")
        );
        assert_eq!(go_mod_version(go_mod, "k8s.io/kube"), None);
    }

    #[test]
    fn the_pin_is_readable() {
        let pin = pinned_kubernetes_version().expect("e2e/cluster/go.mod pins k8s.io/kubernetes");
        assert!(pin.starts_with("v1."), "{pin}");
    }

    #[test]
    fn kubeconfig_path_follows_the_harness_convention() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(key, _)| *key == k)
                    .map(|(_, v)| std::ffi::OsString::from(v))
            }
        };
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("HOME", "/home/u")],
                "/home/u/.cache/weft/clusters/b/kubeconfig",
            ),
            (
                &[("HOME", "/h"), ("WEFT_CACHE", "/c")],
                "/c/clusters/b/kubeconfig",
            ),
            (
                &[("WEFT_CACHE", "/c"), ("WEFT_STATE", "/s")],
                "/s/b/kubeconfig",
            ),
            (
                &[("WEFT_STATE", "/s"), ("WEFT_E2E_KUBECONFIG_B", "/k")],
                "/k",
            ),
            (
                &[("WEFT_STATE", ""), ("HOME", "/h")],
                "/h/.cache/weft/clusters/b/kubeconfig",
            ),
        ];
        for (pairs, want) in cases {
            assert_eq!(
                kubeconfig_path_with("b", env(pairs)),
                PathBuf::from(want),
                "{pairs:?}"
            );
        }
        assert_eq!(kubeconfig_env("b"), "WEFT_E2E_KUBECONFIG_B");
    }
}
