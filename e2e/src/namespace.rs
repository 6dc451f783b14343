//! A uniquely named, labelled namespace per test, deleted by an explicit
//! async [`TestNamespace::cleanup`] (which waits until it is gone) or, if a
//! test panics first, best-effort by `Drop` through kubectl.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use crate::cluster::Cluster;
use crate::kubectl::Kubectl;
use crate::wait::{WaitError, wait_deleted};

/// Label on every namespace the tests create (`kubectl delete ns -l weft.dev/e2e=true`
/// removes leftovers).
pub const E2E_LABEL: &str = "weft.dev/e2e";
/// Label naming the test (the prefix given to [`TestNamespace::create`]).
pub const E2E_TEST_LABEL: &str = "weft.dev/e2e-test";
/// How long a namespace may take to delete completely.
pub const DELETE_TIMEOUT: Duration = Duration::from_secs(180);

/// Errors creating or deleting a test namespace.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error(
        "invalid namespace prefix {0:?}: use lower-case letters, digits and '-', at most 40 characters"
    )]
    Prefix(String),
    #[error("creating namespace {name} in cluster {cluster}: {source}")]
    Create {
        name: String,
        cluster: String,
        #[source]
        source: kube::Error,
    },
    #[error("deleting namespace {name} in cluster {cluster}: {source}")]
    Delete {
        name: String,
        cluster: String,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    Wait(#[from] WaitError),
}

/// A namespace owned by one test.
#[derive(Debug)]
pub struct TestNamespace {
    name: String,
    cluster: Cluster,
    uid: String,
    cleaned: bool,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// `<prefix>-<6 hex>`: unique across concurrent tests and runs.
pub fn unique_name(prefix: &str) -> Result<String, NamespaceError> {
    let valid = !prefix.is_empty()
        && prefix.len() <= 40
        && prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !prefix.starts_with('-')
        && !prefix.ends_with('-');
    if !valid {
        return Err(NamespaceError::Prefix(prefix.to_owned()));
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
        .unwrap_or_default();
    let mixed = nanos
        .wrapping_mul(2_654_435_761)
        .wrapping_add(std::process::id().wrapping_mul(40_503))
        .wrapping_add(COUNTER.fetch_add(1, Ordering::Relaxed).wrapping_mul(97_531));
    Ok(format!("{prefix}-{:06x}", mixed & 0x00ff_ffff))
}

impl TestNamespace {
    /// Creates `<prefix>-<random>` labelled `weft.dev/e2e=true`,
    /// `weft.dev/e2e-test=<prefix>`, `app.kubernetes.io/part-of=weft`.
    pub async fn create(cluster: &Cluster, prefix: &str) -> Result<Self, NamespaceError> {
        let name = unique_name(prefix)?;
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(BTreeMap::from([
                    (E2E_LABEL.to_owned(), "true".to_owned()),
                    (E2E_TEST_LABEL.to_owned(), prefix.to_owned()),
                    ("app.kubernetes.io/part-of".to_owned(), "weft".to_owned()),
                ])),
                ..Default::default()
            },
            ..Default::default()
        };
        let api: Api<Namespace> = Api::all(cluster.client.clone());
        let created = api
            .create(&PostParams::default(), &ns)
            .await
            .map_err(|source| NamespaceError::Create {
                name: name.clone(),
                cluster: cluster.name.clone(),
                source,
            })?;
        tracing::info!(namespace = %name, cluster = %cluster.name, "created test namespace");
        Ok(Self {
            uid: created.metadata.uid.unwrap_or_default(),
            name,
            cluster: cluster.clone(),
            cleaned: false,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    pub fn client(&self) -> Client {
        self.cluster.client.clone()
    }

    /// A namespaced API in this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope> + DeserializeOwned,
        K::DynamicType: Default,
    {
        Api::namespaced(self.cluster.client.clone(), &self.name)
    }

    pub fn kubectl(&self) -> Kubectl {
        self.cluster.kubectl()
    }

    /// `<service>.<namespace>.svc.cluster.local`.
    pub fn service_host(&self, service: &str) -> String {
        format!("{service}.{}.svc.cluster.local", self.name)
    }

    /// Deletes the namespace and waits (watching) until it is gone.
    pub async fn cleanup(mut self) -> Result<(), NamespaceError> {
        self.cleaned = true;
        let api: Api<Namespace> = Api::all(self.cluster.client.clone());
        match api.delete(&self.name, &DeleteParams::foreground()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
            Err(source) => {
                return Err(NamespaceError::Delete {
                    name: self.name.clone(),
                    cluster: self.cluster.name.clone(),
                    source,
                });
            }
        }
        let what = format!("namespace {} to be deleted completely", self.name);
        wait_deleted(&api, &self.name, &self.uid, &what, DELETE_TIMEOUT).await?;
        tracing::info!(namespace = %self.name, "test namespace deleted");
        Ok(())
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        // No runtime can be relied on here (the test's may be shutting
        // down): ask kubectl, without waiting for the deletion to finish.
        eprintln!(
            "weft-e2e: namespace {} was not cleaned up (test failed?); deleting it in the background",
            self.name
        );
        let _ = self.cluster.kubectl().command_blocking(&[
            "delete",
            "namespace",
            &self.name,
            "--wait=false",
            "--ignore-not-found",
        ]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_valid() {
        let a = unique_name("echo").expect("valid prefix");
        let b = unique_name("echo").expect("valid prefix");
        assert_ne!(a, b);
        assert!(
            a.starts_with("echo-") && a.len() == "echo-".len() + 6,
            "{a}"
        );
        for bad in ["", "Echo", "-x", "x-", "a_b", &"x".repeat(41)] {
            assert!(unique_name(bad).is_err(), "{bad:?}");
        }
    }
}
