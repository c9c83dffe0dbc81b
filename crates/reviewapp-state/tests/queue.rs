//! The build slot as an observed fact: every combination that starts a build, with no slot free,
//! queues it instead (and changes nothing else); a queued build starts once a slot is granted,
//! keeps its place when a newer commit replaces it, and writes nothing while it waits; a build
//! stopped for a newer commit is reported as superseded, never as an error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use reviewapp_api::status::{CONDITION_BUILDING, REASON_QUEUED};
use reviewapp_api::{AppStatus, BuildStatus, ReviewApp};
use reviewapp_state::{
    AppEvent, BuildObservation, BuildObservation::*, BuildSlot, EventKind, Intent, JobState,
    Observed, Transition, queued_since,
};

const WAITING: BuildSlot = BuildSlot::Queued { position: 2, of: 5 };

/// Every event a state can see, as the transition table names them.
fn events(app: &ReviewApp) -> Vec<(&'static str, ReviewApp, AppEvent)> {
    let next = if app.spec.commit_hash.as_deref() == Some(SHA1) {
        SHA2
    } else {
        SHA3
    };
    vec![
        ("add", app.clone(), AppEvent::Add),
        ("modify-self", app.clone(), AppEvent::Modify),
        ("modify-commit", with_commit(app, next), AppEvent::Modify),
        ("modify-config", with_port(app, 8080), AppEvent::Modify),
        ("reconcile", app.clone(), AppEvent::Reconcile),
        ("delete", app.clone(), AppEvent::Delete),
    ]
}

fn observations() -> Vec<Observed> {
    let mut out = Vec::new();
    for build in [Running, Succeeded, failed()] {
        for job in [JobState::HELD, JobState::DELETING, JobState::default()] {
            out.push(Observed {
                build: build.clone(),
                job,
                ..Observed::default()
            });
        }
    }
    out.push(Observed::build(Missing));
    out
}

/// The intents without the build start and its Event: what a queued build still does.
fn without_start(t: &Transition) -> Vec<String> {
    summary(t)
        .into_iter()
        .filter(|line| !line.starts_with("start-build") && line != "event Normal BuildStarted")
        .collect()
}

