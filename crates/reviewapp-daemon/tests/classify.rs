//! Watch events → ADD / MODIFY / DELETE.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::core::DeserializeGuard;
use kube::core::error_boundary::InvalidObject;
use kube::runtime::watcher::Event;
use reviewapp_api::ReviewApp;
use reviewapp_daemon::classify::{Classified, Classifier};
use reviewapp_state::AppEvent::{self, Add, Modify};

const SAMPLE: &str = include_str!("../../../dev/samples/reviewapp.yaml");

fn app(name: &str, uid: &str, rv: &str) -> ReviewApp {
    let mut app: ReviewApp = serde_yaml::from_str(SAMPLE).unwrap();
    app.metadata.name = Some(name.to_owned());
    app.metadata.namespace = None;
    app.metadata.uid = Some(uid.to_owned());
    app.metadata.resource_version = Some(rv.to_owned());
    app
}

fn deleting(mut app: ReviewApp) -> ReviewApp {
    app.metadata.deletion_timestamp = Some(Time(Timestamp::from_second(1_700_000_000).unwrap()));
    app.metadata.finalizers = Some(vec![reviewapp_api::FINALIZER.to_owned()]);
    app
}

fn good(app: ReviewApp) -> DeserializeGuard<ReviewApp> {
    DeserializeGuard(Ok(app))
}

fn bad(name: &str, uid: &str, rv: &str) -> DeserializeGuard<ReviewApp> {
    DeserializeGuard(Err(InvalidObject {
        error: "spec.config.applicationPort: invalid type: string \"x\", expected i64".to_owned(),
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            uid: Some(uid.to_owned()),
            resource_version: Some(rv.to_owned()),
            ..ObjectMeta::default()
        },
    }))
}

/// `(name, event, resourceVersion of the object carried)` for every App, `(name, "malformed")`
/// for the rest, to compare whole outputs at once.
fn summary(out: &[Classified]) -> Vec<(String, String)> {
    out.iter()
        .map(|c| match c {
            Classified::App {
                name,
                event,
                object,
            } => (
                name.clone(),
                format!(
                    "{event:?}@{}/{}",
                    object.metadata.uid.as_deref().unwrap_or("-"),
                    object.metadata.resource_version.as_deref().unwrap_or("-")
                ),
            ),
            Classified::Malformed { name, .. } => (name.clone(), "malformed".to_owned()),
        })
        .collect()
}

