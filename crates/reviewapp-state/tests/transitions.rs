//! The transition table: every status the operator can leave an app in × every event.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(
    clippy::too_many_lines,
    reason = "the transition tables are data, one row per line"
)]

mod common;

use std::collections::BTreeSet;

use common::*;
use reviewapp_api::status::{
    CONDITION_BUILDING, CONDITION_DEPLOYED, CONDITION_IGNORED_KEYS, CONDITION_INVALID,
    CONDITION_MISSING_SECRETS,
};
use reviewapp_api::{AppStatus, BuildStatus, ReviewApp};
use reviewapp_state::{
    AppEvent, BuildObservation, BuildObservation::*, EventKind, Intent, JobState, Observed,
    Transition, transition,
};

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
                "start-build test-review-app-678--c8c9aa334a c8c9aa334a76677aa0be4ec0ebb08484367f952d grossvogel/test-review-app-678:c8c9aa334a",
                "apply 0 grossvogel/test-review-app-678:c8c9aa334a",
                "event Normal BuildStarted",
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
                "start-build test-review-app-678--c8c9aa334a c8c9aa334a76677aa0be4ec0ebb08484367f952d grossvogel/test-review-app-678:c8c9aa334a",
                "apply 0 grossvogel/test-review-app-678:c8c9aa334a",
                "event Normal BuildStarted",
            ],
            BUILDING,
        ),
        row(
            "fresh",
            "modify-commit",
            Missing,
            &[
                "add-finalizer",
                "start-build test-review-app-678--5ce6e4a15e 5ce6e4a15e2a09fe113aba79263104835bd676c2 grossvogel/test-review-app-678:5ce6e4a15e",
                "apply 0 grossvogel/test-review-app-678:5ce6e4a15e",
                "event Normal BuildStarted",
            ],
            BUILDING,
        ),
        row(
            "fresh",
            "modify-config",
            Missing,
            &[
                "add-finalizer",
                "start-build test-review-app-678--c8c9aa334a c8c9aa334a76677aa0be4ec0ebb08484367f952d grossvogel/test-review-app-678:c8c9aa334a",
                "apply 0 grossvogel/test-review-app-678:c8c9aa334a",
                "event Normal BuildStarted",
            ],
            BUILDING,
        ),
        row(
            "fresh",
            "reconcile",
            Missing,
            &[
                "add-finalizer",
                "start-build test-review-app-678--c8c9aa334a c8c9aa334a76677aa0be4ec0ebb08484367f952d grossvogel/test-review-app-678:c8c9aa334a",
                "apply 0 grossvogel/test-review-app-678:c8c9aa334a",
                "event Normal BuildStarted",
            ],
            BUILDING,
        ),
        row(
            "fresh",
            "delete",
            Missing,
            &[
                "event Normal TearDown",
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
                "release-job test-review-app-678--c8c9aa334a",
                "start-build test-review-app-678--5ce6e4a15e 5ce6e4a15e2a09fe113aba79263104835bd676c2 grossvogel/test-review-app-678:5ce6e4a15e",
                "apply 0 grossvogel/test-review-app-678:5ce6e4a15e prune",
                "event Normal BuildStarted",
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
                "event Normal Deployed",
                "then release-job test-review-app-678--c8c9aa334a",
            ],
            DEPLOYED,
        ),
        row(
            "building",
            "reconcile",
            failed(),
            &[
                "apply 0 grossvogel/test-review-app-678:c8c9aa334a",
                "event Warning BuildFailed",
                "then release-job test-review-app-678--c8c9aa334a",
            ],
            FAILED,
        ),
        row(
            "building",
            "reconcile",
            Missing,
            &[
                "start-build test-review-app-678--c8c9aa334a c8c9aa334a76677aa0be4ec0ebb08484367f952d grossvogel/test-review-app-678:c8c9aa334a",
                "apply 0 grossvogel/test-review-app-678:c8c9aa334a",
                "event Warning BuildRestarted",
            ],
            BUILDING,
        ),
        row(
            "building",
            "delete",
            Running,
            &[
                "event Normal TearDown",
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
                "release-job test-review-app-678--c8c9aa334a",
                "start-build test-review-app-678--5ce6e4a15e 5ce6e4a15e2a09fe113aba79263104835bd676c2 grossvogel/test-review-app-678:5ce6e4a15e",
                "apply 1 grossvogel/test-review-app-678:c8c9aa334a prune",
                "event Normal BuildStarted",
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
                "event Normal TearDown",
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
                "release-job test-review-app-678--5ce6e4a15e",
                "start-build test-review-app-678--0123456789 0123456789abcdef0123456789abcdef01234567 grossvogel/test-review-app-678:0123456789",
                "apply 1 grossvogel/test-review-app-678:c8c9aa334a prune",
                "event Normal BuildStarted",
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
                "event Normal Deployed",
                "then release-job test-review-app-678--5ce6e4a15e",
            ],
            DEPLOYED,
        ),
        row(
            "rebuilding",
            "reconcile",
            failed(),
            &[
                "apply 1 grossvogel/test-review-app-678:c8c9aa334a",
                "event Warning BuildFailed",
                "then release-job test-review-app-678--5ce6e4a15e",
            ],
            REBUILD_FAILED,
        ),
        row(
            "rebuilding",
            "reconcile",
            Missing,
            &[
                "start-build test-review-app-678--5ce6e4a15e 5ce6e4a15e2a09fe113aba79263104835bd676c2 grossvogel/test-review-app-678:5ce6e4a15e",
                "apply 1 grossvogel/test-review-app-678:c8c9aa334a",
                "event Warning BuildRestarted",
            ],
            REBUILDING,
        ),
        row(
            "rebuilding",
            "delete",
            Running,
            &[
                "event Normal TearDown",
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
                "release-job test-review-app-678--c8c9aa334a",
                "start-build test-review-app-678--5ce6e4a15e 5ce6e4a15e2a09fe113aba79263104835bd676c2 grossvogel/test-review-app-678:5ce6e4a15e",
                "apply 0 grossvogel/test-review-app-678:5ce6e4a15e prune",
                "event Normal BuildStarted",
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
            // The outcome is on record; a still-held finished Job is only released.
            Succeeded,
            &[
                "apply 0 grossvogel/test-review-app-678:c8c9aa334a",
                "then release-job test-review-app-678--c8c9aa334a",
            ],
            FAILED,
        ),
        row(
            "failed-first",
            "delete",
            Missing,
            &[
                "event Normal TearDown",
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
                "release-job test-review-app-678--5ce6e4a15e",
                "start-build test-review-app-678--0123456789 0123456789abcdef0123456789abcdef01234567 grossvogel/test-review-app-678:0123456789",
                "apply 1 grossvogel/test-review-app-678:c8c9aa334a prune",
                "event Normal BuildStarted",
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
            &[
                "apply 1 grossvogel/test-review-app-678:c8c9aa334a",
                "then release-job test-review-app-678--5ce6e4a15e",
            ],
            REBUILD_FAILED,
        ),
        row(
            "failed-rebuild",
            "delete",
            Running,
            &[
                "event Normal TearDown",
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
                "start-build test-review-app-678--c8c9aa334a c8c9aa334a76677aa0be4ec0ebb08484367f952d grossvogel/test-review-app-678:c8c9aa334a",
                "apply 0 grossvogel/test-review-app-678:c8c9aa334a prune",
                "event Normal SpecValid",
                "event Normal BuildStarted",
            ],
            BUILDING,
        ),
        row("invalid", "reconcile", Missing, &[], NONE),
        row(
            "invalid",
            "delete",
            Missing,
            &[
                "event Normal TearDown",
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
                "release-job test-review-app-678--c8c9aa334a",
                "start-build test-review-app-678--5ce6e4a15e 5ce6e4a15e2a09fe113aba79263104835bd676c2 grossvogel/test-review-app-678:5ce6e4a15e",
                "apply 1 grossvogel/test-review-app-678:c8c9aa334a",
                "event Normal BuildStarted",
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
                "event Normal TearDown",
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
        let t = run(&app, event, &Observed::build(row.obs.clone()));
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
fn the_status_fixtures_are_what_the_transition_leaves() {
    let building = step(&fresh(), AppEvent::Add, Missing);
    let deployed = step(&building, AppEvent::Reconcile, Succeeded);
    let rebuilding = step(&with_commit(&deployed, SHA2), AppEvent::Modify, Missing);
    let produced = [
        ("building", building.clone()),
        ("deployed", deployed),
        (
            "failed-first",
            step(&building, AppEvent::Reconcile, failed()),
        ),
        ("rebuilding", rebuilding.clone()),
        (
            "failed-rebuild",
            step(&rebuilding, AppEvent::Reconcile, failed()),
        ),
        (
            "invalid",
            step(&with_port(&fresh(), 0), AppEvent::Add, Missing),
        ),
    ];
    for (name, app) in produced {
        assert_eq!(app, state(name), "{name}");
    }
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
                let t = transition(
                    &input,
                    event,
                    &Observed::build(obs.clone()),
                    &config(),
                    now(),
                );
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
    let deployed = &state("deployed");
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
    let t = transition(
        &fresh(),
        AppEvent::Add,
        &Observed::build(Missing),
        &config,
        now(),
    );
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
        let t = transition(
            &app,
            AppEvent::Reconcile,
            &Observed::build(obs.clone()),
            &config(),
            later,
        );
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
    let a = transition(
        &fresh(),
        AppEvent::Add,
        &Observed::build(Missing),
        &config(),
        precise,
    );
    let b = transition(
        &fresh(),
        AppEvent::Add,
        &Observed::build(Missing),
        &config(),
        now(),
    );
    assert_eq!(a.status, b.status);
}

#[test]
fn build_failure_reports_the_jobs_reason() {
    let app = &state("failed-first");
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
    let t = transition(
        &app,
        AppEvent::Add,
        &Observed::build(Missing),
        &config(),
        now(),
    );
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
        ["add-finalizer", "event Warning InvalidSpec"],
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
    let again = run(
        &applied(app, &t),
        AppEvent::Reconcile,
        &Observed::build(Missing),
    );
    assert!(again.intents.is_empty(), "{:?}", summary(&again));
}

#[test]
fn namespace_outside_the_allow_list_is_invalid() {
    let mut config = config();
    config.allowed_namespaces = vec!["review-*".into()];
    let t = transition(
        &fresh(),
        AppEvent::Add,
        &Observed::build(Missing),
        &config,
        now(),
    );
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
    let t = transition(
        &app,
        AppEvent::Add,
        &Observed::build(Missing),
        &config(),
        now(),
    );
    assert_eq!(t.status.build_job_name.as_deref(), Some(JOB1));
}

#[test]
fn delete_of_an_app_without_identity_still_releases_the_finalizer() {
    let mut app = ReviewApp::new("empty", Default::default());
    app.metadata.finalizers = Some(vec![reviewapp_api::FINALIZER.into()]);
    let t = transition(
        &app,
        AppEvent::Delete,
        &Observed::build(Missing),
        &config(),
        now(),
    );
    assert_eq!(
        summary(&t),
        [
            "event Normal TearDown",
            "teardown - jobs=",
            "remove-finalizer"
        ]
    );
}

#[test]
fn deploys_the_image_that_was_built_even_if_the_registry_changed() {
    // Build started while the operator pushed to `grossvogel`; the operator is reconfigured
    // before the build finishes. The built image is deployed, not one derived anew.
    let building = &state("building");
    let mut moved = config();
    moved.registry = "registry.example.com/review".into();
    let t = transition(
        building,
        AppEvent::Reconcile,
        &Observed::build(Succeeded),
        &moved,
        now(),
    );
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
    let t = transition(
        &app,
        AppEvent::Reconcile,
        &Observed::build(Missing),
        &config(),
        now(),
    );
    assert!(
        summary(&t).contains(&format!("apply 0 {IMG1}")),
        "{:?}",
        summary(&t)
    );
}

// ---------------------------------------------------------------------------------------------
// The build Job's lifecycle: being deleted (TTL, a person, garbage collection) and held by the
// operator's build-outcome finalizer. Every outcome × lifecycle, while the outcome is awaited
// (building) and once it is on record (deployed).

const NOT_HELD: JobState = JobState {
    deleting: false,
    held: false,
};
const DELETING_NOT_HELD: JobState = JobState {
    deleting: true,
    held: false,
};
const JOB_STATES: [JobState; 4] = [
    JobState::HELD,
    JobState::DELETING,
    NOT_HELD,
    DELETING_NOT_HELD,
];

fn outcome_label(obs: &BuildObservation) -> &'static str {
    match obs {
        Running => "running",
        Succeeded => "succeeded",
        Failed { .. } => "failed",
        Missing => "missing",
    }
}

struct JobRow {
    state: &'static str,
    obs: BuildObservation,
    job: JobState,
    intents: &'static [&'static str],
    status: (Option<AppStatus>, Option<BuildStatus>),
}

fn job_row(
    state: &'static str,
    obs: BuildObservation,
    job: JobState,
    intents: &'static [&'static str],
    status: (Option<AppStatus>, Option<BuildStatus>),
) -> JobRow {
    JobRow {
        state,
        obs,
        job,
        intents,
        status,
    }
}

fn job_table() -> Vec<JobRow> {
    const APPLY0: &str = "apply 0 grossvogel/test-review-app-678:c8c9aa334a";
    const APPLY1: &str = "apply 1 grossvogel/test-review-app-678:c8c9aa334a";
    const RELEASE_LATER: &str = "then release-job test-review-app-678--c8c9aa334a";
    vec![
        // Awaiting the outcome.
        job_row("building", Running, JobState::HELD, &[APPLY0], BUILDING),
        // Someone deleted the running build: let it go, build the same commit again.
        job_row(
            "building",
            Running,
            JobState::DELETING,
            &[
                "release-job test-review-app-678--c8c9aa334a",
                "start-build test-review-app-678--c8c9aa334a c8c9aa334a76677aa0be4ec0ebb08484367f952d grossvogel/test-review-app-678:c8c9aa334a",
                APPLY0,
                "event Warning BuildRestarted",
            ],
            BUILDING,
        ),
        job_row("building", Running, NOT_HELD, &[APPLY0], BUILDING),
        // Someone else's finalizer holds it: wait until it is gone (then it is Missing).
        job_row("building", Running, DELETING_NOT_HELD, &[APPLY0], BUILDING),
        // Finished: record the outcome, then release the Job.
        job_row(
            "building",
            Succeeded,
            JobState::HELD,
            &[APPLY1, "event Normal Deployed", RELEASE_LATER],
            DEPLOYED,
        ),
        // Finished while the operator was down, and its TTL (or a person) deleted it: deployed,
        // not rebuilt.
        job_row(
            "building",
            Succeeded,
            JobState::DELETING,
            &[APPLY1, "event Normal Deployed", RELEASE_LATER],
            DEPLOYED,
        ),
        job_row(
            "building",
            Succeeded,
            NOT_HELD,
            &[APPLY1, "event Normal Deployed"],
            DEPLOYED,
        ),
        job_row(
            "building",
            Succeeded,
            DELETING_NOT_HELD,
            &[APPLY1, "event Normal Deployed"],
            DEPLOYED,
        ),
        job_row(
            "building",
            failed(),
            JobState::HELD,
            &[APPLY0, "event Warning BuildFailed", RELEASE_LATER],
            FAILED,
        ),
        job_row(
            "building",
            failed(),
            JobState::DELETING,
            &[APPLY0, "event Warning BuildFailed", RELEASE_LATER],
            FAILED,
        ),
        job_row(
            "building",
            failed(),
            NOT_HELD,
            &[APPLY0, "event Warning BuildFailed"],
            FAILED,
        ),
        job_row(
            "building",
            failed(),
            DELETING_NOT_HELD,
            &[APPLY0, "event Warning BuildFailed"],
            FAILED,
        ),
        // Truly gone (created without the finalizer, or it was stripped): start it again.
        job_row(
            "building",
            Missing,
            JobState::default(),
            &[
                "start-build test-review-app-678--c8c9aa334a c8c9aa334a76677aa0be4ec0ebb08484367f952d grossvogel/test-review-app-678:c8c9aa334a",
                APPLY0,
                "event Warning BuildRestarted",
            ],
            BUILDING,
        ),
        // The outcome is on record: a Job still held (the release failed, or the operator stopped
        // before it) is released, whatever it says now; nothing is rebuilt.
        job_row("deployed", Running, JobState::HELD, &[APPLY1], DEPLOYED),
        job_row(
            "deployed",
            Running,
            JobState::DELETING,
            &[APPLY1, RELEASE_LATER],
            DEPLOYED,
        ),
        job_row("deployed", Running, NOT_HELD, &[APPLY1], DEPLOYED),
        job_row("deployed", Running, DELETING_NOT_HELD, &[APPLY1], DEPLOYED),
        job_row(
            "deployed",
            Succeeded,
            JobState::HELD,
            &[APPLY1, RELEASE_LATER],
            DEPLOYED,
        ),
        job_row(
            "deployed",
            Succeeded,
            JobState::DELETING,
            &[APPLY1, RELEASE_LATER],
            DEPLOYED,
        ),
        job_row("deployed", Succeeded, NOT_HELD, &[APPLY1], DEPLOYED),
        job_row(
            "deployed",
            Succeeded,
            DELETING_NOT_HELD,
            &[APPLY1],
            DEPLOYED,
        ),
        job_row(
            "deployed",
            failed(),
            JobState::HELD,
            &[APPLY1, RELEASE_LATER],
            DEPLOYED,
        ),
        job_row(
            "deployed",
            failed(),
            JobState::DELETING,
            &[APPLY1, RELEASE_LATER],
            DEPLOYED,
        ),
        job_row("deployed", failed(), NOT_HELD, &[APPLY1], DEPLOYED),
        job_row("deployed", failed(), DELETING_NOT_HELD, &[APPLY1], DEPLOYED),
        // Gone after its TTL: nothing to do, nothing rebuilt.
        job_row(
            "deployed",
            Missing,
            JobState::default(),
            &[APPLY1],
            DEPLOYED,
        ),
    ]
}

#[test]
fn build_job_lifecycle_table() {
    let states = states();
    let mut failures = Vec::new();
    for row in job_table() {
        let app = &states
            .iter()
            .find(|(name, _)| *name == row.state)
            .unwrap()
            .1;
        let observed = Observed {
            build: row.obs.clone(),
            job: row.job,
            ..Observed::default()
        };
        let t = run(app, AppEvent::Reconcile, &observed);
        let got = summary(&t);
        let want: Vec<String> = row.intents.iter().map(|s| s.to_string()).collect();
        let status = (t.status.app_status, t.status.build_status);
        if got != want || status != row.status {
            failures.push(format!(
                "{} × {} × {:?}:\n  want {want:?} {:?}\n  got  {got:?} {status:?}",
                row.state,
                outcome_label(&row.obs),
                row.job,
                row.status
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
fn job_table_covers_every_outcome_and_lifecycle() {
    let covered: BTreeSet<(&str, &str, JobState)> = job_table()
        .iter()
        .map(|r| (r.state, outcome_label(&r.obs), r.job))
        .collect();
    for state in ["building", "deployed"] {
        for outcome in [Running, Succeeded, failed()] {
            for job in JOB_STATES {
                assert!(
                    covered.contains(&(state, outcome_label(&outcome), job)),
                    "no row for {state} × {} × {job:?}",
                    outcome_label(&outcome)
                );
            }
        }
        assert!(covered.contains(&(state, "missing", JobState::default())));
    }
}

#[test]
fn the_release_of_a_finished_job_waits_for_the_status_that_records_it() {
    let building = &state("building");
    for obs in [Succeeded, failed()] {
        let t = run(
            building,
            AppEvent::Reconcile,
            &Observed {
                build: obs.clone(),
                job: JobState::DELETING,
                ..Observed::default()
            },
        );
        assert!(
            !t.intents
                .iter()
                .any(|i| matches!(i, Intent::ReleaseBuildJob { .. })),
            "{obs:?}: released before the outcome is written"
        );
        assert_eq!(
            t.after_status,
            [Intent::ReleaseBuildJob { name: JOB1.into() }]
        );
        // The status it waits for records the outcome for that Job's commit.
        assert_eq!(t.status.build_commit.as_deref(), Some(SHA1));
        assert_ne!(t.status.build_status, Some(BuildStatus::Building));
    }
}

#[test]
fn a_superseded_or_torn_down_build_is_deleted_and_released() {
    let rebuilding = &state("rebuilding");
    let t = run(
        &with_commit(rebuilding, SHA3),
        AppEvent::Modify,
        &Observed::build(Running),
    );
    let summary = summary(&t);
    assert_eq!(
        &summary[..2],
        [format!("delete-job {JOB2}"), format!("release-job {JOB2}")]
    );
    let t = run(rebuilding, AppEvent::Delete, &Observed::build(Running));
    let teardown = t
        .intents
        .iter()
        .find_map(|i| match i {
            Intent::TearDown(t) => Some(t),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        teardown.build_jobs,
        [JOB2],
        "rendered as delete and release"
    );
    assert!(t.after_status.is_empty());
}

#[test]
fn an_outcome_on_a_deleting_job_is_deployed_after_a_restart() {
    // The build succeeded while the operator was down, then its TTL deleted the Job (held by the
    // finalizer). The operator comes back: ADD deploys the built image, no second build.
    let building = &state("building");
    let t = run(
        building,
        AppEvent::Add,
        &Observed {
            build: Succeeded,
            job: JobState::DELETING,
            ..Observed::default()
        },
    );
    assert_eq!(
        summary(&t),
        [
            format!("apply 1 {IMG1}"),
            "event Normal Deployed".to_string(),
            format!("then release-job {JOB1}")
        ]
    );
    assert_eq!(t.status.deployed_image.as_deref(), Some(IMG1));
}

// ---------------------------------------------------------------------------------------------
// Unknown spec.config keys and missing env Secrets

/// The sample with unknown keys in `spec.config`.
fn with_unknown_keys(app: &ReviewApp, keys: &[&str]) -> ReviewApp {
    edited(app, |a| {
        let config = a.spec.config.as_mut().unwrap();
        config.unknown.clear();
        for key in keys {
            config
                .unknown
                .insert(key.to_string(), serde_json::json!("x"));
        }
    })
}

fn events(t: &Transition) -> Vec<(EventKind, &'static str, String)> {
    t.intents
        .iter()
        .filter_map(|i| match i {
            Intent::Event(e) => Some((e.kind, e.reason, e.note.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn unknown_keys_are_reported_once_and_cleared() {
    let app = building();
    let ignored = app
        .status
        .as_ref()
        .unwrap()
        .condition(CONDITION_IGNORED_KEYS);
    assert_eq!(ignored.map(|c| c.status.as_str()), Some("False"));

    let app = with_unknown_keys(&app, &["baseApp"]);
    let t = run(&app, AppEvent::Modify, &Observed::build(Running));
    let condition = t.status.condition(CONDITION_IGNORED_KEYS).unwrap();
    assert_eq!(
        (condition.status.as_str(), condition.reason.as_str()),
        ("True", "UnknownKeys")
    );
    assert!(
        condition.message.contains("spec.config.baseApp"),
        "{condition:?}"
    );
    let reported = events(&t);
    assert_eq!(reported.len(), 1, "{reported:?}");
    assert_eq!(
        (reported[0].0, reported[0].1),
        (EventKind::Normal, "IgnoredConfigKeys")
    );
    assert!(reported[0].2.contains("spec.config.baseApp"));
    let app = applied(app, &t);

    // Every later reconcile: the same status, no Event.
    for event in [AppEvent::Reconcile, AppEvent::Add] {
        let again = run(&app, event, &Observed::build(Running));
        assert!(events(&again).is_empty(), "{:?}", summary(&again));
        assert_eq!(Some(&again.status), app.status.as_ref());
    }

    // Another set: reported again; none left: False, no Event.
    let app = with_unknown_keys(&app, &["baseApp", "timeoutSeconds"]);
    let t = run(&app, AppEvent::Modify, &Observed::build(Running));
    assert_eq!(events(&t).len(), 1);
    let app = with_unknown_keys(&applied(app, &t), &[]);
    let t = run(&app, AppEvent::Modify, &Observed::build(Running));
    assert!(events(&t).is_empty());
    assert_eq!(
        t.status.condition(CONDITION_IGNORED_KEYS).unwrap().status,
        "False"
    );
}

#[test]
fn ignore_branches_is_known_not_reported() {
    let t = run(&fresh(), AppEvent::Add, &Observed::build(Missing));
    assert!(fresh().spec.config.unwrap().ignore_branches.is_some());
    assert_eq!(
        t.status.condition(CONDITION_IGNORED_KEYS).unwrap().status,
        "False"
    );
}

fn missing(names: &[&str]) -> Observed {
    Observed {
        build: Running,
        job: JobState::HELD,
        missing_secrets: names.iter().map(|n| n.to_string()).collect(),
        ..Observed::default()
    }
}

#[test]
fn a_missing_env_secret_is_reported_and_clears_when_it_appears() {
    let building = building();
    let t = run(&building, AppEvent::Reconcile, &missing(&["secret-two"]));
    let condition = t.status.condition(CONDITION_MISSING_SECRETS).unwrap();
    assert_eq!(
        (condition.status.as_str(), condition.reason.as_str()),
        ("True", "SecretNotFound")
    );
    assert!(
        condition.message.contains("secret-two") && !condition.message.contains("secret-one"),
        "{condition:?}"
    );
    assert!(condition.message.contains("test-review-app"));
    assert_eq!(
        events(&t).iter().map(|e| (e.0, e.1)).collect::<Vec<_>>(),
        [(EventKind::Warning, "MissingSecrets")]
    );
    assert!(
        summary(&t).iter().any(|s| s.starts_with("apply 0")),
        "the children are still applied"
    );
    let app = applied(building, &t);

    // Still missing: no second Warning, nothing to write.
    let again = run(&app, AppEvent::Reconcile, &missing(&["secret-two"]));
    assert!(events(&again).is_empty());
    assert_eq!(Some(&again.status), app.status.as_ref());

    // One more goes missing: reported again.
    let more = run(
        &app,
        AppEvent::Reconcile,
        &missing(&["secret-one", "secret-two"]),
    );
    assert_eq!(events(&more).len(), 1);

    // It appears: False, no Event.
    let found = run(&app, AppEvent::Reconcile, &missing(&[]));
    assert!(events(&found).is_empty());
    let condition = found.status.condition(CONDITION_MISSING_SECRETS).unwrap();
    assert_eq!(
        (condition.status.as_str(), condition.reason.as_str()),
        ("False", "SecretsFound")
    );
}

#[test]
fn only_the_apps_own_env_secrets_are_reported() {
    // An observation naming a Secret the spec does not use (a stale cache) reports nothing.
    let building = building();
    let t = run(&building, AppEvent::Reconcile, &missing(&["someone-elses"]));
    assert_eq!(
        t.status
            .condition(CONDITION_MISSING_SECRETS)
            .unwrap()
            .status,
        "False"
    );
}

/// The real review yaml of revelrylabs/revelry_phoenix_app_template.
fn app_template() -> ReviewApp {
    let mut app: ReviewApp = serde_yaml::from_str(include_str!(
        "../../../dev/samples/reviewapp-app-template.yaml"
    ))
    .unwrap();
    app.metadata.generation = Some(1);
    app
}

#[test]
fn the_app_template_builds_and_reports_its_missing_env_secret() {
    let t = run(
        &app_template(),
        AppEvent::Add,
        &Observed {
            missing_secrets: ["app-template-env-secret".to_string()].into(),
            ..Observed::default()
        },
    );
    assert_eq!(
        summary(&t),
        [
            "add-finalizer",
            "start-build revelry-phoenix-app-template-42--3f786850e3 3f786850e387550fdab836ed7e6dc881de23001b grossvogel/revelry-phoenix-app-template-42:3f786850e3",
            "apply 0 grossvogel/revelry-phoenix-app-template-42:3f786850e3",
            "event Normal BuildStarted",
            "event Warning MissingSecrets",
        ]
    );
    let condition = t.status.condition(CONDITION_MISSING_SECRETS).unwrap();
    assert!(condition.message.contains("app-template-env-secret"));
    assert_eq!(
        t.status.condition(CONDITION_IGNORED_KEYS).unwrap().status,
        "False",
        "every key of that review yaml is known"
    );
}