fn building_condition(t: &Transition) -> (String, String, String) {
    let c = t.status.condition(CONDITION_BUILDING).expect("Building");
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

#[test]
fn every_build_start_waits_when_no_slot_is_free_and_nothing_else_changes() {
    let mut starts = 0;
    for (state, app) in states() {
        for (label, input, event) in events(&app) {
            for observed in observations() {
                let granted = run(&input, event, &observed);
                let queued = run(&input, event, &observed.clone().with_slot(WAITING));
                let case = format!("{state} × {label} × {observed:?}");
                let Some(job) = granted.started_build() else {
                    assert_eq!(queued, granted, "{case}: no build starts, the slot is moot");
                    continue;
                };
                starts += 1;
                assert!(job.starts_with("test-review-app-678--"), "{case}");
                assert_eq!(queued.started_build(), None, "{case}");
                assert_eq!(without_start(&queued), without_start(&granted), "{case}");
                let status = &queued.status;
                assert!(queued_since(status).is_some(), "{case}");
                assert_eq!(status.build_status, Some(BuildStatus::Building), "{case}");
                assert_eq!(status.build_job_name, None, "{case}: no Job yet");
                assert_eq!(status.build_started_at, None, "{case}");
                assert_eq!(status.build_commit, granted.status.build_commit, "{case}");
                assert_eq!(status.image, granted.status.image, "{case}");
                assert_eq!(status.app_status, granted.status.app_status, "{case}");
                assert_eq!(
                    status.deployed_image, granted.status.deployed_image,
                    "{case}"
                );
                let (value, reason, message) = building_condition(&queued);
                assert_eq!((value.as_str(), reason.as_str()), ("True", REASON_QUEUED));
                // The position when queued; one waiting already for the same commit keeps the
                // one on record.
                let recorded = input.status.as_ref().is_some_and(|s| {
                    queued_since(s).is_some() && s.build_commit == status.build_commit
                });
                let position = if recorded {
                    "position 1 of 1"
                } else {
                    "position 2 of 5"
                };
                assert!(
                    message.contains(position) && message.contains("at most 2 builds"),
                    "{case}: {message}"
                );
                // Once a slot is granted, it starts.
                let waiting = applied(input.clone(), &queued);
                let later = run(&waiting, AppEvent::Reconcile, &Observed::build(Missing));
                assert_eq!(later.started_build(), Some(job), "{case}");
                assert_eq!(queued_since(&later.status), None, "{case}");
                assert_eq!(building_condition(&later).1, "BuildRunning", "{case}");
            }
        }
    }
    assert!(starts > 30, "only {starts} combinations start a build");
}

#[test]
fn a_queued_build_writes_nothing_while_it_waits_whatever_its_position() {
    for state in ["queued", "rebuild-queued"] {
        let app = common::state(state);
        for slot in [
            WAITING,
            BuildSlot::Queued { position: 1, of: 1 },
            BuildSlot::Queued {
                position: 40,
                of: 900,
            },
        ] {
            for event in [AppEvent::Add, AppEvent::Reconcile] {
                let t = run(&app, event, &Observed::build(Missing).with_slot(slot));
                assert_eq!(Some(&t.status), app.status.as_ref(), "{state} {slot:?}");
                assert_eq!(t.started_build(), None);
                assert!(
                    t.intents.iter().all(|i| !matches!(i, Intent::Event(_))),
                    "{state}: no Event while waiting"
                );
            }
        }
    }
}

#[test]
fn a_newer_commit_replaces_a_queued_build_and_keeps_its_place() {
    let mut waiting = state("queued");
    waiting.status.as_mut().unwrap().build_requested_at = Some(now().as_second() - 600);
    let pushed = with_commit(&waiting, SHA2);
    let t = run(
        &pushed,
        AppEvent::Modify,
        &Observed::build(Missing).with_slot(WAITING),
    );
    assert_eq!(
        summary(&t),
        [
            format!("apply 0 {IMG2} prune"),
            "event Normal BuildSuperseded".to_string()
        ],
        "no Job of the stale commit to delete, none started"
    );
    assert_eq!(t.status.build_commit.as_deref(), Some(SHA2));
    assert_eq!(t.status.image.as_deref(), Some(IMG2));
    assert_eq!(
        queued_since(&t.status),
        Some(now().as_second() - 600),
        "the request time, which orders the queue, is kept"
    );
    let note = superseded_note(&t).expect("a BuildSuperseded Event");
    assert_eq!(
        note,
        "queued build of commit c8c9aa334a superseded by commit 5ce6e4a15e; it never started"
    );
    // Granted: the new commit is built, never the stale one.
    let t = run(&pushed, AppEvent::Modify, &Observed::build(Missing));
    assert_eq!(t.started_build(), Some(JOB2));
}

fn superseded_note(t: &Transition) -> Option<String> {
    t.intents.iter().find_map(|i| match i {
        Intent::Event(e) if e.reason == "BuildSuperseded" => {
            assert_eq!(e.kind, EventKind::Normal);
            Some(e.note.clone())
        }
        _ => None,
    })
}

#[test]
fn a_superseded_build_is_a_normal_event_naming_both_commits_and_keeps_app_status() {
    let cases = [
        (
            "building",
            SHA2,
            "build of commit c8c9aa334a (Job test-review-app-678--c8c9aa334a) superseded by commit 5ce6e4a15e; its Job is deleted",
        ),
        (
            "rebuilding",
            SHA3,
            "build of commit 5ce6e4a15e (Job test-review-app-678--5ce6e4a15e) superseded by commit 0123456789; its Job is deleted",
        ),
        (
            "queued",
            SHA2,
            "queued build of commit c8c9aa334a superseded by commit 5ce6e4a15e; it never started",
        ),
        (
            "rebuild-queued",
            SHA3,
            "queued build of commit 5ce6e4a15e superseded by commit 0123456789; it never started",
        ),
    ];
    for (state, next, want) in cases {
        let app = common::state(state);
        let before = app.status.as_ref().unwrap().app_status;
        for slot in [BuildSlot::Granted, WAITING] {
            for build in [Running, Succeeded, failed(), Missing] {
                let observed = Observed::build(build.clone()).with_slot(slot);
                let t = run(&with_commit(&app, next), AppEvent::Modify, &observed);
                let case = format!("{state} {slot:?} {build:?}");
                assert_eq!(superseded_note(&t).as_deref(), Some(want), "{case}");
                assert_eq!(t.status.app_status, before, "{case}");
                assert_eq!(t.status.message, None, "{case}: no error recorded");
                assert!(
                    t.intents.iter().all(|i| !matches!(
                        i,
                        Intent::Event(e) if e.kind == EventKind::Warning
                    )),
                    "{case}: no Warning"
                );
            }
        }
    }
    // A finished build is not superseded: the next commit simply builds.
    for state in ["deployed", "failed-first", "failed-rebuild"] {
        let app = common::state(state);
        let t = run(
            &with_commit(&app, SHA3),
            AppEvent::Modify,
            &Observed::build(Succeeded),
        );
        assert_eq!(superseded_note(&t), None, "{state}");
    }
}

#[test]
fn the_first_build_queued_is_reported_with_its_position() {
    let t = run(
        &fresh(),
        AppEvent::Add,
        &Observed::build(Missing).with_slot(BuildSlot::Queued {
            position: 7,
            of: 12,
        }),
    );
    assert_eq!(
        summary(&t),
        ["add-finalizer".to_string(), format!("apply 0 {IMG1}")]
    );
    assert_eq!(
        (t.status.app_status, t.status.build_status),
        (Some(AppStatus::Building), Some(BuildStatus::Building)),
        "buildStatus keeps its meaning: the build is under way"
    );
    assert_eq!(t.status.build_requested_at, Some(now().as_second()));
    assert_eq!(
        building_condition(&t),
        (
            "True".into(),
            "Queued".into(),
            "waiting for a build slot: position 7 of 12 when queued; at most 2 builds run at once"
                .into()
        )
    );
}

#[test]
fn a_restart_of_a_vanished_build_waits_for_a_slot_too() {
    let building = state("building");
    let t = run(
        &building,
        AppEvent::Reconcile,
        &Observed::build(BuildObservation::Missing).with_slot(WAITING),
    );
    assert_eq!(
        summary(&t),
        [
            format!("apply 0 {IMG1}"),
            "event Warning BuildRestarted".to_string()
        ]
    );
    assert!(queued_since(&t.status).is_some());
    assert_eq!(t.status.build_job_name, None);
}
