//! Per-key ordering, coalescing, bounded concurrency, retries, fairness and shutdown.
//!
//! Time is paused (`start_paused`): sleeps advance the clock instantly and deterministically.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reviewapp_daemon::{Backoff, Scheduler};
use tokio::time::{Instant, sleep};

const MS: Duration = Duration::from_millis(1);

/// One handler run: key, item, start and end (relative to the test's start), success.
#[derive(Clone, Debug)]
struct Run {
    key: String,
    item: String,
    start: Duration,
    end: Duration,
    ok: bool,
}

type Log = Arc<Mutex<Vec<Run>>>;

/// `(key, item, error, attempt, retry_in)` as passed to the error hook.
type HookCall = (String, String, String, u32, Duration);

/// How the recording handler behaves for an item.
#[derive(Clone, Default)]
struct Script {
    /// Run time per item (default 10 ms).
    duration: HashMap<String, Duration>,
    /// Items that fail this many times before succeeding.
    failures: HashMap<String, usize>,
}

struct Harness {
    scheduler: Scheduler<String>,
    log: Log,
    max_concurrent: Arc<AtomicUsize>,
}

fn harness(concurrency: usize, backoff: Backoff, script: Script) -> Harness {
    let log: Log = Arc::default();
    let t0 = Instant::now();
    let current = Arc::new(AtomicUsize::new(0));
    let max_concurrent = Arc::new(AtomicUsize::new(0));
    let failed: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let (log2, current2, max2) = (log.clone(), current.clone(), max_concurrent.clone());
    let script = Arc::new(script);
    let scheduler = Scheduler::new(concurrency, backoff, move |key: String, item: String| {
        let (log, current, max, failed, script) = (
            log2.clone(),
            current2.clone(),
            max2.clone(),
            failed.clone(),
            script.clone(),
        );
        async move {
            let now = current.fetch_add(1, Ordering::SeqCst) + 1;
            max.fetch_max(now, Ordering::SeqCst);
            let start = t0.elapsed();
            sleep(script.duration.get(&item).copied().unwrap_or(10 * MS)).await;
            let fail = {
                let mut failed = failed.lock().unwrap();
                let n = failed.entry(item.clone()).or_default();
                let fail = *n < script.failures.get(&item).copied().unwrap_or(0);
                *n += 1;
                fail
            };
            current.fetch_sub(1, Ordering::SeqCst);
            log.lock().unwrap().push(Run {
                key,
                item: item.clone(),
                start,
                end: t0.elapsed(),
                ok: !fail,
            });
            if fail {
                Err(format!("{item} failed"))
            } else {
                Ok(())
            }
        }
    });
    Harness {
        scheduler,
        log,
        max_concurrent,
    }
}

fn no_retry_backoff() -> Backoff {
    Backoff::new(Duration::from_secs(1), 2.0, Duration::from_secs(60))
}

impl Harness {
    fn submit(&self, key: &str, item: &str) {
        self.scheduler.submit(key.to_owned(), item.to_owned());
    }
    fn runs(&self) -> Vec<Run> {
        self.log.lock().unwrap().clone()
    }
    fn items(&self, key: &str) -> Vec<String> {
        self.runs()
            .into_iter()
            .filter(|r| r.key == key)
            .map(|r| r.item)
            .collect()
    }
    /// Lets the dispatcher and handlers run until `d` of (paused) time has passed.
    async fn run_for(&self, d: Duration) {
        sleep(d).await;
    }
}

