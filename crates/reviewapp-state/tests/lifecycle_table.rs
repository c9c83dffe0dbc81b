//! The lifecycle's transition table: every lifecycle state (awake, sleeping, waking, expired) ×
//! every lifecycle input (deadlines passing, the annotations, a new commit, the Deployment
//! becoming available, the awake-app cap, our own write, delete).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::too_many_lines, reason = "the table is data, one row per line")]

mod common;

use std::collections::BTreeMap;

use common::*;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use reviewapp_api::annotations::{KEEP, SLEEP, WAKE_REQUESTED_AT};
use reviewapp_api::{OperatorConfig, ReviewApp};
use reviewapp_state::{
    AppEvent, BuildObservation, LifecycleFacts, Observed, Transition, transition,
};

const STATES: [&str; 4] = ["awake", "sleeping", "waking", "expired"];
const INPUTS: [&str; 12] = [
    "tick",
    "sleep-deadline",
    "expiry-deadline",
    "sleep-true",
    "sleep-false",
    "wake-request",
    "keep",
    "new-commit",
    "available",
    "over-cap",
    "modify-self",
    "delete",
];

/// Expires an hour, sleeps ten minutes after the last activity.
fn lifecycle_config() -> OperatorConfig {
    let mut config = config();
    config.lifecycle.expire_after = "1h".into();
    config.lifecycle.sleep_after = "10m".into();
    config
}

fn at(seconds: i64) -> Timestamp {
    now()
        .checked_add(SignedDuration::from_secs(seconds))
        .unwrap()
}

fn step(
    app: &ReviewApp,
    event: AppEvent,
    facts: LifecycleFacts,
    when: i64,
) -> (ReviewApp, Transition) {
    let observed = Observed {
        lifecycle: facts,
        ..Observed::build(BuildObservation::Succeeded)
    };
    let t = transition(app, event, &observed, &lifecycle_config(), at(when));
    (applied(app.clone(), &t), t)
}

fn annotated(app: &ReviewApp, key: &str, value: &str) -> ReviewApp {
    let mut app = app.clone();
    app.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(key.into(), value.into());
    app
}

/// Every lifecycle state, reached from the deployed fixture by the transition itself: awake at
/// `now` (its idle clock starts), asleep at +60 s, woken at +120 s, expired after an hour.
fn lifecycle_state(name: &str) -> ReviewApp {
    let none = LifecycleFacts::default();
    let (awake, _) = step(&state("deployed"), AppEvent::Reconcile, none, 0);
    let (sleeping, _) = step(
        &annotated(&awake, SLEEP, "true"),
        AppEvent::Modify,
        none,
        60,
    );
    match name {
        "awake" => awake,
        "sleeping" => sleeping,
        "waking" => {
            let request = at(120).to_string();
            step(
                &annotated(&sleeping, WAKE_REQUESTED_AT, &request),
                AppEvent::Modify,
                none,
                120,
            )
            .0
        }
        "expired" => step(&awake, AppEvent::Reconcile, none, 3601).0,
        other => panic!("no state {other}"),
    }
}

/// When each state was reached (seconds after `now`).
fn reached(state: &str) -> i64 {
    match state {
        "sleeping" => 60,
        "waking" => 120,
        "expired" => 3601,
        _ => 0,
    }
}

/// The input `name` applied to `app`, in state `state`: 5 s after it was reached, or at its
/// deadline: 601 s later for sleep (past `sleepAfter` of the last activity), 3700 s for expiry.
fn input(state: &str, app: &ReviewApp, name: &str) -> (ReviewApp, Transition) {
    let none = LifecycleFacts::default();
    let t = reached(state) + 5;
    let request = at(t).to_string();
    match name {
        "tick" => step(app, AppEvent::Reconcile, none, t),
        "sleep-deadline" => step(app, AppEvent::Reconcile, none, reached(state) + 601),
        "expiry-deadline" => step(app, AppEvent::Reconcile, none, reached(state) + 3700),
        "sleep-true" => step(
            &annotated(&without_sleep(app), SLEEP, "true"),
            AppEvent::Modify,
            none,
            t,
        ),
        "sleep-false" => step(&annotated(app, SLEEP, "false"), AppEvent::Modify, none, t),
        "wake-request" => step(
            &annotated(app, WAKE_REQUESTED_AT, &request),
            AppEvent::Modify,
            none,
            t,
        ),
        "keep" => step(&annotated(app, KEEP, "true"), AppEvent::Modify, none, t),
        "new-commit" => step(&with_commit(app, SHA2), AppEvent::Modify, none, t),
        "available" => step(
            app,
            AppEvent::Reconcile,
            LifecycleFacts {
                deployment_available: true,
                over_cap: false,
            },
            t,
        ),
        "over-cap" => step(
            app,
            AppEvent::Reconcile,
            LifecycleFacts {
                deployment_available: false,
                over_cap: true,
            },
            t,
        ),
        "modify-self" => step(app, AppEvent::Modify, none, t),
        "delete" => step(app, AppEvent::Delete, none, t),
        other => panic!("no input {other}"),
    }
}

