//! `demo`: the real operator against an in-process Kubernetes API emulator. Creates the sample
//! ReviewApp (`dev/samples/reviewapp.yaml`), plays a successful build, a new commit, a sleep and a
//! wake by request, an expiry and a delete, and prints a timeline of what the operator did (event
//! → transition → objects written) and a summary.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::CustomResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use reviewapp_api::annotations::{EXPIRES_AT, SLEEP, WAKE_REQUESTED_AT};
use reviewapp_api::{OperatorConfig, ReviewApp};
use reviewapp_daemon::{DaemonError, DaemonOptions, Handled, Listener};
use reviewapp_testkit::{Emulator, Handle};
use serde_json::{Value, json};

const SAMPLE: &str = include_str!("../../../dev/samples/reviewapp.yaml");
const NEW_COMMIT: &str = "5ce6e4a15e2a09fe113aba79263104835bd676c2";
const APP_NS: &str = "test-review-app";
const APP: &str = "test";
const DEPLOYMENT: &str = "test-review-app-678";

/// Runs the demo; prints to stdout.
pub fn run() -> anyhow::Result<std::process::ExitCode> {
    crate::runtime()?.block_on(demo())?;
    Ok(std::process::ExitCode::SUCCESS)
}

/// The whole demo: set-up, the operator, the app's lifecycle, the summary.
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
    let config = Arc::new(demo_config());
    set_up_cluster(&emulator, &config).await?;
    let timeline = Arc::new(Timeline {
        start: Instant::now(),
        handled: Mutex::new(Vec::new()),
    });
    let operator = Operator::start(&emulator, config.clone(), timeline.clone())?;
    let handle = emulator.handle();
    handle.clear_requests();

    let client = emulator.client();
    let demo = Demo {
        apps: Api::all(client.clone()),
        deployments: Api::namespaced(client.clone(), APP_NS),
        ingresses: Api::namespaced(client, APP_NS),
        handle,
        build_namespace: config.build_namespace.clone(),
        timeline: timeline.clone(),
    };
    let first_deploy = demo.create().await?;
    let second_deploy = demo.push().await?;
    demo.sleep_and_wake().await?;
    demo.expire().await?;
    let left = demo.delete().await?;
    operator.stop().await?;
    timeline.summary([first_deploy, second_deploy], left)
}

/// The operator configuration of the demo: a registry and the wildcard TLS Secret.
fn demo_config() -> OperatorConfig {
    let mut config = OperatorConfig {
        registry: "registry.local/review".into(),
        ..OperatorConfig::default()
    };
    config.tls.secret_name = "star-review-local-tls".into();
    config
}

/// What the platform team has set up: the operator's CRD, the namespaces, the wildcard TLS
/// Secret, and the env Secrets the sample loads (`env.secrets`).
async fn set_up_cluster(emulator: &Emulator, config: &OperatorConfig) -> anyhow::Result<()> {
    // The CRD the operator generates: the emulator compiles its CEL rules and validates and
    // prunes every ReviewApp write against its schema, as an API server does.
    emulator
        .handle()
        .create(serde_json::to_value(ReviewApp::crd())?)
        .map_err(|e| anyhow::anyhow!("installing the ReviewApp CRD: {e}"))?;
    let client = emulator.client();
    let setup = PatchParams::apply("demo-setup");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in [APP_NS, config.build_namespace.as_str()] {
        let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        namespaces
            .patch(ns, &setup, &Patch::Apply(namespace))
            .await?;
    }
    let tls = json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": config.tls.secret_name, "namespace": "default"},
        "data": {"tls.crt": "ZGVtbw==", "tls.key": "ZGVtbw=="}});
    Api::<Secret>::namespaced(client.clone(), "default")
        .patch(&config.tls.secret_name, &setup, &Patch::Apply(tls))
        .await?;
    let app_secrets: Api<Secret> = Api::namespaced(client, APP_NS);
    for name in ["secret-one", "secret-two"] {
        let secret = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": APP_NS}, "stringData": {"DEMO": name}});
        app_secrets
            .patch(name, &setup, &Patch::Apply(secret))
            .await?;
    }
    Ok(())
}

