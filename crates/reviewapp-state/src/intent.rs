//! Intents: what the cluster must do, in order. `reviewapp-resources` renders them into manifests;
//! the effects layer executes them in order and stops at the first failure (the event is then
//! retried, and every intent is idempotent).

use reviewapp_api::names::AppNames;

/// One step of a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Intent {
    /// Add the operator's finalizer to the `ReviewApp` (before anything is created).
    AddFinalizer,
    /// Delete a build Job that is no longer wanted (Background propagation; absent counts as done).
    /// Followed by [`Intent::ReleaseBuildJob`]: the Job cannot go while it is held.
    DeleteBuildJob {
        /// Job name in the build namespace.
        name: String,
    },
    /// Remove the operator's build-outcome finalizer from a build Job (a Job that is gone, or no
    /// longer carries it, counts as done). Its outcome is recorded, or no longer wanted.
    ReleaseBuildJob {
        /// Job name in the build namespace.
        name: String,
    },
    /// Create the build Job for `commit`, or adopt it if a Job of that name already exists.
    StartBuild {
        /// Job name in the build namespace.
        job_name: String,
        /// Full commit hash being built.
        commit: String,
        /// Image the build pushes.
        image: String,
    },
    /// Server-side apply every child of the app, with the Deployment at `replicas` running `image`.
    /// The desired state is complete: applying it again changes nothing.
    ApplyChildren {
        /// 0 until a build has succeeded, then 1.
        replicas: i32,
        /// The image to run: the one that was built (never derived from a newer commit).
        image: String,
        /// The spec changed: also delete children the current spec no longer wants (say, the
        /// database after `config.database` was removed).
        prune: bool,
        /// Serving, waking or sleeping: where the Ingress sends requests and whether the
        /// database runs.
        phase: Phase,
    },
    /// The woken app's Deployment is available and its Ingress is back on its own Service:
    /// delete the `ExternalName` Service that named the activator (absent counts as done).
    RemoveActivatorRoute,
    /// Delete (and release) the listed build Jobs and delete every child, by name.
    TearDown(TearDown),
    /// Remove the operator's finalizer (last step of a delete, after teardown succeeded).
    RemoveFinalizer,
    /// Record a Kubernetes Event on the `ReviewApp`.
    Event(EventNote),
}

/// Where an app is in its sleep cycle, as its children show it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Awake: the Ingress sends requests to the app's Service, the database runs.
    #[default]
    Serving,
    /// Woken, its Deployment not available yet: the database runs and the Deployment scales up,
    /// while the Ingress still sends requests to the activator (its "waking up" page).
    Waking,
    /// Asleep: the Deployment at 0, the database halted (CloudNativePG hibernation, KubeDB
    /// `halted`), the Ingress sending requests to the activator.
    Sleeping,
}

impl Phase {
    /// Whether the Ingress sends requests to the activator (through the `ExternalName`
    /// Service beside the app).
    pub fn routes_to_activator(self) -> bool {
        self != Phase::Serving
    }

    /// Whether the database is halted.
    pub fn database_halted(self) -> bool {
        self == Phase::Sleeping
    }
}

/// Everything a delete removes. Built from the object alone: no lookups of other objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TearDown {
    /// The app's namespace and names, when the spec has them (an app that never validated may not).
    pub children: Option<(String, AppNames)>,
    /// Build Jobs to delete and release (the current one and the one for `spec.commitHash`).
    pub build_jobs: Vec<String>,
}

/// `Normal` or `Warning`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// Progress.
    Normal,
    /// Something needs a person's attention.
    Warning,
}

/// A Kubernetes Event to record on the `ReviewApp`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventNote {
    /// `Normal` or `Warning`.
    pub kind: EventKind,
    /// CamelCase reason, e.g. `BuildStarted`.
    pub reason: &'static str,
    /// `action` field of the Event, e.g. `Build`.
    pub action: &'static str,
    /// Human-readable note.
    pub note: String,
}
