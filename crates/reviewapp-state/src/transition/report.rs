//! The report step of converging: the `Invalid`, `Building` and `Deployed` conditions, and the
//! spec's ignored keys and missing env Secrets (a condition each, and an Event when it changed).

use std::collections::BTreeSet;

use reviewapp_api::names::short_sha;
use reviewapp_api::status::{
    CONDITION_BUILDING, CONDITION_DEPLOYED, CONDITION_IGNORED_KEYS, CONDITION_INVALID,
    CONDITION_MISSING_SECRETS, REASON_BUILD_RUNNING, REASON_QUEUED,
};
use reviewapp_api::{BuildStatus, ReviewAppStatus, ValidatedSpec};

use super::{Context, Draft, note, queue};
use crate::Observed;
use crate::conditions;
use crate::intent::{EventKind, EventNote};

/// How many ignored keys or missing Secrets a condition message names before "and N more".
const MAX_NAMED: usize = 20;

/// Sets every condition of a converged app; an Event for what a person should know anew.
pub(super) fn report(
    draft: &mut Draft,
    spec: &ValidatedSpec,
    observed: &Observed,
    context: &Context,
) {
    let status = &mut draft.status;
    set(
        status,
        CONDITION_INVALID,
        (false, "Valid", "the spec is valid".into()),
        context,
    );
    let building = building(status, draft.queued_message.as_deref());
    set(status, CONDITION_BUILDING, building, context);
    set(status, CONDITION_DEPLOYED, deployed(status), context);
    let ignored = ignored_keys(spec);
    draft
        .events
        .extend(report_new(status, CONDITION_IGNORED_KEYS, ignored, context));
    let missing = missing_secrets(spec, &observed.missing_secrets);
    draft.events.extend(report_new(
        status,
        CONDITION_MISSING_SECRETS,
        missing,
        context,
    ));
}

/// A condition's status, reason and message.
type Verdict = (bool, &'static str, String);

/// Sets condition `type_` to `verdict` at the app's generation.
fn set(status: &mut ReviewAppStatus, type_: &str, verdict: Verdict, context: &Context) {
    let (value, reason, message) = verdict;
    conditions::set(
        &mut status.conditions,
        type_,
        value,
        reason,
        message,
        context.generation,
        context.now,
    );
}

/// `Building`: `True` while a build runs or waits for a slot.
fn building(status: &ReviewAppStatus, queued: Option<&str>) -> Verdict {
    let commit = status
        .build_commit
        .as_deref()
        .map(short_sha)
        .unwrap_or_default();
    let job = status.build_job_name.as_deref().unwrap_or_default();
    match status.build_status {
        Some(BuildStatus::Building) if queue::is_queued(status) => {
            (true, REASON_QUEUED, queue::queued_message(status, queued))
        }
        Some(BuildStatus::Building) | None => (
            true,
            REASON_BUILD_RUNNING,
            format!("building commit {commit} in Job {job}"),
        ),
        Some(BuildStatus::Success) => (false, "BuildSucceeded", format!("commit {commit} built")),
        Some(BuildStatus::Error) => (
            false,
            "BuildFailed",
            status.message.clone().unwrap_or_default(),
        ),
    }
}

/// `Deployed`: `True` once a built image serves.
fn deployed(status: &ReviewAppStatus) -> Verdict {
    let url = status.url.as_deref().unwrap_or_default();
    match (&status.deployed_image, status.build_status) {
        (Some(image), _) => (true, "Deployed", format!("serving {image} at {url}")),
        (None, Some(BuildStatus::Error)) => (false, "BuildFailed", "the first build failed".into()),
        (None, _) => (false, "AwaitingBuild", "waiting for the first build".into()),
    }
}

/// What a condition that names things reports, and the Event it is worth when it changed.
struct Finding {
    verdict: Verdict,
    /// The Event, when the condition is `True`.
    event: Option<(EventKind, &'static str, &'static str)>,
}

/// `IgnoredKeys`: the `spec.config` keys the operator does not know; a Normal Event.
fn ignored_keys(spec: &ValidatedSpec) -> Finding {
    let keys = &spec.ignored_keys;
    if keys.is_empty() {
        return Finding {
            verdict: (
                false,
                "AllKeysKnown",
                "every spec.config key is known".into(),
            ),
            event: None,
        };
    }
    let message = format!(
        "kept but not used (the operator does not know them): {}",
        name_list(keys.iter().map(String::as_str))
    );
    Finding {
        verdict: (true, "UnknownKeys", message),
        event: Some((EventKind::Normal, "IgnoredConfigKeys", "Validate")),
    }
}

/// `MissingSecrets`: the app's env Secrets among those observed `missing`; a Warning Event.
fn missing_secrets(spec: &ValidatedSpec, missing: &BTreeSet<String>) -> Finding {
    let missing: Vec<&str> = spec
        .env_secrets()
        .filter(|name| missing.contains(*name))
        .collect();
    if missing.is_empty() {
        return Finding {
            verdict: (false, "SecretsFound", "every env Secret exists".into()),
            event: None,
        };
    }
    let message = format!(
        "env Secret(s) not found in namespace {}: {}; the pods start once they exist",
        spec.namespace,
        name_list(missing.into_iter())
    );
    Finding {
        verdict: (true, "SecretNotFound", message),
        event: Some((EventKind::Warning, "MissingSecrets", "Deploy")),
    }
}

/// Sets condition `type_` to `finding`; its Event when it became `True` or names other things
/// than the status on record.
fn report_new(
    status: &mut ReviewAppStatus,
    type_: &str,
    finding: Finding,
    context: &Context,
) -> Option<EventNote> {
    let message = &finding.verdict.2;
    let new = !status
        .condition(type_)
        .is_some_and(|c| c.status == "True" && c.message == *message);
    let event = finding
        .event
        .filter(|_| new)
        .map(|(kind, reason, action)| note(kind, reason, action, message.clone()));
    set(status, type_, finding.verdict, context);
    event
}

/// `names`, at most [`MAX_NAMED`] of them, then how many more there are.
fn name_list<'a>(names: impl ExactSizeIterator<Item = &'a str>) -> String {
    let total = names.len();
    let mut text = names.take(MAX_NAMED).collect::<Vec<_>>().join(", ");
    if total > MAX_NAMED {
        text.push_str(&format!(" and {} more", total - MAX_NAMED));
    }
    text
}
