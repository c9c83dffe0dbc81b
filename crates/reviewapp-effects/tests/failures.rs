//! Failures: retries of transient errors, immediate errors, conflicts, failed Events, missing
//! and renewed source Secrets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use k8s_openapi::api::core::v1::Secret;
use reviewapp_effects::{EffectsError, Lookup, NoIndex, RetryPolicy, SecretLookup, Verb};
use reviewapp_resources::{Action, ChildKind, Plan};
use reviewapp_state::AppEvent;
use serde_json::json;

/// The ADD plan's actions that `keep` selects.
fn add_plan_with(keep: impl Fn(&Action) -> bool) -> Plan {
    let (_, plan) = pipeline(&app(), AppEvent::Add);
    Plan {
        actions: plan.actions.into_iter().filter(|a| keep(a)).collect(),
    }
}

/// The ADD plan's apply of the Service.
fn service_plan() -> Plan {
    add_plan_with(|a| matches!(a, Action::Apply(m) if m.child.kind == ChildKind::Service))
}

/// The ADD plan's copy of the TLS Secret.
fn tls_plan() -> Plan {
    add_plan_with(|a| matches!(a, Action::CopySecret { .. }))
}

/// A script answering the first `n` requests to paths containing `needle` with `code`.
fn fail_first(
    n: u32,
    needle: &'static str,
    code: u16,
    reason: &'static str,
) -> impl FnMut(&Recorded) -> Option<Reply> + Send + 'static {
    let mut seen = 0;
    move |r| {
        if r.path.contains(needle) && seen < n {
            seen += 1;
            Some(Reply::Json(code, status(code, reason, "try again later")))
        } else {
            None
        }
    }
}

#[tokio::test]
async fn a_500_then_200_succeeds_on_the_second_attempt() {
    let api = MockApi::start(fail_first(1, "/services/", 500, "InternalError"));
    let (effects, calls) = new_effects(&api);
    let report = effects
        .execute(&app(), &service_plan(), &NoIndex)
        .await
        .unwrap();
    assert_eq!(report.writes, 1);
    let lines = api.lines();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0], lines[1]);
    assert_eq!(
        calls.all(),
        vec![
            ("apply".into(), "Service".into(), Some(500)),
            ("apply".into(), "Service".into(), Some(200)),
        ]
    );
}

#[tokio::test]
async fn a_connection_error_is_retried() {
    let mut failed = false;
    let api = MockApi::start(move |_| {
        if failed {
            None
        } else {
            failed = true;
            Some(Reply::Transport)
        }
    });
    let (effects, calls) = new_effects(&api);
    effects
        .execute(&app(), &service_plan(), &NoIndex)
        .await
        .unwrap();
    assert_eq!(api.take().len(), 2);
    assert_eq!(calls.all()[0], ("apply".into(), "Service".into(), None));
}

