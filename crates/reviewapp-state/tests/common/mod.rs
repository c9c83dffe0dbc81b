//! Shared fixtures for the transition tests: the original operator's sample app, every status
//! the operator can leave it in (written out as plain values), and a one-line rendering of
//! intents.
#![allow(
    dead_code,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use reviewapp_api::{
    AppStatus, BuildStatus, FINALIZER, OperatorConfig, ReviewApp, ReviewAppStatus,
};
use reviewapp_state::{
    AppEvent, BuildObservation, Intent, Observed, Phase, Transition, transition,
};

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

/// The original operator's sample `ReviewApp` as created: generation 1, no status, no finalizer.
pub fn fresh() -> ReviewApp {
    let mut app: ReviewApp =
        serde_yaml::from_str(include_str!("../../../../dev/samples/reviewapp.yaml"))
            .expect("the sample parses");
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

/// Every status the operator can leave an app in, by name: plain values, written out here (the
/// test `the_status_fixtures_are_what_the_transition_leaves` checks that the transition leaves
/// exactly these).
pub fn states() -> Vec<(&'static str, ReviewApp)> {
    vec![
        ("fresh", fresh()),
        ("building", building()),
        ("deployed", deployed()),
        ("rebuilding", rebuilding()),
        ("failed-first", failed_first()),
        ("failed-rebuild", failed_rebuild()),
        ("invalid", invalid()),
        ("legacy", legacy()),
    ]
}

/// The state called `name` in [`states`].
pub fn state(name: &str) -> ReviewApp {
    states()
        .into_iter()
        .find(|(state, _)| *state == name)
        .unwrap_or_else(|| panic!("no state {name}"))
        .1
}

pub const URL: &str = "http://test-review-app-678.review.local";
pub const FAILURE: &str = "BackoffLimitExceeded: Job has reached the specified backoff limit";

/// `app` once the operator handled it: its finalizer added, `status` written.
fn handled(mut app: ReviewApp, status: ReviewAppStatus) -> ReviewApp {
    app.metadata.finalizers = Some(vec![FINALIZER.into()]);
    app.status = Some(status);
    app
}

/// Condition `type_` as written at [`now`] for `generation`.
pub fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: i64,
) -> Condition {
    Condition {
        type_: type_.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: Some(generation),
        last_transition_time: Time(now()),
    }
}

/// The conditions of a valid app with every key known and every Secret found, with
/// `building` and `deployed` as `(status, reason, message)`.
fn valid_conditions(
    generation: i64,
    building: (bool, &str, &str),
    deployed: (bool, &str, &str),
) -> Vec<Condition> {
    vec![
        condition("Invalid", false, "Valid", "the spec is valid", generation),
        condition("Building", building.0, building.1, building.2, generation),
        condition("Deployed", deployed.0, deployed.1, deployed.2, generation),
        condition(
            "IgnoredKeys",
            false,
            "AllKeysKnown",
            "every spec.config key is known",
            generation,
        ),
        condition(
            "MissingSecrets",
            false,
            "SecretsFound",
            "every env Secret exists",
            generation,
        ),
    ]
}

fn serving(image: &str) -> (bool, &'static str, String) {
    (true, "Deployed", format!("serving {image} at {URL}"))
}

/// The first build running.
pub fn building() -> ReviewApp {
    let building = format!("building commit c8c9aa334a in Job {JOB1}");
    handled(
        fresh(),
        ReviewAppStatus {
            app_status: Some(AppStatus::Building),
            build_status: Some(BuildStatus::Building),
            build_started_at: Some(now().as_second()),
            build_job_name: Some(JOB1.into()),
            build_commit: Some(SHA1.into()),
            image: Some(IMG1.into()),
            url: Some(URL.into()),
            observed_generation: Some(1),
            conditions: valid_conditions(
                1,
                (true, "BuildRunning", &building),
                (false, "AwaitingBuild", "waiting for the first build"),
            ),
            ..ReviewAppStatus::default()
        },
    )
}

/// The first build succeeded and serves.
pub fn deployed() -> ReviewApp {
    let (up, reason, message) = serving(IMG1);
    handled(
        fresh(),
        ReviewAppStatus {
            app_status: Some(AppStatus::Deployed),
            build_status: Some(BuildStatus::Success),
            build_started_at: Some(now().as_second()),
            build_finished_at: Some(now().as_second()),
            build_job_name: Some(JOB1.into()),
            build_commit: Some(SHA1.into()),
            image: Some(IMG1.into()),
            deployed_commit: Some(SHA1.into()),
            deployed_image: Some(IMG1.into()),
            url: Some(URL.into()),
            observed_generation: Some(1),
            conditions: valid_conditions(
                1,
                (false, "BuildSucceeded", "commit c8c9aa334a built"),
                (up, reason, &message),
            ),
            ..ReviewAppStatus::default()
        },
    )
}

