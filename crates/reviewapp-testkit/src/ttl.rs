//! The TTL-after-finished controller for `batch/v1` Jobs: a Job with
//! `spec.ttlSecondsAfterFinished` whose `Complete` or `Failed` condition is `True` is deleted
//! once that long has passed since it finished (that condition's `lastTransitionTime`; a Job
//! without one is left alone), as kube-controller-manager does: with `Foreground` propagation
//! (the emulator treats it as `Background`) and a uid precondition. A Job with finalizers only
//! gets its `deletionTimestamp`.
//!
//! Event-driven: the world tells the controller about every Job change; a Job whose TTL has
//! not passed yet arms a timer for that instant. Times are the emulator's clock (the system
//! wall clock, as written into `metav1.Time` fields, whole seconds).

use std::collections::BTreeMap;
use std::sync::Weak;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use serde_json::Value;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

use crate::handle::Shared;
use crate::meta;
use crate::resource::ResourceKey;
use crate::store::{Deleted, ObjName, Preconditions, Propagation};

fn jobs() -> ResourceKey {
    ResourceKey::new("batch", "v1", "jobs")
}

/// When a Job's TTL runs out, if it has one and has finished at a known time (like the real
/// controller, the `lastTransitionTime` of the `Complete` or `Failed` condition).
pub(crate) fn expiry(job: &Value) -> Option<Timestamp> {
    let ttl = job.pointer("/spec/ttlSecondsAfterFinished")?.as_i64()?;
    let finished = job
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| {
            matches!(
                c.get("type").and_then(Value::as_str),
                Some("Complete" | "Failed")
            ) && c.get("status").and_then(Value::as_str) == Some("True")
        })?;
    let at = finished
        .get("lastTransitionTime")?
        .as_str()?
        .parse::<Timestamp>()
        .ok()?;
    at.checked_add(k8s_openapi::jiff::SignedDuration::from_secs(ttl))
        .ok()
}

/// Runs the controller until the emulator's state is gone or `changes` closes.
pub(crate) async fn run(shared: Weak<Shared>, mut changes: UnboundedReceiver<ObjName>) {
    let mut timers: BTreeMap<ObjName, Instant> = BTreeMap::new();
    loop {
        let next = timers.values().min().copied();
        let changed = match next {
            Some(at) => tokio::select! {
                change = changes.recv() => Some(change),
                () = tokio::time::sleep_until(at) => None,
            },
            None => Some(changes.recv().await),
        };
        let due: Vec<ObjName> = match changed {
            Some(None) => return,
            Some(Some(job)) => {
                let mut batch = vec![job];
                while let Ok(more) = changes.try_recv() {
                    batch.push(more);
                }
                batch
            }
            None => {
                let now = Instant::now();
                timers
                    .iter()
                    .filter(|(_, at)| **at <= now)
                    .map(|(job, _)| job.clone())
                    .collect()
            }
        };
        let Some(shared) = shared.upgrade() else {
            return;
        };
        for job in due {
            timers.remove(&job);
            if let Some(wait) = process(&shared, &job) {
                timers.insert(job, Instant::now() + wait);
            }
        }
    }
}

/// Deletes the Job if its TTL has run out; otherwise how long until it does (`None`: nothing
/// to wait for).
fn process(shared: &Shared, (namespace, name): &ObjName) -> Option<Duration> {
    let mut world = shared.world();
    let job = world.get(&jobs(), namespace, name)?;
    if meta::is_deleting(job) {
        return None;
    }
    let expires = expiry(job)?;
    let now = Timestamp::now();
    if expires > now {
        let left = now.duration_until(expires);
        return Some(Duration::try_from(left).unwrap_or(Duration::from_secs(1)));
    }
    let preconditions = Preconditions {
        uid: Some(meta::uid(job).to_string()),
        resource_version: None,
    };
    match world.delete(
        &jobs(),
        namespace,
        name,
        Propagation::Foreground,
        &preconditions,
        false,
    ) {
        Ok(Deleted::Gone(_)) => tracing::debug!(
            namespace = namespace.as_str(),
            name = name.as_str(),
            "TTL after finished: Job deleted"
        ),
        Ok(Deleted::Pending(_)) => {
            tracing::debug!(
                namespace = namespace.as_str(),
                name = name.as_str(),
                "TTL after finished: Job deleting, waits for its finalizers"
            );
        }
        Err(err) => {
            tracing::warn!(namespace = namespace.as_str(), name = name.as_str(), %err, "TTL after finished: delete failed")
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn expiry_counts_from_the_finish() {
        let job = |ttl: Value, conditions: Value| {
            json!({"spec": {"ttlSecondsAfterFinished": ttl},
                   "status": {"completionTime": "2024-01-01T00:00:00Z", "conditions": conditions}})
        };
        let complete = json!([{"type": "Complete", "status": "True", "lastTransitionTime": "2024-01-01T00:00:05Z"}]);
        assert_eq!(
            expiry(&job(json!(10), complete.clone())).map(|t| t.to_string()),
            Some("2024-01-01T00:00:15Z".to_string())
        );
        // Counted from the condition, not `completionTime`; without a time, never.
        let no_time = json!([{"type": "Complete", "status": "True"}]);
        assert_eq!(expiry(&job(json!(0), no_time)), None);
        let failed = json!([{"type": "FailureTarget", "status": "True", "lastTransitionTime": "2024-01-01T00:00:01Z"},
                            {"type": "Failed", "status": "True", "lastTransitionTime": "2024-01-01T00:00:02Z"}]);
        assert_eq!(
            expiry(&job(json!(1), failed)).map(|t| t.to_string()),
            Some("2024-01-01T00:00:03Z".to_string())
        );
        let running = json!([{"type": "Complete", "status": "False"}]);
        assert_eq!(expiry(&job(json!(1), running)), None);
        assert_eq!(expiry(&job(Value::Null, complete)), None);
    }
}
