//! What the daemon watches, and what it keeps of each object: every request a watch sends (its
//! selectors and page size) and the trimming of what it delivers, in one place. Every watch is
//! kube-runtime's `watcher` (metadata only for the child kinds), retried with its default backoff.

use futures::{Stream, StreamExt, TryStreamExt, future};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::core::{DeserializeGuard, PartialObjectMeta};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event, watcher};
use reviewapp_api::ReviewApp;
use reviewapp_resources::ChildKind;
use reviewapp_resources::meta::{LABEL_MANAGED_BY, MANAGED_BY};

use crate::live::Seen;

/// Objects per page of every initial list and relist. A page is deserialised whole before the
/// watcher hands its objects on one by one, so the page size bounds the memory a list costs:
/// at 1000 apps, pages of 100 instead of client-go's 500 cut the operator's peak RSS across a
/// restart from 60 to 37 MiB (docs/benchmarks.md), for a few more list requests at start-up.
pub const LIST_PAGE_SIZE: u32 = 100;

/// The watch configuration every list-and-watch starts from: paginated initial lists.
fn config() -> watcher::Config {
    watcher::Config::default().page_size(LIST_PAGE_SIZE)
}

/// Label selector of every object the operator creates.
fn managed_selector() -> String {
    format!("{LABEL_MANAGED_BY}={MANAGED_BY}")
}

/// Every `ReviewApp`, each kept without `managedFields` (never read, and a large share of each
/// object); one that does not deserialize arrives as such.
pub fn review_apps(
    client: kube::Client,
) -> impl Stream<Item = watcher::Result<Event<DeserializeGuard<ReviewApp>>>> + Send {
    let api: Api<DeserializeGuard<ReviewApp>> = Api::all(client);
    watcher(api, config())
        .default_backoff()
        .modify(|guard: &mut DeserializeGuard<ReviewApp>| {
            if let Ok(app) = guard.0.as_mut() {
                app.metadata.managed_fields = None;
            }
        })
}

/// The operator's build Jobs in `namespace`, each kept with what the build observation and the
/// Job's lifecycle read (status, completions, backoffLimit, owner, finalizers,
/// deletionTimestamp): without its pod template, annotations and `managedFields`, which are most
/// of a Job's size.
pub fn build_jobs(
    client: kube::Client,
    namespace: &str,
) -> impl Stream<Item = watcher::Result<Event<Job>>> + Send + use<> {
    let api: Api<Job> = Api::namespaced(client, namespace);
    watcher(api, config().labels(&managed_selector()))
        .default_backoff()
        .modify(|job: &mut Job| {
            job.metadata.managed_fields = None;
            job.metadata.annotations = None;
            if let Some(spec) = job.spec.as_mut() {
                spec.template = Default::default();
            }
        })
}

/// The operator's objects of `kind` in every namespace, metadata only, each kept as [`Seen`].
/// Errors (say, the CRD of a database operator that is not installed) are retried with
/// backoff; the kind stays unknown until its first list succeeds.
pub fn children(
    client: kube::Client,
    kind: ChildKind,
) -> impl Stream<Item = watcher::Result<Event<Seen>>> + Send {
    metadata(client, kind, config().labels(&managed_selector()), |_| true)
}

/// The operator's Deployments in every namespace, each kept as [`Seen::deployment`]: what any
/// child keeps, plus whether it is available (a woken app's Ingress switches back once it is) and
/// its owner. A full watch, since availability is in the status; the store keeps only that.
pub fn deployments(
    client: kube::Client,
) -> impl Stream<Item = watcher::Result<Event<Seen>>> + Send {
    let api: Api<k8s_openapi::api::apps::v1::Deployment> = Api::all(client);
    watcher(api, config().labels(&managed_selector()))
        .default_backoff()
        .map_ok(|event| map_event(event, Seen::deployment))
}

/// Every Secret the operator may need to know about: its own (the database-copy Secret and
/// the TLS copy, labelled) and every Secret in a namespace apps may use (`allowed`: the apps'
/// env Secrets). Not label-selected, because the env Secrets are the user's and carry no label
/// of ours; each kept as [`Seen`].
pub fn secrets(
    client: kube::Client,
    allowed: impl Fn(&str) -> bool + Send + 'static,
) -> impl Stream<Item = watcher::Result<Event<Seen>>> + Send {
    metadata(client, ChildKind::Secret, config(), move |meta| {
        let ours = meta
            .labels
            .as_ref()
            .and_then(|labels| labels.get(LABEL_MANAGED_BY))
            .is_some_and(|value| value == MANAGED_BY);
        ours || allowed(meta.namespace.as_deref().unwrap_or_default())
    })
}

/// The Secret `namespace`/`name` alone (a field selector on its name), without `managedFields`.
pub fn one_secret(
    client: kube::Client,
    namespace: &str,
    name: &str,
) -> impl Stream<Item = watcher::Result<Event<Secret>>> + Send + use<> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    watcher(api, config)
        .default_backoff()
        .modify(|secret: &mut Secret| secret.metadata.managed_fields = None)
}

/// A metadata-only watch of `kind` in every namespace, keeping the objects `keep` accepts (the
/// delete of one it did not keep is passed on: a no-op for the store).
fn metadata(
    client: kube::Client,
    kind: ChildKind,
    config: watcher::Config,
    keep: impl Fn(&ObjectMeta) -> bool + Send + 'static,
) -> impl Stream<Item = watcher::Result<Event<Seen>>> + Send {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(kind.group(), kind.version(), kind.kind()),
        kind.plural(),
    );
    let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(client, &resource);
    watcher(api, config)
        .default_backoff()
        .filter(move |item| {
            let kept = match item {
                Ok(Event::Apply(meta) | Event::InitApply(meta)) => keep(&meta.metadata),
                _ => true,
            };
            future::ready(kept)
        })
        .map_ok(|event| map_event(event, Seen::new))
}

/// `Event<A>` to `Event<B>`.
fn map_event<A, B>(event: Event<A>, f: impl FnOnce(A) -> B) -> Event<B> {
    match event {
        Event::Apply(a) => Event::Apply(f(a)),
        Event::Delete(a) => Event::Delete(f(a)),
        Event::Init => Event::Init,
        Event::InitApply(a) => Event::InitApply(f(a)),
        Event::InitDone => Event::InitDone,
    }
}
