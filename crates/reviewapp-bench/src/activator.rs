//! The activator benchmark: the real operator (`review-app-operator run`, a child process) as a
//! standby replica (another holder keeps the Lease, so only its activator works) against the API
//! emulator holding N sleeping `ReviewApp`s; the driver sends HTTP requests with each app's Host
//! and times, through an in-process subscription, when the `wake-requested-at` annotation lands.
//!
//! Phases: start → the activator's view has listed every app (an unknown host gets `404`);
//! **one at a time**, the first half of the apps: request sent → waking page received, and
//! request sent → annotation written; **burst**, the other half, each host asked three times at
//! once (64 connections): until every annotation is written, and how many patches that took
//! (one per app); the standby's peak RSS with its view of N apps.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kube::CustomResourceExt;
use reviewapp_api::annotations::WAKE_REQUESTED_AT;
use reviewapp_testkit::{Emulator, Handle, Subscription};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::operator::api_error;
use crate::report::Latency;

const OPS_NS: &str = "review-app-operator";
/// Requests per host in the burst.
const BURST_REPEATS: usize = 3;
/// Connections open at once in the burst.
const BURST_CONNECTIONS: usize = 64;

/// How to run the activator benchmark.
#[derive(Clone, Debug)]
pub struct ActivatorOptions {
    /// Sleeping apps.
    pub apps: usize,
    /// The `review-app-operator` binary.
    pub operator: PathBuf,
    /// Longest wait for any phase.
    pub timeout: Duration,
}

/// What one run measured.
#[derive(Clone, Debug, Default)]
pub struct ActivatorReport {
    /// Sleeping apps.
    pub apps: usize,
    /// Operator started → its activator knows every app.
    pub view_loaded: Duration,
    /// One at a time: request sent → the whole waking page received.
    pub response: Latency,
    /// One at a time: request sent → annotation written (seen by the subscription).
    pub write: Latency,
    /// Apps asked one at a time.
    pub sequential: usize,
    /// Apps asked in the burst.
    pub burst_apps: usize,
    /// Burst: first request sent → every burst app's annotation written.
    pub burst: Duration,
    /// Burst: writes to ReviewApps (one per app expected, whatever the number of requests).
    pub burst_writes: usize,
    /// The standby's peak RSS (`VmHWM`), KiB.
    pub peak_rss_kib: Option<u64>,
}

/// Runs the benchmark at `options.apps` sleeping apps; logs go to `dir`.
pub async fn activator(options: &ActivatorOptions, dir: &Path) -> anyhow::Result<ActivatorReport> {
    let emulator = Emulator::start().await.context("starting the emulator")?;
    let handle = emulator.handle();
    install(&handle, options.apps)?;
    std::fs::create_dir_all(dir)?;
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, emulator.kubeconfig_yaml())?;
    let (health, activator) = (free_port()?, free_port()?);
    let started = Instant::now();
    let mut child = tokio::process::Command::new(&options.operator)
        .args(["run", "--leader-election", "--identity=bench-standby"])
        .arg(format!("--lease-namespace={OPS_NS}"))
        .arg(format!("--listen={health}"))
        .arg(format!("--activator-listen={activator}"))
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("activator.log"))?)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", options.operator.display()))?;

    let mut report = ActivatorReport {
        apps: options.apps,
        ..ActivatorReport::default()
    };
    while request(activator, "nobody.review.bench").await != Some(404) {
        if started.elapsed() > options.timeout {
            bail!("the activator's view did not load");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    report.view_loaded = started.elapsed();

    let mut changes = handle
        .subscribe("reviewtron.k8s.revelry.co", "v1", "reviewapps", None, None)
        .map_err(api_error)?;
    report.sequential = options.apps / 2;
    one_at_a_time(&mut report, &mut changes, activator, options.timeout).await?;
    burst(&mut report, &handle, &mut changes, activator, options).await?;
    report.peak_rss_kib = child.id().and_then(peak_rss_kib);
    child.kill().await.ok();
    Ok(report)
}

/// The cluster: the CRD, the operator's namespace with a Lease another replica holds for an
/// hour, and `apps` sleeping apps at `app-<i>.review.bench`.
fn install(handle: &Handle, apps: usize) -> anyhow::Result<()> {
    handle
        .create(serde_json::to_value(reviewapp_api::ReviewApp::crd())?)
        .map_err(api_error)?;
    handle
        .create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPS_NS}}))
        .map_err(api_error)?;
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    handle
        .create(json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "review-app-operator", "namespace": OPS_NS},
            "spec": {"holderIdentity": "bench-leader", "leaseDurationSeconds": 3600,
                     "acquireTime": now, "renewTime": now}
        }))
        .map_err(api_error)?;
    for i in 0..apps {
        handle
            .create(json!({
                "apiVersion": "reviewtron.k8s.revelry.co/v1", "kind": "ReviewApp",
                "metadata": {"name": name(i)},
                "spec": {
                    "repoOwner": "revelrylabs", "repo": "app", "branch": "main",
                    "pr": i.to_string(),
                    "commitHash": crate::SHA1,
                    "tarballUrl": "https://example.com/source.tar.gz",
                    "config": {"namespace": crate::APP_NS}
                },
                "status": {"appStatus": "sleeping", "url": format!("https://{}", host(i))}
            }))
            .map_err(api_error)?;
    }
    Ok(())
}

