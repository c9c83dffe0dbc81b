//! End-to-end scenarios: the real daemon, through the real kube client, against the in-process
//! API emulator, and against a real cluster when `REVIEWAPP_E2E_KUBECONFIG` names one (those
//! runs print that they skipped otherwise). Each scenario is written once against [`World`].
//!
//! Every scenario that can run on both does (`scenario!` makes the `_on_emulator` and
//! `_on_cluster` pair). The few tests named only `..._on_emulator` need what a real cluster does
//! not offer: the emulator's request log (exact write counts, "a restart writes nothing", list
//! pages) or its fault injection (failing requests, cut watches, expired resourceVersions).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod failover;
mod github;
mod sleep_expiry;
mod world;

use github::pull_request_lifecycle;

use serde_json::json;
use world::{APP_NS, BUILD_NS, World, eventually};

const SHA1: &str = "c8c9aa334a76677aa0be4ec0ebb08484367f952d";
const SHA2: &str = "5ce6e4a15e2a09fe113aba79263104835bd676c2";
const JOB1: &str = "test-review-app-678--c8c9aa334a";
const JOB2: &str = "test-review-app-678--5ce6e4a15e";
const IMG1: &str = "registry.example/review/test-review-app-678:c8c9aa334a";
const IMG2: &str = "registry.example/review/test-review-app-678:5ce6e4a15e";

/// Runs `$scenario` on the emulator, and on a real cluster when one is configured.
macro_rules! scenario {
    ($emulated:ident, $real:ident, $scenario:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $emulated() {
            let mut world = World::emulated().await;
            $scenario(&mut world).await;
            world.cleanup().await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $real() {
            let Some(mut world) = World::real().await else {
                println!(
                    "skipped: set REVIEWAPP_E2E_KUBECONFIG to run {} against a real cluster",
                    stringify!($scenario)
                );
                return;
            };
            $scenario(&mut world).await;
            world.cleanup().await;
        }
    };
}

scenario!(lifecycle_on_emulator, lifecycle_on_cluster, lifecycle);
scenario!(
    restarts_on_emulator,
    restarts_on_cluster,
    lifecycle_with_restarts
);
scenario!(
    downtime_on_emulator,
    downtime_on_cluster,
    changes_while_down
);
scenario!(
    build_failure_on_emulator,
    build_failure_on_cluster,
    build_failure
);
scenario!(
    vanished_job_on_emulator,
    vanished_job_on_cluster,
    vanished_build_job
);
scenario!(
    child_deleted_on_emulator,
    child_deleted_on_cluster,
    child_deleted_by_hand
);
scenario!(
    invalid_input_on_emulator,
    invalid_input_on_cluster,
    invalid_then_fixed
);
scenario!(renewal_on_emulator, renewal_on_cluster, renewed_certificate);
scenario!(
    finished_while_down_on_emulator,
    finished_while_down_on_cluster,
    build_finished_and_deleted_while_down
);
scenario!(
    missing_env_secret_on_emulator,
    missing_env_secret_on_cluster,
    missing_env_secret
);

scenario!(
    real_review_config_on_emulator,
    real_review_config_on_cluster,
    real_review_config
);

/// The real `.review_bot.yml` of revelrylabs/revelry_phoenix_app_template (plus `baseApp`, the
/// only key of other repositories' files), applied as `kubectl apply` does it (strict field
/// validation): accepted, the unknown key kept and reported, `envSecret` loaded by the app's
/// pods; then the CRD's rules refuse a change of the app's identity.
async fn real_review_config(w: &mut World) {
    w.start().await;
    let mut app: serde_json::Value = serde_yaml::from_str(include_str!(
        "../../../../dev/samples/reviewapp-app-template.yaml"
    ))
    .unwrap();
    app["spec"]["config"]["namespace"] = json!(APP_NS);
    app["spec"]["config"]["baseApp"] = json!("phoenix-template");
    if !w.with_database() {
        app["spec"]["config"]
            .as_object_mut()
            .unwrap()
            .remove("database");
    }
    let name = app["metadata"]["name"].as_str().unwrap().to_string();
    w.apply(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "app-template-env-secret", "namespace": APP_NS},
        "stringData": {"SECRET_KEY_BASE": "not-a-real-secret"}
    }))
    .await;
    w.apply_app_strictly(app.clone())
        .await
        .expect("the real review config is accepted with strict field validation");
    let stored = w.app(&name).await.unwrap();
    assert_eq!(
        stored.spec.config.as_ref().unwrap().unknown.get("baseApp"),
        Some(&json!("phoenix-template")),
        "the unknown key is kept"
    );
    eventually("IgnoredKeys names spec.config.baseApp", || async {
        w.app(&name).await.and_then(|a| a.status).is_some_and(|s| {
            s.conditions.iter().any(|c| {
                c.type_ == "IgnoredKeys"
                    && c.status == "True"
                    && c.message.contains("spec.config.baseApp")
            })
        })
    })
    .await;
    let deployment = "revelry-phoenix-app-template-42";
    eventually("the app's pods load app-template-env-secret", || async {
        w.deployment(deployment).await.is_some_and(|d| {
            let spec = &d["spec"]["template"]["spec"];
            [&spec["containers"][0], &spec["initContainers"][0]]
                .iter()
                .all(|c| c["envFrom"].to_string().contains("app-template-env-secret"))
        })
    })
    .await;

    let mut moved = app.clone();
    moved["spec"]["config"]["namespace"] = json!("elsewhere");
    let refused = w.apply_app_strictly(moved).await.unwrap_err();
    assert!(
        matches!(&refused, kube::Error::Api(s) if s.code == 422 && s.message.contains("config.namespace is immutable")),
        "{refused}"
    );
    let mut renumbered = app;
    renumbered["spec"]["pr"] = json!(43);
    let refused = w.apply_app_strictly(renumbered).await.unwrap_err();
    assert!(
        matches!(&refused, kube::Error::Api(s) if s.code == 422 && s.message.contains("pr is immutable")),
        "{refused}"
    );
}

