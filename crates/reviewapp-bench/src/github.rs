//! The webhook path: a pull request's `opened` delivery → its `ReviewApp` created → its build Job
//! created, with the GitHub component and the operator daemon both in this process against the
//! API emulator, and the component's octocrab client against the fake GitHub API (on loopback).
//! Deliveries are sent one at a time, so each latency is the path's own, not a queue's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reviewapp_api::OperatorConfig;
use reviewapp_daemon::DaemonOptions;
use reviewapp_github::fake::{FakeGitHub, deliver, event_json, pull_request_json};
use reviewapp_github::signature::sign;
use reviewapp_github::{Auth, GithubConfig, Metrics, OctocrabGitHub, Options, Secret};
use reviewapp_testkit::{Emulator, Subscription};

use crate::report::Latency;

const TOKEN: &str = "ghp_bench";
const SECRET: &str = "bench-secret";
const OWNER: &str = "bench";
const REPO: &str = "app";

/// Latencies of the webhook path, from sending the delivery.
#[derive(Clone, Debug)]
pub struct WebhookReport {
    /// Pull requests delivered.
    pub pull_requests: usize,
    /// Delivery sent → `202` received.
    pub answered: Latency,
    /// Delivery sent → `ReviewApp` created.
    pub created: Latency,
    /// Delivery sent → build Job created.
    pub build_job: Latency,
}

async fn next_added(sub: &mut Subscription, timeout: Duration) -> anyhow::Result<String> {
    loop {
        let event = tokio::time::timeout(timeout, sub.next())
            .await
            .context("timed out")?
            .context("subscription ended")?;
        if event.kind == "ADDED" {
            return Ok(event.object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string());
        }
    }
}

/// Delivers `opened` for `pull_requests` pull requests, one at a time, and times each.
pub async fn webhook_to_build(
    pull_requests: usize,
    timeout: Duration,
) -> anyhow::Result<WebhookReport> {
    let emulator = Emulator::start().await?;
    let k8s = emulator.handle();
    k8s.create(serde_json::to_value(
        <reviewapp_api::ReviewApp as kube::CustomResourceExt>::crd(),
    )?)
    .map_err(|e| anyhow::anyhow!("installing the ReviewApp CRD: {e}"))?;
    let config = Arc::new(OperatorConfig {
        registry: "registry.bench/review".into(),
        reconcile_interval_seconds: 3600,
        ..OperatorConfig::default()
    });
    let (stop_operator, operator_stopped) = tokio::sync::oneshot::channel::<()>();
    let operator = tokio::spawn(reviewapp_daemon::run(
        emulator.client(),
        config.clone(),
        DaemonOptions {
            concurrency: 8,
            listen: "127.0.0.1:0".parse()?,
            leader: None,
            shutdown_grace: Duration::from_secs(5),
            controller_name: "review-app-operator".into(),
            instance: Some("bench".into()),
            listener: None,
        },
        async move {
            let _ = operator_stopped.await;
        },
        |_| {},
    ));

    let github = FakeGitHub::start(TOKEN).await?;
    let fake = github.fake();
    let adapter = OctocrabGitHub::new(&github.url(), &Auth::Token(Secret::new(TOKEN)))?;
    let settings = Arc::new(GithubConfig {
        api_url: github.url(),
        resync_interval_seconds: 0,
        ..GithubConfig::default()
    });
    let (stop_component, component_stopped) = tokio::sync::oneshot::channel::<()>();
    let (bound, addr) = tokio::sync::oneshot::channel();
    let component = tokio::spawn(reviewapp_github::run(
        emulator.client(),
        Arc::new(adapter),
        settings,
        Secret::new(SECRET),
        Arc::new(Metrics::new()),
        Options::new("127.0.0.1:0".parse()?),
        async move {
            let _ = component_stopped.await;
        },
        move |a| {
            let _ = bound.send(a);
        },
    ));
    let addr = addr.await?;
    // Let both watches list before the first delivery.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut apps = k8s.subscribe("reviewtron.k8s.revelry.co", "v1", "reviewapps", None, None)?;
    let mut jobs = k8s.subscribe("batch", "v1", "jobs", Some(&config.build_namespace), None)?;
    let (mut answered, mut created, mut build_job) = (Vec::new(), Vec::new(), Vec::new());
    for number in 1..=pull_requests as u64 {
        let sha = format!("{number:0>40x}");
        let pull = pull_request_json(OWNER, REPO, number, &sha, &format!("feature-{number}"));
        fake.set_pull(OWNER, REPO, pull.clone());
        fake.set_file(
            OWNER,
            REPO,
            &sha,
            ".review_bot.yml",
            "namespace: review-apps\napplicationPort: 4000\n",
        );
        let body = event_json("opened", &pull, None).to_string();
        let signature = sign(SECRET.as_bytes(), body.as_bytes());
        let start = Instant::now();
        let (code, text) = deliver(addr, "pull_request", body.as_bytes(), Some(&signature)).await?;
        answered.push(start.elapsed());
        if code != 202 {
            bail!("delivery {number} answered {code}: {text}");
        }
        let app = next_added(&mut apps, timeout).await?;
        created.push(start.elapsed());
        let job = next_added(&mut jobs, timeout).await?;
        build_job.push(start.elapsed());
        if !app.ends_with(&format!(".{number}")) || !job.ends_with(&sha[..10]) {
            bail!("unexpected objects for pull request {number}: {app}, {job}");
        }
    }

    let _ = stop_component.send(());
    let _ = stop_operator.send(());
    component.await??;
    operator.await??;
    Ok(WebhookReport {
        pull_requests,
        answered: Latency::of(answered),
        created: Latency::of(created),
        build_job: Latency::of(build_job),
    })
}

/// The report as a markdown table.
pub fn markdown(report: &WebhookReport) -> String {
    let row = |what: &str, l: &Latency| {
        format!("| {what} | {:.1} | {:.1} | {:.1} |\n", l.p50, l.p99, l.max)
    };
    let mut out = format!(
        "| webhook path, {} pull requests one at a time (ms) | p50 | p99 | max |\n|---|---|---|---|\n",
        report.pull_requests
    );
    out.push_str(&row("delivery sent → `202` answered", &report.answered));
    out.push_str(&row("delivery sent → `ReviewApp` created", &report.created));
    out.push_str(&row("delivery sent → build Job created", &report.build_job));
    out
}
