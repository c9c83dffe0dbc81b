//! The build steps of converging: start a build for a new commit, apply what was observed of the
//! build awaited, or release a finished build Job whose outcome is on record.

use reviewapp_api::names::short_sha;
use reviewapp_api::{BuildStatus, ValidatedSpec};

use super::{Context, Draft, failure_log, note, queue};
use crate::intent::{EventKind, Intent};
use crate::{BuildObservation, BuildSlot, JobState, Observed};

/// First build, or a new commit (possibly missed while the operator was down): build it while
/// whatever is deployed keeps serving, or queue it when no build slot is free. A superseded
/// build is cancelled, not deployed: its Job is deleted and released, and a Normal Event says
/// so.
pub(super) fn start_for_new_commit(
    draft: &mut Draft,
    spec: &ValidatedSpec,
    slot: BuildSlot,
    context: &Context,
) {
    let job = spec.names.build_job(&spec.commit);
    queue::report_superseded(draft, spec);
    if let Some(old) = draft
        .status
        .build_job_name
        .clone()
        .filter(|old| *old != job)
    {
        draft
            .intents
            .push(Intent::DeleteBuildJob { name: old.clone() });
        draft.intents.push(Intent::ReleaseBuildJob { name: old });
    }
    draft.status.build_commit = Some(spec.commit.clone());
    draft.status.build_finished_at = None;
    draft.status.message = None;
    match slot {
        BuildSlot::Granted => start(draft, spec, context),
        BuildSlot::Queued { position, of } => queue::enqueue(draft, spec, (position, of), context),
    }
}

/// Starts the build of the spec's commit: its Job, a Normal Event, and the status of a running
/// build.
pub(super) fn start(draft: &mut Draft, spec: &ValidatedSpec, context: &Context) {
    let job = spec.names.build_job(&spec.commit);
    let image = spec.names.image(&context.config.registry, &spec.commit);
    draft.intents.push(Intent::StartBuild {
        job_name: job.clone(),
        commit: spec.commit.clone(),
        image: image.clone(),
    });
    draft.events.push(note(
        EventKind::Normal,
        "BuildStarted",
        "Build",
        format!(
            "building commit {} in Job {}/{job}",
            short_sha(&spec.commit),
            context.config.build_namespace
        ),
    ));
    let status = &mut draft.status;
    status.build_status = Some(BuildStatus::Building);
    status.build_commit = Some(spec.commit.clone());
    status.build_job_name = Some(job);
    status.image = Some(image);
    status.build_started_at = Some(context.now.as_second());
    status.build_requested_at = None;
    status.build_finished_at = None;
    status.message = None;
}

/// The build of the spec's commit, whose outcome the app awaits: its Job and image as the status
/// records them (the spec's names for what a status lost).
struct Awaited {
    job: String,
    commit: String,
    image: String,
}

/// The build of the spec's commit is awaited: record its outcome, or start it again when its Job
/// is gone or being deleted before it finished.
pub(super) fn apply_observation(
    draft: &mut Draft,
    spec: &ValidatedSpec,
    observed: &Observed,
    context: &Context,
) {
    let status = &draft.status;
    let awaited = Awaited {
        job: status
            .build_job_name
            .clone()
            .unwrap_or_else(|| spec.names.build_job(&spec.commit)),
        commit: spec.commit.clone(),
        image: status
            .image
            .clone()
            .unwrap_or_else(|| spec.names.image(&context.config.registry, &spec.commit)),
    };
    let job = observed.job;
    match &observed.build {
        // Someone deleted the running build (the operator's finalizer holds it): let it go and
        // build the same commit again under the same name.
        BuildObservation::Running if job.deleting && job.held => {
            draft.intents.push(Intent::ReleaseBuildJob {
                name: awaited.job.clone(),
            });
            restart(
                draft,
                spec,
                awaited,
                "was deleted before it finished",
                observed.slot,
                context,
            );
        }
        // Running, or being deleted by someone else's hold: wait (once it is gone, it is
        // Missing and starts again).
        BuildObservation::Running => {}
        BuildObservation::Succeeded => succeeded(draft, awaited, job, context),
        BuildObservation::Failed { reason, message } => {
            let why = if message.is_empty() {
                reason.clone()
            } else {
                format!("{reason}: {message}")
            };
            let log = failure_log::describe(observed.failure_log.as_ref());
            failed(draft, awaited, &why, &log, job, context);
        }
        BuildObservation::Missing => restart(
            draft,
            spec,
            awaited,
            "vanished before it finished",
            observed.slot,
            context,
        ),
    }
}

