//! Pure `ReviewAppState` transitions.
//!
//! [`transition`] takes a `ReviewApp`, the event being handled, what was observed about its build
//! Job, the operator configuration and the current time, and returns the new status and the
//! [`Intent`]s that bring the cluster to it. No IO, no clock, no async: every row of the
//! transition table is a plain test.

mod conditions;
mod intent;
mod observe;
mod transition;

pub use intent::{EventKind, EventNote, Intent, TearDown};
pub use observe::observe_job;
pub use transition::{Transition, transition};

/// What happened to a `ReviewApp`, as classified by the watcher (DESIGN.md "The flow").
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

/// What the operator knows about the build Job named in `status.buildJobName`.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// No Job of that name exists (or the app has no build Job yet).
    Missing,
}
