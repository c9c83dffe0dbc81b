//! What exists: metadata watches of every child kind, as a [`LiveIndex`] for the effects layer
//! (so it writes nothing when the desired state already holds, and re-applies a child deleted
//! behind its back). Every kind is label-selected (the operator's own objects) except Secrets:
//! that watch also covers the Secrets the apps' environments load (`envSecret`, `env.secrets`),
//! so that a missing one is reported, and its appearance noticed at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use futures::{Stream, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher as watch};
use reviewapp_effects::{LiveIndex, Lookup, SecretLookup};
use reviewapp_resources::{ChildKind, ChildRef};

use crate::source::SourceSecret;

/// Label selector of every object the operator creates.
pub const MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=review-app-operator";

/// Objects per page of every initial list and relist. A page is deserialised whole before the
/// watcher hands its objects on one by one, so the page size bounds the memory a list costs:
/// at 1000 apps, pages of 100 instead of client-go's 500 cut the operator's peak RSS across a
/// restart from 60 to 37 MiB (docs/benchmarks.md), for a few more list requests at start-up.
pub const LIST_PAGE_SIZE: u32 = 100;

/// The watch configuration every watch starts from: paginated initial lists.
pub fn watch_config() -> watcher::Config {
    watcher::Config::default().page_size(LIST_PAGE_SIZE)
}

type Key = (String, String);

/// What the cache keeps of one object: its resourceVersion and its applied-hash annotation.
pub type Seen = (String, Option<String>);

/// The known objects of one kind.
#[derive(Default)]
pub struct KindCache {
    synced: AtomicBool,
    objects: RwLock<HashMap<Key, Seen>>,
    relist: RwLock<Option<HashMap<Key, Seen>>>,
}

impl KindCache {
    /// Whether the first list has completed.
    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    fn lookup(&self, namespace: &str, name: &str) -> Lookup {
        if !self.synced() {
            return Lookup::Unknown;
        }
        let objects = self.objects.read().unwrap_or_else(|e| e.into_inner());
        match objects.get(&(namespace.to_string(), name.to_string())) {
            Some((rv, _)) => Lookup::Present {
                resource_version: rv.clone(),
            },
            None => Lookup::Absent,
        }
    }

    fn applied_hash(&self, namespace: &str, name: &str) -> Option<String> {
        let objects = self.objects.read().unwrap_or_else(|e| e.into_inner());
        objects
            .get(&(namespace.to_string(), name.to_string()))
            .and_then(|(_, hash)| hash.clone())
    }

