//! Releasing a build Job: the JSON patch that removes the operator's build-outcome finalizer,
//! pinned, and every way it ends (done, already gone, not held, a stale cache, a restarted
//! build created right after).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use reviewapp_api::BUILD_FINALIZER;
use reviewapp_effects::{EffectsError, Lookup};
use reviewapp_resources::{Action, ChildKind, ChildRef, Plan};
use serde_json::json;

const JOB_PATH: &str =
    "/apis/batch/v1/namespaces/review-build/jobs/test-review-app-678--c8c9aa334a";

fn job() -> ChildRef {
    ChildRef::new(ChildKind::Job, "review-build", JOB)
}

fn release() -> Plan {
    Plan {
        actions: vec![Action::ReleaseJob(job())],
    }
}

/// An index that knows the Job with `finalizers`.
fn knowing(finalizers: &[&str]) -> MapIndex {
    let mut index = MapIndex::all(Lookup::Absent);
    index.set(job(), present("7"));
    index
        .finalizers
        .insert(job(), finalizers.iter().map(|f| f.to_string()).collect());
    index
}

/// A Job as the API server returns it, with `finalizers`.
fn job_object(finalizers: &[&str]) -> serde_json::Value {
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": JOB, "namespace": "review-build", "resourceVersion": "9",
                     "finalizers": finalizers},
    })
}

#[tokio::test]
async fn the_release_is_a_json_patch_guarded_by_a_test_of_the_cached_index() {
    let api = MockApi::healthy();
    let (effects, calls) = new_effects(&api);
    let index = knowing(&["example.com/other", BUILD_FINALIZER]);
    let report = effects.execute(&app(), &release(), &index).await.unwrap();
    assert_eq!((report.writes, report.skipped), (1, 0));
    assert_eq!(report.written, [format!("release Job review-build/{JOB}")]);
    let requests = api.take();
    assert_eq!(requests.len(), 1, "no read: the cache knew the finalizers");
    let patch = &requests[0];
    assert_eq!(patch.line(), format!("PATCH {JOB_PATH}?{MANAGER_QUERY}"));
    assert_eq!(patch.content_type, JSON_PATCH);
    assert_eq!(
        patch.body,
        json!([
            {"op": "test", "path": "/metadata/finalizers/1", "value": BUILD_FINALIZER},
            {"op": "remove", "path": "/metadata/finalizers/1"},
        ])
    );
    assert_eq!(
        calls.all(),
        [("patch".to_string(), "Job".to_string(), Some(200))]
    );
}

#[tokio::test]
async fn a_job_without_the_finalizer_is_done_without_a_request() {
    let api = MockApi::healthy();
    let (effects, _) = new_effects(&api);
    for finalizers in [&[][..], &["example.com/other"][..]] {
        let report = effects
            .execute(&app(), &release(), &knowing(finalizers))
            .await
            .unwrap();
        assert_eq!((report.writes, report.skipped), (0, 1));
    }
    assert_quiet(&api).await;
}

#[tokio::test]
async fn a_job_already_gone_is_done() {
    // The cache still shows it; the API server no longer has it.
    let api = MockApi::start(|r| {
        (r.method == "PATCH").then(|| Reply::Json(404, status(404, "NotFound", "jobs not found")))
    });
    let (effects, _) = new_effects(&api);
    let report = effects
        .execute(&app(), &release(), &knowing(&[BUILD_FINALIZER]))
        .await
        .unwrap();
    assert_eq!(report.writes, 1, "counts as done, like a delete's 404");
    assert_eq!(api.lines().len(), 1, "404 is not retried");
}

#[tokio::test]
async fn an_index_that_knows_nothing_reads_the_job_first() {
    let api = MockApi::start(|r| {
        (r.method == "GET").then(|| Reply::Json(200, job_object(&[BUILD_FINALIZER, "x/y"])))
    });
    let (effects, _) = new_effects(&api);
    let report = effects
        .execute(&app(), &release(), &MapIndex::all(Lookup::Unknown))
        .await
        .unwrap();
    assert_eq!(report.writes, 1);
    let requests = api.take();
    assert_eq!(
        requests.iter().map(Recorded::line).collect::<Vec<_>>(),
        [
            format!("GET {JOB_PATH}"),
            format!("PATCH {JOB_PATH}?{MANAGER_QUERY}")
        ]
    );
    assert_eq!(requests[1].body[0]["path"], "/metadata/finalizers/0");

    // Not found on the read: nothing to release.
    let api = MockApi::healthy();
    let (effects, _) = new_effects(&api);
    let report = effects
        .execute(&app(), &release(), &MapIndex::all(Lookup::Unknown))
        .await
        .unwrap();
    assert_eq!((report.writes, report.skipped), (0, 1));
    assert_eq!(api.lines(), [format!("GET {JOB_PATH}")]);
}