/// `app` without the `sleep` annotation on record, so that setting it is a change.
fn without_sleep(app: &ReviewApp) -> ReviewApp {
    let mut app = app.clone();
    if let Some(a) = app.metadata.annotations.as_mut() {
        a.remove(SLEEP);
    }
    app
}

fn app_status(app: &ReviewApp) -> &'static str {
    app.status
        .as_ref()
        .and_then(|s| s.app_status)
        .map(|s| s.as_str())
        .unwrap_or("")
}

/// A row: state, input, the `appStatus` after, the next look (seconds after `now`), the intents.
type Row = (
    &'static str,
    &'static str,
    &'static str,
    Option<i64>,
    &'static [&'static str],
);

/// Every lifecycle state × input. A sleeping app is woken by a change of its `sleep`
/// annotation to "false", a request or a new commit, and its Ingress waits for the Deployment
/// ("waking"); the same `sleep` value again is no order; an expired app comes back only with a
/// later deadline (`keep`, a new commit).
fn table() -> Vec<Row> {
    vec![
        (
            "awake",
            "tick",
            "deployed",
            Some(600),
            &["apply 1 IMG1", "then release-job JOB1"],
        ),
        (
            "awake",
            "sleep-deadline",
            "sleeping",
            Some(3600),
            &[
                "apply 0 IMG1 sleeping",
                "event Normal Sleeping",
                "then release-job JOB1",
            ],
        ),
        (
            "awake",
            "expiry-deadline",
            "expired",
            None,
            &["teardown APP jobs=JOB1", "event Normal Expired"],
        ),
        (
            "awake",
            "sleep-true",
            "sleeping",
            Some(3600),
            &[
                "apply 0 IMG1 sleeping",
                "event Normal Sleeping",
                "then release-job JOB1",
            ],
        ),
        (
            "awake",
            "sleep-false",
            "deployed",
            Some(600),
            &["apply 1 IMG1", "then release-job JOB1"],
        ),
        (
            "awake",
            "wake-request",
            "deployed",
            Some(605),
            &["apply 1 IMG1", "then release-job JOB1"],
        ),
        (
            "awake",
            "keep",
            "deployed",
            None,
            &["apply 1 IMG1", "then release-job JOB1"],
        ),
        (
            "awake",
            "new-commit",
            "deployed",
            Some(605),
            &[
                "delete-job JOB1",
                "release-job JOB1",
                "start-build JOB2 IMG2",
                "apply 1 IMG1 prune",
                "event Normal BuildStarted",
            ],
        ),
        (
            "awake",
            "available",
            "deployed",
            Some(600),
            &["apply 1 IMG1", "then release-job JOB1"],
        ),
        (
            "awake",
            "over-cap",
            "sleeping",
            Some(3600),
            &[
                "apply 0 IMG1 sleeping",
                "event Normal SleptForCap",
                "then release-job JOB1",
            ],
        ),
        ("awake", "modify-self", "deployed", Some(600), &[]),
        (
            "awake",
            "delete",
            "deployed",
            None,
            &[
                "event Normal TearDown",
                "teardown APP jobs=JOB1",
                "remove-finalizer",
            ],
        ),
        (
            "sleeping",
            "tick",
            "sleeping",
            Some(3600),
            &["apply 0 IMG1 sleeping", "then release-job JOB1"],
        ),
        (
            "sleeping",
            "sleep-deadline",
            "sleeping",
            Some(3600),
            &["apply 0 IMG1 sleeping", "then release-job JOB1"],
        ),
        (
            "sleeping",
            "expiry-deadline",
            "expired",
            None,
            &["teardown APP jobs=JOB1", "event Normal Expired"],
        ),
        ("sleeping", "sleep-true", "sleeping", Some(3600), &[]),
        (
            "sleeping",
            "sleep-false",
            "deployed",
            Some(665),
            &[
                "apply 1 IMG1 waking",
                "event Normal Waking",
                "then release-job JOB1",
            ],
        ),
        (
            "sleeping",
            "wake-request",
            "deployed",
            Some(665),
            &[
                "apply 1 IMG1 waking",
                "event Normal Waking",
                "then release-job JOB1",
            ],
        ),
        (
            "sleeping",
            "keep",
            "sleeping",
            None,
            &["apply 0 IMG1 sleeping", "then release-job JOB1"],
        ),
        (
            "sleeping",
            "new-commit",
            "deployed",
            Some(665),
            &[
                "delete-job JOB1",
                "release-job JOB1",
                "start-build JOB2 IMG2",
                "apply 1 IMG1 prune waking",
                "event Normal BuildStarted",
                "event Normal Waking",
            ],
        ),
        (
            "sleeping",
            "available",
            "sleeping",
            Some(3600),
            &["apply 0 IMG1 sleeping", "then release-job JOB1"],
        ),
        (
            "sleeping",
            "over-cap",
            "sleeping",
            Some(3600),
            &["apply 0 IMG1 sleeping", "then release-job JOB1"],
        ),
        ("sleeping", "modify-self", "sleeping", Some(3600), &[]),
        (
            "sleeping",
            "delete",
            "sleeping",
            None,
            &[
                "event Normal TearDown",
                "teardown APP jobs=JOB1",
                "remove-finalizer",
            ],
        ),
        (
            "waking",
            "tick",
            "deployed",
            Some(720),
            &["apply 1 IMG1 waking", "then release-job JOB1"],
        ),
        (
            "waking",
            "sleep-deadline",
            "sleeping",
            Some(3720),
            &[
                "apply 0 IMG1 sleeping",
                "event Normal Sleeping",
                "then release-job JOB1",
            ],
        ),
        (
            "waking",
            "expiry-deadline",
            "expired",
            None,
            &["teardown APP jobs=JOB1", "event Normal Expired"],
        ),
        ("waking", "sleep-true", "deployed", Some(720), &[]),
        (
            "waking",
            "sleep-false",
            "deployed",
            Some(720),
            &["apply 1 IMG1 waking", "then release-job JOB1"],
        ),
        (
            "waking",
            "wake-request",
            "deployed",
            Some(725),
            &["apply 1 IMG1 waking", "then release-job JOB1"],
        ),
        (
            "waking",
            "keep",
            "deployed",
            None,
            &["apply 1 IMG1 waking", "then release-job JOB1"],
        ),
        (
            "waking",
            "new-commit",
            "deployed",
            Some(725),
            &[
                "delete-job JOB1",
                "release-job JOB1",
                "start-build JOB2 IMG2",
                "apply 1 IMG1 prune waking",
                "event Normal BuildStarted",
            ],
        ),
        (
            "waking",
            "available",
            "deployed",
            Some(720),
            &[
                "apply 1 IMG1",
                "remove-activator-route",
                "event Normal Awake",
                "then release-job JOB1",
            ],
        ),
        (
            "waking",
            "over-cap",
            "sleeping",
            Some(3720),
            &[
                "apply 0 IMG1 sleeping",
                "event Normal SleptForCap",
                "then release-job JOB1",
            ],
        ),
        ("waking", "modify-self", "deployed", Some(720), &[]),
        (
            "waking",
            "delete",
            "deployed",
            None,
            &[
                "event Normal TearDown",
                "teardown APP jobs=JOB1",
                "remove-finalizer",
            ],
        ),
        ("expired", "tick", "expired", None, &[]),
        ("expired", "sleep-deadline", "expired", None, &[]),
        ("expired", "expiry-deadline", "expired", None, &[]),
        ("expired", "sleep-true", "expired", None, &[]),
        ("expired", "sleep-false", "expired", None, &[]),
        ("expired", "wake-request", "expired", None, &[]),
        (
            "expired",
            "keep",
            "building",
            None,
            &[
                "start-build JOB1 IMG1",
                "apply 0 IMG1",
                "event Normal Revived",
                "event Normal BuildStarted",
            ],
        ),
        (
            "expired",
            "new-commit",
            "building",
            Some(7206),
            &[
                "delete-job JOB1",
                "release-job JOB1",
                "start-build JOB2 IMG2",
                "apply 0 IMG2 prune",
                "event Normal Revived",
                "event Normal BuildStarted",
            ],
        ),
        ("expired", "available", "expired", None, &[]),
        ("expired", "over-cap", "expired", None, &[]),
        ("expired", "modify-self", "expired", None, &[]),
        (
            "expired",
            "delete",
            "expired",
            None,
            &[
                "event Normal TearDown",
                "teardown APP jobs=JOB1",
                "remove-finalizer",
            ],
        ),
    ]
}

