//! Paginated lists through the kube client and kube-runtime's watcher: `limit`, `continue`,
//! a consistent snapshot across pages, and expired tokens.

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::watcher::{self, Event};

use crate::common::{code, config_map, next, start};

fn names(list: &kube::core::ObjectList<ConfigMap>) -> Vec<String> {
    list.items
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect()
}

#[tokio::test]
async fn pages_come_from_the_first_pages_snapshot() {
    let (_emulator, client, _handle) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "apps");
    for name in ["a", "b", "c", "d", "e"] {
        api.create(&PostParams::default(), &config_map(name, &[], &[]))
            .await
            .unwrap();
    }
    let first = api.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(names(&first), ["a", "b"]);
    assert_eq!(first.metadata.remaining_item_count, Some(3));
    let token = first.metadata.continue_.clone().unwrap();

    // Changes after the first page do not show in the later ones.
    api.delete("c", &DeleteParams::default()).await.unwrap();
    api.create(&PostParams::default(), &config_map("f", &[], &[]))
        .await
        .unwrap();
    let second = api
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(names(&second), ["c", "d"]);
    assert_eq!(
        second.metadata.resource_version,
        first.metadata.resource_version
    );
    let third = api
        .list(
            &ListParams::default()
                .limit(2)
                .continue_token(second.metadata.continue_.as_deref().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(names(&third), ["e"]);
    assert_eq!(third.metadata.continue_, None);

    // A new list is current.
    let all = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(names(&all), ["a", "b", "d", "e", "f"]);
    assert_eq!(all.metadata.continue_, None);
}

#[tokio::test]
async fn an_expired_token_is_410_and_the_watcher_relists_page_by_page() {
    let (_emulator, client, handle) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "apps");
    for i in 0..7 {
        api.create(
            &PostParams::default(),
            &config_map(&format!("cm-{i}"), &[], &[]),
        )
        .await
        .unwrap();
    }
    let first = api.list(&ListParams::default().limit(3)).await.unwrap();
    handle.expire_resource_versions();
    let err = api
        .list(&ListParams::default().continue_token(first.metadata.continue_.as_deref().unwrap()))
        .await
        .unwrap_err();
    assert_eq!(code(&err), 410);

    let mut stream = watcher::watcher(api, watcher::Config::default().page_size(3)).boxed();
    let mut applied = Vec::new();
    loop {
        match next(&mut stream).await.unwrap() {
            Event::InitApply(cm) => applied.push(cm.metadata.name.unwrap()),
            Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(applied.len(), 7);
    let lists: Vec<String> = handle
        .requests()
        .into_iter()
        .filter(|r| {
            r.method == "GET" && r.path.ends_with("/configmaps") && !r.query.contains("watch")
        })
        .map(|r| r.query)
        .collect();
    // The two direct lists, then three pages for the watcher.
    assert_eq!(lists.len(), 5, "{lists:?}");
    assert!(
        lists[2..].iter().all(|q| q.contains("limit=3")),
        "{lists:?}"
    );
    assert_eq!(
        lists[2..]
            .iter()
            .filter(|q| q.contains("continue="))
            .count(),
        2,
        "{lists:?}"
    );
}
