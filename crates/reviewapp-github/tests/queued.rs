//! The pull request shows `queued` for the status the operator writes when a build waits for a
//! slot (`build.maxConcurrent`), and `in_progress` once the slot is granted: the mapping checked
//! against the operator's real transition, not a hand-written status.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::jiff::Timestamp;
use reviewapp_api::{OperatorConfig, ReviewApp};
use reviewapp_github::report::{DeploymentState, github_state};
use reviewapp_state::{AppEvent, BuildObservation, BuildSlot, Observed, transition};

const COMMIT: &str = "c8c9aa334a76677aa0be4ec0ebb08484367f952d";

fn sample() -> ReviewApp {
    serde_yaml::from_str(include_str!("../../../dev/samples/reviewapp.yaml")).unwrap()
}

#[test]
fn a_queued_build_is_queued_on_github_until_its_slot_is_granted() {
    let mut config = OperatorConfig::default();
    config.build.max_concurrent = 10;
    let now = Timestamp::from_second(1_700_000_000).unwrap();
    let mut app = sample();
    let waiting = Observed::build(BuildObservation::Missing)
        .with_slot(BuildSlot::Queued { position: 4, of: 9 });
    let queued = transition(&app, AppEvent::Add, &waiting, &config, now);
    app.status = Some(queued.status);
    let target = github_state(&app).expect("a deployment state");
    assert_eq!(target.state, DeploymentState::Queued);
    assert_eq!(target.commit, COMMIT);

    let granted = Observed::build(BuildObservation::Missing);
    let started = transition(&app, AppEvent::Reconcile, &granted, &config, now);
    assert_eq!(
        started.started_build(),
        Some("test-review-app-678--c8c9aa334a")
    );
    app.status = Some(started.status);
    let target = github_state(&app).expect("a deployment state");
    assert_eq!(target.state, DeploymentState::InProgress);
}
