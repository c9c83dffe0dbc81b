//! What exists: a kube-runtime reflector store per child kind, filled by its metadata watch
//! ([`watch::children`](crate::watch::children)), as a [`LiveIndex`] for the effects layer (so
//! it writes nothing when the desired state already holds, and re-applies a child deleted behind
//! its back). The Secret store also holds the Secrets the apps' environments load (`envSecret`,
//! `env.secrets`), so that a missing one is reported, and its appearance noticed at once
//! ([`apply_secret_event`]). The wildcard TLS Secret is held whole by its own store
//! ([`SourceSecret`]).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use k8s_openapi::api::core::v1::Secret;
use kube::api::DynamicObject;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, Lookup as _, ObjectRef, Store, store::Writer};
use kube::runtime::watcher::Event;
use reviewapp_effects::{LiveIndex, Lookup, SecretLookup};
use reviewapp_resources::{ChildKind, ChildRef};

use crate::index::{Listed, ListingWriter};
use crate::source::SourceSecret;

/// What the child stores keep of one object: where it is, its resourceVersion and its
/// applied-hash annotation (what the effects layer compares), and for a Deployment whether it is
/// available and which `ReviewApp` owns it (what waking waits for); nothing else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    namespace: String,
    name: String,
    resource_version: String,
    applied_hash: Option<String>,
    /// A Deployment with an available replica at its current generation.
    available: bool,
    /// The owning `ReviewApp`, kept for Deployments only.
    owner: Option<String>,
}

impl Seen {
    /// What is kept of `object`.
    pub fn new(object: PartialObjectMeta<DynamicObject>) -> Self {
        Self::from_meta(object.metadata)
    }

    fn from_meta(meta: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Self {
        Seen {
            applied_hash: meta
                .annotations
                .and_then(|mut a| a.remove(reviewapp_effects::APPLIED_HASH_ANNOTATION)),
            namespace: meta.namespace.unwrap_or_default(),
            name: meta.name.unwrap_or_default(),
            resource_version: meta.resource_version.unwrap_or_default(),
            available: false,
            owner: None,
        }
    }

    /// What is kept of a Deployment: as of any object, plus whether it has an available replica
    /// at its current generation (its controller has seen the latest scale) and its owning
    /// `ReviewApp`.
    pub fn deployment(deployment: k8s_openapi::api::apps::v1::Deployment) -> Self {
        let generation = deployment.metadata.generation;
        let owner = deployment
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.kind == "ReviewApp")
            .map(|o| o.name.clone());
        let status = deployment.status.unwrap_or_default();
        let available = status.available_replicas.unwrap_or(0) >= 1
            && status.observed_generation.is_some()
            && status.observed_generation >= generation;
        Seen {
            available,
            owner,
            ..Self::from_meta(deployment.metadata)
        }
    }

    /// The owning app, when this Deployment just became available (it was not in `before`).
    pub fn became_available(&self, before: Option<&Seen>) -> Option<String> {
        (self.available && !before.is_some_and(|b| b.available))
            .then(|| self.owner.clone())
            .flatten()
    }

    fn key(&self) -> (String, String) {
        (self.namespace.clone(), self.name.clone())
    }
}

/// A store of [`Seen`] is keyed by kind, namespace and name.
impl reflector::Lookup for Seen {
    type DynamicType = ChildKind;

    fn kind(kind: &ChildKind) -> Cow<'_, str> {
        kind.kind().into()
    }

    fn group(kind: &ChildKind) -> Cow<'_, str> {
        kind.group().into()
    }

    fn version(kind: &ChildKind) -> Cow<'_, str> {
        kind.version().into()
    }

    fn plural(kind: &ChildKind) -> Cow<'_, str> {
        kind.plural().into()
    }

    fn name(&self) -> Option<Cow<'_, str>> {
        Some(self.name.as_str().into())
    }

    fn namespace(&self) -> Option<Cow<'_, str>> {
        Some(self.namespace.as_str().into())
    }

    /// Not part of the key, so not copied into it (the value has it).
    fn resource_version(&self) -> Option<Cow<'_, str>> {
        None
    }

    fn uid(&self) -> Option<Cow<'_, str>> {
        None
    }
}

