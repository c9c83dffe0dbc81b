//! One app event, end to end: observe its build Job and env Secrets → transition → render →
//! execute → status → what waits for the status (releasing a finished build Job).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use reviewapp_api::AppStatus;
use reviewapp_api::{OperatorConfig, ReviewApp, ValidatedSpec, validate};
use reviewapp_effects::{Effects, Lookup};
use reviewapp_resources::{Action, ChildKind, ChildRef, Plan, build_job_ref, render};
use reviewapp_state::{
    AppEvent, EventKind, EventNote, LifecycleFacts, Observed, Transition, clear_reconcile_failed,
    set_reconcile_failed, transition,
};

use crate::index::Index;
use crate::metrics::Metrics;
use crate::status::status_label;
use crate::wakeups::Wakeups;

/// Why handling one event failed.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// The plan could not be rendered.
    #[error("rendering the plan: {0}")]
    Render(#[from] reviewapp_resources::RenderError),
    /// An API request failed.
    #[error("{0}")]
    Effects(#[from] reviewapp_effects::EffectsError),
}

/// What handling one event did: for the demo's timeline, benchmarks and tests.
#[derive(Clone, Debug)]
pub struct Handled {
    /// The `ReviewApp`'s name.
    pub app: String,
    /// The event as handled (a MODIFY of an object being deleted is handled as DELETE).
    pub event: AppEvent,
    /// `appStatus/buildStatus` before.
    pub from: String,
    /// `appStatus/buildStatus` after.
    pub to: String,
    /// What was written, in order (`apply Deployment ns/name`, `write status`, ...).
    pub written: Vec<String>,
    /// Actions skipped because the desired state already held.
    pub skipped: u32,
    /// Why it failed, if it did (the event is retried).
    pub error: Option<String>,
    /// Time to handle it.
    pub elapsed: Duration,
}

/// Whether the object a status write returned was changed after the transition read it, in a
/// way the transition decides on: a new generation (a spec edit) or other lifecycle annotations.
/// The watch event of that change is older than the write and is not news any more.
fn overtaken(written: &ReviewApp, t: &Transition) -> bool {
    written.metadata.generation != t.status.observed_generation
        || reviewapp_api::validate::lifecycle_annotations(written.metadata.annotations.as_ref())
            != t.status.lifecycle_annotations
}

/// Receives a [`Handled`] for every event handled.
#[derive(Clone)]
pub struct Listener(pub Arc<dyn Fn(&Handled) + Send + Sync>);

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Listener")
    }
}

/// Handles every app's events from what the watches know ([`Index`]), writing through the
/// effects layer. One per daemon, shared by every handler task.
pub struct AppHandler {
    config: Arc<OperatorConfig>,
    effects: Effects,
    index: Arc<Index>,
    metrics: Arc<Metrics>,
    listener: Option<Listener>,
    wakeups: Option<Wakeups>,
}

/// What was written (in order) and how many actions were skipped.
type Written = (Vec<String>, u32);

/// Why a handling failed, and whether the transition's status was on record by then.
struct Failed {
    error: HandleError,
    /// The status the transition computed was written (or equal to the stored one) before the
    /// failure (a release after it failed): the failure is recorded on top of that status, not
    /// the one before.
    status_on_record: bool,
}

impl<E: Into<HandleError>> From<E> for Failed {
    fn from(error: E) -> Self {
        Failed {
            error: error.into(),
            status_on_record: false,
        }
    }
}

impl Failed {
    fn after_status(error: impl Into<HandleError>) -> Self {
        Failed {
            error: error.into(),
            status_on_record: true,
        }
    }
}

impl AppHandler {
    /// A handler of the apps in `index`.
    pub fn new(
        config: Arc<OperatorConfig>,
        effects: Effects,
        metrics: Arc<Metrics>,
        index: Arc<Index>,
    ) -> Self {
        Self {
            config,
            effects,
            index,
            metrics,
            listener: None,
            wakeups: None,
        }
    }

    /// Arms each app's lifecycle timer (its next deadline) through `wakeups`.
    pub fn with_wakeups(mut self, wakeups: Wakeups) -> Self {
        self.wakeups = Some(wakeups);
        self
    }

    /// Reports every handled event to `listener`.
    pub fn with_listener(mut self, listener: Option<Listener>) -> Self {
        self.listener = listener;
        self
    }

