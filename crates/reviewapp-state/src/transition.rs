//! The transition function: classify the event, validate, and converge on the desired state.
//!
//! [`transition`] reads like the flow: DELETE tears down ([`delete`]); an invalid spec is
//! reported ([`invalid`]); our own status write changes nothing; anything else converges, one
//! named step after another: the build ([`build`]), the app's status and children (here), and
//! the report of conditions, ignored keys and missing Secrets ([`report`]).

mod build;
mod delete;
mod failure_log;
mod invalid;
mod report;

use k8s_openapi::jiff::Timestamp;
use reviewapp_api::status::CONDITION_INVALID;
use reviewapp_api::{
    AppStatus, BuildStatus, FINALIZER, OperatorConfig, ReviewApp, ReviewAppStatus, ValidatedSpec,
    validate,
};

use crate::conditions;
use crate::intent::{EventKind, EventNote, Intent};
use crate::time::whole_seconds;
use crate::{AppEvent, Observed};

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
    match validate(&app.spec, config) {
        Err(errors) => invalid::invalid(current, &errors, &context),
        Ok(spec) if self_triggered(event, &current, &spec, &context) => Transition {
            status: current,
            intents: Vec::new(),
            after_status: Vec::new(),
            spec: Some(spec),
        },
        Ok(spec) => converge(current, spec, observed, &context),
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
/// computed from, for the commit it records, and valid then too. Nothing to do.
fn self_triggered(
    event: AppEvent,
    current: &ReviewAppStatus,
    spec: &ValidatedSpec,
    context: &Context,
) -> bool {
    event == AppEvent::Modify
        && current.observed_generation == context.generation
        && current.build_commit.as_deref() == Some(spec.commit.as_str())
        && !conditions::is_true(&current.conditions, CONDITION_INVALID)
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

    /// The transition to `status`: the intents, then the Events.
    fn finish(self, spec: ValidatedSpec) -> Transition {
        let mut intents = self.intents;
        intents.extend(self.events.into_iter().map(Intent::Event));
        Transition {
            status: self.status,
            intents,
            after_status: self.after_status,
            spec: Some(spec),
        }
    }
}

/// ADD, RECONCILE and MODIFY of a changed spec: bring everything to the desired state.
fn converge(
    current: ReviewAppStatus,
    spec: ValidatedSpec,
    observed: &Observed,
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
    if draft.status.build_commit.as_deref() != Some(spec.commit.as_str()) {
        build::start_for_new_commit(&mut draft, &spec, context);
    } else if matches!(
        draft.status.build_status,
        None | Some(BuildStatus::Building)
    ) {
        build::apply_observation(&mut draft, &spec, observed, context);
    } else {
        build::release_recorded(&mut draft, observed);
    }
    draft.status.app_status = Some(app_status(&draft.status));
    let spec_changed =
        current.observed_generation.is_some() && current.observed_generation != context.generation;
    draft
        .intents
        .push(apply_children(&draft.status, &spec, context, spec_changed));
    report::report(&mut draft, &spec, observed, context);
    draft.finish(spec)
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

/// A status written by the original operator: a successful build is what is running.
fn adopt_original_status(status: &mut ReviewAppStatus) {
    if status.deployed_image.is_none() && status.build_status == Some(BuildStatus::Success) {
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
) -> Intent {
    let (replicas, image) = match &status.deployed_image {
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
