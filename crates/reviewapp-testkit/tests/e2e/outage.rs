//! Outages: the whole API server unreachable for a while, as a stopped server (connections
//! refused, open ones reset) or a partition (requests hang, then are reset), watches included.

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use reviewapp_testkit::Outage;

use crate::common::{config_map, next, start};

/// A fresh client (no pooled connection), so that a request's fate depends only on the server.
fn fresh_client(url: &str) -> kube::Client {
    kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap()
}

/// ConfigMap `a` in `apps`, and a watch of `apps` that has delivered it.
async fn watching(
    client: kube::Client,
) -> (
    Api<ConfigMap>,
    futures::stream::BoxStream<'static, Result<WatchEvent<ConfigMap>, kube::Error>>,
) {
    let api: Api<ConfigMap> = Api::namespaced(client, "apps");
    api.create(&PostParams::default(), &config_map("a", &[], &[]))
        .await
        .unwrap();
    let mut watch = api
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    assert!(matches!(
        next(&mut watch).await.unwrap(),
        WatchEvent::Added(_)
    ));
    (api, watch)
}

#[tokio::test]
async fn a_refusing_outage_refuses_connections_resets_watches_and_ends() {
    let (emulator, client, handle) = start().await;
    let (api, mut watch) = watching(client).await;

    handle.start_outage(Outage::Refuse);
    assert_eq!(handle.outage(), Some(Outage::Refuse));
    let before = handle.requests().len();

    // The open watch ends with an error or an end of stream, promptly.
    let ended = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("the watch ends within 5 s");
    assert!(
        !matches!(ended, Some(Ok(_))),
        "no event after the outage began: {ended:?}"
    );
    // New connections are refused.
    let refused = tokio::net::TcpStream::connect(emulator.addr()).await;
    assert_eq!(
        refused.map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::ConnectionRefused
    );
    // Requests fail, on a pooled connection as on a new one, and reach nothing.
    assert!(api.get("a").await.is_err());
    let fresh: Api<ConfigMap> = Api::namespaced(fresh_client(&emulator.url()), "apps");
    let err = fresh.get("a").await.unwrap_err();
    assert!(
        !matches!(err, kube::Error::Api(_)),
        "no answer at all: {err:?}"
    );
    // The world goes on through the handle.
    handle
        .apply(serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "b", "namespace": "apps"}}))
        .unwrap();
    assert_eq!(handle.requests().len(), before, "nothing was received");

    handle.end_outage();
    assert_eq!(handle.outage(), None);
    let got = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(cm) = api.get("b").await {
                return cm;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("served again on the same address");
    assert_eq!(got.metadata.name.as_deref(), Some("b"));
}

#[tokio::test]
async fn a_hanging_outage_holds_requests_and_never_serves_them() {
    let (emulator, client, handle) = start().await;
    let (api, mut watch) = watching(client).await;

    handle.start_outage(Outage::Hang);
    handle.clear_requests();
    // A create sent now hangs: no answer within 300 ms.
    let fresh: Api<ConfigMap> = Api::namespaced(fresh_client(&emulator.url()), "apps");
    let hung = tokio::spawn(async move {
        fresh
            .create(&PostParams::default(), &config_map("hung", &[], &[]))
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!hung.is_finished(), "the request hangs");
    // The watch sees nothing, not even what the handle writes meanwhile.
    handle
        .apply(serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "b", "namespace": "apps"}}))
        .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), watch.next())
            .await
            .is_err(),
        "the watch hangs"
    );

    handle.end_outage();
    // The hung request and the watch are reset, not served late.
    let result = tokio::time::timeout(Duration::from_secs(5), hung)
        .await
        .expect("the hung request ends with the outage")
        .unwrap();
    assert!(
        matches!(&result, Err(e) if !matches!(e, kube::Error::Api(_))),
        "{result:?}"
    );
    let ended = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("the watch ends with the outage");
    assert!(
        !matches!(ended, Some(Ok(WatchEvent::Added(_)))),
        "{ended:?}"
    );
    assert!(
        handle
            .get("/api/v1/namespaces/apps/configmaps/hung")
            .is_none()
    );
    assert!(
        handle.requests().is_empty(),
        "nothing sent in the outage was received"
    );
    assert!(api.get("b").await.is_ok(), "served again");
}

#[tokio::test]
async fn requests_carry_the_time_they_were_received() {
    let (_emulator, client, handle) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "apps");
    let before = Instant::now();
    let _ = api.get("x").await;
    let middle = Instant::now();
    let _ = api.get("y").await;
    let after = Instant::now();
    let log = handle.requests();
    assert_eq!(log.len(), 2);
    assert!(before <= log[0].received && log[0].received <= middle);
    assert!(middle <= log[1].received && log[1].received <= after);
}
