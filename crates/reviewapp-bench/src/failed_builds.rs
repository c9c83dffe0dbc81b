//! The cost of saying why a build failed: N apps whose builds all fail at once, each build
//! container's log `log_bytes` long (a handful of very long lines, so that the last 20 lines
//! are the whole log and only `limitBytes` bounds the answer). Measures the requests the
//! operator sends per failure (pod lists, Secret reads, log reads), the bytes it asks for, the
//! time from the failure to the status that records it, and the operator's peak RSS: run once
//! with 1 KiB logs and once with multi-megabyte ones, the RSS shows whether a log's size costs
//! memory.

use std::time::{Duration, Instant};

use anyhow::bail;
use reviewapp_testkit::{Handle, RequestRecord, object_path};
use serde_json::Value;

use crate::operator::{Env, api_error};
use crate::report::{Latency, Usage};
use crate::workload::App;
use crate::{BUILD_NS, GROUP, SHA1};

/// What one run measured.
#[derive(Clone, Debug)]
pub struct FailedBuildsReport {
    /// Apps whose build failed.
    pub apps: usize,
    /// Bytes of each failed build container's log.
    pub log_bytes: usize,
    /// Per failure: pod lists, Secret reads, log reads the operator sent.
    pub lists: f64,
    /// Secret reads per failure.
    pub secret_reads: f64,
    /// Log reads per failure.
    pub log_reads: f64,
    /// The largest `limitBytes` asked for.
    pub limit_bytes: u64,
    /// The largest status message written.
    pub max_message_bytes: usize,
    /// Failure → status `error` recording the log tail.
    pub recorded: Latency,
    /// Peak RSS and CPU of the operator over the run.
    pub usage: Option<Usage>,
}

/// Options of [`failed_builds`].
#[derive(Clone, Debug)]
pub struct FailedBuildsOptions {
    /// Number of apps.
    pub apps: usize,
    /// Bytes of each log.
    pub log_bytes: usize,
    /// The operator binary; `None` runs the daemon in this process.
    pub operator: Option<std::path::PathBuf>,
    /// Longest wait for the builds to start or the failures to be recorded.
    pub timeout: Duration,
}

/// Runs the benchmark once.
pub async fn failed_builds(options: &FailedBuildsOptions) -> anyhow::Result<FailedBuildsReport> {
    let dir = std::env::temp_dir().join(format!(
        "reviewapp-bench-failed-{}-{}",
        std::process::id(),
        options.log_bytes
    ));
    let mut env = Env::new(&dir, options.operator.clone()).await?;
    let handle = env.emulator.handle();
    let daemon = env.start_daemon(30).await?;
    daemon.wait_ready(options.timeout).await?;
    let apps: Vec<App> = (0..options.apps).map(App::new).collect();
    for app in &apps {
        handle.create(app.manifest(SHA1)?).map_err(api_error)?;
    }
    wait(options.timeout, "every build Job exists", || {
        apps.iter()
            .all(|a| handle.job_pods(BUILD_NS, &a.job(SHA1)).len() == 1)
    })
    .await?;
    let log = long_lines(options.log_bytes);
    for app in &apps {
        handle
            .set_job_log(BUILD_NS, &app.job(SHA1), "build", &log)
            .map_err(api_error)?;
    }
    handle.clear_requests();
    let failed_at = Instant::now();
    for app in &apps {
        handle
            .set_job_failed(BUILD_NS, &app.job(SHA1), "BackoffLimitExceeded", "limit")
            .map_err(api_error)?;
    }
    let mut recorded: Vec<Option<Duration>> = vec![None; apps.len()];
    let deadline = Instant::now() + options.timeout;
    let mut max_message_bytes = 0;
    while recorded.iter().any(Option::is_none) {
        if Instant::now() > deadline {
            let done = recorded.iter().flatten().count();
            bail!("only {done} of {} failures recorded", apps.len());
        }
        for (app, at) in apps.iter().zip(recorded.iter_mut()) {
            if at.is_none()
                && let Some(message) = recorded_message(&handle, app)
            {
                max_message_bytes = max_message_bytes.max(message.len());
                *at = Some(failed_at.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let requests: Vec<RequestRecord> = handle.requests();
    let n = apps.len() as f64;
    let count =
        |p: &dyn Fn(&RequestRecord) -> bool| requests.iter().filter(|r| p(r)).count() as f64 / n;
    let pods = format!("/api/v1/namespaces/{BUILD_NS}/pods");
    let report = FailedBuildsReport {
        apps: apps.len(),
        log_bytes: options.log_bytes,
        lists: count(&|r| r.method == "GET" && r.path == pods && !r.watch),
        secret_reads: count(&|r| r.method == "GET" && r.path.contains("/secrets/")),
        log_reads: count(&|r| r.path.ends_with("/log")),
        limit_bytes: requests
            .iter()
            .filter(|r| r.path.ends_with("/log"))
            .filter_map(|r| limit_bytes(&r.query))
            .max()
            .unwrap_or(0),
        max_message_bytes,
        recorded: Latency::of(recorded.into_iter().flatten().collect()),
        usage: daemon.usage(),
    };
    daemon.stop().await?;
    env.emulator.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(report)
}

/// The status message of `app` once it records the failure with its log tail.
fn recorded_message(handle: &Handle, app: &App) -> Option<String> {
    let object = handle.get(&object_path(GROUP, "v1", "reviewapps", None, app.name()))?;
    let status = object.get("status")?;
    (status.get("buildStatus").and_then(Value::as_str) == Some("error"))
        .then(|| status.get("message").and_then(Value::as_str))
        .flatten()
        .filter(|m| m.contains("exited with code"))
        .map(str::to_string)
}

/// `limitBytes` of a query string.
fn limit_bytes(query: &str) -> Option<u64> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("limitBytes="))
        .and_then(|v| v.parse().ok())
}

/// A log of about `bytes` bytes in 8 long lines of bold `x`s (escape sequences), then the line
/// saying what failed.
fn long_lines(bytes: usize) -> String {
    let bold_x = "\u{1b}[1mx";
    let repeats = (bytes / 8 / bold_x.len()).max(1);
    let mut log = String::with_capacity(bytes + 64);
    for i in 0..8 {
        log.push_str(&format!("#{i} {}\n", bold_x.repeat(repeats)));
    }
    log.push_str("ERROR: failed to solve: exit code: 2\n");
    log
}

/// Polls `done` every 20 ms until it holds, or fails after `timeout`.
async fn wait(timeout: Duration, what: &str, done: impl Fn() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() > deadline {
            bail!("timed out waiting until {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// The markdown table of runs.
pub fn failed_builds_markdown(reports: &[FailedBuildsReport]) -> String {
    let mut out = String::from(
        "| apps failing at once | log per build | pod lists / failure | Secret reads / failure | log reads / failure | limitBytes asked | largest status.message | all recorded after | operator peak RSS |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in reports {
        let rss = r.usage.as_ref().map_or("-".to_string(), |u| {
            format!("{:.1} MiB", u.peak_rss_kib as f64 / 1024.0)
        });
        out.push_str(&format!(
            "| {} | {:.1} KiB | {:.2} | {:.2} | {:.2} | {} B | {} B | {:.0} ms | {rss} |\n",
            r.apps,
            r.log_bytes as f64 / 1024.0,
            r.lists,
            r.secret_reads,
            r.log_reads,
            r.limit_bytes,
            r.max_message_bytes,
            r.recorded.max,
        ));
    }
    out
}
