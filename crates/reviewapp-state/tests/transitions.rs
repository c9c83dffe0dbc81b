//! The transition table: every status the operator can leave an app in × every event.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;

use common::*;
use reviewapp_api::status::{CONDITION_BUILDING, CONDITION_DEPLOYED, CONDITION_INVALID};
use reviewapp_api::{AppStatus, BuildStatus, ReviewApp};
use reviewapp_state::{AppEvent, BuildObservation, BuildObservation::*, Intent, transition};

const EVENTS: [&str; 6] = [
    "add",
    "modify-self",
    "modify-commit",
    "modify-config",
    "reconcile",
    "delete",
];

struct Row {
    state: &'static str,
    event: &'static str,
    obs: BuildObservation,
    intents: &'static [&'static str],
    app: Option<AppStatus>,
    build: Option<BuildStatus>,
}

fn row(
    state: &'static str,
    event: &'static str,
    obs: BuildObservation,
    intents: &'static [&'static str],
    status: (Option<AppStatus>, Option<BuildStatus>),
) -> Row {
    Row {
        state,
        event,
        obs,
        intents,
        app: status.0,
        build: status.1,
    }
}

const BUILDING: (Option<AppStatus>, Option<BuildStatus>) =
    (Some(AppStatus::Building), Some(BuildStatus::Building));
const DEPLOYED: (Option<AppStatus>, Option<BuildStatus>) =
    (Some(AppStatus::Deployed), Some(BuildStatus::Success));
const REBUILDING: (Option<AppStatus>, Option<BuildStatus>) =
    (Some(AppStatus::Deployed), Some(BuildStatus::Building));
const FAILED: (Option<AppStatus>, Option<BuildStatus>) =
    (Some(AppStatus::Error), Some(BuildStatus::Error));
const REBUILD_FAILED: (Option<AppStatus>, Option<BuildStatus>) =
    (Some(AppStatus::Deployed), Some(BuildStatus::Error));
const NONE: (Option<AppStatus>, Option<BuildStatus>) = (None, None);

