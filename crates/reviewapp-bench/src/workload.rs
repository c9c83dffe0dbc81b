//! The workload of one run at N apps: the lifecycle phases (create, deploy, push, redeploy,
//! restart, idle, delete; see the crate documentation) and what each measures.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reviewapp_testkit::{Handle, object_path};
use serde_json::{Value, json};

use crate::operator::{Daemon, Env, api_error};
use crate::recorder::{Recorder, Shared, WATCHED, lock, subscribe_all};
use crate::report::{Latency, Report, Requests};
use crate::{BUILD_NS, BenchOptions, CHILDREN, GROUP, SAMPLE, SHA1, SHA2};

/// App `i` (0-based): its ReviewApp name and PR; its Deployment and build Jobs follow.
pub(crate) struct App {
    pub(crate) name: String,
    pr: String,
}

impl App {
    pub fn new(i: usize) -> App {
        App {
            name: format!("app-{}", i + 1),
            pr: format!("{}", i + 1),
        }
    }

    pub(crate) fn deployment(&self) -> String {
        format!("test-review-app-{}", self.pr)
    }

    pub(crate) fn job(&self, commit: &str) -> String {
        format!("test-review-app-{}--{}", self.pr, &commit[..10])
    }

    /// The sample ReviewApp as this app, at `commit`.
    pub fn manifest(&self, commit: &str) -> anyhow::Result<Value> {
        let mut app: Value = serde_yaml::from_str(SAMPLE).context("the sample parses")?;
        app["metadata"] = json!({"name": self.name});
        app["spec"]["pr"] = json!(self.pr);
        app["spec"]["commitHash"] = json!(commit);
        if let Some(o) = app.as_object_mut() {
            o.remove("status");
        }
        Ok(app)
    }

    fn path(&self) -> String {
        object_path(GROUP, "v1", "reviewapps", None, &self.name)
    }

    /// When the Deployment first ran 1 replica of the image built from `commit`, after `since`.
    fn deployed_at(&self, r: &Recorder, commit: &str, since: Instant) -> Option<Instant> {
        let suffix = format!(":{}", &commit[..10]);
        r.history("deployments", &self.deployment())
            .iter()
            .find(|s| {
                s.at >= since
                    && s.kind != "DELETED"
                    && s.replicas == Some(1)
                    && s.image.as_deref().is_some_and(|i| i.ends_with(&suffix))
            })
            .map(|s| s.at)
    }
}

