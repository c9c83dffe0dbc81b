//! The build cap (`build.maxConcurrent`) and its queue, kept beside the watch-side index and
//! derived from the cluster: the running builds are the build Jobs in the Job store that have
//! not finished and are not being deleted; the waiting apps are those whose status records a
//! queued build (`buildRequestedAt`), ordered by that time, then by arrival in this process (by
//! name after a restart). A slot granted to a handler is reserved until its Job shows in the
//! Job store, so handlers running at once never exceed the cap; only the leader runs handlers
//! (the write fence), so two replicas cannot either.
//!
//! [`BuildQueue`] is plain data and functions of what the Job store shows ([`RunningBuilds`])
//! and the time; [`BuildSlots`] puts it behind its lock, reads the Job store, and wakes the task
//! that starts the head of the queue when a slot frees.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::batch::v1::Job;
use reviewapp_state::{BuildObservation, BuildSlot, observe_job};
use tokio::sync::Notify;

use crate::build_jobs::{BuildJobs, owner};
use crate::index::Shared;

/// What the Job store shows of the build Jobs, for the cap.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunningBuilds {
    /// Build Jobs that have not finished and are not being deleted, with their owning app.
    pub running: HashMap<String, Option<String>>,
    /// Every build Job not being deleted (running or finished): a reservation for one of these
    /// is no longer needed.
    pub live: HashSet<String>,
}

impl RunningBuilds {
    /// What `jobs` (the Job store's content) says.
    pub fn of<'a>(jobs: impl IntoIterator<Item = &'a Job>) -> Self {
        let mut out = RunningBuilds::default();
        for job in jobs {
            let Some(name) = job.metadata.name.clone() else {
                continue;
            };
            if job.metadata.deletion_timestamp.is_some() {
                continue;
            }
            if observe_job(Some(job)) == BuildObservation::Running {
                out.running.insert(name.clone(), owner(job));
            }
            out.live.insert(name);
        }
        out
    }

    fn runs_for(&self, app: &str) -> bool {
        self.running
            .values()
            .any(|owner| owner.as_deref() == Some(app))
    }
}

/// Where a waiting app stands: by request time (Unix seconds), then arrival (`0` for an app
/// found waiting in its status, so those keep their order by name), then name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Place {
    requested_at: i64,
    arrival: u64,
    app: String,
}

/// A build slot granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    /// How long the build waited in the queue (`None` when it did not wait).
    pub waited: Option<Duration>,
}

/// The queue and the reservations. See the module documentation.
#[derive(Debug, Default)]
pub struct BuildQueue {
    /// At most this many builds at once; `None` without a cap.
    cap: Option<usize>,
    /// Waiting apps, in order.
    waiting: BTreeSet<Place>,
    /// Each waiting app's place and when it started waiting.
    places: HashMap<String, (Place, SystemTime)>,
    /// Slots granted whose Job the store does not show yet: app → build Job name.
    reserved: HashMap<String, String>,
    /// The next arrival number.
    arrivals: u64,
    /// Whether the `ReviewApp` list has completed: before, no slot is granted to a waiting app
    /// (one waiting since before a restart may not be known yet).
    ready: bool,
}

impl BuildQueue {
    /// An empty queue for at most `cap` builds at once (`None`: no cap).
    pub fn new(cap: Option<usize>) -> Self {
        BuildQueue {
            cap,
            ..BuildQueue::default()
        }
    }

    /// The `ReviewApp` list completed with these apps waiting (`(name, buildRequestedAt)`, from
    /// their status): their order is known, slots may be granted.
    pub fn listed(&mut self, waiting: impl IntoIterator<Item = (String, i64)>) {
        for (app, requested_at) in waiting {
            self.enqueue(&app, Some(requested_at), SystemTime::now());
        }
        self.ready = true;
    }

