//! The lifecycle steps of converging: expiry (tear everything down, keep the `ReviewApp`), the
//! revival of an expired app, and the sleep cycle (sleep, wake, the Ingress's switch back once the
//! woken Deployment is available). Time is an input: every decision compares instants recorded
//! in the status or read from the annotations with `now`, and [`next_look`] says when the app
//! needs to be looked at again.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use reviewapp_api::annotations::SLEEP;
use reviewapp_api::status::{CONDITION_BUILDING, CONDITION_DEPLOYED};
use reviewapp_api::validate::Controls;
use reviewapp_api::{AppStatus, OperatorConfig, ReviewAppStatus, ValidatedSpec};

use super::{Context, Draft, note};
use crate::conditions;
use crate::intent::{EventKind, Intent, Phase, TearDown};
use crate::{LifecycleFacts, whole_seconds};

/// The lifecycle annotations of the app being handled.
pub(crate) struct Annotations {
    /// What they say.
    pub controls: Controls,
    /// Their values, as a status records them.
    pub values: BTreeMap<String, String>,
}

/// Whether the lifecycle applies to the app at all: a duration or the cap is set, an annotation
/// is there, or the status shows it was on before. When it does not, the status carries no
/// lifecycle field (the operator behaves as it did before expiry and sleep existed).
pub(super) fn applies(
    current: &ReviewAppStatus,
    spec: &ValidatedSpec,
    config: &OperatorConfig,
    annotations: &Annotations,
) -> bool {
    spec.lifecycle.expire_after.is_some()
        || spec.lifecycle.sleep_after.is_some()
        || config.lifecycle.max_awake_apps > 0
        || !annotations.values.is_empty()
        || current.last_active_at.is_some()
        || matches!(
            current.app_status,
            Some(AppStatus::Sleeping | AppStatus::Expired)
        )
}

/// A status time as a timestamp.
fn instant(time: Option<&Time>) -> Option<Timestamp> {
    time.map(|t| t.0)
}