fn strs(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test(start_paused = true)]
async fn one_key_runs_one_at_a_time_in_submission_order() {
    let h = harness(8, no_retry_backoff(), Script::default());
    for item in ["a1", "a2", "a3", "a4", "a5"] {
        h.submit("a", item);
    }
    h.run_for(Duration::from_secs(1)).await;
    assert_eq!(h.items("a"), strs(&["a1", "a2", "a3", "a4", "a5"]));
    let runs = h.runs();
    for pair in runs.windows(2) {
        assert!(pair[0].end <= pair[1].start, "overlap: {pair:?}");
    }
    assert_eq!(h.max_concurrent.load(Ordering::SeqCst), 1);
    assert_eq!((h.scheduler.pending(), h.scheduler.in_flight()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn equal_pending_item_is_dropped_equal_in_flight_item_is_queued_once() {
    let h = harness(8, no_retry_backoff(), Script::default());
    h.submit("a", "x");
    h.run_for(MS).await; // "x" is in flight
    assert_eq!(h.scheduler.in_flight(), 1);
    h.submit("a", "y");
    h.submit("a", "x"); // equal to the in-flight one: queued (the object may have changed)
    h.submit("a", "y"); // equal to a pending one: dropped, "y" keeps its earlier position
    h.submit("a", "x"); // dropped as well
    h.run_for(MS).await;
    assert_eq!(h.scheduler.pending(), 2);
    h.run_for(Duration::from_secs(1)).await;
    assert_eq!(h.items("a"), strs(&["x", "y", "x"]));
}

#[tokio::test(start_paused = true)]
async fn a_burst_is_coalesced_before_it_starts() {
    let h = harness(8, no_retry_backoff(), Script::default());
    for _ in 0..100 {
        h.submit("a", "modify");
    }
    h.run_for(Duration::from_secs(1)).await;
    assert_eq!(h.items("a"), strs(&["modify"]));
}

#[tokio::test(start_paused = true)]
async fn different_keys_run_concurrently_up_to_the_limit() {
    let h = harness(4, no_retry_backoff(), Script::default());
    for k in 0..20 {
        h.submit(&format!("k{k}"), "go");
    }
    h.run_for(MS).await;
    assert_eq!(h.scheduler.in_flight(), 4);
    assert_eq!(h.scheduler.pending(), 16);
    h.run_for(Duration::from_secs(1)).await;
    let runs = h.runs();
    assert_eq!(runs.len(), 20);
    assert_eq!(h.max_concurrent.load(Ordering::SeqCst), 4);
    // 20 runs of 10 ms, 4 at a time: 5 waves, so everything is done after 50 ms.
    assert_eq!(runs.iter().map(|r| r.end).max().unwrap(), 50 * MS);
    assert_eq!((h.scheduler.pending(), h.scheduler.in_flight()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn failure_is_retried_after_exponential_backoff_without_blocking_other_keys() {
    let script = Script {
        failures: HashMap::from([("flaky".to_owned(), 3)]),
        ..Script::default()
    };
    let h = harness(
        1,
        Backoff::new(Duration::from_millis(100), 2.0, Duration::from_millis(300)),
        script,
    );
    let hooks: Arc<Mutex<Vec<HookCall>>> = Arc::default();
    let hooks2 = hooks.clone();
    let scheduler = h.scheduler.clone().with_on_error(
        move |key: &str, item: &String, error: &str, attempt: u32, retry_in: Duration| {
            hooks2.lock().unwrap().push((
                key.to_owned(),
                item.clone(),
                error.to_owned(),
                attempt,
                retry_in,
            ));
        },
    );
    scheduler.submit("a".to_owned(), "flaky".to_owned());
    h.run_for(5 * MS).await;
    // While "a" waits for its retry, "b" runs even with a concurrency of 1.
    h.submit("b", "b1");
    h.submit("b", "b2");
    h.run_for(Duration::from_secs(2)).await;

    let runs = h.runs();
    let a: Vec<_> = runs.iter().filter(|r| r.key == "a").collect();
    assert_eq!(
        a.iter().map(|r| r.ok).collect::<Vec<_>>(),
        [false, false, false, true]
    );
    // Runs take 10 ms; retries wait 100, 200, then 300 (capped) ms after each failure.
    assert_eq!(
        a.iter().map(|r| r.start).collect::<Vec<_>>(),
        [Duration::ZERO, 110 * MS, 320 * MS, 630 * MS]
    );
    let b: Vec<_> = runs.iter().filter(|r| r.key == "b").collect();
    assert_eq!(b.len(), 2);
    assert!(b[1].end < a[1].start, "b is not held up by a's backoff");

    let hooks = hooks.lock().unwrap().clone();
    assert_eq!(
        hooks,
        vec![
            (
                "a".into(),
                "flaky".into(),
                "flaky failed".into(),
                1,
                100 * MS
            ),
            (
                "a".into(),
                "flaky".into(),
                "flaky failed".into(),
                2,
                200 * MS
            ),
            (
                "a".into(),
                "flaky".into(),
                "flaky failed".into(),
                3,
                300 * MS
            ),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn newer_items_queue_behind_a_retry() {
    let script = Script {
        failures: HashMap::from([("x".to_owned(), 1)]),
        ..Script::default()
    };
    let h = harness(
        4,
        Backoff::new(Duration::from_millis(100), 2.0, Duration::from_secs(1)),
        script,
    );
    h.submit("a", "x");
    h.run_for(20 * MS).await; // x failed at 10 ms, retry at 110 ms
    h.submit("a", "y");
    h.submit("a", "z");
    h.run_for(MS).await;
    assert_eq!(h.scheduler.pending(), 3);
    assert_eq!(h.scheduler.in_flight(), 0, "the key waits out its backoff");
    h.run_for(Duration::from_secs(1)).await;
    assert_eq!(h.items("a"), strs(&["x", "x", "y", "z"]));
    let runs = h.runs();
    assert_eq!(runs[1].start, 110 * MS);
}

#[tokio::test(start_paused = true)]
async fn an_equal_newer_item_replaces_the_retry_but_not_the_backoff() {
    let script = Script {
        failures: HashMap::from([("x".to_owned(), 1)]),
        ..Script::default()
    };
    let h = harness(
        4,
        Backoff::new(Duration::from_millis(100), 2.0, Duration::from_secs(1)),
        script,
    );
    h.submit("a", "x");
    h.run_for(20 * MS).await; // x failed; its retry waits until 110 ms
    h.submit("a", "y");
    h.submit("a", "x"); // newer and equal to the failed item: the retry is dropped for it
    h.run_for(MS).await;
    assert_eq!(h.scheduler.pending(), 2);
    h.run_for(Duration::from_secs(1)).await;
    assert_eq!(h.items("a"), strs(&["x", "y", "x"]));
    assert_eq!(h.runs()[1].start, 110 * MS, "y still waits for the backoff");
}

#[tokio::test(start_paused = true)]
async fn an_equal_item_submitted_while_the_failing_one_ran_replaces_its_retry() {
    let script = Script {
        failures: HashMap::from([("x".to_owned(), 1)]),
        ..Script::default()
    };
    let h = harness(
        4,
        Backoff::new(Duration::from_millis(100), 2.0, Duration::from_secs(1)),
        script,
    );
    h.submit("a", "x");
    h.run_for(MS).await;
    h.submit("a", "x"); // queued behind the in-flight "x", which then fails
    h.run_for(Duration::from_secs(1)).await;
    assert_eq!(h.items("a"), strs(&["x", "x"]), "not three runs");
    assert_eq!(h.runs()[1].start, 110 * MS);
}

#[tokio::test(start_paused = true)]
async fn supersede_hook_lets_newer_work_replace_a_failing_item() {
    let script = Script {
        failures: HashMap::from([("modify".to_owned(), usize::MAX)]),
        ..Script::default()
    };
    let h = harness(
        4,
        Backoff::new(Duration::from_millis(100), 2.0, Duration::from_secs(1)),
        script,
    );
    let scheduler = h
        .scheduler
        .clone()
        .with_supersede(|newer: &String, failed: &String| newer == failed || newer == "delete");
    scheduler.submit("a".to_owned(), "modify".to_owned());
    h.run_for(20 * MS).await;
    scheduler.submit("a".to_owned(), "delete".to_owned());
    h.run_for(Duration::from_secs(1)).await;
    assert_eq!(h.items("a"), strs(&["modify", "delete"]));
    assert_eq!(h.scheduler.pending(), 0);
}

#[tokio::test(start_paused = true)]
async fn success_resets_the_backoff() {
    let script = Script {
        failures: HashMap::from([("x".to_owned(), 2), ("y".to_owned(), 1)]),
        ..Script::default()
    };
    let h = harness(
        4,
        Backoff::new(Duration::from_millis(100), 2.0, Duration::from_secs(10)),
        script,
    );
    let attempts: Arc<Mutex<Vec<(u32, Duration)>>> = Arc::default();
    let attempts2 = attempts.clone();
    let scheduler = h.scheduler.clone().with_on_error(
        move |_: &str, _: &String, _: &str, attempt, retry_in| {
            attempts2.lock().unwrap().push((attempt, retry_in));
        },
    );
    scheduler.submit("a".to_owned(), "x".to_owned());
    scheduler.submit("a".to_owned(), "y".to_owned());
    h.run_for(Duration::from_secs(2)).await;
    assert_eq!(h.items("a"), strs(&["x", "x", "x", "y", "y"]));
    assert_eq!(
        *attempts.lock().unwrap(),
        [(1, 100 * MS), (2, 200 * MS), (1, 100 * MS)],
        "y's failure after x's success starts again at attempt 1"
    );
}

#[tokio::test(start_paused = true)]
async fn a_long_queue_does_not_starve_other_keys() {
    let h = harness(1, no_retry_backoff(), Script::default());
    for i in 0..1000 {
        h.submit("busy", &format!("item{i}"));
    }
    h.run_for(MS).await;
    h.submit("b", "b1");
    h.submit("c", "c1");
    h.run_for(100 * MS).await;
    let runs = h.runs();
    let position = |key: &str| runs.iter().position(|r| r.key == key).unwrap();
    // Round-robin, one item per key turn: busy, b, c, busy, ...
    assert!(position("b") <= 2, "{:?}", &runs[..4]);
    assert!(position("c") <= 2, "{:?}", &runs[..4]);
    assert_eq!(h.items("busy")[..3], strs(&["item0", "item1", "item2"]));
    h.run_for(Duration::from_secs(20)).await;
    assert_eq!(h.items("busy").len(), 1000);
}

#[tokio::test(start_paused = true)]
async fn a_key_submitted_first_is_served_before_earlier_ready_keys() {
    let h = harness(1, no_retry_backoff(), Script::default());
    for k in 0..5 {
        h.submit(&format!("k{k}"), "go");
    }
    h.run_for(MS).await; // k0 runs; k1..k4 wait
    h.scheduler.submit_first("head".to_owned(), "go".to_owned());
    h.scheduler.submit_first("k4".to_owned(), "go".to_owned());
    h.run_for(Duration::from_secs(1)).await;
    let order: Vec<String> = h.runs().into_iter().map(|r| r.key).collect();
    assert_eq!(order, strs(&["k0", "k4", "head", "k1", "k2", "k3"]));
    // k4's equal pending item was not queued twice.
    assert_eq!(h.items("k4"), strs(&["go"]));
}

#[tokio::test(start_paused = true)]
async fn round_robin_interleaves_busy_keys() {
    let h = harness(1, no_retry_backoff(), Script::default());
    for i in 0..3 {
        h.submit("a", &format!("a{i}"));
        h.submit("b", &format!("b{i}"));
    }
    h.run_for(Duration::from_secs(1)).await;
    let order: Vec<String> = h.runs().into_iter().map(|r| r.item).collect();
    assert_eq!(order, strs(&["a0", "b0", "a1", "b1", "a2", "b2"]));
}

#[tokio::test(start_paused = true)]
async fn shutdown_finishes_in_flight_and_drops_queued_work() {
    let script = Script {
        duration: HashMap::from([("slow".to_owned(), 200 * MS)]),
        ..Script::default()
    };
    let h = harness(2, no_retry_backoff(), script);
    let other = h.scheduler.clone();
    h.submit("a", "slow");
    h.submit("a", "queued");
    h.submit("b", "slow");
    h.submit("c", "never");
    h.run_for(MS).await;
    assert_eq!(h.scheduler.in_flight(), 2);
    let t = Instant::now();
    h.scheduler.clone().shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        t.elapsed(),
        199 * MS,
        "waited for the in-flight handlers only"
    );
    let runs = h.runs();
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r.item == "slow" && r.ok));
    other.submit("d".to_owned(), "after".to_owned());
    h.run_for(Duration::from_secs(1)).await;
    assert_eq!(h.runs().len(), 2, "submit after shutdown is ignored");
    assert_eq!((other.pending(), other.in_flight()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn shutdown_gives_up_on_handlers_after_the_grace_period() {
    let script = Script {
        duration: HashMap::from([("stuck".to_owned(), Duration::from_secs(3600))]),
        ..Script::default()
    };
    let h = harness(2, no_retry_backoff(), script);
    h.submit("a", "stuck");
    h.run_for(MS).await;
    let t = Instant::now();
    h.scheduler.clone().shutdown(Duration::from_secs(2)).await;
    assert_eq!(t.elapsed(), Duration::from_secs(2));
    assert!(h.runs().is_empty(), "the stuck handler was aborted");
    assert_eq!(h.scheduler.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_failure_during_shutdown_is_not_retried() {
    let script = Script {
        failures: HashMap::from([("x".to_owned(), 5)]),
        ..Script::default()
    };
    let h = harness(2, no_retry_backoff(), script);
    h.submit("a", "x");
    h.run_for(MS).await;
    h.scheduler.clone().shutdown(Duration::from_secs(5)).await;
    h.run_for(Duration::from_secs(60)).await;
    assert_eq!(h.items("a"), strs(&["x"]));
}

#[tokio::test(start_paused = true)]
async fn a_panicking_handler_counts_as_a_failure_and_is_retried() {
    let calls = Arc::new(AtomicUsize::new(0));
    let calls2 = calls.clone();
    let scheduler: Scheduler<u32> = Scheduler::new(
        2,
        Backoff::new(Duration::from_millis(100), 2.0, Duration::from_secs(1)),
        move |_key, _item| {
            let calls = calls2.clone();
            async move {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("boom");
                }
                Ok::<(), String>(())
            }
        },
    );
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let errors2 = errors.clone();
    let scheduler = scheduler.with_on_error(move |_, _, error, _, _| {
        errors2.lock().unwrap().push(error.to_owned());
    });
    scheduler.submit("a".to_owned(), 1);
    sleep(Duration::from_secs(1)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(*errors.lock().unwrap(), ["handler panicked"]);
    assert_eq!((scheduler.pending(), scheduler.in_flight()), (0, 0));
}

#[test]
fn backoff_grows_exponentially_up_to_the_cap() {
    let b = Backoff::new(Duration::from_millis(100), 2.0, Duration::from_secs(1));
    let delays: Vec<_> = (1..=6).map(|n| b.delay(n)).collect();
    assert_eq!(
        delays,
        [100, 200, 400, 800, 1000, 1000].map(Duration::from_millis)
    );
    assert_eq!(b.delay(u32::MAX), Duration::from_secs(1));
    let huge = Backoff::new(Duration::from_secs(1), f64::MAX, Duration::from_secs(30));
    assert_eq!(huge.delay(50), Duration::from_secs(30));
}

#[test]
fn jitter_only_shortens_delays_and_varies() {
    let b = Backoff::new(Duration::from_secs(10), 2.0, Duration::from_secs(10)).with_jitter(0.5);
    let delays: HashSet<_> = (0..50).map(|_| b.delay(1)).collect();
    assert!(
        delays
            .iter()
            .all(|d| *d >= Duration::from_secs(5) && *d <= Duration::from_secs(10))
    );
    assert!(delays.len() > 1, "jitter varies");
}