/// The build succeeds while the operator is down, and the Job is deleted before it returns (its
/// TTL, or a person): the build-outcome finalizer keeps the Job and its outcome, so the operator
/// deploys the built image when it returns, with no second build, and then lets the Job go.
async fn build_finished_and_deleted_while_down(w: &mut World) {
    w.start().await;
    w.apply_app(w.sample("test", "678", SHA1)).await;
    eventually("building", || has_status(w, "test", "building", "building")).await;
    w.stop().await;

    w.finish_job(JOB1, true).await;
    w.jobs()
        .delete(JOB1, &kube::api::DeleteParams::background())
        .await
        .unwrap();
    let job = w.jobs().get(JOB1).await.unwrap();
    assert!(
        job.metadata.deletion_timestamp.is_some(),
        "the finalizer keeps the deleted Job"
    );
    let first_uid = job.metadata.uid;

    w.start().await;
    eventually("the built image runs", || deployment_runs(w, 1, IMG1)).await;
    eventually("status deployed/success", || {
        has_status(w, "test", "deployed", "success")
    })
    .await;
    eventually("the Job is released and goes", || async {
        w.jobs()
            .get_opt(JOB1)
            .await
            .unwrap()
            .is_none_or(|j| j.metadata.uid != first_uid)
    })
    .await;
    assert!(
        w.jobs().get_opt(JOB1).await.unwrap().is_none(),
        "no second build of the same commit"
    );
    let events: kube::Api<k8s_openapi::api::events::v1::Event> = kube::Api::all(w.client.clone());
    let restarted = events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .any(|e| {
            e.reason.as_deref() == Some("BuildRestarted")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("test")
        });
    assert!(!restarted, "no BuildRestarted");
}

