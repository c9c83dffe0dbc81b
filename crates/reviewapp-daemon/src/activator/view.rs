//! The activator's own light view of the `ReviewApp`s: a kube-runtime reflector over every
//! `ReviewApp`, each deserialized into [`AppView`] (name, uid, the wake annotation, the app
//! status and the host of its URL; the spec and every other field are never even allocated). It
//! runs on every replica, leader or not, and keeps answering from what it last saw while the API
//! server is unreachable (the watcher retries with backoff and relists when it is back).

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use k8s_openapi::ClusterResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::{WatchStreamExt, reflector::reflector};
use reviewapp_api::{AppStatus, ReviewApp, annotations};
use serde::{Deserialize, Deserializer};

use super::host;
use crate::watch::LIST_PAGE_SIZE;

/// What the activator keeps of one `ReviewApp`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct AppView {
    /// Name, uid and the [`annotations::WAKE_REQUESTED_AT`] annotation; nothing else is kept.
    pub metadata: ObjectMeta,
    /// `status.appStatus` and `status.url`, read leniently: a value of another type (or an
    /// `appStatus` this version does not know) reads as absent rather than failing the list.
    #[serde(default)]
    pub status: Option<StatusView>,
    /// The host of `status.url` ([`host::url_host`]), computed once when the object arrives.
    #[serde(skip)]
    pub host: Option<String>,
}

/// The two status fields the activator reads.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusView {
    /// `status.appStatus` as written (`sleeping`, `deployed`, ...).
    #[serde(default, deserialize_with = "lenient_string")]
    pub app_status: Option<String>,
    /// `status.url`; dropped once its host is computed.
    #[serde(default, deserialize_with = "lenient_string")]
    pub url: Option<String>,
}

/// A string, or `None` for anything else (never an error).
fn lenient_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(match value {
        serde_json::Value::String(s) => Some(s),
        _ => None,
    })
}

impl AppView {
    /// Whether the operator put the app to sleep (`appStatus: sleeping`).
    pub fn is_sleeping(&self) -> bool {
        self.status.as_ref().and_then(|s| s.app_status.as_deref())
            == Some(AppStatus::Sleeping.as_str())
    }

    /// The app's name.
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    /// The [`annotations::WAKE_REQUESTED_AT`] annotation, if set.
    pub fn wake_requested_at(&self) -> Option<&str> {
        self.metadata
            .annotations
            .as_ref()?
            .get(annotations::WAKE_REQUESTED_AT)
            .map(String::as_str)
    }

    /// Keeps what the activator reads and drops the rest: labels, other annotations (a
    /// `kubectl.kubernetes.io/last-applied-configuration` alone can be kilobytes), managed
    /// fields, owner references; and the URL once its host is known.
    fn strip(&mut self) {
        let meta = std::mem::take(&mut self.metadata);
        let annotations = meta.annotations.and_then(|mut all| {
            let wake = all.remove_entry(annotations::WAKE_REQUESTED_AT)?;
            Some(std::iter::once(wake).collect())
        });
        self.metadata = ObjectMeta {
            name: meta.name,
            uid: meta.uid,
            annotations,
            ..ObjectMeta::default()
        };
        if let Some(status) = self.status.as_mut() {
            self.host = status.url.take().as_deref().and_then(host::url_host);
        }
    }
}

impl Resource for AppView {
    type DynamicType = ();
    type Scope = ClusterResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        ReviewApp::kind(dt)
    }

    fn group(dt: &()) -> Cow<'_, str> {
        ReviewApp::group(dt)
    }

    fn version(dt: &()) -> Cow<'_, str> {
        ReviewApp::version(dt)
    }

    fn plural(dt: &()) -> Cow<'_, str> {
        ReviewApp::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// The reflector's store and whether its first list has completed.
#[derive(Clone)]
pub struct View {
    store: Store<AppView>,
    ready: Arc<AtomicBool>,
}

