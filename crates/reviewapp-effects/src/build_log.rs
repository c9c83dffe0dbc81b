//! Why a build failed: the tail of the failing container's log, read once per failure (see
//! `reviewapp_state::wants_failure_log`), bounded on the request (`tailLines`, `limitBytes`)
//! and while reading, and sanitised before it leaves this module.
//!
//! Requests, in the build namespace: one `list` of the Job's pods (by the
//! `batch.kubernetes.io/job-name` label), a `get` of each build Secret whose values must be
//! redacted (the push Secret, the source token Secret), and one `get` of the `log` subresource.

use futures::AsyncReadExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod, Secret};
use kube::api::{Api, ListParams, LogParams};
use reviewapp_state::{FailureLog, TAIL_LINES, sanitise, secret_values};

use crate::error::Verb;
use crate::executor::Effects;
use crate::retry::{has_status, status_code};

/// At most this many bytes of a log are asked for (`limitBytes`) and read, whatever the server
/// sends: the last [`TAIL_LINES`] lines are cut to 2 KiB after sanitising, so 16 KiB leaves room
/// for escape sequences and long lines without holding a multi-megabyte log in memory.
pub const LOG_READ_BYTES: usize = 16 * 1024;

/// The container of a build pod that failed: the pod, the container and its exit code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedContainer {
    /// The pod's name.
    pub pod: String,
    /// The container's name (`fetch`, `unpack` or `build`).
    pub container: String,
    /// Its non-zero exit code.
    pub exit_code: i32,
}

/// The container that terminated with a non-zero exit code, in the newest pod that has one:
/// init containers first (in order: one failing stops the rest), then the others.
pub fn failed_container(pods: &[Pod]) -> Option<FailedContainer> {
    let mut pods: Vec<&Pod> = pods.iter().collect();
    pods.sort_by(|a, b| {
        b.metadata
            .creation_timestamp
            .cmp(&a.metadata.creation_timestamp)
    });
    pods.into_iter().find_map(|pod| {
        let status = pod.status.as_ref()?;
        let failed = |statuses: &Option<Vec<ContainerStatus>>| {
            statuses.iter().flatten().find_map(|c| {
                let code = c.state.as_ref()?.terminated.as_ref()?.exit_code;
                (code != 0).then(|| (c.name.clone(), code))
            })
        };
        let (container, exit_code) = failed(&status.init_container_statuses)
            .or_else(|| failed(&status.container_statuses))?;
        Some(FailedContainer {
            pod: pod.metadata.name.clone()?,
            container,
            exit_code,
        })
    })
}

/// Why a request failed, without the server's message (which may quote anything).
fn refused(what: &str, err: &kube::Error) -> FailureLog {
    let why = match err {
        kube::Error::Api(status) => {
            format!("{what} failed: {} {}", status_code(status), status.reason)
        }
        _ => format!("{what} failed: the API server did not answer"),
    };
    FailureLog::Unavailable { why }
}

