//! Create, read, update, delete and list with typed APIs.

use std::collections::BTreeMap;

use futures::StreamExt;

use k8s_openapi::ByteString;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Resource, ResourceExt};
use reviewapp_testkit::object_path;
use serde_json::json;

use crate::common::{code, config_map, start};

#[tokio::test]
async fn config_map_crud() {
    let (_emulator, client, handle) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "apps");
    let created = api
        .create(&PostParams::default(), &config_map("a", &[], &[("k", "v")]))
        .await
        .unwrap();
    assert_eq!(created.metadata.namespace.as_deref(), Some("apps"));
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    assert_eq!(created.metadata.generation, Some(1));
    let rv: u64 = created.resource_version().unwrap().parse().unwrap();
    assert_eq!(rv, handle.resource_version());

    let mut fetched = api.get("a").await.unwrap();
    assert_eq!(fetched.data.as_ref().unwrap()["k"], "v");
    fetched.data = Some(BTreeMap::from([("k".into(), "w".into())]));
    let replaced = api
        .replace("a", &PostParams::default(), &fetched)
        .await
        .unwrap();
    assert_eq!(replaced.data.as_ref().unwrap()["k"], "w");
    assert_eq!(replaced.metadata.generation, Some(2));
    assert!(replaced.resource_version().unwrap().parse::<u64>().unwrap() > rv);

    let list = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(
        list.metadata.resource_version.as_deref(),
        Some(handle.resource_version().to_string().as_str())
    );
    let everywhere: Api<ConfigMap> = Api::all(api.clone().into_client());
    assert_eq!(
        everywhere
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    let deleted = api.delete("a", &DeleteParams::default()).await.unwrap();
    assert!(
        deleted.is_right(),
        "an immediate delete answers a Success status"
    );
    assert_eq!(code(&api.get("a").await.unwrap_err()), 404);
    assert_eq!(
        code(&api.delete("a", &DeleteParams::default()).await.unwrap_err()),
        404
    );
    assert!(
        handle
            .get(&object_path("", "v1", "configmaps", Some("apps"), "a"))
            .is_none()
    );
}

#[tokio::test]
async fn create_twice_is_already_exists() {
    let (_emulator, client, _) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "apps");
    let cm = config_map("twice", &[], &[]);
    api.create(&PostParams::default(), &cm).await.unwrap();
    match api.create(&PostParams::default(), &cm).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 409);
            assert_eq!(status.reason, "AlreadyExists");
            assert!(status.is_already_exists());
            assert_eq!(status.message, "configmaps \"twice\" already exists");
        }
        other => panic!("expected 409, got {other:?}"),
    }
}

#[tokio::test]
async fn replace_with_a_stale_resource_version_conflicts() {
    let (_emulator, client, _) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "apps");
    let first = api
        .create(&PostParams::default(), &config_map("c", &[], &[("k", "1")]))
        .await
        .unwrap();
    let mut newer = first.clone();
    newer.data = Some(BTreeMap::from([("k".into(), "2".into())]));
    api.replace("c", &PostParams::default(), &newer)
        .await
        .unwrap();
    let mut stale = first;
    stale.data = Some(BTreeMap::from([("k".into(), "3".into())]));
    match api.replace("c", &PostParams::default(), &stale).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
            assert!(status.is_conflict());
        }
        other => panic!("expected 409, got {other:?}"),
    }
    assert_eq!(api.get("c").await.unwrap().data.unwrap()["k"], "2");
}

#[tokio::test]
async fn secrets_jobs_and_namespaces() {
    let (_emulator, client, _) = start().await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "apps");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "s"},
        "type": "Opaque",
        "data": {"password": "aHVudGVyMg=="},
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let back = secrets.get("s").await.unwrap();
    assert_eq!(
        back.data.unwrap()["password"],
        ByteString(b"hunter2".to_vec())
    );

    let jobs: Api<Job> = Api::namespaced(client.clone(), "builds");
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": "j", "labels": {"app.kubernetes.io/managed-by": "review-app-operator"}},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}},
        "status": {"succeeded": 1},
    }))
    .unwrap();
    let created = jobs.create(&PostParams::default(), &job).await.unwrap();
    assert!(created.status.is_none(), "a create drops the status");
    let selected = jobs
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=review-app-operator"))
        .await
        .unwrap();
    assert_eq!(selected.items.len(), 1);

    let namespaces: Api<Namespace> = Api::all(client);
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "apps"}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    assert_eq!(namespaces.get("apps").await.unwrap().name_any(), "apps");
    assert_eq!(
        namespaces
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
}

