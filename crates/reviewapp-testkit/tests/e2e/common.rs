//! Helpers shared by the tests.

use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ApiResource, GroupVersionKind, ObjectMeta};
use reviewapp_testkit::{Emulator, Handle};
use serde_json::{Value, json};

/// A started emulator, its client and handle.
pub async fn start() -> (Emulator, kube::Client, Handle) {
    let emulator = Emulator::start().await.expect("emulator starts");
    let client = emulator.client();
    let handle = emulator.handle();
    (emulator, client, handle)
}

/// The cluster-scoped ReviewApp resource.
pub fn review_apps() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("reviewtron.k8s.revelry.co", "v1", "ReviewApp"),
        "reviewapps",
    )
}

/// A ReviewApp body.
pub fn review_app(name: &str, extra: Value) -> Value {
    let mut app = json!({
        "apiVersion": "reviewtron.k8s.revelry.co/v1",
        "kind": "ReviewApp",
        "metadata": {"name": name},
        "spec": {"repo": "app", "pr": 1, "commitHash": "abc"},
    });
    reviewapp_testkit::merge_patch(&mut app, &extra);
    app
}

/// A ConfigMap with labels and data.
pub fn config_map(name: &str, labels: &[(&str, &str)], data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: (!labels.is_empty()).then(|| {
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                    .collect()
            }),
            ..ObjectMeta::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
        ),
        ..ConfigMap::default()
    }
}

/// The HTTP code of a kube API error.
pub fn code(err: &kube::Error) -> u16 {
    match err {
        kube::Error::Api(status) => status.code,
        other => panic!("not an API error: {other:?}"),
    }
}

/// The next item of a stream, within 5 s.
pub async fn next<S: Stream + Unpin>(stream: &mut S) -> S::Item {
    tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("an item within 5 s")
        .expect("the stream goes on")
}
