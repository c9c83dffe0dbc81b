//! Cost control on the emulator: expiry on time (a deadline timer, not the reconcile tick: these
//! worlds reconcile once an hour), keep and `expires-at`, a new commit after expiry, sleep
//! (automatic and by annotation), wake (by annotation and by the activator's
//! `wake-requested-at`), the Ingress switch to the activator and back once the Deployment is
//! available, the awake-app cap, restarts mid-sleep and mid-expiry, and bad durations and
//! timestamps.

use std::sync::Arc;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use reviewapp_api::annotations::{EXPIRES_AT, KEEP, SLEEP, WAKE_REQUESTED_AT};
use reviewapp_api::{OperatorConfig, ReviewApp};
use serde_json::{Value, json};

use crate::world::{APP_NS, World, eventually};
use crate::{IMG1, IMG2, JOB1, JOB2, SHA1, SHA2, deployment_runs, has_status};

const APP: &str = "test-review-app-678";
const ROUTE: &str = "test-review-app-678--activator";

/// An emulated world whose operator reconciles once an hour, with `lifecycle` settings.
async fn world(edit: impl FnOnce(&mut OperatorConfig)) -> World {
    let mut world = World::emulated().await;
    let mut config = (*world.config).clone();
    config.reconcile_interval_seconds = 3600;
    edit(&mut config);
    world.config = Arc::new(config);
    world
}

/// Starts the operator, creates the sample app and deploys its first commit.
async fn deployed(w: &mut World) {
    w.start().await;
    deploy_sample(w).await;
}

/// Creates the sample app and deploys its first commit (the operator runs).
async fn deploy_sample(w: &mut World) {
    w.apply_app(w.sample("test", "678", SHA1)).await;
    eventually("the build Job", || async {
        w.jobs().get_opt(JOB1).await.unwrap().is_some()
    })
    .await;
    w.finish_job(JOB1, true).await;
    eventually("deployed", || has_status(w, "test", "deployed", "success")).await;
}

async fn annotate(w: &World, key: &str, value: Option<&str>) {
    w.apps()
        .patch(
            "test",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {key: value}}})),
        )
        .await
        .expect("annotate");
}

fn rfc3339_in(seconds: i64) -> String {
    k8s_openapi::jiff::Timestamp::now()
        .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(seconds))
        .unwrap()
        .round(k8s_openapi::jiff::Unit::Second)
        .unwrap()
        .to_string()
}

async fn app_status(w: &World) -> String {
    w.app("test")
        .await
        .and_then(|a: ReviewApp| a.status)
        .and_then(|s| s.app_status)
        .map(|s| s.as_str().to_string())
        .unwrap_or_default()
}

async fn get(w: &World, plural: &str, kind: &str, group: &str, name: &str) -> Option<Value> {
    let gvk = kube::api::GroupVersionKind::gvk(group, "v1", kind);
    let resource = kube::api::ApiResource::from_gvk_with_plural(&gvk, plural);
    let api: Api<DynamicObject> = Api::namespaced_with(w.client.clone(), APP_NS, &resource);
    api.get_opt(name)
        .await
        .unwrap()
        .map(|o| serde_json::to_value(o).unwrap())
}

