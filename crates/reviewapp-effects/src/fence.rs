//! [`WriteFence`]: the leader's permission to write, with a deadline on the local monotonic clock.
//!
//! Leader election renews a Lease; a leader that cannot renew it must stop writing before any
//! other replica can take the Lease over. The election extends the fence after every successful
//! renewal ([`WriteFence::extend_to`]); once the deadline passes without one, every request the
//! effects layer would send fails with [`EffectsError::Fenced`](crate::EffectsError::Fenced)
//! instead: before it is sent, while it waits in a retry backoff, or while it waits for its
//! response. No task has to notice the deadline for this to hold: the check reads the clock.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::Instant;

/// Whether writes are allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Gate {
    /// Always (no leader election: the only replica).
    Open,
    /// Until this instant (a leader, until its renew deadline; in the past for a standby).
    Until(Instant),
    /// Never again (leadership lost or released).
    Shut,
}

/// Why a request was not sent: the fence lapsed (see [`WriteFence`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not sent: this replica is no longer the leader (its Lease was not renewed in time)")]
pub struct Fenced;

/// The permission to write, shared by the election (which extends it) and every request path
/// (which checks it). Cheap to clone; clones share the same state.
#[derive(Clone, Debug)]
pub struct WriteFence {
    gate: Arc<watch::Sender<Gate>>,
}

impl Default for WriteFence {
    /// An open fence.
    fn default() -> Self {
        Self::open()
    }
}

impl WriteFence {
    fn new(gate: Gate) -> Self {
        Self {
            gate: Arc::new(watch::Sender::new(gate)),
        }
    }

    /// A fence that never lapses: the operator runs without leader election.
    pub fn open() -> Self {
        Self::new(Gate::Open)
    }

    /// A fence that is closed until [`extend_to`](Self::extend_to) opens it: a standby.
    pub fn standby() -> Self {
        Self::new(Gate::Until(Instant::now()))
    }

    /// Allows writes until `deadline` (a later deadline than the current one only; an open or
    /// shut fence stays as it is).
    pub fn extend_to(&self, deadline: Instant) {
        self.gate.send_if_modified(|gate| match gate {
            Gate::Until(current) if *current < deadline => {
                *gate = Gate::Until(deadline);
                true
            }
            _ => false,
        });
    }

    /// Forbids writes for good.
    pub fn shut(&self) {
        self.gate.send_if_modified(|gate| {
            let changed = *gate != Gate::Shut;
            *gate = Gate::Shut;
            changed
        });
    }

    /// Whether a request may be sent now.
    pub fn is_open(&self) -> bool {
        match *self.gate.borrow() {
            Gate::Open => true,
            Gate::Until(deadline) => Instant::now() < deadline,
            Gate::Shut => false,
        }
    }

    /// `Ok` while a request may be sent.
    pub fn check(&self) -> Result<(), Fenced> {
        if self.is_open() { Ok(()) } else { Err(Fenced) }
    }

    /// The current deadline: `None` for a fence that never lapses, the past for a closed one.
    pub fn deadline(&self) -> Option<Instant> {
        match *self.gate.borrow() {
            Gate::Open => None,
            Gate::Until(deadline) => Some(deadline),
            Gate::Shut => Some(Instant::now()),
        }
    }

    /// Resolves once the fence is closed: its deadline passed (taking later extensions into
    /// account) or it was shut. Never resolves for an open fence.
    pub async fn lapsed(&self) {
        let mut changes = self.gate.subscribe();
        loop {
            let gate = *changes.borrow_and_update();
            match gate {
                Gate::Shut => return,
                Gate::Until(deadline) if Instant::now() >= deadline => return,
                Gate::Until(deadline) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(deadline) => {}
                        _ = changes.changed() => {}
                    }
                }
                // The sender lives as long as `self`, so `changed` only returns on a change.
                Gate::Open => {
                    let _ = changes.changed().await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_standby_is_closed_until_extended_then_lapses_at_the_deadline() {
        let fence = WriteFence::standby();
        assert!(!fence.is_open());
        assert_eq!(fence.check(), Err(Fenced));
        let start = Instant::now();
        fence.extend_to(start + Duration::from_secs(10));
        assert!(fence.is_open());
        // An earlier deadline does not shorten it.
        fence.extend_to(start + Duration::from_secs(5));
        assert_eq!(fence.deadline(), Some(start + Duration::from_secs(10)));

        let lapsed = {
            let fence = fence.clone();
            tokio::spawn(async move {
                fence.lapsed().await;
                Instant::now()
            })
        };
        tokio::time::sleep(Duration::from_secs(8)).await;
        // A renewal moves the deadline while `lapsed` waits.
        fence.extend_to(start + Duration::from_secs(18));
        let at = lapsed.await.unwrap();
        assert_eq!(at, start + Duration::from_secs(18));
        assert!(!fence.is_open());
    }

    #[tokio::test(start_paused = true)]
    async fn shut_is_final_and_open_never_lapses() {
        let fence = WriteFence::standby();
        fence.extend_to(Instant::now() + Duration::from_secs(10));
        fence.shut();
        assert!(!fence.is_open());
        fence.lapsed().await;
        fence.extend_to(Instant::now() + Duration::from_secs(60));
        assert!(!fence.is_open(), "a shut fence cannot be reopened");

        let open = WriteFence::open();
        assert!(open.is_open());
        assert_eq!(open.deadline(), None);
        open.extend_to(Instant::now());
        let waited = tokio::time::timeout(Duration::from_secs(3600), open.lapsed()).await;
        assert!(waited.is_err(), "an open fence never lapses");
        assert!(open.is_open());
    }
}