/// Every child kind's store, and the TLS source Secret's.
pub struct LiveObjects {
    kinds: HashMap<ChildKind, KindStore>,
    tls: Option<SourceSecret>,
}

/// The store of one child kind.
struct KindStore {
    store: Store<Seen>,
    listed: Listed,
}

/// The writers of [`LiveObjects`]' stores, one for each watch.
pub struct LiveWriters {
    /// One per child kind.
    pub kinds: Vec<(ChildKind, ListingWriter<Seen>)>,
    /// The TLS source Secret's, when there is one.
    pub tls: Option<ListingWriter<Secret>>,
}

impl LiveObjects {
    /// Empty stores for every [`ChildKind`] and, when `tls` names one (namespace, name), the TLS
    /// source Secret; and their writers.
    pub fn new(tls: Option<(&str, &str)>) -> (Self, LiveWriters) {
        let writers: Vec<_> = ChildKind::ALL
            .into_iter()
            .map(|kind| (kind, ListingWriter::new(Writer::new(kind))))
            .collect();
        let kinds = writers
            .iter()
            .map(|(kind, writer)| {
                let store = writer.store();
                let listed = writer.listed();
                (*kind, KindStore { store, listed })
            })
            .collect();
        let (tls, tls_writer) = match tls {
            Some((namespace, name)) => {
                let (source, writer) = SourceSecret::new(namespace, name);
                (Some(source), Some(writer))
            }
            None => (None, None),
        };
        let writers = LiveWriters {
            kinds: writers,
            tls: tls_writer,
        };
        (LiveObjects { kinds, tls }, writers)
    }

    /// The TLS source Secret's store, when there is one.
    pub fn tls_source(&self) -> Option<&SourceSecret> {
        self.tls.as_ref()
    }

    /// Waits until the stores of the kinds every cluster has (all but the database CRDs) and
    /// the TLS source Secret's have listed.
    pub async fn wait_until_ready(&self) {
        let core = self
            .kinds
            .iter()
            .filter(|(kind, _)| !matches!(kind, ChildKind::KubedbPostgres | ChildKind::CnpgCluster))
            .map(|(_, kind)| kind.store.wait_until_ready());
        // An error means the writer is gone: its watch task ended, and with it the daemon.
        let _ = futures::future::join_all(core).await;
        if let Some(tls) = &self.tls {
            tls.wait_until_ready().await;
        }
    }
}

/// The store key of `child`.
fn key(child: &ChildRef) -> ObjectRef<Seen> {
    ObjectRef::new_with(&child.name, child.kind).within(&child.namespace)
}

impl LiveIndex for LiveObjects {
    fn lookup(&self, child: &ChildRef) -> Lookup {
        let Some(kind) = self.kinds.get(&child.kind).filter(|kind| kind.listed.get()) else {
            return Lookup::Unknown;
        };
        match kind.store.get(&key(child)) {
            Some(seen) => Lookup::Present {
                resource_version: seen.resource_version.clone(),
            },
            None => Lookup::Absent,
        }
    }

    fn applied_hash(&self, child: &ChildRef) -> Option<String> {
        let seen = self.kinds.get(&child.kind)?.store.get(&key(child))?;
        seen.applied_hash.clone()
    }

    fn available(&self, child: &ChildRef) -> bool {
        self.kinds
            .get(&child.kind)
            .and_then(|kind| kind.store.get(&key(child)))
            .is_some_and(|seen| seen.available)
    }

    fn source_secret(&self, namespace: &str, name: &str) -> SecretLookup {
        match &self.tls {
            Some(tls) => tls.lookup(namespace, name),
            None => SecretLookup::Unknown,
        }
    }
}

