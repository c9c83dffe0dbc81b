//! Finalizers, deletion and garbage collection.

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{
    Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::common::{code, config_map, next, review_app, review_apps, start};

const FINALIZER: &str = "reviewtron.k8s.revelry.co/teardown";

#[tokio::test]
async fn finalizers_hold_a_delete_until_removed() {
    let (_emulator, client, _) = start().await;
    let api: Api<DynamicObject> = Api::all_with(client, &review_apps());
    let app = review_app("app", json!({"metadata": {"finalizers": [FINALIZER]}}));
    let created = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(app).unwrap(),
        )
        .await
        .unwrap();
    let rv = created.resource_version().unwrap();
    let mut events = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();

    let pending = api
        .delete("app", &DeleteParams::background())
        .await
        .unwrap();
    let pending = pending
        .left()
        .expect("the object, still there, is answered");
    assert!(pending.metadata.deletion_timestamp.is_some());
    let still = api.get("app").await.unwrap();
    assert!(still.metadata.deletion_timestamp.is_some());
    assert!(matches!(
        next(&mut events).await.unwrap(),
        WatchEvent::Modified(_)
    ));
    // A second delete changes nothing; adding a finalizer while deleting is refused.
    api.delete("app", &DeleteParams::background())
        .await
        .unwrap();
    let err = api
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": [FINALIZER, "other"]}})),
        )
        .await
        .unwrap_err();
    assert_eq!(code(&err), 422);

    let remove: Patch<()> = Patch::Json(
        serde_json::from_value(json!([
            {"op": "test", "path": "/metadata/finalizers/0", "value": FINALIZER},
            {"op": "remove", "path": "/metadata/finalizers/0"},
        ]))
        .unwrap(),
    );
    api.patch("app", &PatchParams::default(), &remove)
        .await
        .unwrap();
    assert_eq!(code(&api.get("app").await.unwrap_err()), 404);
    match next(&mut events).await.unwrap() {
        WatchEvent::Deleted(gone) => assert_eq!(gone.name_any(), "app"),
        other => panic!("expected DELETED, got {other:?}"),
    }
}

#[tokio::test]
async fn owned_objects_are_garbage_collected() {
    let (_emulator, client, handle) = start().await;
    let apps: Api<DynamicObject> = Api::all_with(client.clone(), &review_apps());
    let owner = apps
        .create(
            &PostParams::default(),
            &serde_json::from_value(review_app("owner", json!({}))).unwrap(),
        )
        .await
        .unwrap();
    let owner_ref = owner.controller_owner_ref(&review_apps()).unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "apps");
    let mut child = config_map("child", &[], &[]);
    child.metadata.owner_references = Some(vec![owner_ref.clone()]);
    let child = cms.create(&PostParams::default(), &child).await.unwrap();
    // A grandchild owned by the ConfigMap, and a second child that holds a finalizer.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "apps");
    let mut grandchild = Secret::default();
    grandchild.metadata.name = Some("grandchild".into());
    grandchild.metadata.owner_references = Some(vec![child.controller_owner_ref(&()).unwrap()]);
    secrets
        .create(&PostParams::default(), &grandchild)
        .await
        .unwrap();
    let mut held = config_map("held", &[], &[]);
    held.metadata.owner_references = Some(vec![owner_ref]);
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    cms.create(&PostParams::default(), &held).await.unwrap();
    cms.create(&PostParams::default(), &config_map("unrelated", &[], &[]))
        .await
        .unwrap();

    apps.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    assert_eq!(code(&cms.get("child").await.unwrap_err()), 404);
    assert_eq!(code(&secrets.get("grandchild").await.unwrap_err()), 404);
    assert!(
        cms.get("held")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );
    assert!(cms.get("unrelated").await.is_ok());
    assert!(handle.delete_behind_back("/api/v1/namespaces/apps/configmaps/held"));
    assert!(!handle.delete_behind_back("/api/v1/namespaces/apps/configmaps/held"));
}

#[tokio::test]
async fn orphan_propagation_keeps_dependents() {
    let (_emulator, client, _) = start().await;
    let apps: Api<DynamicObject> = Api::all_with(client.clone(), &review_apps());
    let owner = apps
        .create(
            &PostParams::default(),
            &serde_json::from_value(review_app("owner", json!({}))).unwrap(),
        )
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client, "apps");
    let mut child = config_map("child", &[], &[]);
    child.metadata.owner_references =
        Some(vec![owner.controller_owner_ref(&review_apps()).unwrap()]);
    cms.create(&PostParams::default(), &child).await.unwrap();
    apps.delete("owner", &DeleteParams::orphan()).await.unwrap();
    let kept = cms.get("child").await.unwrap();
    assert!(kept.metadata.owner_references.is_none());
}

#[tokio::test]
async fn deleting_a_namespace_deletes_its_contents() {
    let (_emulator, _client, handle) = start().await;
    handle
        .create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gone"}}))
        .unwrap();
    handle
        .create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "gone"}}))
        .unwrap();
    handle
        .create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "kept"}}))
        .unwrap();
    handle.delete("/api/v1/namespaces/gone").unwrap();
    assert!(handle.get("/api/v1/namespaces/gone/configmaps/a").is_none());
    assert!(handle.get("/api/v1/namespaces/kept/configmaps/a").is_some());
    assert_eq!(handle.object_count(), 1);
}
