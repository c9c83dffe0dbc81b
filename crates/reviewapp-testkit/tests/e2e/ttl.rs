//! The TTL-after-finished controller deletes finished Jobs once `ttlSecondsAfterFinished` has
//! passed since they finished.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, Patch, PatchParams, PostParams};
use reviewapp_testkit::{Emulator, Handle, Options, Subscription, object_path};
use serde_json::{Value, json};

use crate::common::start;

/// Generous bound for something the controller does "at once" or "after a second".
const PATIENCE: Duration = Duration::from_secs(15);

fn job(name: &str, ttl: i64, finalizers: &[&str]) -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": "builds", "finalizers": finalizers},
        "spec": {"ttlSecondsAfterFinished": ttl, "backoffLimit": 0,
            "template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "build", "image": "moby/buildkit"}]}}},
    })
}

fn path(name: &str) -> String {
    object_path("batch", "v1", "jobs", Some("builds"), name)
}

fn subscribe(handle: &Handle) -> Subscription {
    handle
        .subscribe("batch", "v1", "jobs", Some("builds"), None)
        .unwrap()
}

/// Waits (up to [`PATIENCE`]) for an event on `name` that `wanted` accepts.
async fn wait_for(
    events: &mut Subscription,
    name: &str,
    wanted: impl Fn(&'static str, &Value) -> bool,
) -> Value {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let event = events.next().await.expect("the subscription goes on");
            if event.object["metadata"]["name"] == name && wanted(event.kind, &event.object) {
                return (*event.object).clone();
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no matching event for {name} within {PATIENCE:?}"))
}

#[tokio::test]
async fn a_finished_job_goes_once_its_ttl_has_passed() {
    let (_emulator, client, handle) = start().await;
    let jobs: Api<Job> = Api::namespaced(client, "builds");
    for (name, ttl) in [("short", 1), ("long", 3600)] {
        jobs.create(
            &PostParams::default(),
            &serde_json::from_value(job(name, ttl, &[])).unwrap(),
        )
        .await
        .unwrap();
    }
    let mut events = subscribe(&handle);
    handle.set_job_succeeded("builds", "long").unwrap();
    handle.set_job_succeeded("builds", "short").unwrap();
    assert!(handle.get(&path("long")).is_some());

    let gone = wait_for(&mut events, "short", |kind, _| kind == "DELETED").await;
    assert_eq!(gone["status"]["succeeded"], 1);
    assert!(handle.get(&path("short")).is_none());
    assert!(
        handle.get(&path("long")).is_some(),
        "a Job finished at the same time with a longer TTL stays"
    );

    // A failed Job counts from its `Failed` condition.
    jobs.create(
        &PostParams::default(),
        &serde_json::from_value(job("failed", 1, &[])).unwrap(),
    )
    .await
    .unwrap();
    handle
        .set_job_failed(
            "builds",
            "failed",
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        )
        .unwrap();
    wait_for(&mut events, "failed", |kind, _| kind == "DELETED").await;
}

#[tokio::test]
async fn a_job_with_a_finalizer_is_marked_deleting_until_the_finalizer_goes() {
    let (_emulator, client, handle) = start().await;
    let jobs: Api<Job> = Api::namespaced(client, "builds");
    jobs.create(
        &PostParams::default(),
        &serde_json::from_value(job("held", 0, &["example.com/keep"])).unwrap(),
    )
    .await
    .unwrap();
    let mut events = subscribe(&handle);
    handle.set_job_succeeded("builds", "held").unwrap();
    let deleting = wait_for(&mut events, "held", |kind, o| {
        kind == "MODIFIED" && o["metadata"].get("deletionTimestamp").is_some()
    })
    .await;
    assert_eq!(
        deleting["metadata"]["finalizers"],
        json!(["example.com/keep"])
    );
    assert!(
        handle.get(&path("held")).is_some(),
        "kept while the finalizer is there"
    );

    jobs.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    wait_for(&mut events, "held", |kind, _| kind == "DELETED").await;
    assert!(handle.get(&path("held")).is_none());
}

/// A Job that finished in 2020.
fn finished_long_ago(name: &str) -> Value {
    let mut old = job(name, 60, &[]);
    old["status"] = json!({
        "startTime": "2020-01-01T00:00:00Z", "completionTime": "2020-01-01T00:01:00Z", "succeeded": 1,
        "conditions": [{"type": "Complete", "status": "True",
            "lastTransitionTime": "2020-01-01T00:01:00Z", "lastProbeTime": "2020-01-01T00:01:00Z"}],
    });
    old
}

#[tokio::test]
async fn a_job_finished_long_ago_is_deleted_at_once() {
    let (_emulator, _client, handle) = start().await;
    let mut events = subscribe(&handle);
    handle.create(finished_long_ago("old")).unwrap();
    wait_for(&mut events, "old", |kind, _| kind == "DELETED").await;
    assert!(handle.get(&path("old")).is_none());
}

#[tokio::test]
async fn the_controller_can_be_turned_off() {
    let emulator = Emulator::start_with(Options {
        ttl_after_finished: false,
        ..Options::default()
    })
    .await
    .unwrap();
    let handle = emulator.handle();
    handle.create(finished_long_ago("old")).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(handle.get(&path("old")).is_some());
}
