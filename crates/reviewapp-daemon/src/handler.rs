//! One app event, end to end: observe its build Job and env Secrets → transition → render →
//! execute → status → what waits for the status (releasing a finished build Job).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use reviewapp_api::{
    BuildStatus, FINALIZER, OperatorConfig, ReviewApp, ReviewAppStatus, ValidatedSpec, validate,
};
use reviewapp_effects::{Effects, LiveIndex, Lookup};
use reviewapp_resources::{Action, ChildKind, ChildRef, Plan, build_job_ref, render};
use reviewapp_state::{AppEvent, EventKind, EventNote, Intent, Observed, transition};

use crate::build_jobs::BuildJobs;
use crate::classify::{Classified, Classifier};
use crate::metrics::{AppStatusLabel, Metrics, TransitionLabels};

/// Condition type the daemon sets while an app's last attempt failed (removed on success).
pub const CONDITION_RECONCILE_FAILED: &str = "ReconcileFailed";

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
    pub elapsed: std::time::Duration,
}

/// Receives a [`Handled`] for every event handled.
#[derive(Clone)]
pub struct Listener(pub Arc<dyn Fn(&Handled) + Send + Sync>);

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Listener")
    }
}

/// Handles every app's events: what the watch saw, the build Jobs, what exists, and the effects.
/// One per daemon, shared by every handler task.
pub struct AppHandler {
    config: Arc<OperatorConfig>,
    effects: Effects,
    classifier: Mutex<Classifier>,
    /// Objects of apps whose DELETE is pending (they may be gone from the watch already).
    tombstones: Mutex<HashMap<String, Arc<ReviewApp>>>,
    jobs: BuildJobs,
    live: Arc<dyn LiveIndex>,
    metrics: Arc<Metrics>,
    listener: Option<Listener>,
    /// uids whose teardown completed: later events for them (our own finalizer removal echoing
    /// back, a RECONCILE from a deleted build Job) have nothing left to do.
    torn_down: Mutex<std::collections::HashSet<String>>,
    /// Whether the `ReviewApp` list has completed: before, an app unknown to the classifier may
    /// simply not be listed yet, so its build Jobs are not orphans.
    apps_listed: AtomicBool,
}

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

impl AppHandler {
    /// A handler reading build Jobs from `jobs` and existing children from `live`.
    pub fn new(
        config: Arc<OperatorConfig>,
        effects: Effects,
        metrics: Arc<Metrics>,
        jobs: Store<Job>,
        live: Arc<dyn LiveIndex>,
    ) -> Self {
        Self {
            jobs: BuildJobs::new(jobs, &config.build_namespace),
            config,
            effects,
            classifier: Mutex::new(Classifier::new()),
            tombstones: Mutex::new(HashMap::new()),
            live,
            metrics,
            listener: None,
            torn_down: Mutex::new(std::collections::HashSet::new()),
            apps_listed: AtomicBool::new(false),
        }
    }

    fn is_torn_down(&self, app: &ReviewApp) -> bool {
        app.metadata.uid.as_ref().is_some_and(|uid| {
            self.torn_down
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(uid)
        })
    }

    /// Reports every handled event to `listener`.
    pub fn with_listener(mut self, listener: Option<Listener>) -> Self {
        self.listener = listener;
        self
    }

    /// The operator configuration.
    pub fn config(&self) -> &OperatorConfig {
        &self.config
    }

    /// Classifies one `ReviewApp` watch event and returns the app events to schedule. Malformed
    /// objects are counted, logged and left alone (see [`AppHandler::report_malformed`]).
    pub fn observe(
        &self,
        event: watcher::Event<DeserializeGuard<ReviewApp>>,
    ) -> Vec<(String, AppEvent)> {
        self.observe_all(event)
            .into_iter()
            .filter_map(|item| match item {
                Classified::App { name, event, .. } => Some((name, event)),
                Classified::Malformed { .. } => None,
            })
            .collect()
    }

    /// Like [`AppHandler::observe`], keeping the malformed objects (for a Warning Event).
    pub fn observe_all(
        &self,
        event: watcher::Event<DeserializeGuard<ReviewApp>>,
    ) -> Vec<Classified> {
        let classified = self
            .classifier
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .classify(event);
        let mut out = Vec::with_capacity(classified.len());
        for item in classified {
            match &item {
                Classified::App {
                    name,
                    event,
                    object,
                } => {
                    if self.is_torn_down(object) {
                        continue; // an echo of our own teardown
                    }
                    if *event == AppEvent::Delete && object.metadata.deletion_timestamp.is_none() {
                        // Gone from the API (a watch delete, a relist, a new uid): keep the last
                        // object for its teardown.
                        self.tombstones
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(name.clone(), object.clone());
                    }
                }
                Classified::Malformed { name, error } => {
                    self.metrics.malformed.inc();
                    tracing::warn!(app = %name, %error, "ReviewApp does not deserialize; leaving it alone");
                }
            }
            out.push(item);
        }
        out
    }

