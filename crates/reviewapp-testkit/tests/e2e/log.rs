//! The request log and write counts.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::common::{config_map, start};

#[tokio::test]
async fn requests_are_logged_and_writes_counted() {
    let (_emulator, client, handle) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "apps");
    api.create(&PostParams::default(), &config_map("a", &[], &[]))
        .await
        .unwrap();
    api.get("a").await.unwrap();
    api.list(&ListParams::default().labels("x=y"))
        .await
        .unwrap();
    let applied = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}});
    api.patch(
        "a",
        &PatchParams::apply("review-app-operator").force(),
        &Patch::Apply(&applied),
    )
    .await
    .unwrap();
    api.delete("a", &DeleteParams::background()).await.unwrap();
    let _ = api.delete("a", &DeleteParams::background()).await;

    let log = handle.requests();
    let summary: Vec<(String, u16)> = log.iter().map(|r| (r.method.clone(), r.status)).collect();
    assert_eq!(
        summary,
        [
            ("POST".into(), 201),
            ("GET".into(), 200),
            ("GET".into(), 200),
            ("PATCH".into(), 200),
            ("DELETE".into(), 200),
            ("DELETE".into(), 404),
        ]
    );
    assert_eq!(log[0].path, "/api/v1/namespaces/apps/configmaps");
    assert_eq!(log[0].content_type.as_deref(), Some("application/json"));
    assert!(
        log[2].query.contains("labelSelector=x%3Dy"),
        "{}",
        log[2].query
    );
    assert!(!log[2].watch);
    assert_eq!(
        log[3].content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert_eq!(handle.write_count(), 4);
    assert_eq!(
        handle.write_count_where(|r| r.method == "DELETE" && r.status == 200),
        1
    );
    handle.clear_requests();
    assert!(handle.requests().is_empty());
    assert_eq!(handle.write_count(), 0);
}
