//! What a build Job says: its outcome as a [`BuildObservation`], its lifecycle as a [`JobState`].
//! Pure.
//!
//! The original operator only knew `succeeded == 1` and `failed > backoffLimit`; here the Job's
//! conditions decide first (`Complete`, `SuccessCriteriaMet`, `Failed`, `FailureTarget`, with
//! `DeadlineExceeded` and `BackoffLimitExceeded` reasons), then the counters.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use reviewapp_api::BUILD_FINALIZER;

use crate::{BuildObservation, JobState};

/// How long a build Job the operator created may be missing from its Job watch's store before it
/// counts as vanished. A watch delivers a new Job within milliseconds; a Job deleted while the
/// watch relists leaves no delete event, so this bounds how long such a build waits to be
/// started again.
pub const JOB_STORE_LAG: Duration = Duration::from_secs(5);

/// The outcome and lifecycle of the build Job named in `status.buildJobName`, from what the daemon
/// knows of it: `stored`, the Job as the Job watch's store holds it, and `created_ago`, how long
/// ago this process created it, when it did and the watch has not yet delivered (or deleted) it.
///
/// A Job in the store is what it says. One this process created less than [`JOB_STORE_LAG`] ago
/// is running and held, as the operator creates it (the watch has not caught up). Any other is
/// [`BuildObservation::Missing`].
pub fn build_job_observation(
    stored: Option<&Job>,
    created_ago: Option<Duration>,
) -> (BuildObservation, JobState) {
    match (stored, created_ago) {
        (Some(job), _) => (observe_job(Some(job)), job_state(job)),
        (None, Some(age)) if age < JOB_STORE_LAG => (BuildObservation::Running, JobState::HELD),
        (None, _) => (BuildObservation::Missing, JobState::default()),
    }
}

/// Whether `job` is being deleted and whether it carries the operator's build-outcome finalizer.
pub fn job_state(job: &Job) -> JobState {
    JobState {
        deleting: job.metadata.deletion_timestamp.is_some(),
        held: job
            .metadata
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == BUILD_FINALIZER),
    }
}