/// The operator daemon, running in this process against the emulator.
struct Operator {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), DaemonError>>,
}

impl Operator {
    /// Starts the daemon; every event it handles goes to `timeline`.
    fn start(
        emulator: &Emulator,
        config: Arc<OperatorConfig>,
        timeline: Arc<Timeline>,
    ) -> anyhow::Result<Operator> {
        let options = DaemonOptions {
            concurrency: 4,
            listen: "127.0.0.1:0".parse()?,
            leader: None,
            shutdown_grace: Duration::from_secs(5),
            controller_name: "review-app-operator".into(),
            instance: Some("demo".into()),
            listener: Some(Listener(Arc::new(move |h: &Handled| timeline.record(h)))),
            activator: None,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(reviewapp_daemon::run(
            emulator.client(),
            config,
            options,
            async move {
                let _ = stopped.await;
            },
            |_| {},
        ));
        Ok(Operator { stop, task })
    }

    /// Stops the daemon and waits for it to finish.
    async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await.context("the daemon task")??;
        Ok(())
    }
}

/// What the demo does to the cluster, as `kubectl` and the Job controller would, and how it
/// waits for the operator.
struct Demo {
    apps: Api<ReviewApp>,
    deployments: Api<Deployment>,
    ingresses: Api<Ingress>,
    handle: Handle,
    build_namespace: String,
    timeline: Arc<Timeline>,
}

impl Demo {
    /// Creates the sample and lets its first build succeed; how long the deploy took.
    async fn create(&self) -> anyhow::Result<Duration> {
        self.timeline.step("kubectl apply -f dev/samples/reviewapp.yaml  (ReviewApp test: test_review_app PR 678, commit c8c9aa334a)");
        let app: ReviewApp = serde_yaml::from_str(SAMPLE)?;
        self.apps
            .patch(APP, &PatchParams::apply("kubectl"), &Patch::Apply(&app))
            .await?;
        self.wait_status("the first build starts", ("building", "building"))
            .await?;
        self.build_and_deploy(
            "c8c9aa334a",
            &format!("Deployment {APP_NS}/{DEPLOYMENT} runs"),
        )
        .await
    }

    /// Pushes a new commit and lets its build succeed; how long the redeploy took.
    async fn push(&self) -> anyhow::Result<Duration> {
        self.timeline
            .step("git push: commit 5ce6e4a15e  (kubectl patch reviewapp test, spec.commitHash)");
        let commit = json!({"spec": {"commitHash": NEW_COMMIT}});
        self.apps
            .patch(APP, &PatchParams::default(), &Patch::Merge(commit))
            .await?;
        self.wait_status("the new build starts", ("deployed", "building"))
            .await?;
        self.timeline.note(&format!(
            "the old version keeps serving: {}",
            image_of("c8c9aa334a")
        ));
        self.build_and_deploy("5ce6e4a15e", "Deployment runs").await
    }

    /// Lets the build Job of commit `short` succeed, waits until the Deployment runs its
    /// image (noted after `deployment`) and the status says so; how long the deploy took.
    async fn build_and_deploy(&self, short: &str, deployment: &str) -> anyhow::Result<Duration> {
        let job = format!("{DEPLOYMENT}--{short}");
        let image = image_of(short);
        self.timeline.step(&format!("build Job {job} succeeds"));
        let built = Instant::now();
        self.handle
            .set_job_succeeded(&self.build_namespace, &job)
            .map_err(|e| anyhow::anyhow!("finishing build Job {job}: {e}"))?;
        wait_for("the built image is deployed", || self.runs(&image)).await?;
        let deployed = built.elapsed();
        self.timeline.note(&format!(
            "{deployment} {image} at 1 replica, {:.1} ms after the build finished",
            ms(deployed)
        ));
        self.wait_status("status deployed/success", ("deployed", "success"))
            .await?;
        Ok(deployed)
    }

