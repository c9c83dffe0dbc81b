//! The lifecycle benchmark (`reviewapp-bench --lifecycle`): what sleeping and expiring apps cost
//! the operator at N apps, and how fast a request wakes one.
//!
//! 1. N apps are created and deployed (not measured).
//! 2. **sleep**: every app gets `sleep: "true"` and an `expires-at` an hour ahead, in a burst:
//!    until every app is asleep; the operator's writes per app.
//! 3. **idle**: `idle` seconds with a one-hour tick: the operator's writes and reads (none are
//!    expected: deadlines are timers), the timers armed (`reviewapp_lifecycle_timers`).
//! 4. **wake**: 20 apps, one at a time, get `wake-requested-at` as the activator writes it: the
//!    annotation written → the Deployment at 1 replica (the operator's share of a wake).
//! 5. **expire**: every app's `expires-at` moved 10 s ahead, in a burst; then the deadline → the
//!    app `expired`, and the operator's writes per app for the expiry.
//!
//! The driver writes through the emulator's handle (not logged), so every request in the log is
//! the operator's.

use std::time::{Duration, Instant};

use anyhow::Context;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use reviewapp_api::annotations::{EXPIRES_AT, SLEEP, WAKE_REQUESTED_AT};
use reviewapp_testkit::Handle;
use serde_json::json;

use crate::operator::{Daemon, Env, api_error};
use crate::recorder::{Shared, lock, subscribe_all};
use crate::report::{Requests, Usage};
use crate::workload::{App, settle, wait_until};
use crate::{BUILD_NS, BenchOptions, SHA1};

/// Apps woken one at a time in the wake phase.
const WAKES: usize = 20;

/// What the lifecycle benchmark measured at N apps.
#[derive(Clone, Debug, Default)]
pub struct LifecycleReport {
    /// N.
    pub apps: usize,
    /// Burst of N sleep annotations → every app asleep.
    pub sleep_all: Duration,
    /// The operator's requests while they went to sleep.
    pub sleep_requests: Requests,
    /// The idle window.
    pub idle: Duration,
    /// The operator's requests in it.
    pub idle_requests: Requests,
    /// `reviewapp_lifecycle_timers` during it.
    pub timers: u64,
    /// Wake request written → Deployment at 1 replica, one per woken app, sorted.
    pub wakes: Vec<Duration>,
    /// Deadline → `expired`, one per app, sorted.
    pub expiry_lateness: Vec<Duration>,
    /// The operator's requests from the deadline until every app expired.
    pub expiry_requests: Requests,
    /// The operator's peak RSS and CPU over the whole run.
    pub usage: Option<Usage>,
}

/// Runs the lifecycle benchmark at `options.apps` apps.
pub async fn lifecycle(options: &BenchOptions) -> anyhow::Result<LifecycleReport> {
    let n = options.apps;
    let dir = std::env::temp_dir().join(format!("reviewapp-bench-life-{}-{n}", std::process::id()));
    let mut env = Env::new(&dir, options.operator.clone()).await?;
    let handle = env.emulator.handle();
    let recorder = Shared::default();
    let tasks = subscribe_all(&handle, &recorder)?;
    let apps: Vec<App> = (0..n).map(App::new).collect();
    let mut report = LifecycleReport {
        apps: n,
        idle: options.idle,
        ..LifecycleReport::default()
    };
    let daemon = env.start_daemon(3600).await?;
    let result = phases(&handle, &recorder, &apps, &daemon, options, &mut report).await;
    report.usage = daemon.usage();
    daemon.stop().await?;
    for task in tasks {
        task.abort();
    }
    env.emulator.shutdown().await;
    result.with_context(|| format!("operator logs in {}", dir.display()))?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(report)
}

/// `seconds` from now, RFC 3339 in whole seconds, and that instant.
fn from_now(seconds: i64) -> (String, Instant) {
    let at = Timestamp::now()
        .checked_add(SignedDuration::from_secs(seconds))
        .unwrap_or(Timestamp::MAX);
    let whole = Timestamp::from_second(at.as_second()).unwrap_or(at);
    let ahead = Duration::try_from(whole.duration_since(Timestamp::now())).unwrap_or_default();
    (whole.to_string(), Instant::now() + ahead)
}

/// Applies `app` at its first commit with `annotations`, as the driver's own field manager.
fn annotate(handle: &Handle, app: &App, annotations: serde_json::Value) -> anyhow::Result<()> {
    let mut manifest = app.manifest(SHA1)?;
    manifest["metadata"]["annotations"] = annotations;
    handle.apply(manifest).map_err(api_error)?;
    Ok(())
}

/// The operator's requests since the last call.
fn take(handle: &Handle) -> Requests {
    let log = handle.requests();
    handle.clear_requests();
    Requests::of(&log)
}

/// The apps of one run and how their progress is seen.
struct Run<'a> {
    handle: &'a Handle,
    recorder: &'a Shared,
    apps: &'a [App],
    timeout: Duration,
}