impl View {
    /// Starts the reflector on `client`; it runs until the returned future is dropped. The
    /// view answers [`View::is_ready`] `false` until the first list has completed.
    pub fn start(client: kube::Client) -> (View, impl Future<Output = ()> + Send) {
        let (store, writer) = reflector::store();
        let ready = Arc::new(AtomicBool::new(false));
        let view = View {
            store: store.clone(),
            ready: ready.clone(),
        };
        let api: Api<AppView> = Api::all(client);
        let config = watcher::Config::default().page_size(LIST_PAGE_SIZE);
        let stream = watcher(api, config)
            .default_backoff()
            .modify(AppView::strip);
        let run = async move {
            let mark_ready = async {
                if store.wait_until_ready().await.is_ok() {
                    ready.store(true, Ordering::Release);
                    tracing::info!("activator: view of the ReviewApps loaded");
                }
            };
            let reflect = reflector(writer, stream).for_each(|event| async move {
                if let Err(err) = event {
                    tracing::warn!(error = %err, "activator: watching ReviewApps (retrying)");
                }
            });
            futures::join!(mark_ready, reflect);
        };
        (view, run)
    }

    /// Whether the first list has completed (after that, the view only ever lags).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// The app whose `status.url` has `host` (in [`host::request_host`]'s form).
    pub fn find(&self, host: &str) -> Option<Arc<AppView>> {
        self.store.find(|app| app.host.as_deref() == Some(host))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    fn view_of(object: serde_json::Value) -> AppView {
        let mut app: AppView = serde_json::from_value(object).unwrap();
        app.strip();
        app
    }

    #[test]
    fn keeps_only_what_the_activator_reads() {
        let app = view_of(json!({
            "apiVersion": "reviewtron.k8s.revelry.co/v1", "kind": "ReviewApp",
            "metadata": {
                "name": "pr-1", "uid": "u-1", "resourceVersion": "7",
                "labels": {"a": "b"},
                "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration": "{...}",
                    "reviewtron.k8s.revelry.co/wake-requested-at": "2026-01-01T00:00:00Z"
                },
                "managedFields": [{"manager": "x"}]
            },
            "spec": {"repo": "r", "config": {"anything": [1, 2, 3]}},
            "status": {"appStatus": "sleeping", "url": "https://PR-1.review.example.com",
                       "conditions": [{"type": "Deployed"}]}
        }));
        assert_eq!(app.name(), "pr-1");
        assert_eq!(app.metadata.uid.as_deref(), Some("u-1"));
        assert!(app.metadata.labels.is_none());
        assert!(app.metadata.managed_fields.is_none());
        assert_eq!(app.metadata.annotations.as_ref().unwrap().len(), 1);
        assert_eq!(app.wake_requested_at(), Some("2026-01-01T00:00:00Z"));
        assert!(app.is_sleeping());
        assert_eq!(app.host.as_deref(), Some("pr-1.review.example.com"));
        assert_eq!(app.status.unwrap().url, None, "the URL is dropped");
    }

    #[test]
    fn odd_statuses_read_as_absent_instead_of_failing() {
        for status in [
            json!({"appStatus": 3, "url": ["x"]}),
            json!({"appStatus": "dreaming"}),
            json!({}),
            json!(null),
        ] {
            let app = view_of(json!({"metadata": {"name": "a"}, "status": status}));
            assert!(!app.is_sleeping(), "{status}");
            assert_eq!(app.host, None, "{status}");
        }
        let app = view_of(json!({"metadata": {"name": "a"}}));
        assert!(!app.is_sleeping());
    }

    #[test]
    fn awake_apps_are_not_sleeping() {
        for status in ["deployed", "building", "error", "expired"] {
            let app = view_of(json!({"metadata": {"name": "a"},
                                     "status": {"appStatus": status}}));
            assert!(!app.is_sleeping(), "{status}");
        }
    }
}
