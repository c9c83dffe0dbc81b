//! The transition function: DESIGN.md "The flow", with the fixes of SEED-SPEC §9.

use k8s_openapi::jiff::Timestamp;
use reviewapp_api::names::{AppNames, is_dns_label, sanitize, short_sha};
use reviewapp_api::status::{CONDITION_BUILDING, CONDITION_DEPLOYED, CONDITION_INVALID};
use reviewapp_api::{
    AppStatus, BuildStatus, FINALIZER, FieldError, OperatorConfig, ReviewApp, ReviewAppStatus,
    ValidatedSpec, validate,
};

use crate::conditions;
use crate::intent::{EventKind, EventNote, Intent, TearDown};
use crate::{AppEvent, BuildObservation};

/// The outcome of handling one event.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    /// The status to write (the effects layer writes it only when it differs from the current one).
    pub status: ReviewAppStatus,
    /// What to do, in order.
    pub intents: Vec<Intent>,
    /// The validated spec (`None` for DELETE, and when validation failed).
    pub spec: Option<ValidatedSpec>,
}

/// Handles `event` for `app`.
///
/// `build` is what is known about the Job named in `status.buildJobName`; `now` is the current
/// time (only whole seconds are used, so that a status written and read back compares equal).
pub fn transition(
    app: &ReviewApp,
    event: AppEvent,
    build: &BuildObservation,
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
                    spec: Some(spec),
                };
            }
            converge(current, spec, build, config, generation, has_finalizer, now)
        }
    }
}

/// ADD, RECONCILE and MODIFY of a changed spec: bring everything to the desired state.
fn converge(
    current: ReviewAppStatus,
    spec: ValidatedSpec,
    build: &BuildObservation,
    config: &OperatorConfig,
    generation: Option<i64>,
    has_finalizer: bool,
    now: Timestamp,
) -> Transition {
    let mut status = current.clone();
    let mut intents = Vec::new();
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
        if let Some(old) = status
            .build_job_name
            .as_ref()
            .filter(|old| **old != job_name)
        {
            intents.push(Intent::DeleteBuildJob { name: old.clone() });
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
        match build {
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
    intents.extend(events.into_iter().map(Intent::Event));
    Transition {
        status,
        intents,
        spec: Some(spec),
    }
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
        spec: None,
    }
}

/// DELETE: tear down every child and build Job by name, then release the finalizer.
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
