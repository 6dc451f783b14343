//! Debouncing of configuration changes: a burst of changes becomes one
//! push. A push fires once no change arrived for `quiet`, or at the latest
//! `max_delay` after the first change of the burst, so a steady trickle of
//! changes cannot postpone pushes forever.
//!
//! With `leading_edge` (the default) a change that arrives after the
//! debouncer has been idle for `quiet` is pushed at once: a lone change
//! (one EndpointSlice) reaches proxies without waiting, and only the
//! changes that follow it closely are coalesced into a trailing push.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// How long to wait before pushing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DebounceConfig {
    /// Push once no change arrived for this long.
    pub quiet: Duration,
    /// ...but never later than this after the first change of a burst.
    pub max_delay: Duration,
    /// Push a change at once when nothing was pushed or pending for
    /// `quiet` before it.
    pub leading_edge: bool,
}

impl Default for DebounceConfig {
    fn default() -> Self {
        Self {
            quiet: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            leading_edge: true,
        }
    }
}

/// One debounced push: a generation number (bumped per push) and when the
/// first change it carries happened (push latency is measured from there).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trigger {
    pub generation: u64,
    pub first_change: Instant,
}

/// The pure state of the debouncer: the burst in progress, if any.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Debouncer {
    burst: Option<Burst>,
    last_push: Option<Instant>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Burst {
    first: Instant,
    last: Instant,
}

impl Debouncer {
    /// A change happened at `now`. Returns true when it must be pushed at
    /// once (leading edge after an idle period); otherwise it joins the
    /// pending burst.
    pub fn on_change(&mut self, now: Instant, config: &DebounceConfig) -> bool {
        let idle = self.burst.is_none()
            && self
                .last_push
                .is_none_or(|t| now.saturating_duration_since(t) >= config.quiet);
        if config.leading_edge && idle {
            self.last_push = Some(now);
            return true;
        }
        self.burst = Some(match self.burst {
            Some(b) => Burst { last: now, ..b },
            None => Burst {
                first: now,
                last: now,
            },
        });
        false
    }

    /// When the pending burst must be pushed, if there is one.
    pub fn deadline(&self, config: &DebounceConfig) -> Option<Instant> {
        self.burst
            .map(|b| (b.last + config.quiet).min(b.first + config.max_delay))
    }

    /// At `now`, takes the burst if it is due, returning its first change.
    pub fn fire(&mut self, now: Instant, config: &DebounceConfig) -> Option<Instant> {
        let due = self.deadline(config).is_some_and(|d| d <= now);
        if due {
            self.last_push = Some(now);
            self.burst.take().map(|b| b.first)
        } else {
            None
        }
    }
}

/// Runs until `changes` closes: turns source changes into debounced
/// [`Trigger`]s on `out` (whose initial value is generation 0).
pub async fn run(
    mut changes: watch::Receiver<u64>,
    out: watch::Sender<Trigger>,
    config: DebounceConfig,
) {
    let mut state = Debouncer::default();
    loop {
        let deadline = state.deadline(&config);
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    // The source is gone: flush what is pending, then stop.
                    if let Some(b) = state.burst.take() {
                        push(&out, b.first);
                    }
                    return;
                }
                changes.borrow_and_update();
                let now = Instant::now();
                if state.on_change(now, &config) {
                    push(&out, now);
                }
            }
            () = sleep_until(deadline) => {
                if let Some(first_change) = state.fire(Instant::now(), &config) {
                    push(&out, first_change);
                }
            }
        }
    }
}

