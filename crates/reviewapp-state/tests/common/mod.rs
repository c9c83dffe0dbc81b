//! Shared fixtures for the transition tests: the seed's sample app, status fixtures produced by
//! the transition function itself, and a one-line rendering of intents.
#![allow(
    dead_code,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use k8s_openapi::jiff::Timestamp;
use reviewapp_api::{FINALIZER, OperatorConfig, ReviewApp};
use reviewapp_state::{AppEvent, BuildObservation, Intent, Observed, Transition, transition};

pub const SHA1: &str = "c8c9aa334a76677aa0be4ec0ebb08484367f952d";
pub const SHA2: &str = "5ce6e4a15e2a09fe113aba79263104835bd676c2";
pub const SHA3: &str = "0123456789abcdef0123456789abcdef01234567";
pub const JOB1: &str = "test-review-app-678--c8c9aa334a";
pub const JOB2: &str = "test-review-app-678--5ce6e4a15e";
pub const JOB3: &str = "test-review-app-678--0123456789";
pub const IMG1: &str = "grossvogel/test-review-app-678:c8c9aa334a";
pub const IMG2: &str = "grossvogel/test-review-app-678:5ce6e4a15e";
pub const IMG3: &str = "grossvogel/test-review-app-678:0123456789";

pub fn config() -> OperatorConfig {
    OperatorConfig {
        registry: "grossvogel".into(),
        ..OperatorConfig::default()
    }
}

pub fn now() -> Timestamp {
    Timestamp::from_second(1_700_000_000).unwrap()
}

/// The seed's sample `ReviewApp` as created: generation 1, no status, no finalizer.
pub fn fresh() -> ReviewApp {
    let mut app: ReviewApp =
        serde_yaml::from_str(include_str!("../../../../dev/samples/reviewapp.yaml"))
            .expect("seed fixture parses");
    app.metadata.generation = Some(1);
    app.metadata.uid = Some("5b1a6d0e-0000-4000-8000-000000000678".into());
    app.status = None;
    app
}

/// What the effects layer does with a transition: write the status, add/remove the finalizer.
pub fn applied(mut app: ReviewApp, t: &Transition) -> ReviewApp {
    app.status = Some(t.status.clone());
    for intent in &t.intents {
        match intent {
            Intent::AddFinalizer => app
                .metadata
                .finalizers
                .get_or_insert_default()
                .push(FINALIZER.into()),
            Intent::RemoveFinalizer => app
                .metadata
                .finalizers
                .get_or_insert_default()
                .retain(|f| f != FINALIZER),
            _ => {}
        }
    }
    app
}

/// Handles `event` with a build Job as the operator creates it (held, not being deleted) whose
/// outcome is `obs`, every env Secret present.
pub fn step(app: &ReviewApp, event: AppEvent, obs: BuildObservation) -> ReviewApp {
    applied(app.clone(), &run(app, event, &Observed::build(obs)))
}

/// The transition with the test configuration and clock.
pub fn run(app: &ReviewApp, event: AppEvent, observed: &Observed) -> Transition {
    transition(app, event, observed, &config(), now())
}

/// A spec edit as the API server records it: new spec, generation + 1.
pub fn edited(app: &ReviewApp, edit: impl FnOnce(&mut ReviewApp)) -> ReviewApp {
    let mut app = app.clone();
    edit(&mut app);
    app.metadata.generation = Some(app.metadata.generation.unwrap_or(0) + 1);
    app
}

pub fn with_commit(app: &ReviewApp, sha: &str) -> ReviewApp {
    edited(app, |a| a.spec.commit_hash = Some(sha.into()))
}

pub fn with_port(app: &ReviewApp, port: i64) -> ReviewApp {
    edited(app, |a| {
        a.spec.config.as_mut().unwrap().application_port = Some(port)
    })
}

pub fn failed() -> BuildObservation {
    BuildObservation::Failed {
        reason: "BackoffLimitExceeded".into(),
        message: "Job has reached the specified backoff limit".into(),
    }
}

/// Every status the operator can leave an app in, by name.
pub fn states() -> Vec<(&'static str, ReviewApp)> {
    use BuildObservation::*;
    let building = step(&fresh(), AppEvent::Add, Missing);
    let deployed = step(&building, AppEvent::Reconcile, Succeeded);
    let rebuilding = step(&with_commit(&deployed, SHA2), AppEvent::Modify, Missing);
    let failed_first = step(&building, AppEvent::Reconcile, failed());
    let failed_rebuild = step(&rebuilding, AppEvent::Reconcile, failed());
    let invalid = step(&with_port(&fresh(), 0), AppEvent::Add, Missing);
    let legacy = legacy();
    vec![
        ("fresh", fresh()),
        ("building", building),
        ("deployed", deployed),
        ("rebuilding", rebuilding),
        ("failed-first", failed_first),
        ("failed-rebuild", failed_rebuild),
        ("invalid", invalid),
        ("legacy", legacy),
    ]
}

/// A status exactly as the original Elixir operator wrote it after a successful build.
pub fn legacy() -> ReviewApp {
    let mut app = fresh();
    app.status = Some(
        serde_yaml::from_str(&format!(
            "appStatus: deployed\nbuildStatus: success\nbuildStartedAt: 1590000000\n\
             buildJobName: {JOB1}\nbuildCommit: {SHA1}\nimage: {IMG1}\n"
        ))
        .unwrap(),
    );
    app
}

/// One line per intent, for readable table rows; the intents that wait for the status write
/// come last, as `then ...`.
pub fn summary(t: &Transition) -> Vec<String> {
    let mut lines = intent_lines(&t.intents);
    lines.extend(
        intent_lines(&t.after_status)
            .into_iter()
            .map(|line| format!("then {line}")),
    );
    lines
}

fn intent_lines(intents: &[Intent]) -> Vec<String> {
    intents
        .iter()
        .map(|i| match i {
            Intent::AddFinalizer => "add-finalizer".to_string(),
            Intent::DeleteBuildJob { name } => format!("delete-job {name}"),
            Intent::ReleaseBuildJob { name } => format!("release-job {name}"),
            Intent::StartBuild {
                job_name, image, ..
            } => format!("start-build {job_name} {image}"),
            Intent::ApplyChildren {
                replicas,
                image,
                prune,
            } => {
                format!(
                    "apply {replicas} {image}{}",
                    if *prune { " prune" } else { "" }
                )
            }
            Intent::TearDown(t) => format!(
                "teardown {} jobs={}",
                t.children
                    .as_ref()
                    .map(|(ns, n)| format!("{ns}/{}", n.app))
                    .unwrap_or("-".into()),
                t.build_jobs.join(",")
            ),
            Intent::RemoveFinalizer => "remove-finalizer".to_string(),
            Intent::Event(e) => format!("event {}", e.reason),
        })
        .collect()
}