/// Deployed at `SHA1`, building `SHA2` (the spec's commit, generation 2).
pub fn rebuilding() -> ReviewApp {
    let building = format!("building commit 5ce6e4a15e in Job {JOB2}");
    let (up, reason, message) = serving(IMG1);
    handled(
        with_commit(&fresh(), SHA2),
        ReviewAppStatus {
            app_status: Some(AppStatus::Deployed),
            build_status: Some(BuildStatus::Building),
            build_started_at: Some(now().as_second()),
            build_job_name: Some(JOB2.into()),
            build_commit: Some(SHA2.into()),
            image: Some(IMG2.into()),
            deployed_commit: Some(SHA1.into()),
            deployed_image: Some(IMG1.into()),
            url: Some(URL.into()),
            observed_generation: Some(2),
            conditions: valid_conditions(
                2,
                (true, "BuildRunning", &building),
                (up, reason, &message),
            ),
            ..ReviewAppStatus::default()
        },
    )
}

/// The first build failed: nothing serves.
pub fn failed_first() -> ReviewApp {
    let message = format!("build Job {JOB1} failed: {FAILURE}");
    handled(
        fresh(),
        ReviewAppStatus {
            app_status: Some(AppStatus::Error),
            build_status: Some(BuildStatus::Error),
            build_started_at: Some(now().as_second()),
            build_finished_at: Some(now().as_second()),
            build_job_name: Some(JOB1.into()),
            build_commit: Some(SHA1.into()),
            image: Some(IMG1.into()),
            url: Some(URL.into()),
            message: Some(message.clone()),
            observed_generation: Some(1),
            conditions: valid_conditions(
                1,
                (false, "BuildFailed", &message),
                (false, "BuildFailed", "the first build failed"),
            ),
            ..ReviewAppStatus::default()
        },
    )
}

/// The build of `SHA2` failed; `SHA1` keeps serving.
pub fn failed_rebuild() -> ReviewApp {
    let message = format!("build Job {JOB2} failed: {FAILURE}");
    let (up, reason, serving) = serving(IMG1);
    handled(
        with_commit(&fresh(), SHA2),
        ReviewAppStatus {
            app_status: Some(AppStatus::Deployed),
            build_status: Some(BuildStatus::Error),
            build_started_at: Some(now().as_second()),
            build_finished_at: Some(now().as_second()),
            build_job_name: Some(JOB2.into()),
            build_commit: Some(SHA2.into()),
            image: Some(IMG2.into()),
            deployed_commit: Some(SHA1.into()),
            deployed_image: Some(IMG1.into()),
            url: Some(URL.into()),
            message: Some(message.clone()),
            observed_generation: Some(2),
            conditions: valid_conditions(
                2,
                (false, "BuildFailed", &message),
                (up, reason, &serving),
            ),
            ..ReviewAppStatus::default()
        },
    )
}

/// Created with `applicationPort: 0` (generation 2): reported, nothing built.
pub fn invalid() -> ReviewApp {
    let message = "invalid spec: spec.config.applicationPort: must be 1-65535, got 0";
    handled(
        with_port(&fresh(), 0),
        ReviewAppStatus {
            message: Some(message.into()),
            observed_generation: Some(2),
            conditions: vec![condition("Invalid", true, "InvalidSpec", message, 2)],
            ..ReviewAppStatus::default()
        },
    )
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

/// One line per intent, for readable table rows: every field of the plan's intents
/// (`start-build <job> <commit> <image>`, `apply <replicas> <image> [prune]`, ...), the kind and
/// reason of an Event (`event Normal BuildStarted`; the notes are checked where they matter), a
/// teardown's namespace, app name and build Jobs. The intents that wait for the status write come
/// last, as `then ...`.
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
                job_name,
                commit,
                image,
            } => format!("start-build {job_name} {commit} {image}"),
            Intent::ApplyChildren {
                replicas,
                image,
                prune,
                phase,
            } => {
                format!(
                    "apply {replicas} {image}{}{}",
                    if *prune { " prune" } else { "" },
                    match phase {
                        Phase::Serving => "",
                        Phase::Waking => " waking",
                        Phase::Sleeping => " sleeping",
                    }
                )
            }
            Intent::RemoveActivatorRoute => "remove-activator-route".to_string(),
            Intent::TearDown(t) => format!(
                "teardown {} jobs={}",
                t.children
                    .as_ref()
                    .map(|(ns, n)| format!("{ns}/{}", n.app))
                    .unwrap_or("-".into()),
                t.build_jobs.join(",")
            ),
            Intent::RemoveFinalizer => "remove-finalizer".to_string(),
            Intent::Event(e) => format!("event {:?} {}", e.kind, e.reason),
        })
        .collect()
}