/// An app whose env Secret does not exist says so in its status; the status clears as soon as
/// the Secret is created (the operator watches Secrets), not at the next tick (an hour here).
async fn missing_env_secret(w: &mut World) {
    let mut config = (*w.config).clone();
    config.reconcile_interval_seconds = 3600;
    w.config = std::sync::Arc::new(config);
    w.start().await;
    let mut app = w.sample("test", "678", SHA1);
    app["spec"]["config"]["envSecret"] = json!("test-env");
    w.apply_app(app).await;
    async fn missing(w: &World, status: &str) -> bool {
        w.app("test").await.and_then(|a| a.status).is_some_and(|s| {
            s.conditions.iter().any(|c| {
                c.type_ == "MissingSecrets"
                    && c.status == status
                    && (status == "False" || c.message.contains("test-env"))
            })
        })
    }
    eventually("MissingSecrets names test-env", || missing(w, "True")).await;
    eventually("the children are applied anyway", || {
        deployment_runs(w, 0, IMG1)
    })
    .await;
    w.apply(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "test-env", "namespace": APP_NS},
        "stringData": {"SAMPLE": "test-env"}
    }))
    .await;
    eventually("MissingSecrets clears at once", || missing(w, "False")).await;
    let deployment = w.deployment("test-review-app-678").await.unwrap();
    let env_from = deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"].to_string();
    assert!(env_from.contains("test-env"), "{env_from}");
}

scenario!(
    github_on_emulator,
    github_on_cluster,
    pull_request_lifecycle
);

/// A renewed wildcard certificate reaches the app's copy at once: the operator watches the
/// source Secret, so the renewal does not wait for the next tick (an hour here).
async fn renewed_certificate(w: &mut World) {
    let mut config = (*w.config).clone();
    config.reconcile_interval_seconds = 3600;
    w.config = std::sync::Arc::new(config);
    w.start().await;
    w.apply_app(w.sample("test", "678", SHA1)).await;
    let copy = "test-review-app-678--ingress-tls";
    let copied_cert = || async {
        let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
            kube::Api::namespaced(w.client.clone(), APP_NS);
        secrets
            .get_opt(copy)
            .await
            .unwrap()
            .and_then(|s| s.data?.get("tls.crt").map(|b| b.0.clone()))
    };
    eventually("the certificate is copied", || async {
        copied_cert().await == Some(b"cert".to_vec())
    })
    .await;
    w.apply(json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": "star-review-local-tls", "namespace": "default"},
        "data": {"tls.crt": "cmVuZXdlZA==", "tls.key": "a2V5"}
    }))
    .await;
    eventually("the renewed certificate is copied", || async {
        copied_cert().await == Some(b"renewed".to_vec())
    })
    .await;
}

/// The operator's write requests in the emulator's log (method and path), then clears the log.
fn take_operator_writes(emulator: &reviewapp_testkit::Handle) -> Vec<String> {
    let writes = operator_requests(emulator)
        .into_iter()
        .filter(|r| r.is_write())
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    emulator.clear_requests();
    writes
}

/// The operator's requests in the emulator's log, watches left out.
fn operator_requests(
    emulator: &reviewapp_testkit::Handle,
) -> Vec<reviewapp_testkit::RequestRecord> {
    emulator
        .requests()
        .into_iter()
        .filter(|r| r.actor.as_deref() == Some("operator") && !r.watch)
        .collect()
}

fn status_pair(app: &reviewapp_api::ReviewApp) -> (String, String) {
    let status = serde_json::to_value(&app.status).unwrap();
    (
        status["appStatus"].as_str().unwrap_or("").to_string(),
        status["buildStatus"].as_str().unwrap_or("").to_string(),
    )
}

async fn has_status(w: &World, name: &str, app: &str, build: &str) -> bool {
    w.app(name)
        .await
        .is_some_and(|a| status_pair(&a) == (app.to_string(), build.to_string()))
}

async fn deployment_runs(w: &World, replicas: i64, image: &str) -> bool {
    w.deployment("test-review-app-678").await.is_some_and(|d| {
        d["spec"]["replicas"] == replicas
            && d["spec"]["template"]["spec"]["containers"][0]["image"] == image
    })
}

fn expected_children(w: &World, job: Option<&str>) -> Vec<String> {
    let mut out = vec![
        format!("Deployment {APP_NS}/test-review-app-678"),
        format!("Ingress {APP_NS}/test-review-app-678"),
        format!("Secret {APP_NS}/test-review-app-678--ingress-tls"),
        format!("Service {APP_NS}/test-review-app-678"),
    ];
    if w.with_database() {
        out.push(format!("Postgres {APP_NS}/test-review-app-678--db"));
        out.push(format!("Secret {APP_NS}/test-review-app-678--dbcopy"));
    }
    if let Some(job) = job {
        out.push(format!("Job {BUILD_NS}/{job}"));
    }
    out.sort();
    out
}

