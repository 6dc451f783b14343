//! The proxy fed by weftd instead of static files: the workload
//! certificate first (CSR to the mesh CA, retried until weftd answers),
//! put into the data path's [`IdentityStore`]; then the delta ADS client,
//! whose sink applies each update to the [`ConfigHandle`] (a snapshot
//! that does not build is NACKed and the last good one stays). Renewed
//! certificates replace the identity live. Readiness (15021) follows the
//! configuration: the admin reports ready once the listeners arrived, and
//! nothing listens before the first certificate.

use std::path::PathBuf;
use std::sync::Arc;

use envoy_types::pb::google::protobuf::Any;
use tokio::sync::watch;

use crate::ca_client::{CaClient, CaClientConfig, WorkloadCert, renewal};
use crate::config::ConfigHandle;
use crate::control_channel::WeftdAddress;
use crate::run::{self, GatewayOptions, RunError, SidecarOptions};
use crate::tls::{IdentityStore, WorkloadIdentity};
use crate::xds_client::{ConfigSink, NodeInfo, ProxyMode, XdsClient, XdsClientConfig, XdsStatus};

/// Where weftd is and who this proxy is (the injector's env).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeftdSettings {
    pub weftd: WeftdAddress,
    pub trust_domain: String,
    pub token_path: PathBuf,
    pub root_cert_path: PathBuf,
    pub node: NodeInfo,
}

impl WeftdSettings {
    fn ca_config(&self) -> CaClientConfig {
        CaClientConfig {
            weftd: self.weftd.clone(),
            root_cert_path: self.root_cert_path.clone(),
            token_path: self.token_path.clone(),
            trust_domain: self.trust_domain.clone(),
            namespace: self.node.namespace.clone(),
            service_account: self.node.service_account.clone(),
            validity: None,
        }
    }
}

/// Applies xDS updates to the data path's configuration.
#[derive(Clone, Debug)]
pub struct HandleSink(pub ConfigHandle);

impl ConfigSink for HandleSink {
    fn apply(
        &mut self,
        type_url: &str,
        added: Vec<(String, Any)>,
        removed: &[String],
    ) -> Result<(), String> {
        self.0
            .apply(type_url, added, removed)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// The data path's view of a workload certificate.
pub fn identity_of(cert: &WorkloadCert) -> WorkloadIdentity {
    WorkloadIdentity {
        chain: cert.chain.clone(),
        key: cert.key.clone_key(),
        roots: cert.roots.clone(),
    }
}

/// What [`connect`] started.
#[derive(Debug)]
pub struct Connected {
    pub config: ConfigHandle,
    pub identity: Arc<IdentityStore>,
    pub certs: watch::Receiver<Arc<WorkloadCert>>,
    pub xds: watch::Receiver<XdsStatus>,
}

/// Gets the certificate (waiting for weftd as long as it takes), then
/// starts the renewal and the xDS client.
pub async fn connect(settings: &WeftdSettings) -> Result<Connected, RunError> {
    tracing::info!(
        address = %settings.weftd.address,
        spiffe_id = %settings.ca_config().spiffe_id(),
        "requesting the workload certificate from weftd"
    );
    let certs = renewal::start(CaClient::new(settings.ca_config())).await;
    let identity = Arc::new(IdentityStore::new(identity_of(&certs.borrow()))?);
    {
        let (mut certs, identity) = (certs.clone(), identity.clone());
        tokio::spawn(async move {
            while certs.changed().await.is_ok() {
                let cert = certs.borrow_and_update().clone();
                match identity.replace(identity_of(&cert)) {
                    Ok(()) => tracing::info!(
                        not_after = crate::ca_client::cert::unix(cert.not_after),
                        "renewed workload certificate in use"
                    ),
                    Err(e) => {
                        tracing::error!(error = %e, "renewed certificate not usable; keeping the current one")
                    }
                }
            }
        });
    }
    let config = ConfigHandle::default();
    let client = XdsClient::new(
        XdsClientConfig::new(settings.weftd.clone(), settings.node.to_node()),
        HandleSink(config.clone()),
    );
    let xds = client.status();
    {
        let (mut xds, config) = (xds.clone(), config.clone());
        tokio::spawn(async move {
            if xds.wait_for(|s| s.synced).await.is_ok() {
                config.mark_synced();
            }
        });
    }
    tokio::spawn(client.run(certs.clone()));
    Ok(Connected {
        config,
        identity,
        certs,
        xds,
    })
}

/// A sidecar fed by weftd: runs until SIGTERM, then drains.
pub async fn sidecar(settings: WeftdSettings, opts: SidecarOptions) -> Result<(), RunError> {
    debug_assert_eq!(settings.node.mode, ProxyMode::Sidecar);
    let c = connect(&settings).await?;
    let running = run::start_sidecar(c.config, c.identity, opts).await?;
    run::shutdown_signal().await;
    let left = running.shutdown().await;
    tracing::info!(left, "drained");
    Ok(())
}

/// A gateway fed by weftd: runs until SIGTERM, then drains.
pub async fn gateway(settings: WeftdSettings, opts: GatewayOptions) -> Result<(), RunError> {
    let c = connect(&settings).await?;
    let running = run::start_gateway(c.config, c.identity, opts).await?;
    run::shutdown_signal().await;
    let left = running.shutdown().await;
    tracing::info!(left, "drained");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::type_url;

    #[test]
    fn sink_applies_good_updates_and_refuses_bad_ones() {
        let handle = ConfigHandle::default();
        let mut sink = HandleSink(handle.clone());
        let garbage = Any {
            type_url: type_url::LISTENER.to_owned(),
            value: vec![0xff, 0xff, 0xff],
        };
        let err = sink
            .apply(type_url::LISTENER, vec![("l".into(), garbage)], &[])
            .expect_err("undecodable listener refused");
        assert!(!err.is_empty());
        assert!(handle.current().listeners.is_empty(), "last good kept");
        assert!(
            handle.last_error().is_some(),
            "the error is recorded for /config_dump"
        );
    }
}
