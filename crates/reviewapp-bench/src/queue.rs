//! The build queue benchmark: N apps pushed at once with `build.maxConcurrent: cap`, against
//! the same burst without a cap. The driver plays the Job controller: every build Job it sees
//! succeeds `build` after it appeared (through the emulator's handle, so the request log holds
//! only the operator's requests). The operator ticks once an hour, so every build after the
//! first `cap` is started by a slot freeing, not by a tick.
//!
//! Measured: the most builds running at once (counted along the emulator's ordered stream of
//! Job changes: a Job runs from its creation until its finish or deletion is applied), how long
//! after a build finished the next build Job's create reached the emulator (from the request
//! log; the k-th finish frees the slot of the (cap + k)-th create; the finish is timed just
//! before its write, so this is an upper bound), the time until every app is deployed, and the
//! operator's writes per app (all, status writes, Job creates), with and without the cap.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reviewapp_testkit::{Handle, RequestRecord, Subscription};

use crate::operator::{Env, api_error};
use crate::report::Latency;
use crate::workload::App;
use crate::{BUILD_NS, SHA1};

/// How to run the queue benchmark.
#[derive(Clone, Debug)]
pub struct QueueOptions {
    /// Number of ReviewApps, all created at once.
    pub apps: usize,
    /// `build.maxConcurrent`.
    pub cap: u32,
    /// How long each build runs.
    pub build: Duration,
    /// The `review-app-operator` binary; `None` runs the daemon in this process.
    pub operator: Option<PathBuf>,
    /// Longest wait for every app to be deployed.
    pub timeout: Duration,
}

/// One run's numbers.
#[derive(Clone, Debug, Default)]
pub struct QueueRun {
    /// `build.maxConcurrent` (0: no cap).
    pub cap: u32,
    /// The most build Jobs running at once.
    pub most_at_once: usize,
    /// From a build finishing to the next build Job's create, in ms (cap runs only).
    pub start_after_free: Latency,
    /// From the burst to every app deployed.
    pub all_deployed: Duration,
    /// Operator writes per app.
    pub writes_per_app: f64,
    /// `ReviewApp` status writes per app.
    pub status_writes_per_app: f64,
    /// Build Jobs created.
    pub job_creates: usize,
}

/// The benchmark's result: the run without a cap, then the one with it.
#[derive(Clone, Debug, Default)]
pub struct QueueReport {
    /// Number of apps.
    pub apps: usize,
    /// How long each build ran.
    pub build: Duration,
    /// Without a cap, then with `cap`.
    pub runs: Vec<QueueRun>,
}

/// Runs the burst without a cap, then with `options.cap`.
pub async fn queue(options: &QueueOptions) -> anyhow::Result<QueueReport> {
    let mut report = QueueReport {
        apps: options.apps,
        build: options.build,
        runs: Vec::new(),
    };
    for cap in [0, options.cap] {
        eprintln!("queue benchmark: N = {}, cap {cap} ...", options.apps);
        report.runs.push(one_run(options, cap).await?);
    }
    Ok(report)
}

async fn one_run(options: &QueueOptions, cap: u32) -> anyhow::Result<QueueRun> {
    let n = options.apps;
    let dir = std::env::temp_dir().join(format!(
        "reviewapp-bench-queue-{}-{n}-{cap}",
        std::process::id()
    ));
    let mut env = Env::new(&dir, options.operator.clone()).await?;
    env.build_cap = cap;
    let handle = env.emulator.handle();
    let daemon = env.start_daemon(3600).await?;
    daemon.wait_ready(options.timeout).await?;
    handle.clear_requests();
    let apps: Vec<App> = (0..n).map(App::new).collect();
    let jobs = handle
        .subscribe("batch", "v1", "jobs", Some(BUILD_NS), None)
        .map_err(api_error)?;
    let burst = Instant::now();
    for app in &apps {
        handle.create(app.manifest(SHA1)?).map_err(api_error)?;
    }
    let finishes = play_job_controller(&handle, jobs, apps.len(), options).await;
    let all_deployed = burst.elapsed();
    daemon.stop().await?;
    env.emulator.shutdown().await;
    let finishes = finishes.with_context(|| format!("operator logs in {}", dir.display()))?;
    let _ = std::fs::remove_dir_all(&dir);
    let requests = handle.requests();
    Ok(measure(&requests, &finishes, cap, n, all_deployed))
}