fn s(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

fn only_app(out: &[Classified]) -> (AppEvent, Arc<ReviewApp>) {
    match out {
        [Classified::App { event, object, .. }] => (*event, object.clone()),
        other => panic!("expected exactly one App event, got {other:?}"),
    }
}

#[test]
fn apply_of_unknown_name_is_add_and_carries_the_object() {
    let mut c = Classifier::new();
    let out = c.classify(Event::Apply(good(app("a", "u1", "1"))));
    let (event, object) = only_app(&out);
    assert_eq!(event, Add);
    assert_eq!(object.spec.repo.as_deref(), Some("test_review_app"));
    assert_eq!(summary(&out), s(&[("a", "Add@u1/1")]));
    assert_eq!(c.names(), ["a"]);
    assert!(Arc::ptr_eq(&c.last_known("a").unwrap(), &object));
}

#[test]
fn init_apply_of_unknown_name_is_add() {
    let mut c = Classifier::new();
    assert!(c.classify(Event::Init).is_empty());
    let out = c.classify(Event::InitApply(good(app("a", "u1", "1"))));
    assert_eq!(summary(&out), s(&[("a", "Add@u1/1")]));
    assert!(c.classify(Event::InitDone).is_empty());
}

#[test]
fn new_resource_version_is_modify_same_is_nothing() {
    let mut c = Classifier::new();
    c.classify(Event::Apply(good(app("a", "u1", "1"))));
    assert!(
        c.classify(Event::Apply(good(app("a", "u1", "1"))))
            .is_empty()
    );
    let mut changed = app("a", "u1", "2");
    changed.spec.commit_hash = Some("0".repeat(40));
    let out = c.classify(Event::Apply(good(changed)));
    let (event, object) = only_app(&out);
    assert_eq!(event, Modify);
    assert_eq!(
        object.spec.commit_hash.as_deref(),
        Some("0".repeat(40).as_str())
    );
    assert_eq!(
        c.last_known("a")
            .unwrap()
            .metadata
            .resource_version
            .as_deref(),
        Some("2")
    );
    assert!(
        c.classify(Event::Apply(good(app("a", "u1", "2"))))
            .is_empty()
    );
    assert_eq!(c.names(), ["a"]);
}

#[test]
fn changed_uid_is_delete_of_the_old_then_add_of_the_new() {
    let mut c = Classifier::new();
    c.classify(Event::Apply(good(app("a", "u1", "5"))));
    let out = c.classify(Event::Apply(good(app("a", "u2", "9"))));
    assert_eq!(summary(&out), s(&[("a", "Delete@u1/5"), ("a", "Add@u2/9")]));
    assert_eq!(c.names(), ["a"]);
    assert_eq!(
        c.last_known("a").unwrap().metadata.uid.as_deref(),
        Some("u2")
    );
}

#[test]
fn deletion_timestamp_is_delete_on_every_new_resource_version() {
    let mut c = Classifier::new();
    c.classify(Event::Apply(good(app("a", "u1", "1"))));
    let out = c.classify(Event::Apply(good(deleting(app("a", "u1", "2")))));
    assert_eq!(summary(&out), s(&[("a", "Delete@u1/2")]));
    // Lingers (finalizer): same rv → nothing; our own status write → DELETE again.
    assert!(
        c.classify(Event::Apply(good(deleting(app("a", "u1", "2")))))
            .is_empty()
    );
    let out = c.classify(Event::Apply(good(deleting(app("a", "u1", "3")))));
    assert_eq!(summary(&out), s(&[("a", "Delete@u1/3")]));
    assert_eq!(c.names(), ["a"], "still there until the Delete event");
}

#[test]
fn deleting_object_seen_first_is_delete_not_add() {
    // Deleted while the operator was down: the finalizer kept it; teardown must run.
    let mut c = Classifier::new();
    c.classify(Event::Init);
    let out = c.classify(Event::InitApply(good(deleting(app("a", "u1", "7")))));
    assert_eq!(summary(&out), s(&[("a", "Delete@u1/7")]));
}

#[test]
fn delete_event_is_delete_and_forgets() {
    let mut c = Classifier::new();
    c.classify(Event::Apply(good(app("a", "u1", "1"))));
    c.classify(Event::Apply(good(app("b", "u2", "1"))));
    let out = c.classify(Event::Delete(good(app("a", "u1", "2"))));
    assert_eq!(summary(&out), s(&[("a", "Delete@u1/2")]));
    assert_eq!(c.names(), ["b"]);
    assert!(c.last_known("a").is_none());
    // Re-created under the same name later: a fresh ADD.
    let out = c.classify(Event::Apply(good(app("a", "u3", "4"))));
    assert_eq!(summary(&out), s(&[("a", "Add@u3/4")]));
}

#[test]
fn relist_reports_deletes_missed_during_a_watch_gap() {
    let mut c = Classifier::new();
    c.classify(Event::Apply(good(app("a", "ua", "1"))));
    c.classify(Event::Apply(good(app("b", "ub", "1"))));
    c.classify(Event::Apply(good(app("c", "uc", "1"))));
    // The watch broke; "b" and "c" were deleted meanwhile (their Delete events were lost).
    assert!(c.classify(Event::Init).is_empty());
    assert!(
        c.classify(Event::InitApply(good(app("a", "ua", "1"))))
            .is_empty()
    );
    let out = c.classify(Event::InitDone);
    assert_eq!(
        summary(&out),
        s(&[("b", "Delete@ub/1"), ("c", "Delete@uc/1")]),
        "the last known objects, so teardown needs no lookup"
    );
    assert_eq!(c.names(), ["a"]);
    assert!(c.last_known("b").is_none());
    // A second relist with the same contents reports nothing.
    c.classify(Event::Init);
    c.classify(Event::InitApply(good(app("a", "ua", "1"))));
    assert!(c.classify(Event::InitDone).is_empty());
}

#[test]
fn relist_with_new_modified_and_missing_apps_is_classified_immediately() {
    let mut c = Classifier::new();
    c.classify(Event::Apply(good(app("same", "u1", "1"))));
    c.classify(Event::Apply(good(app("changed", "u2", "1"))));
    c.classify(Event::Apply(good(app("gone", "u3", "1"))));

    c.classify(Event::Init);
    // Not buffered until InitDone: each InitApply yields its event at once.
    assert!(
        c.classify(Event::InitApply(good(app("same", "u1", "1"))))
            .is_empty()
    );
    let out = c.classify(Event::InitApply(good(app("changed", "u2", "8"))));
    assert_eq!(summary(&out), s(&[("changed", "Modify@u2/8")]));
    let out = c.classify(Event::InitApply(good(app("new", "u4", "9"))));
    assert_eq!(summary(&out), s(&[("new", "Add@u4/9")]));
    let out = c.classify(Event::InitDone);
    assert_eq!(summary(&out), s(&[("gone", "Delete@u3/1")]));
    assert_eq!(c.names(), ["changed", "new", "same"]);
}

#[test]
fn relist_with_identical_objects_emits_nothing() {
    let mut c = Classifier::new();
    for name in ["a", "b", "c"] {
        c.classify(Event::Apply(good(app(name, name, "3"))));
    }
    let mut out = c.classify(Event::Init);
    for name in ["c", "a", "b"] {
        out.extend(c.classify(Event::InitApply(good(app(name, name, "3")))));
    }
    out.extend(c.classify(Event::InitDone));
    assert!(out.is_empty(), "a relist must not re-trigger work: {out:?}");
    assert_eq!(c.names(), ["a", "b", "c"]);
}

#[test]
fn a_fresh_classifier_after_restart_sees_everything_as_add() {
    // Intended: the state machine treats a replayed ADD idempotently.
    let mut c = Classifier::new();
    let mut out = c.classify(Event::Init);
    for name in ["a", "b"] {
        out.extend(c.classify(Event::InitApply(good(app(name, name, "3")))));
    }
    out.extend(c.classify(Event::InitDone));
    assert_eq!(summary(&out), s(&[("a", "Add@a/3"), ("b", "Add@b/3")]));
}

#[test]
fn malformed_is_reported_once_per_resource_version() {
    let mut c = Classifier::new();
    let out = c.classify(Event::Apply(bad("m", "um", "1")));
    match out.as_slice() {
        [Classified::Malformed { name, error }] => {
            assert_eq!(name, "m");
            assert!(error.contains("applicationPort"), "{error}");
        }
        other => panic!("expected one Malformed, got {other:?}"),
    }
    assert!(c.classify(Event::Apply(bad("m", "um", "1"))).is_empty());
    let out = c.classify(Event::Apply(bad("m", "um", "2")));
    assert_eq!(summary(&out), s(&[("m", "malformed")]));
    assert!(c.last_known("m").is_none());
    // Fixed: the first good version is the ADD.
    let out = c.classify(Event::Apply(good(app("m", "um", "3"))));
    assert_eq!(summary(&out), s(&[("m", "Add@um/3")]));
}

#[test]
fn malformed_object_is_seen_in_a_relist_and_never_deleted() {
    let mut c = Classifier::new();
    c.classify(Event::Apply(good(app("a", "ua", "1"))));
    // "a" turns malformed (e.g. edited with a bad field): no DELETE, last good object kept.
    let out = c.classify(Event::Apply(bad("a", "ua", "2")));
    assert_eq!(summary(&out), s(&[("a", "malformed")]));
    assert_eq!(
        c.last_known("a")
            .unwrap()
            .metadata
            .resource_version
            .as_deref(),
        Some("1")
    );
    c.classify(Event::Apply(bad("m", "um", "1")));

    c.classify(Event::Init);
    assert!(c.classify(Event::InitApply(bad("a", "ua", "2"))).is_empty());
    assert!(c.classify(Event::InitApply(bad("m", "um", "1"))).is_empty());
    let out = c.classify(Event::InitDone);
    assert!(
        out.is_empty(),
        "malformed objects must never be torn down: {out:?}"
    );
    assert_eq!(c.names(), ["a"]);
    assert!(
        c.classify(Event::Apply(bad("m", "um", "1"))).is_empty(),
        "m is still known (malformed at the same resourceVersion)"
    );

    // Good again: a MODIFY of the app it was.
    let out = c.classify(Event::Apply(good(app("a", "ua", "3"))));
    assert_eq!(summary(&out), s(&[("a", "Modify@ua/3")]));
}

#[test]
fn malformed_object_deserialized_by_kube_is_reported() {
    let mut json = serde_json::to_value(app("j", "uj", "4")).unwrap();
    json["spec"]["config"]["applicationPort"] = serde_json::json!("x");
    let guard: DeserializeGuard<ReviewApp> = serde_json::from_value(json).unwrap();
    let mut c = Classifier::new();
    let out = c.classify(Event::Apply(guard));
    match out.as_slice() {
        [Classified::Malformed { name, error }] => {
            assert_eq!(name, "j");
            assert!(!error.is_empty());
        }
        other => panic!("expected one Malformed, got {other:?}"),
    }
}

#[test]
fn a_malformed_app_that_is_really_deleted_is_torn_down_with_its_last_good_version() {
    // Deleting it (deletionTimestamp) is what triggers DELETE, not being malformed.
    let mut c = Classifier::new();
    c.classify(Event::Apply(good(app("a", "ua", "1"))));
    c.classify(Event::Apply(bad("a", "ua", "2")));
    let DeserializeGuard(Err(mut invalid)) = bad("a", "ua", "3") else {
        unreachable!()
    };
    invalid.metadata.deletion_timestamp =
        Some(Time(Timestamp::from_second(1_700_000_000).unwrap()));
    let out = c.classify(Event::Apply(DeserializeGuard(Err(invalid))));
    assert_eq!(
        summary(&out),
        s(&[("a", "malformed"), ("a", "Delete@ua/1")])
    );

    // Gone for good (missing from a relist), and malformed at the end: DELETE, forgotten.
    let mut c = Classifier::new();
    c.classify(Event::Apply(good(app("b", "ub", "1"))));
    c.classify(Event::Apply(bad("b", "ub", "2")));
    c.classify(Event::Init);
    let out = c.classify(Event::InitDone);
    assert_eq!(summary(&out), s(&[("b", "Delete@ub/1")]));
    assert!(c.names().is_empty());

    // A malformed object never seen well-formed has nothing to tear down.
    let mut c = Classifier::new();
    c.classify(Event::Apply(bad("m", "um", "1")));
    assert!(c.classify(Event::Delete(bad("m", "um", "2"))).is_empty());
    c.classify(Event::Apply(bad("n", "un", "1")));
    c.classify(Event::Init);
    assert!(c.classify(Event::InitDone).is_empty());
    for (name, uid) in [("m", "um"), ("n", "un")] {
        assert_eq!(
            summary(&c.classify(Event::Apply(bad(name, uid, "1")))),
            s(&[(name, "malformed")]),
            "{name} was forgotten: reported again"
        );
    }
}

#[test]
fn own_writes_are_not_modifies_and_names_list_valid_apps() {
    let mut classifier = Classifier::new();
    let first = app("a", "uid-a", "1");
    classifier.classify(Event::Apply(good(first.clone())));
    // The operator writes the status; the API server answers with resourceVersion 2.
    let mut written = first.clone();
    written.metadata.resource_version = Some("2".into());
    written.status = Some(Default::default());
    // The answer to a server-side apply carries managedFields: they are not kept.
    written.metadata.managed_fields = Some(vec![Default::default()]);
    classifier.record_write(written.clone());
    let known = classifier.last_known("a").unwrap();
    assert_eq!(known.status, Some(Default::default()));
    assert_eq!(known.metadata.managed_fields, None);
    assert!(
        classifier.classify(Event::Apply(good(written))).is_empty(),
        "the echo of our own write"
    );
    // A write for an object of another uid (recreated meanwhile) is ignored.
    let mut stranger = app("a", "uid-other", "9");
    stranger.status = None;
    classifier.record_write(stranger);
    assert_eq!(
        classifier
            .last_known("a")
            .unwrap()
            .metadata
            .resource_version
            .as_deref(),
        Some("2")
    );
    classifier.classify(Event::Apply(good(app("b", "uid-b", "1"))));
    assert_eq!(classifier.names(), ["a", "b"]);
    assert_eq!(classifier.objects().len(), 2);
}

#[test]
fn a_late_echo_of_an_older_own_write_does_not_replace_a_newer_object() {
    let mut classifier = Classifier::new();
    classifier.classify(Event::Apply(good(app("a", "uid-a", "4"))));
    // Our status write answered with resourceVersion 7 ...
    let mut written = app("a", "uid-a", "7");
    written.status = Some(Default::default());
    classifier.record_write(written);
    // ... then the watch delivers the echo of our earlier finalizer patch (5) and of the
    // status write itself (7): neither is news.
    assert!(
        classifier
            .classify(Event::Apply(good(app("a", "uid-a", "5"))))
            .is_empty()
    );
    assert!(
        classifier
            .classify(Event::Apply(good(app("a", "uid-a", "7"))))
            .is_empty()
    );
    assert!(
        classifier.last_known("a").unwrap().status.is_some(),
        "the newer object is kept"
    );
    // A change made after our write is a MODIFY as usual.
    let out = classifier.classify(Event::Apply(good(app("a", "uid-a", "8"))));
    assert_eq!(out.len(), 1);
}
