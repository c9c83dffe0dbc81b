//! The transition function: classify the event, validate, and converge on the desired state.

use std::collections::BTreeSet;

use k8s_openapi::jiff::Timestamp;
use reviewapp_api::names::{AppNames, is_dns_label, sanitize, short_sha};
use reviewapp_api::status::{
    CONDITION_BUILDING, CONDITION_DEPLOYED, CONDITION_IGNORED_KEYS, CONDITION_INVALID,
    CONDITION_MISSING_SECRETS,
};
use reviewapp_api::{
    AppStatus, BuildStatus, FINALIZER, FieldError, OperatorConfig, ReviewApp, ReviewAppStatus,
    ValidatedSpec, validate,
};

use crate::conditions;
use crate::intent::{EventKind, EventNote, Intent, TearDown};
use crate::{AppEvent, BuildObservation, Observed};

/// How many ignored keys or missing Secrets a condition message names before "and N more".
const MAX_NAMED: usize = 20;

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
/// the app's env Secrets; `now` is the current time (only whole seconds are used, so that a
/// status written and read back compares equal).
pub fn transition(
    app: &ReviewApp,
    event: AppEvent,
    observed: &Observed,
    config: &OperatorConfig,
    now: Timestamp,
) -> Transition {
    let now = Timestamp::from_second(now.as_second()).unwrap_or(Timestamp::UNIX_EPOCH);
    let current = app.status.clone().unwrap_or_default();
    let has_finalizer = app
        .metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == FINALIZER);
    if event == AppEvent::Delete {
        return delete(app, current, config, has_finalizer);
    }
    let generation = app.metadata.generation;
    match validate(&app.spec, config) {
        Err(errors) => invalid(current, &errors, generation, has_finalizer, now),
        Ok(spec) => {
            let self_triggered = event == AppEvent::Modify
                && current.observed_generation == generation
                && current.build_commit.as_deref() == Some(spec.commit.as_str())
                && !conditions::is_true(&current.conditions, CONDITION_INVALID);
            if self_triggered {
                // Our own status write, or a metadata-only change: nothing to do.
                return Transition {
                    status: current,
                    intents: Vec::new(),
                    after_status: Vec::new(),
                    spec: Some(spec),
                };
            }
            converge(
                current,
                spec,
                observed,
                config,
                generation,
                has_finalizer,
                now,
            )
        }
    }
}

