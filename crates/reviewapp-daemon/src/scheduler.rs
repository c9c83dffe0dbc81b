//! Per-key work scheduler: one item at a time per key, in submission order, coalesced, with
//! bounded concurrency across keys, round-robin fairness and per-key retry backoff.
//!
//! One dispatcher task owns every queue; [`Scheduler`] handles only send it commands over a
//! channel, so [`Scheduler::submit`] never blocks and no lock is shared with handlers.
//!
//! Semantics, per key (a `ReviewApp` name in the daemon):
//! - items run strictly one at a time, in submission order;
//! - an item equal to one already *pending* is dropped (the earlier one keeps its position); an
//!   item equal to the one *in flight* is queued once, since the world may have changed meanwhile;
//! - a failing item is retried after [`Backoff::delay`]`(attempt)`. Backoff gates the key: until
//!   the retry time nothing of that key runs (other keys are not affected), and newer items queue
//!   behind the retry. A newer item equal to the failed one (or one the
//!   [`with_supersede`](Scheduler::with_supersede) hook says supersedes it) drops the retry and
//!   takes its place at the newer position; the key still waits out its backoff, so resubmitting
//!   a failing item cannot defeat it. A success resets the key's backoff.
//!
//! Across keys: at most `concurrency` handlers run at once, and ready keys are served
//! round-robin, one item per turn, so a key with a long queue cannot starve the others.
//! [`Scheduler::submit_first`] puts its key at the front of that turn order instead (the head of
//! the build queue, whose slot just freed, should not wait behind a burst of other work).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::{Id, JoinError, JoinSet};
use tokio::time::Instant;

use crate::backoff::Backoff;

type BoxFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type Handler<T> = Arc<dyn Fn(String, T) -> BoxFuture + Send + Sync>;
type OnError<T> = Box<dyn Fn(&str, &T, &str, u32, Duration) + Send + Sync>;
type Supersede<T> = Box<dyn Fn(&T, &T) -> bool + Send + Sync>;

enum Command<T> {
    Submit(String, T),
    SubmitFirst(String, T),
    OnError(OnError<T>),
    Supersede(Supersede<T>),
    Shutdown(Duration, oneshot::Sender<()>),
}

#[derive(Default)]
struct Counters {
    pending: AtomicUsize,
    in_flight: AtomicUsize,
    closed: AtomicBool,
}

/// Handle to a per-key scheduler. Cheap to clone; every clone feeds the same dispatcher.
pub struct Scheduler<T> {
    tx: mpsc::UnboundedSender<Command<T>>,
    counters: Arc<Counters>,
}

impl<T> Clone for Scheduler<T> {
    fn clone(&self) -> Self {
        Scheduler {
            tx: self.tx.clone(),
            counters: self.counters.clone(),
        }
    }
}

impl<T> Scheduler<T> {
    /// Queues `item` for `key`. Never blocks; ignored after [`shutdown`](Self::shutdown).
    pub fn submit(&self, key: String, item: T) {
        if self.counters.closed.load(Ordering::Acquire) {
            return;
        }
        let _ = self.tx.send(Command::Submit(key, item));
    }

    /// Queues `item` for `key` like [`submit`](Self::submit), and serves `key` before every other
    /// ready key (its own items still run in submission order).
    pub fn submit_first(&self, key: String, item: T) {
        if self.counters.closed.load(Ordering::Acquire) {
            return;
        }
        let _ = self.tx.send(Command::SubmitFirst(key, item));
    }

    /// Items waiting to run (queued or waiting for a retry), as of the dispatcher's last step.
    pub fn pending(&self) -> usize {
        self.counters.pending.load(Ordering::Relaxed)
    }

    /// Handlers running now.
    pub fn in_flight(&self) -> usize {
        self.counters.in_flight.load(Ordering::Relaxed)
    }