/// Succeeds every build Job `options.build` after it appeared (seen through `jobs`, an
/// in-process watch), until all `apps` are deployed; when each build finished, in order.
async fn play_job_controller(
    handle: &Handle,
    mut jobs: Subscription,
    apps: usize,
    options: &QueueOptions,
) -> anyhow::Result<Finished> {
    let deadline = Instant::now() + options.timeout;
    let mut running: HashMap<String, Instant> = HashMap::new();
    let mut finishes = Vec::new();
    let mut counter = AtOnce::default();
    loop {
        tokio::time::sleep(Duration::from_millis(1)).await;
        // What the subscription holds now (a zero timeout polls it once).
        while let Ok(event) = tokio::time::timeout(Duration::ZERO, jobs.next()).await {
            let event = event.context("the Job subscription ended")?;
            let Some(name) = event.object["metadata"]["name"].as_str() else {
                continue;
            };
            if event.kind == "ADDED" {
                running.insert(name.to_string(), Instant::now());
            }
            counter.apply(event.kind, name, &event.object);
        }
        let now = Instant::now();
        let due: Vec<String> = running
            .iter()
            .filter(|(_, at)| now.duration_since(**at) >= options.build)
            .map(|(name, _)| name.clone())
            .collect();
        for name in due {
            running.remove(&name);
            // Taken before the write, so a create it caused is never timed before it.
            finishes.push(Instant::now());
            handle
                .set_job_succeeded(BUILD_NS, &name)
                .map_err(api_error)?;
        }
        if finishes.len() >= apps && deployed(handle) >= apps {
            return Ok(Finished {
                finishes,
                most_at_once: counter.most,
            });
        }
        if Instant::now() > deadline {
            bail!(
                "{} builds finished, {} apps deployed within {:?}",
                finishes.len(),
                deployed(handle),
                options.timeout
            );
        }
    }
}

/// What the driver saw: when each build finished (just before its write), and the most build
/// Jobs running at once.
struct Finished {
    finishes: Vec<Instant>,
    most_at_once: usize,
}

/// Counts running build Jobs along the emulator's ordered change stream (the order it applied
/// the writes in): a Job counts from its creation until it finished or is being deleted.
#[derive(Default)]
struct AtOnce {
    running: std::collections::HashSet<String>,
    most: usize,
}

impl AtOnce {
    fn apply(&mut self, kind: &str, name: &str, job: &serde_json::Value) {
        let finished = job["status"]["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["status"] == "True"));
        let deleting = !job["metadata"]["deletionTimestamp"].is_null();
        if kind == "ADDED" && !finished && !deleting {
            self.running.insert(name.to_string());
            self.most = self.most.max(self.running.len());
        } else if kind == "DELETED" || finished || deleting {
            self.running.remove(name);
        }
    }
}

/// How many apps report `appStatus: deployed`.
fn deployed(handle: &Handle) -> usize {
    handle
        .list(crate::GROUP, "v1", "reviewapps", None, None)
        .iter()
        .filter(|app| app["status"]["appStatus"] == "deployed")
        .count()
}

/// The numbers of one run from the request log and what the driver saw.
fn measure(
    requests: &[RequestRecord],
    finished: &Finished,
    cap: u32,
    n: usize,
    all_deployed: Duration,
) -> QueueRun {
    let finishes = &finished.finishes;
    let jobs = format!("/apis/batch/v1/namespaces/{BUILD_NS}/jobs");
    let mut creates: Vec<Instant> = requests
        .iter()
        .filter(|r| r.method == "POST" && r.path == jobs && r.status == 201)
        .map(|r| r.received)
        .collect();
    creates.sort();
    let cap_usize = cap as usize;
    let start_after_free = if cap == 0 {
        Latency::default()
    } else {
        Latency::of(
            finishes
                .iter()
                .zip(creates.iter().skip(cap_usize))
                .map(|(freed, created)| created.saturating_duration_since(*freed))
                .collect(),
        )
    };
    let writes = requests.iter().filter(|r| r.is_write()).count();
    let status_writes = requests
        .iter()
        .filter(|r| r.is_write() && r.path.contains("/reviewapps/") && r.path.ends_with("/status"))
        .count();
    let per_app = |count: usize| count as f64 / n.max(1) as f64;
    QueueRun {
        cap,
        most_at_once: finished.most_at_once,
        start_after_free,
        all_deployed,
        writes_per_app: per_app(writes),
        status_writes_per_app: per_app(status_writes),
        job_creates: creates.len(),
    }
}

/// The report as a markdown table.
pub fn queue_markdown(report: &QueueReport) -> String {
    let mut out = format!(
        "N = {} apps created at once, each build {} ms\n\n\
         | cap | most builds at once | next build created after a slot freed (p50 / p99 / max) | all deployed | writes per app | status writes per app | build Jobs created |\n\
         |---|---|---|---|---|---|---|\n",
        report.apps,
        report.build.as_millis()
    );
    for run in &report.runs {
        let cap = if run.cap == 0 {
            "none".to_string()
        } else {
            run.cap.to_string()
        };
        let latency = if run.cap == 0 {
            "-".to_string()
        } else {
            let l = &run.start_after_free;
            format!("{:.1} / {:.1} / {:.1} ms", l.p50, l.p99, l.max)
        };
        out.push_str(&format!(
            "| {cap} | {} | {latency} | {:.2} s | {:.2} | {:.2} | {} |\n",
            run.most_at_once,
            run.all_deployed.as_secs_f64(),
            run.writes_per_app,
            run.status_writes_per_app,
            run.job_creates
        ));
    }
    out
}