/// Create → build → deploy → new commit → rebuild while the old version serves → redeploy →
/// delete → nothing left. `restart` runs between steps (a no-op, or a daemon restart).
async fn lifecycle_steps(w: &mut World, restart_between: bool) {
    macro_rules! step {
        () => {
            if restart_between {
                w.restart().await;
            }
        };
    }
    w.start().await;
    w.apply_app(w.sample("test", "678", SHA1)).await;
    eventually(
        "the build Job and every child exist, the Deployment at 0 replicas",
        || async {
            w.children("test").await == expected_children(w, Some(JOB1))
                && deployment_runs(w, 0, IMG1).await
        },
    )
    .await;
    eventually("status building/building", || {
        has_status(w, "test", "building", "building")
    })
    .await;
    step!();

    w.finish_job(JOB1, true).await;
    eventually("the built image runs at 1 replica", || {
        deployment_runs(w, 1, IMG1)
    })
    .await;
    eventually("status deployed/success", || {
        has_status(w, "test", "deployed", "success")
    })
    .await;
    step!();

    w.push("test", SHA2).await;
    eventually("a build Job for the new commit", || async {
        w.jobs().get_opt(JOB2).await.unwrap().is_some()
    })
    .await;
    eventually("status deployed/building", || {
        has_status(w, "test", "deployed", "building")
    })
    .await;
    assert!(
        deployment_runs(w, 1, IMG1).await,
        "the old version keeps serving while the new commit builds"
    );
    eventually("the superseded build Job is deleted", || async {
        w.jobs().get_opt(JOB1).await.unwrap().is_none()
    })
    .await;
    step!();

    w.finish_job(JOB2, true).await;
    eventually("the new image runs", || deployment_runs(w, 1, IMG2)).await;
    eventually("status deployed/success", || {
        has_status(w, "test", "deployed", "success")
    })
    .await;
    let app = w.app("test").await.unwrap();
    let status = app.status.unwrap();
    assert_eq!(status.deployed_commit.as_deref(), Some(SHA2));
    assert!(
        app.metadata
            .finalizers
            .unwrap_or_default()
            .contains(&reviewapp_api::FINALIZER.to_string())
    );
    step!();

    w.delete_app("test").await;
    eventually("the ReviewApp is gone (finalizer released)", || async {
        w.app("test").await.is_none()
    })
    .await;
    eventually("nothing with the app's labels is left", || async {
        w.children("test").await.is_empty()
    })
    .await;
}

async fn lifecycle(w: &mut World) {
    lifecycle_steps(w, false).await;
}

async fn lifecycle_with_restarts(w: &mut World) {
    lifecycle_steps(w, true).await;
    if let Some(emulator) = &w.emulator {
        // Exactly one build per commit, however often the daemon restarted.
        let job_creates: Vec<_> = emulator
            .requests()
            .into_iter()
            .filter(|r| {
                r.method == "POST"
                    && r.path.ends_with(&format!("/namespaces/{BUILD_NS}/jobs"))
                    && r.status == 201
            })
            .collect();
        assert_eq!(job_creates.len(), 2, "{job_creates:?}");
    }
}

