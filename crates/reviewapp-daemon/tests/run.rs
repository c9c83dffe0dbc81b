//! The daemon's plumbing: probes and metrics are served at once, readiness waits for the
//! watches, and shutdown returns promptly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::FakeApi;
use reviewapp_api::OperatorConfig;
use reviewapp_daemon::DaemonOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let code = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, response)
}

#[tokio::test]
async fn probes_metrics_and_graceful_shutdown() {
    // The fake answers no list or watch, so the watches never sync: the daemon is alive but
    // not ready, and must still shut down cleanly.
    let (client, _fake) = FakeApi::client();
    let options = DaemonOptions {
        concurrency: 2,
        listen: "127.0.0.1:0".parse().unwrap(),
        leader: None,
        shutdown_grace: Duration::from_secs(1),
        controller_name: "review-app-operator".into(),
        instance: Some("test".into()),
        listener: None,
        activator: None,
    };
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(reviewapp_daemon::run(
        client,
        Arc::new(OperatorConfig::default()),
        options,
        async move {
            let _ = stop_rx.await;
        },
        move |addr| {
            let _ = addr_tx.send(addr);
        },
    ));
    let addr = addr_rx.await.unwrap();

    assert_eq!(get(addr, "/healthz").await.0, 200);
    let (code, body) = get(addr, "/readyz").await;
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("not ready (leader)"),
        "the only replica leads: {body}"
    );
    let (code, body) = get(addr, "/metrics").await;
    assert_eq!(code, 200);
    assert!(body.contains("application/openmetrics-text"), "{body}");
    assert!(body.contains("\nreviewapp_leader 1\n"), "{body}");
    assert!(
        body.contains("# TYPE reviewapp_builds_started counter"),
        "{body}"
    );
    assert_eq!(get(addr, "/nope").await.0, 404);

    stop_tx.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(5), daemon)
        .await
        .expect("shuts down promptly");
    result.unwrap().unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the port is released"
    );
}
