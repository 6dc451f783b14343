//! Wiring: flags → client, metrics endpoint, leader election, the two
//! controllers; SIGTERM stops the controllers (running reconciles finish)
//! and releases the Lease so the standby takes over at once.

use std::sync::Arc;

use kube::runtime::events::{Recorder, Reporter};
use tokio::sync::watch;

use crate::apply::Applier;
use crate::config::Config;
use crate::controller::{self, Context};
use crate::leader::{Elector, LeaderError, LeaseConfig};
use crate::metrics::Metrics;
use crate::render::Images;
use crate::server::{self, Readiness, ServerError};

/// Why the operator stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Client(#[from] weft_api::client::ClientError),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("leadership lost: {0}; exiting so a fresh start stands by")]
    Leadership(#[from] LeaderError),
    #[error("waiting for SIGTERM: {0}")]
    Signal(#[source] std::io::Error),
}

/// This process's identity in the Lease: the pod name plus a random
/// suffix, so a restarted container does not mistake its dead
/// predecessor's Lease for its own (it waits for expiry like any standby).
fn identity(config: &Config) -> String {
    use ring::rand::SecureRandom;
    let base = config.identity.clone().unwrap_or_else(|| {
        std::env::var("HOSTNAME").unwrap_or_else(|_| "weft-operator".to_owned())
    });
    let mut bytes = [0u8; 4];
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    format!(
        "{base}_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Runs until SIGTERM / Ctrl-C (Ok) or until leadership is lost (Err).
pub async fn run(config: Config) -> Result<(), RunError> {
    let client = weft_api::client::kube_client(config.kubeconfig.as_deref()).await?;
    let metrics = Metrics::new();
    let readiness = Readiness::default();
    let (stop_tx, stop_rx) = watch::channel(false);

    let server = tokio::spawn(server::serve(
        config.metrics_address,
        metrics.clone(),
        readiness.clone(),
        stopped(stop_rx.clone()),
    ));
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(RunError::Signal)?;
    {
        let stop_tx = stop_tx.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = sigterm.recv() => tracing::info!("SIGTERM: shutting down"),
                _ = tokio::signal::ctrl_c() => tracing::info!("interrupted: shutting down"),
            }
            let _ = stop_tx.send(true);
        });
    }

    let me = identity(&config);
    let elector = Elector::new(
        client.clone(),
        LeaseConfig {
            namespace: config.lease_namespace.clone(),
            name: config.lease_name.clone(),
            identity: me.clone(),
            duration: config.lease_duration,
            renew_every: config.lease_renew,
        },
        metrics.clone(),
    );
    readiness.set_ready();
    if config.leader_elect {
        tokio::select! {
            acquired = elector.acquire() => acquired?,
            _ = stopped(stop_rx.clone()) => {
                let _ = server.await;
                return Ok(());
            }
        }
    } else {
        metrics.set_leader(true);
    }

    let ctx = Arc::new(Context {
        client: client.clone(),
        applier: Applier::new(client.clone(), metrics.clone()),
        metrics: metrics.clone(),
        images: Images {
            weftd: config.weftd_image.clone(),
            proxy: config.proxy_image.clone(),
            pull_policy: config.image_pull_policy.clone(),
        },
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "weft-operator".to_owned(),
                instance: Some(me),
            },
        ),
        resync: config.resync,
        probe_webhooks: config.probe_webhooks,
    });
    let controllers = controller::run(ctx, stopped(stop_rx.clone()));
    let result = if config.leader_elect {
        tokio::select! {
            _ = controllers => Ok(()),
            lost = elector.keep() => {
                let _ = stop_tx.send(true);
                Err(RunError::Leadership(lost))
            }
        }
    } else {
        controllers.await;
        Ok(())
    };
    if result.is_ok()
        && config.leader_elect
        && let Err(e) = elector.release().await
    {
        tracing::warn!(error = %e, "releasing the Lease failed; the standby takes over when it expires");
    }
    let _ = stop_tx.send(true);
    let _ = server.await;
    result
}