    /// Handles one event for one app: observe its build Job and env Secrets, transition, render,
    /// execute, write the status, then release a finished build Job. Safe to call again with the
    /// same event (every step is idempotent). For an app that is gone (or torn down), releases
    /// its build Jobs that are being deleted.
    pub async fn handle(&self, name: String, event: AppEvent) -> Result<(), HandleError> {
        let Some(app) = self.index.apps.lock().latest(&name, event) else {
            return self.release_orphans(&name).await;
        };
        let event = if app.metadata.deletion_timestamp.is_some() {
            AppEvent::Delete
        } else {
            event
        };
        let started = Instant::now();
        let observed = self.observe(&app, event);
        let mut t = transition(&app, event, &observed, &self.config, Timestamp::now());
        clear_reconcile_failed(&mut t.status);
        let outcome = self.converge(&name, &app, event, &t).await;
        self.metrics.record_handled(event, started.elapsed());
        self.tell_listener(&name, &app, event, &t, &outcome, started.elapsed());
        match outcome {
            Ok(_) => {
                if event == AppEvent::Delete {
                    self.index.apps.lock().record_teardown(&app);
                }
                self.after_lifecycle(&name, &app, event, &t);
                Ok(())
            }
            Err(failed) => {
                if event != AppEvent::Delete {
                    self.record_failure(&name, &app, &t, &failed).await;
                }
                Err(failed.error)
            }
        }
    }

    /// What the transition needs besides the app: its build Job (from the Job store), which
    /// of its env Secrets do not exist (from the Secret store; nothing is reported missing before
    /// it has listed), whether its Deployment is available and whether the awake-app cap wants
    /// it asleep.
    fn observe(&self, app: &ReviewApp, event: AppEvent) -> Observed {
        let job = app
            .status
            .as_ref()
            .and_then(|s| s.build_job_name.as_deref());
        let (build, job) = self.index.jobs.observe(job);
        let spec = match event {
            AppEvent::Delete => None,
            _ => validate(&app.spec, &self.config).ok(),
        };
        let missing_secrets = spec
            .as_ref()
            .map(|spec| self.missing_secrets(spec))
            .unwrap_or_default();
        let lifecycle = spec
            .as_ref()
            .map(|spec| self.lifecycle_facts(app, spec))
            .unwrap_or_default();
        Observed {
            build,
            job,
            missing_secrets,
            lifecycle,
        }
    }

    /// Whether the app's Deployment is available (from the Deployment store), and whether it is
    /// among the awake apps the cap puts to sleep (from the app index).
    fn lifecycle_facts(&self, app: &ReviewApp, spec: &ValidatedSpec) -> LifecycleFacts {
        let deployment = ChildRef::new(ChildKind::Deployment, &spec.namespace, &spec.names.app);
        let cap = self.config.lifecycle.max_awake_apps;
        let awake = app
            .status
            .as_ref()
            .is_some_and(|s| s.app_status == Some(AppStatus::Deployed));
        let over_cap = cap > 0
            && awake
            && app
                .metadata
                .name
                .as_ref()
                .is_some_and(|name| self.index.apps.lock().over_cap(cap).contains(name));
        LifecycleFacts {
            deployment_available: self.index.live.available(&deployment),
            over_cap,
        }
    }

    /// Once an event is handled: the app's timer is armed for its next deadline (disarmed after
    /// a DELETE); an app that just became awake past the cap has the apps idle longest looked at
    /// at once (their transitions put them to sleep).
    fn after_lifecycle(&self, name: &str, app: &ReviewApp, event: AppEvent, t: &Transition) {
        let Some(wakeups) = &self.wakeups else {
            return;
        };
        let requeue_at = (event != AppEvent::Delete)
            .then_some(t.requeue_at)
            .flatten();
        wakeups.set(name, requeue_at);
        let cap = self.config.lifecycle.max_awake_apps;
        let was_awake = app
            .status
            .as_ref()
            .is_some_and(|s| s.app_status == Some(AppStatus::Deployed));
        let awake = event != AppEvent::Delete && t.status.app_status == Some(AppStatus::Deployed);
        if cap > 0 && awake && !was_awake {
            let over = self.index.apps.lock().over_cap(cap);
            for other in over.iter().filter(|other| *other != name) {
                tracing::info!(app = %other, woken = %name, cap, "awake apps exceed the cap");
                wakeups.now(other);
            }
        }
    }

    fn missing_secrets(&self, spec: &ValidatedSpec) -> BTreeSet<String> {
        spec.env_secrets()
            .filter(|name| {
                let secret = ChildRef::new(ChildKind::Secret, &spec.namespace, name);
                self.index.live.lookup(&secret) == Lookup::Absent
            })
            .map(str::to_string)
            .collect()
    }

    /// Runs the transition, then releases the build Jobs of this app being deleted that it does
    /// not wait for: superseded ones whose release did not happen, or older ones (after a
    /// DELETE, every one).
    async fn converge(
        &self,
        name: &str,
        app: &ReviewApp,
        event: AppEvent,
        t: &Transition,
    ) -> Result<Written, Failed> {
        let written = self.execute(app, event, t).await?;
        let awaited = (event != AppEvent::Delete)
            .then_some(t.status.build_job_name.as_deref())
            .flatten();
        self.release_unawaited(name, awaited)
            .await
            .map_err(Failed::after_status)?;
        Ok(written)
    }

