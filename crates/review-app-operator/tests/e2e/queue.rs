//! The build cap (`build.maxConcurrent`) end to end: builds beyond the cap wait in a queue and
//! say so in their status, start first requested first started the moment a slot frees (the
//! tick is an hour here), a newer commit replaces a queued build (no build of the stale commit),
//! the queue survives a restart, and a build stopped for a newer commit is a Normal
//! `BuildSuperseded` Event that leaves `appStatus` alone.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::events::v1::Event;
use reviewapp_api::ReviewApp;
use reviewapp_testkit::RequestRecord;

use crate::world::{BUILD_NS, World, eventually};

const SHA_A: &str = "aaaaaaaaaa0000000000000000000000000000a1";
const SHA_B: &str = "bbbbbbbbbb0000000000000000000000000000b2";
const SHA_C: &str = "cccccccccc0000000000000000000000000000c3";

/// The build Job of PR `pr` at `commit`.
fn job(pr: &str, commit: &str) -> String {
    format!("test-review-app-{pr}--{}", &commit[..10])
}

/// A world whose operator runs at most `cap` builds at once and never ticks during a scenario.
fn capped(w: &mut World, cap: u32) {
    let mut config = (*w.config).clone();
    config.build.max_concurrent = cap;
    config.reconcile_interval_seconds = 3600;
    w.config = Arc::new(config);
}

async fn job_exists(w: &World, name: String) -> bool {
    w.jobs().get_opt(&name).await.unwrap().is_some()
}

/// The `Building` condition's reason and message, if it is `True`.
fn building(app: &ReviewApp) -> Option<(String, String)> {
    let c = app.status.as_ref()?.condition("Building")?;
    (c.status == "True").then(|| (c.reason.clone(), c.message.clone()))
}

async fn is_queued_at(w: &World, name: &str, position: &str) -> bool {
    w.app(name).await.is_some_and(|app| {
        let status = app.status.clone().unwrap_or_default();
        building(&app)
            .is_some_and(|(reason, message)| reason == "Queued" && message.contains(position))
            && status.build_status.map(|s| s.as_str()) == Some("building")
            && status.build_requested_at.is_some()
            && status.build_job_name.is_none()
    })
}

async fn creates_app(w: &mut World, name: &str, pr: &str, commit: &str) {
    w.apply_app(w.sample(name, pr, commit)).await;
}

/// Build Jobs not finished, as the cluster has them.
async fn running_jobs(w: &World) -> Vec<String> {
    let mut out: Vec<String> = w
        .jobs()
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|j| j.metadata.deletion_timestamp.is_none())
        .filter(|j| {
            j.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_none()
        })
        .filter_map(|j| j.metadata.name)
        .collect();
    out.sort();
    out
}

/// The most build Jobs that were ever running at once, replayed from the emulator's request
/// log: a Job the operator created counts until the scenario reported it finished or the
/// operator deleted it.
pub fn most_builds_at_once(requests: &[RequestRecord]) -> usize {
    let jobs = format!("/apis/batch/v1/namespaces/{BUILD_NS}/jobs");
    let (mut running, mut most) = (0usize, 0usize);
    for r in requests {
        let finished =
            r.method == "PATCH" && r.path.starts_with(&jobs) && r.path.ends_with("/status");
        if r.method == "POST" && r.path == jobs && r.status == 201 {
            running += 1;
        } else if (finished || r.method == "DELETE" && r.path.starts_with(&jobs))
            && (200..300).contains(&r.status)
        {
            running = running.saturating_sub(1);
        }
        most = most.max(running);
    }
    most
}