/// Apps created, changed and deleted while the operator is down all converge when it starts.
async fn changes_while_down(w: &mut World) {
    w.start().await;
    for (name, pr) in [("b", "2"), ("c", "3")] {
        w.apply_app(w.sample(name, pr, SHA1)).await;
    }
    for pr in ["2", "3"] {
        let job = format!("test-review-app-{pr}--c8c9aa334a");
        eventually(&format!("build Job {job}"), || async {
            w.jobs().get_opt(&job).await.unwrap().is_some()
        })
        .await;
        w.finish_job(&job, true).await;
    }
    eventually("b and c deployed", || async {
        has_status(w, "b", "deployed", "success").await
            && has_status(w, "c", "deployed", "success").await
    })
    .await;
    w.stop().await;

    w.apply_app(w.sample("a", "1", SHA1)).await;
    w.push("b", SHA2).await;
    w.delete_app("c").await;

    w.start().await;
    eventually("a is being built", || async {
        w.jobs()
            .get_opt("test-review-app-1--c8c9aa334a")
            .await
            .unwrap()
            .is_some()
    })
    .await;
    eventually("b builds its new commit", || async {
        w.jobs()
            .get_opt("test-review-app-2--5ce6e4a15e")
            .await
            .unwrap()
            .is_some()
    })
    .await;
    eventually("c is torn down", || async {
        w.app("c").await.is_none() && w.children("c").await.is_empty()
    })
    .await;
    for name in ["a", "b"] {
        w.delete_app(name).await;
    }
    eventually("everything is torn down", || async {
        w.app("a").await.is_none()
            && w.app("b").await.is_none()
            && w.children("a").await.is_empty()
            && w.children("b").await.is_empty()
    })
    .await;
}

async fn build_failure(w: &mut World) {
    w.start().await;
    w.apply_app(w.sample("test", "678", SHA1)).await;
    eventually("the build Job exists", || async {
        w.jobs().get_opt(JOB1).await.unwrap().is_some()
    })
    .await;
    w.finish_job(JOB1, false).await;
    eventually("status error/error", || {
        has_status(w, "test", "error", "error")
    })
    .await;
    let status = w.app("test").await.unwrap().status.unwrap();
    assert!(status.message.unwrap().contains("BackoffLimitExceeded"));
    assert!(deployment_runs(w, 0, IMG1).await, "nothing is deployed");
}

async fn vanished_build_job(w: &mut World) {
    w.start().await;
    w.apply_app(w.sample("test", "678", SHA1)).await;
    eventually("the build Job exists", || async {
        w.jobs().get_opt(JOB1).await.unwrap().is_some()
    })
    .await;
    let first_uid = w.jobs().get(JOB1).await.unwrap().metadata.uid;
    w.jobs()
        .delete(JOB1, &kube::api::DeleteParams::background())
        .await
        .unwrap();
    eventually("the build is started again", || async {
        w.jobs()
            .get_opt(JOB1)
            .await
            .unwrap()
            .is_some_and(|j| j.metadata.uid != first_uid)
    })
    .await;
    w.finish_job(JOB1, true).await;
    eventually("deployed", || has_status(w, "test", "deployed", "success")).await;
}

async fn child_deleted_by_hand(w: &mut World) {
    w.start().await;
    w.apply_app(w.sample("test", "678", SHA1)).await;
    eventually("the build Job exists", || async {
        w.jobs().get_opt(JOB1).await.unwrap().is_some()
    })
    .await;
    w.finish_job(JOB1, true).await;
    eventually("deployed", || deployment_runs(w, 1, IMG1)).await;
    let services: kube::Api<k8s_openapi::api::core::v1::Service> =
        kube::Api::namespaced(w.client.clone(), APP_NS);
    services
        .delete("test-review-app-678", &kube::api::DeleteParams::default())
        .await
        .unwrap();
    eventually("the Service is re-applied", || async {
        services
            .get_opt("test-review-app-678")
            .await
            .unwrap()
            .is_some()
    })
    .await;
}

async fn invalid_then_fixed(w: &mut World) {
    w.start().await;
    let mut bad = w.sample("test", "678", SHA1);
    bad["spec"]["config"]["applicationPort"] = json!(70000);
    w.apply_app(bad).await;
    eventually("an Invalid condition naming the field", || async {
        w.app("test").await.and_then(|a| a.status).is_some_and(|s| {
            s.conditions.iter().any(|c| {
                c.type_ == "Invalid"
                    && c.status == "True"
                    && c.message.contains("spec.config.applicationPort")
            })
        })
    })
    .await;
    let events: kube::Api<k8s_openapi::api::events::v1::Event> = kube::Api::all(w.client.clone());
    eventually("a Warning Event", || async {
        events
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .iter()
            .any(|e| {
                e.type_.as_deref() == Some("Warning")
                    && e.reason.as_deref() == Some("InvalidSpec")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("test")
            })
    })
    .await;
    assert!(
        w.children("test").await.is_empty(),
        "no child for an invalid app"
    );
    let mut fixed = w.sample("test", "678", SHA1);
    fixed["spec"]["config"]["applicationPort"] = json!(5000);
    w.apply_app(fixed).await;
    eventually("the fixed app builds", || async {
        w.jobs().get_opt(JOB1).await.unwrap().is_some()
    })
    .await;
    eventually("Invalid is False", || async {
        w.app("test").await.and_then(|a| a.status).is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Invalid" && c.status == "False")
        })
    })
    .await;
}

