//! Merge and JSON patches.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::common::{code, config_map, review_app, review_apps, start};

#[tokio::test]
async fn merge_patch_adds_replaces_and_removes() {
    let (_emulator, client, _) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "apps");
    api.create(
        &PostParams::default(),
        &config_map("m", &[("a", "1")], &[("k", "v"), ("gone", "x")]),
    )
    .await
    .unwrap();
    let patched = api
        .patch(
            "m",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"labels": {"b": "2"}}, "data": {"k": "w", "gone": null}}),
            ),
        )
        .await
        .unwrap();
    let labels = patched.metadata.labels.unwrap();
    assert_eq!((labels["a"].as_str(), labels["b"].as_str()), ("1", "2"));
    let data = patched.data.unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data["k"], "w");
    // Strategic merge is treated as a merge patch.
    let strategic = api
        .patch(
            "m",
            &PatchParams::default(),
            &Patch::Strategic(json!({"data": {"s": "1"}})),
        )
        .await
        .unwrap();
    assert_eq!(strategic.data.unwrap()["s"], "1");
    // A stale resourceVersion in a merge patch conflicts.
    let err = api
        .patch(
            "m",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"resourceVersion": "1"}})),
        )
        .await
        .unwrap_err();
    assert_eq!(code(&err), 409);
    let err = api
        .patch("missing", &PatchParams::default(), &Patch::Merge(json!({})))
        .await
        .unwrap_err();
    assert_eq!(code(&err), 404);
}

#[tokio::test]
async fn json_patch_tests_a_missing_path_as_null() {
    let (_emulator, client, _) = start().await;
    let api: Api<DynamicObject> = Api::all_with(client, &review_apps());
    let app: DynamicObject = serde_json::from_value(review_app("app", json!({}))).unwrap();
    api.create(&PostParams::default(), &app).await.unwrap();
    let add = json!([
        {"op": "test", "path": "/metadata/finalizers", "value": null},
        {"op": "add", "path": "/metadata/finalizers", "value": ["reviewtron.k8s.revelry.co/teardown"]},
    ]);
    let params = PatchParams {
        field_manager: Some("review-app-operator".into()),
        ..PatchParams::default()
    };
    let patched = api
        .patch("app", &params, &json_patch(add.clone()))
        .await
        .unwrap();
    assert_eq!(
        patched.metadata.finalizers.unwrap(),
        ["reviewtron.k8s.revelry.co/teardown"]
    );
    // The same guarded patch now fails its test: 422.
    let err = api
        .patch("app", &params, &json_patch(add))
        .await
        .unwrap_err();
    assert_eq!(code(&err), 422);

    let remove = json!([
        {"op": "test", "path": "/metadata/finalizers/0", "value": "reviewtron.k8s.revelry.co/teardown"},
        {"op": "remove", "path": "/metadata/finalizers/0"},
    ]);
    let removed = api
        .patch("app", &params, &json_patch(remove))
        .await
        .unwrap();
    assert!(
        removed.metadata.finalizers.is_none(),
        "an empty list is omitted"
    );
    let missing = json!([{"op": "replace", "path": "/nope", "value": 1}]);
    let err = api
        .patch("app", &params, &json_patch(missing))
        .await
        .unwrap_err();
    assert_eq!(code(&err), 422);
}

/// A JSON patch for kube's `Patch::Json`.
fn json_patch(ops: serde_json::Value) -> Patch<()> {
    Patch::Json(serde_json::from_value(ops).unwrap())
}