/// ADD, RECONCILE and MODIFY of a changed spec: bring everything to the desired state.
fn converge(
    current: ReviewAppStatus,
    spec: ValidatedSpec,
    observed: &Observed,
    config: &OperatorConfig,
    generation: Option<i64>,
    has_finalizer: bool,
    now: Timestamp,
) -> Transition {
    let mut status = current.clone();
    let mut intents = Vec::new();
    let mut after_status = Vec::new();
    let mut events = Vec::new();
    if !has_finalizer {
        intents.push(Intent::AddFinalizer);
    }
    if conditions::is_true(&current.conditions, CONDITION_INVALID) {
        status.message = None;
        events.push(note(
            EventKind::Normal,
            "SpecValid",
            "Validate",
            "the spec is valid again".into(),
        ));
    }
    status.observed_generation = generation;
    let scheme = if config.tls_enabled() {
        "https"
    } else {
        "http"
    };
    status.url = Some(format!("{scheme}://{}", spec.names.host(&config.domain)));

    // A status written by the original operator: a successful build is what is running.
    if status.deployed_image.is_none() && status.build_status == Some(BuildStatus::Success) {
        status.deployed_image = status.image.clone();
        status.deployed_commit = status.build_commit.clone();
    }

    let job_name = spec.names.build_job(&spec.commit);
    let image = spec.names.image(&config.registry, &spec.commit);
    let spec_image = image.clone();
    let now_secs = now.as_second();
    if status.build_commit.as_deref() != Some(spec.commit.as_str()) {
        // First build, or a new commit (possibly missed while the operator was down): build it
        // while whatever is deployed keeps serving.
        // A superseded build is cancelled, not deployed: delete its Job and release it.
        if let Some(old) = status
            .build_job_name
            .as_ref()
            .filter(|old| **old != job_name)
        {
            intents.push(Intent::DeleteBuildJob { name: old.clone() });
            intents.push(Intent::ReleaseBuildJob { name: old.clone() });
        }
        intents.push(Intent::StartBuild {
            job_name: job_name.clone(),
            commit: spec.commit.clone(),
            image: image.clone(),
        });
        events.push(note(
            EventKind::Normal,
            "BuildStarted",
            "Build",
            format!(
                "building commit {} in Job {}/{job_name}",
                short_sha(&spec.commit),
                config.build_namespace
            ),
        ));
        status.build_status = Some(BuildStatus::Building);
        status.build_commit = Some(spec.commit.clone());
        status.build_job_name = Some(job_name);
        status.image = Some(image);
        status.build_started_at = Some(now_secs);
        status.build_finished_at = None;
        status.message = None;
    } else if matches!(status.build_status, None | Some(BuildStatus::Building)) {
        let built_image = status.image.clone().unwrap_or(image);
        let job = status.build_job_name.clone().unwrap_or(job_name);
        let job_state = observed.job;
        match &observed.build {
            // Someone deleted the running build (the operator's finalizer holds it): let it go
            // and build the same commit again under the same name.
            BuildObservation::Running if job_state.deleting && job_state.held => {
                intents.push(Intent::ReleaseBuildJob { name: job.clone() });
                intents.push(Intent::StartBuild {
                    job_name: job.clone(),
                    commit: status
                        .build_commit
                        .clone()
                        .unwrap_or_else(|| spec.commit.clone()),
                    image: built_image,
                });
                status.build_started_at = Some(now_secs);
                events.push(note(
                    EventKind::Warning,
                    "BuildRestarted",
                    "Build",
                    format!("build Job {job} was deleted before it finished; starting it again"),
                ));
            }
            // Running, or being deleted by someone else's hold: wait (once it is gone, it is
            // Missing and starts again).
            BuildObservation::Running => {}
            BuildObservation::Succeeded => {
                status.build_status = Some(BuildStatus::Success);
                status.build_finished_at = Some(now_secs);
                status.deployed_commit = status.build_commit.clone();
                status.deployed_image = Some(built_image.clone());
                status.message = None;
                events.push(note(
                    EventKind::Normal,
                    "Deployed",
                    "Deploy",
                    format!("deploying {built_image}"),
                ));
                if job_state.held {
                    after_status.push(Intent::ReleaseBuildJob { name: job.clone() });
                }
            }
            BuildObservation::Failed { reason, message } => {
                status.build_status = Some(BuildStatus::Error);
                status.build_finished_at = Some(now_secs);
                let why = if message.is_empty() {
                    reason.clone()
                } else {
                    format!("{reason}: {message}")
                };
                status.message = Some(format!("build Job {job} failed: {why}"));
                let serving = match &status.deployed_image {
                    Some(deployed) => format!("; {deployed} keeps serving"),
                    None => String::new(),
                };
                events.push(note(
                    EventKind::Warning,
                    "BuildFailed",
                    "Build",
                    format!("build Job {job} failed: {why}{serving}"),
                ));
                if job_state.held {
                    after_status.push(Intent::ReleaseBuildJob { name: job.clone() });
                }
            }
            BuildObservation::Missing => {
                let commit = status
                    .build_commit
                    .clone()
                    .unwrap_or_else(|| spec.commit.clone());
                intents.push(Intent::StartBuild {
                    job_name: job.clone(),
                    commit,
                    image: built_image,
                });
                status.build_status = Some(BuildStatus::Building);
                status.build_job_name = Some(job.clone());
                status.build_started_at = Some(now_secs);
                events.push(note(
                    EventKind::Warning,
                    "BuildRestarted",
                    "Build",
                    format!("build Job {job} vanished before it finished; starting it again"),
                ));
            }
        }
    } else if observed.job.held
        && (observed.job.deleting
            || matches!(
                observed.build,
                BuildObservation::Succeeded | BuildObservation::Failed { .. }
            ))
    {
        // The outcome is on record already (an earlier release failed, or the operator stopped
        // between the status write and the release): only the release is left.
        if let Some(job) = &status.build_job_name {
            after_status.push(Intent::ReleaseBuildJob { name: job.clone() });
        }
    }

    status.app_status = Some(match (&status.deployed_image, status.build_status) {
        (Some(_), _) => AppStatus::Deployed,
        (None, Some(BuildStatus::Error)) => AppStatus::Error,
        (None, _) => AppStatus::Building,
    });
    let (replicas, run_image) = match &status.deployed_image {
        Some(deployed) => (1, deployed.clone()),
        // Not deployed yet: the image being built (never empty, even for a status that lost it).
        None => (0, status.image.clone().unwrap_or(spec_image)),
    };
    intents.push(Intent::ApplyChildren {
        replicas,
        image: run_image,
        prune: current.observed_generation.is_some() && current.observed_generation != generation,
    });
    set_conditions(&mut status, generation, now);
    events.extend(report_ignored_keys(&mut status, &spec, generation, now));
    events.extend(report_missing_secrets(
        &mut status,
        &spec,
        &observed.missing_secrets,
        generation,
        now,
    ));
    intents.extend(events.into_iter().map(Intent::Event));
    Transition {
        status,
        intents,
        after_status,
        spec: Some(spec),
    }
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

/// Whether condition `type_` is `True` with exactly `message` in `status`.
fn reported(status: &ReviewAppStatus, type_: &str, message: &str) -> bool {
    status
        .condition(type_)
        .is_some_and(|c| c.status == "True" && c.message == message)
}

/// Sets `IgnoredKeys`; a Normal Event when the set of ignored keys changed to a non-empty one.
fn report_ignored_keys(
    status: &mut ReviewAppStatus,
    spec: &ValidatedSpec,
    generation: Option<i64>,
    now: Timestamp,
) -> Option<EventNote> {
    let keys = &spec.ignored_keys;
    if keys.is_empty() {
        conditions::set(
            &mut status.conditions,
            CONDITION_IGNORED_KEYS,
            false,
            "AllKeysKnown",
            "every spec.config key is known".into(),
            generation,
            now,
        );
        return None;
    }
    let message = format!(
        "kept but not used (the operator does not know them): {}",
        name_list(keys.iter().map(String::as_str))
    );
    let new = !reported(status, CONDITION_IGNORED_KEYS, &message);
    conditions::set(
        &mut status.conditions,
        CONDITION_IGNORED_KEYS,
        true,
        "UnknownKeys",
        message.clone(),
        generation,
        now,
    );
    new.then(|| note(EventKind::Normal, "IgnoredConfigKeys", "Validate", message))
}

/// Sets `MissingSecrets`; a Warning Event when it became true or names other Secrets.
fn report_missing_secrets(
    status: &mut ReviewAppStatus,
    spec: &ValidatedSpec,
    missing: &BTreeSet<String>,
    generation: Option<i64>,
    now: Timestamp,
) -> Option<EventNote> {
    let missing: Vec<&str> = spec
        .env_secrets()
        .filter(|name| missing.contains(*name))
        .collect();
    if missing.is_empty() {
        conditions::set(
            &mut status.conditions,
            CONDITION_MISSING_SECRETS,
            false,
            "SecretsFound",
            "every env Secret exists".into(),
            generation,
            now,
        );
        return None;
    }
    let message = format!(
        "env Secret(s) not found in namespace {}: {}; the pods start once they exist",
        spec.namespace,
        name_list(missing.into_iter())
    );
    let new = !reported(status, CONDITION_MISSING_SECRETS, &message);
    conditions::set(
        &mut status.conditions,
        CONDITION_MISSING_SECRETS,
        true,
        "SecretNotFound",
        message.clone(),
        generation,
        now,
    );
    new.then(|| note(EventKind::Warning, "MissingSecrets", "Deploy", message))
}

/// An invalid spec: report it, apply nothing.
fn invalid(
    current: ReviewAppStatus,
    errors: &[FieldError],
    generation: Option<i64>,
    has_finalizer: bool,
    now: Timestamp,
) -> Transition {
    let message = format!(
        "invalid spec: {}",
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    );
    let mut status = current.clone();
    status.observed_generation = generation;
    status.message = Some(message.clone());
    conditions::set(
        &mut status.conditions,
        CONDITION_INVALID,
        true,
        "InvalidSpec",
        message.clone(),
        generation,
        now,
    );
    let mut intents = Vec::new();
    if !has_finalizer {
        intents.push(Intent::AddFinalizer);
    }
    let already_reported = current.message.as_deref() == Some(message.as_str())
        && conditions::is_true(&current.conditions, CONDITION_INVALID);
    if !already_reported {
        intents.push(Intent::Event(note(
            EventKind::Warning,
            "InvalidSpec",
            "Validate",
            message,
        )));
    }
    Transition {
        status,
        intents,
        after_status: Vec::new(),
        spec: None,
    }
}

/// DELETE: tear down (delete and release) every build Job and child by name, then remove the
/// `ReviewApp`'s finalizer.
fn delete(
    app: &ReviewApp,
    current: ReviewAppStatus,
    config: &OperatorConfig,
    has_finalizer: bool,
) -> Transition {
    let raw = &app.spec;
    let names = match (raw.repo.as_deref().map(str::trim), raw.pr_string()) {
        (Some(repo), Some(pr)) if !sanitize(repo).is_empty() && !sanitize(pr.trim()).is_empty() => {
            Some(AppNames::new(repo, pr.trim()))
        }
        _ => None,
    };
    let namespace = raw
        .config
        .as_ref()
        .and_then(|c| c.namespace.as_deref())
        .map(str::trim)
        .filter(|ns| is_dns_label(ns));
    let mut build_jobs: Vec<String> = current.build_job_name.iter().cloned().collect();
    if let (Some(names), Some(commit)) = (&names, raw.commit_hash.as_deref().map(str::trim)) {
        let job = names.build_job(commit);
        if commit.len() >= 10
            && commit.bytes().all(|b| b.is_ascii_hexdigit())
            && !build_jobs.contains(&job)
        {
            build_jobs.push(job);
        }
    }
    let children = namespace
        .zip(names)
        .map(|(ns, names)| (ns.to_string(), names));
    let mut intents = vec![
        Intent::Event(note(
            EventKind::Normal,
            "TearDown",
            "Delete",
            format!(
                "deleting the review app's children and {} build Job(s) in {}",
                build_jobs.len(),
                config.build_namespace
            ),
        )),
        Intent::TearDown(TearDown {
            children,
            build_jobs,
        }),
    ];
    if has_finalizer {
        intents.push(Intent::RemoveFinalizer);
    }
    Transition {
        status: current,
        intents,
        after_status: Vec::new(),
        spec: None,
    }
}

fn set_conditions(status: &mut ReviewAppStatus, generation: Option<i64>, now: Timestamp) {
    let conds = &mut status.conditions;
    conditions::set(
        conds,
        CONDITION_INVALID,
        false,
        "Valid",
        "the spec is valid".into(),
        generation,
        now,
    );
    let commit = status
        .build_commit
        .as_deref()
        .map(short_sha)
        .unwrap_or_default()
        .to_string();
    let job = status.build_job_name.clone().unwrap_or_default();
    let (building, reason, message) = match status.build_status {
        Some(BuildStatus::Building) | None => (
            true,
            "BuildRunning",
            format!("building commit {commit} in Job {job}"),
        ),
        Some(BuildStatus::Success) => (false, "BuildSucceeded", format!("commit {commit} built")),
        Some(BuildStatus::Error) => (
            false,
            "BuildFailed",
            status.message.clone().unwrap_or_default(),
        ),
    };
    conditions::set(
        conds,
        CONDITION_BUILDING,
        building,
        reason,
        message,
        generation,
        now,
    );
    let url = status.url.clone().unwrap_or_default();
    let (deployed, reason, message) = match (&status.deployed_image, status.build_status) {
        (Some(image), _) => (true, "Deployed", format!("serving {image} at {url}")),
        (None, Some(BuildStatus::Error)) => {
            (false, "BuildFailed", "the first build failed".to_string())
        }
        (None, _) => (
            false,
            "AwaitingBuild",
            "waiting for the first build".to_string(),
        ),
    };
    conditions::set(
        conds,
        CONDITION_DEPLOYED,
        deployed,
        reason,
        message,
        generation,
        now,
    );
}

fn note(kind: EventKind, reason: &'static str, action: &'static str, note: String) -> EventNote {
    EventNote {
        kind,
        reason,
        action,
        note,
    }
}
