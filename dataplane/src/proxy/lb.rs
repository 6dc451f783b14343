//! Endpoint load balancing: round robin (weighted by repetition of the
//! cursor over total weight), least request (power of two choices over
//! outstanding requests divided by weight) and random, over routable
//! endpoints of the highest-priority level that has any.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use crate::config::model::{Cluster, Endpoint, LbPolicy};

/// Outstanding requests per endpoint address, shared by all snapshots.
#[derive(Debug, Default)]
pub struct Outstanding {
    by_addr: RwLock<HashMap<SocketAddr, Arc<AtomicUsize>>>,
}

impl Outstanding {
    pub fn counter(&self, addr: SocketAddr) -> Arc<AtomicUsize> {
        let found = match self.by_addr.read() {
            Ok(m) => m.get(&addr).cloned(),
            Err(p) => p.into_inner().get(&addr).cloned(),
        };
        if let Some(c) = found {
            return c;
        }
        let mut map = match self.by_addr.write() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        map.entry(addr).or_default().clone()
    }

    pub fn get(&self, addr: SocketAddr) -> usize {
        match self.by_addr.read() {
            Ok(m) => m.get(&addr).map_or(0, |c| c.load(Ordering::Relaxed)),
            Err(p) => p
                .into_inner()
                .get(&addr)
                .map_or(0, |c| c.load(Ordering::Relaxed)),
        }
    }
}

/// A request in flight to an endpoint; decrements on drop.
#[derive(Debug)]
pub struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    pub fn start(counter: Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A cheap pseudo-random number (xorshift over a global counter): LB
/// choices need spread, not unpredictability.
pub fn random() -> u64 {
    static STATE: AtomicUsize = AtomicUsize::new(0x9E37_79B9);
    let mut x = STATE.fetch_add(0x9E37_79B9, Ordering::Relaxed) as u64;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

/// The routable endpoints of the best priority level.
pub fn candidates(endpoints: &[Endpoint]) -> Vec<&Endpoint> {
    let best = endpoints
        .iter()
        .filter(|e| e.health.routable())
        .map(|e| e.priority)
        .min();
    endpoints
        .iter()
        .filter(|e| e.health.routable() && Some(e.priority) == best)
        .collect()
}

/// Picks an endpoint; `load(addr)` gives outstanding requests.
pub fn pick(
    cluster: &Cluster,
    load: impl Fn(SocketAddr) -> usize,
    rand: impl FnMut() -> u64,
) -> Option<&Endpoint> {
    let eps = candidates(&cluster.endpoints);
    pick_from(&eps, cluster.lb, &cluster.rr, load, rand).copied()
}

pub fn pick_from<'e, 'a>(
    eps: &'e [&'a Endpoint],
    policy: LbPolicy,
    cursor: &AtomicUsize,
    load: impl Fn(SocketAddr) -> usize,
    mut rand: impl FnMut() -> u64,
) -> Option<&'e &'a Endpoint> {
    if eps.is_empty() {
        return None;
    }
    let total: u64 = eps.iter().map(|e| u64::from(e.weight.max(1))).sum();
    let by_weight = |mut n: u64| {
        for e in eps {
            let w = u64::from(e.weight.max(1));
            if n < w {
                return e;
            }
            n -= w;
        }
        &eps[0]
    };
    match policy {
        LbPolicy::RoundRobin => {
            let n = cursor.fetch_add(1, Ordering::Relaxed) as u64;
            Some(by_weight(n % total))
        }
        LbPolicy::Random => Some(by_weight(rand() % total)),
        LbPolicy::LeastRequest => {
            if eps.len() == 1 {
                return eps.first();
            }
            let a = &eps[(rand() % eps.len() as u64) as usize];
            let b = &eps[(rand() % eps.len() as u64) as usize];
            // Compare load/weight without division.
            let cost =
                |e: &Endpoint| (load(e.address) as u64 + 1) * (total / u64::from(e.weight.max(1)));
            Some(if cost(b) < cost(a) { b } else { a })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::model::Health;

    fn ep(port: u16, health: Health, priority: u32) -> Endpoint {
        Endpoint {
            address: SocketAddr::from(([10, 0, 0, 1], port)),
            health,
            weight: 1,
            region: String::new(),
            zone: String::new(),
            priority,
            socket_match: BTreeMap::new(),
        }
    }

    #[test]
    fn round_robin_cycles_over_routable_endpoints() {
        let all = [
            ep(1, Health::Healthy, 0),
            ep(2, Health::Unhealthy, 0),
            ep(3, Health::Unknown, 0),
            ep(4, Health::Healthy, 1),
        ];
        let eps = candidates(&all);
        let cursor = AtomicUsize::new(0);
        let ports: Vec<u16> = (0..4)
            .map(|_| {
                pick_from(&eps, LbPolicy::RoundRobin, &cursor, |_| 0, || 0)
                    .unwrap()
                    .address
                    .port()
            })
            .collect();
        assert_eq!(ports, vec![1, 3, 1, 3]);
    }

    #[test]
    fn lower_priority_is_used_only_when_the_best_level_is_empty() {
        let all = [ep(1, Health::Draining, 0), ep(4, Health::Healthy, 1)];
        let eps = candidates(&all);
        assert_eq!(eps.len(), 1);
        assert_eq!(eps[0].address.port(), 4);
        assert!(candidates(&[ep(1, Health::Unhealthy, 0)]).is_empty());
    }

    #[test]
    fn least_request_prefers_the_idle_endpoint() {
        let all = [ep(1, Health::Healthy, 0), ep(2, Health::Healthy, 0)];
        let eps = candidates(&all);
        let cursor = AtomicUsize::new(0);
        let load = |a: SocketAddr| if a.port() == 1 { 10 } else { 0 };
        // Both orders of the two choices pick the idle one.
        for seq in [[0u64, 1], [1, 0]] {
            let mut it = seq.into_iter();
            let chosen = pick_from(&eps, LbPolicy::LeastRequest, &cursor, load, || {
                it.next().unwrap_or(0)
            })
            .unwrap();
            assert_eq!(chosen.address.port(), 2);
        }
    }

    #[test]
    fn weights_shape_round_robin() {
        let mut heavy = ep(1, Health::Healthy, 0);
        heavy.weight = 3;
        let all = [heavy, ep(2, Health::Healthy, 0)];
        let eps = candidates(&all);
        let cursor = AtomicUsize::new(0);
        let ones = (0..8)
            .filter(|_| {
                pick_from(&eps, LbPolicy::RoundRobin, &cursor, |_| 0, || 0)
                    .unwrap()
                    .address
                    .port()
                    == 1
            })
            .count();
        assert_eq!(ones, 6);
    }
}