/// `base + duration`, saturating at the largest timestamp.
fn after(base: Timestamp, duration: Duration) -> Timestamp {
    SignedDuration::try_from(duration)
        .ok()
        .and_then(|d| base.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

/// A new commit (or the first sight of the app) is activity: the idle clock starts again.
pub(super) fn note_new_commit(status: &mut ReviewAppStatus, spec: &ValidatedSpec, now: Timestamp) {
    if status.build_commit.as_deref() != Some(spec.commit.as_str())
        || status.last_active_at.is_none()
    {
        status.last_active_at = Some(Time(now));
    }
}

/// A new image deployed is activity too.
pub(super) fn note_deploy(status: &mut ReviewAppStatus, current: &ReviewAppStatus, now: Timestamp) {
    if status.deployed_image.is_some() && status.deployed_image != current.deployed_image {
        status.last_active_at = Some(Time(now));
    }
}

/// When the app expires: never when kept; the `expires-at` annotation when set; else
/// `expireAfter` after its last activity.
pub(super) fn expiry(
    status: &ReviewAppStatus,
    spec: &ValidatedSpec,
    annotations: &Annotations,
    now: Timestamp,
) -> Option<Timestamp> {
    let controls = &annotations.controls;
    if controls.keep {
        return None;
    }
    if let Some(at) = controls.expires_at {
        return Some(whole_seconds(at));
    }
    let since = instant(status.last_active_at.as_ref()).unwrap_or(now);
    spec.lifecycle.expire_after.map(|d| after(since, d))
}

/// The deadline `deadline` passed: tear down everything the app runs (children and build Jobs),
/// keep the `ReviewApp` (and its finalizer), `appStatus: expired`, a Normal `Expired` Event. An
/// app expired already has nothing left to do.
pub(super) fn expire(
    draft: &mut Draft,
    current: &ReviewAppStatus,
    spec: &ValidatedSpec,
    deadline: Timestamp,
    context: &Context,
) {
    if current.app_status == Some(AppStatus::Expired) {
        // Nothing runs: a new commit is only noted (its activity is recorded once, and the build
        // starts when the app comes back).
        let status = &mut draft.status;
        if status.build_commit.as_deref() != Some(spec.commit.as_str()) {
            status.build_commit = Some(spec.commit.clone());
            status.build_status = None;
            status.build_job_name = None;
            status.image = None;
            status.build_started_at = None;
            status.build_finished_at = None;
        }
        return;
    }
    let names = &spec.names;
    let mut build_jobs: Vec<String> = draft.status.build_job_name.iter().cloned().collect();
    let job = names.build_job(&spec.commit);
    if !build_jobs.contains(&job) {
        build_jobs.push(job);
    }
    draft.intents.push(Intent::TearDown(TearDown {
        children: Some((spec.namespace.clone(), names.clone())),
        build_jobs,
    }));
    draft.events.push(note(
        EventKind::Normal,
        "Expired",
        "Expire",
        format!(
            "expired at {deadline}: its children and build Jobs are torn down; a new commit (or \
             clearing the expiry) brings it back"
        ),
    ));
    let status = &mut draft.status;
    status.app_status = Some(AppStatus::Expired);
    status.expires_at = Some(Time(deadline));
    status.deployed_image = None;
    status.deployed_commit = None;
    if status.build_status == Some(reviewapp_api::BuildStatus::Building) {
        status.build_status = None;
    }
    status.sleeps_at = None;
    status.waking_since = None;
    for type_ in [CONDITION_BUILDING, CONDITION_DEPLOYED] {
        conditions::set(
            &mut status.conditions,
            type_,
            false,
            "Expired",
            format!("expired at {deadline}"),
            context.generation,
            context.now,
        );
    }
}

/// An expired app whose deadline moved into the future (a new commit, a later `expires-at`,
/// `keep`): build it afresh.
pub(super) fn revive(draft: &mut Draft, context: &Context) {
    let status = &mut draft.status;
    status.build_commit = None;
    status.build_status = None;
    status.deployed_image = None;
    status.deployed_commit = None;
    status.slept_at = None;
    status.last_active_at = Some(Time(context.now));
    draft.events.push(note(
        EventKind::Normal,
        "Revived",
        "Expire",
        "no longer expired: building it again".into(),
    ));
}

/// What the sleep cycle decided: the phase the children are applied in, and whether the
/// Ingress just switched back from the activator (its `ExternalName` Service goes).
pub(super) struct Cycle {
    pub phase: Phase,
    pub switched_back: bool,
}

/// The `sleep` annotation's value when it changed since the status was computed: an order to
/// act on. An unchanged value is not acted on again.
fn sleep_order(current: &ReviewAppStatus, annotations: &Annotations) -> Option<bool> {
    let now = annotations.values.get(SLEEP);
    let then = current.lifecycle_annotations.get(SLEEP);
    (now != then)
        .then_some(annotations.controls.sleep)
        .flatten()
}

/// Sleep, wake, and the switch back from the activator, for an app with a deployed image.
pub(super) fn sleep_cycle(
    draft: &mut Draft,
    current: &ReviewAppStatus,
    spec: &ValidatedSpec,
    facts: LifecycleFacts,
    annotations: &Annotations,
    context: &Context,
) -> Cycle {
    let now = context.now;
    let serving = Cycle {
        phase: Phase::Serving,
        switched_back: false,
    };
    if draft.status.deployed_image.is_none() {
        let status = &mut draft.status;
        status.sleeps_at = None;
        status.waking_since = None;
        return serving;
    }
    let order = sleep_order(current, annotations);
    let controls = &annotations.controls;
    let mut just_woke = false;
    if current.app_status == Some(AppStatus::Sleeping) {
        match wake_reason(&draft.status, order, controls) {
            Some(reason) => {
                wake(draft, &reason, now);
                just_woke = true;
            }
            None => {
                let status = &mut draft.status;
                status.app_status = Some(AppStatus::Sleeping);
                status.sleeps_at = status.slept_at.clone();
                return Cycle {
                    phase: Phase::Sleeping,
                    switched_back: false,
                };
            }
        }
    }
    let mut cycle = serving;
    if draft.status.waking_since.is_some() {
        if facts.deployment_available && !just_woke {
            draft.status.waking_since = None;
            cycle.switched_back = true;
            draft.events.push(note(
                EventKind::Normal,
                "Awake",
                "Wake",
                "the Deployment is available: the Ingress sends requests to the app again".into(),
            ));
        } else {
            cycle.phase = Phase::Waking;
        }
    }
    if just_woke {
        draft.status.sleeps_at = auto_sleep_at(&draft.status, spec, controls);
        return cycle;
    }
    let sleep_at = auto_sleep_at(&draft.status, spec, controls);
    match sleep_reason(order, sleep_at.as_ref(), facts, controls, spec, context) {
        Some((reason, why)) => go_to_sleep(draft, reason, &why, now),
        None => {
            draft.status.sleeps_at = sleep_at;
            cycle
        }
    }
}

/// Why an awake app goes to sleep now, if it does: the `sleep: "true"` order, its idle time
/// reaching `sleepAfter` (`sleep_at` passed), or the awake-app cap (not when kept). The Event's
/// reason and note.
fn sleep_reason(
    order: Option<bool>,
    sleep_at: Option<&Time>,
    facts: LifecycleFacts,
    controls: &Controls,
    spec: &ValidatedSpec,
    context: &Context,
) -> Option<(&'static str, String)> {
    if order == Some(true) {
        return Some(("Sleeping", "the sleep annotation is \"true\"".to_string()));
    }
    if let Some(at) = sleep_at.map(|t| t.0).filter(|at| *at <= context.now) {
        return Some(("Sleeping", format!("idle since {}", at_minus(at, spec))));
    }
    (facts.over_cap && !controls.keep).then(|| {
        (
            "SleptForCap",
            format!(
                "more than lifecycle.maxAwakeApps ({}) apps are awake and this one has been idle \
                 longest",
                context.config.lifecycle.max_awake_apps
            ),
        )
    })
}

/// Puts the app to sleep now, with a Normal Event `reason` saying `why`.
fn go_to_sleep(draft: &mut Draft, reason: &'static str, why: &str, now: Timestamp) -> Cycle {
    let status = &mut draft.status;
    status.app_status = Some(AppStatus::Sleeping);
    status.slept_at = Some(Time(now));
    status.sleeps_at = Some(Time(now));
    status.waking_since = None;
    draft.events.push(note(
        EventKind::Normal,
        reason,
        "Sleep",
        format!("going to sleep ({why}): scaled to 0, requests go to the activator"),
    ));
    Cycle {
        phase: Phase::Sleeping,
        switched_back: false,
    }
}

/// The start of the idle time that ended at `at` (for the Event).
fn at_minus(at: Timestamp, spec: &ValidatedSpec) -> Timestamp {
    spec.lifecycle
        .sleep_after
        .and_then(|d| SignedDuration::try_from(d).ok())
        .and_then(|d| at.checked_sub(d).ok())
        .unwrap_or(at)
}

/// When an awake app goes to sleep by itself: `sleepAfter` after its last activity (a new
/// commit, deploy or wake, or a request through the activator); never when kept.
fn auto_sleep_at(
    status: &ReviewAppStatus,
    spec: &ValidatedSpec,
    controls: &Controls,
) -> Option<Time> {
    if controls.keep {
        return None;
    }
    let since = instant(status.last_active_at.as_ref())?;
    let since = match controls.wake_requested_at {
        Some(request) => since.max(whole_seconds(request)),
        None => since,
    };
    spec.lifecycle.sleep_after.map(|d| Time(after(since, d)))
}

/// Why a sleeping app wakes, if it does: the `sleep: "false"` order, a request through the
/// activator since it went to sleep, or activity (a new commit) since then.
fn wake_reason(
    status: &ReviewAppStatus,
    order: Option<bool>,
    controls: &Controls,
) -> Option<String> {
    let slept_at = instant(status.slept_at.as_ref()).unwrap_or(Timestamp::MIN);
    if order == Some(false) {
        return Some("the sleep annotation is \"false\"".into());
    }
    if controls
        .wake_requested_at
        .is_some_and(|at| whole_seconds(at) > slept_at)
    {
        return Some("a request reached the activator".into());
    }
    if instant(status.last_active_at.as_ref()).is_some_and(|at| at > slept_at) {
        return Some("a new commit".into());
    }
    None
}

/// Wakes the app: the database and the Deployment start, the Ingress stays on the activator
/// until the Deployment is available.
fn wake(draft: &mut Draft, reason: &str, now: Timestamp) {
    let status = &mut draft.status;
    status.app_status = Some(AppStatus::Deployed);
    status.waking_since = Some(Time(now));
    status.last_active_at = Some(Time(now));
    draft.events.push(note(
        EventKind::Normal,
        "Waking",
        "Wake",
        format!("waking up ({reason}): scaling up, database first"),
    ));
}

/// Records the lifecycle annotations the status was computed from.
pub(super) fn record(status: &mut ReviewAppStatus, annotations: &Annotations) {
    status.lifecycle_annotations = annotations.values.clone();
}

/// The next instant the app needs a look: its expiry (unless expired), or when an awake app goes
/// to sleep by itself; `None` when nothing is due.
pub fn next_look(status: &ReviewAppStatus, now: Timestamp) -> Option<Timestamp> {
    let expiry = (status.app_status != Some(AppStatus::Expired))
        .then(|| instant(status.expires_at.as_ref()))
        .flatten();
    let awake = status.app_status == Some(AppStatus::Deployed);
    let sleep = awake.then(|| instant(status.sleeps_at.as_ref())).flatten();
    [expiry, sleep]
        .into_iter()
        .flatten()
        .map(|at| at.max(now))
        .min()
}

/// Whether a deadline of the app has come (the status on record is out of date).
pub(super) fn due(status: &ReviewAppStatus, now: Timestamp) -> bool {
    next_look(status, now).is_some_and(|at| at <= now)
}

/// For the awake-app cap: when an awake app (a deployed image at one replica: `appStatus:
/// deployed`) last had activity, and whether it is kept (`keep: "true"`, never put to sleep);
/// `None` for an app that is not awake.
pub fn awake_idle_since(app: &reviewapp_api::ReviewApp) -> Option<(Timestamp, bool)> {
    let status = app.status.as_ref()?;
    if status.app_status != Some(AppStatus::Deployed) || status.deployed_image.is_none() {
        return None;
    }
    let controls =
        reviewapp_api::validate::controls(app.metadata.annotations.as_ref()).unwrap_or_default();
    let since = instant(status.last_active_at.as_ref()).unwrap_or(Timestamp::UNIX_EPOCH);
    let since = match controls.wake_requested_at {
        Some(request) => since.max(whole_seconds(request)),
        None => since,
    };
    Some((since, controls.keep))
}
