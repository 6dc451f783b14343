//! The Kubernetes client every Weft process builds the same way: from a
//! kubeconfig file when one is given, else inferred (the pod's service
//! account in a cluster, `~/.kube/config` on a host).

use std::path::Path;

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Why no Kubernetes client could be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("reading kubeconfig {path}: {detail}")]
    Kubeconfig { path: String, detail: String },
    #[error(
        "no Kubernetes configuration: {0}; pass --kubeconfig on a host, or run in a pod with a service account"
    )]
    InferConfig(String),
    #[error("building the Kubernetes client: {0}")]
    Client(String),
}

/// A client from `kubeconfig` when given, else inferred.
pub async fn kube_client(kubeconfig: Option<&Path>) -> Result<Client, ClientError> {
    let config = match kubeconfig {
        Some(path) => {
            let err = |detail: String| ClientError::Kubeconfig {
                path: path.display().to_string(),
                detail,
            };
            let file = Kubeconfig::read_from(path).map_err(|e| err(e.to_string()))?;
            kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .map_err(|e| err(e.to_string()))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| ClientError::InferConfig(e.to_string()))?,
    };
    Client::try_from(config).map_err(|e| ClientError::Client(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreadable_kubeconfig_is_named_in_the_error() {
        let path = Path::new("/nonexistent/weft/kubeconfig");
        let Err(err) = kube_client(Some(path)).await else {
            panic!("a client from a kubeconfig that does not exist");
        };
        let err = err.to_string();
        assert!(
            err.starts_with("reading kubeconfig /nonexistent/weft/kubeconfig: "),
            "{err}"
        );
    }
}
