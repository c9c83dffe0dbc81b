//! Why a build failed: the failing container's log tail in `status.message` and the
//! `BuildFailed` Warning, sanitised and bounded, read once per failure. Emulator only: a real
//! test cluster runs no build, so there is no log to read.

use k8s_openapi::api::events::v1::Event;
use serde_json::json;

use crate::world::{BUILD_NS, World, eventually};
use crate::{JOB1, SHA1, has_status, operator_requests};

const PUSH_PASSWORD: &str = "pa55w0rd-of-the-registry";

/// The push Secret (`builder.pushSecretName`) with a docker config whose password the log leaks.
async fn push_secret(w: &World) {
    let auth = "Ym90OnBhNTV3MHJkLW9mLXRoZS1yZWdpc3RyeQ=="; // bot:pa55w0rd-of-the-registry
    let config = json!({"auths": {"registry.example": {"auth": auth}}}).to_string();
    w.apply(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": w.config.builder.push_secret_name, "namespace": BUILD_NS},
        "stringData": {"config.json": config},
    }))
    .await;
}

async fn build_job_exists(w: &mut World) {
    w.start().await;
    w.apply_app(w.sample("test", "678", SHA1)).await;
    eventually("the build Job exists", || async {
        w.jobs().get_opt(JOB1).await.unwrap().is_some()
    })
    .await;
}

async fn message(w: &World) -> String {
    w.app("test")
        .await
        .and_then(|a| a.status)
        .and_then(|s| s.message)
        .unwrap_or_default()
}

async fn build_failed_warning(w: &World) -> String {
    let events: kube::Api<Event> = kube::Api::all(w.client.clone());
    let note = || async {
        events
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("BuildFailed"))
            .and_then(|e| e.note)
    };
    eventually("a BuildFailed Warning", || async { note().await.is_some() }).await;
    note().await.unwrap()
}