#[tokio::test]
async fn label_and_field_selectors() {
    let (_emulator, client, _) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "apps");
    for (name, labels) in [
        ("web", vec![("app", "web"), ("tier", "front")]),
        ("db", vec![("app", "db"), ("tier", "back")]),
        ("plain", vec![]),
    ] {
        api.create(&PostParams::default(), &config_map(name, &labels, &[]))
            .await
            .unwrap();
    }
    let names = |selector: &'static str| {
        let api = api.clone();
        async move {
            let mut names: Vec<String> = api
                .list(&ListParams::default().labels(selector))
                .await
                .unwrap()
                .items
                .iter()
                .map(ResourceExt::name_any)
                .collect();
            names.sort();
            names
        }
    };
    assert_eq!(names("app=web").await, ["web"]);
    assert_eq!(names("app==db").await, ["db"]);
    assert_eq!(names("app!=web").await, ["db", "plain"]);
    assert_eq!(names("app").await, ["db", "web"]);
    assert_eq!(names("!app").await, ["plain"]);
    assert_eq!(names("tier in (front,back)").await, ["db", "web"]);
    assert_eq!(names("tier notin (front)").await, ["db", "plain"]);
    assert_eq!(names("app,tier=back").await, ["db"]);
    let by_name = api
        .list(&ListParams::default().fields("metadata.name=plain"))
        .await
        .unwrap();
    assert_eq!(by_name.items.len(), 1);
    match api.list(&ListParams::default().labels("a b")).await {
        Err(err) => assert_eq!(code(&err), 400),
        Ok(_) => panic!("an invalid selector is a 400"),
    }
}

#[tokio::test]
async fn generate_name_and_the_kubeconfig() {
    let emulator = reviewapp_testkit::Emulator::start().await.unwrap();
    assert!(emulator.url().starts_with("http://127.0.0.1:"));
    let kubeconfig = Kubeconfig::from_yaml(&emulator.kubeconfig_yaml()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    assert_eq!(config.default_namespace, "default");
    let client = kube::Client::try_from(config).unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let mut cm = config_map("", &[], &[]);
    cm.metadata.name = None;
    cm.metadata.generate_name = Some("gen-".into());
    let created = api.create(&PostParams::default(), &cm).await.unwrap();
    let name = created.name_any();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
    assert_eq!(created.namespace().as_deref(), Some("default"));
    emulator.shutdown().await;
}

#[tokio::test]
async fn events_recorder_creates_then_patches_a_series() {
    let (_emulator, client, handle) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "apps");
    let cm = api
        .create(&PostParams::default(), &config_map("owner", &[], &[]))
        .await
        .unwrap();
    let recorder = Recorder::new(client, Reporter::from("review-app-operator"));
    let event = Event {
        type_: EventType::Normal,
        reason: "BuildStarted".into(),
        note: Some("building".into()),
        action: "Build".into(),
        secondary: None,
    };
    let reference = cm.object_ref(&());
    recorder.publish(&event, &reference).await.unwrap();
    recorder.publish(&event, &reference).await.unwrap();
    let events = handle.list("events.k8s.io", "v1", "events", Some("apps"), None);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["reason"], "BuildStarted");
    assert_eq!(
        handle.write_count_where(|r| r.method == "POST" && r.path.contains("/events")),
        1
    );
    assert_eq!(
        handle.write_count_where(|r| r.method == "PATCH" && r.path.contains("/events")),
        1
    );
}

#[tokio::test]
async fn unavailable_resources_and_shutdown() {
    let (emulator, client, handle) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "apps");
    let mut stream = api
        .watch(&kube::api::WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    handle.set_resource_available("", "v1", "configmaps", false);
    assert_eq!(
        code(&api.list(&ListParams::default()).await.unwrap_err()),
        404
    );
    handle.set_resource_available("", "v1", "configmaps", true);
    assert!(api.list(&ListParams::default()).await.is_ok());

    emulator.shutdown().await;
    let ended = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
        .await
        .unwrap();
    assert!(ended.is_none(), "open watches end on shutdown");
    assert!(api.list(&ListParams::default()).await.is_err());
}