    /// App `app` wants to start build Job `job`: `Granted` (and the slot reserved) when the cap
    /// allows it and no app waits before it, `Queued` with its place otherwise.
    /// `requested_at` is the request time its status records, when it was waiting already.
    pub fn acquire(
        &mut self,
        app: &str,
        job: &str,
        requested_at: Option<i64>,
        builds: &RunningBuilds,
        now: SystemTime,
    ) -> (BuildSlot, Option<Grant>) {
        let Some(cap) = self.cap else {
            return (BuildSlot::Granted, Some(Grant { waited: None }));
        };
        self.forget_delivered(builds);
        // It holds a slot already (a retry, or a new commit replacing its running build).
        if self.reserved.contains_key(app) || builds.runs_for(app) {
            let waited = self.leave(app, now);
            self.reserved.insert(app.to_string(), job.to_string());
            return (BuildSlot::Granted, Some(Grant { waited }));
        }
        self.enqueue(app, requested_at, now);
        let position = self.position(app);
        let free = cap.saturating_sub(self.used(builds));
        if self.ready && position <= free {
            let waited = self.leave(app, now);
            self.reserved.insert(app.to_string(), job.to_string());
            return (BuildSlot::Granted, Some(Grant { waited }));
        }
        let of = self.waiting.len();
        (BuildSlot::Queued { position, of }, None)
    }

    /// App `app` wants no build slot (no build to start, deleted): it leaves the queue, and its
    /// reservation goes unless `keep` says its Job was just created (the store will show it).
    /// Whether a slot or a place freed.
    pub fn withdraw(&mut self, app: &str, keep: impl Fn(&str) -> bool) -> bool {
        let left = self.leave(app, SystemTime::now()).is_some();
        let released = match self.reserved.get(app) {
            Some(job) if !keep(job) => self.reserved.remove(app).is_some(),
            _ => false,
        };
        left || released
    }

    /// The apps to start now: the head of the queue, as many as slots are free (none before
    /// the list completed).
    pub fn heads(&mut self, builds: &RunningBuilds) -> Vec<String> {
        let Some(cap) = self.cap.filter(|_| self.ready) else {
            return Vec::new();
        };
        self.forget_delivered(builds);
        let free = cap.saturating_sub(self.used(builds));
        self.waiting
            .iter()
            .take(free)
            .map(|p| p.app.clone())
            .collect()
    }

    /// How many apps wait.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Slots in use: running builds and reservations whose Job the store does not show yet.
    pub fn used(&self, builds: &RunningBuilds) -> usize {
        let reserved = self
            .reserved
            .values()
            .filter(|job| !builds.running.contains_key(*job))
            .count();
        builds.running.len() + reserved
    }

    fn enqueue(&mut self, app: &str, requested_at: Option<i64>, now: SystemTime) {
        if self.places.contains_key(app) {
            return;
        }
        let (requested_at, arrival, since) = match requested_at {
            Some(at) => (at, 0, UNIX_EPOCH + Duration::from_secs(at.max(0) as u64)),
            None => {
                self.arrivals += 1;
                (unix_seconds(now), self.arrivals, now)
            }
        };
        let place = Place {
            requested_at,
            arrival,
            app: app.to_string(),
        };
        self.waiting.insert(place.clone());
        self.places.insert(app.to_string(), (place, since));
    }

    /// Takes `app` out of the queue; how long it waited, if it did.
    fn leave(&mut self, app: &str, now: SystemTime) -> Option<Duration> {
        let (place, since) = self.places.remove(app)?;
        self.waiting.remove(&place);
        Some(now.duration_since(since).unwrap_or_default())
    }

    /// 1-based place of a waiting `app`.
    fn position(&self, app: &str) -> usize {
        let Some((place, _)) = self.places.get(app) else {
            return 0;
        };
        self.waiting.range(..place).count() + 1
    }

    /// Reservations whose Job the store shows (not being deleted) are counted from the store.
    fn forget_delivered(&mut self, builds: &RunningBuilds) {
        self.reserved.retain(|_, job| !builds.live.contains(job));
    }
}

