//! The build queue's part of converging: a build that finds no free slot (`build.maxConcurrent`)
//! waits, recorded in the status (`buildRequestedAt`, the `Building` condition with reason
//! `Queued` and its position); it starts once the daemon observes a slot for it; a newer commit
//! replaces it; and a build stopped for a newer commit is reported as superseded.
//!
//! While a build waits, `buildStatus` stays `building`, `buildCommit` and `image` name what will
//! be built, and no Job exists (`buildJobName` and `buildStartedAt` are absent).

use reviewapp_api::names::short_sha;
use reviewapp_api::status::{CONDITION_BUILDING, REASON_QUEUED};
use reviewapp_api::{BuildStatus, ReviewAppStatus, ValidatedSpec};

use super::{Context, Draft, Transition, build, note};
use crate::BuildSlot;
use crate::intent::{EventKind, Intent};

/// Whether `status` records a build waiting for a slot.
pub(super) fn is_queued(status: &ReviewAppStatus) -> bool {
    queued_since(status).is_some()
}

/// When the build `status` records as waiting for a slot was requested (Unix seconds), or
/// `None` when no build waits. The daemon orders its queue by it after a restart.
pub fn queued_since(status: &ReviewAppStatus) -> Option<i64> {
    status
        .build_requested_at
        .filter(|_| status.build_status == Some(BuildStatus::Building))
}

/// The build of the spec's commit waits at `position` of `of`: no Job, the request time kept
/// when it was waiting already (a newer commit takes the place of the one it replaces), and the
/// `Building` condition says where it stands.
pub(super) fn enqueue(
    draft: &mut Draft,
    spec: &ValidatedSpec,
    (position, of): (usize, usize),
    context: &Context,
) {
    let requested_at = queued_since(&draft.status).unwrap_or(context.now.as_second());
    let status = &mut draft.status;
    status.build_status = Some(BuildStatus::Building);
    status.build_commit = Some(spec.commit.clone());
    status.build_job_name = None;
    status.image = Some(spec.names.image(&context.config.registry, &spec.commit));
    status.build_requested_at = Some(requested_at);
    status.build_started_at = None;
    status.build_finished_at = None;
    draft.queued_message = Some(format!(
        "waiting for a build slot: position {position} of {of} when queued; at most {} builds \
         run at once",
        context.config.build.max_concurrent
    ));
}

/// The spec's commit waits for a slot: it starts once one is granted; until then the status
/// stays as it is (the position recorded when it was queued), so waiting writes nothing.
pub(super) fn start_queued(
    draft: &mut Draft,
    spec: &ValidatedSpec,
    slot: BuildSlot,
    context: &Context,
) {
    if slot == BuildSlot::Granted {
        build::start(draft, spec, context);
    }
}

/// The message of the `Building` condition of a waiting build: `queued` (the position, when
/// this transition queued it), or the one recorded when it was queued.
pub(super) fn queued_message(status: &ReviewAppStatus, queued: Option<&str>) -> String {
    let recorded = status
        .condition(CONDITION_BUILDING)
        .filter(|c| c.reason == REASON_QUEUED)
        .map(|c| c.message.as_str());
    queued
        .or(recorded)
        .unwrap_or("waiting for a build slot")
        .to_string()
}

/// A build of another commit was running or waiting when the spec's commit arrived: a Normal
/// `BuildSuperseded` Event naming both commits (and the Job that is deleted). Not an error: the
/// app's status is what the new build makes it.
pub(super) fn report_superseded(draft: &mut Draft, spec: &ValidatedSpec) {
    let status = &draft.status;
    if status.build_status != Some(BuildStatus::Building) {
        return;
    }
    let Some(old) = status.build_commit.as_deref().filter(|c| *c != spec.commit) else {
        return;
    };
    let (what, cancelled) = match &status.build_job_name {
        Some(job) if !is_queued(status) => (
            format!("build of commit {} (Job {job})", short_sha(old)),
            "its Job is deleted",
        ),
        _ => (
            format!("queued build of commit {}", short_sha(old)),
            "it never started",
        ),
    };
    draft.events.push(note(
        EventKind::Normal,
        "BuildSuperseded",
        "Build",
        format!(
            "{what} superseded by commit {}; {cancelled}",
            short_sha(&spec.commit)
        ),
    ));
}

impl Transition {
    /// The build Job this transition starts (creates or adopts), if any: what the daemon needs a
    /// build slot for.
    pub fn started_build(&self) -> Option<&str> {
        self.intents.iter().find_map(|intent| match intent {
            Intent::StartBuild { job_name, .. } => Some(job_name.as_str()),
            _ => None,
        })
    }
}
