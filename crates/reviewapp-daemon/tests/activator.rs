//! The activator end to end: the daemon's `run` against the API emulator, as a standby replica
//! (another holds the Lease, so the operator's reconcile never runs and the apps keep the
//! status the test gives them, as the operator would write it), answering raw HTTP requests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::CustomResourceExt;
use reviewapp_api::annotations::WAKE_REQUESTED_AT;
use reviewapp_api::{OperatorConfig, ReviewApp};
use reviewapp_daemon::{ActivatorOptions, DaemonOptions, LeaderOptions};
use reviewapp_testkit::{ACTOR_HEADER, Emulator, Handle, Outage};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const OPS_NS: &str = "review-app-operator";
const REVIEWAPPS: &str = "/apis/reviewtron.k8s.revelry.co/v1/reviewapps";
/// How long a test waits for something that happens in the background.
const WAIT: Duration = Duration::from_secs(15);

struct Replica {
    _emulator: Emulator,
    handle: Handle,
    activator: SocketAddr,
    health: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    daemon: tokio::task::JoinHandle<Result<(), reviewapp_daemon::DaemonError>>,
}

fn client(emulator: &Emulator) -> kube::Client {
    let mut config = kube::Config::new(emulator.url().parse().unwrap());
    config.headers.push((
        http::HeaderName::from_static(ACTOR_HEADER),
        http::HeaderValue::from_static("operator"),
    ));
    kube::Client::try_from(config).unwrap()
}

/// The daemon's `run`, with leader election (as `identity`) and the activator on free ports.
struct Daemon {
    activator: ActivatorOptions,
    health: tokio::sync::oneshot::Receiver<SocketAddr>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), reviewapp_daemon::DaemonError>>,
}

impl Daemon {
    fn start(emulator: &Emulator, identity: &str) -> Daemon {
        let activator = ActivatorOptions::new("127.0.0.1:0".parse().unwrap());
        let options = DaemonOptions {
            concurrency: 2,
            listen: "127.0.0.1:0".parse().unwrap(),
            leader: Some(LeaderOptions::new("review-app-operator", OPS_NS, identity)),
            shutdown_grace: Duration::from_secs(1),
            controller_name: "review-app-operator".into(),
            instance: Some(identity.into()),
            listener: None,
            activator: Some(activator.clone()),
        };
        let (health_tx, health) = tokio::sync::oneshot::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(reviewapp_daemon::run(
            client(emulator),
            Arc::new(OperatorConfig::default()),
            options,
            async move {
                let _ = stopped.await;
            },
            move |addr| {
                let _ = health_tx.send(addr);
            },
        ));
        Daemon {
            activator,
            health,
            stop,
            task,
        }
    }
}

/// The activator's address, once it listens.
async fn bound(activator: &ActivatorOptions) -> SocketAddr {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(addr) = activator.bound.get() {
            return *addr;
        }
        assert!(tokio::time::Instant::now() < deadline, "never listened");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn review_app(name: &str, app_status: &str, url: &str) -> Value {
    json!({
        "apiVersion": "reviewtron.k8s.revelry.co/v1", "kind": "ReviewApp",
        "metadata": {"name": name},
        "spec": {
            "repoOwner": "revelrylabs", "repo": name, "branch": "main", "pr": "1",
            "commitHash": "c8c9aa334a76677aa0be4ec0ebb08484367f952d",
            "tarballUrl": "https://example.com/source.tar.gz",
            "config": {"namespace": "apps"}
        },
        "status": {"appStatus": app_status, "url": url}
    })
}

/// An emulator with the CRD, a Lease held by another replica for an hour, and the daemon
/// running as a standby with its activator on a free port.
async fn standby() -> Replica {
    let emulator = Emulator::start().await.unwrap();
    let handle = emulator.handle();
    handle
        .create(serde_json::to_value(ReviewApp::crd()).unwrap())
        .unwrap();
    handle
        .create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPS_NS}}))
        .unwrap();
    let now = Timestamp::now().to_string();
    handle
        .create(json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "review-app-operator", "namespace": OPS_NS},
            "spec": {"holderIdentity": "the-leader", "leaseDurationSeconds": 3600,
                     "acquireTime": now, "renewTime": now}
        }))
        .unwrap();
    let daemon = Daemon::start(&emulator, "the-standby");
    let health = daemon.health.await.unwrap();
    let activator = bound(&daemon.activator).await;
    let (stop, daemon) = (daemon.stop, daemon.task);
    Replica {
        _emulator: emulator,
        handle,
        activator,
        health,
        stop,
        daemon,
    }
}