#[tokio::test]
async fn a_stale_cache_is_corrected_by_one_read() {
    // The cache says [ours]; someone added a finalizer in front since: the test fails (422),
    // the Job is read, and the patch goes to the right index.
    let api = MockApi::start(|r| match (r.method.as_str(), r.body[0]["path"].as_str()) {
        ("PATCH", Some("/metadata/finalizers/0")) => Some(Reply::Json(
            422,
            status(422, "Invalid", "the test operation failed"),
        )),
        ("GET", _) => Some(Reply::Json(
            200,
            job_object(&["example.com/first", BUILD_FINALIZER]),
        )),
        _ => None,
    });
    let (effects, _) = new_effects(&api);
    let report = effects
        .execute(&app(), &release(), &knowing(&[BUILD_FINALIZER]))
        .await
        .unwrap();
    assert_eq!(report.writes, 1);
    let requests = api.take();
    assert_eq!(requests.len(), 3, "{requests:#?}");
    assert_eq!(requests[1].line(), format!("GET {JOB_PATH}"));
    assert_eq!(requests[2].body[0]["path"], "/metadata/finalizers/1");

    // The read shows it released already (our own release, not yet in the cache): done.
    let api = MockApi::start(|r| match r.method.as_str() {
        "PATCH" => Some(Reply::Json(422, status(422, "Invalid", "test failed"))),
        "GET" => Some(Reply::Json(200, job_object(&[]))),
        _ => None,
    });
    let (effects, _) = new_effects(&api);
    let report = effects
        .execute(&app(), &release(), &knowing(&[BUILD_FINALIZER]))
        .await
        .unwrap();
    assert_eq!((report.writes, report.skipped), (0, 1));
}

#[tokio::test]
async fn a_job_that_keeps_changing_is_a_conflict_for_the_retry() {
    let api = MockApi::start(|r| match r.method.as_str() {
        "PATCH" => Some(Reply::Json(422, status(422, "Invalid", "test failed"))),
        "GET" => Some(Reply::Json(200, job_object(&[BUILD_FINALIZER]))),
        _ => None,
    });
    let (effects, _) = new_effects(&api);
    let err = effects
        .execute(&app(), &release(), &knowing(&[BUILD_FINALIZER]))
        .await
        .unwrap_err();
    assert!(matches!(err, EffectsError::Conflict { .. }), "{err}");
    assert_eq!(err.status(), Some(409));
    assert_eq!(api.lines().len(), 3, "one read, two patches");
}

#[tokio::test]
async fn a_build_restarted_under_the_same_name_is_created_though_the_cache_shows_the_old_job() {
    // Someone deleted the running build: release it, then create it again. The cache still
    // shows the old Job (being deleted); the create must be sent, not skipped as "exists".
    let api = MockApi::healthy();
    let (effects, _) = new_effects(&api);
    let app = app();
    let (_, add) = pipeline(&app, reviewapp_state::AppEvent::Add);
    let create = add
        .actions
        .iter()
        .find(|a| matches!(a, Action::CreateJob(_)))
        .unwrap()
        .clone();
    let plan = Plan {
        actions: vec![Action::ReleaseJob(job()), create.clone()],
    };
    let report = effects
        .execute(&app, &plan, &knowing(&[BUILD_FINALIZER]))
        .await
        .unwrap();
    assert_eq!(report.writes, 2);
    let lines = api.lines();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(lines[1].starts_with("POST /apis/batch/v1/namespaces/review-build/jobs"));

    // Without the release before it, the Job the cache shows is adopted.
    let report = effects
        .execute(
            &app,
            &Plan {
                actions: vec![create],
            },
            &knowing(&[BUILD_FINALIZER]),
        )
        .await
        .unwrap();
    assert_eq!((report.writes, report.skipped), (0, 1));
    assert_quiet(&api).await;
}
