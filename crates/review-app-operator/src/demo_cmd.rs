//! `demo`: the real operator against an in-process Kubernetes API emulator. Creates the seed's
//! sample ReviewApp, plays a successful build, a new commit and a delete, and prints a timeline
//! of what the operator did (event → transition → objects written) and a summary.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::apps::v1::Deployment;
use kube::CustomResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use reviewapp_api::{OperatorConfig, ReviewApp};
use reviewapp_daemon::{DaemonOptions, Handled, Listener};
use reviewapp_testkit::Emulator;
use serde_json::json;

const SAMPLE: &str = include_str!("../../../dev/samples/reviewapp.yaml");
const NEW_COMMIT: &str = "5ce6e4a15e2a09fe113aba79263104835bd676c2";
const APP_NS: &str = "test-review-app";

/// Runs the demo; prints to stdout.
pub fn run() -> anyhow::Result<std::process::ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(demo())?;
    Ok(std::process::ExitCode::SUCCESS)
}

struct Timeline {
    start: Instant,
    handled: Mutex<Vec<Handled>>,
}

impl Timeline {
    fn ms(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * 1000.0
    }

    fn step(&self, what: &str) {
        println!("\n[{:>7.1} ms] ▶ {what}", self.ms());
    }

    fn note(&self, what: &str) {
        println!("[{:>7.1} ms]   {what}", self.ms());
    }

    fn record(&self, h: &Handled) {
        let event = format!("{:?}", h.event).to_uppercase();
        let transition = if h.from == h.to {
            h.to.clone()
        } else {
            format!("{} → {}", h.from, h.to)
        };
        let what = if h.written.is_empty() {
            "nothing to write".to_string()
        } else {
            format!("{} write(s), {} skipped", h.written.len(), h.skipped)
        };
        println!(
            "[{:>7.1} ms]   {event:<9} {}: {transition}  ({what}, {:.1} ms)",
            self.ms(),
            h.app,
            h.elapsed.as_secs_f64() * 1000.0
        );
        for line in &h.written {
            println!("              · {line}");
        }
        if let Some(error) = &h.error {
            println!("              ! {error} (will retry)");
        }
        self.handled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(h.clone());
    }
}