/// API faults: 10% of the operator's requests fail (500, 429, 409), watches are cut and
/// resourceVersions expire (forcing relists) throughout a whole lifecycle. It still converges,
/// with exactly one build per commit and nothing left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_under_api_faults_on_emulator() {
    let mut w = World::emulated().await;
    let emulator = w.emulator.clone().unwrap();
    emulator.fail_ratio_where(0.10, 7, |r| {
        r.actor.as_deref() == Some("operator") && !r.watch
    });
    let chaos = {
        let emulator = emulator.clone();
        tokio::spawn(async move {
            for round in 0..200u32 {
                tokio::time::sleep(std::time::Duration::from_millis(150)).await;
                emulator.cut_watches();
                if round % 3 == 0 {
                    emulator.expire_resource_versions();
                }
            }
        })
    };
    lifecycle_steps(&mut w, false).await;
    chaos.abort();
    emulator.clear_faults();
    let failed = emulator
        .requests()
        .iter()
        .filter(|r| r.actor.as_deref() == Some("operator") && matches!(r.status, 409 | 429 | 500))
        .count();
    assert!(failed > 0, "faults were injected");
    let builds: Vec<String> = emulator
        .requests()
        .into_iter()
        .filter(|r| {
            r.actor.as_deref() == Some("operator")
                && r.method == "POST"
                && r.path.ends_with(&format!("/namespaces/{BUILD_NS}/jobs"))
                && r.status == 201
        })
        .map(|r| r.path)
        .collect();
    assert_eq!(builds.len(), 2, "one build per commit: {builds:?}");
    w.cleanup().await;
}

/// The operator's writes over one whole lifecycle, counted exactly: what each step needs and
/// nothing more (no write loops on its own events, no re-applies of unchanged objects), and none
/// at all while idle. Per step: ADD 10 (finalizer, Job, 6 children, Event, status), deploy 4
/// (Deployment, Event, status, then the release of the finished Job's build-outcome finalizer),
/// push 4 (delete the old Job, already released, so no release; create the new one, Event,
/// status), redeploy 4 (as deploy), DELETE 9 (Event, Job, 6 children, finalizer; the Job was
/// released at redeploy, and the CNPG kind was never applied). The total is asserted exactly; a
/// write landing one step late cannot make it flaky.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_lifecycle_costs_exactly_the_minimal_writes_on_emulator() {
    let mut w = World::emulated().await;
    let emulator = w.emulator.clone().unwrap();
    w.start().await;
    let settle = || tokio::time::sleep(std::time::Duration::from_millis(300));
    let mut steps: Vec<(&str, Vec<String>)> = Vec::new();
    emulator.clear_requests();

    w.apply_app(w.sample("test", "678", SHA1)).await;
    eventually("building", || {
        has_status(&w, "test", "building", "building")
    })
    .await;
    settle().await;
    steps.push(("add", take_operator_writes(&emulator)));

    w.finish_job(JOB1, true).await;
    eventually("deployed", || has_status(&w, "test", "deployed", "success")).await;
    settle().await;
    steps.push(("deploy", take_operator_writes(&emulator)));

    w.push("test", SHA2).await;
    eventually("rebuilding", || {
        has_status(&w, "test", "deployed", "building")
    })
    .await;
    settle().await;
    steps.push(("push", take_operator_writes(&emulator)));

    w.finish_job(JOB2, true).await;
    eventually("redeployed", || {
        has_status(&w, "test", "deployed", "success")
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    steps.push(("redeploy", take_operator_writes(&emulator)));

    // Idle, with two ticks (1 s here): no write at all.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let idle = take_operator_writes(&emulator);
    assert!(idle.is_empty(), "idle: {idle:#?}");

    w.delete_app("test").await;
    eventually("gone", || async { w.app("test").await.is_none() }).await;
    settle().await;
    steps.push(("delete", take_operator_writes(&emulator)));

    let total: usize = steps.iter().map(|(_, writes)| writes.len()).sum();
    assert_eq!(total, 10 + 4 + 4 + 4 + 9, "{steps:#?}");
    w.cleanup().await;
}

/// A restart with a deployed app starts no build and writes nothing: every child is adopted
/// through its applied-hash annotation, the status is unchanged, no Event is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_of_a_settled_app_writes_nothing_on_emulator() {
    let mut w = World::emulated().await;
    let emulator = w.emulator.clone().unwrap();
    w.start().await;
    w.apply_app(w.sample("test", "678", SHA1)).await;
    eventually("the build Job exists", || async {
        w.jobs().get_opt(JOB1).await.unwrap().is_some()
    })
    .await;
    w.finish_job(JOB1, true).await;
    eventually("deployed", || has_status(&w, "test", "deployed", "success")).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    w.stop().await;

    emulator.clear_requests();
    w.start().await;
    // Start-up, the replayed ADD and two ticks (1 s here).
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let writes = take_operator_writes(&emulator);
    assert!(writes.is_empty(), "a restart wrote: {writes:#?}");
    assert!(deployment_runs(&w, 1, IMG1).await, "still serving");

    // Idle, it sends no request at all: every tick (1 s here) is answered from the caches.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let requests: Vec<String> = operator_requests(&emulator)
        .into_iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(requests.is_empty(), "idle requests: {requests:#?}");
    w.cleanup().await;
}