fn assert_clean(text: &str) {
    assert!(
        text.chars().all(|c| c == '\n' || !c.is_control()),
        "control characters in {text:?}"
    );
    for leaked in [PUSH_PASSWORD, "Ym90OnBhNTV3", "tok-123456789", "hunter22"] {
        assert!(!text.contains(leaked), "{leaked} leaked: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_build_says_why_in_status_and_event_on_emulator() {
    let mut w = World::emulated().await;
    push_secret(&w).await;
    build_job_exists(&mut w).await;
    let emulator = w.emulator.clone().unwrap();
    let mut log: String = (1..=200).map(|i| format!("#{i} step {i} DONE\n")).collect();
    log.push_str("\u{1b}[31mERROR\u{1b}[0m: pushing as bot:pa55w0rd-of-the-registry\u{7}\n");
    log.push_str("curl -H 'Authorization: Bearer tok-123456789' https://x\n");
    log.push_str("\u{1b}]0;window title\u{7}PASSWORD=hunter22\r\n");
    log.push_str("error: failed to solve: process \"/bin/sh -c make\" did not complete successfully: exit code: 2\n");
    emulator.set_job_log(BUILD_NS, JOB1, "build", &log).unwrap();
    emulator
        .set_job_failed(
            BUILD_NS,
            JOB1,
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        )
        .unwrap();
    eventually("status error/error", || {
        has_status(&w, "test", "error", "error")
    })
    .await;

    let message = message(&w).await;
    for expected in [
        "BackoffLimitExceeded",
        "container build exited with code 1",
        "ERROR: pushing as [redacted]",
        "Authorization: Bearer [redacted]",
        "PASSWORD=[redacted]",
        "did not complete successfully: exit code: 2",
    ] {
        assert!(message.contains(expected), "{expected} not in {message}");
    }
    assert_clean(&message);
    let log_lines = message.split_once("last lines of its log:\n").unwrap().1;
    assert_eq!(log_lines.lines().count(), 20, "{log_lines}");
    assert!(log_lines.len() <= 2048);

    let warning = build_failed_warning(&w).await;
    assert!(
        warning.contains("container build exited with code 1"),
        "{warning}"
    );
    assert!(
        warning.ends_with("exit code: 2"),
        "the end of the tail: {warning}"
    );
    assert!(warning.len() <= 1024);
    assert_clean(&warning);

    // Let a few periodic reconciles pass: the log was read for this failure once.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let reads = operator_requests(&emulator);
    let count = |suffix: &str| {
        reads
            .iter()
            .filter(|r| {
                r.path
                    .starts_with(&format!("/api/v1/namespaces/{BUILD_NS}/pods"))
                    && r.path.ends_with(suffix)
            })
            .count()
    };
    assert_eq!(count("/log"), 1, "one log read");
    assert_eq!(count("/pods"), 1, "one pod list");
    w.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_init_container_failure_with_a_huge_log_on_emulator() {
    let mut w = World::emulated().await;
    build_job_exists(&mut w).await;
    let emulator = w.emulator.clone().unwrap();
    // 5 MiB: 40 lines of 128 KiB, then the line that matters.
    let mut log: String = (0..40)
        .map(|i| format!("{i} {}\n", "\u{1b}[1mx".repeat(128 * 1024 / 5)))
        .collect();
    log.push_str("tar: invalid tar magic\n");
    emulator
        .set_job_log(BUILD_NS, JOB1, "unpack", &log)
        .unwrap();
    emulator
        .set_job_failed_in(BUILD_NS, JOB1, "unpack", 2, "BackoffLimitExceeded", "limit")
        .unwrap();
    eventually("status error/error", || {
        has_status(&w, "test", "error", "error")
    })
    .await;
    let message = message(&w).await;
    assert!(
        message.contains("container unpack exited with code 2"),
        "{message}"
    );
    assert!(message.len() < 3 * 1024, "bounded: {} bytes", message.len());
    assert_clean(&message);
    let log_read = operator_requests(&emulator)
        .into_iter()
        .find(|r| r.path.ends_with("/log"))
        .unwrap();
    assert!(
        log_read.query.contains("container=unpack"),
        "{}",
        log_read.query
    );
    assert!(
        log_read.query.contains("tailLines=20"),
        "{}",
        log_read.query
    );
    assert!(
        log_read.query.contains("limitBytes=16384"),
        "{}",
        log_read.query
    );
    w.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gone_build_pod_keeps_the_jobs_reason_on_emulator() {
    let mut w = World::emulated().await;
    build_job_exists(&mut w).await;
    let emulator = w.emulator.clone().unwrap();
    let pod = emulator.job_pods(BUILD_NS, JOB1)[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    emulator
        .delete(&reviewapp_testkit::object_path(
            "",
            "v1",
            "pods",
            Some(BUILD_NS),
            &pod,
        ))
        .unwrap();
    emulator
        .set_job_failed(
            BUILD_NS,
            JOB1,
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
        )
        .unwrap();
    eventually("status error/error", || {
        has_status(&w, "test", "error", "error")
    })
    .await;
    let message = message(&w).await;
    assert!(
        message.contains("failed: DeadlineExceeded: Job was active longer than specified deadline")
            && message.contains("its log could not be read: the build pod is gone"),
        "{message}"
    );
    let warning = build_failed_warning(&w).await;
    assert!(warning.contains("the build pod is gone"), "{warning}");
    w.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_log_read_keeps_the_jobs_reason_on_emulator() {
    let mut w = World::emulated().await;
    build_job_exists(&mut w).await;
    let emulator = w.emulator.clone().unwrap();
    emulator.fail_next_where(100, 403, |r| r.path.ends_with("/log"));
    emulator
        .set_job_failed(BUILD_NS, JOB1, "BackoffLimitExceeded", "limit")
        .unwrap();
    eventually("status error/error", || {
        has_status(&w, "test", "error", "error")
    })
    .await;
    let message = message(&w).await;
    assert!(
        message.contains("BackoffLimitExceeded")
            && message.contains("its log could not be read: reading the log of container build failed: 403 Forbidden"),
        "{message}"
    );
    w.cleanup().await;
}
