//! Per-app timers for the lifecycle's deadlines: each handled transition says when its app needs
//! a look next (`requeue_at`: its expiry, or when it goes to sleep by itself), and [`Wakeups`]
//! keeps one timer per app for it, replaced by the next transition's, firing a RECONCILE of that
//! app at that instant. No polling: an app with no deadline has no timer, and the deadlines
//! themselves live in the status, so a restart re-arms them from the first handling of each app.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How late after a deadline its timer fires: the transition compares whole seconds, and the
/// wall clock and the monotonic one may disagree by a little.
const SLACK: Duration = Duration::from_millis(20);

/// A handle to the timers (cheap to clone). Setting a timer never blocks.
#[derive(Clone, Debug)]
pub struct Wakeups {
    tx: mpsc::UnboundedSender<(String, Option<Timestamp>)>,
    armed: Arc<AtomicUsize>,
}

/// The receiving end, run by [`run`] once the scheduler exists.
pub struct WakeupTimers {
    rx: mpsc::UnboundedReceiver<(String, Option<Timestamp>)>,
    armed: Arc<AtomicUsize>,
}

impl Wakeups {
    /// The handle and the timers it feeds.
    pub fn new() -> (Wakeups, WakeupTimers) {
        let (tx, rx) = mpsc::unbounded_channel();
        let armed = Arc::new(AtomicUsize::new(0));
        (
            Wakeups {
                tx,
                armed: armed.clone(),
            },
            WakeupTimers { rx, armed },
        )
    }

    /// Arms app `name`'s timer for `at` (replacing its earlier one), or disarms it (`None`).
    pub fn set(&self, name: &str, at: Option<Timestamp>) {
        let _ = self.tx.send((name.to_string(), at));
    }

    /// Fires app `name`'s look now.
    pub fn now(&self, name: &str) {
        self.set(name, Some(Timestamp::UNIX_EPOCH));
    }

    /// Timers armed, as of the timer task's last step.
    pub fn armed(&self) -> usize {
        self.armed.load(Ordering::Relaxed)
    }
}

/// The instant of the monotonic clock at wall-clock time `at`, plus [`SLACK`].
fn instant_of(at: Timestamp) -> Instant {
    let ahead = at.duration_since(Timestamp::now());
    let ahead = Duration::try_from(ahead).unwrap_or(Duration::ZERO);
    let now = Instant::now();
    now.checked_add(ahead + SLACK)
        .or_else(|| now.checked_add(Duration::from_secs(86_400 * 365)))
        .unwrap_or(now)
}

/// Runs the timers until every [`Wakeups`] handle is gone; `fire(name)` is called for each app
/// whose timer expired (the daemon schedules a RECONCILE of it), `armed(n)` after every change
/// with the number of timers armed.
pub async fn run(
    mut timers: WakeupTimers,
    fire: impl Fn(String) + Send + 'static,
    armed: impl Fn(usize) + Send + 'static,
) {
    let mut due: HashMap<String, Instant> = HashMap::new();
    let mut heap: BinaryHeap<Reverse<(Instant, String)>> = BinaryHeap::new();
    loop {
        let next = heap.peek().map(|Reverse((at, _))| *at);
        let sleep = async move {
            match next {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            command = timers.rx.recv() => {
                let Some((name, at)) = command else { return };
                match at {
                    Some(at) => {
                        let at = instant_of(at);
                        due.insert(name.clone(), at);
                        heap.push(Reverse((at, name)));
                    }
                    None => {
                        due.remove(&name);
                    }
                }
            }
            () = sleep => {
                let now = Instant::now();
                while let Some(Reverse((at, _))) = heap.peek() {
                    if *at > now {
                        break;
                    }
                    let Some(Reverse((at, name))) = heap.pop() else { break };
                    // A timer replaced or disarmed since is skipped.
                    if due.get(&name) == Some(&at) {
                        due.remove(&name);
                        fire(name);
                    }
                }
                // Drop stale entries when they dominate (many replaced timers).
                if heap.len() > 2 * due.len() + 64 {
                    heap = due.iter().map(|(name, at)| Reverse((*at, name.clone()))).collect();
                }
            }
        }
        timers.armed.store(due.len(), Ordering::Relaxed);
        armed(due.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn started() -> (Wakeups, Arc<Mutex<Vec<String>>>) {
        let (wakeups, timers) = Wakeups::new();
        let fired = Arc::new(Mutex::new(Vec::new()));
        let log = fired.clone();
        tokio::spawn(run(
            timers,
            move |name| log.lock().unwrap().push(name),
            |_| {},
        ));
        (wakeups, fired)
    }

    fn in_secs(seconds: i64) -> Timestamp {
        Timestamp::now()
            .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(seconds))
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn one_timer_per_app_the_latest_wins() {
        let (wakeups, fired) = started();
        wakeups.set("a", Some(in_secs(3600)));
        wakeups.set("a", Some(in_secs(0)));
        wakeups.set("b", Some(in_secs(-10)));
        wakeups.set("c", Some(in_secs(0)));
        wakeups.set("c", None);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut names = fired.lock().unwrap().clone();
        names.sort();
        assert_eq!(
            names,
            ["a", "b"],
            "the replaced and the disarmed timers do not fire"
        );
        assert_eq!(wakeups.armed(), 0);
        wakeups.now("d");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(fired.lock().unwrap().last().map(String::as_str), Some("d"));
    }
}
