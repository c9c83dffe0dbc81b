//! Deployment rollouts reported through the handle, seen by a Deployment watcher.

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event};
use serde_json::json;

use crate::common::{next, start};

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "nginx"}]}}},
    }))
    .unwrap()
}

fn available(d: &Deployment) -> (Option<i64>, Option<i32>) {
    let status = d.status.clone().unwrap_or_default();
    (status.observed_generation, status.available_replicas)
}

#[tokio::test]
async fn a_rollout_reaches_a_deployment_watcher_at_the_current_generation() {
    let (_emulator, client, handle) = start().await;
    let api: Api<Deployment> = Api::namespaced(client, "apps");
    api.create(&PostParams::default(), &deployment("web", 0))
        .await
        .unwrap();
    let mut stream = watcher::watcher(api.clone(), watcher::Config::default()).boxed();
    for _ in 0..3 {
        next(&mut stream).await.unwrap();
    }
    assert!(
        api.get("web").await.unwrap().status.is_none(),
        "no controller"
    );

    handle.set_deployment_available("apps", "web").unwrap();
    let Event::Apply(at_zero) = next(&mut stream).await.unwrap() else {
        panic!("expected apply")
    };
    assert_eq!(
        available(&at_zero),
        (Some(1), Some(0)),
        "0 replicas, 0 available"
    );

    // Scaling up moves the generation; the status stays behind until it is reported again.
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    let Event::Apply(scaled) = next(&mut stream).await.unwrap() else {
        panic!("expected apply")
    };
    assert_eq!(scaled.metadata.generation, Some(2));
    assert_eq!(available(&scaled), (Some(1), Some(0)));

    handle.set_deployment_available("apps", "web").unwrap();
    let Event::Apply(up) = next(&mut stream).await.unwrap() else {
        panic!("expected apply")
    };
    assert_eq!(available(&up), (Some(2), Some(1)));
    let condition = &up.status.unwrap().conditions.unwrap()[0];
    assert_eq!(
        (condition.type_.as_deref(), condition.status.as_deref()),
        (Some("Available"), Some("True"))
    );

    assert_eq!(
        handle
            .set_deployment_available("apps", "gone")
            .unwrap_err()
            .code,
        404
    );
}