/// Events on app `name` with `reason`, as `(type, note)`.
async fn events(w: &World, name: &str, reason: &str) -> Vec<(String, String)> {
    let api: kube::Api<Event> = kube::Api::all(w.client.clone());
    api.list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| {
            e.reason.as_deref() == Some(reason)
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
        })
        .map(|e| (e.type_.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect()
}

/// Cap 2: two builds run, two wait in order; a newer commit replaces a queued build; each
/// finishing build starts the head of the queue at once.
pub async fn queue_and_cap(w: &mut World) {
    capped(w, 2);
    w.start().await;
    if let Some(emulator) = &w.emulator {
        emulator.clear_requests();
    }
    // Created one after the other (the order the operator sees them), names against the
    // alphabet so that name order is not what passes.
    creates_app(w, "queue-z", "101", SHA_A).await;
    eventually("the first build runs", || job_exists(w, job("101", SHA_A))).await;
    creates_app(w, "queue-y", "102", SHA_A).await;
    eventually("the second build runs", || job_exists(w, job("102", SHA_A))).await;
    creates_app(w, "queue-x", "103", SHA_A).await;
    eventually("the third waits first", || {
        is_queued_at(w, "queue-x", "position 1 of 1")
    })
    .await;
    creates_app(w, "queue-w", "104", SHA_A).await;
    eventually("the fourth waits second", || {
        is_queued_at(w, "queue-w", "position 2 of 2")
    })
    .await;
    assert_eq!(
        running_jobs(w).await,
        [job("101", SHA_A), job("102", SHA_A)]
    );
    a_newer_commit_replaces_the_queued_build(w).await;
    slots_free_in_order(w).await;
    if let Some(emulator) = &w.emulator {
        let requests: Vec<RequestRecord> = emulator.requests();
        assert_eq!(
            most_builds_at_once(&requests),
            2,
            "the cap is never exceeded"
        );
    }
}

/// A new commit for the queued queue-w replaces its entry, in its place.
async fn a_newer_commit_replaces_the_queued_build(w: &World) {
    w.push("queue-w", SHA_B).await;
    eventually("the queued build is of the new commit", || async {
        w.app("queue-w").await.is_some_and(|a| {
            a.status.as_ref().and_then(|s| s.build_commit.as_deref()) == Some(SHA_B)
        }) && is_queued_at(w, "queue-w", "position 2 of 2").await
    })
    .await;
    let superseded = events(w, "queue-w", "BuildSuperseded").await;
    assert_eq!(
        superseded,
        [(
            "Normal".to_string(),
            "queued build of commit aaaaaaaaaa superseded by commit bbbbbbbbbb; it never started"
                .to_string()
        )]
    );
}

/// A slot frees: the head (queue-x, requested first) starts, not queue-w; then queue-w, at its
/// new commit.
async fn slots_free_in_order(w: &World) {
    w.finish_job(&job("101", SHA_A), true).await;
    eventually("queue-x starts once a slot frees", || {
        job_exists(w, job("103", SHA_A))
    })
    .await;
    eventually("queue-x reports its build running", || async {
        w.app("queue-x")
            .await
            .as_ref()
            .and_then(building)
            .is_some_and(|(reason, _)| reason == "BuildRunning")
    })
    .await;
    assert!(is_queued_at(w, "queue-w", "position 2 of 2").await);
    assert_eq!(
        running_jobs(w).await,
        [job("102", SHA_A), job("103", SHA_A)]
    );

    w.finish_job(&job("102", SHA_A), false).await;
    eventually("queue-w starts, at its new commit", || {
        job_exists(w, job("104", SHA_B))
    })
    .await;
    assert!(
        !job_exists(w, job("104", SHA_A)).await,
        "the stale commit is never built"
    );
    w.finish_job(&job("103", SHA_A), true).await;
    w.finish_job(&job("104", SHA_B), true).await;
    for name in ["queue-z", "queue-x", "queue-w"] {
        eventually(&format!("{name} deployed"), || async {
            w.app(name).await.is_some_and(|a| {
                a.status.and_then(|s| s.app_status).map(|s| s.as_str()) == Some("deployed")
            })
        })
        .await;
    }
    if let Some(emulator) = &w.emulator {
        let requests: Vec<RequestRecord> = emulator.requests();
        assert_eq!(
            most_builds_at_once(&requests),
            2,
            "the cap is never exceeded"
        );
    }
}

/// Cap 1, one build running and two waiting when the operator stops; the running build
/// finishes while it is down. Back, it rebuilds the queue from the statuses: the app requested
/// first starts (not the first by name), the other keeps waiting.
pub async fn restart_with_a_queue(w: &mut World) {
    capped(w, 1);
    w.start().await;
    creates_app(w, "restart-c", "201", SHA_A).await;
    eventually("the first build runs", || job_exists(w, job("201", SHA_A))).await;
    creates_app(w, "restart-b", "202", SHA_A).await;
    eventually("restart-b waits", || {
        is_queued_at(w, "restart-b", "position 1 of 1")
    })
    .await;
    // A later second, so that the recorded request times differ.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    creates_app(w, "restart-a", "203", SHA_A).await;
    eventually("restart-a waits", || {
        is_queued_at(w, "restart-a", "position 2 of 2")
    })
    .await;
    w.stop().await;

    w.finish_job(&job("201", SHA_A), true).await;
    w.start().await;
    eventually("restart-b, requested first, starts", || {
        job_exists(w, job("202", SHA_A))
    })
    .await;
    eventually("restart-c is deployed", || async {
        w.app("restart-c").await.is_some_and(|a| {
            a.status.and_then(|s| s.app_status).map(|s| s.as_str()) == Some("deployed")
        })
    })
    .await;
    assert!(!job_exists(w, job("203", SHA_A)).await, "restart-a waits");
    assert!(is_queued_at(w, "restart-a", "position 2 of 2").await);
    w.finish_job(&job("202", SHA_A), true).await;
    eventually("restart-a starts next", || job_exists(w, job("203", SHA_A))).await;
}

/// A new commit while a rebuild runs: the running build is stopped and reported as superseded
/// (Normal, naming both commits); the app keeps serving, `appStatus` stays `deployed`.
pub async fn superseded_build(w: &mut World) {
    w.start().await;
    creates_app(w, "superseded", "301", SHA_A).await;
    eventually("the first build runs", || job_exists(w, job("301", SHA_A))).await;
    w.finish_job(&job("301", SHA_A), true).await;
    eventually("deployed", || async {
        w.app("superseded").await.is_some_and(|a| {
            a.status.and_then(|s| s.app_status).map(|s| s.as_str()) == Some("deployed")
        })
    })
    .await;
    w.push("superseded", SHA_B).await;
    eventually("the rebuild runs", || job_exists(w, job("301", SHA_B))).await;
    w.push("superseded", SHA_C).await;
    eventually("the newest commit builds", || {
        job_exists(w, job("301", SHA_C))
    })
    .await;
    eventually("the superseded Job goes", || async {
        !job_exists(w, job("301", SHA_B)).await
    })
    .await;
    eventually("a BuildSuperseded Event", || async {
        !events(w, "superseded", "BuildSuperseded").await.is_empty()
    })
    .await;
    let notes = events(w, "superseded", "BuildSuperseded").await;
    assert_eq!(
        notes,
        [(
            "Normal".to_string(),
            format!(
                "build of commit bbbbbbbbbb (Job {}) superseded by commit cccccccccc; its Job is deleted",
                job("301", SHA_B)
            )
        )]
    );
    let app = w.app("superseded").await.unwrap();
    let status = app.status.unwrap();
    assert_eq!(status.app_status.map(|s| s.as_str()), Some("deployed"));
    assert_eq!(status.message, None, "no error recorded");
    assert!(
        events(w, "superseded", "BuildFailed").await.is_empty(),
        "never reported as a failure"
    );
}
