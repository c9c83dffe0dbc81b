//! kube-runtime watchers against the emulator: events, cut streams, expired resourceVersions,
//! metadata-only watches, bookmarks.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, Event};
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::common::{config_map, next, start};

/// Names of the objects of a watcher event, with a tag.
fn describe<K: Resource>(event: &Event<K>) -> String {
    match event {
        Event::Apply(o) => format!("apply {}", o.meta().name.clone().unwrap_or_default()),
        Event::Delete(o) => format!("delete {}", o.meta().name.clone().unwrap_or_default()),
        Event::Init => "init".into(),
        Event::InitApply(o) => format!("init-apply {}", o.meta().name.clone().unwrap_or_default()),
        Event::InitDone => "init-done".into(),
    }
}

#[tokio::test]
async fn watcher_sees_apply_and_delete_and_survives_cuts_and_expiry() {
    let (_emulator, client, handle) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "apps");
    for name in ["kept", "gone"] {
        api.create(&PostParams::default(), &config_map(name, &[], &[]))
            .await
            .unwrap();
    }
    let mut stream = watcher::watcher(api.clone(), watcher::Config::default()).boxed();
    let mut initial = Vec::new();
    for _ in 0..4 {
        initial.push(describe(&next(&mut stream).await.unwrap()));
    }
    assert_eq!(
        initial,
        ["init", "init-apply gone", "init-apply kept", "init-done"]
    );

    let params = PatchParams::apply("test").force();
    let applied = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "new"}});
    api.patch("new", &params, &Patch::Apply(&applied))
        .await
        .unwrap();
    assert_eq!(describe(&next(&mut stream).await.unwrap()), "apply new");
    assert_eq!(handle.open_watches(), 1);

    // Cut: the watcher resumes from its resourceVersion and misses nothing.
    handle.cut_watches();
    api.delete("new", &DeleteParams::default()).await.unwrap();
    assert_eq!(describe(&next(&mut stream).await.unwrap()), "delete new");

    // A gap: the stream is cut, an object goes, the history expires. The watcher's resume
    // gets 410 and it relists; the object deleted behind its back is absent.
    handle.cut_watches();
    assert!(handle.delete_behind_back("/api/v1/namespaces/apps/configmaps/gone"));
    handle.expire_resource_versions();
    match next(&mut stream).await {
        Err(watcher::Error::WatchError(status)) => assert_eq!(status.code, 410),
        other => panic!("expected a 410, got {other:?}"),
    }
    let mut relist = Vec::new();
    for _ in 0..3 {
        relist.push(describe(&next(&mut stream).await.unwrap()));
    }
    assert_eq!(relist, ["init", "init-apply kept", "init-done"]);
    let lists = handle
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && !r.watch && r.path == "/api/v1/namespaces/apps/configmaps")
        .count();
    assert_eq!(lists, 2);
}

#[tokio::test]
async fn expiring_ends_open_watches_with_410() {
    let (_emulator, client, handle) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "apps");
    let created = api
        .create(&PostParams::default(), &config_map("a", &[], &[]))
        .await
        .unwrap();
    let mut raw = api
        .watch(
            &WatchParams::default(),
            &created.resource_version().unwrap(),
        )
        .await
        .unwrap()
        .boxed();
    handle.expire_resource_versions();
    match next(&mut raw).await.unwrap() {
        WatchEvent::Error(status) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
        }
        other => panic!("expected an ERROR event, got {other:?}"),
    }
    let ended = tokio::time::timeout(Duration::from_secs(5), raw.next())
        .await
        .unwrap();
    assert!(ended.is_none(), "the stream ends after the error");
}