#[tokio::test]
async fn a_connection_that_keeps_failing_is_a_transport_error() {
    let api = MockApi::start(|_| Some(Reply::Transport));
    let (effects, calls) = new_effects(&api);
    let err = effects
        .execute(&app(), &service_plan(), &NoIndex)
        .await
        .unwrap_err();
    assert!(matches!(err, EffectsError::Transport { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "server-side apply of Service {NS}/{APP} failed: ServiceError: connection reset by peer"
        )
    );
    assert_eq!(api.take().len(), 5);
    assert!(calls.all().iter().all(|(_, _, code)| code.is_none()));
}

#[tokio::test]
async fn a_conflict_is_retried() {
    let api = MockApi::start(fail_first(2, "/services/", 409, "Conflict"));
    let (effects, _) = new_effects(&api);
    effects
        .execute(&app(), &service_plan(), &NoIndex)
        .await
        .unwrap();
    assert_eq!(api.take().len(), 3);
}

#[tokio::test]
async fn too_many_requests_gives_up_after_exactly_five_attempts() {
    let api = MockApi::start(fail_first(u32::MAX, "/services/", 429, "TooManyRequests"));
    let (effects, calls) = new_effects(&api);
    let err = effects
        .execute(&app(), &service_plan(), &NoIndex)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            EffectsError::Api {
                verb: Verb::Apply,
                status: 429,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(api.take().len(), 5);
    assert_eq!(calls.all().len(), 5);
    assert_eq!(
        err.to_string(),
        format!(
            "server-side apply of Service {NS}/{APP} failed: 429 Too Many Requests: try again later"
        )
    );
}

#[tokio::test]
async fn the_attempt_count_follows_the_policy() {
    let api = MockApi::start(fail_first(
        u32::MAX,
        "/services/",
        503,
        "ServiceUnavailable",
    ));
    let (effects, _) = new_effects(&api);
    let effects = effects.with_retry(RetryPolicy::immediate(2));
    let err = effects
        .execute(&app(), &service_plan(), &NoIndex)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert_eq!(api.take().len(), 2);
}

#[tokio::test]
async fn forbidden_fails_at_once_and_stops_the_plan() {
    let api = MockApi::start(|r| {
        r.path.contains("/services/").then(|| {
            Reply::Json(
                403,
                status(
                    403,
                    "Forbidden",
                    "services \"test-review-app-678\" is forbidden: User \"system:serviceaccount:ops:rao\" cannot patch resource \"services\"",
                ),
            )
        })
    });
    let (effects, _) = new_effects(&api);
    let app = app();
    let (_, plan) = pipeline(&app, AppEvent::Add);
    let err = effects
        .execute(&app, &plan, &MapIndex::all(Lookup::Absent))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with(&format!(
            "server-side apply of Service {NS}/{APP} failed: 403 Forbidden: services"
        )),
        "{message}"
    );
    assert_eq!(err.object().to_string(), format!("Service {NS}/{APP}"));
    let lines = api.lines();
    // Finalizer, Job, db-copy Secret, TLS source, TLS copy, database, Service (once): nothing after.
    assert_eq!(lines.len(), 7, "{lines:#?}");
    assert!(lines[6].contains("/services/"));
    assert_quiet(&api).await;
}

#[tokio::test]
async fn a_failed_finalizer_test_is_a_conflict_and_not_retried() {
    let api = MockApi::start(|r| {
        (r.content_type == JSON_PATCH).then(|| {
            Reply::Json(
                422,
                status(
                    422,
                    "",
                    "the server rejected our request due to an error in our request",
                ),
            )
        })
    });
    let (effects, _) = new_effects(&api);
    let app = deleted_app();
    let plan = Plan {
        actions: vec![Action::RemoveFinalizer],
    };
    let err = effects.execute(&app, &plan, &NoIndex).await.unwrap_err();
    assert!(matches!(err, EffectsError::Conflict { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with("ReviewApp test changed"),
        "{err}"
    );
    assert_eq!(api.take().len(), 1);
}

#[tokio::test]
async fn removing_the_finalizer_of_a_vanished_app_is_done() {
    let api = MockApi::start(|r| {
        (r.content_type == JSON_PATCH).then(|| {
            Reply::Json(
                404,
                status(404, "NotFound", "reviewapps \"test\" not found"),
            )
        })
    });
    let (effects, _) = new_effects(&api);
    let plan = Plan {
        actions: vec![Action::RemoveFinalizer],
    };
    let report = effects
        .execute(&deleted_app(), &plan, &NoIndex)
        .await
        .unwrap();
    assert_eq!(report.writes, 1);
    assert_eq!(api.take().len(), 1);
}

#[tokio::test]
async fn a_failed_event_is_counted_and_never_fails_the_plan() {
    let api = MockApi::start(|r| {
        r.path.contains("/events").then(|| {
            Reply::Json(
                403,
                status(403, "Forbidden", "events.events.k8s.io is forbidden"),
            )
        })
    });
    let (effects, _) = new_effects(&api);
    let app = app();
    let (_, plan) = pipeline(&app, AppEvent::Add);
    let report = effects
        .execute(&app, &plan, &MapIndex::all(Lookup::Absent))
        .await
        .unwrap();
    assert_eq!((report.writes, report.events_failed), (8, 1));
    assert_eq!(api.take().len(), 10, "403 is not retried");
}

#[tokio::test]
async fn a_missing_source_secret_is_named() {
    let api = MockApi::start(|r| {
        (r.method == "GET").then(|| {
            Reply::Json(
                404,
                status(
                    404,
                    "NotFound",
                    "secrets \"star-review-local-tls\" not found",
                ),
            )
        })
    });
    let (effects, _) = new_effects(&api);
    let err = effects
        .execute(&app(), &tls_plan(), &NoIndex)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, EffectsError::MissingSource { namespace, name }
            if namespace == "default" && name == "star-review-local-tls"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("source Secret default/star-review-local-tls not found"),
        "{err}"
    );
    assert_eq!(err.status(), Some(404));
    let lines = api.lines();
    assert_eq!(
        lines,
        vec!["GET /api/v1/namespaces/default/secrets/star-review-local-tls"]
    );
}

/// A renewed source certificate changes the copy's hash: it is applied again.
#[tokio::test]
async fn a_renewed_certificate_is_copied_again() {
    let renewed = Arc::new(AtomicBool::new(false));
    let flag = renewed.clone();
    let api = MockApi::start(move |r| {
        (r.method == "GET" && flag.load(Ordering::SeqCst)).then(|| {
            let mut secret = tls_source();
            secret["data"]["tls.crt"] = json!(base64(b"renewed certificate"));
            Reply::Json(200, secret)
        })
    });
    let (effects, _) = new_effects(&api);
    let app = app();
    let plan = tls_plan();
    effects.execute(&app, &plan, &NoIndex).await.unwrap();
    let index = MapIndex::from_responses(&api.take(), Lookup::Absent);

    let report = effects.execute(&app, &plan, &index).await.unwrap();
    assert_eq!((report.writes, report.skipped), (0, 1));
    assert_eq!(api.take().len(), 1, "only the GET of the source");

    renewed.store(true, Ordering::SeqCst);
    let report = effects.execute(&app, &plan, &index).await.unwrap();
    assert_eq!((report.writes, report.skipped), (1, 0));
    let requests = api.take();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[1].body["data"]["tls.crt"],
        json!(base64(b"renewed certificate"))
    );
}

/// A source Secret the watch cache holds is copied without reading it from the API.
#[tokio::test]
async fn a_cached_source_secret_is_copied_without_a_get() {
    let api = MockApi::start(|_| None);
    let (effects, _) = new_effects(&api);
    let mut cached: Secret = serde_json::from_value(tls_source()).unwrap();
    cached.data.as_mut().unwrap().insert(
        "tls.crt".into(),
        k8s_openapi::ByteString(b"cached certificate".to_vec()),
    );
    let mut index = MapIndex::all(Lookup::Absent);
    index.secret = SecretLookup::Found(Arc::new(cached));
    let report = effects.execute(&app(), &tls_plan(), &index).await.unwrap();
    assert_eq!(report.writes, 1);
    let requests = api.take();
    assert_eq!(requests.len(), 1, "the apply only");
    assert_eq!(requests[0].method, "PATCH");
    assert_eq!(
        requests[0].body["data"]["tls.crt"],
        json!(base64(b"cached certificate"))
    );
    assert_eq!(requests[0].body["type"], json!("kubernetes.io/tls"));
}

/// A source Secret the synced cache knows to be absent fails the copy at once, with no request.
#[tokio::test]
async fn a_source_secret_absent_from_the_cache_is_named_without_a_request() {
    let api = MockApi::start(|_| None);
    let (effects, _) = new_effects(&api);
    let mut index = MapIndex::all(Lookup::Absent);
    index.secret = SecretLookup::Absent;
    let err = effects
        .execute(&app(), &tls_plan(), &index)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, EffectsError::MissingSource { name, .. } if name == "star-review-local-tls"),
        "{err:?}"
    );
    assert!(api.take().is_empty());
}

#[test]
fn a_found_secret_debug_prints_no_data() {
    let secret: Secret = serde_json::from_value(tls_source()).unwrap();
    let shown = format!("{:?}", SecretLookup::Found(Arc::new(secret)));
    assert!(shown.contains("star-review-local-tls"), "{shown}");
    assert!(!shown.contains(&base64(CERT.as_bytes())), "{shown}");
    assert!(!shown.contains("data"), "{shown}");
}