fn table() -> Vec<Row> {
    vec![
        // A new app: build, and apply every child with the Deployment at 0 replicas.
        row(
            "fresh",
            "add",
            Missing,
            &[
                "add-finalizer",
                "start-build test-review-app-678--c8c9aa334a grossvogel/test-review-app-678:c8c9aa334a",
                "apply 0 grossvogel/test-review-app-678:c8c9aa334a",
                "event BuildStarted",
            ],
            BUILDING,
        ),
        // MODIFY/RECONCILE of an app never handled (ADD missed while down) converge like ADD.
        row(
            "fresh",
            "modify-self",
            Missing,
            &[
                "add-finalizer",
                "start-build test-review-app-678--c8c9aa334a grossvogel/test-review-app-678:c8c9aa334a",
                "apply 0 grossvogel/test-review-app-678:c8c9aa334a",
                "event BuildStarted",
            ],
            BUILDING,
        ),
        row(
            "fresh",
            "modify-commit",
            Missing,
            &[
                "add-finalizer",
                "start-build test-review-app-678--5ce6e4a15e grossvogel/test-review-app-678:5ce6e4a15e",
                "apply 0 grossvogel/test-review-app-678:5ce6e4a15e",
                "event BuildStarted",
            ],
            BUILDING,
        ),
        row(
            "fresh",
            "modify-config",
            Missing,
            &[
                "add-finalizer",
                "start-build test-review-app-678--c8c9aa334a grossvogel/test-review-app-678:c8c9aa334a",
                "apply 0 grossvogel/test-review-app-678:c8c9aa334a",
                "event BuildStarted",
            ],
            BUILDING,
        ),
        row(
            "fresh",
            "reconcile",
            Missing,
            &[
                "add-finalizer",
                "start-build test-review-app-678--c8c9aa334a grossvogel/test-review-app-678:c8c9aa334a",
                "apply 0 grossvogel/test-review-app-678:c8c9aa334a",
                "event BuildStarted",
            ],
            BUILDING,
        ),
        row(
            "fresh",
            "delete",
            Missing,
            &[
                "event TearDown",
                "teardown test-review-app/test-review-app-678 jobs=test-review-app-678--c8c9aa334a",
            ],
            NONE,
        ),
        // First build running.
        row(
            "building",
            "add",
            Running,
            &["apply 0 grossvogel/test-review-app-678:c8c9aa334a"],
            BUILDING,
        ),
        row("building", "modify-self", Running, &[], BUILDING),
        row(
            "building",
            "modify-commit",
            Running,
            &[
                "delete-job test-review-app-678--c8c9aa334a",
                "start-build test-review-app-678--5ce6e4a15e grossvogel/test-review-app-678:5ce6e4a15e",
                "apply 0 grossvogel/test-review-app-678:5ce6e4a15e prune",
                "event BuildStarted",
            ],
            BUILDING,
        ),
        row(
            "building",
            "modify-config",
            Running,
            &["apply 0 grossvogel/test-review-app-678:c8c9aa334a prune"],
            BUILDING,
        ),
        row(
            "building",
            "reconcile",
            Running,
            &["apply 0 grossvogel/test-review-app-678:c8c9aa334a"],
            BUILDING,
        ),
        row(
            "building",
            "reconcile",
            Succeeded,
            &[
                "apply 1 grossvogel/test-review-app-678:c8c9aa334a",
                "event Deployed",
            ],
            DEPLOYED,
        ),
        row(
            "building",
            "reconcile",
            failed(),
            &[
                "apply 0 grossvogel/test-review-app-678:c8c9aa334a",
                "event BuildFailed",
            ],
            FAILED,
        ),
        row(
            "building",
            "reconcile",
            Missing,
            &[
                "start-build test-review-app-678--c8c9aa334a grossvogel/test-review-app-678:c8c9aa334a",
                "apply 0 grossvogel/test-review-app-678:c8c9aa334a",
                "event BuildRestarted",
            ],
            BUILDING,
        ),
        row(
            "building",
            "delete",
            Running,
            &[
                "event TearDown",
                "teardown test-review-app/test-review-app-678 jobs=test-review-app-678--c8c9aa334a",
                "remove-finalizer",
            ],
            BUILDING,
        ),
        // Deployed: a restart replays ADD without a rebuild, even after the Job's TTL removed it.
        row(
            "deployed",
            "add",
            Missing,
            &["apply 1 grossvogel/test-review-app-678:c8c9aa334a"],
            DEPLOYED,
        ),
        row("deployed", "modify-self", Succeeded, &[], DEPLOYED),
        // A new commit builds while the deployed version keeps serving at 1 replica.
        row(
            "deployed",
            "modify-commit",
            Running,
            &[
                "delete-job test-review-app-678--c8c9aa334a",
                "start-build test-review-app-678--5ce6e4a15e grossvogel/test-review-app-678:5ce6e4a15e",
                "apply 1 grossvogel/test-review-app-678:c8c9aa334a prune",
                "event BuildStarted",
            ],
            REBUILDING,
        ),
        row(
            "deployed",
            "modify-config",
            Missing,
            &["apply 1 grossvogel/test-review-app-678:c8c9aa334a prune"],
            DEPLOYED,
        ),
        row(
            "deployed",
            "reconcile",
            Missing,
            &["apply 1 grossvogel/test-review-app-678:c8c9aa334a"],
            DEPLOYED,
        ),
        row(
            "deployed",
            "delete",
            Missing,
            &[
                "event TearDown",
                "teardown test-review-app/test-review-app-678 jobs=test-review-app-678--c8c9aa334a",
                "remove-finalizer",
            ],
            DEPLOYED,
        ),
        // Rebuilding commit 2 while commit 1 serves.
        row(
            "rebuilding",
            "add",
            Running,
            &["apply 1 grossvogel/test-review-app-678:c8c9aa334a"],
            REBUILDING,
        ),
        row("rebuilding", "modify-self", Running, &[], REBUILDING),
        row(
            "rebuilding",
            "modify-commit",
            Running,
            &[
                "delete-job test-review-app-678--5ce6e4a15e",
                "start-build test-review-app-678--0123456789 grossvogel/test-review-app-678:0123456789",
                "apply 1 grossvogel/test-review-app-678:c8c9aa334a prune",
                "event BuildStarted",
            ],
            REBUILDING,
        ),
        row(
            "rebuilding",
            "modify-config",
            Running,
            &["apply 1 grossvogel/test-review-app-678:c8c9aa334a prune"],
            REBUILDING,
        ),
        row(
            "rebuilding",
            "reconcile",
            Succeeded,
            &[
                "apply 1 grossvogel/test-review-app-678:5ce6e4a15e",
                "event Deployed",
            ],
            DEPLOYED,
        ),
        row(
            "rebuilding",
            "reconcile",
            failed(),
            &[
                "apply 1 grossvogel/test-review-app-678:c8c9aa334a",
                "event BuildFailed",
            ],
            REBUILD_FAILED,
        ),
        row(
            "rebuilding",
            "reconcile",
            Missing,
            &[
                "start-build test-review-app-678--5ce6e4a15e grossvogel/test-review-app-678:5ce6e4a15e",
                "apply 1 grossvogel/test-review-app-678:c8c9aa334a",
                "event BuildRestarted",
            ],
            REBUILDING,
        ),
        row(
            "rebuilding",
            "delete",
            Running,
            &[
                "event TearDown",
                "teardown test-review-app/test-review-app-678 jobs=test-review-app-678--5ce6e4a15e",
                "remove-finalizer",
            ],
            REBUILDING,
        ),
        // The first build failed: nothing serves; only a new commit builds again.
        row(
            "failed-first",
            "add",
            Missing,
            &["apply 0 grossvogel/test-review-app-678:c8c9aa334a"],
            FAILED,
        ),
        row("failed-first", "modify-self", Missing, &[], FAILED),
        row(
            "failed-first",
            "modify-commit",
            Missing,
            &[
                "delete-job test-review-app-678--c8c9aa334a",
                "start-build test-review-app-678--5ce6e4a15e grossvogel/test-review-app-678:5ce6e4a15e",
                "apply 0 grossvogel/test-review-app-678:5ce6e4a15e prune",
                "event BuildStarted",
            ],
            BUILDING,
        ),
        row(
            "failed-first",
            "modify-config",
            Missing,
            &["apply 0 grossvogel/test-review-app-678:c8c9aa334a prune"],
            FAILED,
        ),
        // A stale "succeeded" observation of a failed build deploys nothing.
        row(
            "failed-first",
            "reconcile",
            Succeeded,
            &["apply 0 grossvogel/test-review-app-678:c8c9aa334a"],
            FAILED,
        ),
        row(
            "failed-first",
            "delete",
            Missing,
            &[
                "event TearDown",
                "teardown test-review-app/test-review-app-678 jobs=test-review-app-678--c8c9aa334a",
                "remove-finalizer",
            ],
            FAILED,
        ),
        // A rebuild failed: the previous version keeps serving.
        row(
            "failed-rebuild",
            "add",
            Running,
            &["apply 1 grossvogel/test-review-app-678:c8c9aa334a"],
            REBUILD_FAILED,
        ),
        row(
            "failed-rebuild",
            "modify-self",
            Running,
            &[],
            REBUILD_FAILED,
        ),
        row(
            "failed-rebuild",
            "modify-commit",
            Running,
            &[
                "delete-job test-review-app-678--5ce6e4a15e",
                "start-build test-review-app-678--0123456789 grossvogel/test-review-app-678:0123456789",
                "apply 1 grossvogel/test-review-app-678:c8c9aa334a prune",
                "event BuildStarted",
            ],
            REBUILDING,
        ),
        row(
            "failed-rebuild",
            "modify-config",
            Running,
            &["apply 1 grossvogel/test-review-app-678:c8c9aa334a prune"],
            REBUILD_FAILED,
        ),
        row(
            "failed-rebuild",
            "reconcile",
            Succeeded,
            &["apply 1 grossvogel/test-review-app-678:c8c9aa334a"],
            REBUILD_FAILED,
        ),
        row(
            "failed-rebuild",
            "delete",
            Running,
            &[
                "event TearDown",
                "teardown test-review-app/test-review-app-678 jobs=test-review-app-678--5ce6e4a15e",
                "remove-finalizer",
            ],
            REBUILD_FAILED,
        ),
        // Invalid (port 0): reported once, nothing applied, until the spec is fixed.
        row("invalid", "add", Missing, &[], NONE),
        row("invalid", "modify-self", Missing, &[], NONE),
        row("invalid", "modify-commit", Missing, &[], NONE),
        row(
            "invalid",
            "modify-config",
            Missing,
            &[
                "start-build test-review-app-678--c8c9aa334a grossvogel/test-review-app-678:c8c9aa334a",
                "apply 0 grossvogel/test-review-app-678:c8c9aa334a prune",
                "event SpecValid",
                "event BuildStarted",
            ],
            BUILDING,
        ),
        row("invalid", "reconcile", Missing, &[], NONE),
        row(
            "invalid",
            "delete",
            Missing,
            &[
                "event TearDown",
                "teardown test-review-app/test-review-app-678 jobs=test-review-app-678--c8c9aa334a",
                "remove-finalizer",
            ],
            NONE,
        ),
        // Written by the original operator: adopt the running build, never rebuild it.
        row(
            "legacy",
            "add",
            Missing,
            &[
                "add-finalizer",
                "apply 1 grossvogel/test-review-app-678:c8c9aa334a",
            ],
            DEPLOYED,
        ),
        row(
            "legacy",
            "modify-self",
            Missing,
            &[
                "add-finalizer",
                "apply 1 grossvogel/test-review-app-678:c8c9aa334a",
            ],
            DEPLOYED,
        ),
        row(
            "legacy",
            "modify-commit",
            Missing,
            &[
                "add-finalizer",
                "delete-job test-review-app-678--c8c9aa334a",
                "start-build test-review-app-678--5ce6e4a15e grossvogel/test-review-app-678:5ce6e4a15e",
                "apply 1 grossvogel/test-review-app-678:c8c9aa334a",
                "event BuildStarted",
            ],
            REBUILDING,
        ),
        row(
            "legacy",
            "modify-config",
            Missing,
            &[
                "add-finalizer",
                "apply 1 grossvogel/test-review-app-678:c8c9aa334a",
            ],
            DEPLOYED,
        ),
        row(
            "legacy",
            "reconcile",
            Missing,
            &[
                "add-finalizer",
                "apply 1 grossvogel/test-review-app-678:c8c9aa334a",
            ],
            DEPLOYED,
        ),
        row(
            "legacy",
            "delete",
            Missing,
            &[
                "event TearDown",
                "teardown test-review-app/test-review-app-678 jobs=test-review-app-678--c8c9aa334a",
            ],
            DEPLOYED,
        ),
    ]
}

