//! Leader election with a `coordination.k8s.io` Lease: one replica runs
//! the controllers, the others wait. The holder renews every
//! [`LeaseConfig::renew_every`]; a Lease not renewed for
//! [`LeaseConfig::duration`] is taken over; a leader shutting down
//! releases it so the next one takes over at once. Writes are guarded by
//! the Lease's resourceVersion: two replicas never both win.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};

use crate::labels::{self, PART_OF};
use crate::metrics::Metrics;

/// Errors talking to the API server about the Lease.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("reading Lease {namespace}/{name}: {source}; may the operator get leases there?")]
    Get {
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("writing Lease {namespace}/{name}: {source}")]
    Write {
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("lost the Lease {namespace}/{name} to {holder}")]
    Lost {
        namespace: String,
        name: String,
        holder: String,
    },
}

/// Where the Lease is and how it is timed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub duration: Duration,
    pub renew_every: Duration,
}

/// What to do with the Lease as it is now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nobody holds it (or the holder let it expire): take it.
    Take,
    /// We hold it: renew.
    Renew,
    /// Someone else holds it and renews it: wait.
    Wait { holder: String },
}

/// The pure core: who should hold the Lease at `now`.
pub fn decide(lease: Option<&Lease>, identity: &str, now: Timestamp) -> Decision {
    let Some(spec) = lease.and_then(|l| l.spec.as_ref()) else {
        return Decision::Take;
    };
    let holder = spec.holder_identity.clone().unwrap_or_default();
    if holder.is_empty() {
        return Decision::Take;
    }
    if holder == identity {
        return Decision::Renew;
    }
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(15));
    let renewed = spec
        .renew_time
        .as_ref()
        .or(spec.acquire_time.as_ref())
        .map(|t| t.0.as_second())
        .unwrap_or(0);
    if now.as_second() > renewed + duration {
        Decision::Take
    } else {
        Decision::Wait { holder }
    }
}

/// Takes, renews and releases the Lease.
#[derive(Clone)]
pub struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    metrics: Metrics,
}

impl std::fmt::Debug for Elector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Elector")
            .field("config", &self.config)
            .finish()
    }
}

impl Elector {
    pub fn new(client: Client, config: LeaseConfig, metrics: Metrics) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            metrics,
        }
    }

    fn get_err(&self, source: kube::Error) -> LeaderError {
        LeaderError::Get {
            namespace: self.config.namespace.clone(),
            name: self.config.name.clone(),
            source: Box::new(source),
        }
    }

    fn write_err(&self, source: kube::Error) -> LeaderError {
        LeaderError::Write {
            namespace: self.config.namespace.clone(),
            name: self.config.name.clone(),
            source: Box::new(source),
        }
    }

    /// One step: reads the Lease and takes or renews it if it should.
    /// Returns whether this replica holds it afterwards.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, LeaderError> {
        let now = Timestamp::now();
        let current = self
            .api
            .get_opt(&self.config.name)
            .await
            .map_err(|e| self.get_err(e))?;
        let decision = decide(current.as_ref(), &self.config.identity, now);
        let Decision::Wait { .. } = decision else {
            let taking = decision == Decision::Take;
            let mut lease = current.clone().unwrap_or_else(|| Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    labels: Some(std::collections::BTreeMap::from([(
                        labels::PART_OF_LABEL.to_owned(),
                        PART_OF.to_owned(),
                    )])),
                    ..Default::default()
                },
                spec: None,
            });
            let mut spec = lease.spec.clone().unwrap_or_default();
            if taking {
                spec.acquire_time = Some(MicroTime(now));
                spec.lease_transitions =
                    Some(spec.lease_transitions.unwrap_or(0) + i32::from(current.is_some()));
            }
            spec.holder_identity = Some(self.config.identity.clone());
            spec.lease_duration_seconds =
                Some(i32::try_from(self.config.duration.as_secs()).unwrap_or(15));
            spec.renew_time = Some(MicroTime(now));
            lease.spec = Some(spec);
            self.metrics.write("lease", "Lease");
            let result = match &current {
                None => self.api.create(&PostParams::default(), &lease).await,
                Some(_) => {
                    self.api
                        .replace(&self.config.name, &PostParams::default(), &lease)
                        .await
                }
            };
            return match result {
                Ok(_) => Ok(true),
                // Someone else wrote first: they won this round.
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(self.write_err(e)),
            };
        };
        Ok(false)
    }

    /// Waits until this replica holds the Lease.
    pub async fn acquire(&self) -> Result<(), LeaderError> {
        let mut logged = false;
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    tracing::info!(identity = %self.config.identity, lease = %self.config.name, "became the leader");
                    self.metrics.set_leader(true);
                    return Ok(());
                }
                Ok(false) => {
                    if !logged {
                        tracing::info!(identity = %self.config.identity, "another replica leads; standing by");
                        logged = true;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "leader election step failed; retrying"),
            }
            tokio::time::sleep(self.config.renew_every).await;
        }
    }

    /// Renews until the Lease is lost or cannot be renewed within its
    /// duration; returns why.
    pub async fn keep(&self) -> LeaderError {
        let mut last_renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.config.renew_every).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renewed = tokio::time::Instant::now(),
                Ok(false) => {
                    self.metrics.set_leader(false);
                    let holder = self
                        .api
                        .get_opt(&self.config.name)
                        .await
                        .ok()
                        .flatten()
                        .and_then(|l| l.spec?.holder_identity)
                        .unwrap_or_default();
                    return LeaderError::Lost {
                        namespace: self.config.namespace.clone(),
                        name: self.config.name.clone(),
                        holder,
                    };
                }
                Err(e) => {
                    tracing::warn!(error = %e, "renewing the Lease failed");
                    if last_renewed.elapsed() >= self.config.duration {
                        self.metrics.set_leader(false);
                        return e;
                    }
                }
            }
        }
    }

    /// Gives the Lease up (on shutdown) so another replica takes over now.
    pub async fn release(&self) -> Result<(), LeaderError> {
        let Some(mut lease) = self
            .api
            .get_opt(&self.config.name)
            .await
            .map_err(|e| self.get_err(e))?
        else {
            return Ok(());
        };
        let ours = lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref())
            == Some(self.config.identity.as_str());
        if !ours {
            return Ok(());
        }
        lease.spec = Some(LeaseSpec {
            holder_identity: None,
            ..lease.spec.unwrap_or_default()
        });
        self.metrics.write("lease", "Lease");
        self.api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
            .map_err(|e| self.write_err(e))?;
        self.metrics.set_leader(false);
        tracing::info!(identity = %self.config.identity, "released the Lease");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, renewed: i64, duration: i32) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.to_owned()),
                renew_time: Some(MicroTime(Timestamp::from_second(renewed).expect("time"))),
                lease_duration_seconds: Some(duration),
                ..Default::default()
            }),
        }
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).expect("time")
    }

    #[test]
    fn decisions() {
        assert_eq!(decide(None, "a", at(100)), Decision::Take);
        assert_eq!(
            decide(Some(&lease("", 0, 10)), "a", at(100)),
            Decision::Take
        );
        assert_eq!(
            decide(Some(&lease("a", 95, 10)), "a", at(100)),
            Decision::Renew
        );
        assert_eq!(
            decide(Some(&lease("b", 95, 10)), "a", at(100)),
            Decision::Wait { holder: "b".into() }
        );
        assert_eq!(
            decide(Some(&lease("b", 80, 10)), "a", at(100)),
            Decision::Take
        );
    }
}