async fn wait_for<F, Fut>(what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        if Instant::now() > deadline {
            bail!("the operator did not converge: {what}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

fn status_of(app: &ReviewApp) -> (String, String) {
    let status = serde_json::to_value(&app.status).unwrap_or_default();
    let field = |k: &str| status[k].as_str().unwrap_or("none").to_string();
    (field("appStatus"), field("buildStatus"))
}

async fn demo() -> anyhow::Result<()> {
    println!(
        "review-app-operator demo: the real operator against an in-process Kubernetes API (no cluster)."
    );
    println!(
        "Build Jobs never run here, so the demo reports their outcome through the Job status, as a"
    );
    println!("cluster's Job controller would. Times are from the start of the demo.");

    let emulator = Emulator::start()
        .await
        .context("starting the API emulator")?;
    let handle = emulator.handle();
    // The CRD the operator generates: the emulator compiles its CEL rules and validates and
    // prunes every ReviewApp write against its schema, as an API server does.
    handle
        .create(serde_json::to_value(ReviewApp::crd())?)
        .map_err(|e| anyhow::anyhow!("installing the ReviewApp CRD: {e}"))?;
    let client = emulator.client();
    let mut config = OperatorConfig {
        registry: "registry.local/review".into(),
        ..OperatorConfig::default()
    };
    config.tls.secret_name = "star-review-local-tls".into();
    let config = Arc::new(config);

    // What the platform team has set up: namespaces, the wildcard TLS Secret, and the env
    // Secrets the sample loads (`env.secrets`).
    let setup = PatchParams::apply("demo-setup");
    for ns in [APP_NS, config.build_namespace.as_str()] {
        let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
        api.patch(
            ns,
            &setup,
            &Patch::Apply(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            ),
        )
        .await?;
    }
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), "default");
    secrets
        .patch(
            "star-review-local-tls",
            &setup,
            &Patch::Apply(
                json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                "metadata": {"name": "star-review-local-tls", "namespace": "default"},
                "data": {"tls.crt": "ZGVtbw==", "tls.key": "ZGVtbw=="}}),
            ),
        )
        .await?;
    let app_secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), APP_NS);
    for name in ["secret-one", "secret-two"] {
        app_secrets
            .patch(
                name,
                &setup,
                &Patch::Apply(json!({"apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": name, "namespace": APP_NS},
                    "stringData": {"DEMO": name}})),
            )
            .await?;
    }

    let timeline = Arc::new(Timeline {
        start: Instant::now(),
        handled: Mutex::new(Vec::new()),
    });
    let sink = timeline.clone();
    let options = DaemonOptions {
        concurrency: 4,
        listen: "127.0.0.1:0".parse()?,
        leader: None,
        shutdown_grace: Duration::from_secs(5),
        controller_name: "review-app-operator".into(),
        instance: Some("demo".into()),
        listener: Some(Listener(Arc::new(move |h: &Handled| sink.record(h)))),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(reviewapp_daemon::run(
        client.clone(),
        config.clone(),
        options,
        async move {
            let _ = stopped.await;
        },
        |_| {},
    ));
    handle.clear_requests();

    let apps: Api<ReviewApp> = Api::all(client.clone());
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), APP_NS);
    let app: ReviewApp = serde_yaml::from_str(SAMPLE)?;
    let has = |want: (&'static str, &'static str)| {
        let apps = apps.clone();
        move || {
            let apps = apps.clone();
            async move {
                apps.get_opt("test")
                    .await
                    .ok()
                    .flatten()
                    .is_some_and(|a| status_of(&a) == (want.0.into(), want.1.into()))
            }
        }
    };
    let runs =
        |image: String| {
            let deployments = deployments.clone();
            move || {
                let deployments = deployments.clone();
                let image = image.clone();
                async move {
                    deployments
                        .get_opt("test-review-app-678")
                        .await
                        .ok()
                        .flatten()
                        .is_some_and(|d| {
                            let spec = d.spec;
                            spec.replicas == Some(1)
                                && spec.template.spec.and_then(|s| {
                                    s.containers.first().and_then(|c| c.image.clone())
                                }) == Some(image)
                        })
                }
            }
        };

    timeline.step("kubectl apply -f dev/samples/reviewapp.yaml  (ReviewApp test: test_review_app PR 678, commit c8c9aa334a)");
    apps.patch("test", &PatchParams::apply("kubectl"), &Patch::Apply(&app))
        .await?;
    wait_for("the first build starts", has(("building", "building"))).await?;

    let job1 = "test-review-app-678--c8c9aa334a";
    let image1 = "registry.local/review/test-review-app-678:c8c9aa334a".to_string();
    timeline.step(&format!("build Job {job1} succeeds"));
    let built = Instant::now();
    handle.set_job_succeeded(&config.build_namespace, job1)?;
    wait_for("the built image is deployed", runs(image1.clone())).await?;
    let first_deploy = built.elapsed();
    timeline.note(&format!(
        "Deployment {APP_NS}/test-review-app-678 runs {image1} at 1 replica, {:.1} ms after the build finished",
        first_deploy.as_secs_f64() * 1000.0
    ));
    wait_for("status deployed/success", has(("deployed", "success"))).await?;

    timeline.step("git push: commit 5ce6e4a15e  (kubectl patch reviewapp test, spec.commitHash)");
    apps.patch(
        "test",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"commitHash": NEW_COMMIT}})),
    )
    .await?;
    wait_for("the new build starts", has(("deployed", "building"))).await?;
    timeline.note(&format!("the old version keeps serving: {image1}"));

    let job2 = "test-review-app-678--5ce6e4a15e";
    let image2 = "registry.local/review/test-review-app-678:5ce6e4a15e".to_string();
    timeline.step(&format!("build Job {job2} succeeds"));
    let built = Instant::now();
    handle.set_job_succeeded(&config.build_namespace, job2)?;
    wait_for("the new image is deployed", runs(image2.clone())).await?;
    let second_deploy = built.elapsed();
    timeline.note(&format!(
        "Deployment runs {image2}, {:.1} ms after the build finished",
        second_deploy.as_secs_f64() * 1000.0
    ));
    wait_for("status deployed/success", has(("deployed", "success"))).await?;

    timeline.step("kubectl delete reviewapp test");
    apps.delete("test", &DeleteParams::default()).await?;
    wait_for("the ReviewApp is gone", || {
        let apps = apps.clone();
        async move { apps.get_opt("test").await.ok().flatten().is_none() }
    })
    .await?;
    let selector = "app.kubernetes.io/instance=test";
    let mut left = Vec::new();
    for (group, version, plural) in [
        ("batch", "v1", "jobs"),
        ("apps", "v1", "deployments"),
        ("", "v1", "services"),
        ("networking.k8s.io", "v1", "ingresses"),
        ("", "v1", "secrets"),
        ("kubedb.com", "v1", "postgreses"),
    ] {
        left.extend(handle.list(group, version, plural, None, Some(selector)));
    }
    timeline.note(&format!(
        "objects left with the app's labels: {}",
        left.len()
    ));

    let _ = stop.send(());
    daemon.await.context("the daemon task")??;

    let handled = timeline
        .handled
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut by_event: BTreeMap<String, usize> = BTreeMap::new();
    let mut writes = 0;
    let mut builds = 0;
    for h in &handled {
        *by_event
            .entry(format!("{:?}", h.event).to_uppercase())
            .or_default() += 1;
        writes += h.written.len();
        builds += h
            .written
            .iter()
            .filter(|w| w.starts_with("create Job"))
            .count();
    }
    println!("\nSummary");
    println!(
        "  events handled:   {}",
        by_event
            .iter()
            .map(|(e, n)| format!("{e} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  operator writes:  {writes} (every one listed above; unchanged objects are skipped)"
    );
    println!("  builds started:   {builds} (one per commit)");
    println!(
        "  build → deployed: {:.1} ms and {:.1} ms (event-driven; the original operator polled every 30 s)",
        first_deploy.as_secs_f64() * 1000.0,
        second_deploy.as_secs_f64() * 1000.0
    );
    println!("  left behind:      {} objects", left.len());
    println!("  total:            {:.0} ms", timeline.ms());
    if !left.is_empty() || builds != 2 {
        bail!(
            "the demo did not end clean: {} objects left, {builds} builds",
            left.len()
        );
    }
    Ok(())
}
