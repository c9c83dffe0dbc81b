//! The webhook path: a pull request's `opened` delivery → its `ReviewApp` created → its build Job
//! created, with the GitHub component and the operator daemon both in this process against the
//! API emulator, and the component's octocrab client against the fake GitHub API (on loopback).
//! Deliveries are sent one at a time, so each latency is the path's own, not a queue's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reviewapp_api::OperatorConfig;
use reviewapp_daemon::DaemonOptions;
use reviewapp_github::fake::{Fake, FakeGitHub, deliver, event_json, pull_request_json};
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
    let operator = Running::operator(&emulator, config.clone())?;
    let github = FakeGitHub::start(TOKEN).await?;
    let (component, addr) = Running::component(&emulator, &github).await?;
    // Let both watches list before the first delivery.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut path = Path {
        fake: github.fake(),
        addr,
        apps: k8s.subscribe("reviewtron.k8s.revelry.co", "v1", "reviewapps", None, None)?,
        jobs: k8s.subscribe("batch", "v1", "jobs", Some(&config.build_namespace), None)?,
        timeout,
    };
    let (mut answered, mut created, mut build_job) = (Vec::new(), Vec::new(), Vec::new());
    for number in 1..=pull_requests as u64 {
        let times = path.open(number).await?;
        answered.push(times[0]);
        created.push(times[1]);
        build_job.push(times[2]);
    }
    component.stop().await?;
    operator.stop().await?;
    Ok(WebhookReport {
        pull_requests,
        answered: Latency::of(answered),
        created: Latency::of(created),
        build_job: Latency::of(build_job),
    })
}

/// A task of this process (the operator or the component) and how to stop it.
struct Running<E> {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), E>>,
}

impl<E: std::error::Error + Send + Sync + 'static> Running<E> {
    /// Stops the task and waits for it; its error, if any.
    async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await??;
        Ok(())
    }
}

impl Running<reviewapp_daemon::DaemonError> {
    /// The operator daemon against the emulator.
    fn operator(emulator: &Emulator, config: Arc<OperatorConfig>) -> anyhow::Result<Self> {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(reviewapp_daemon::run(
            emulator.client(),
            config,
            DaemonOptions {
                concurrency: 8,
                listen: "127.0.0.1:0".parse()?,
                leader: None,
                shutdown_grace: Duration::from_secs(5),
                controller_name: "review-app-operator".into(),
                instance: Some("bench".into()),
                listener: None,
                activator: None,
            },
            async move {
                let _ = stopped.await;
            },
            |_| {},
        ));
        Ok(Running { stop, task })
    }
}

impl Running<reviewapp_github::ServiceError> {
    /// The GitHub component against the emulator and the fake GitHub API; the address of its
    /// webhook.
    async fn component(
        emulator: &Emulator,
        github: &FakeGitHub,
    ) -> anyhow::Result<(Self, std::net::SocketAddr)> {
        let adapter = OctocrabGitHub::new(&github.url(), &Auth::Token(Secret::new(TOKEN)))?;
        let settings = Arc::new(GithubConfig {
            api_url: github.url(),
            resync_interval_seconds: 0,
            ..GithubConfig::default()
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (bound, addr) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(reviewapp_github::run(
            emulator.client(),
            Arc::new(adapter),
            settings,
            Secret::new(SECRET),
            Arc::new(Metrics::new()),
            Options::new("127.0.0.1:0".parse()?),
            async move {
                let _ = stopped.await;
            },
            move |a| {
                let _ = bound.send(a);
            },
        ));
        Ok((Running { stop, task }, addr.await?))
    }
}

/// The webhook path of one pull request at a time: what the fake GitHub API holds, where
/// deliveries go, and what is watched for.
struct Path {
    fake: Fake,
    addr: std::net::SocketAddr,
    apps: Subscription,
    jobs: Subscription,
    timeout: Duration,
}

impl Path {
    /// Opens pull request `number` (its file in the fake, then a signed `opened` delivery);
    /// the time until the delivery was answered, the `ReviewApp` created, its build Job created.
    async fn open(&mut self, number: u64) -> anyhow::Result<[Duration; 3]> {
        let sha = format!("{number:0>40x}");
        let pull = pull_request_json(OWNER, REPO, number, &sha, &format!("feature-{number}"));
        self.fake.set_pull(OWNER, REPO, pull.clone());
        self.fake.set_file(
            OWNER,
            REPO,
            &sha,
            ".review_bot.yml",
            "namespace: review-apps\napplicationPort: 4000\n",
        );
        let body = event_json("opened", &pull, None).to_string();
        let signature = sign(SECRET.as_bytes(), body.as_bytes());
        let start = Instant::now();
        let (code, text) =
            deliver(self.addr, "pull_request", body.as_bytes(), Some(&signature)).await?;
        let answered = start.elapsed();
        if code != 202 {
            bail!("delivery {number} answered {code}: {text}");
        }
        let app = next_added(&mut self.apps, self.timeout).await?;
        let created = start.elapsed();
        let job = next_added(&mut self.jobs, self.timeout).await?;
        let build_job = start.elapsed();
        if !app.ends_with(&format!(".{number}")) || !job.ends_with(&sha[..10]) {
            bail!("unexpected objects for pull request {number}: {app}, {job}");
        }
        Ok([answered, created, build_job])
    }
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
