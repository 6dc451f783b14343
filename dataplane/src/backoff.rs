//! Exponential backoff with jitter, shared by the connections to weftd
//! (CA and xDS). Pure: the random fraction is passed in, so the schedule
//! is testable; [`Backoff::next_delay`] draws it.

use std::time::Duration;

/// Delays of `initial · factor^n`, capped at `max`, each randomised to
/// `[½d, d]` (equal jitter: never zero, so a flapping server is not
/// hammered, and spread so a fleet of proxies does not reconnect at once).
#[derive(Clone, Debug, PartialEq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub factor: f64,
    attempt: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            factor: 2.0,
            attempt: 0,
        }
    }

    /// The delay before attempt `attempt` (0-based) with jitter fraction
    /// `r` in `[0, 1)`.
    pub fn delay(&self, attempt: u32, r: f64) -> Duration {
        let exp = self
            .factor
            .powi(i32::try_from(attempt.min(64)).unwrap_or(64));
        let full = self.initial.mul_f64(exp.min(1e9)).min(self.max);
        full.mul_f64(0.5 + 0.5 * r.clamp(0.0, 1.0))
    }

    /// The next delay (random jitter), advancing the attempt count.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.delay(self.attempt, fastrand::f64());
        self.attempt = self.attempt.saturating_add(1);
        d
    }

    /// After a success: start again from `initial`.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Failed attempts since the last success.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_jitters() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        assert_eq!(b.delay(0, 1.0), Duration::from_millis(100));
        assert_eq!(b.delay(0, 0.0), Duration::from_millis(50));
        assert_eq!(b.delay(3, 1.0), Duration::from_millis(800));
        assert_eq!(b.delay(10, 1.0), Duration::from_secs(5), "capped");
        assert_eq!(
            b.delay(1000, 0.0),
            Duration::from_millis(2500),
            "no overflow"
        );
        let mut b = b;
        for _ in 0..5 {
            let d = b.next_delay();
            assert!(d >= Duration::from_millis(50) && d <= Duration::from_secs(5));
        }
        assert_eq!(b.attempts(), 5);
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
