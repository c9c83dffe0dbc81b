//! The pod of a Job, its container statuses when a test finishes the Job, and its `log`
//! subresource, through the real kube client.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use serde_json::json;

use crate::common::start;

fn build_job(name: &str) -> Job {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"backoffLimit": 1, "template": {
            "metadata": {"labels": {"app.kubernetes.io/component": "build"}},
            "spec": {"restartPolicy": "Never",
                "initContainers": [{"name": "fetch", "image": "curl"}, {"name": "unpack", "image": "busybox"}],
                "containers": [{"name": "build", "image": "moby/buildkit"}]}}},
    }))
    .unwrap()
}

fn exit_codes(pod: &Pod) -> Vec<(String, Option<i32>)> {
    let status = pod.status.as_ref().unwrap();
    status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .map(|c| {
            let code = c
                .state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .map(|t| t.exit_code);
            (c.name.clone(), code)
        })
        .collect()
}

#[tokio::test]
async fn a_job_gets_a_pod_owned_by_it() {
    let (_emulator, client, handle) = start().await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), "builds");
    let job = jobs
        .create(&PostParams::default(), &build_job("b1"))
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client, "builds");
    let listed = pods
        .list(&ListParams::default().labels("batch.kubernetes.io/job-name=b1"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    let pod = &listed.items[0];
    let labels = pod.metadata.labels.as_ref().unwrap();
    assert_eq!(labels["job-name"], "b1");
    assert_eq!(labels["app.kubernetes.io/component"], "build");
    assert_eq!(
        labels["controller-uid"],
        job.metadata.uid.clone().unwrap(),
        "{labels:?}"
    );
    let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.controller), ("Job", Some(true)));
    assert_eq!(
        pod.status.as_ref().unwrap().phase.as_deref(),
        Some("Pending")
    );
    assert_eq!(
        exit_codes(pod),
        [
            ("fetch".into(), None),
            ("unpack".into(), None),
            ("build".into(), None)
        ]
    );

    jobs.delete("b1", &DeleteParams::background())
        .await
        .unwrap();
    assert!(
        handle.job_pods("builds", "b1").is_empty(),
        "collected with its Job"
    );
}

async fn log_of(
    pods: &Api<Pod>,
    pod: &str,
    container: &str,
    tail_lines: Option<i64>,
    limit_bytes: Option<i64>,
) -> Result<String, kube::Error> {
    let params = LogParams {
        container: Some(container.into()),
        tail_lines,
        limit_bytes,
        ..LogParams::default()
    };
    pods.logs(pod, &params).await
}

#[tokio::test]
async fn a_failed_job_names_the_failing_container_and_serves_its_log() {
    let (_emulator, client, handle) = start().await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), "builds");
    jobs.create(&PostParams::default(), &build_job("b2"))
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client, "builds");
    let name = handle.job_pods("builds", "b2")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();

    // Not started yet: the server refuses, naming the reason.
    let err = pods
        .logs(
            &name,
            &LogParams {
                container: Some("build".into()),
                ..LogParams::default()
            },
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("waiting to start"), "{err}");

    let log: String = (1..=50).map(|i| format!("step {i}\n")).collect();
    handle.set_job_log("builds", "b2", "unpack", &log).unwrap();
    handle
        .set_job_failed_in("builds", "b2", "unpack", 2, "BackoffLimitExceeded", "limit")
        .unwrap();
    let pod = pods.get(&name).await.unwrap();
    assert_eq!(
        pod.status.as_ref().unwrap().phase.as_deref(),
        Some("Failed")
    );
    assert_eq!(
        exit_codes(&pod),
        [
            ("fetch".into(), Some(0)),
            ("unpack".into(), Some(2)),
            ("build".into(), None)
        ]
    );
    let job = jobs.get("b2").await.unwrap();
    assert_eq!(job.status.unwrap().failed, Some(2));

    let tail = log_of(&pods, &name, "unpack", Some(3), None).await.unwrap();
    assert_eq!(tail, "step 48\nstep 49\nstep 50\n");
    let limited = log_of(&pods, &name, "unpack", Some(3), Some(10))
        .await
        .unwrap();
    assert_eq!(limited, "step 48\nst");
    // The only regular container is the default: it never started after `unpack` failed.
    let err = pods.logs(&name, &LogParams::default()).await.unwrap_err();
    assert!(err.to_string().contains("\"build\""), "{err}");
    // A container the pod lacks is refused.
    let err = pods
        .logs(
            &name,
            &LogParams {
                container: Some("nope".into()),
                ..LogParams::default()
            },
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not valid for pod"), "{err}");
    let err = pods.logs("gone", &LogParams::default()).await.unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.code == 404));
}

#[tokio::test]
async fn set_job_failed_fails_the_build_container() {
    let (_emulator, client, handle) = start().await;
    let jobs: Api<Job> = Api::namespaced(client, "builds");
    jobs.create(&PostParams::default(), &build_job("b3"))
        .await
        .unwrap();
    handle
        .set_job_failed("builds", "b3", "BackoffLimitExceeded", "limit")
        .unwrap();
    let pod: Pod = serde_json::from_value(handle.job_pods("builds", "b3")[0].clone()).unwrap();
    assert_eq!(
        exit_codes(&pod),
        [
            ("fetch".into(), Some(0)),
            ("unpack".into(), Some(0)),
            ("build".into(), Some(1))
        ]
    );
    jobs.create(&PostParams::default(), &build_job("b4"))
        .await
        .unwrap();
    handle.set_job_succeeded("builds", "b4").unwrap();
    let pod = &handle.job_pods("builds", "b4")[0];
    assert_eq!(pod["status"]["phase"], "Succeeded");
}