    /// Puts the app to sleep by annotation, then wakes it as a request through the activator
    /// would, and lets its Deployment become available.
    async fn sleep_and_wake(&self) -> anyhow::Result<()> {
        self.timeline
            .step(&format!("kubectl annotate reviewapp test {SLEEP}=true"));
        self.annotate(SLEEP, &json!("true")).await?;
        self.wait_status("asleep", ("sleeping", "success")).await?;
        let route = format!("{DEPLOYMENT}--activator");
        wait_for("the Ingress sends requests to the activator", || {
            self.ingress_backend_is(&route)
        })
        .await?;
        self.timeline.note(
            "Deployment at 0 replicas; the Ingress sends requests to the activator (ExternalName Service)",
        );
        self.timeline.step(&format!(
            "a request reaches the activator: it writes {WAKE_REQUESTED_AT}"
        ));
        let woken = Instant::now();
        self.annotate(WAKE_REQUESTED_AT, &json!(seconds_from_now(1)))
            .await?;
        let image = image_of("5ce6e4a15e");
        wait_for("scaled up again", || self.runs(&image)).await?;
        self.timeline.note(&format!(
            "Deployment back at 1 replica, {:.1} ms after the request was recorded",
            ms(woken.elapsed())
        ));
        self.timeline
            .step("the Deployment becomes available (the Deployment controller's rollout)");
        self.handle
            .set_deployment_available(APP_NS, DEPLOYMENT)
            .map_err(|e| anyhow::anyhow!("rolling the Deployment out: {e}"))?;
        wait_for("the Ingress is back on the app", || {
            self.ingress_backend_is(DEPLOYMENT)
        })
        .await?;
        self.timeline
            .note("the Ingress sends requests to the app again");
        Ok(())
    }

    /// Sets an explicit deadline two seconds ahead and waits for the expiry (a timer for that
    /// app, not a periodic check).
    async fn expire(&self) -> anyhow::Result<()> {
        self.timeline.step(&format!(
            "kubectl annotate reviewapp test {EXPIRES_AT}=<in 2 s>"
        ));
        self.annotate(EXPIRES_AT, &json!(seconds_from_now(2)))
            .await?;
        self.wait_status("expired", ("expired", "success")).await?;
        self.timeline.note(
            "expired: its children and build Jobs are deleted, the ReviewApp stays; a new commit brings it back",
        );
        Ok(())
    }

    /// Sets annotation `key` on the app.
    async fn annotate(&self, key: &str, value: &Value) -> anyhow::Result<()> {
        let patch = json!({"metadata": {"annotations": {key: value}}});
        self.apps
            .patch(APP, &PatchParams::default(), &Patch::Merge(patch))
            .await?;
        Ok(())
    }

    /// Whether the Ingress's backend is the Service `name`.
    async fn ingress_backend_is(&self, name: &str) -> bool {
        let Ok(Some(ingress)) = self.ingresses.get_opt(DEPLOYMENT).await else {
            return false;
        };
        let backend = ingress
            .spec
            .and_then(|s| s.rules)
            .and_then(|r| r.into_iter().next())
            .and_then(|r| r.http)
            .and_then(|h| h.paths.into_iter().next())
            .and_then(|p| p.backend.service)
            .map(|s| s.name);
        backend.as_deref() == Some(name)
    }

