//! The pure cost of one event: `transition` + `render` (no IO), for the sample app
//! (`dev/samples/reviewapp.yaml`, the original operator's fixture).
//! `cargo bench -p reviewapp-bench --bench transition`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use k8s_openapi::jiff::Timestamp;
use reviewapp_api::{FINALIZER, OperatorConfig, ReviewApp};
use reviewapp_resources::render;
use reviewapp_state::{AppEvent, BuildObservation, Observed, transition};

const SAMPLE: &str = include_str!("../../../dev/samples/reviewapp.yaml");
const NEW_COMMIT: &str = "5ce6e4a15e2a09fe113aba79263104835bd676c2";

fn config() -> OperatorConfig {
    let mut config = OperatorConfig {
        registry: "registry.bench/review".into(),
        build_namespace: "review-build".into(),
        ..OperatorConfig::default()
    };
    config.tls.secret_name = "star-review-local-tls".into();
    config.tls.secret_namespace = "default".into();
    config
}

fn fresh() -> ReviewApp {
    let mut app: ReviewApp = serde_yaml::from_str(SAMPLE).unwrap();
    app.metadata.namespace = None;
    app.metadata.generation = Some(1);
    app.status = None;
    app
}

/// One event end to end, as the handler runs it minus the IO.
fn step(
    app: &ReviewApp,
    event: AppEvent,
    build: &BuildObservation,
    config: &OperatorConfig,
) -> usize {
    let observed = Observed::build(build.clone());
    let t = transition(app, event, &observed, config, Timestamp::now());
    let plan = render(app, t.spec.as_ref(), config, &t.intents).unwrap();
    let after = render(app, t.spec.as_ref(), config, &t.after_status).unwrap();
    plan.actions.len() + after.actions.len()
}

/// The sample, settled: finalizer on, built and deployed.
fn deployed(config: &OperatorConfig) -> ReviewApp {
    let mut app = fresh();
    let t = transition(
        &app,
        AppEvent::Add,
        &Observed::build(BuildObservation::Missing),
        config,
        Timestamp::now(),
    );
    app.status = Some(t.status);
    app.metadata.finalizers = Some(vec![FINALIZER.to_string()]);
    let t = transition(
        &app,
        AppEvent::Reconcile,
        &Observed::build(BuildObservation::Succeeded),
        config,
        Timestamp::now(),
    );
    app.status = Some(t.status);
    app
}

fn bench(c: &mut Criterion) {
    let config = config();
    let fresh = fresh();
    let deployed = deployed(&config);
    assert_eq!(
        deployed
            .status
            .as_ref()
            .and_then(|s| s.app_status)
            .map(|s| format!("{s:?}")),
        Some("Deployed".to_string()),
        "the fixture is deployed"
    );
    let mut pushed = deployed.clone();
    pushed.spec.commit_hash = Some(NEW_COMMIT.into());
    pushed.metadata.generation = Some(2);

    let mut group = c.benchmark_group("transition+render");
    group.bench_function("ADD of a fresh app", |b| {
        b.iter(|| {
            step(
                black_box(&fresh),
                AppEvent::Add,
                &BuildObservation::Missing,
                &config,
            )
        })
    });
    group.bench_function("RECONCILE of a deployed app", |b| {
        b.iter(|| {
            step(
                black_box(&deployed),
                AppEvent::Reconcile,
                &BuildObservation::Succeeded,
                &config,
            )
        })
    });
    group.bench_function("MODIFY with a new commit", |b| {
        b.iter(|| {
            step(
                black_box(&pushed),
                AppEvent::Modify,
                &BuildObservation::Succeeded,
                &config,
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