/// More apps than one list page: the operator lists page by page (as a real API server
/// serves `limit`), and a restart still sees every build Job and every child on the later
/// pages, so it starts no build and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_more_apps_than_a_list_page_writes_nothing_on_emulator() {
    const APPS: usize = 130;
    let page = reviewapp_daemon::watch::LIST_PAGE_SIZE as usize;
    assert!(APPS > page, "the scenario needs a second page");
    let mut w = World::emulated().await;
    let emulator = w.emulator.clone().unwrap();
    w.start().await;
    for i in 0..APPS {
        w.apply_app(w.sample(&format!("app-{i}"), &format!("{}", 1000 + i), SHA1))
            .await;
    }
    eventually("every build Job exists", || async {
        w.jobs()
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .len()
            == APPS
    })
    .await;
    eventually("every app is building", || async {
        let apps: kube::Api<reviewapp_api::ReviewApp> = kube::Api::all(w.client.clone());
        let list = apps.list(&Default::default()).await.unwrap();
        list.items.len() == APPS && list.items.iter().all(|a| status_pair(a).1 == "building")
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    w.stop().await;

    emulator.clear_requests();
    w.start().await;
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let lists: Vec<String> = operator_requests(&emulator)
        .into_iter()
        .filter(|r| {
            r.method == "GET" && (r.path.ends_with("/jobs") || r.path.ends_with("/reviewapps"))
        })
        .map(|r| format!("{}?{}", r.path, r.query))
        .collect();
    // Every watched list (build Jobs, Job metadata, ReviewApps) read in two pages.
    for path in [
        format!("/apis/batch/v1/namespaces/{BUILD_NS}/jobs?"),
        "/apis/batch/v1/jobs?".to_string(),
        "/apis/reviewtron.k8s.revelry.co/v1/reviewapps?".to_string(),
    ] {
        let pages: Vec<&String> = lists.iter().filter(|l| l.starts_with(&path)).collect();
        assert_eq!(pages.len(), APPS.div_ceil(page), "{path}: {lists:#?}");
        assert!(
            pages.iter().all(|l| l.contains(&format!("limit={page}"))),
            "{lists:#?}"
        );
        assert!(pages[1].contains("continue="), "{lists:#?}");
    }
    let writes = take_operator_writes(&emulator);
    assert!(writes.is_empty(), "a restart wrote: {writes:#?}");
    w.cleanup().await;
}