/// The app and event a row's event label stands for.
fn event_input(state: &str, app: &ReviewApp, label: &str) -> (ReviewApp, AppEvent) {
    let current_commit = app.spec.commit_hash.clone().unwrap();
    let next_commit = if current_commit == SHA1 { SHA2 } else { SHA3 };
    match label {
        "add" => (app.clone(), AppEvent::Add),
        "modify-self" => (app.clone(), AppEvent::Modify),
        "modify-commit" => (with_commit(app, next_commit), AppEvent::Modify),
        // For the invalid app, the config change is the fix.
        "modify-config" if state == "invalid" => (with_port(app, 5000), AppEvent::Modify),
        "modify-config" => (with_port(app, 8080), AppEvent::Modify),
        "reconcile" => (app.clone(), AppEvent::Reconcile),
        "delete" => (app.clone(), AppEvent::Delete),
        other => panic!("unknown event label {other}"),
    }
}

#[test]
fn transition_table() {
    let states = states();
    let mut failures = Vec::new();
    for row in table() {
        let (_, app) = states
            .iter()
            .find(|(name, _)| *name == row.state)
            .expect("known state");
        let (app, event) = event_input(row.state, app, row.event);
        let t = transition(&app, event, &row.obs, &config(), now());
        let got = summary(&t);
        let want: Vec<String> = row.intents.iter().map(|s| s.to_string()).collect();
        if got != want || t.status.app_status != row.app || t.status.build_status != row.build {
            failures.push(format!(
                "{} × {} ({:?}):\n  want {:?} {:?}/{:?}\n  got  {:?} {:?}/{:?}",
                row.state,
                row.event,
                row.obs,
                want,
                row.app,
                row.build,
                got,
                t.status.app_status,
                t.status.build_status
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} rows differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn table_covers_every_status_and_event() {
    let covered: BTreeSet<(&str, &str)> = table().iter().map(|r| (r.state, r.event)).collect();
    for (state, _) in states() {
        for event in EVENTS {
            assert!(
                covered.contains(&(state, event)),
                "no row for {state} × {event}"
            );
        }
    }
}

#[test]
fn no_combination_panics_or_deploys_an_unbuilt_image() {
    for (state, app) in states() {
        // What a successful build produced before this event (the legacy status records a
        // success without `deployedImage`).
        let deployed_before = app.status.as_ref().and_then(|s| {
            s.deployed_image.clone().or(s
                .image
                .clone()
                .filter(|_| s.build_status == Some(BuildStatus::Success)))
        });
        let building_before = app
            .status
            .as_ref()
            .is_some_and(|s| s.build_status == Some(BuildStatus::Building));
        for label in EVENTS {
            for obs in [Running, Succeeded, failed(), Missing] {
                let (input, event) = event_input(state, &app, label);
                let t = transition(&input, event, &obs, &config(), now());
                let starts = t
                    .intents
                    .iter()
                    .filter(|i| matches!(i, Intent::StartBuild { .. }))
                    .count();
                assert!(starts <= 1, "{state} × {label}: {starts} builds");
                for intent in &t.intents {
                    if let Intent::ApplyChildren {
                        replicas: 1, image, ..
                    } = intent
                    {
                        let just_built = building_before && obs == Succeeded;
                        assert!(
                            deployed_before.as_deref() == Some(image.as_str()) || just_built,
                            "{state} × {label} × {obs:?} deploys {image}, which no successful build produced"
                        );
                        // Never an image derived from a newer commitHash than the one built.
                        assert_eq!(t.status.deployed_image.as_deref(), Some(image.as_str()));
                    }
                }
                if event == AppEvent::Delete {
                    assert!(t.intents.iter().all(|i| !matches!(
                        i,
                        Intent::ApplyChildren { .. } | Intent::StartBuild { .. }
                    )));
                }
            }
        }
    }
}

#[test]
fn deployed_status_names_commit_url_and_conditions() {
    let states = states();
    let deployed = &states.iter().find(|(n, _)| *n == "deployed").unwrap().1;
    let status = deployed.status.as_ref().unwrap();
    assert_eq!(status.deployed_commit.as_deref(), Some(SHA1));
    assert_eq!(status.deployed_image.as_deref(), Some(IMG1));
    assert_eq!(status.build_job_name.as_deref(), Some(JOB1));
    assert_eq!(
        status.url.as_deref(),
        Some("http://test-review-app-678.review.local")
    );
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(status.build_started_at, Some(1_700_000_000));
    assert_eq!(status.build_finished_at, Some(1_700_000_000));
    assert_eq!(status.condition(CONDITION_DEPLOYED).unwrap().status, "True");
    assert_eq!(
        status.condition(CONDITION_BUILDING).unwrap().status,
        "False"
    );
    assert_eq!(status.condition(CONDITION_INVALID).unwrap().status, "False");
}

#[test]
fn tls_makes_the_url_https() {
    let mut config = config();
    config.tls.secret_name = "star-review-local-tls".into();
    let t = transition(&fresh(), AppEvent::Add, &Missing, &config, now());
    assert_eq!(
        t.status.url.as_deref(),
        Some("https://test-review-app-678.review.local")
    );
}

#[test]
fn repeated_reconcile_keeps_status_identical() {
    // The effects layer skips the status write when nothing changed: a later clock must not
    // change the status of a settled app (no write loops on our own events).
    for (state, app) in states() {
        let later = k8s_openapi::jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let obs = if state == "building" || state == "rebuilding" {
            Running
        } else {
            Missing
        };
        if state == "fresh" || state == "legacy" || state == "building" && obs == Missing {
            continue;
        }
        let t = transition(&app, AppEvent::Reconcile, &obs, &config(), later);
        assert_eq!(
            Some(&t.status),
            app.status.as_ref(),
            "{state}: status changed on an idle reconcile"
        );
    }
}

#[test]
fn sub_second_clock_is_truncated() {
    let precise = k8s_openapi::jiff::Timestamp::new(1_700_000_000, 999_999_999).unwrap();
    let a = transition(&fresh(), AppEvent::Add, &Missing, &config(), precise);
    let b = transition(&fresh(), AppEvent::Add, &Missing, &config(), now());
    assert_eq!(a.status, b.status);
}

#[test]
fn build_failure_reports_the_jobs_reason() {
    let states = states();
    let app = &states.iter().find(|(n, _)| *n == "failed-first").unwrap().1;
    let status = app.status.as_ref().unwrap();
    let message = status.message.as_deref().unwrap();
    assert!(
        message.contains("BackoffLimitExceeded") && message.contains(JOB1),
        "{message}"
    );
    let building = status.condition(CONDITION_BUILDING).unwrap();
    assert_eq!(
        (building.status.as_str(), building.reason.as_str()),
        ("False", "BuildFailed")
    );
}

#[test]
fn invalid_spec_names_every_bad_field_once() {
    let app: ReviewApp =
        serde_yaml::from_str(include_str!("../../../dev/samples/invalid-reviewapp.yaml")).unwrap();
    let t = transition(&app, AppEvent::Add, &Missing, &config(), now());
    assert!(t.spec.is_none());
    let invalid = t.status.condition(CONDITION_INVALID).unwrap();
    assert_eq!(invalid.status, "True");
    for field in [
        "spec.commitHash",
        "spec.config.applicationPort",
        "spec.config.database.backend",
        "spec.config.env.values[0].value",
    ] {
        assert!(
            invalid.message.contains(field),
            "{field} missing from {:?}",
            invalid.message
        );
    }
    assert_eq!(
        summary(&t),
        ["add-finalizer", "event InvalidSpec"],
        "no child, no build"
    );
    let warning = t
        .intents
        .iter()
        .find_map(|i| match i {
            Intent::Event(e) => Some(e),
            _ => None,
        })
        .unwrap();
    assert_eq!(warning.kind, reviewapp_state::EventKind::Warning);
    assert!(warning.note.contains("spec.config.applicationPort"));
    // Seen again (a reconcile): no second Warning.
    let again = transition(
        &applied(app, &t),
        AppEvent::Reconcile,
        &Missing,
        &config(),
        now(),
    );
    assert!(again.intents.is_empty(), "{:?}", summary(&again));
}

#[test]
fn namespace_outside_the_allow_list_is_invalid() {
    let mut config = config();
    config.allowed_namespaces = vec!["review-*".into()];
    let t = transition(&fresh(), AppEvent::Add, &Missing, &config, now());
    assert!(
        t.status
            .message
            .as_deref()
            .unwrap()
            .contains("allowedNamespaces")
    );
    assert!(
        !summary(&t)
            .iter()
            .any(|s| s.starts_with("apply") || s.starts_with("start-build"))
    );
}

#[test]
fn integer_pr_is_accepted() {
    let app = edited(&fresh(), |a| {
        a.spec.pr = Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(678))
    });
    let t = transition(&app, AppEvent::Add, &Missing, &config(), now());
    assert_eq!(t.status.build_job_name.as_deref(), Some(JOB1));
}

#[test]
fn delete_of_an_app_without_identity_still_releases_the_finalizer() {
    let mut app = ReviewApp::new("empty", Default::default());
    app.metadata.finalizers = Some(vec![reviewapp_api::FINALIZER.into()]);
    let t = transition(&app, AppEvent::Delete, &Missing, &config(), now());
    assert_eq!(
        summary(&t),
        ["event TearDown", "teardown - jobs=", "remove-finalizer"]
    );
}

#[test]
fn deploys_the_image_that_was_built_even_if_the_registry_changed() {
    // Build started while the operator pushed to `grossvogel`; the operator is reconfigured
    // before the build finishes. The built image is deployed, not one derived anew.
    let states = states();
    let building = &states.iter().find(|(n, _)| *n == "building").unwrap().1;
    let mut moved = config();
    moved.registry = "registry.example.com/review".into();
    let t = transition(building, AppEvent::Reconcile, &Succeeded, &moved, now());
    assert!(
        summary(&t).contains(&format!("apply 1 {IMG1}")),
        "{:?}",
        summary(&t)
    );
    assert_eq!(t.status.deployed_image.as_deref(), Some(IMG1));
}

#[test]
fn a_status_without_image_still_applies_a_real_image() {
    // buildCommit recorded but the image lost (hand-edited or corrupted status).
    let mut app = fresh();
    app.status =
        Some(serde_yaml::from_str(&format!("buildStatus: error\nbuildCommit: {SHA1}\n")).unwrap());
    let t = transition(&app, AppEvent::Reconcile, &Missing, &config(), now());
    assert!(
        summary(&t).contains(&format!("apply 0 {IMG1}")),
        "{:?}",
        summary(&t)
    );
}