#[allow(clippy::too_many_lines, reason = "one malformed request after another")]
#[tokio::test]
async fn malformed_requests_get_status_errors() {
    let (_emulator, client, handle) = start().await;
    handle
        .create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "apps"}}))
        .unwrap();
    let cm = "/api/v1/namespaces/apps/configmaps/a";
    let cases: Vec<(&str, String, &str, &str, u16)> = vec![
        (
            "POST",
            "/api/v1/namespaces/apps/configmaps".into(),
            "application/json",
            "{not json",
            400,
        ),
        (
            "POST",
            "/api/v1/namespaces/apps/configmaps".into(),
            "application/json",
            "[1]",
            400,
        ),
        (
            "POST",
            "/api/v1/namespaces/apps/configmaps".into(),
            "application/json",
            "{}",
            422,
        ),
        (
            "POST",
            "/api/v1/namespaces/apps/configmaps".into(),
            "application/json",
            r#"{"metadata": {"name": "b", "namespace": "other"}}"#,
            400,
        ),
        ("PATCH", cm.into(), "text/plain", "{}", 415),
        ("PATCH", cm.into(), "application/json-patch+json", "{}", 400),
        (
            "PATCH",
            cm.into(),
            "application/json-patch+json",
            r#"[{"op": "replace", "path": "", "value": "x"}]"#,
            400,
        ),
        (
            "PATCH",
            cm.into(),
            "application/json-patch+json",
            r#"[{"op": "bogus", "path": "/a"}]"#,
            400,
        ),
        (
            "PATCH",
            cm.into(),
            "application/merge-patch+json",
            "[1]",
            400,
        ),
        (
            "PATCH",
            format!("{cm}?fieldManager=m"),
            "application/apply-patch+yaml",
            "- 1\n- 2\n",
            400,
        ),
        (
            "PATCH",
            format!("{cm}?fieldManager=m"),
            "application/apply-patch+yaml",
            ": : :",
            400,
        ),
        (
            "PATCH",
            format!("{cm}?fieldManager=m"),
            "application/apply-patch+yaml",
            r#"{"metadata": {"name": "other"}}"#,
            400,
        ),
        (
            "PUT",
            "/api/v1/namespaces/apps/configmaps".into(),
            "application/json",
            "{}",
            405,
        ),
        (
            "PUT",
            cm.into(),
            "application/json",
            r#"{"metadata": {"name": "zzz"}}"#,
            400,
        ),
        (
            "PUT",
            "/api/v1/namespaces/apps/configmaps/missing".into(),
            "application/json",
            "{}",
            404,
        ),
        ("DELETE", cm.into(), "application/json", "{nope", 400),
        ("GET", format!("{cm}/scale"), "application/json", "", 404),
        ("GET", "/apis/nothing".into(), "application/json", "", 404),
        (
            "GET",
            "/api/v1/namespaces/apps/configmaps?watch=true&resourceVersion=abc".into(),
            "application/json",
            "",
            400,
        ),
        (
            "GET",
            "/api/v1/namespaces/apps/configmaps?labelSelector=a%20b".into(),
            "application/json",
            "",
            400,
        ),
        (
            "GET",
            "/api/v1/namespaces/apps/configmaps?fieldSelector=nonsense".into(),
            "application/json",
            "",
            400,
        ),
    ];
    for (method, path, content_type, body, expected) in cases {
        let request = http::Request::builder()
            .method(method)
            .uri(path.as_str())
            .header("content-type", content_type)
            .body(body.as_bytes().to_vec())
            .unwrap();
        match client.request_text(request).await {
            Err(kube::Error::Api(status)) => {
                assert_eq!(status.code, expected, "{method} {path} {body}: {status:?}");
            }
            other => panic!("{method} {path} {body}: expected {expected}, got {other:?}"),
        }
    }
    // Still serving, and the object is intact.
    let back = handle.get(cm).unwrap();
    assert_eq!(back["metadata"]["name"], "a");
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(version.major, "1");
}
