//! Fault injection and latency.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use reviewapp_testkit::{Emulator, RequestMatcher};

use crate::common::{code, config_map, start};

#[tokio::test]
async fn fail_next_reaches_the_client() {
    let (_emulator, client, handle) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "apps");
    api.create(&PostParams::default(), &config_map("a", &[], &[]))
        .await
        .unwrap();
    handle.fail_next(
        RequestMatcher::method("GET").path_contains("/configmaps/a"),
        1,
        500,
    );
    match api.get("a").await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(
                (status.code, status.reason.as_str()),
                (500, "InternalError")
            );
        }
        other => panic!("expected 500, got {other:?}"),
    }
    assert!(api.get("a").await.is_ok(), "one failure only");

    // kube's client retries 429 by itself: one 429 is invisible but logged.
    handle.clear_requests();
    handle.fail_next(RequestMatcher::any(), 1, 429);
    assert!(api.get("a").await.is_ok());
    let statuses: Vec<u16> = handle.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 200]);

    handle.fail_next(RequestMatcher::method("POST"), 2, 409);
    let err = api
        .create(&PostParams::default(), &config_map("b", &[], &[]))
        .await
        .unwrap_err();
    assert_eq!(code(&err), 409);
    handle.clear_faults();
    api.create(&PostParams::default(), &config_map("b", &[], &[]))
        .await
        .unwrap();
}

/// The status codes of 60 GETs under `fail_ratio(0.4, seed)`.
async fn run_with_ratio(seed: u64) -> Vec<u16> {
    let emulator = Emulator::start().await.unwrap();
    let handle = emulator.handle();
    let api: Api<ConfigMap> = Api::namespaced(emulator.client(), "apps");
    handle.fail_ratio(0.4, seed);
    for _ in 0..60 {
        let _ = api.get("missing").await;
    }
    handle.fail_ratio(0.0, 0);
    assert_eq!(
        code(&api.get("missing").await.unwrap_err()),
        404,
        "off again"
    );
    let mut statuses: Vec<u16> = handle.requests().iter().map(|r| r.status).collect();
    statuses.pop();
    statuses
}

#[tokio::test]
async fn fail_ratio_is_deterministic() {
    let first = run_with_ratio(7).await;
    assert_eq!(first, run_with_ratio(7).await);
    assert_ne!(first, run_with_ratio(8).await);
    for code in [404, 500, 429, 409] {
        assert!(first.contains(&code), "{code} in {first:?}");
    }
}

#[tokio::test]
async fn latency_delays_every_request() {
    let (_emulator, client, handle) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "apps");
    handle.set_latency(Duration::from_millis(150));
    let started = Instant::now();
    let _ = api.get("a").await;
    assert!(started.elapsed() >= Duration::from_millis(150));
    handle.set_latency(Duration::ZERO);
}

#[tokio::test]
async fn faults_can_target_one_actor() {
    let (emulator, client, handle) = start().await;
    let mut config = kube::Config::new(emulator.url().parse().unwrap());
    config.headers.push((
        http::HeaderName::from_static(reviewapp_testkit::ACTOR_HEADER),
        http::HeaderValue::from_static("operator"),
    ));
    let operator = kube::Client::try_from(config).unwrap();
    let theirs: Api<ConfigMap> = Api::namespaced(operator, "apps");
    let ours: Api<ConfigMap> = Api::namespaced(client, "apps");
    handle.fail_next_where(1, 500, |r| r.actor.as_deref() == Some("operator"));
    assert_eq!(code(&ours.get("x").await.unwrap_err()), 404);
    assert_eq!(code(&theirs.get("x").await.unwrap_err()), 500);
    assert_eq!(code(&theirs.get("x").await.unwrap_err()), 404);
    handle.fail_ratio_where(1.0, 3, |r| r.actor.is_some());
    assert_eq!(code(&ours.get("x").await.unwrap_err()), 404);
    assert_ne!(code(&theirs.get("x").await.unwrap_err()), 404);
    handle.fail_ratio(0.0, 0);
    let actors: Vec<Option<String>> = handle.requests().into_iter().map(|r| r.actor).collect();
    assert_eq!(actors[0], None);
    assert_eq!(actors[1].as_deref(), Some("operator"));
}