/// Starts the awaited build again under the same name (or queues it when no build slot is
/// free), with a Warning saying what became of its Job.
fn restart(
    draft: &mut Draft,
    spec: &ValidatedSpec,
    awaited: Awaited,
    what_happened: &str,
    slot: BuildSlot,
    context: &Context,
) {
    let Awaited { job, commit, image } = awaited;
    let then = match slot {
        BuildSlot::Granted => "starting it again",
        BuildSlot::Queued { .. } => "it waits for a build slot to start again",
    };
    draft.events.push(note(
        EventKind::Warning,
        "BuildRestarted",
        "Build",
        format!("build Job {job} {what_happened}; {then}"),
    ));
    if let BuildSlot::Queued { position, of } = slot {
        queue::enqueue(draft, spec, (position, of), context);
        return;
    }
    draft.intents.push(Intent::StartBuild {
        job_name: job.clone(),
        commit,
        image,
    });
    let status = &mut draft.status;
    status.build_status = Some(BuildStatus::Building);
    status.build_job_name = Some(job);
    status.build_started_at = Some(context.now.as_second());
}

/// The build succeeded: its image is deployed.
fn succeeded(draft: &mut Draft, awaited: Awaited, job: JobState, context: &Context) {
    let status = &mut draft.status;
    status.build_status = Some(BuildStatus::Success);
    status.build_finished_at = Some(context.now.as_second());
    status.deployed_commit = status.build_commit.clone();
    status.deployed_image = Some(awaited.image.clone());
    status.message = None;
    draft.events.push(note(
        EventKind::Normal,
        "Deployed",
        "Deploy",
        format!("deploying {}", awaited.image),
    ));
    release_once_recorded(draft, awaited.job, job);
}

/// The build failed, `why`: the status says so (with what its log says, `log`), and whatever
/// is deployed keeps serving.
fn failed(
    draft: &mut Draft,
    awaited: Awaited,
    why: &str,
    log: &failure_log::Described,
    job: JobState,
    context: &Context,
) {
    let status = &mut draft.status;
    status.build_status = Some(BuildStatus::Error);
    status.build_finished_at = Some(context.now.as_second());
    let headline = format!("build Job {} failed: {why}{}", awaited.job, log.summary);
    status.message = Some(format!("{headline}{}", log.status_tail()));
    let serving = match &status.deployed_image {
        Some(deployed) => format!("; {deployed} keeps serving"),
        None => String::new(),
    };
    let headline = format!("{headline}{serving}");
    let tail = log.event_tail(headline.len());
    draft.events.push(note(
        EventKind::Warning,
        "BuildFailed",
        "Build",
        format!("{headline}{tail}"),
    ));
    release_once_recorded(draft, awaited.job, job);
}

/// A finished build Job still held by the operator's finalizer is released once the status
/// recording its outcome is written.
fn release_once_recorded(draft: &mut Draft, name: String, job: JobState) {
    if job.held {
        draft.after_status.push(Intent::ReleaseBuildJob { name });
    }
}

/// The outcome is on record already (an earlier release failed, or the operator stopped between
/// the status write and the release): only the release is left, once the Job finished or is
/// being deleted.
pub(super) fn release_recorded(draft: &mut Draft, observed: &Observed) {
    let finished = matches!(
        observed.build,
        BuildObservation::Succeeded | BuildObservation::Failed { .. }
    );
    if let Some(name) = draft.status.build_job_name.clone()
        && (observed.job.deleting || finished)
    {
        release_once_recorded(draft, name, observed.job);
    }
}