/// Applies one event of the Secret watch to its store. Returns the `(namespace, name)` of every
/// Secret that appeared or went with it, once the first list has completed (a relist reports
/// the difference it made): the apps that load one of them are to be reconciled.
pub fn apply_secret_event(
    writer: &mut ListingWriter<Seen>,
    event: &Event<Seen>,
) -> Vec<(String, String)> {
    let store = writer.store();
    if !writer.listed().get() {
        writer.apply(event);
        return Vec::new();
    }
    let known = |seen: &Seen| store.get(&seen.to_object_ref(ChildKind::Secret)).is_some();
    let changed = match event {
        Event::Apply(seen) if !known(seen) => vec![seen.key()],
        Event::Delete(seen) if known(seen) => vec![seen.key()],
        Event::InitDone => {
            let before = keys(&store);
            writer.apply(event);
            let after = keys(&store);
            return before.symmetric_difference(&after).cloned().collect();
        }
        _ => Vec::new(),
    };
    writer.apply(event);
    changed
}

/// Applies one event of the Deployment watch to its store. Returns the app whose Deployment
/// became available with it (a woken app waits for that to switch its Ingress back).
pub fn apply_deployment_event(
    writer: &mut ListingWriter<Seen>,
    event: &Event<Seen>,
) -> Option<String> {
    let store = writer.store();
    let became = match event {
        Event::Apply(seen) => {
            let before = store.get(&seen.to_object_ref(ChildKind::Deployment));
            seen.became_available(before.as_deref())
        }
        _ => None,
    };
    writer.apply(event);
    became
}