    /// Stops starting work, drops every queued item and retry, and waits up to `grace` for the
    /// running handlers; those still running then are aborted. Later submits (through any clone)
    /// are ignored.
    pub async fn shutdown(self, grace: Duration) {
        self.counters.closed.store(true, Ordering::Release);
        let (done_tx, done_rx) = oneshot::channel();
        if self.tx.send(Command::Shutdown(grace, done_tx)).is_ok() {
            let _ = done_rx.await;
        }
    }
}

impl<T> std::fmt::Debug for Scheduler<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("pending", &self.pending())
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl<T> Scheduler<T>
where
    T: Clone + PartialEq + Send + Sync + 'static,
{
    /// Starts the dispatcher task; `handler(key, item)` runs each item, at most `concurrency`
    /// (at least 1) at once.
    ///
    /// # Panics
    /// When called outside a Tokio runtime.
    pub fn new<F, Fut, E>(concurrency: usize, backoff: Backoff, handler: F) -> Self
    where
        F: Fn(String, T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let handler: Handler<T> = Arc::new(move |key, item| {
            let fut = handler(key, item);
            Box::pin(async move { fut.await.map_err(|e| e.to_string()) })
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        let dispatcher = Dispatcher {
            handler,
            on_error: None,
            supersede: None,
            backoff,
            concurrency: concurrency.max(1),
            keys: HashMap::new(),
            ready: VecDeque::new(),
            timers: BinaryHeap::new(),
            running: JoinSet::new(),
            tasks: HashMap::new(),
            counters: counters.clone(),
            stopping: false,
        };
        tokio::spawn(dispatcher.run(rx));
        Scheduler { tx, counters }
    }

    /// Calls `hook(key, item, error, attempt, retry_in)` after every failed run (`attempt` counts
    /// the key's consecutive failures from 1), e.g. to record a metric, condition or Warning.
    pub fn with_on_error<H>(self, hook: H) -> Self
    where
        H: Fn(&str, &T, &str, u32, Duration) + Send + Sync + 'static,
    {
        let _ = self.tx.send(Command::OnError(Box::new(hook)));
        self
    }

    /// Replaces the rule "a newer item equal to a failed one drops its retry" with
    /// `supersedes(newer, failed)`; include equality in it to keep that behaviour (for example
    /// `|new, old| new == old || *new == AppEvent::Delete`, so a permanently failing item never
    /// holds back a teardown).
    pub fn with_supersede<S>(self, supersedes: S) -> Self
    where
        S: Fn(&T, &T) -> bool + Send + Sync + 'static,
    {
        let _ = self.tx.send(Command::Supersede(Box::new(supersedes)));
        self
    }
}

/// What the dispatcher knows about one key.
struct KeyState<T> {
    queue: VecDeque<T>,
    /// The item being handled, if any.
    in_flight: Option<T>,
    /// Until when the key is held back after a failure.
    retry_at: Option<Instant>,
    /// The front of `queue` is the failed item waiting for its retry.
    retry_front: bool,
    /// Consecutive failures.
    failures: u32,
    /// The key is in the ready queue.
    ready: bool,
}

impl<T> Default for KeyState<T> {
    fn default() -> Self {
        KeyState {
            queue: VecDeque::new(),
            in_flight: None,
            retry_at: None,
            retry_front: false,
            failures: 0,
            ready: false,
        }
    }
}

struct Dispatcher<T> {
    handler: Handler<T>,
    on_error: Option<OnError<T>>,
    supersede: Option<Supersede<T>>,
    backoff: Backoff,
    concurrency: usize,
    keys: HashMap<String, KeyState<T>>,
    /// Keys with work that may start now, in round-robin order.
    ready: VecDeque<String>,
    /// Retry deadlines (stale entries are skipped when they fire).
    timers: BinaryHeap<Reverse<(Instant, String)>>,
    running: JoinSet<Result<(), String>>,
    tasks: HashMap<Id, String>,
    counters: Arc<Counters>,
    /// Shutting down: no new work, no retries.
    stopping: bool,
}

impl<T> Dispatcher<T>
where
    T: Clone + PartialEq + Send + Sync + 'static,
{
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command<T>>) {
        loop {
            self.start_ready();
            let next_timer = self.timers.peek().map(|Reverse((at, _))| *at);
            let timer = async move {
                match next_timer {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                command = rx.recv() => {
                    let Some(command) = command else {
                        // Every handle dropped without shutdown: let running handlers finish.
                        self.stop();
                        while let Some(done) = self.running.join_next_with_id().await {
                            self.finished(done);
                        }
                        return;
                    };
                    // Take everything already sent, so a burst is coalesced before it starts.
                    let mut next = Some(command);
                    while let Some(command) = next {
                        if let Some((grace, done)) = self.command(command) {
                            self.shut_down(grace).await;
                            let _ = done.send(());
                            return;
                        }
                        next = rx.try_recv().ok();
                    }
                }
                Some(done) = self.running.join_next_with_id(), if !self.running.is_empty() => {
                    self.finished(done);
                }
                () = timer => self.fire_timers(),
            }
        }
    }

    /// Applies a command; returns the shutdown request, if it is one.
    fn command(&mut self, command: Command<T>) -> Option<(Duration, oneshot::Sender<()>)> {
        match command {
            Command::Submit(key, item) => self.submit(key, item, false),
            Command::SubmitFirst(key, item) => self.submit(key, item, true),
            Command::OnError(hook) => self.on_error = Some(hook),
            Command::Supersede(hook) => self.supersede = Some(hook),
            Command::Shutdown(grace, done) => return Some((grace, done)),
        }
        None
    }

    fn submit(&mut self, key: String, item: T, first: bool) {
        let state = self.keys.entry(key.clone()).or_default();
        if state.retry_front
            && let Some(failed) = state.queue.front()
            && supersedes(self.supersede.as_ref(), &item, failed)
        {
            state.queue.pop_front();
            state.retry_front = false;
            self.counters.pending.fetch_sub(1, Ordering::Relaxed);
        }
        if !state.queue.contains(&item) {
            state.queue.push_back(item);
            self.counters.pending.fetch_add(1, Ordering::Relaxed);
        }
        self.mark_ready(&key);
        if first {
            self.serve_first(&key);
        }
    }

    /// Moves `key` to the front of the ready queue, if it is in it.
    fn serve_first(&mut self, key: &str) {
        if let Some(at) = self.ready.iter().position(|k| k == key)
            && let Some(key) = self.ready.remove(at)
        {
            self.ready.push_front(key);
        }
    }

    /// Puts `key` in the ready queue if it has work and nothing holds it back.
    fn mark_ready(&mut self, key: &str) {
        let Some(state) = self.keys.get_mut(key) else {
            return;
        };
        if !state.ready
            && state.in_flight.is_none()
            && state.retry_at.is_none()
            && !state.queue.is_empty()
        {
            state.ready = true;
            self.ready.push_back(key.to_owned());
        }
    }

    /// Starts ready keys' next items while there is capacity.
    fn start_ready(&mut self) {
        while self.running.len() < self.concurrency {
            let Some(key) = self.ready.pop_front() else {
                return;
            };
            let Some(state) = self.keys.get_mut(&key) else {
                continue;
            };
            state.ready = false;
            if state.in_flight.is_some() || state.retry_at.is_some() {
                continue;
            }
            let Some(item) = state.queue.pop_front() else {
                continue;
            };
            state.retry_front = false;
            state.in_flight = Some(item.clone());
            self.counters.pending.fetch_sub(1, Ordering::Relaxed);
            self.counters.in_flight.fetch_add(1, Ordering::Relaxed);
            let handler = self.handler.clone();
            let task_key = key.clone();
            let abort = self
                .running
                .spawn(async move { handler(task_key, item).await });
            self.tasks.insert(abort.id(), key);
        }
    }

    /// A handler finished (or panicked).
    fn finished(&mut self, done: Result<(Id, Result<(), String>), JoinError>) {
        let (id, result) = match done {
            Ok((id, result)) => (id, result),
            Err(error) => {
                let message = if error.is_panic() {
                    "handler panicked".to_owned()
                } else {
                    "handler cancelled".to_owned()
                };
                (error.id(), Err(message))
            }
        };
        self.counters.in_flight.fetch_sub(1, Ordering::Relaxed);
        let Some(key) = self.tasks.remove(&id) else {
            return;
        };
        let Some(state) = self.keys.get_mut(&key) else {
            return;
        };
        let Some(item) = state.in_flight.take() else {
            return;
        };
        match result {
            Ok(()) => {
                state.failures = 0;
                if state.queue.is_empty() && state.retry_at.is_none() {
                    self.keys.remove(&key);
                } else {
                    self.mark_ready(&key);
                }
            }
            Err(error) if self.stopping => {
                tracing::warn!(key = %key, error = %error, "scheduled work failed during shutdown");
            }
            Err(error) => {
                state.failures = state.failures.saturating_add(1);
                let attempt = state.failures;
                let retry_in = self.backoff.delay(attempt);
                let now = Instant::now();
                let at = now
                    .checked_add(retry_in)
                    .or_else(|| now.checked_add(Duration::from_secs(86_400 * 365)))
                    .unwrap_or(now);
                state.retry_at = Some(at);
                // Newer work that is equal to (or supersedes) the failed item replaces its retry.
                let replaced = state
                    .queue
                    .iter()
                    .any(|newer| supersedes(self.supersede.as_ref(), newer, &item));
                tracing::warn!(key = %key, attempt, retry_in = ?retry_in, replaced, error = %error, "scheduled work failed");
                if let Some(hook) = &self.on_error {
                    let call = AssertUnwindSafe(|| hook(&key, &item, &error, attempt, retry_in));
                    if std::panic::catch_unwind(call).is_err() {
                        tracing::error!(key = %key, "scheduler error hook panicked");
                    }
                }
                if !replaced {
                    state.queue.push_front(item);
                    state.retry_front = true;
                    self.counters.pending.fetch_add(1, Ordering::Relaxed);
                }
                self.timers.push(Reverse((at, key)));
            }
        }
    }

    /// Releases keys whose backoff has passed.
    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, key))) = self.timers.pop() else {
                break;
            };
            let Some(state) = self.keys.get_mut(&key) else {
                continue;
            };
            if state.retry_at == Some(at) {
                state.retry_at = None;
                if state.queue.is_empty() {
                    self.keys.remove(&key);
                } else {
                    self.mark_ready(&key);
                }
            }
        }
    }

    /// Drops all queued work and retries.
    fn stop(&mut self) {
        self.stopping = true;
        self.counters.closed.store(true, Ordering::Release);
        for state in self.keys.values_mut() {
            state.queue.clear();
            state.retry_at = None;
        }
        self.ready.clear();
        self.timers.clear();
        self.counters.pending.store(0, Ordering::Relaxed);
    }

    async fn shut_down(&mut self, grace: Duration) {
        self.stop();
        let drain = async {
            while let Some(done) = self.running.join_next_with_id().await {
                self.finished(done);
            }
        };
        if tokio::time::timeout(grace, drain).await.is_err() {
            tracing::warn!(
                aborted = self.running.len(),
                "scheduler shutdown grace elapsed, aborting handlers"
            );
            self.running.abort_all();
            while self.running.join_next().await.is_some() {}
            self.counters.in_flight.store(0, Ordering::Relaxed);
        }
        self.timers.clear();
        self.counters.pending.store(0, Ordering::Relaxed);
    }
}

fn supersedes<T: PartialEq>(hook: Option<&Supersede<T>>, newer: &T, failed: &T) -> bool {
    match hook {
        Some(hook) => std::panic::catch_unwind(AssertUnwindSafe(|| hook(newer, failed)))
            .unwrap_or(newer == failed),
        None => newer == failed,
    }
}