    /// The build Job watch saw `job` deleted: if this process started it, its absence from the
    /// store is no longer lag.
    pub fn job_gone(&self, job: &str) {
        self.jobs.gone(job);
    }

    /// The build Job watch listed or changed `job`. A Job being deleted while the operator's
    /// build-outcome finalizer holds it is remembered by owner, so that handling the owner (or,
    /// when the owner is gone, its name) releases it unless the app waits for its outcome.
    pub fn job_changed(&self, job: &Job) {
        self.jobs.seen(job);
    }

    /// The `ReviewApp` list has completed: from now on an app the classifier does not know is
    /// gone. Returns the names of the apps (known or gone) that own a build Job being deleted
    /// and still held, to be handled (a RECONCILE each) so that those Jobs are released.
    pub fn apps_listed(&self) -> Vec<String> {
        self.apps_listed.store(true, Ordering::Release);
        self.jobs.owners_holding()
    }

    /// Names of the apps whose environment loads Secret `namespace`/`name` (`envSecret` or
    /// `env.secrets`), from their specs as last seen.
    pub fn apps_using_secret(&self, namespace: &str, name: &str) -> Vec<String> {
        self.classifier
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .objects()
            .into_iter()
            .filter(|app| {
                let Some(config) = app.spec.config.as_ref() else {
                    return false;
                };
                config.namespace.as_deref().map(str::trim) == Some(namespace)
                    && (config.env_secret.as_deref() == Some(name)
                        || config
                            .env
                            .as_ref()
                            .and_then(|env| env.secrets.as_ref())
                            .is_some_and(|secrets| secrets.iter().any(|s| s == name)))
            })
            .filter_map(|app| app.metadata.name.clone())
            .collect()
    }

    /// Records a Warning Event on a `ReviewApp` that does not deserialize, naming the error.
    pub async fn report_malformed(&self, name: &str, error: &str) {
        let stub = ReviewApp::new(name, Default::default());
        let note = EventNote {
            kind: EventKind::Warning,
            reason: "Malformed",
            action: "Validate",
            note: format!("the ReviewApp cannot be read, so the operator leaves it alone: {error}"),
        };
        self.effects.record(&stub, &note).await;
    }

    /// Names of every known app (for the RECONCILE tick).
    pub fn names(&self) -> Vec<String> {
        self.classifier
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .names()
    }

    /// The object to handle. For a DELETE of an object already gone from the API, its last
    /// known state with the finalizers cleared (they went with it: a finalizer patch by name
    /// could hit a new object of the same name), or `None` when our teardown already ran (our
    /// finalizer was gone and we had handled the app).
    fn latest(&self, name: &str, event: AppEvent) -> Option<Arc<ReviewApp>> {
        if event == AppEvent::Delete
            && let Some(gone) = self
                .tombstones
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(name)
        {
            let had_ours = gone
                .metadata
                .finalizers
                .iter()
                .flatten()
                .any(|f| f == FINALIZER);
            if !had_ours && gone.status.is_some() {
                return None;
            }
            let mut gone = (*gone).clone();
            gone.metadata.finalizers = None;
            return Some(Arc::new(gone));
        }
        self.classifier
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last_known(name)
    }

