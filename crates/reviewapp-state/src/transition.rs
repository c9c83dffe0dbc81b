//! The transition function: classify the event, validate, and converge on the desired state.
//!
//! [`transition`] reads like the flow: DELETE tears down ([`delete`]); an invalid spec is
//! reported ([`invalid`]); our own status write changes nothing; anything else converges, one
//! named step after another: the build ([`build`]), the app's status and children (here), and
//! the report of conditions, ignored keys and missing Secrets ([`report`]).

mod build;
mod delete;
mod invalid;
pub(crate) mod lifecycle;
mod report;

use k8s_openapi::jiff::Timestamp;
use reviewapp_api::status::CONDITION_INVALID;
use reviewapp_api::validate::{controls, lifecycle_annotations};
use reviewapp_api::{
    AppStatus, BuildStatus, FINALIZER, OperatorConfig, ReviewApp, ReviewAppStatus, ValidatedSpec,
    validate,
};

use crate::conditions;
use crate::intent::{EventKind, EventNote, Intent, Phase};
use crate::time::whole_seconds;
use crate::{AppEvent, Observed};
use lifecycle::Annotations;

/// The outcome of handling one event.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    /// The status to write (the effects layer writes it only when it differs from the current one).
    pub status: ReviewAppStatus,
    /// What to do before the status is written, in order.
    pub intents: Vec<Intent>,
    /// What to do only once `status` is written (or found already written): releasing a finished
    /// build Job, whose outcome must be on record before the Job may go.
    pub after_status: Vec<Intent>,
    /// The validated spec (`None` for DELETE, and when validation failed).
    pub spec: Option<ValidatedSpec>,
    /// The next instant the app needs a look (its expiry, or when it goes to sleep by itself),
    /// if any: the daemon arms a timer for it.
    pub requeue_at: Option<Timestamp>,
}

/// Handles `event` for `app`.
///
/// `observed` is what the daemon's caches say about the Job named in `status.buildJobName` and
/// the app's env Secrets; `now` is the current time (only [`whole_seconds`] are used).
pub fn transition(
    app: &ReviewApp,
    event: AppEvent,
    observed: &Observed,
    config: &OperatorConfig,
    now: Timestamp,
) -> Transition {
    let current = app.status.clone().unwrap_or_default();
    let has_finalizer = app
        .metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == FINALIZER);
    if event == AppEvent::Delete {
        return delete::delete(app, current, config, has_finalizer);
    }
    let context = Context {
        config,
        generation: app.metadata.generation,
        has_finalizer,
        now: whole_seconds(now),
    };
    let annotations = app.metadata.annotations.as_ref();
    match (validate(&app.spec, config), controls(annotations)) {
        (Ok(spec), Ok(controls)) => {
            let annotations = Annotations {
                controls,
                values: lifecycle_annotations(annotations),
            };
            if self_triggered(event, &current, &spec, &annotations, &context) {
                let requeue_at = lifecycle::next_look(&current, context.now);
                return Transition {
                    status: current,
                    intents: Vec::new(),
                    after_status: Vec::new(),
                    spec: Some(spec),
                    requeue_at,
                };
            }
            converge(current, spec, observed, &annotations, &context)
        }
        (spec, controls) => {
            let mut errors = spec.err().unwrap_or_default();
            errors.extend(controls.err().unwrap_or_default());
            invalid::invalid(current, &errors, &context)
        }
    }
}

/// What every step reads besides the status it works on.
struct Context<'a> {
    config: &'a OperatorConfig,
    /// The app's `metadata.generation`.
    generation: Option<i64>,
    /// The app carries the operator's finalizer.
    has_finalizer: bool,
    /// The current time, in whole seconds.
    now: Timestamp,
}

/// A MODIFY that is our own status write, or a metadata-only change: the spec the status was
/// computed from, for the commit it records, valid then too, with the lifecycle annotations it
/// was computed from, and no deadline of it due. Nothing to do.
fn self_triggered(
    event: AppEvent,
    current: &ReviewAppStatus,
    spec: &ValidatedSpec,
    annotations: &Annotations,
    context: &Context,
) -> bool {
    event == AppEvent::Modify
        && current.observed_generation == context.generation
        && current.build_commit.as_deref() == Some(spec.commit.as_str())
        && !conditions::is_true(&current.conditions, CONDITION_INVALID)
        && current.lifecycle_annotations == annotations.values
        && !lifecycle::due(current, context.now)
}

/// What converging builds up, step by step.
struct Draft {
    /// The status to write.
    status: ReviewAppStatus,
    /// Intents before the status write.
    intents: Vec<Intent>,
    /// Intents once the status is on record.
    after_status: Vec<Intent>,
    /// Events, recorded after every other intent.
    events: Vec<EventNote>,
}

impl Draft {
    /// Nothing to do yet, `status` as it is.
    fn new(status: ReviewAppStatus) -> Self {
        Self {
            status,
            intents: Vec::new(),
            after_status: Vec::new(),
            events: Vec::new(),
        }
    }

    /// The transition to `status`: the intents, then the Events; the next look at `now`'s
    /// status deadlines.
    fn finish(self, spec: ValidatedSpec, now: Timestamp) -> Transition {
        let mut intents = self.intents;
        intents.extend(self.events.into_iter().map(Intent::Event));
        let requeue_at = lifecycle::next_look(&self.status, now);
        Transition {
            status: self.status,
            intents,
            after_status: self.after_status,
            spec: Some(spec),
            requeue_at,
        }
    }
}