#[test]
fn lifecycle_table() {
    let mut failures = Vec::new();
    for (state, name, status, next, intents) in table() {
        let app = lifecycle_state(state);
        let (after, t) = input(state, &app, name);
        let got_next = t.requeue_at.map(|r| r.as_second() - now().as_second());
        let got: Vec<String> = summary(&t).iter().map(|l| short(l)).collect();
        if app_status(&after) != status || got_next != next || got != intents {
            failures.push(format!(
                "{state} × {name}: want {status} {next:?} {intents:?}, got {} {got_next:?} {got:?}",
                app_status(&after)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn lifecycle_table_covers_every_state_and_input() {
    let rows = table();
    for state in STATES {
        for name in INPUTS {
            let n = rows.iter().filter(|r| r.0 == state && r.1 == name).count();
            assert_eq!(n, 1, "{state} × {name}");
        }
    }
    assert_eq!(rows.len(), STATES.len() * INPUTS.len());
}

/// A summary line without the fixture's names.
fn short(line: &str) -> String {
    line.replace("test-review-app/test-review-app-678", "APP")
        .replace("grossvogel/test-review-app-678:c8c9aa334a", "IMG1")
        .replace("grossvogel/test-review-app-678:5ce6e4a15e", "IMG2")
        .replace("test-review-app-678--c8c9aa334a", "JOB1")
        .replace("test-review-app-678--5ce6e4a15e", "JOB2")
        .replace(" c8c9aa334a76677aa0be4ec0ebb08484367f952d", "")
        .replace(" 5ce6e4a15e2a09fe113aba79263104835bd676c2", "")
}
