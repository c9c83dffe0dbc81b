//! Pure `ReviewAppState` transitions.
//!
//! [`transition`] takes a `ReviewApp`, the event being handled, what was [`Observed`] about the
//! world (its build Job, its env Secrets), the operator configuration and the current time, and
//! returns the new status and the [`Intent`]s that bring the cluster to it. No IO, no clock, no
//! async: every row of the transition table is a plain test.
//!
//! Around it, the rules the daemon applies to what it observes and records: which
//! [`BuildObservation`] a build Job (or a Job just created and not yet watched) stands for
//! ([`build_job_observation`]), the `ReconcileFailed` condition of a failed attempt
//! ([`set_reconcile_failed`]), and the status's clock resolution ([`whole_seconds`]).

mod conditions;
mod intent;
mod observe;
mod time;
mod transition;

pub use conditions::{clear_reconcile_failed, set_reconcile_failed};
pub use intent::{EventKind, EventNote, Intent, Phase, TearDown};
pub use observe::{JOB_STORE_LAG, build_job_observation, job_state, observe_job};
pub use time::whole_seconds;
pub use transition::lifecycle::{awake_idle_since, next_look};
pub use transition::{Transition, transition};

use std::collections::BTreeSet;

/// What happened to a `ReviewApp`, as classified by the watcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AppEvent {
    /// First sight of the object (created, or seen at start-up).
    Add,
    /// The object changed (spec, metadata or our own status write).
    Modify,
    /// Periodic tick, or the app's build Job changed.
    Reconcile,
    /// The object is being deleted (`deletionTimestamp` set, or it vanished).
    Delete,
}

impl AppEvent {
    /// Every event, for table tests.
    pub const ALL: [AppEvent; 4] = [
        AppEvent::Add,
        AppEvent::Modify,
        AppEvent::Reconcile,
        AppEvent::Delete,
    ];
}

/// What the operator knows about the build Job named in `status.buildJobName`: its outcome.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum BuildObservation {
    /// The Job exists and has not finished.
    Running,
    /// The Job completed successfully.
    Succeeded,
    /// The Job failed; `reason` and `message` come from its `Failed` condition.
    Failed {
        /// Machine-readable reason (`BackoffLimitExceeded`, `DeadlineExceeded`, ...).
        reason: String,
        /// Human-readable detail.
        message: String,
    },
    /// No Job of that name exists (or the app has no build Job yet). A Job the operator created
    /// cannot go before it has been released (see [`JobState::held`]), so this is a Job created
    /// without the finalizer (by an older version) or one whose finalizer someone removed.
    #[default]
    Missing,
}

/// The lifecycle of the build Job named in `status.buildJobName`, besides its outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobState {
    /// It is being deleted (`metadata.deletionTimestamp` is set): by its TTL after finishing, by
    /// a person, or by garbage collection.
    pub deleting: bool,
    /// It still carries the operator's [`BUILD_FINALIZER`](reviewapp_api::BUILD_FINALIZER), so
    /// it cannot go before the operator releases it.
    pub held: bool,
}

impl JobState {
    /// A Job as the operator creates it: held, not being deleted.
    pub const HELD: JobState = JobState {
        deleting: false,
        held: true,
    };
    /// A held Job that someone (or its TTL) is deleting.
    pub const DELETING: JobState = JobState {
        deleting: true,
        held: true,
    };
}

/// Everything the daemon observed for one transition besides the `ReviewApp` itself: facts the
/// pure transition cannot read, taken from its watch caches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// The outcome of the build Job named in `status.buildJobName`.
    pub build: BuildObservation,
    /// That Job's lifecycle (`JobState::default()` when it is missing).
    pub job: JobState,
    /// Names of the app's env Secrets (`envSecret`, `env.secrets`) that do not exist in its
    /// namespace. Empty when nothing is known (a cache not synced yet).
    pub missing_secrets: BTreeSet<String>,
    /// What the lifecycle (waking, the awake-app cap) needs to know of the cluster.
    pub lifecycle: LifecycleFacts,
}

/// Facts about the cluster that waking and the awake-app cap decide on, observed by the daemon.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LifecycleFacts {
    /// The app's Deployment has an available replica at its current generation (what a woken
    /// app waits for before its Ingress switches back from the activator).
    pub deployment_available: bool,
    /// More apps are awake than `lifecycle.maxAwakeApps`, and this one is among those idle
    /// longest (not kept) that must go to sleep to get back under it.
    pub over_cap: bool,
}

impl Observed {
    /// A build Job as the operator creates it (held, not being deleted) with outcome `build`, or
    /// no Job for [`BuildObservation::Missing`]; every env Secret present.
    pub fn build(build: BuildObservation) -> Self {
        let job = if build == BuildObservation::Missing {
            JobState::default()
        } else {
            JobState::HELD
        };
        Self {
            build,
            job,
            missing_secrets: BTreeSet::new(),
            lifecycle: LifecycleFacts::default(),
        }
    }
}
