//! The `ReviewApp`s as the watch delivered them, and what the daemon remembers about them on top
//! of the [`Classifier`]: the last object of each app whose DELETE is pending (it may be gone from
//! the API already), the uids whose teardown completed, and whether the first list has
//! completed. Plain functions, no IO, no clock: the `ReviewApp` watch task [`apply`]s events, the
//! handlers take the object to handle and record their own writes.
//!
//! [`apply`]: AppIndex::apply

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use kube::core::DeserializeGuard;
use kube::runtime::watcher;
use reviewapp_api::{FINALIZER, ReviewApp};
use reviewapp_state::AppEvent;

use crate::classify::{Classified, Classifier};
use crate::status::app_status_label;

/// The `ReviewApp` index. See the module documentation.
#[derive(Debug, Default)]
pub struct AppIndex {
    classifier: Classifier,
    /// The last object of each app gone from the API whose DELETE is pending.
    tombstones: HashMap<String, Arc<ReviewApp>>,
    /// uids whose teardown completed: later events for them (our own finalizer removal echoing
    /// back, a RECONCILE from a deleted build Job) have nothing left to do.
    torn_down: HashSet<String>,
    /// Whether the `ReviewApp` list has completed: before, an app the index does not know may
    /// simply not be listed yet, so its build Jobs are not orphans.
    listed: bool,
}

impl AppIndex {
    /// Applies one `ReviewApp` watch event. Returns the app events to schedule and the objects
    /// that do not deserialize (to report); echoes of a teardown that completed are dropped.
    pub fn apply(&mut self, event: watcher::Event<DeserializeGuard<ReviewApp>>) -> Vec<Classified> {
        if matches!(event, watcher::Event::InitDone) {
            self.listed = true;
        }
        let mut classified = self.classifier.classify(event);
        classified.retain(|item| self.keep(item));
        classified
    }

    /// Whether `item` is still news; keeps the object of an app gone from the API (a watch
    /// delete, a relist, a new uid) for its teardown.
    fn keep(&mut self, item: &Classified) -> bool {
        let Classified::App {
            name,
            event,
            object,
        } = item
        else {
            return true;
        };
        if self.is_torn_down(object) {
            return false;
        }
        if *event == AppEvent::Delete && object.metadata.deletion_timestamp.is_none() {
            self.tombstones.insert(name.clone(), object.clone());
        }
        true
    }

    fn is_torn_down(&self, app: &ReviewApp) -> bool {
        app.metadata
            .uid
            .as_ref()
            .is_some_and(|uid| self.torn_down.contains(uid))
    }

    /// The object to handle for `event` on app `name`, or `None` when there is nothing to
    /// handle (unknown, or torn down already). For a DELETE of an object already gone from the
    /// API: its last known state with the finalizers cleared (they went with it: a finalizer
    /// patch by name could hit a new object of the same name), or `None` when our finalizer was
    /// gone and we had handled the app (our teardown ran).
    pub fn latest(&mut self, name: &str, event: AppEvent) -> Option<Arc<ReviewApp>> {
        let app = if event == AppEvent::Delete
            && let Some(gone) = self.tombstones.remove(name)
        {
            gone_app(&gone)?
        } else {
            self.classifier.last_known(name)?
        };
        (!self.is_torn_down(&app)).then_some(app)
    }

    /// Records the object the API server returned for the operator's own write, so that the
    /// watch event echoing it is no news.
    pub fn record_write(&mut self, written: ReviewApp) {
        self.classifier.record_write(written);
    }

    /// Records that the teardown of `app` completed.
    pub fn record_teardown(&mut self, app: &ReviewApp) {
        if let Some(uid) = &app.metadata.uid {
            self.torn_down.insert(uid.clone());
        }
    }

    /// Whether the first `ReviewApp` list has completed: from then on an app the index does not
    /// know is gone.
    pub fn listed(&self) -> bool {
        self.listed
    }

    /// Names of every known app, sorted (for the RECONCILE tick).
    pub fn names(&self) -> Vec<String> {
        self.classifier.names()
    }

    /// Names of the apps whose environment loads Secret `namespace`/`name` (`envSecret` or
    /// `env.secrets`), from their specs as last seen.
    pub fn using_secret(&self, namespace: &str, name: &str) -> Vec<String> {
        self.classifier
            .objects()
            .into_iter()
            .filter(|app| loads_secret(app, namespace, name))
            .filter_map(|app| app.metadata.name.clone())
            .collect()
    }

    /// The awake apps that must go to sleep for at most `cap` to be awake (see
    /// [`awake_cap`](crate::awake_cap)).
    pub fn over_cap(&self, cap: u32) -> std::collections::BTreeSet<String> {
        if cap == 0 {
            return Default::default();
        }
        let apps = self.classifier.objects();
        crate::awake_cap::over_cap(apps.iter().map(|app| app.as_ref()), cap)
    }

    /// Number of apps by `appStatus` (`none` without one); every status is present.
    pub fn count_by_status(&self) -> BTreeMap<String, i64> {
        let mut counts: BTreeMap<String, i64> = [
            "building", "deployed", "error", "expired", "none", "sleeping",
        ]
        .into_iter()
        .map(|status| (status.to_string(), 0))
        .collect();
        for app in self.classifier.objects() {
            *counts
                .entry(app_status_label(app.status.as_ref()))
                .or_default() += 1;
        }
        counts
    }
}

/// The object to tear down for an app gone from the API; see [`AppIndex::latest`].
fn gone_app(gone: &ReviewApp) -> Option<Arc<ReviewApp>> {
    let had_ours = gone
        .metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == FINALIZER);
    if !had_ours && gone.status.is_some() {
        return None;
    }
    let mut gone = gone.clone();
    gone.metadata.finalizers = None;
    Some(Arc::new(gone))
}