/// Polls `check` every 2 ms until it holds; fails naming `what` after `timeout`.
pub(crate) async fn wait_until(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while !check() {
        if Instant::now() > deadline {
            bail!("did not converge within {timeout:?}: {what}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

/// Waits until the request log stops growing for 300 ms (at most 30 s).
pub(crate) async fn settle(handle: &Handle) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = usize::MAX;
    let mut stable = 0;
    while stable < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = handle.requests().len();
        if now == last {
            stable += 1;
        } else {
            stable = 0;
            last = now;
        }
    }
}

/// Runs the whole benchmark at `options.apps` apps.
pub async fn run(options: &BenchOptions) -> anyhow::Result<Report> {
    let n = options.apps;
    let dir = std::env::temp_dir().join(format!("reviewapp-bench-{}-{n}", std::process::id()));
    let mut env = Env::new(&dir, options.operator.clone()).await?;
    let handle = env.emulator.handle();
    let recorder = Shared::default();
    let tasks = subscribe_all(&handle, &recorder)?;
    let workload = Workload {
        handle,
        recorder,
        apps: (0..n).map(App::new).collect(),
        timeout: options.timeout,
    };
    let mut report = Report {
        apps: n,
        ..Report::default()
    };
    let result = workload
        .lifecycle(&mut env, options.idle, &mut report)
        .await;
    for task in tasks {
        task.abort();
    }
    env.emulator.shutdown().await;
    result.with_context(|| format!("operator logs in {}", dir.display()))?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(report)
}

/// The apps of one run and how their progress is seen.
struct Workload {
    handle: Handle,
    recorder: Shared,
    apps: Vec<App>,
    /// Longest wait for any phase to converge.
    timeout: Duration,
}

impl Workload {
    /// Every phase in order, each adding what it measured to `report`.
    async fn lifecycle(
        &self,
        env: &mut Env,
        idle: Duration,
        report: &mut Report,
    ) -> anyhow::Result<()> {
        let daemon = env.start_daemon(30).await?;
        daemon.wait_ready(self.timeout).await?;
        settle(&self.handle).await;
        self.handle.clear_requests();
        self.create(report).await?;
        self.deploy(report).await?;
        self.push(report).await?;
        self.redeploy(report).await?;
        report.lifecycle_usage = daemon.usage();
        daemon.stop().await?;
        self.restart(env, report).await?;
        self.idle(env, idle, report).await?;
        self.delete(env, report).await
    }

    /// Waits for the request log to settle, then files it as the requests of `phase`.
    async fn end_phase(&self, phase: &str, report: &mut Report) {
        settle(&self.handle).await;
        report.phases.push((phase.into(), self.take_requests()));
    }

    /// Takes the request log and empties it.
    fn take_requests(&self) -> Requests {
        let log = self.handle.requests();
        self.handle.clear_requests();
        Requests::of(&log)
    }

    /// Waits until every app has `status` (`(appStatus, buildStatus)`).
    async fn wait_status(&self, status: (&str, &str)) -> anyhow::Result<()> {
        let want = Some((status.0.to_string(), status.1.to_string()));
        let what = format!("every app is {}/{}", status.0, status.1);
        wait_until(&what, self.timeout, || {
            let r = lock(&self.recorder);
            self.apps.iter().all(|a| r.status(&a.name) == want)
        })
        .await
    }

    /// Phase 1, create: a burst of N creates, until every app has its children and its build.
    async fn create(&self, report: &mut Report) -> anyhow::Result<()> {
        let mut created = Vec::with_capacity(self.apps.len());
        for app in &self.apps {
            created.push(Instant::now());
            self.handle.apply(app.manifest(SHA1)?).map_err(api_error)?;
        }
        wait_until("every app has its 6 children", self.timeout, || {
            let r = lock(&self.recorder);
            self.apps
                .iter()
                .all(|a| r.children.get(&a.name).is_some_and(|c| c.len() >= CHILDREN))
        })
        .await?;
        wait_until("every app has its build Job", self.timeout, || {
            let r = lock(&self.recorder);
            self.apps.iter().all(|a| r.exists("jobs", &a.job(SHA1)))
        })
        .await?;
        self.wait_status(("building", "building")).await?;
        (report.create_to_applied, report.create_burst) = self.spread(&created, |r, app, _| {
            r.children
                .get(&app.name)
                .and_then(|c| c.values().max().copied())
        });
        self.end_phase("create", report).await;
        Ok(())
    }

    /// Phase 2, deploy: the builds finish one at a time (each waits for its app to be deployed).
    async fn deploy(&self, report: &mut Report) -> anyhow::Result<()> {
        let mut samples = Vec::with_capacity(self.apps.len());
        for app in &self.apps {
            let t0 = Instant::now();
            self.handle
                .set_job_succeeded(BUILD_NS, &app.job(SHA1))
                .map_err(api_error)?;
            let mut done = None;
            wait_until("the built image is deployed", self.timeout, || {
                done = app.deployed_at(&lock(&self.recorder), SHA1, t0);
                done.is_some()
            })
            .await?;
            samples.push(done.map_or(Duration::ZERO, |d| d.saturating_duration_since(t0)));
            wait_until("deployed/success", self.timeout, || {
                lock(&self.recorder).status(&app.name)
                    == Some(("deployed".into(), "success".into()))
            })
            .await?;
        }
        report.deploy_sequential = Latency::of(samples);
        self.end_phase("deploy", report).await;
        Ok(())
    }

    /// Phase 3, push: a new commit for every app (old Job deleted, new Job created).
    async fn push(&self, report: &mut Report) -> anyhow::Result<()> {
        for app in &self.apps {
            self.handle.apply(app.manifest(SHA2)?).map_err(api_error)?;
        }
        wait_until(
            "every app rebuilds (new Job, old one deleted)",
            self.timeout,
            || {
                let r = lock(&self.recorder);
                self.apps
                    .iter()
                    .all(|a| r.exists("jobs", &a.job(SHA2)) && !r.exists("jobs", &a.job(SHA1)))
            },
        )
        .await?;
        self.wait_status(("deployed", "building")).await?;
        self.end_phase("push", report).await;
        Ok(())
    }

    /// Phase 4, redeploy: the N new builds finish in a burst.
    async fn redeploy(&self, report: &mut Report) -> anyhow::Result<()> {
        let mut finished = Vec::with_capacity(self.apps.len());
        for app in &self.apps {
            finished.push(Instant::now());
            self.handle
                .set_job_succeeded(BUILD_NS, &app.job(SHA2))
                .map_err(api_error)?;
        }
        wait_until("every new image is deployed", self.timeout, || {
            let r = lock(&self.recorder);
            self.apps
                .iter()
                .zip(&finished)
                .all(|(a, t0)| a.deployed_at(&r, SHA2, *t0).is_some())
        })
        .await?;
        (report.deploy_burst, report.deploy_burst_total) =
            self.spread(&finished, |r, app, t0| app.deployed_at(r, SHA2, t0));
        self.wait_status(("deployed", "success")).await?;
        self.end_phase("redeploy", report).await;
        Ok(())
    }

    /// For a burst started at `starts` (one per app): the latency of each app (from its start
    /// until `done`, zero when not done) and the time from the first start to the last app done.
    fn spread(
        &self,
        starts: &[Instant],
        done: impl Fn(&Recorder, &App, Instant) -> Option<Instant>,
    ) -> (Latency, Duration) {
        let r = lock(&self.recorder);
        let Some(first) = starts.first().copied() else {
            return (Latency::default(), Duration::ZERO);
        };
        let mut samples = Vec::with_capacity(starts.len());
        let mut last = first;
        for (app, t0) in self.apps.iter().zip(starts) {
            let at = done(&r, app, *t0).unwrap_or(*t0);
            last = last.max(at);
            samples.push(at.saturating_duration_since(*t0));
        }
        (Latency::of(samples), last.saturating_duration_since(first))
    }

    /// Starts an operator reconciling every `tick` seconds and waits until it is ready and has
    /// handled every app's ADD.
    async fn start_converged(&self, env: &mut Env, tick: u64) -> anyhow::Result<Daemon> {
        let daemon = env.start_daemon(tick).await?;
        daemon.wait_ready(self.timeout).await?;
        daemon
            .wait_events("add", self.apps.len() as u64, self.timeout)
            .await?;
        Ok(daemon)
    }

    /// Phase 5, restart with N deployed apps (the real 30 s tick): until ready, until every ADD was
    /// handled, and what it sent meanwhile.
    async fn restart(&self, env: &mut Env, report: &mut Report) -> anyhow::Result<()> {
        self.handle.clear_requests();
        let start = Instant::now();
        let daemon = env.start_daemon(30).await?;
        daemon.wait_ready(self.timeout).await?;
        report.restart_ready = start.elapsed();
        daemon
            .wait_events("add", self.apps.len() as u64, self.timeout)
            .await?;
        report.restart_converged = start.elapsed();
        tokio::time::sleep(Duration::from_secs(1)).await;
        settle(&self.handle).await;
        report.restart_requests = self.take_requests();
        report.restart_usage = daemon.usage();
        daemon.stop().await
    }

    /// Phase 6, idle: a 1 s tick, compressing time; counted once every app's ADD was handled.
    async fn idle(
        &self,
        env: &mut Env,
        window: Duration,
        report: &mut Report,
    ) -> anyhow::Result<()> {
        let mut daemon = self.start_converged(env, 1).await?;
        settle(&self.handle).await;
        self.handle.clear_requests();
        daemon.mark_cpu();
        let before = daemon.events("reconcile").await;
        let start = Instant::now();
        tokio::time::sleep(window).await;
        report.idle_reconciles = daemon.events("reconcile").await.saturating_sub(before);
        report.idle_window = start.elapsed();
        report.idle_requests = self.take_requests();
        report.idle_usage = daemon.usage();
        daemon.stop().await
    }

    /// Phase 7, delete, with a fresh operator at the real tick: every ReviewApp in a burst, until
    /// nothing of any app is left.
    async fn delete(&self, env: &mut Env, report: &mut Report) -> anyhow::Result<()> {
        let daemon = self.start_converged(env, 30).await?;
        settle(&self.handle).await;
        self.handle.clear_requests();
        for app in &self.apps {
            self.handle.delete(&app.path()).map_err(api_error)?;
        }
        wait_until("every ReviewApp is gone", self.timeout, || {
            let r = lock(&self.recorder);
            self.apps.iter().all(|a| !r.exists("reviewapps", &a.name))
        })
        .await?;
        wait_until("nothing of any app is left", self.timeout, || {
            let selector = "app.kubernetes.io/managed-by=review-app-operator";
            WATCHED
                .iter()
                .filter(|(_, _, plural, _, _)| *plural != "reviewapps")
                .all(|(g, v, p, ns, _)| self.handle.list(g, v, p, *ns, Some(selector)).is_empty())
        })
        .await?;
        self.end_phase("delete", report).await;
        daemon.stop().await
    }
}