/// The Service the Ingress sends requests to.
async fn ingress_backend(w: &World) -> String {
    get(w, "ingresses", "Ingress", "networking.k8s.io", APP)
        .await
        .and_then(|i| {
            i["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"]
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_default()
}

async fn route_exists(w: &World) -> bool {
    get(w, "services", "Service", "", ROUTE).await.is_some()
}

async fn events(w: &World, reason: &str) -> usize {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::all(w.client.clone());
    api.list(&Default::default())
        .await
        .map(|list| {
            list.items
                .iter()
                .filter(|e| e.reason.as_deref() == Some(reason))
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_fires_on_time_survives_a_restart_and_a_new_commit_brings_the_app_back_on_emulator()
{
    let mut w = world(|c| c.lifecycle.expire_after = "4s".into()).await;
    deployed(&mut w).await;
    let status = w.app("test").await.unwrap().status.unwrap();
    assert!(status.expires_at.is_some(), "the deadline is shown");
    w.restart().await; // mid-expiry: the deadline comes from the status
    eventually("expired", || async { app_status(&w).await == "expired" }).await;
    let app = w.app("test").await.unwrap();
    assert!(
        app.metadata
            .finalizers
            .unwrap_or_default()
            .contains(&reviewapp_api::FINALIZER.to_string()),
        "the ReviewApp stays, with its finalizer"
    );
    eventually("every child and build Job is gone", || async {
        w.children("test").await.is_empty()
    })
    .await;
    eventually("a Normal Expired Event", || async {
        events(&w, "Expired").await == 1
    })
    .await;

    w.push("test", SHA2).await;
    eventually("a fresh build for the new commit", || async {
        w.jobs().get_opt(JOB2).await.unwrap().is_some()
    })
    .await;
    w.finish_job(JOB2, true).await;
    eventually("deployed again", || async {
        deployment_runs(&w, 1, IMG2).await && has_status(&w, "test", "deployed", "success").await
    })
    .await;

    // An explicit deadline in the past expires it at once; `keep` brings it back.
    annotate(&w, EXPIRES_AT, Some(&rfc3339_in(-60))).await;
    eventually("expired by expires-at", || async {
        app_status(&w).await == "expired"
    })
    .await;
    annotate(&w, KEEP, Some("true")).await;
    eventually("kept: building again", || async {
        app_status(&w).await == "building"
    })
    .await;
    let status = w.app("test").await.unwrap().status.unwrap();
    assert_eq!(status.expires_at, None, "a kept app never expires");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_expires_at_extends_and_shortens_the_deadline_on_emulator() {
    let mut w = world(|c| c.lifecycle.expire_after = "1h".into()).await;
    deployed(&mut w).await;
    let at = rfc3339_in(3);
    annotate(&w, EXPIRES_AT, Some(&at)).await;
    eventually("the status shows the explicit deadline", || async {
        w.app("test")
            .await
            .and_then(|a| a.status)
            .and_then(|s| s.expires_at)
            .is_some_and(|t| t.0.to_string() == at)
    })
    .await;
    assert_eq!(app_status(&w).await, "deployed");
    eventually("expired at the explicit deadline", || async {
        app_status(&w).await == "expired"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sleep_wake_and_the_ingress_switch_on_emulator() {
    let mut w = world(|_| {}).await;
    deployed(&mut w).await;
    assert_eq!(ingress_backend(&w).await, APP);
    assert!(!route_exists(&w).await);

    annotate(&w, SLEEP, Some("true")).await;
    eventually("sleeping at 0 replicas", || async {
        app_status(&w).await == "sleeping" && deployment_runs(&w, 0, IMG1).await
    })
    .await;
    eventually("the Ingress sends requests to the activator", || async {
        ingress_backend(&w).await == ROUTE
    })
    .await;
    let route = get(&w, "services", "Service", "", ROUTE).await.unwrap();
    assert_eq!(route["spec"]["type"], "ExternalName");
    assert_eq!(
        route["spec"]["externalName"],
        "review-app-operator-activator.review-app-operator.svc.cluster.local"
    );
    let db = get(
        &w,
        "postgreses",
        "Postgres",
        "kubedb.com",
        "test-review-app-678--db",
    )
    .await
    .unwrap();
    assert_eq!(db["spec"]["halted"], true, "the database sleeps too");

    // Mid-sleep restart: nothing changes, nothing is written.
    w.restart().await;
    eventually("still sleeping after the restart", || async {
        app_status(&w).await == "sleeping"
    })
    .await;

    wake_by_request_and_switch_back(&w).await;

    // The sleep annotation acts when it changes from what the status recorded: "false" wakes a
    // sleeping app.
    annotate(&w, SLEEP, Some("false")).await;
    eventually("the operator saw \"false\"", || async {
        w.app("test").await.and_then(|a| a.status).is_some_and(|s| {
            s.lifecycle_annotations.get(SLEEP).map(String::as_str) == Some("false")
        })
    })
    .await;
    annotate(&w, SLEEP, Some("true")).await;
    eventually("asleep again", || async {
        app_status(&w).await == "sleeping"
    })
    .await;
    annotate(&w, SLEEP, Some("false")).await;
    eventually("awake again", || async {
        app_status(&w).await == "deployed" && deployment_runs(&w, 1, IMG1).await
    })
    .await;
}

/// The whole path of a request, with nothing played by the test but the Deployment controller:
/// a request with the sleeping app's Host reaches the activator the operator serves, which
/// answers the waking page and records the wake; the operator wakes the app and, once its
/// Deployment is available, sends the Ingress back to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_to_the_activator_wakes_the_app_on_emulator() {
    let mut w = world(|_| {}).await;
    let activator = w.start_with_activator().await;
    deploy_sample(&mut w).await;
    let url = w.app("test").await.unwrap().status.unwrap().url.unwrap();
    let host = url
        .split_once("://")
        .map_or(url.as_str(), |(_, rest)| rest)
        .trim_end_matches('/')
        .to_string();

    annotate(&w, SLEEP, Some("true")).await;
    eventually("asleep, the Ingress on the activator", || async {
        app_status(&w).await == "sleeping" && ingress_backend(&w).await == ROUTE
    })
    .await;
    // The activator records the wake in whole seconds: a request in the second the app fell
    // asleep would not be newer than the sleep.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;

    let answer = request(activator, &host).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 5"),
        "{answer}"
    );
    eventually("woken by the request: scaled up", || async {
        app_status(&w).await == "deployed" && deployment_runs(&w, 1, IMG1).await
    })
    .await;
    assert!(
        w.app("test")
            .await
            .unwrap()
            .metadata
            .annotations
            .unwrap()
            .contains_key(WAKE_REQUESTED_AT),
        "the activator recorded the request"
    );
    assert_eq!(ingress_backend(&w).await, ROUTE, "until it is available");
    w.emulator
        .clone()
        .unwrap()
        .set_deployment_available(APP_NS, APP)
        .unwrap();
    eventually("the Ingress is back on the app", || async {
        ingress_backend(&w).await == APP
    })
    .await;
    let unknown = request(activator, "nobody.review.local").await;
    assert!(unknown.starts_with("HTTP/1.1 404"), "{unknown}");
}

/// One HTTP/1.1 GET of `/` with `Host: host` to `addr`: the whole answer.
async fn request(addr: std::net::SocketAddr, host: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_app_goes_to_sleep_by_itself_unless_kept_on_emulator() {
    let mut w = world(|c| c.lifecycle.sleep_after = "3s".into()).await;
    deployed(&mut w).await;
    let status = w.app("test").await.unwrap().status.unwrap();
    assert!(
        status.sleeps_at.is_some(),
        "the status shows when it sleeps"
    );
    eventually("asleep after sleepAfter", || async {
        app_status(&w).await == "sleeping"
    })
    .await;
    assert_eq!(events(&w, "Sleeping").await, 1);
    annotate(&w, KEEP, Some("true")).await;
    annotate(&w, WAKE_REQUESTED_AT, Some(&rfc3339_in(1))).await;
    eventually("woken by the request", || async {
        app_status(&w).await == "deployed"
    })
    .await;
    let status = w.app("test").await.unwrap().status.unwrap();
    assert_eq!(status.sleeps_at, None, "a kept app never sleeps by itself");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cap_puts_the_app_idle_longest_to_sleep_on_emulator() {
    let mut w = world(|c| c.lifecycle.max_awake_apps = 1).await;
    deployed(&mut w).await;
    let mut other = w.sample("other", "679", SHA1);
    other["spec"]["config"]["namespace"] = json!(APP_NS);
    w.apply_app(other).await;
    let job = "test-review-app-679--c8c9aa334a";
    eventually("the other app's build Job", || async {
        w.jobs().get_opt(job).await.unwrap().is_some()
    })
    .await;
    // Activity is counted in whole seconds: the second app's deploy is the newer.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    w.finish_job(job, true).await;
    eventually("the first app sleeps for the cap", || async {
        app_status(&w).await == "sleeping"
    })
    .await;
    assert_eq!(events(&w, "SleptForCap").await, 1);
    let other = w.app("other").await.unwrap().status.unwrap();
    assert_eq!(other.app_status.map(|s| s.as_str()), Some("deployed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_durations_and_timestamps_are_invalid_naming_the_field_on_emulator() {
    let mut w = world(|_| {}).await;
    deployed(&mut w).await;
    annotate(&w, EXPIRES_AT, Some("next tuesday")).await;
    eventually("Invalid names the annotation", || {
        invalid(
            &w,
            "metadata.annotations[reviewtron.k8s.revelry.co/expires-at]",
        )
    })
    .await;
    assert!(deployment_runs(&w, 1, IMG1).await, "nothing else changed");
    annotate(&w, EXPIRES_AT, None).await;
    w.apps()
        .patch(
            "test",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"config": {"sleepAfter": "a while"}}})),
        )
        .await
        .unwrap();
    eventually("Invalid names the field", || {
        invalid(&w, "spec.config.sleepAfter")
    })
    .await;
    assert_eq!(app_status(&w).await, "deployed");
}

/// Whether the app's `Invalid` condition is `True` and names `needle`.
async fn invalid(w: &World, needle: &str) -> bool {
    w.app("test").await.is_some_and(|a| {
        a.status
            .and_then(|s| s.condition("Invalid").cloned())
            .is_some_and(|c| c.status == "True" && c.message.contains(needle))
    })
}

/// The activator's request wakes the sleeping app: it scales up with its database running, the
/// Ingress stays on the activator until the Deployment is available, then switches back.
async fn wake_by_request_and_switch_back(w: &World) {
    // The activator's request: it wakes, the Ingress waits for the Deployment.
    annotate(w, WAKE_REQUESTED_AT, Some(&rfc3339_in(1))).await;
    eventually("woken: scaled up, database running", || async {
        app_status(w).await == "deployed" && deployment_runs(w, 1, IMG1).await
    })
    .await;
    let db = get(
        w,
        "postgreses",
        "Postgres",
        "kubedb.com",
        "test-review-app-678--db",
    )
    .await
    .unwrap();
    assert!(
        db["spec"].get("halted").is_none(),
        "the database runs again"
    );
    assert_eq!(
        ingress_backend(w).await,
        ROUTE,
        "the activator answers until the app is available"
    );
    assert!(
        w.app("test")
            .await
            .unwrap()
            .status
            .unwrap()
            .waking_since
            .is_some()
    );
    let emulator = w.emulator.clone().unwrap();
    emulator.set_deployment_available(APP_NS, APP).unwrap();
    eventually("the Ingress is back on the app", || async {
        ingress_backend(w).await == APP && !route_exists(w).await
    })
    .await;
    eventually("waking is over", || async {
        w.app("test")
            .await
            .unwrap()
            .status
            .unwrap()
            .waking_since
            .is_none()
    })
    .await;
}
