//! Job outcomes set through the handle, seen by a Job watcher.

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, PostParams};
use kube::runtime::watcher::{self, Event};
use serde_json::json;

use crate::common::{next, start};

const SELECTOR: &str = "app.kubernetes.io/managed-by=review-app-operator";

fn build_job(name: &str) -> Job {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "review-app-operator"}},
        "spec": {"backoffLimit": 2, "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "build", "image": "moby/buildkit"}]}}},
    }))
    .unwrap()
}

fn condition(job: &Job, kind: &str) -> Option<(String, Option<String>)> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

#[tokio::test]
async fn job_outcomes_reach_a_job_watcher() {
    let (_emulator, client, handle) = start().await;
    let jobs: Api<Job> = Api::namespaced(client, "builds");
    jobs.create(&PostParams::default(), &build_job("ok"))
        .await
        .unwrap();
    jobs.create(&PostParams::default(), &build_job("bad"))
        .await
        .unwrap();
    let mut stream =
        watcher::watcher(jobs.clone(), watcher::Config::default().labels(SELECTOR)).boxed();
    for _ in 0..4 {
        next(&mut stream).await.unwrap();
    }

    handle.set_job_running("builds", "ok").unwrap();
    let Event::Apply(running) = next(&mut stream).await.unwrap() else {
        panic!("expected apply")
    };
    assert_eq!(running.status.as_ref().unwrap().active, Some(1));

    handle.set_job_succeeded("builds", "ok").unwrap();
    let Event::Apply(done) = next(&mut stream).await.unwrap() else {
        panic!("expected apply")
    };
    let status = done.status.as_ref().unwrap();
    assert_eq!(status.succeeded, Some(1));
    assert!(status.start_time.is_some() && status.completion_time.is_some());
    assert_eq!(
        status.start_time,
        running.status.unwrap().start_time,
        "startTime is kept"
    );
    assert_eq!(condition(&done, "Complete").unwrap().0, "True");
    assert_eq!(done.metadata.generation, Some(1));

    handle
        .set_job_failed(
            "builds",
            "bad",
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        )
        .unwrap();
    let Event::Apply(failed) = next(&mut stream).await.unwrap() else {
        panic!("expected apply")
    };
    assert_eq!(
        condition(&failed, "Failed").unwrap(),
        ("True".to_string(), Some("BackoffLimitExceeded".to_string()))
    );
    assert_eq!(failed.status.as_ref().unwrap().failed, Some(3));
    assert!(failed.status.as_ref().unwrap().completion_time.is_none());

    assert_eq!(
        handle
            .set_job_succeeded("builds", "missing")
            .unwrap_err()
            .code,
        404
    );
}

#[tokio::test]
async fn finishing_stamps_the_time_of_the_call_and_keeps_an_earlier_finish() {
    let (_emulator, _client, handle) = start().await;
    let before = k8s_openapi::jiff::Timestamp::now().as_second();
    let mut job = serde_json::to_value(build_job("now")).unwrap();
    job["apiVersion"] = json!("batch/v1");
    job["kind"] = json!("Job");
    job["metadata"]["namespace"] = json!("builds");
    handle.create(job.clone()).unwrap();
    let done = handle.set_job_succeeded("builds", "now").unwrap();
    let finished = done["status"]["completionTime"].as_str().unwrap();
    let at: k8s_openapi::jiff::Timestamp = finished.parse().unwrap();
    assert!(
        at.as_second() >= before,
        "{finished} is the time of the call"
    );
    let complete = done["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Complete")
        .unwrap();
    assert_eq!(complete["lastTransitionTime"], finished);

    // A Job that already finished keeps its finish time.
    job["metadata"]["name"] = json!("earlier");
    job["status"] = json!({"startTime": "2020-01-01T00:00:00Z", "completionTime": "2020-01-01T00:01:00Z",
        "succeeded": 1, "conditions": [{"type": "Complete", "status": "True",
            "lastTransitionTime": "2020-01-01T00:01:00Z"}]});
    handle.create(job).unwrap();
    let again = handle.set_job_succeeded("builds", "earlier").unwrap();
    assert_eq!(again["status"]["completionTime"], "2020-01-01T00:01:00Z");
    assert_eq!(again["status"]["startTime"], "2020-01-01T00:00:00Z");
}
