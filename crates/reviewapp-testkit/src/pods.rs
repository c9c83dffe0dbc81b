//! The pods of Jobs, as far as tests of a failed build need them: the Job controller's pod
//! (created with the Job), its container statuses as the kubelet would report them when a test
//! finishes the Job, and the `log` subresource answering text a test set.
//!
//! One pod per Job, created with it: `<job>-<5 characters of its uid>`, the pod template's
//! labels plus `job-name`, `batch.kubernetes.io/job-name`, `controller-uid` and
//! `batch.kubernetes.io/controller-uid`, a controller owner reference to the Job (so garbage
//! collection removes it with the Job), the template's spec, and `status.phase: Pending` with
//! every container waiting (`PodInitializing`).

use serde_json::{Value, json};

use crate::admission::FieldValidation;
use crate::fields::Scope;
use crate::handle::Handle;
use crate::meta;
use crate::resource::ResourceKey;
use crate::route::{Query, Target};
use crate::selector::Filter;
use crate::status::ApiError;
use crate::store::{Create, Ownership, World, Write};

/// Manager name of the Job controller's and the kubelet's writes.
const MANAGER: &str = "kube-controller-manager";

/// `v1` pods.
pub(crate) fn pods() -> ResourceKey {
    ResourceKey::new("", "v1", "pods")
}

/// Whether `res` is `batch/v1` Jobs.
pub(crate) fn is_jobs(res: &ResourceKey) -> bool {
    *res == ResourceKey::new("batch", "v1", "jobs")
}

/// The label every pod of Job `job` carries.
const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";

/// How one container of a pod ended, as a test says.
#[derive(Clone, Copy, Debug)]
enum Finish<'a> {
    /// Every container exited 0.
    Succeeded,
    /// `container` exited with `code`; init containers before it exited 0.
    Failed { container: &'a str, code: i32 },
}

impl World {
    /// The Job controller's part: a pod for the Job `job` just created in `ns`.
    pub(crate) fn start_job_pod(&mut self, ns: &str, job: &Value) {
        let name = meta::name(job);
        let uid = meta::uid(job);
        let mut labels = job
            .pointer("/spec/template/metadata/labels")
            .cloned()
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({}));
        for (key, value) in [
            ("job-name", name),
            (JOB_NAME_LABEL, name),
            ("controller-uid", uid),
            ("batch.kubernetes.io/controller-uid", uid),
        ] {
            labels[key] = json!(value);
        }
        let spec = job
            .pointer("/spec/template/spec")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let waiting = |list: &str| -> Vec<Value> {
            container_names(&spec, list)
                .iter()
                .map(|c| {
                    json!({"name": c, "ready": false, "restartCount": 0,
                    "state": {"waiting": {"reason": "PodInitializing"}}})
                })
                .collect()
        };
        let pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": format!("{name}-{}", uid.chars().filter(char::is_ascii_alphanumeric).take(5).collect::<String>()),
                "namespace": ns,
                "labels": labels,
                "ownerReferences": [{
                    "apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": uid,
                    "controller": true, "blockOwnerDeletion": true,
                }],
            },
            "spec": spec,
            "status": {
                "phase": "Pending",
                "initContainerStatuses": waiting("initContainers"),
                "containerStatuses": waiting("containers"),
            },
        });
        let created = self.create(
            &pods(),
            ns,
            pod,
            Create {
                ownership: Ownership::Update(MANAGER),
                keep_status: true,
                dry_run: false,
                validation: FieldValidation::Ignore,
            },
        );
        if let Err(err) = created {
            tracing::warn!(job = name, error = %err.message, "emulator: no pod for the Job");
        }
    }

    /// The newest pod of Job `job` in `ns`.
    fn job_pod(&self, ns: &str, job: &str) -> Option<Value> {
        let filter = Filter::parse(Some(&format!("{JOB_NAME_LABEL}={job}")), None).ok()?;
        self.list(&pods(), Some(ns), &filter)
            .into_iter()
            .max_by(|a, b| {
                meta::meta_str(a, "creationTimestamp").cmp(&meta::meta_str(b, "creationTimestamp"))
            })
    }

    /// The kubelet's part when a test finishes Job `job`: its pod's phase and container
    /// statuses. Nothing when the Job has no pod (any more).
    fn finish_job_pod(&mut self, ns: &str, job: &str, finish: Finish<'_>) -> Result<(), ApiError> {
        let Some(pod) = self.job_pod(ns, job) else {
            return Ok(());
        };
        let spec = pod.get("spec").cloned().unwrap_or_else(|| json!({}));
        let now = meta::now();
        let mut failed_yet = false;
        let mut statuses = |list: &str| -> Vec<Value> {
            container_names(&spec, list)
                .into_iter()
                .map(|c| {
                    let state = match finish {
                        _ if failed_yet => json!({"waiting": {"reason": "PodInitializing"}}),
                        Finish::Failed { container, code } if container == c => {
                            failed_yet = true;
                            json!({"terminated": {"exitCode": code, "reason": "Error",
                                "startedAt": now, "finishedAt": now}})
                        }
                        _ => json!({"terminated": {"exitCode": 0, "reason": "Completed",
                            "startedAt": now, "finishedAt": now}}),
                    };
                    json!({"name": c, "ready": false, "restartCount": 0, "state": state})
                })
                .collect()
        };
        let init = statuses("initContainers");
        let main = statuses("containers");
        let phase = match finish {
            Finish::Succeeded => "Succeeded",
            Finish::Failed { .. } => "Failed",
        };
        self.update(
            &pods(),
            ns,
            meta::name(&pod),
            json!({"status": {"phase": phase, "initContainerStatuses": init, "containerStatuses": main}}),
            Write {
                scope: Scope::Status,
                ownership: Ownership::Update(MANAGER),
                dry_run: false,
                validation: FieldValidation::Ignore,
            },
        )
        .map(|_| ())
    }
}

