//! Properties of the lifecycle over random histories: a deadline never passes without the app
//! being looked at (after every transition no deadline of its status is in the past, and the
//! returned `requeue_at` is the earliest one), and an idle app writes nothing (looking again at
//! any time before `requeue_at` changes neither the status nor the cluster).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use common::*;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use reviewapp_api::annotations::{EXPIRES_AT, KEEP, SLEEP, WAKE_REQUESTED_AT};
use reviewapp_api::{AppStatus, OperatorConfig, ReviewApp, ReviewAppStatus};
use reviewapp_state::{
    AppEvent, BuildObservation, Intent, LifecycleFacts, Observed, Transition, transition,
};

#[derive(Clone, Debug)]
enum Op {
    Look,
    Sleep(bool),
    Wake,
    Keep(bool),
    ExpiresIn(i64),
    Commit(usize),
    Available,
    OverCap,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Look),
        1 => any::<bool>().prop_map(Op::Sleep),
        1 => Just(Op::Wake),
        1 => any::<bool>().prop_map(Op::Keep),
        1 => (-100i64..5000).prop_map(Op::ExpiresIn),
        1 => (0usize..3).prop_map(Op::Commit),
        2 => Just(Op::Available),
        1 => Just(Op::OverCap),
    ]
}

fn lifecycle_config(expire: &str, sleep: &str) -> OperatorConfig {
    let mut config = config();
    config.lifecycle.expire_after = expire.into();
    config.lifecycle.sleep_after = sleep.into();
    config
}

fn at(seconds: i64) -> Timestamp {
    now()
        .checked_add(SignedDuration::from_secs(seconds))
        .unwrap()
}

fn annotate(app: &mut ReviewApp, key: &str, value: Option<String>) {
    let annotations = app.metadata.annotations.get_or_insert_with(BTreeMap::new);
    match value {
        Some(value) => annotations.insert(key.into(), value),
        None => annotations.remove(key),
    };
}

/// The deadlines a status shows that the operator must act on: its expiry (unless expired), and
/// when an awake app sleeps.
fn deadlines(status: &ReviewAppStatus) -> Vec<Timestamp> {
    let mut out = Vec::new();
    if status.app_status != Some(AppStatus::Expired)
        && let Some(t) = &status.expires_at
    {
        out.push(t.0);
    }
    if status.app_status == Some(AppStatus::Deployed)
        && let Some(t) = &status.sleeps_at
    {
        out.push(t.0);
    }
    out
}

fn writes(t: &Transition, before: &ReviewApp) -> bool {
    before.status.as_ref() != Some(&t.status)
        || t.intents
            .iter()
            .any(|i| !matches!(i, Intent::ApplyChildren { .. }))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn deadlines_never_pass_unlooked_at_and_idle_apps_write_nothing(
        expire in prop_oneof![Just("0"), Just("30m"), Just("2h")],
        sleep in prop_oneof![Just("0"), Just("5m"), Just("20m")],
        ops in prop::collection::vec((op(), 0i64..1500), 1..40),
    ) {
        let config = lifecycle_config(expire, sleep);
        let shas = [SHA1, SHA2, SHA3];
        let mut app = state("deployed");
        let mut clock = 0i64;
        let mut requeue: Option<Timestamp> = None;
        for (op, dt) in ops {
            // The daemon's timer fires no later than the deadline it was armed for.
            let next = clock + dt;
            clock = match requeue {
                Some(r) if r.as_second() - now().as_second() < next => {
                    (r.as_second() - now().as_second()).max(clock)
                }
                _ => next,
            };
            let mut facts = LifecycleFacts::default();
            let mut event = AppEvent::Modify;
            match op {
                Op::Look => event = AppEvent::Reconcile,
                Op::Sleep(v) => annotate(&mut app, SLEEP, Some(v.to_string())),
                Op::Wake => annotate(&mut app, WAKE_REQUESTED_AT, Some(at(clock).to_string())),
                Op::Keep(v) => annotate(&mut app, KEEP, v.then(|| "true".to_string())),
                Op::ExpiresIn(s) => annotate(&mut app, EXPIRES_AT, Some(at(clock + s).to_string())),
                Op::Commit(i) => app = with_commit(&app, shas[i]),
                Op::Available => { event = AppEvent::Reconcile; facts.deployment_available = true; }
                Op::OverCap => { event = AppEvent::Reconcile; facts.over_cap = true; }
            }
            let observed = Observed {
                lifecycle: facts,
                ..Observed::build(BuildObservation::Succeeded)
            };
            let mut t = transition(&app, event, &observed, &config, at(clock));
            app = applied(app, &t);
            // The world answers (a started build succeeds): converge before checking idleness.
            for _ in 0..3 {
                let look = transition(&app, AppEvent::Reconcile, &Observed::build(BuildObservation::Succeeded), &config, at(clock));
                if !writes(&look, &app) {
                    break;
                }
                app = applied(app, &look);
                t = look;
            }
            let status = app.status.clone().unwrap();
            let pending = deadlines(&status);
            for deadline in &pending {
                prop_assert!(*deadline > at(clock), "a deadline passed unhandled: {deadline} at {}", at(clock));
            }
            prop_assert_eq!(t.requeue_at, pending.iter().min().copied(), "requeue_at is the earliest deadline");
            requeue = t.requeue_at;

            // Idle: looking again, now or any time before the next deadline, writes nothing.
            let later = match t.requeue_at {
                Some(r) => (r.as_second() - now().as_second() - 1).max(clock),
                None => clock + 100_000,
            };
            for when in [clock, later] {
                let again = transition(&app, AppEvent::Reconcile, &Observed::build(BuildObservation::Succeeded), &config, at(when));
                prop_assert!(!writes(&again, &app), "an idle look wrote at +{when}: {:?}\n{:?}\n{:?}", summary(&again), app.status, again.status);
            }
        }
    }
}