#[tokio::test]
async fn metadata_watcher_and_label_selected_watch() {
    let (_emulator, client, handle) = start().await;
    let api: Api<PartialObjectMeta<ConfigMap>> = Api::all(client.clone());
    let selector = "app.kubernetes.io/managed-by=review-app-operator";
    let mut stream = watcher::watcher(api, watcher::Config::default().labels(selector)).boxed();
    assert_eq!(describe(&next(&mut stream).await.unwrap()), "init");
    assert_eq!(describe(&next(&mut stream).await.unwrap()), "init-done");

    let cms: Api<ConfigMap> = Api::namespaced(client, "apps");
    let managed = [("app.kubernetes.io/managed-by", "review-app-operator")];
    cms.create(&PostParams::default(), &config_map("other", &[], &[]))
        .await
        .unwrap();
    cms.create(
        &PostParams::default(),
        &config_map("mine", &managed, &[("secret", "x")]),
    )
    .await
    .unwrap();
    match next(&mut stream).await.unwrap() {
        Event::Apply(meta) => {
            assert_eq!(meta.name_any(), "mine");
            assert_eq!(meta.types.unwrap().kind, "PartialObjectMetadata");
        }
        other => panic!("expected apply mine, got {}", describe(&other)),
    }
    // Leaving the selection is a delete for this watch.
    cms.patch(
        "mine",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": null}})),
    )
    .await
    .unwrap();
    assert_eq!(describe(&next(&mut stream).await.unwrap()), "delete mine");
    let watch = handle.requests().into_iter().find(|r| r.watch).unwrap();
    assert!(watch.query.contains("labelSelector="), "{}", watch.query);
    assert!(
        watch.query.contains("allowWatchBookmarks=true"),
        "{}",
        watch.query
    );
}

#[tokio::test]
async fn bookmarks_and_timeouts() {
    let (_emulator, client, handle) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "apps");
    let created = api
        .create(&PostParams::default(), &config_map("a", &[], &[]))
        .await
        .unwrap();
    let mut raw = api
        .watch(
            &WatchParams::default().timeout(2),
            &created.resource_version().unwrap(),
        )
        .await
        .unwrap()
        .boxed();
    // A write elsewhere moves the resourceVersion; this watch gets a bookmark for it.
    handle
        .create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "x"}}))
        .unwrap();
    let rv = handle.resource_version().to_string();
    match next(&mut raw).await.unwrap() {
        WatchEvent::Bookmark(bookmark) => assert_eq!(bookmark.metadata.resource_version, rv),
        other => panic!("expected a bookmark, got {other:?}"),
    }
    let ended = tokio::time::timeout(Duration::from_secs(5), raw.next())
        .await
        .unwrap();
    assert!(ended.is_none(), "timeoutSeconds ends the stream");

    // A streaming list: initial events, then the initial-events-end bookmark.
    let mut streaming = watcher::watcher(api, watcher::Config::default().streaming_lists()).boxed();
    let mut events = Vec::new();
    for _ in 0..3 {
        events.push(describe(&next(&mut streaming).await.unwrap()));
    }
    assert_eq!(events, ["init", "init-apply a", "init-done"]);
}

/// `Handle::subscribe`: an in-process watch that sees API and handle writes (selector and
/// namespace applied), is not in the request log, and ends when watches are cut.
#[tokio::test]
async fn handle_subscription_sees_changes_without_requests() {
    let (_emulator, client, handle) = crate::common::start().await;
    let mut sub = handle
        .subscribe("", "v1", "configmaps", Some("ns"), Some("app=a"))
        .unwrap();
    handle.clear_requests();
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> = kube::Api::namespaced(client, "ns");
    let cm = |name: &str, app: &str| {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"app": app}}, "data": {"k": "v"}
        }))
        .unwrap()
    };
    api.create(&kube::api::PostParams::default(), &cm("other", "b"))
        .await
        .unwrap();
    api.create(&kube::api::PostParams::default(), &cm("one", "a"))
        .await
        .unwrap();
    let event = sub.next().await.unwrap();
    assert_eq!(event.kind, "ADDED");
    assert_eq!(event.object["metadata"]["name"], "one");
    handle
        .delete("/api/v1/namespaces/ns/configmaps/one")
        .unwrap();
    let event = sub.next().await.unwrap();
    assert_eq!(event.kind, "DELETED");
    assert!(handle.requests().iter().all(|r| !r.watch), "no HTTP watch");
    assert_eq!(
        handle.requests().len(),
        2,
        "only the two creates are logged"
    );
    handle.cut_watches();
    assert!(sub.next().await.is_none());
}