fn name(i: usize) -> String {
    format!("app-{i}")
}

fn host(i: usize) -> String {
    format!("app-{i}.review.bench")
}

fn free_port() -> anyhow::Result<SocketAddr> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    Ok(([127, 0, 0, 1], port).into())
}

/// One `GET /` with `Host: host`; the status code of the whole response.
async fn request(addr: SocketAddr, host: &str) -> Option<u16> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.ok()?;
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace().nth(1)?.parse().ok()
}

/// Waits for the next change that gives one of `names` the wake annotation; returns its name.
async fn next_wake(changes: &mut Subscription, names: &HashSet<String>) -> Option<String> {
    loop {
        let change = changes.next().await?;
        let name = change.object["metadata"]["name"].as_str()?;
        let annotated = change.object["metadata"]["annotations"][WAKE_REQUESTED_AT].is_string();
        if annotated && names.contains(name) {
            return Some(name.to_string());
        }
    }
}

/// The first half of the apps, one request at a time.
async fn one_at_a_time(
    report: &mut ActivatorReport,
    changes: &mut Subscription,
    activator: SocketAddr,
    timeout: Duration,
) -> anyhow::Result<()> {
    let (mut responses, mut writes) = (Vec::new(), Vec::new());
    for i in 0..report.sequential {
        let start = Instant::now();
        let code = request(activator, &host(i)).await;
        responses.push(start.elapsed());
        anyhow::ensure!(code == Some(503), "{}: got {code:?}", host(i));
        let wanted = HashSet::from([name(i)]);
        tokio::time::timeout(timeout, next_wake(changes, &wanted))
            .await
            .with_context(|| format!("no wake request for {}", name(i)))?;
        writes.push(start.elapsed());
    }
    report.response = Latency::of(responses);
    report.write = Latency::of(writes);
    Ok(())
}

/// The other half at once, each host asked [`BURST_REPEATS`] times.
async fn burst(
    report: &mut ActivatorReport,
    handle: &Handle,
    changes: &mut Subscription,
    activator: SocketAddr,
    options: &ActivatorOptions,
) -> anyhow::Result<()> {
    let apps: Vec<usize> = (report.sequential..options.apps).collect();
    report.burst_apps = apps.len();
    // Only the burst apps' writes: the log records a request after its write is visible, so
    // the last one-at-a-time write may land in the log after `before` is read.
    let paths: HashSet<String> = apps
        .iter()
        .map(|&i| format!("/apis/reviewtron.k8s.revelry.co/v1/reviewapps/{}", name(i)))
        .collect();
    let writes = || handle.write_count_where(|r| paths.contains(&r.path));
    let before = writes();
    let mut pending: HashSet<String> = apps.iter().map(|&i| name(i)).collect();
    let permits = Arc::new(tokio::sync::Semaphore::new(BURST_CONNECTIONS));
    let start = Instant::now();
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..BURST_REPEATS {
        for &i in &apps {
            let permits = permits.clone();
            requests.spawn(async move {
                let _permit = permits.acquire_owned().await.ok()?;
                request(activator, &host(i)).await
            });
        }
    }
    while !pending.is_empty() {
        let remaining = options.timeout.saturating_sub(start.elapsed());
        let name = tokio::time::timeout(remaining, next_wake(changes, &pending))
            .await
            .context("the burst's wake requests")?
            .context("the subscription ended")?;
        pending.remove(&name);
    }
    report.burst = start.elapsed();
    while let Some(answer) = requests.join_next().await {
        anyhow::ensure!(matches!(answer, Ok(Some(503))), "burst answer {answer:?}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // a late duplicate would show by now
    report.burst_writes = writes() - before;
    Ok(())
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The markdown table of `reports`, one column per N.
pub fn activator_markdown(reports: &[ActivatorReport]) -> String {
    let mut out = String::from("| metric |");
    for r in reports {
        out.push_str(&format!(" N = {} |", r.apps));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(reports.len()));
    out.push('\n');
    let mut row = |label: &str, cell: &dyn Fn(&ActivatorReport) -> String| {
        out.push_str(&format!("| {label} |"));
        for r in reports {
            out.push_str(&format!(" {} |", cell(r)));
        }
        out.push('\n');
    };
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1000.0);
    let latency = |l: &Latency| format!("{:.1} / {:.1} / {:.1}", l.p50, l.p99, l.max);
    row("start → view of every app loaded (ms)", &|r| {
        ms(r.view_loaded)
    });
    row(
        "one at a time: request → waking page: p50 / p99 / max (ms)",
        &|r| latency(&r.response),
    );
    row(
        "one at a time: request → annotation written: p50 / p99 / max (ms)",
        &|r| latency(&r.write),
    );
    row(
        "burst: apps × requests each → all annotations written (ms)",
        &|r| format!("{} × {BURST_REPEATS} → {}", r.burst_apps, ms(r.burst)),
    );
    row("burst: annotation patches sent / apps", &|r| {
        format!("{} / {}", r.burst_writes, r.burst_apps)
    });
    row("standby's peak RSS with its view (MiB)", &|r| {
        r.peak_rss_kib
            .map_or("n/a".into(), |kib| format!("{:.1}", kib as f64 / 1024.0))
    });
    out
}