    /// Runs the transition's plan, writes its status, then runs what waits for the status.
    async fn execute(
        &self,
        app: &ReviewApp,
        event: AppEvent,
        t: &Transition,
    ) -> Result<Written, Failed> {
        let plan = render(app, t.spec.as_ref(), &self.config, &t.intents)?;
        let after = render(app, t.spec.as_ref(), &self.config, &t.after_status)?;
        let live = self.index.jobs.with_live(self.index.live.as_ref());
        let mut report = self.effects.execute(app, &plan, &live).await?;
        self.index.jobs.record(&plan);
        if event != AppEvent::Delete
            && let Some(written) = self.effects.write_status(app, &t.status).await?
        {
            self.metrics
                .record_status_change(app.status.as_ref(), &t.status, &t.intents);
            let overtaken = overtaken(&written, t);
            self.index.apps.lock().record_write(written);
            if overtaken && let (Some(wakeups), Some(name)) = (&self.wakeups, &app.metadata.name) {
                // The echo of this write hides the change that overtook it: look again.
                wakeups.now(name);
            }
            report.written.push("write status".to_string());
        }
        if !after.actions.is_empty() {
            let done = self
                .effects
                .execute(app, &after, &live)
                .await
                .map_err(Failed::after_status)?;
            self.index.jobs.record(&after);
            report.written.extend(done.written);
            report.skipped += done.skipped;
        }
        self.metrics
            .writes_skipped
            .inc_by(u64::from(report.skipped));
        Ok((report.written, report.skipped))
    }

    /// For an app that is gone, or torn down: its build Jobs being deleted wait for nobody
    /// (garbage collection, say). Only once the apps are listed: before, an app the index does
    /// not know may just not be listed yet.
    async fn release_orphans(&self, name: &str) -> Result<(), HandleError> {
        if !self.index.apps.lock().listed() {
            return Ok(());
        }
        self.release_unawaited(name, None).await
    }

    /// Releases the build Jobs of app `name` that are being deleted and still held by the
    /// build-outcome finalizer, except `awaited` (the Job whose outcome the app waits for: the
    /// transition releases it once the outcome is recorded).
    async fn release_unawaited(
        &self,
        name: &str,
        awaited: Option<&str>,
    ) -> Result<(), HandleError> {
        let jobs = self.index.jobs.held_deleting(name, awaited);
        if jobs.is_empty() {
            return Ok(());
        }
        let plan = Plan {
            actions: jobs
                .iter()
                .map(|job| Action::ReleaseJob(build_job_ref(&self.config, job)))
                .collect(),
        };
        tracing::info!(app = name, jobs = ?jobs, "releasing build Jobs no app waits for");
        let stub = ReviewApp::new(name, Default::default());
        let live = self.index.jobs.with_live(self.index.live.as_ref());
        self.effects.execute(&stub, &plan, &live).await?;
        self.index.jobs.record(&plan);
        Ok(())
    }

    /// Best effort: says why in the status (the scheduler retries the event). The status is the
    /// one on record: the transition's only when it was written, since its intents did not all
    /// happen and a status claiming they did (say, a new buildCommit) would stop the retry from
    /// redoing them.
    async fn record_failure(&self, name: &str, app: &ReviewApp, t: &Transition, failed: &Failed) {
        let mut app = app.clone();
        if failed.status_on_record {
            app.status = Some(t.status.clone());
        }
        let mut status = app.status.clone().unwrap_or_default();
        let message = failed.error.to_string();
        set_reconcile_failed(
            &mut status,
            &message,
            app.metadata.generation,
            Timestamp::now(),
        );
        if let Err(error) = self.effects.write_status(&app, &status).await {
            tracing::debug!(app = name, %error, "could not record the failure in the status");
        }
    }

    fn tell_listener(
        &self,
        name: &str,
        app: &ReviewApp,
        event: AppEvent,
        t: &Transition,
        outcome: &Result<Written, Failed>,
        elapsed: Duration,
    ) {
        let Some(listener) = &self.listener else {
            return;
        };
        let (written, skipped) = match outcome {
            Ok((written, skipped)) => (written.clone(), *skipped),
            Err(_) => (Vec::new(), 0),
        };
        listener.0(&Handled {
            app: name.to_string(),
            event,
            from: status_label(app.status.as_ref()),
            to: status_label(Some(&t.status)),
            written,
            skipped,
            error: outcome.as_ref().err().map(|f| f.error.to_string()),
            elapsed,
        });
    }

    /// Counts a `ReviewApp` that does not deserialize, logs it and records a Warning Event on it
    /// naming the error; the operator leaves it alone.
    pub async fn report_malformed(&self, name: &str, error: &str) {
        self.metrics.malformed.inc();
        tracing::warn!(app = %name, %error, "ReviewApp does not deserialize; leaving it alone");
        let stub = ReviewApp::new(name, Default::default());
        let note = EventNote {
            kind: EventKind::Warning,
            reason: "Malformed",
            action: "Validate",
            note: format!("the ReviewApp cannot be read, so the operator leaves it alone: {error}"),
        };
        self.effects.record(&stub, &note).await;
    }
}
