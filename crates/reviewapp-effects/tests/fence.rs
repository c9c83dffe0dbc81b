//! The write fence: once this replica stops leading, nothing more is sent: no apply, create,
//! delete, finalizer patch, status write or Event, whether the fence lapsed before a plan
//! started or while one of its requests was on the wire.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use reviewapp_effects::{EffectsError, Lookup, NoIndex, Verb, WriteFence};
use reviewapp_state::{AppEvent, EventKind, EventNote};

fn note() -> EventNote {
    EventNote {
        kind: EventKind::Warning,
        reason: "Malformed",
        action: "Validate",
        note: "cannot be read".into(),
    }
}

/// A healthy fake API, and effects whose fence lapses when the API receives the first request
/// `lapse_on` selects (it is still answered).
fn lapsing_on(
    lapse_on: impl Fn(&Recorded) -> bool + Send + 'static,
) -> (MockApi, reviewapp_effects::Effects) {
    let fence = WriteFence::standby();
    fence.extend_to(tokio::time::Instant::now() + std::time::Duration::from_secs(3600));
    let shut = fence.clone();
    let api = MockApi::start(move |r| {
        if lapse_on(r) {
            shut.shut();
        }
        None
    });
    let (effects, _) = new_effects(&api);
    (api, effects.with_fence(fence))
}

#[tokio::test]
async fn a_closed_fence_sends_nothing_at_all() {
    let api = MockApi::healthy();
    let (effects, calls) = new_effects(&api);
    let effects = effects.with_fence(WriteFence::standby());
    let app = app();

    let (t, plan) = pipeline(&app, AppEvent::Add);
    let err = effects
        .execute(&app, &plan, &MapIndex::all(Lookup::Absent))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, EffectsError::Fenced { verb: Verb::Patch, object } if object.kind == "ReviewApp"),
        "the first action (the finalizer) is fenced: {err:?}"
    );
    assert!(err.to_string().contains("no longer the leader"), "{err}");

    let err = effects.write_status(&app, &t.status).await.unwrap_err();
    assert!(
        matches!(
            err,
            EffectsError::Fenced {
                verb: Verb::Status,
                ..
            }
        ),
        "{err:?}"
    );

    let (_, teardown) = pipeline(&deleted_app(), AppEvent::Delete);
    let err = effects
        .execute(&deleted_app(), &teardown, &NoIndex)
        .await
        .unwrap_err();
    assert!(matches!(err, EffectsError::Fenced { .. }), "{err:?}");

    assert!(
        !effects.record(&app, &note()).await,
        "the Event is not recorded"
    );
    assert_quiet(&api).await;
    assert!(
        calls.all().is_empty(),
        "no attempt reported: {:?}",
        calls.all()
    );
}

#[tokio::test]
async fn a_fence_lapsing_during_a_request_stops_the_plan_there() {
    // The deadline passes while the create is on the wire.
    let (api, effects) = lapsing_on(|r| r.method == "POST" && r.path.ends_with("/jobs"));
    let app = app();
    let (t, plan) = pipeline(&app, AppEvent::Add);
    let err = effects
        .execute(&app, &plan, &MapIndex::all(Lookup::Absent))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, EffectsError::Fenced { verb: Verb::Create, object } if object.kind == "Job"),
        "{err:?}"
    );
    let sent: Vec<String> = api
        .take()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        sent.len(),
        2,
        "the finalizer and the Job, nothing after: {sent:#?}"
    );
    assert!(sent[1].ends_with("/jobs"), "{sent:#?}");
    let err = effects.write_status(&app, &t.status).await.unwrap_err();
    assert!(matches!(err, EffectsError::Fenced { .. }), "{err:?}");
    assert_quiet(&api).await;
}

#[tokio::test]
async fn a_fenced_event_ends_the_plan_instead_of_being_skipped() {
    let (api, effects) = lapsing_on(|r| r.path.contains("/events"));
    let app = app();
    let (t, plan) = pipeline(&app, AppEvent::Add);
    let err = effects
        .execute(&app, &plan, &MapIndex::all(Lookup::Absent))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            EffectsError::Fenced {
                verb: Verb::Event,
                ..
            }
        ),
        "{err:?}"
    );
    let sent = api.take();
    assert!(
        sent.last().unwrap().path.contains("/events"),
        "nothing after the Event"
    );
    assert_ne!(
        app.status.as_ref(),
        Some(&t.status),
        "a status write is due"
    );
    let err = effects.write_status(&app, &t.status).await.unwrap_err();
    assert!(
        matches!(
            err,
            EffectsError::Fenced {
                verb: Verb::Status,
                ..
            }
        ),
        "{err:?}"
    );
    assert_quiet(&api).await;
}