fn push(out: &watch::Sender<Trigger>, first_change: Instant) {
    out.send_modify(|t| {
        *t = Trigger {
            generation: t.generation + 1,
            first_change,
        };
    });
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn deadline_is_quiet_after_last_change_bounded_by_max_delay() {
        let config = DebounceConfig {
            quiet: 100 * MS,
            max_delay: 1000 * MS,
            leading_edge: false,
        };
        let t0 = Instant::now();
        // (changes at these offsets, expected deadline offset)
        let table: [(&[u64], Option<u64>); 4] = [
            (&[], None),
            (&[0], Some(100)),
            (&[0, 50, 120], Some(220)),
            // a change every 90 ms keeps the burst open: the cap fires
            (
                &[0, 90, 180, 270, 360, 450, 540, 630, 720, 810, 900, 990],
                Some(1000),
            ),
        ];
        for (changes, want) in table {
            let mut d = Debouncer::default();
            for c in changes {
                assert!(!d.on_change(t0 + Duration::from_millis(*c), &config));
            }
            assert_eq!(
                d.deadline(&config),
                want.map(|w| t0 + Duration::from_millis(w)),
                "changes at {changes:?}"
            );
        }
    }

    #[test]
    fn fire_takes_the_burst_only_when_due() {
        let config = DebounceConfig {
            leading_edge: false,
            ..DebounceConfig::default()
        };
        let t0 = Instant::now();
        let mut d = Debouncer::default();
        d.on_change(t0, &config);
        d.on_change(t0 + 30 * MS, &config);
        assert_eq!(d.fire(t0 + 129 * MS, &config), None);
        assert_eq!(d.fire(t0 + 130 * MS, &config), Some(t0));
        assert_eq!(d.deadline(&config), None, "burst consumed");
    }

    async fn next(rx: &mut watch::Receiver<Trigger>) -> Trigger {
        rx.changed().await.expect("debouncer alive");
        *rx.borrow_and_update()
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_is_one_push_after_the_quiet_period() {
        let (src, changes) = watch::channel(0u64);
        let t0 = Instant::now();
        let (out, mut rx) = watch::channel(Trigger {
            generation: 0,
            first_change: t0,
        });
        let trailing = DebounceConfig {
            leading_edge: false,
            ..DebounceConfig::default()
        };
        let task = tokio::spawn(run(changes, out, trailing));
        for i in 1..=10 {
            src.send_replace(i);
            tokio::time::sleep(20 * MS).await;
        }
        // last change at ~180 ms: one push 100 ms later, carrying the first.
        let t = next(&mut rx).await;
        assert_eq!(t.generation, 1);
        assert_eq!(t.first_change, t0);
        assert_eq!(Instant::now() - t0, 280 * MS);
        // nothing more without a change
        let more = tokio::time::timeout(Duration::from_secs(5), rx.changed()).await;
        assert!(more.is_err(), "no push without changes");
        drop(src);
        task.await.expect("debouncer ends when the source closes");
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_trickle_still_pushes_every_max_delay() {
        let (src, changes) = watch::channel(0u64);
        let t0 = Instant::now();
        let (out, mut rx) = watch::channel(Trigger {
            generation: 0,
            first_change: t0,
        });
        let trailing = DebounceConfig {
            leading_edge: false,
            ..DebounceConfig::default()
        };
        tokio::spawn(run(changes, out, trailing));
        let feeder = tokio::spawn(async move {
            for i in 1..=40u64 {
                src.send_replace(i);
                tokio::time::sleep(50 * MS).await;
            }
        });
        let first = next(&mut rx).await;
        assert_eq!(first.generation, 1);
        assert_eq!(Instant::now() - t0, 1000 * MS, "capped by max_delay");
        let second = next(&mut rx).await;
        assert_eq!(second.generation, 2);
        assert!(second.first_change > t0 + 1000 * MS - MS);
        assert!(Instant::now() - second.first_change <= 1000 * MS);
        feeder.await.expect("feeder");
    }

    #[test]
    fn leading_edge_pushes_a_lone_change_at_once_and_coalesces_what_follows() {
        let config = DebounceConfig::default();
        let t0 = Instant::now();
        let mut d = Debouncer::default();
        assert!(d.on_change(t0, &config), "first change after idle: at once");
        assert_eq!(d.deadline(&config), None, "nothing pending");
        // changes within `quiet` of that push are coalesced
        assert!(!d.on_change(t0 + 10 * MS, &config));
        assert!(!d.on_change(t0 + 40 * MS, &config));
        assert_eq!(d.deadline(&config), Some(t0 + 140 * MS));
        assert_eq!(d.fire(t0 + 140 * MS, &config), Some(t0 + 10 * MS));
        // still within `quiet` of the trailing push: pending again
        assert!(!d.on_change(t0 + 200 * MS, &config));
        assert_eq!(d.fire(t0 + 300 * MS, &config), Some(t0 + 200 * MS));
        // idle for `quiet` since the last push: at once again
        assert!(d.on_change(t0 + 400 * MS, &config));
    }

    #[tokio::test(start_paused = true)]
    async fn with_leading_edge_a_burst_is_two_pushes_the_first_immediate() {
        let (src, changes) = watch::channel(0u64);
        let t0 = Instant::now();
        let (out, mut rx) = watch::channel(Trigger {
            generation: 0,
            first_change: t0,
        });
        tokio::spawn(run(changes, out, DebounceConfig::default()));
        src.send_replace(1);
        let first = next(&mut rx).await;
        assert_eq!((first.generation, Instant::now() - t0), (1, Duration::ZERO));
        for i in 2..=10 {
            tokio::time::sleep(20 * MS).await;
            src.send_replace(i);
        }
        // changes at 20..=180 ms: one trailing push 100 ms after the last
        let second = next(&mut rx).await;
        assert_eq!(second.generation, 2);
        assert_eq!(second.first_change, t0 + 20 * MS);
        assert_eq!(Instant::now() - t0, 280 * MS);
        let more = tokio::time::timeout(Duration::from_secs(5), rx.changed()).await;
        assert!(more.is_err(), "no push without changes");
    }
}