/// Classifies a build Job. `None` (no such Job) is [`BuildObservation::Missing`].
pub fn observe_job(job: Option<&Job>) -> BuildObservation {
    let Some(job) = job else {
        return BuildObservation::Missing;
    };
    let status = job.status.as_ref();
    let conditions = status
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let is_true = |type_: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == type_ && c.status == "True")
    };
    if is_true("Complete")
        .or_else(|| is_true("SuccessCriteriaMet"))
        .is_some()
    {
        return BuildObservation::Succeeded;
    }
    if let Some(failed) = is_true("Failed").or_else(|| is_true("FailureTarget")) {
        return BuildObservation::Failed {
            reason: failed
                .reason
                .clone()
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| "Failed".into()),
            message: failed.message.clone().unwrap_or_default(),
        };
    }
    let succeeded = status.and_then(|s| s.succeeded).unwrap_or(0);
    let completions = job.spec.as_ref().and_then(|s| s.completions).unwrap_or(1);
    if succeeded >= completions.max(1) {
        return BuildObservation::Succeeded;
    }
    let failed = status.and_then(|s| s.failed).unwrap_or(0);
    let backoff_limit = job.spec.as_ref().and_then(|s| s.backoff_limit).unwrap_or(6);
    if failed > backoff_limit {
        return BuildObservation::Failed {
            reason: "BackoffLimitExceeded".into(),
            message: format!("{failed} failed pods, backoffLimit {backoff_limit}"),
        };
    }
    BuildObservation::Running
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(yaml: &str) -> Job {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn job_state_reads_deletion_and_our_finalizer() {
        let j = job("metadata: {name: b}\nspec: {template: {}}\n");
        assert_eq!(job_state(&j), JobState::default());
        let j = job(
            "metadata: {name: b, finalizers: [other/one, reviewtron.k8s.revelry.co/build-outcome]}\nspec: {template: {}}\n",
        );
        assert_eq!(job_state(&j), JobState::HELD);
        let j = job(
            "metadata: {name: b, deletionTimestamp: '2026-11-24T00:00:00Z', finalizers: [reviewtron.k8s.revelry.co/build-outcome]}\nspec: {template: {}}\n",
        );
        assert_eq!(job_state(&j), JobState::DELETING);
        let j = job(
            "metadata: {name: b, deletionTimestamp: '2026-11-24T00:00:00Z', finalizers: [other/one]}\nspec: {template: {}}\n",
        );
        assert_eq!(
            job_state(&j),
            JobState {
                deleting: true,
                held: false
            }
        );
    }

    #[test]
    fn a_job_this_process_just_created_is_running_until_the_store_lag_passed() {
        let second = Duration::from_secs(1);
        assert_eq!(
            build_job_observation(None, Some(second)),
            (BuildObservation::Running, JobState::HELD)
        );
        for ago in [Some(JOB_STORE_LAG), Some(JOB_STORE_LAG + second), None] {
            assert_eq!(
                build_job_observation(None, ago),
                (BuildObservation::Missing, JobState::default()),
                "{ago:?}"
            );
        }
        // Once the store has it, the Job itself decides.
        let j = job("metadata: {name: b}\nspec: {template: {}}\nstatus: {succeeded: 1}\n");
        assert_eq!(
            build_job_observation(Some(&j), Some(second)),
            (BuildObservation::Succeeded, JobState::default())
        );
    }

    #[test]
    fn absent_job_is_missing() {
        assert_eq!(observe_job(None), BuildObservation::Missing);
    }

    #[test]
    fn a_fresh_job_is_running() {
        let j = job(
            "metadata: {name: b}\nspec: {backoffLimit: 1, template: {}}\nstatus: {active: 1}\n",
        );
        assert_eq!(observe_job(Some(&j)), BuildObservation::Running);
        let j = job(
            "metadata: {name: b}\nspec: {backoffLimit: 3, template: {}}\nstatus: {failed: 3}\n",
        );
        assert_eq!(
            observe_job(Some(&j)),
            BuildObservation::Running,
            "retries left"
        );
    }

    #[test]
    fn complete_condition_is_success() {
        let j = job(
            "metadata: {name: b}\nspec: {template: {}}\nstatus:\n  conditions:\n  - {type: Complete, status: 'True'}\n",
        );
        assert_eq!(observe_job(Some(&j)), BuildObservation::Succeeded);
        let j = job(
            "metadata: {name: b}\nspec: {template: {}}\nstatus:\n  conditions:\n  - {type: Complete, status: 'False'}\n",
        );
        assert_eq!(observe_job(Some(&j)), BuildObservation::Running);
    }

    #[test]
    fn failed_condition_carries_reason_and_message() {
        let j = job(
            "metadata: {name: b}\nspec: {template: {}}\nstatus:\n  conditions:\n  - {type: Failed, status: 'True', \
             reason: DeadlineExceeded, message: Job was active longer than specified deadline}\n",
        );
        assert_eq!(
            observe_job(Some(&j)),
            BuildObservation::Failed {
                reason: "DeadlineExceeded".into(),
                message: "Job was active longer than specified deadline".into()
            }
        );
        let j = job(
            "metadata: {name: b}\nspec: {template: {}}\nstatus:\n  conditions:\n  - {type: FailureTarget, status: 'True', reason: BackoffLimitExceeded}\n",
        );
        assert!(
            matches!(observe_job(Some(&j)), BuildObservation::Failed { reason, .. } if reason == "BackoffLimitExceeded")
        );
    }

    #[test]
    fn counters_decide_without_conditions() {
        let j = job("metadata: {name: b}\nspec: {template: {}}\nstatus: {succeeded: 1}\n");
        assert_eq!(observe_job(Some(&j)), BuildObservation::Succeeded);
        let j = job(
            "metadata: {name: b}\nspec: {backoffLimit: 1, template: {}}\nstatus: {failed: 2}\n",
        );
        assert!(
            matches!(observe_job(Some(&j)), BuildObservation::Failed { reason, .. } if reason == "BackoffLimitExceeded")
        );
    }
}