impl Effects {
    /// The failing container of build Job `job` in `namespace` and the sanitised tail of its
    /// log, with the values of the Secrets `secret_names` (in `namespace`; absent ones are
    /// skipped) redacted; or why that could not be read. Never fails: what stands in the way
    /// is the answer.
    pub async fn failed_build_log(
        &self,
        namespace: &str,
        job: &str,
        secret_names: &[String],
    ) -> FailureLog {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let selector = ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}"));
        let listed = match self.send(Verb::List, "Pod", || pods.list(&selector)).await {
            Ok(listed) => listed.items,
            Err(err) => return refused("listing the build pods", &err),
        };
        if listed.is_empty() {
            return FailureLog::Unavailable {
                why: "the build pod is gone".into(),
            };
        }
        let Some(failed) = failed_container(&listed) else {
            return FailureLog::Unavailable {
                why: "no container of the build pod exited with an error".into(),
            };
        };
        let secrets = match self.build_secret_values(namespace, secret_names).await {
            Ok(values) => values,
            Err(why) => return why,
        };
        let params = LogParams {
            container: Some(failed.container.clone()),
            tail_lines: Some(TAIL_LINES as i64),
            limit_bytes: Some(LOG_READ_BYTES as i64),
            ..LogParams::default()
        };
        let read = self
            .send(Verb::Log, "Pod", || {
                read_capped(&pods, &failed.pod, &params)
            })
            .await;
        match read {
            Ok((raw, complete)) => FailureLog::Tail {
                text: sanitise(&raw, complete, &secrets),
                container: failed.container,
                exit_code: failed.exit_code,
            },
            Err(err) if has_status(&err, 404) => FailureLog::Unavailable {
                why: "the build pod is gone".into(),
            },
            Err(err) => refused(
                &format!("reading the log of container {}", failed.container),
                &err,
            ),
        }
    }

    /// The values to redact from the Secrets `names` in `namespace` (a missing one has none).
    async fn build_secret_values(
        &self,
        namespace: &str,
        names: &[String],
    ) -> Result<Vec<String>, FailureLog> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let mut values = Vec::new();
        for name in names.iter().filter(|n| !n.is_empty()) {
            match self.send(Verb::Get, "Secret", || api.get_opt(name)).await {
                Ok(Some(secret)) => {
                    // A server answers `data` only; `stringData` too, in case one does not.
                    let mut data = secret.data.unwrap_or_default();
                    for (key, value) in secret.string_data.unwrap_or_default() {
                        data.insert(
                            format!("{key} (stringData)"),
                            ByteString(value.into_bytes()),
                        );
                    }
                    values.extend(secret_values(&data));
                }
                Ok(None) => {}
                Err(err) => {
                    return Err(refused(
                        &format!("reading Secret {name} (to redact its values)"),
                        &err,
                    ));
                }
            }
        }
        values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        values.dedup();
        Ok(values)
    }
}

/// At most [`LOG_READ_BYTES`] bytes of a log, and whether that was all of it.
async fn read_capped(
    pods: &Api<Pod>,
    pod: &str,
    params: &LogParams,
) -> Result<(Vec<u8>, bool), kube::Error> {
    let stream = pods.log_stream(pod, params).await?;
    let mut raw = Vec::with_capacity(4096);
    let limit = u64::try_from(LOG_READ_BYTES).unwrap_or(u64::MAX) + 1;
    stream
        .take(limit)
        .read_to_end(&mut raw)
        .await
        .map_err(kube::Error::ReadEvents)?;
    let complete = raw.len() <= LOG_READ_BYTES;
    raw.truncate(LOG_READ_BYTES);
    Ok((raw, complete))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(
        name: &str,
        created: &str,
        init: &[(&str, Option<i32>)],
        main: &[(&str, Option<i32>)],
    ) -> Pod {
        let statuses = |list: &[(&str, Option<i32>)]| -> Vec<serde_json::Value> {
            list.iter()
                .map(|(c, code)| {
                    let state = match code {
                        Some(code) => serde_json::json!({"terminated": {"exitCode": code}}),
                        None => serde_json::json!({"waiting": {"reason": "PodInitializing"}}),
                    };
                    serde_json::json!({"name": c, "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": state})
                })
                .collect()
        };
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "creationTimestamp": created},
            "status": {"initContainerStatuses": statuses(init), "containerStatuses": statuses(main)},
        }))
        .unwrap()
    }

    #[test]
    fn the_failing_container_of_the_newest_failed_pod() {
        let older = pod(
            "p1",
            "2026-01-01T00:00:00Z",
            &[("fetch", Some(0)), ("unpack", Some(0))],
            &[("build", Some(1))],
        );
        let newer = pod(
            "p2",
            "2026-01-01T00:01:00Z",
            &[("fetch", Some(22)), ("unpack", None)],
            &[("build", None)],
        );
        let running = pod(
            "p3",
            "2026-01-01T00:02:00Z",
            &[("fetch", None)],
            &[("build", None)],
        );
        assert_eq!(
            failed_container(&[older.clone(), newer, running.clone()]),
            Some(FailedContainer {
                pod: "p2".into(),
                container: "fetch".into(),
                exit_code: 22
            })
        );
        assert_eq!(
            failed_container(&[older, running.clone()]).map(|f| (f.pod, f.container)),
            Some(("p1".into(), "build".into()))
        );
        assert_eq!(failed_container(&[running]), None);
        assert_eq!(failed_container(&[]), None);
    }
}
