//! Server-side apply.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::common::start;

fn cm(data: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": data})
}

#[tokio::test]
async fn apply_creates_and_a_reapply_removes_omitted_fields() {
    let (_emulator, client, handle) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "apps");
    let params = PatchParams::apply("review-app-operator").force();
    let created = api
        .patch(
            "applied",
            &params,
            &Patch::Apply(cm(json!({"a": "1", "b": "2"}))),
        )
        .await
        .unwrap();
    assert_eq!(created.data.as_ref().unwrap().len(), 2);
    let managed = created.metadata.managed_fields.unwrap();
    assert_eq!(managed.len(), 1);
    assert_eq!(managed[0].manager.as_deref(), Some("review-app-operator"));
    assert_eq!(managed[0].operation.as_deref(), Some("Apply"));

    let again = api
        .patch("applied", &params, &Patch::Apply(cm(json!({"a": "1"}))))
        .await
        .unwrap();
    assert_eq!(again.data.unwrap().keys().collect::<Vec<_>>(), ["a"]);

    // The same apply again changes nothing: no new resourceVersion.
    let rv = handle.resource_version();
    let same = api
        .patch("applied", &params, &Patch::Apply(cm(json!({"a": "1"}))))
        .await
        .unwrap();
    assert_eq!(handle.resource_version(), rv);
    assert_eq!(same.metadata.resource_version, Some(rv.to_string()));
    let request = handle.requests().pop().unwrap();
    assert_eq!(
        request.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert!(request.query.contains("force=true"), "{}", request.query);
    assert!(
        request.query.contains("fieldManager=review-app-operator"),
        "{}",
        request.query
    );
}

#[tokio::test]
async fn apply_conflicts_between_managers_unless_forced() {
    let (_emulator, client, _) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "apps");
    api.patch(
        "applied",
        &PatchParams::apply("first"),
        &Patch::Apply(cm(json!({"x": "1", "y": "1"}))),
    )
    .await
    .unwrap();
    // Agreeing on a value is no conflict.
    api.patch(
        "applied",
        &PatchParams::apply("second"),
        &Patch::Apply(cm(json!({"x": "1"}))),
    )
    .await
    .unwrap();
    match api
        .patch(
            "applied",
            &PatchParams::apply("second"),
            &Patch::Apply(cm(json!({"x": "2"}))),
        )
        .await
    {
        Err(kube::Error::Api(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
            assert!(
                status.message.contains("conflict with \"first\": .data.x"),
                "{}",
                status.message
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let forced = api
        .patch(
            "applied",
            &PatchParams::apply("second").force(),
            &Patch::Apply(cm(json!({"x": "2"}))),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.as_ref().unwrap()["x"], "2");
    // `first` lost `.data.x`, so its own re-apply of `.data.y` alone leaves x to `second`.
    let after = api
        .patch(
            "applied",
            &PatchParams::apply("first"),
            &Patch::Apply(cm(json!({"y": "1"}))),
        )
        .await
        .unwrap();
    assert_eq!(after.data.unwrap()["x"], "2");
}

#[tokio::test]
async fn apply_accepts_yaml_and_requires_a_field_manager() {
    let (_emulator, client, handle) = start().await;
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: yaml\ndata:\n  k: v\n";
    let request =
        http::Request::patch("/api/v1/namespaces/apps/configmaps/yaml?fieldManager=kubectl")
            .header("content-type", "application/apply-patch+yaml")
            .body(yaml.as_bytes().to_vec())
            .unwrap();
    client.request_text(request).await.unwrap();
    let stored = handle
        .get("/api/v1/namespaces/apps/configmaps/yaml")
        .unwrap();
    assert_eq!(stored["data"]["k"], "v");

    let request = http::Request::patch("/api/v1/namespaces/apps/configmaps/yaml")
        .header("content-type", "application/apply-patch+yaml")
        .body(yaml.as_bytes().to_vec())
        .unwrap();
    match client.request_text(request).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 400),
        other => panic!("expected 400, got {other:?}"),
    }
}

#[tokio::test]
async fn handle_apply_and_create() {
    let (_emulator, _client, handle) = start().await;
    let created = handle
        .create(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "namespace": "apps"}, "spec": {"replicas": 1},
            "status": {"readyReplicas": 1}}))
        .unwrap();
    assert_eq!(
        created["status"]["readyReplicas"], 1,
        "the handle keeps a seeded status"
    );
    let applied = handle
        .apply(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "namespace": "apps"}, "spec": {"replicas": 2}}))
        .unwrap();
    assert_eq!(applied["spec"]["replicas"], 2);
    assert_eq!(applied["metadata"]["generation"], 2);
    assert_eq!(
        handle
            .list("apps", "v1", "deployments", Some("apps"), None)
            .len(),
        1
    );
    assert_eq!(
        handle
            .get_object("apps", "v1", "deployments", Some("apps"), "d")
            .unwrap()["spec"]["replicas"],
        2
    );
    let err = handle
        .create(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "apps"}}))
        .unwrap_err();
    assert_eq!(err.code, 409);
}