impl Run<'_> {
    /// Whether every app's `appStatus` is `want`.
    fn all(&self, want: &str) -> bool {
        let r = lock(self.recorder);
        self.apps
            .iter()
            .all(|a| r.status(&a.name).map(|s| s.0).as_deref() == Some(want))
    }

    /// Waits until every app's `appStatus` is `want`.
    async fn wait_all(&self, want: &str, timeout: Duration) -> anyhow::Result<()> {
        wait_until(&format!("every app is {want}"), timeout, || self.all(want)).await
    }

    /// Creates every app and lets its build succeed.
    async fn deploy_all(&self) -> anyhow::Result<()> {
        for app in self.apps {
            self.handle.apply(app.manifest(SHA1)?).map_err(api_error)?;
        }
        wait_until("every build Job exists", self.timeout, || {
            let r = lock(self.recorder);
            self.apps.iter().all(|a| r.exists("jobs", &a.job(SHA1)))
        })
        .await?;
        for app in self.apps {
            self.handle
                .set_job_succeeded(BUILD_NS, &app.job(SHA1))
                .map_err(api_error)?;
        }
        self.wait_all("deployed", self.timeout).await?;
        settle(self.handle).await;
        self.handle.clear_requests();
        Ok(())
    }

    /// Wakes the first [`WAKES`] apps one at a time as the activator would; each latency.
    async fn wake(&self, far: &str) -> anyhow::Result<Vec<Duration>> {
        let mut wakes = Vec::new();
        for app in self.apps.iter().take(WAKES) {
            let (now, _) = from_now(0);
            let written = Instant::now();
            let annotations = json!({SLEEP: "true", EXPIRES_AT: far, WAKE_REQUESTED_AT: now});
            annotate(self.handle, app, annotations)?;
            let deployment = app.deployment();
            let scaled_up = || {
                lock(self.recorder)
                    .history("deployments", &deployment)
                    .iter()
                    .rev()
                    .find(|s| s.at >= written && s.replicas == Some(1))
                    .map(|s| s.at)
            };
            wait_until("the woken Deployment scales up", self.timeout, || {
                scaled_up().is_some()
            })
            .await?;
            let up = scaled_up().unwrap_or_else(Instant::now);
            wakes.push(up.saturating_duration_since(written));
        }
        wakes.sort();
        Ok(wakes)
    }

    /// Moves every app's deadline 10 s ahead and waits until all expired; each app's lateness.
    async fn expire(&self, far: &str) -> anyhow::Result<Vec<Duration>> {
        let (soon, deadline) = from_now(10);
        for (i, app) in self.apps.iter().enumerate() {
            let mut annotations = json!({SLEEP: "true", EXPIRES_AT: soon});
            if i < WAKES {
                annotations[WAKE_REQUESTED_AT] = json!(far);
            }
            annotate(self.handle, app, annotations)?;
        }
        settle(self.handle).await;
        self.handle.clear_requests();
        self.wait_all("expired", self.timeout + Duration::from_secs(10))
            .await?;
        let r = lock(self.recorder);
        let mut lateness: Vec<Duration> = self
            .apps
            .iter()
            .filter_map(|app| {
                r.history("reviewapps", &app.name)
                    .iter()
                    .find(|s| s.status.as_ref().is_some_and(|s| s.0 == "expired"))
                    .map(|s| s.at.saturating_duration_since(deadline))
            })
            .collect();
        lateness.sort();
        Ok(lateness)
    }
}

async fn phases(
    handle: &Handle,
    recorder: &Shared,
    apps: &[App],
    daemon: &Daemon,
    options: &BenchOptions,
    report: &mut LifecycleReport,
) -> anyhow::Result<()> {
    let run = Run {
        handle,
        recorder,
        apps,
        timeout: options.timeout,
    };
    daemon.wait_ready(options.timeout).await?;
    run.deploy_all().await?;

    // Sleep, with a deadline an hour ahead.
    let (far, _) = from_now(3600);
    let started = Instant::now();
    for app in apps {
        annotate(handle, app, json!({SLEEP: "true", EXPIRES_AT: far}))?;
    }
    run.wait_all("sleeping", options.timeout).await?;
    report.sleep_all = started.elapsed();
    settle(handle).await;
    report.sleep_requests = take(handle);

    tokio::time::sleep(options.idle).await;
    report.idle_requests = take(handle);
    report.timers = daemon.gauge("reviewapp_lifecycle_timers").await;

    report.wakes = run.wake(&far).await?;
    settle(handle).await;
    handle.clear_requests();

    report.expiry_lateness = run.expire(&far).await?;
    settle(handle).await;
    report.expiry_requests = take(handle);
    Ok(())
}

/// The `p`-th percentile of sorted `values`, in ms.
fn percentile(values: &[Duration], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let i = ((values.len() - 1) as f64 * p).round() as usize;
    values[i.min(values.len() - 1)].as_secs_f64() * 1000.0
}

/// The lifecycle results as a markdown table, one row per N.
pub fn lifecycle_markdown(reports: &[LifecycleReport]) -> String {
    let mut out = String::from(
        "| apps | all asleep | writes/app to sleep | idle writes (reads) | timers | wake → scaled up p50 / max | expiry lateness p50 / max | writes/app to expire | peak RSS | CPU |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in reports {
        let n = r.apps.max(1) as f64;
        let (rss, cpu) = r.usage.as_ref().map_or(("-".into(), "-".into()), |u| {
            (
                format!("{:.1} MiB", u.peak_rss_kib as f64 / 1024.0),
                format!("{:.1} s", u.cpu_seconds),
            )
        });
        out.push_str(&format!(
            "| {} | {:.0} ms | {:.1} | {} ({}) in {} s | {} | {:.1} / {:.1} ms | {:.0} / {:.0} ms | {:.1} | {rss} | {cpu} |\n",
            r.apps,
            r.sleep_all.as_secs_f64() * 1000.0,
            r.sleep_requests.writes as f64 / n,
            r.idle_requests.writes,
            r.idle_requests.reads,
            r.idle.as_secs(),
            r.timers,
            percentile(&r.wakes, 0.5),
            percentile(&r.wakes, 1.0),
            percentile(&r.expiry_lateness, 0.5),
            percentile(&r.expiry_lateness, 1.0),
            r.expiry_requests.writes as f64 / n,
        ));
    }
    out
}