fn keys(store: &Store<Seen>) -> HashSet<(String, String)> {
    store.state().iter().map(|seen| seen.key()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(name: &str) -> Seen {
        Seen {
            namespace: "ns".into(),
            name: name.into(),
            resource_version: format!("rv-{name}"),
            applied_hash: Some(format!("hash-{name}")),
            available: false,
            owner: None,
        }
    }

    fn at(kind: ChildKind, name: &str) -> ChildRef {
        ChildRef::new(kind, "ns", name)
    }

    fn ns(name: &str) -> (String, String) {
        ("ns".to_string(), name.to_string())
    }

    /// The live objects, and the writer of `kind`'s store.
    fn live_with_writer(kind: ChildKind) -> (LiveObjects, ListingWriter<Seen>) {
        let (live, writers) = LiveObjects::new(None);
        let writer = writers.kinds.into_iter().find(|(k, _)| *k == kind);
        (
            live,
            writer.map(|(_, w)| w).unwrap_or_else(|| panic!("{kind:?}")),
        )
    }

    #[test]
    fn what_is_kept_of_an_object_is_its_place_version_and_applied_hash() {
        let object: PartialObjectMeta<DynamicObject> = serde_json::from_value(serde_json::json!({
            "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
            "metadata": {"name": "a", "namespace": "ns", "resourceVersion": "rv-a", "uid": "u",
                         "labels": {"x": "y"},
                         "annotations": {"other": "z", "reviewtron.k8s.revelry.co/applied-hash": "hash-a"},
                         "managedFields": [{"manager": "m"}]}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(Seen::new(object), seen("a"));
    }

    #[test]
    fn unknown_until_the_first_list_then_present_or_absent() {
        let (live, mut writer) = live_with_writer(ChildKind::Deployment);
        let a = at(ChildKind::Deployment, "a");
        assert_eq!(live.lookup(&a), Lookup::Unknown);
        writer.apply(&Event::Init);
        writer.apply(&Event::InitApply(seen("a")));
        assert_eq!(
            live.lookup(&a),
            Lookup::Unknown,
            "not listed before InitDone"
        );
        writer.apply(&Event::InitDone);
        assert_eq!(
            live.lookup(&a),
            Lookup::Present {
                resource_version: "rv-a".into()
            }
        );
        assert_eq!(live.applied_hash(&a).as_deref(), Some("hash-a"));
        assert_eq!(live.lookup(&at(ChildKind::Deployment, "b")), Lookup::Absent);
        writer.apply(&Event::Delete(seen("a")));
        assert_eq!(live.lookup(&a), Lookup::Absent);
        // Another kind, not listed: unknown, whatever the Deployments say.
        assert_eq!(live.lookup(&at(ChildKind::Service, "a")), Lookup::Unknown);
    }

    #[test]
    fn a_relist_drops_objects_deleted_during_a_watch_gap() {
        let (live, mut writer) = live_with_writer(ChildKind::Service);
        for event in [
            Event::Init,
            Event::InitApply(seen("a")),
            Event::InitApply(seen("b")),
            Event::InitDone,
        ] {
            writer.apply(&event);
        }
        writer.apply(&Event::Init);
        writer.apply(&Event::InitApply(seen("b")));
        assert!(
            matches!(
                live.lookup(&at(ChildKind::Service, "a")),
                Lookup::Present { .. }
            ),
            "the old view serves until the relist completes"
        );
        writer.apply(&Event::InitDone);
        assert_eq!(live.lookup(&at(ChildKind::Service, "a")), Lookup::Absent);
        assert!(matches!(
            live.lookup(&at(ChildKind::Service, "b")),
            Lookup::Present { .. }
        ));
    }

    #[test]
    fn appearing_and_disappearing_secrets_are_reported_once_listed() {
        let (_live, mut writer) = live_with_writer(ChildKind::Secret);
        let mut apply = |event: Event<Seen>| apply_secret_event(&mut writer, &event);
        apply(Event::Init);
        assert!(apply(Event::InitApply(seen("a"))).is_empty());
        assert!(
            apply(Event::InitDone).is_empty(),
            "the first list reports nothing"
        );
        assert_eq!(apply(Event::Apply(seen("b"))), [ns("b")]);
        assert!(
            apply(Event::Apply(seen("b"))).is_empty(),
            "a change is not an appearance"
        );
        assert_eq!(apply(Event::Delete(seen("a"))), [ns("a")]);
        assert!(apply(Event::Delete(seen("a"))).is_empty());
        // A relist that no longer shows b and shows c: both reported when it completes.
        apply(Event::Init);
        assert!(apply(Event::InitApply(seen("c"))).is_empty());
        let mut relisted = apply(Event::InitDone);
        relisted.sort();
        assert_eq!(relisted, [ns("b"), ns("c")]);
    }

    #[tokio::test]
    async fn ready_once_every_core_kind_and_the_tls_source_listed() {
        let (live, writers) = LiveObjects::new(Some(("default", "tls")));
        let mut tls = writers.tls.unwrap_or_else(|| panic!("a TLS writer"));
        for (kind, mut writer) in writers.kinds {
            if !matches!(kind, ChildKind::KubedbPostgres | ChildKind::CnpgCluster) {
                writer.apply(&Event::Init);
                writer.apply(&Event::InitDone);
            }
        }
        let mut ready = std::pin::pin!(live.wait_until_ready());
        assert!(
            futures::poll!(ready.as_mut()).is_pending(),
            "the TLS source has not listed"
        );
        tls.apply(&Event::Init);
        tls.apply(&Event::InitDone);
        assert!(
            futures::poll!(ready).is_ready(),
            "the database kinds are not waited for"
        );
        assert_eq!(
            live.lookup(&at(ChildKind::KubedbPostgres, "db")),
            Lookup::Unknown
        );
    }

    /// The start-up wait parks on every store; the Secret watch, listing last, checks at every
    /// event whether its store has listed. That check must not take the wait's wake-up.
    #[tokio::test(start_paused = true)]
    async fn the_start_up_wait_is_woken_by_the_last_store_to_list() {
        let (live, writers) = LiveObjects::new(None);
        let live = std::sync::Arc::new(live);
        let waiting = tokio::spawn({
            let live = live.clone();
            async move { live.wait_until_ready().await }
        });
        tokio::task::yield_now().await;
        let mut secrets = None;
        for (kind, mut writer) in writers.kinds {
            if kind == ChildKind::Secret {
                secrets = Some(writer);
            } else {
                writer.apply(&Event::Init);
                writer.apply(&Event::InitDone);
            }
        }
        let mut secrets = secrets.unwrap();
        for event in [Event::Init, Event::InitApply(seen("a")), Event::InitDone] {
            apply_secret_event(&mut secrets, &event);
            tokio::task::yield_now().await;
        }
        let woken = tokio::time::timeout(std::time::Duration::from_secs(60), waiting).await;
        assert!(woken.is_ok(), "the wait was never woken");
    }
}