    /// Applies one watch event. Returns the `(namespace, name)` of every object that appeared or
    /// disappeared with it, once the first list has completed (a relist reports the difference
    /// it made).
    pub fn apply(&self, event: Event<(Key, Seen)>) -> Vec<Key> {
        let synced = self.synced();
        let changed = |key: &Key| {
            if synced {
                vec![key.clone()]
            } else {
                Vec::new()
            }
        };
        match event {
            Event::Apply((key, rv)) => {
                let before = self
                    .objects
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key.clone(), rv);
                if before.is_none() {
                    return changed(&key);
                }
            }
            Event::Delete((key, _)) => {
                let before = self
                    .objects
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&key);
                if before.is_some() {
                    return changed(&key);
                }
            }
            Event::Init => {
                *self.relist.write().unwrap_or_else(|e| e.into_inner()) = Some(HashMap::new());
            }
            Event::InitApply((key, rv)) => {
                if let Some(relist) = self
                    .relist
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_mut()
                {
                    relist.insert(key, rv);
                }
            }
            Event::InitDone => {
                let mut differences = Vec::new();
                if let Some(relist) = self
                    .relist
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .take()
                {
                    let mut objects = self.objects.write().unwrap_or_else(|e| e.into_inner());
                    if synced {
                        differences.extend(
                            objects
                                .keys()
                                .filter(|key| !relist.contains_key(*key))
                                .chain(relist.keys().filter(|key| !objects.contains_key(*key)))
                                .cloned(),
                        );
                    }
                    *objects = relist;
                }
                self.synced.store(true, Ordering::Release);
                return differences;
            }
        }
        Vec::new()
    }

    /// Number of known objects.
    pub fn len(&self) -> usize {
        self.objects.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no object is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Every child kind's cache, and the TLS source Secret's.
#[derive(Default)]
pub struct LiveObjects {
    kinds: HashMap<ChildKind, Arc<KindCache>>,
    tls: Option<Arc<SourceSecret>>,
}

impl LiveObjects {
    /// Caches for every [`ChildKind`].
    pub fn new() -> Self {
        Self {
            kinds: ChildKind::ALL
                .iter()
                .map(|k| (*k, Arc::default()))
                .collect(),
            tls: None,
        }
    }

    /// Also caches the TLS source Secret `namespace`/`name`.
    pub fn with_tls_source(mut self, namespace: &str, name: &str) -> Self {
        self.tls = Some(Arc::new(SourceSecret::new(namespace, name)));
        self
    }

    /// The TLS source Secret's cache, when there is one.
    pub fn tls_source(&self) -> Option<Arc<SourceSecret>> {
        self.tls.clone()
    }

    /// The cache of `kind`.
    pub fn cache(&self, kind: ChildKind) -> Arc<KindCache> {
        self.kinds.get(&kind).cloned().unwrap_or_default()
    }

    /// Whether the kinds every cluster has (all but the database CRDs) and the TLS source
    /// Secret are synced.
    pub fn core_synced(&self) -> bool {
        ChildKind::ALL
            .iter()
            .filter(|k| !matches!(k, ChildKind::KubedbPostgres | ChildKind::CnpgCluster))
            .all(|k| self.cache(*k).synced())
            && self.tls.as_ref().is_none_or(|tls| tls.synced())
    }
}

impl LiveIndex for LiveObjects {
    fn lookup(&self, child: &ChildRef) -> Lookup {
        match self.kinds.get(&child.kind) {
            Some(cache) => cache.lookup(&child.namespace, &child.name),
            None => Lookup::Unknown,
        }
    }

    fn source_secret(&self, namespace: &str, name: &str) -> SecretLookup {
        match &self.tls {
            Some(tls) => tls.lookup(namespace, name),
            None => SecretLookup::Unknown,
        }
    }

    fn applied_hash(&self, child: &ChildRef) -> Option<String> {
        self.kinds
            .get(&child.kind)?
            .applied_hash(&child.namespace, &child.name)
    }
}

/// The `ApiResource` of a child kind.
pub fn api_resource(kind: ChildKind) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(kind.group(), kind.version(), kind.kind()),
        kind.plural(),
    )
}

/// A metadata-only, label-selected watch of `kind` in every namespace, as cache events.
/// Errors (say, the CRD of a database operator that is not installed) are retried with backoff;
/// the kind stays [`Lookup::Unknown`] until its first list succeeds.
pub fn watch_kind(
    client: kube::Client,
    kind: ChildKind,
) -> impl Stream<Item = Event<(Key, Seen)>> + Send {
    watch_metadata(client, kind, Some(MANAGED_SELECTOR), |_| true)
}

/// A metadata-only watch of every Secret the operator may need to know about: its own (the
/// database-copy Secret and the TLS copy, labelled) and every Secret in a namespace apps may use
/// (`allowed`: the app's env Secrets). Unselected, because the env Secrets are the user's and
/// carry no label of ours; only name, namespace, resourceVersion and the applied-hash
/// annotation of each are kept.
pub fn watch_secrets(
    client: kube::Client,
    allowed: impl Fn(&str) -> bool + Send + Sync + 'static,
) -> impl Stream<Item = Event<(Key, Seen)>> + Send {
    let managed = MANAGED_SELECTOR.split_once('=');
    watch_metadata(client, ChildKind::Secret, None, move |meta| {
        let labelled = managed.is_some_and(|(key, value)| {
            meta.labels
                .as_ref()
                .and_then(|labels| labels.get(key))
                .is_some_and(|v| v == value)
        });
        labelled || allowed(meta.namespace.as_deref().unwrap_or_default())
    })
}

/// A metadata-only watch of `kind` in every namespace (label-selected by `selector`), keeping
/// the objects `keep` accepts, as cache events.
fn watch_metadata(
    client: kube::Client,
    kind: ChildKind,
    selector: Option<&str>,
    keep: impl Fn(&ObjectMeta) -> bool + Send + Sync + 'static,
) -> impl Stream<Item = Event<(Key, Seen)>> + Send {
    let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(client, &api_resource(kind));
    let config = match selector {
        Some(selector) => watch_config().labels(selector),
        None => watch_config(),
    };
    let keep = std::sync::Arc::new(keep);
    watch(api, config)
        .default_backoff()
        .filter_map(move |event| {
            let keep = keep.clone();
            async move {
                let event = match event {
                    Ok(event) => event,
                    Err(err) => {
                        tracing::debug!(kind = kind.kind(), error = %err, "child watch error; retrying");
                        return None;
                    }
                };
                // An object not kept is dropped; its delete (a no-op for the cache) is kept.
                if let Event::Apply(meta) | Event::InitApply(meta) = &event
                    && !keep(&meta.metadata)
                {
                    return None;
                }
                Some(map_event(event, |meta| {
                    let hash = meta
                        .metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(reviewapp_effects::APPLIED_HASH_ANNOTATION).cloned());
                    let key = (
                        meta.metadata.namespace.unwrap_or_default(),
                        meta.metadata.name.unwrap_or_default(),
                    );
                    (key, (meta.metadata.resource_version.unwrap_or_default(), hash))
                }))
            }
        })
}

