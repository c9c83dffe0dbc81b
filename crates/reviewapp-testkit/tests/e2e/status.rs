//! The status subresource and `metadata.generation`.

use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::common::{code, review_app, review_apps, start};

fn generation(o: &DynamicObject) -> i64 {
    o.metadata.generation.unwrap()
}

#[allow(
    clippy::too_many_lines,
    reason = "each write path, one after the other"
)]
#[tokio::test]
async fn status_writes_and_spec_writes_do_not_cross() {
    let (_emulator, client, _) = start().await;
    let api: Api<DynamicObject> = Api::all_with(client, &review_apps());
    let body = review_app("app", json!({"status": {"appStatus": "forged"}}));
    let created = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(body).unwrap(),
        )
        .await
        .unwrap();
    assert!(
        created.data.get("status").is_none(),
        "a create drops the status"
    );
    assert_eq!(generation(&created), 1);

    // The operator's status write: server-side apply to /status, no metadata.name in the body.
    let status_body = json!({
        "apiVersion": "reviewtron.k8s.revelry.co/v1",
        "kind": "ReviewApp",
        "status": {"appStatus": "building", "observedGeneration": 1},
    });
    let written = api
        .patch_status(
            "app",
            &PatchParams::apply("review-app-operator").force(),
            &Patch::Apply(&status_body),
        )
        .await
        .unwrap();
    assert_eq!(written.data["status"]["appStatus"], "building");
    assert_eq!(
        generation(&written),
        1,
        "status writes never move the generation"
    );

    // A status write that also carries a spec change: only the status lands.
    let merged = api
        .patch_status(
            "app",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"commitHash": "zzz"}, "status": {"message": "hi"}})),
        )
        .await
        .unwrap();
    assert_eq!(merged.data["spec"]["commitHash"], "abc");
    assert_eq!(merged.data["status"]["message"], "hi");
    assert_eq!(merged.data["status"]["appStatus"], "building");

    // A main-resource write that carries a status: the stored status stays, the spec changes.
    let spec = api
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"commitHash": "def"}, "status": {"appStatus": "forged"}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(spec.data["spec"]["commitHash"], "def");
    assert_eq!(spec.data["status"]["appStatus"], "building");
    assert_eq!(generation(&spec), 2);

    // Metadata-only changes leave the generation alone.
    let labelled = api
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(generation(&labelled), 2);

    // PUT to /status with the current object: only the status changes.
    let mut replaced = labelled.clone();
    replaced.data["status"] = json!({"appStatus": "deployed"});
    replaced.data["spec"]["commitHash"] = json!("nope");
    let after = api
        .replace_status("app", &PostParams::default(), &replaced)
        .await
        .unwrap();
    assert_eq!(after.data["status"], json!({"appStatus": "deployed"}));
    assert_eq!(after.data["spec"]["commitHash"], "def");
    assert_eq!(generation(&after), 2);

    // A stale resourceVersion on /status conflicts too.
    let err = api
        .replace_status("app", &PostParams::default(), &labelled)
        .await
        .unwrap_err();
    assert_eq!(code(&err), 409);
    // And /status of a missing object is a 404, even for apply.
    let err = api
        .patch_status(
            "gone",
            &PatchParams::apply("m").force(),
            &Patch::Apply(&status_body),
        )
        .await
        .unwrap_err();
    assert_eq!(code(&err), 404);
}

#[tokio::test]
async fn metadata_only_get_and_list() {
    let (_emulator, client, _) = start().await;
    let api: Api<DynamicObject> = Api::all_with(client, &review_apps());
    api.create(
        &PostParams::default(),
        &serde_json::from_value(review_app("m", json!({}))).unwrap(),
    )
    .await
    .unwrap();
    let meta = api.get_metadata("m").await.unwrap();
    assert_eq!(meta.metadata.name.as_deref(), Some("m"));
    let types = meta.types.unwrap();
    assert_eq!(
        (types.api_version.as_str(), types.kind.as_str()),
        ("meta.k8s.io/v1", "PartialObjectMetadata")
    );
    let list = api.list_metadata(&Default::default()).await.unwrap();
    assert_eq!(list.types.kind, "PartialObjectMetadataList");
    assert_eq!(list.items.len(), 1);
}
