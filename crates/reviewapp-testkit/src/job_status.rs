//! The Job controller's part, played by tests: [`Handle`] methods that mark a `batch/v1` Job
//! running, succeeded or failed through its status, as kube-controller-manager would.

use serde_json::{Value, json};

use crate::handle::{Handle, object_path};
use crate::meta;
use crate::resource::ResourceKey;
use crate::status::ApiError;

/// A `True` Job condition set `now`; its `lastTransitionTime` is kept from `job` when the
/// condition was already `True` there (the transition happened then).
fn condition(job: Option<&Value>, kind: &str, reason: &str, message: &str, now: &str) -> Value {
    let since = job
        .and_then(|j| j.pointer("/status/conditions"))
        .and_then(Value::as_array)
        .and_then(|conditions| {
            conditions.iter().find(|c| {
                c.get("type").and_then(Value::as_str) == Some(kind)
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| Value::String(now.to_string()));
    json!({
        "type": kind, "status": "True", "lastProbeTime": now, "lastTransitionTime": since,
        "reason": reason, "message": message,
    })
}

impl Handle {
    fn job_path(namespace: &str, name: &str) -> String {
        object_path("batch", "v1", "jobs", Some(namespace), name)
    }

    fn job_start_time(&self, namespace: &str, name: &str, now: &str) -> Result<Value, ApiError> {
        let res = ResourceKey::new("batch", "v1", "jobs");
        let job = self
            .get(&Self::job_path(namespace, name))
            .ok_or_else(|| ApiError::new(404, "NotFound", format!("{res} \"{name}\" not found")))?;
        Ok(job
            .pointer("/status/startTime")
            .cloned()
            .unwrap_or_else(|| Value::String(now.to_string())))
    }

    /// Marks a batch/v1 Job as running (`startTime`, `active: 1`).
    pub fn set_job_running(&self, namespace: &str, name: &str) -> Result<Value, ApiError> {
        let now = meta::now();
        let start = self.job_start_time(namespace, name, &now)?;
        self.set_status(
            &Self::job_path(namespace, name),
            json!({"startTime": start, "active": 1, "ready": 0, "terminating": 0}),
        )
    }

    /// Marks a batch/v1 Job as succeeded: conditions `SuccessCriteriaMet` and `Complete`
    /// (`status: "True"`), `succeeded: 1`, `startTime` and `completionTime`. The finish
    /// (`completionTime`, the conditions' `lastTransitionTime`) is the time of the call, or
    /// kept when the Job had already succeeded; the TTL-after-finished controller counts from it.
    /// Its pod (if it still has one) succeeded.
    pub fn set_job_succeeded(&self, namespace: &str, name: &str) -> Result<Value, ApiError> {
        self.set_job_pod_succeeded(namespace, name)?;
        let now = meta::now();
        let start = self.job_start_time(namespace, name, &now)?;
        let job = self.get(&Self::job_path(namespace, name));
        let message = "Reached expected number of succeeded pods";
        let complete = condition(
            job.as_ref(),
            "Complete",
            "CompletionsReached",
            message,
            &now,
        );
        let finished = complete
            .get("lastTransitionTime")
            .cloned()
            .unwrap_or_else(|| Value::String(now.clone()));
        self.set_status(
            &Self::job_path(namespace, name),
            json!({
                "startTime": start, "completionTime": finished,
                "succeeded": 1, "ready": 0, "terminating": 0,
                "conditions": [
                    condition(job.as_ref(), "SuccessCriteriaMet", "CompletionsReached", message, &now),
                    complete,
                ],
            }),
        )
    }

    /// Marks a batch/v1 Job as failed: conditions `FailureTarget` and `Failed` with `reason`
    /// and `message`, `failed: backoffLimit + 1` and `startTime` (a failed Job has no
    /// `completionTime`). The conditions' `lastTransitionTime` (the finish the TTL-after-finished
    /// controller counts from) is the time of the call, or kept when the Job had already failed.
    /// Its pod (if it still has one) failed in its `build` container with exit code 1 (see
    /// [`Handle::set_job_failed_in`]).
    pub fn set_job_failed(
        &self,
        namespace: &str,
        name: &str,
        reason: &str,
        message: &str,
    ) -> Result<Value, ApiError> {
        self.set_job_failed_in(namespace, name, "build", 1, reason, message)
    }

    /// The Job's side of [`Handle::set_job_failed`]: its status only.
    pub(crate) fn set_job_conditions_failed(
        &self,
        namespace: &str,
        name: &str,
        reason: &str,
        message: &str,
    ) -> Result<Value, ApiError> {
        let now = meta::now();
        let start = self.job_start_time(namespace, name, &now)?;
        let job = self.get(&Self::job_path(namespace, name));
        let backoff_limit = job
            .as_ref()
            .and_then(|job| job.pointer("/spec/backoffLimit").and_then(Value::as_i64))
            .unwrap_or(6);
        self.set_status(
            &Self::job_path(namespace, name),
            json!({
                "startTime": start, "failed": backoff_limit.saturating_add(1), "ready": 0, "terminating": 0,
                "conditions": [
                    condition(job.as_ref(), "FailureTarget", reason, message, &now),
                    condition(job.as_ref(), "Failed", reason, message, &now),
                ],
            }),
        )
    }
}