    /// Handles one event for one app: observe its build Job and env Secrets, transition, render,
    /// execute, write the status, then release a finished build Job. Safe to call again with the
    /// same event (every step is idempotent). For an app that is gone (or torn down), releases
    /// its build Jobs that are being deleted.
    pub async fn handle(&self, name: String, event: AppEvent) -> Result<(), HandleError> {
        let Some(app) = self
            .latest(&name, event)
            .filter(|app| !self.is_torn_down(app))
        else {
            // Gone, and its DELETE already ran: a build Job of it that is being deleted (garbage
            // collection, say) waits for nobody.
            if self.apps_listed.load(Ordering::Acquire) {
                self.release_unawaited(&name, None).await?;
            }
            return Ok(());
        };
        let event = if app.metadata.deletion_timestamp.is_some() {
            AppEvent::Delete
        } else {
            event
        };
        let started = Instant::now();
        let observed = self.observed(&app, event);
        let mut t = transition(&app, event, &observed, &self.config, Timestamp::now());
        // The failure condition is the daemon's own: an attempt that succeeds clears it.
        t.status
            .conditions
            .retain(|c| c.type_ != CONDITION_RECONCILE_FAILED);
        let mut outcome = self.execute(&app, event, &t).await;
        if outcome.is_ok() {
            // Build Jobs of this app being deleted that it does not wait for: superseded ones
            // whose release did not happen, or older ones (after a DELETE, every one).
            let awaited = (event != AppEvent::Delete)
                .then_some(t.status.build_job_name.as_deref())
                .flatten();
            if let Err(error) = self.release_unawaited(&name, awaited).await {
                outcome = Err(Failed {
                    error,
                    status_on_record: true,
                });
            }
        }
        if let Some(listener) = &self.listener {
            let (written, skipped) = match &outcome {
                Ok((written, skipped)) => (written.clone(), *skipped),
                Err(_) => (Vec::new(), 0),
            };
            listener.0(&Handled {
                app: name.clone(),
                event,
                from: summary(app.status.as_ref()),
                to: summary(Some(&t.status)),
                written,
                skipped,
                error: outcome.as_ref().err().map(|f| f.error.to_string()),
                elapsed: started.elapsed(),
            });
        }
        if outcome.is_ok()
            && event == AppEvent::Delete
            && let Some(uid) = &app.metadata.uid
        {
            self.torn_down
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(uid.clone());
        }
        let label = Metrics::event_label(event);
        self.metrics.events.get_or_create(&label).inc();
        self.metrics
            .handle_duration
            .get_or_create(&label)
            .observe(started.elapsed().as_secs_f64());
        let failed = match outcome {
            Ok(_) => return Ok(()),
            Err(failed) => failed,
        };
        if event != AppEvent::Delete {
            // Best effort: say why in the status; the scheduler retries the event. The status is
            // the one on record: the transition's only when it was written, since its intents did
            // not all happen and a status claiming they did (say, a new buildCommit) would stop
            // the retry from redoing them.
            let mut app = (*app).clone();
            if failed.status_on_record {
                app.status = Some(t.status.clone());
            }
            let mut status = app.status.clone().unwrap_or_default();
            set_failed(
                &mut status,
                &failed.error.to_string(),
                app.metadata.generation,
            );
            if let Err(status_err) = self.effects.write_status(&app, &status).await {
                tracing::debug!(app = %name, error = %status_err, "could not record the failure in the status");
            }
        }
        Err(failed.error)
    }

    /// What the transition needs besides the app: its build Job (from the Job store) and which
    /// of its env Secrets do not exist (from the Secret cache; nothing is reported missing while
    /// that cache is not synced).
    fn observed(&self, app: &ReviewApp, event: AppEvent) -> Observed {
        let job = app
            .status
            .as_ref()
            .and_then(|s| s.build_job_name.as_deref());
        let (build, job) = self.jobs.observe(job);
        let missing_secrets = match event {
            AppEvent::Delete => BTreeSet::new(),
            _ => validate(&app.spec, &self.config)
                .map(|spec| self.missing_secrets(&spec))
                .unwrap_or_default(),
        };
        Observed {
            build,
            job,
            missing_secrets,
        }
    }

    fn missing_secrets(&self, spec: &ValidatedSpec) -> BTreeSet<String> {
        spec.env_secrets()
            .filter(|name| {
                let secret = ChildRef::new(ChildKind::Secret, &spec.namespace, name);
                self.live.lookup(&secret) == Lookup::Absent
            })
            .map(str::to_string)
            .collect()
    }

    /// Releases the build Jobs of app `name` that are being deleted and still held by the
    /// build-outcome finalizer, except `awaited` (the Job whose outcome the app waits for: the
    /// transition releases it once the outcome is recorded).
    async fn release_unawaited(
        &self,
        name: &str,
        awaited: Option<&str>,
    ) -> Result<(), HandleError> {
        let jobs = self.jobs.held_deleting(name, awaited);
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
        self.effects
            .execute(&stub, &plan, &self.jobs.index(self.live.as_ref()))
            .await?;
        let released: Vec<&String> = jobs.iter().collect();
        self.jobs.record(&released, &[]);
        Ok(())
    }

