//! DELETE: tear down (delete and release) every build Job and child by name, then remove the
//! `ReviewApp`'s finalizer. Needs nothing but the object: the names come from the spec's
//! [`identity`], which holds even for a spec that never validated.

use reviewapp_api::validate::identity;
use reviewapp_api::{OperatorConfig, ReviewApp, ReviewAppStatus};

use super::{Transition, note};
use crate::intent::{EventKind, Intent, TearDown};

/// The teardown of `app`, whose status on record is `current`.
pub(super) fn delete(
    app: &ReviewApp,
    current: ReviewAppStatus,
    config: &OperatorConfig,
    has_finalizer: bool,
) -> Transition {
    let identity = identity(&app.spec);
    let mut build_jobs: Vec<String> = current.build_job_name.iter().cloned().collect();
    // The Job for `spec.commitHash` too: its start may have happened without its status write.
    if let (Some(names), Some(commit)) = (&identity.names, &identity.commit) {
        let job = names.build_job(commit);
        if !build_jobs.contains(&job) {
            build_jobs.push(job);
        }
    }
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
            children: identity.namespace.zip(identity.names),
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
        requeue_at: None,
    }
}