/// The names of a pod spec's `initContainers` or `containers`.
fn container_names(spec: &Value, list: &str) -> Vec<String> {
    spec.get(list)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// `GET .../pods/NAME/log?container=&tailLines=&limitBytes=`: the text a test set for that
/// container, its last `tailLines` lines, then at most `limitBytes` bytes of them (from their
/// start, as the kubelet counts). Errors as the server words them: the pod not found (404), a
/// container name needed, unknown or still waiting to start (400).
pub(crate) fn read_log(world: &World, target: &Target, query: &Query) -> Result<String, ApiError> {
    let ns = target.namespace.as_deref().unwrap_or_default();
    let name = target.name.as_deref().unwrap_or_default();
    let pod = world
        .get(&pods(), ns, name)
        .ok_or_else(|| ApiError::not_found(&pods(), name))?;
    let spec = pod.get("spec").cloned().unwrap_or_else(|| json!({}));
    let init = container_names(&spec, "initContainers");
    let main = container_names(&spec, "containers");
    let container = match (
        query.get("container").filter(|c| !c.is_empty()),
        main.as_slice(),
    ) {
        (Some(c), _) => c.to_string(),
        (None, [only]) => only.clone(),
        (None, _) => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: {main:?} or one of the init containers: {init:?}"
            )));
        }
    };
    if !init.contains(&container) && !main.contains(&container) {
        return Err(ApiError::bad_request(format!(
            "container {container} is not valid for pod {name}"
        )));
    }
    let waiting = ["initContainerStatuses", "containerStatuses"]
        .iter()
        .filter_map(|list| {
            pod.pointer(&format!("/status/{list}"))
                .and_then(Value::as_array)
        })
        .flatten()
        .find(|s| s.get("name").and_then(Value::as_str) == Some(container.as_str()))
        .and_then(|s| s.pointer("/state/waiting/reason").and_then(Value::as_str));
    let text = world.pod_log(ns, name, &container);
    if let (Some(reason), None) = (waiting, text) {
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: {reason}"
        )));
    }
    let text = text.unwrap_or_default();
    let tailed = match query.get("tailLines").and_then(|n| n.parse::<usize>().ok()) {
        Some(lines) => last_lines(text, lines),
        None => text,
    };
    let limited = match query
        .get("limitBytes")
        .and_then(|n| n.parse::<usize>().ok())
    {
        Some(limit) if limit < tailed.len() => &tailed.as_bytes()[..limit],
        _ => tailed.as_bytes(),
    };
    Ok(String::from_utf8_lossy(limited).into_owned())
}

/// The last `n` lines of `text` (a final newline ends the last line).
fn last_lines(text: &str, n: usize) -> &str {
    if n == 0 {
        return "";
    }
    let body = text.strip_suffix('\n').unwrap_or(text);
    let mut start = body.len();
    for _ in 0..n {
        match body[..start].rfind('\n') {
            Some(newline) => start = newline,
            None => return text,
        }
    }
    &text[start + 1..]
}

impl Handle {
    /// The pods of Job `job` in `namespace` (the emulator creates one with each Job).
    pub fn job_pods(&self, namespace: &str, job: &str) -> Vec<Value> {
        self.list(
            "",
            "v1",
            "pods",
            Some(namespace),
            Some(&format!("{JOB_NAME_LABEL}={job}")),
        )
    }

    /// Sets the log of `container` in the newest pod of Job `job` (404 when it has none), as
    /// the `log` subresource answers it.
    pub fn set_job_log(
        &self,
        namespace: &str,
        job: &str,
        container: &str,
        text: &str,
    ) -> Result<(), ApiError> {
        let mut world = self.world();
        let pod = world
            .job_pod(namespace, job)
            .ok_or_else(|| ApiError::not_found(&pods(), &format!("{job}-*")))?;
        world.set_pod_log(namespace, meta::name(&pod), container, text);
        Ok(())
    }

    /// Marks the pod of Job `job` failed in `container` (exit code `code`; the init containers
    /// before it completed, those after it never started), then the Job failed with `reason`
    /// and `message` as [`Handle::set_job_failed`] does.
    pub fn set_job_failed_in(
        &self,
        namespace: &str,
        job: &str,
        container: &str,
        code: i32,
        reason: &str,
        message: &str,
    ) -> Result<Value, ApiError> {
        self.world()
            .finish_job_pod(namespace, job, Finish::Failed { container, code })?;
        self.set_job_conditions_failed(namespace, job, reason, message)
    }

    /// The pod of Job `job` succeeded (every container exited 0).
    pub(crate) fn set_job_pod_succeeded(&self, namespace: &str, job: &str) -> Result<(), ApiError> {
        self.world()
            .finish_job_pod(namespace, job, Finish::Succeeded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_counts_from_the_end() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(last_lines("a\nb\nc", 2), "b\nc");
        assert_eq!(last_lines("a\nb", 5), "a\nb");
        assert_eq!(last_lines("a\nb", 0), "");
    }
}