/// ADD, RECONCILE and MODIFY of a changed spec: bring everything to the desired state.
fn converge(
    current: ReviewAppStatus,
    spec: ValidatedSpec,
    observed: &Observed,
    annotations: &Annotations,
    context: &Context,
) -> Transition {
    let mut draft = Draft::new(current.clone());
    if !context.has_finalizer {
        draft.intents.push(Intent::AddFinalizer);
    }
    valid_again(&mut draft, &current);
    draft.status.observed_generation = context.generation;
    draft.status.url = Some(url(&spec, context.config));
    adopt_original_status(&mut draft.status);
    let life = lifecycle::applies(&current, &spec, context.config, annotations);
    if life {
        lifecycle::note_new_commit(&mut draft.status, &spec, context.now);
        let expiry = lifecycle::expiry(&draft.status, &spec, annotations, context.now);
        draft.status.expires_at = expiry.map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time);
        if let Some(deadline) = expiry.filter(|at| *at <= context.now) {
            lifecycle::expire(&mut draft, &current, &spec, deadline, context);
            lifecycle::record(&mut draft.status, annotations);
            return draft.finish(spec, context.now);
        }
        if current.app_status == Some(AppStatus::Expired) {
            lifecycle::revive(&mut draft, context);
            let expiry = lifecycle::expiry(&draft.status, &spec, annotations, context.now);
            draft.status.expires_at =
                expiry.map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time);
        }
    }
    converge_build(&mut draft, &spec, observed, context);
    draft.status.app_status = Some(app_status(&draft.status));
    let mut cycle = lifecycle::Cycle {
        phase: Phase::Serving,
        switched_back: false,
    };
    if life {
        lifecycle::note_deploy(&mut draft.status, &current, context.now);
        let expiry = lifecycle::expiry(&draft.status, &spec, annotations, context.now);
        draft.status.expires_at = expiry.map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time);
        cycle = lifecycle::sleep_cycle(
            &mut draft,
            &current,
            &spec,
            observed.lifecycle,
            annotations,
            context,
        );
        lifecycle::record(&mut draft.status, annotations);
    }
    let spec_changed =
        current.observed_generation.is_some() && current.observed_generation != context.generation;
    draft.intents.push(apply_children(
        &draft.status,
        &spec,
        context,
        spec_changed,
        cycle.phase,
    ));
    if cycle.switched_back {
        draft.intents.push(Intent::RemoveActivatorRoute);
    }
    report::report(&mut draft, &spec, observed, context);
    draft.finish(spec, context.now)
}

/// The build step of converging: a build for a new commit, the outcome of the awaited one, or
/// the release of a recorded one.
fn converge_build(draft: &mut Draft, spec: &ValidatedSpec, observed: &Observed, context: &Context) {
    if draft.status.build_commit.as_deref() != Some(spec.commit.as_str()) {
        build::start_for_new_commit(draft, spec, context);
    } else if matches!(
        draft.status.build_status,
        None | Some(BuildStatus::Building)
    ) {
        build::apply_observation(draft, spec, observed, context);
    } else {
        build::release_recorded(draft, observed);
    }
}

/// A spec that was invalid and is valid now: its message goes, and a Normal Event says so.
fn valid_again(draft: &mut Draft, current: &ReviewAppStatus) {
    if conditions::is_true(&current.conditions, CONDITION_INVALID) {
        draft.status.message = None;
        draft.events.push(note(
            EventKind::Normal,
            "SpecValid",
            "Validate",
            "the spec is valid again".into(),
        ));
    }
}

/// Where the app is served: `https` with the wildcard TLS Secret, `http` without.
fn url(spec: &ValidatedSpec, config: &OperatorConfig) -> String {
    let scheme = if config.tls_enabled() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{}", spec.names.host(&config.domain))
}

/// A status written by the original operator: a successful build is what is running (unless the
/// app expired: then nothing runs).
fn adopt_original_status(status: &mut ReviewAppStatus) {
    if status.deployed_image.is_none()
        && status.build_status == Some(BuildStatus::Success)
        && status.app_status != Some(AppStatus::Expired)
    {
        status.deployed_image = status.image.clone();
        status.deployed_commit = status.build_commit.clone();
    }
}

/// `deployed` once an image is deployed; before, `error` when the latest build failed.
fn app_status(status: &ReviewAppStatus) -> AppStatus {
    match (&status.deployed_image, status.build_status) {
        (Some(_), _) => AppStatus::Deployed,
        (None, Some(BuildStatus::Error)) => AppStatus::Error,
        (None, _) => AppStatus::Building,
    }
}

/// Every child, with the Deployment at one replica running the deployed image, or at none
/// running the image being built (never empty, even for a status that lost it). A changed spec
/// also prunes the children it no longer wants.
fn apply_children(
    status: &ReviewAppStatus,
    spec: &ValidatedSpec,
    context: &Context,
    spec_changed: bool,
    phase: Phase,
) -> Intent {
    let (replicas, image) = match &status.deployed_image {
        Some(deployed) if phase == Phase::Sleeping => (0, deployed.clone()),
        Some(deployed) => (1, deployed.clone()),
        None => (
            0,
            status
                .image
                .clone()
                .unwrap_or_else(|| spec.names.image(&context.config.registry, &spec.commit)),
        ),
    };
    Intent::ApplyChildren {
        replicas,
        image,
        prune: spec_changed,
        phase,
    }
}

/// An Event to record on the app.
fn note(kind: EventKind, reason: &'static str, action: &'static str, note: String) -> EventNote {
    EventNote {
        kind,
        reason,
        action,
        note,
    }
}