/// `Event<A>` to `Event<B>`.
pub fn map_event<A, B>(event: Event<A>, f: impl FnOnce(A) -> B) -> Event<B> {
    match event {
        Event::Apply(a) => Event::Apply(f(a)),
        Event::Delete(a) => Event::Delete(f(a)),
        Event::Init => Event::Init,
        Event::InitApply(a) => Event::InitApply(f(a)),
        Event::InitDone => Event::InitDone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> (Key, Seen) {
        (
            ("ns".into(), name.into()),
            (format!("rv-{name}"), Some(format!("hash-{name}"))),
        )
    }

    #[test]
    fn unknown_until_the_first_list_then_present_or_absent() {
        let cache = KindCache::default();
        assert_eq!(cache.lookup("ns", "a"), Lookup::Unknown);
        cache.apply(Event::Init);
        cache.apply(Event::InitApply(key("a")));
        assert_eq!(
            cache.lookup("ns", "a"),
            Lookup::Unknown,
            "not synced before InitDone"
        );
        cache.apply(Event::InitDone);
        assert_eq!(
            cache.lookup("ns", "a"),
            Lookup::Present {
                resource_version: "rv-a".into()
            }
        );
        assert_eq!(cache.lookup("ns", "b"), Lookup::Absent);
        cache.apply(Event::Delete(key("a")));
        assert_eq!(cache.lookup("ns", "a"), Lookup::Absent);
    }

    #[test]
    fn appearing_and_disappearing_objects_are_reported_once_synced() {
        let cache = KindCache::default();
        let ns = |name: &str| ("ns".to_string(), name.to_string());
        cache.apply(Event::Init);
        assert!(cache.apply(Event::InitApply(key("a"))).is_empty());
        assert!(
            cache.apply(Event::InitDone).is_empty(),
            "the first list reports nothing"
        );
        assert_eq!(cache.apply(Event::Apply(key("b"))), [ns("b")]);
        assert!(
            cache.apply(Event::Apply(key("b"))).is_empty(),
            "a change is not an appearance"
        );
        assert_eq!(cache.apply(Event::Delete(key("a"))), [ns("a")]);
        assert!(cache.apply(Event::Delete(key("a"))).is_empty());
        // A relist that no longer shows b and shows c: both reported when it completes.
        cache.apply(Event::Init);
        cache.apply(Event::InitApply(key("c")));
        let mut relisted = cache.apply(Event::InitDone);
        relisted.sort();
        assert_eq!(relisted, [ns("b"), ns("c")]);
    }

    #[test]
    fn a_relist_drops_objects_deleted_during_a_watch_gap() {
        let cache = KindCache::default();
        cache.apply(Event::Init);
        cache.apply(Event::InitApply(key("a")));
        cache.apply(Event::InitApply(key("b")));
        cache.apply(Event::InitDone);
        cache.apply(Event::Init);
        cache.apply(Event::InitApply(key("b")));
        assert_eq!(
            cache.len(),
            2,
            "the old view serves until the relist completes"
        );
        cache.apply(Event::InitDone);
        assert_eq!(cache.lookup("ns", "a"), Lookup::Absent);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn live_objects_answer_per_kind() {
        let live = LiveObjects::new();
        let deployment = live.cache(ChildKind::Deployment);
        deployment.apply(Event::Init);
        deployment.apply(Event::InitApply(key("app")));
        deployment.apply(Event::InitDone);
        let child = ChildRef {
            kind: ChildKind::Deployment,
            namespace: "ns".into(),
            name: "app".into(),
        };
        assert!(matches!(live.lookup(&child), Lookup::Present { .. }));
        assert_eq!(live.applied_hash(&child).as_deref(), Some("hash-app"));
        let service = ChildRef {
            kind: ChildKind::Service,
            ..child
        };
        assert_eq!(live.lookup(&service), Lookup::Unknown);
        assert!(!live.core_synced());
    }
}