    /// Runs the transition's plan, writes its status, then runs what waits for the status.
    async fn execute(
        &self,
        app: &ReviewApp,
        event: AppEvent,
        t: &reviewapp_state::Transition,
    ) -> Result<(Vec<String>, u32), Failed> {
        let plan = render(app, t.spec.as_ref(), &self.config, &t.intents)?;
        let after = render(app, t.spec.as_ref(), &self.config, &t.after_status)?;
        let live = self.jobs.index(self.live.as_ref());
        let mut report = self.effects.execute(app, &plan, &live).await?;
        self.record_jobs(&plan);
        if event != AppEvent::Delete
            && let Some(written) = self.effects.write_status(app, &t.status).await?
        {
            self.record_status_change(app.status.as_ref(), &t.status, &t.intents);
            self.classifier
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .record_write(written);
            report.written.push("write status".to_string());
        }
        if !after.actions.is_empty() {
            let done = self
                .effects
                .execute(app, &after, &live)
                .await
                .map_err(|error| Failed {
                    error: error.into(),
                    status_on_record: true,
                })?;
            self.record_jobs(&after);
            report.written.extend(done.written);
            report.skipped += done.skipped;
        }
        self.metrics
            .writes_skipped
            .inc_by(u64::from(report.skipped));
        Ok((report.written, report.skipped))
    }

    /// Tells the Job bookkeeping which build Jobs `plan` released and created.
    fn record_jobs(&self, plan: &Plan) {
        let mut released = Vec::new();
        let mut created = Vec::new();
        for action in &plan.actions {
            match action {
                Action::ReleaseJob(job) => released.push(&job.name),
                Action::CreateJob(manifest) => created.push(&manifest.child.name),
                _ => {}
            }
        }
        if !released.is_empty() || !created.is_empty() {
            self.jobs.record(&released, &created);
        }
    }

    fn record_status_change(
        &self,
        before: Option<&ReviewAppStatus>,
        after: &ReviewAppStatus,
        intents: &[Intent],
    ) {
        let builds = intents
            .iter()
            .filter(|i| matches!(i, Intent::StartBuild { .. }))
            .count();
        self.metrics.builds_started.inc_by(builds as u64);
        let before_build = before.and_then(|s| s.build_status);
        if before_build == Some(BuildStatus::Building)
            && after.build_status != Some(BuildStatus::Building)
        {
            match after.build_status {
                Some(BuildStatus::Success) => self.metrics.builds_succeeded.inc(),
                Some(BuildStatus::Error) => self.metrics.builds_failed.inc(),
                _ => 0,
            };
            if let (Some(start), Some(end)) = (after.build_started_at, after.build_finished_at) {
                self.metrics
                    .build_duration
                    .observe((end - start).max(0) as f64);
            }
        }
        let from = summary(before);
        let to = summary(Some(after));
        if from != to {
            self.metrics
                .transitions
                .get_or_create(&TransitionLabels { from, to })
                .inc();
        }
    }

    /// Recounts apps by `appStatus` from the classifier's objects.
    pub fn count_apps(&self) {
        let mut counts: HashMap<String, i64> = ["building", "deployed", "error", "none"]
            .iter()
            .map(|s| (s.to_string(), 0))
            .collect();
        for app in self
            .classifier
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .objects()
        {
            *counts.entry(app_status(app.status.as_ref())).or_default() += 1;
        }
        for (app_status, count) in counts {
            self.metrics
                .apps
                .get_or_create(&AppStatusLabel { app_status })
                .set(count);
        }
    }
}

fn app_status(status: Option<&ReviewAppStatus>) -> String {
    status
        .and_then(|s| s.app_status)
        .and_then(|s| serde_json::to_value(s).ok())
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_else(|| "none".into())
}

fn summary(status: Option<&ReviewAppStatus>) -> String {
    let build = status
        .and_then(|s| s.build_status)
        .and_then(|s| serde_json::to_value(s).ok())
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_else(|| "none".into());
    format!("{}/{build}", app_status(status))
}

fn set_failed(status: &mut ReviewAppStatus, message: &str, generation: Option<i64>) {
    status
        .conditions
        .retain(|c| c.type_ != CONDITION_RECONCILE_FAILED);
    status.conditions.push(Condition {
        type_: CONDITION_RECONCILE_FAILED.into(),
        status: "True".into(),
        reason: "ApiError".into(),
        message: message.chars().take(1000).collect(),
        observed_generation: generation,
        last_transition_time: Time(
            Timestamp::from_second(Timestamp::now().as_second()).unwrap_or(Timestamp::UNIX_EPOCH),
        ),
    });
}
