//! At most one wake request per host per window: the activator's writes stay bounded whatever
//! the traffic (a page that reloads itself, many tabs, a crawler), and a burst of requests to a
//! sleeping app costs one annotation patch.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The minimum time between two wake requests for one host.
pub const WAKE_WINDOW: Duration = Duration::from_secs(5);

/// Hosts kept before stale entries are dropped. Only hosts of sleeping apps are ever recorded,
/// so this is reached only with that many apps asleep and requested within one window.
const PRUNE_AT: usize = 1024;

/// The instant of the last wake request of each host.
#[derive(Debug)]
pub struct RateLimiter {
    window: Duration,
    last: HashMap<String, Instant>,
}

impl RateLimiter {
    /// A limiter allowing one request per host per `window`.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            last: HashMap::new(),
        }
    }

    /// Whether a wake request for `host` may be sent at `now`; if so, records it (so a
    /// concurrent request for the same host is refused until the window has passed).
    pub fn try_acquire(&mut self, host: &str, now: Instant) -> bool {
        if let Some(last) = self.last.get(host)
            && now.saturating_duration_since(*last) < self.window
        {
            return false;
        }
        if self.last.len() >= PRUNE_AT {
            let window = self.window;
            self.last
                .retain(|_, last| now.saturating_duration_since(*last) < window);
        }
        self.last.insert(host.to_string(), now);
        true
    }

    /// Hosts currently recorded.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    /// Whether no host is recorded.
    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_request_per_host_per_window() {
        let mut limiter = RateLimiter::new(WAKE_WINDOW);
        let t0 = Instant::now();
        assert!(limiter.try_acquire("a", t0));
        assert!(!limiter.try_acquire("a", t0));
        assert!(!limiter.try_acquire("a", t0 + Duration::from_millis(4_999)));
        assert!(limiter.try_acquire("b", t0), "hosts are limited apart");
        assert!(limiter.try_acquire("a", t0 + WAKE_WINDOW));
        assert!(!limiter.try_acquire("a", t0 + Duration::from_millis(9_999)));
        assert!(limiter.try_acquire("a", t0 + 2 * WAKE_WINDOW));
    }

    #[test]
    fn a_clock_going_backwards_refuses_rather_than_panics() {
        let mut limiter = RateLimiter::new(WAKE_WINDOW);
        let t0 = Instant::now() + Duration::from_secs(60);
        assert!(limiter.try_acquire("a", t0));
        assert!(!limiter.try_acquire("a", t0 - Duration::from_secs(30)));
    }

    #[test]
    fn memory_stays_bounded_by_the_hosts_of_one_window() {
        let mut limiter = RateLimiter::new(WAKE_WINDOW);
        let t0 = Instant::now();
        for i in 0..PRUNE_AT {
            assert!(limiter.try_acquire(&format!("h{i}"), t0));
        }
        assert_eq!(limiter.len(), PRUNE_AT);
        let later = t0 + WAKE_WINDOW;
        assert!(limiter.try_acquire("new", later));
        assert_eq!(limiter.len(), 1, "stale hosts are dropped");
        assert!(!limiter.try_acquire("new", later));
    }
}