/// Whether `app`'s environment loads Secret `namespace`/`name`.
fn loads_secret(app: &ReviewApp, namespace: &str, name: &str) -> bool {
    let Some(config) = app.spec.config.as_ref() else {
        return false;
    };
    config.namespace.as_deref().map(str::trim) == Some(namespace)
        && (config.env_secret.as_deref() == Some(name)
            || config
                .env
                .as_ref()
                .and_then(|env| env.secrets.as_ref())
                .is_some_and(|secrets| secrets.iter().any(|s| s == name)))
}

#[cfg(test)]
mod tests {
    use kube::runtime::watcher::Event;
    use reviewapp_api::ReviewAppStatus;

    use super::*;

    fn app(uid: &str, rv: &str) -> ReviewApp {
        let mut app: ReviewApp =
            serde_yaml::from_str(include_str!("../../../dev/samples/reviewapp.yaml"))
                .unwrap_or_else(|e| panic!("{e}"));
        app.metadata.namespace = None;
        app.metadata.uid = Some(uid.into());
        app.metadata.resource_version = Some(rv.into());
        app.metadata.finalizers = Some(vec![FINALIZER.into()]);
        app.status = None;
        app
    }

    fn apply(index: &mut AppIndex, app: ReviewApp) -> Vec<(String, AppEvent)> {
        events(index.apply(Event::Apply(DeserializeGuard(Ok(app)))))
    }

    fn events(classified: Vec<Classified>) -> Vec<(String, AppEvent)> {
        classified
            .into_iter()
            .filter_map(|item| match item {
                Classified::App { name, event, .. } => Some((name, event)),
                Classified::Malformed { .. } => None,
            })
            .collect()
    }

    fn relist_without_it(index: &mut AppIndex) -> Vec<(String, AppEvent)> {
        index.apply(Event::Init);
        events(index.apply(Event::InitDone))
    }

    #[test]
    fn an_app_gone_from_the_api_is_kept_for_one_teardown_without_its_finalizers() {
        let mut index = AppIndex::default();
        assert_eq!(
            apply(&mut index, app("u1", "1")),
            [("test".into(), AppEvent::Add)]
        );
        assert_eq!(
            relist_without_it(&mut index),
            [("test".into(), AppEvent::Delete)]
        );
        assert!(index.names().is_empty());
        assert!(
            index.latest("test", AppEvent::Reconcile).is_none(),
            "only its DELETE handles it"
        );
        let gone = index.latest("test", AppEvent::Delete);
        let gone = gone.as_deref().map(|app| &app.metadata);
        assert_eq!(gone.and_then(|m| m.uid.as_deref()), Some("u1"));
        assert_eq!(gone.map(|m| m.finalizers.clone()), Some(None));
        assert!(index.latest("test", AppEvent::Delete).is_none(), "taken");
    }

    #[test]
    fn a_gone_app_without_our_finalizer_and_with_a_status_was_torn_down_already() {
        let mut index = AppIndex::default();
        let mut handled = app("u1", "1");
        handled.metadata.finalizers = None;
        handled.status = Some(ReviewAppStatus::default());
        apply(&mut index, handled);
        relist_without_it(&mut index);
        assert!(index.latest("test", AppEvent::Delete).is_none());
    }

    #[test]
    fn events_for_a_torn_down_uid_are_no_news() {
        let mut index = AppIndex::default();
        apply(&mut index, app("u1", "1"));
        let known = index.latest("test", AppEvent::Modify);
        assert!(known.is_some());
        index.record_teardown(&app("u1", "1"));
        assert!(apply(&mut index, app("u1", "2")).is_empty());
        assert!(index.latest("test", AppEvent::Reconcile).is_none());
        // A new object under the same name is another app.
        let events = apply(&mut index, app("u2", "3"));
        assert_eq!(events, [("test".into(), AppEvent::Add)]);
        assert!(index.latest("test", AppEvent::Reconcile).is_some());
    }

    #[test]
    fn listed_once_the_first_list_completes() {
        let mut index = AppIndex::default();
        apply(&mut index, app("u1", "1"));
        assert!(!index.listed());
        index.apply(Event::Init);
        assert!(!index.listed(), "listing");
        index.apply(Event::InitDone);
        assert!(index.listed());
    }

    #[test]
    fn the_apps_loading_a_secret_are_found_by_namespace_and_name() {
        let mut index = AppIndex::default();
        apply(&mut index, app("u1", "1"));
        assert_eq!(
            index.using_secret("test-review-app", "secret-two"),
            ["test"]
        );
        assert!(
            index
                .using_secret("test-review-app", "unrelated")
                .is_empty()
        );
        assert!(index.using_secret("elsewhere", "secret-two").is_empty());
    }

    #[test]
    fn apps_are_counted_by_app_status() {
        let mut index = AppIndex::default();
        apply(&mut index, app("u1", "1"));
        let mut deployed = app("u2", "1");
        deployed.metadata.name = Some("other".into());
        deployed.status = Some(ReviewAppStatus {
            app_status: Some(reviewapp_api::AppStatus::Deployed),
            ..ReviewAppStatus::default()
        });
        apply(&mut index, deployed);
        let counts: Vec<(String, i64)> = index.count_by_status().into_iter().collect();
        assert_eq!(
            counts,
            [
                ("building".into(), 0),
                ("deployed".into(), 1),
                ("error".into(), 0),
                ("expired".into(), 0),
                ("none".into(), 1),
                ("sleeping".into(), 0)
            ]
        );
    }
}