/// Sends one request with these raw header lines; returns the status code and the response.
async fn send(addr: SocketAddr, method: &str, headers: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("{method} /some/path?q=1 HTTP/1.1\r\n{headers}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    (code, response)
}

async fn get(addr: SocketAddr, host: &str) -> (u16, String) {
    send(addr, "GET", &format!("Host: {host}\r\n")).await
}

/// Waits until `condition` holds, or fails naming `what`.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the activator's view has loaded (an unknown host is `404`, not "starting").
async fn loaded(replica: &Replica) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while get(replica.activator, "nobody.example.com").await.0 != 404 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the view never loaded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the activator's view shows `host` as a review app (waking page, not `404`).
async fn known(replica: &Replica, host: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while get(replica.activator, host).await.0 == 404 {
        assert!(tokio::time::Instant::now() < deadline, "{host} never known");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Writes to the `ReviewApp` `name` by the daemon's client (the activator's patches).
fn writes_to(handle: &Handle, name: &str) -> usize {
    let path = format!("{REVIEWAPPS}/{name}");
    handle.write_count_where(|r| r.actor.as_deref() == Some("operator") && r.path == path)
}

fn wake_annotation(handle: &Handle, name: &str) -> Option<String> {
    let app = handle.get(&format!("{REVIEWAPPS}/{name}"))?;
    app["metadata"]["annotations"][WAKE_REQUESTED_AT]
        .as_str()
        .map(str::to_string)
}

async fn metrics(replica: &Replica) -> String {
    let mut stream = tokio::net::TcpStream::connect(replica.health)
        .await
        .unwrap();
    let request = "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

fn counter(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

async fn stop(replica: Replica) {
    replica.stop.send(()).unwrap();
    tokio::time::timeout(WAIT, replica.daemon)
        .await
        .expect("shuts down")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_sleeping_apps_host_gets_the_waking_page_and_one_wake_request() {
    let replica = standby().await;
    let handle = &replica.handle;
    handle
        .create(review_app(
            "pr-1",
            "sleeping",
            "https://pr-1.review.example.com",
        ))
        .unwrap();
    loaded(&replica).await;
    known(&replica, "PR-1.review.example.com.:443").await;
    // `known` asked once already: a sleeping app's first request wrote the annotation.
    eventually("the wake annotation", || {
        wake_annotation(handle, "pr-1").is_some()
    })
    .await;
    let at: Timestamp = wake_annotation(handle, "pr-1").unwrap().parse().unwrap();
    assert_eq!(at.subsec_nanosecond(), 0, "whole seconds");
    assert!(
        Timestamp::now().duration_since(at).abs()
            < k8s_openapi::jiff::SignedDuration::from_secs(60)
    );
    let app = handle.get(&format!("{REVIEWAPPS}/pr-1")).unwrap();
    let managers: Vec<&str> = app["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(
        managers.contains(&"review-app-operator-activator"),
        "{managers:?}"
    );
    assert_eq!(
        app["status"]["appStatus"], "sleeping",
        "the status is not ours"
    );

    // Within the window: the page again, no second write.
    let (code, response) = get(replica.activator, "pr-1.review.example.com").await;
    assert_eq!(code, 503);
    assert!(response.to_ascii_lowercase().contains("retry-after: 5"));
    assert!(response.contains("Waking up this review app"), "{response}");
    assert!(response.contains(r#"http-equiv="refresh""#));
    let metrics = metrics(&replica).await;
    assert_eq!(
        counter(
            &metrics,
            r#"reviewapp_activator_requests_total{outcome="wake_requested"}"#
        ),
        1,
        "{metrics}"
    );
    assert!(
        counter(
            &metrics,
            r#"reviewapp_activator_requests_total{outcome="wake_pending"}"#
        ) >= 1,
        "{metrics}"
    );
    eventually("the write is counted", || writes_to(handle, "pr-1") >= 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(writes_to(handle, "pr-1"), 1, "one patch per window");
    assert!(
        metrics.contains("\nreviewapp_leader 0\n"),
        "a standby wrote it"
    );
    stop(replica).await;
}

/// A standby with one awake app, `pr-2`, that its view already shows.
async fn standby_with_an_awake_app() -> Replica {
    let replica = standby().await;
    replica
        .handle
        .create(review_app(
            "pr-2",
            "deployed",
            "https://pr-2.review.example.com",
        ))
        .unwrap();
    loaded(&replica).await;
    known(&replica, "pr-2.review.example.com").await;
    replica
}

#[tokio::test]
async fn an_awake_apps_host_gets_the_page_and_nothing_is_written() {
    let replica = standby_with_an_awake_app().await;
    // Its Ingress has not switched back yet: the page, no write, whatever the form of the host.
    for host in [
        "pr-2.review.example.com",
        "PR-2.REVIEW.EXAMPLE.COM",
        "pr-2.review.example.com.",
        "pr-2.review.example.com:8080",
    ] {
        let (code, response) = get(replica.activator, host).await;
        assert_eq!(code, 503, "{host}");
        assert!(response.contains("Waking up"), "{host}");
    }
    let (code, _) = send(
        replica.activator,
        "POST",
        "Host: pr-2.review.example.com\r\nContent-Length: 3\r\n\r\nabc",
    )
    .await;
    assert_eq!(code, 503, "any method");

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(writes_to(&replica.handle, "pr-2"), 0);
    assert!(wake_annotation(&replica.handle, "pr-2").is_none());
    let metrics = metrics(&replica).await;
    let awake = r#"reviewapp_activator_requests_total{outcome="awake"}"#;
    assert!(counter(&metrics, awake) >= 5, "{metrics}");
    let written = r#"reviewapp_activator_wakes_total{result="written"}"#;
    assert_eq!(counter(&metrics, written), 0);
    stop(replica).await;
}

#[tokio::test]
async fn unknown_missing_and_garbage_hosts_get_404_or_400_and_nothing_is_written() {
    let replica = standby_with_an_awake_app().await;
    for host in [
        "pr-3.review.example.com",
        "review.example.com",
        "pr-2.review.example.com.evil.example",
    ] {
        assert_eq!(get(replica.activator, host).await.0, 404, "{host}");
    }
    assert_eq!(send(replica.activator, "GET", "").await.0, 400, "no Host");
    for host in [
        "[::1]:80",
        "a b",
        "a..b",
        "x:y",
        "<script>",
        "%41.example.com",
    ] {
        let (code, response) = get(replica.activator, host).await;
        assert!(matches!(code, 400 | 404), "{host}: {response}");
        assert!(
            !response.contains(host),
            "the answer quotes nothing: {response}"
        );
    }
    let (code, _) = send(replica.activator, "GET", "Host: \u{7f}\u{1}\r\n").await;
    assert!(matches!(code, 400 | 404));
    // Still serving.
    assert_eq!(
        get(replica.activator, "pr-2.review.example.com").await.0,
        503
    );

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(writes_to(&replica.handle, "pr-2"), 0);
    let metrics = metrics(&replica).await;
    let unknown = r#"reviewapp_activator_requests_total{outcome="unknown_host"}"#;
    assert!(counter(&metrics, unknown) >= 3, "{metrics}");
    let bad = r#"reviewapp_activator_requests_total{outcome="bad_host"}"#;
    assert!(counter(&metrics, bad) >= 1, "{metrics}");
    stop(replica).await;
}

#[tokio::test]
async fn it_answers_from_its_view_while_the_api_server_is_down() {
    let replica = standby().await;
    let handle = &replica.handle;
    handle
        .create(review_app(
            "pr-4",
            "sleeping",
            "https://pr-4.review.example.com",
        ))
        .unwrap();
    handle
        .create(review_app(
            "pr-5",
            "deployed",
            "https://pr-5.review.example.com",
        ))
        .unwrap();
    loaded(&replica).await;
    known(&replica, "pr-5.review.example.com").await;
    // pr-4 is known too (one list); it is asked for the first time during the outage.

    handle.start_outage(Outage::Refuse);
    let (code, response) = get(replica.activator, "pr-4.review.example.com").await;
    assert_eq!(code, 503);
    assert!(response.contains("Waking up"));
    assert_eq!(
        get(replica.activator, "pr-5.review.example.com").await.0,
        503
    );
    assert_eq!(get(replica.activator, "nobody.example.com").await.0, 404);
    let mut failed = 0;
    let deadline = tokio::time::Instant::now() + WAIT;
    while failed == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the failed write is counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        failed = counter(
            &metrics(&replica).await,
            r#"reviewapp_activator_wakes_total{result="failed"}"#,
        );
    }
    assert_eq!(failed, 1);
    handle.end_outage();

    // Back: after the window, the page's next reload writes it.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        get(replica.activator, "pr-4.review.example.com").await.0,
        503
    );
    eventually("the wake annotation after the outage", || {
        wake_annotation(handle, "pr-4").is_some()
    })
    .await;
    stop(replica).await;
}

#[tokio::test]
async fn before_its_view_has_loaded_it_asks_to_retry_and_writes_nothing() {
    let emulator = Emulator::start().await.unwrap();
    let handle = emulator.handle();
    handle.start_outage(Outage::Refuse);
    let daemon = Daemon::start(&emulator, "a");
    let addr = bound(&daemon.activator).await;
    let (code, response) = get(addr, "pr-1.review.example.com").await;
    assert_eq!(code, 503, "{response}");
    assert!(response.contains("activator is starting"), "{response}");
    assert!(response.to_ascii_lowercase().contains("retry-after: 5"));
    assert_eq!(
        send(addr, "GET", "").await.0,
        400,
        "a bad request is bad at once"
    );
    handle.end_outage();
    daemon.stop.send(()).unwrap();
    tokio::time::timeout(WAIT, daemon.task)
        .await
        .expect("shuts down")
        .unwrap()
        .unwrap();
    assert_eq!(handle.write_count(), 0);
}