    /// Deletes the app and waits until it is gone; the objects left with its labels.
    async fn delete(&self) -> anyhow::Result<Vec<Value>> {
        self.timeline.step("kubectl delete reviewapp test");
        self.apps.delete(APP, &DeleteParams::default()).await?;
        wait_for("the ReviewApp is gone", || async {
            self.apps.get_opt(APP).await.ok().flatten().is_none()
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
            left.extend(
                self.handle
                    .list(group, version, plural, None, Some(selector)),
            );
        }
        self.timeline.note(&format!(
            "objects left with the app's labels: {}",
            left.len()
        ));
        Ok(left)
    }

    /// Waits until the app's `(appStatus, buildStatus)` is `want`.
    async fn wait_status(&self, what: &str, want: (&str, &str)) -> anyhow::Result<()> {
        wait_for(what, || async {
            self.apps
                .get_opt(APP)
                .await
                .ok()
                .flatten()
                .is_some_and(|a| {
                    let (app, build) = status_of(&a);
                    app == want.0 && build == want.1
                })
        })
        .await
    }

    /// Whether the Deployment runs `image` at 1 replica.
    async fn runs(&self, image: &str) -> bool {
        let Ok(Some(deployment)) = self.deployments.get_opt(DEPLOYMENT).await else {
            return false;
        };
        let spec = deployment.spec;
        let running = spec
            .template
            .spec
            .and_then(|s| s.containers.first().and_then(|c| c.image.clone()));
        spec.replicas == Some(1) && running.as_deref() == Some(image)
    }
}

/// The time `seconds` from now, RFC 3339, whole seconds.
fn seconds_from_now(seconds: i64) -> String {
    let now = Timestamp::now();
    let at = now
        .checked_add(SignedDuration::from_secs(seconds))
        .unwrap_or(now);
    Timestamp::from_second(at.as_second())
        .unwrap_or(at)
        .to_string()
}

/// The image built from commit `short` (10 hex digits) of the sample.
fn image_of(short: &str) -> String {
    format!("registry.local/review/{DEPLOYMENT}:{short}")
}

/// Polls `check` every 5 ms; fails naming `what` after 20 s.
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

/// `(appStatus, buildStatus)`, `none` where unset.
fn status_of(app: &ReviewApp) -> (String, String) {
    let status = serde_json::to_value(&app.status).unwrap_or_default();
    let field = |k: &str| status[k].as_str().unwrap_or("none").to_string();
    (field("appStatus"), field("buildStatus"))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// What the demo prints as it goes, and every event the operator handled.
struct Timeline {
    start: Instant,
    handled: Mutex<Vec<Handled>>,
}

impl Timeline {
    fn ms(&self) -> f64 {
        ms(self.start.elapsed())
    }

    /// A step of the demo (what a person or the cluster does).
    fn step(&self, what: &str) {
        println!("\n[{:>7.1} ms] ▶ {what}", self.ms());
    }

    /// Something observed.
    fn note(&self, what: &str) {
        println!("[{:>7.1} ms]   {what}", self.ms());
    }

    /// Prints an event the operator handled (its transition and writes) and keeps it.
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
            ms(h.elapsed)
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

    /// Prints the summary; fails when objects were `left` or not exactly two builds ran.
    fn summary(&self, deploys: [Duration; 2], left: Vec<Value>) -> anyhow::Result<()> {
        let handled = self
            .handled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut by_event: BTreeMap<String, usize> = BTreeMap::new();
        for h in &handled {
            *by_event
                .entry(format!("{:?}", h.event).to_uppercase())
                .or_default() += 1;
        }
        let written = || handled.iter().flat_map(|h| &h.written);
        let writes = written().count();
        let builds = written().filter(|w| w.starts_with("create Job")).count();
        let events: Vec<String> = by_event.iter().map(|(e, n)| format!("{e} {n}")).collect();
        println!("\nSummary");
        println!("  events handled:   {}", events.join(", "));
        println!(
            "  operator writes:  {writes} (every one listed above; unchanged objects are skipped)"
        );
        println!("  builds started:   {builds} (one per commit)");
        println!(
            "  build → deployed: {:.1} ms and {:.1} ms (event-driven; the original operator polled every 30 s)",
            ms(deploys[0]),
            ms(deploys[1])
        );
        println!("  left behind:      {} objects", left.len());
        println!("  total:            {:.0} ms", self.ms());
        if !left.is_empty() || builds != 2 {
            bail!(
                "the demo did not end clean: {} objects left, {builds} builds",
                left.len()
            );
        }
        Ok(())
    }
}