fn unix_seconds(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The [`BuildQueue`] behind its lock, over the Job store, with a wake-up for the task that
/// starts the head of the queue.
pub struct BuildSlots {
    queue: Shared<BuildQueue>,
    changed: Notify,
}

impl BuildSlots {
    /// Slots for at most `cap` builds at once (`None`: no cap).
    pub fn new(cap: Option<usize>) -> Self {
        BuildSlots {
            queue: Shared::new(BuildQueue::new(cap)),
            changed: Notify::new(),
        }
    }

    /// See [`BuildQueue::listed`]; wakes the queue task.
    pub fn listed(&self, waiting: Vec<(String, i64)>) {
        self.queue.lock().listed(waiting);
        self.changed.notify_one();
    }

    /// See [`BuildQueue::acquire`], with the Job store as it is now.
    pub fn acquire(
        &self,
        jobs: &BuildJobs,
        app: &str,
        job: &str,
        requested_at: Option<i64>,
    ) -> (BuildSlot, Option<Grant>) {
        let builds = jobs.running_builds();
        self.queue
            .lock()
            .acquire(app, job, requested_at, &builds, SystemTime::now())
    }

    /// See [`BuildQueue::withdraw`]; a Job this process just created keeps its slot. Wakes the
    /// queue task when a slot or a place freed.
    pub fn withdraw(&self, jobs: &BuildJobs, app: &str) {
        let freed = self
            .queue
            .lock()
            .withdraw(app, |job| jobs.just_created(job));
        if freed {
            self.changed.notify_one();
        }
    }

    /// A build Job changed or went: a slot may have freed.
    pub fn job_changed(&self) {
        self.changed.notify_one();
    }

    /// Waits until a slot may have freed (coalesced: one wake-up for many changes).
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// The apps to start now (see [`BuildQueue::heads`]).
    pub fn heads(&self, jobs: &BuildJobs) -> Vec<String> {
        let builds = jobs.running_builds();
        self.queue.lock().heads(&builds)
    }

    /// How many apps wait, and how many slots are in use.
    pub fn lengths(&self, jobs: &BuildJobs) -> (usize, usize) {
        let builds = jobs.running_builds();
        let queue = self.queue.lock();
        (queue.waiting(), queue.used(&builds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builds(running: &[(&str, &str)], finished: &[&str]) -> RunningBuilds {
        RunningBuilds {
            running: running
                .iter()
                .map(|(job, app)| (job.to_string(), Some(app.to_string())))
                .collect(),
            live: running
                .iter()
                .map(|(job, _)| *job)
                .chain(finished.iter().copied())
                .map(String::from)
                .collect(),
        }
    }

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn queue(cap: usize) -> BuildQueue {
        let mut queue = BuildQueue::new(Some(cap));
        queue.listed([]);
        queue
    }

    fn slot(queue: &mut BuildQueue, app: &str, builds: &RunningBuilds, now: u64) -> BuildSlot {
        queue
            .acquire(app, &format!("{app}--job"), None, builds, at(now))
            .0
    }

    #[test]
    fn without_a_cap_every_build_starts() {
        let mut queue = BuildQueue::new(None);
        let many = builds(&[("j1", "a1"), ("j2", "a2")], &[]);
        assert_eq!(slot(&mut queue, "b", &many, 0), BuildSlot::Granted);
        assert!(queue.heads(&many).is_empty());
    }

    #[test]
    fn at_the_cap_builds_wait_first_requested_first_started() {
        let mut queue = queue(2);
        let none = RunningBuilds::default();
        assert_eq!(slot(&mut queue, "a", &none, 100), BuildSlot::Granted);
        assert_eq!(slot(&mut queue, "b", &none, 100), BuildSlot::Granted);
        // a and b are reserved (their Jobs not in the store yet): the cap is reached.
        assert_eq!(
            slot(&mut queue, "z", &none, 100),
            BuildSlot::Queued { position: 1, of: 1 }
        );
        assert_eq!(
            slot(&mut queue, "c", &none, 101),
            BuildSlot::Queued { position: 2, of: 2 }
        );
        // The store shows both Jobs running: still full; asking again keeps the place.
        let full = builds(&[("a--job", "a"), ("b--job", "b")], &[]);
        assert_eq!(
            slot(&mut queue, "c", &full, 102),
            BuildSlot::Queued { position: 2, of: 2 }
        );
        assert!(queue.heads(&full).is_empty());
        // One finished: the head (z, requested first) is the one to start, not c.
        let one_free = builds(&[("b--job", "b")], &["a--job"]);
        assert_eq!(queue.heads(&one_free), ["z"]);
        assert_eq!(
            slot(&mut queue, "c", &one_free, 103),
            BuildSlot::Queued { position: 2, of: 2 }
        );
        let (granted, grant) = queue.acquire("z", "z--job", None, &one_free, at(105));
        assert_eq!(granted, BuildSlot::Granted);
        assert_eq!(grant.unwrap().waited, Some(Duration::from_secs(5)));
        assert_eq!(queue.used(&one_free), 2, "z's reservation counts");
        assert!(queue.heads(&one_free).is_empty());
    }

    #[test]
    fn a_reservation_counts_until_the_store_shows_its_job() {
        let mut queue = queue(1);
        let none = RunningBuilds::default();
        assert_eq!(slot(&mut queue, "a", &none, 0), BuildSlot::Granted);
        assert_eq!(queue.used(&none), 1);
        // Delivered running: counted once, from the store.
        let running = builds(&[("a--job", "a")], &[]);
        assert_eq!(queue.used(&running), 1);
        // Delivered finished: the slot is free.
        let finished = builds(&[], &["a--job"]);
        assert_eq!(
            slot(&mut queue, "b", &finished, 1),
            BuildSlot::Granted,
            "the reservation went with the delivery"
        );
    }

    #[test]
    fn a_retry_or_a_new_commit_keeps_the_apps_slot() {
        let mut queue = queue(1);
        let none = RunningBuilds::default();
        assert_eq!(slot(&mut queue, "a", &none, 0), BuildSlot::Granted);
        assert_eq!(slot(&mut queue, "a", &none, 1), BuildSlot::Granted, "retry");
        let running = builds(&[("a--job", "a")], &[]);
        let (slot, _) = queue.acquire("a", "a--newer", None, &running, at(2));
        assert_eq!(slot, BuildSlot::Granted, "its running build is replaced");
        assert!(matches!(
            queue.acquire("b", "b--job", None, &running, at(2)).0,
            BuildSlot::Queued { .. }
        ));
    }

    #[test]
    fn withdrawing_frees_the_place_and_an_unused_reservation() {
        let mut queue = queue(1);
        let none = RunningBuilds::default();
        assert_eq!(slot(&mut queue, "a", &none, 0), BuildSlot::Granted);
        assert!(matches!(
            slot(&mut queue, "b", &none, 0),
            BuildSlot::Queued { .. }
        ));
        assert!(matches!(
            slot(&mut queue, "c", &none, 0),
            BuildSlot::Queued { .. }
        ));
        assert!(queue.withdraw("b", |_| false));
        assert_eq!(
            slot(&mut queue, "c", &none, 1),
            BuildSlot::Queued { position: 1, of: 1 }
        );
        // a's Job was just created: its slot stays until the store shows it.
        assert!(!queue.withdraw("a", |job| job == "a--job"));
        assert!(queue.heads(&none).is_empty());
        assert!(queue.withdraw("a", |_| false));
        assert_eq!(queue.heads(&none), ["c"]);
    }

    #[test]
    fn after_a_restart_the_queue_is_ordered_by_the_recorded_request_time_then_name() {
        let mut queue = BuildQueue::new(Some(1));
        let running = builds(&[("x--job", "x")], &[]);
        // Before the list completed nothing is granted, even with free slots.
        let none = RunningBuilds::default();
        assert!(matches!(
            queue
                .acquire("late", "late--job", Some(50), &none, at(60))
                .0,
            BuildSlot::Queued { .. }
        ));
        queue.listed([("b".into(), 40), ("a".into(), 40), ("c".into(), 30)]);
        assert_eq!(
            queue.acquire("b", "b--job", Some(40), &running, at(60)).0,
            BuildSlot::Queued { position: 3, of: 4 }
        );
        // A new request in the same second as the restored ones comes after them.
        assert_eq!(
            queue.acquire("new", "new--job", None, &running, at(40)).0,
            BuildSlot::Queued { position: 4, of: 5 }
        );
        let free = builds(&[], &["x--job"]);
        assert_eq!(queue.heads(&free), ["c"]);
        let (slot, grant) = queue.acquire("c", "c--job", Some(30), &free, at(60));
        assert_eq!(slot, BuildSlot::Granted);
        assert_eq!(grant.unwrap().waited, Some(Duration::from_secs(30)));
    }
}
