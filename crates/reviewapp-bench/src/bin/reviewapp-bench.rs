//! `reviewapp-bench`: runs the real operator (`review-app-operator run`, a child process)
//! against the in-process API emulator at each N and prints a markdown table. See the crate
//! documentation for the phases, and docs/benchmarks.md for the results. With `--failover`, it
//! measures leader failover instead (two replicas; the leader killed, then API outages); with
//! `--queue`, the build cap (N apps created at once, without a cap and with `--build-cap`); with
//! `--lifecycle`, sleeping and expiring apps; with `--failed-build-log-kib`, failed builds' log
//! reads.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use reviewapp_bench::{
    BenchOptions, FailedBuildsOptions, FailoverOptions, QueueOptions, failed_builds,
    failed_builds_markdown, failover, failover_markdown, lifecycle, lifecycle_markdown, markdown,
    queue, queue_markdown, request_breakdown, run,
};
use tokio::runtime::Runtime;

#[derive(Parser)]
#[command(
    name = "reviewapp-bench",
    about = "Benchmarks the operator against the API emulator"
)]
struct Args {
    /// Numbers of ReviewApps, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000")]
    apps: Vec<usize>,
    /// The operator binary (default: `review-app-operator` next to this one).
    #[arg(long)]
    operator: Option<PathBuf>,
    /// Run the daemon in this process instead (no RSS/CPU figures).
    #[arg(long)]
    in_process: bool,
    /// Seconds of the idle window (the operator ticks every second in it).
    #[arg(long, default_value_t = 10)]
    idle_seconds: u64,
    /// Longest wait for one phase to converge, in seconds.
    #[arg(long, default_value_t = 300)]
    timeout_seconds: u64,
    /// Measure leader failover instead (the first of --apps apps, two replicas).
    #[arg(long)]
    failover: bool,
    /// Measure sleeping and expiring apps instead (sleep, idle, wake by request, expiry).
    #[arg(long)]
    lifecycle: bool,
    /// Measure failed builds' log reads instead: the first of --apps apps fail at once, with
    /// each of these log sizes in KiB (comma-separated).
    #[arg(long, value_delimiter = ',')]
    failed_build_log_kib: Vec<usize>,
    /// Failover: rounds of each kind (kill, outage).
    #[arg(long, default_value_t = 3)]
    failover_runs: usize,
    /// Failover: seconds each API outage lasts (longer than the Lease).
    #[arg(long, default_value_t = 20)]
    outage_seconds: u64,
    /// Failover: the replicas' --lease-duration-seconds.
    #[arg(long, default_value_t = 15)]
    lease_duration_seconds: u64,
    /// Failover: the replicas' --renew-deadline-seconds.
    #[arg(long, default_value_t = 10)]
    renew_deadline_seconds: u64,
    /// Failover: the replicas' --retry-period-seconds.
    #[arg(long, default_value_t = 2)]
    retry_period_seconds: u64,
    /// Measure the build queue instead: the first of --apps apps created at once, without a
    /// cap and with --build-cap.
    #[arg(long)]
    queue: bool,
    /// Queue: `build.maxConcurrent`.
    #[arg(long, default_value_t = 10)]
    build_cap: u32,
    /// Queue: how long each build runs, in milliseconds.
    #[arg(long, default_value_t = 50)]
    build_ms: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let operator = operator_binary(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let table = if !args.failed_build_log_kib.is_empty() {
        failed_builds_table(&args, operator, &runtime)?
    } else if args.failover {
        failover_table(&args, operator, &runtime)?
    } else if args.lifecycle {
        lifecycle_table(&args, operator, &runtime)?
    } else if args.queue {
        queue_table(&args, operator, &runtime)?
    } else {
        lifecycle_phases_table(&args, operator, &runtime)?
    };
    print!("{table}");
    Ok(())
}

/// The operator binary to run as a child process, or `None` with `--in-process`.
fn operator_binary(args: &Args) -> anyhow::Result<Option<PathBuf>> {
    if args.in_process {
        return Ok(None);
    }
    let path = match &args.operator {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .context("locating this binary")?
            .with_file_name("review-app-operator"),
    };
    anyhow::ensure!(
        path.exists(),
        "{} does not exist: build it first (cargo build --release -p review-app-operator) or pass --operator",
        path.display()
    );
    Ok(Some(path))
}

/// `--failed-build-log-kib`: failed builds' log reads, one run per log size.
fn failed_builds_table(
    args: &Args,
    operator: Option<PathBuf>,
    runtime: &Runtime,
) -> anyhow::Result<String> {
    let mut reports = Vec::new();
    for kib in &args.failed_build_log_kib {
        let options = FailedBuildsOptions {
            apps: args.apps.first().copied().unwrap_or(100),
            log_bytes: kib * 1024,
            operator: operator.clone(),
            timeout: Duration::from_secs(args.timeout_seconds),
        };
        eprintln!(
            "measuring {} failed builds with {kib} KiB logs ...",
            options.apps
        );
        reports.push(
            runtime
                .block_on(failed_builds(&options))
                .context("the failed-builds benchmark")?,
        );
    }
    Ok(failed_builds_markdown(&reports))
}

/// `--failover`: leader failover with two replicas.
fn failover_table(
    args: &Args,
    operator: Option<PathBuf>,
    runtime: &Runtime,
) -> anyhow::Result<String> {
    let options = FailoverOptions {
        apps: args.apps.first().copied().unwrap_or(10),
        operator,
        lease_duration: Duration::from_secs(args.lease_duration_seconds),
        renew_deadline: Duration::from_secs(args.renew_deadline_seconds),
        retry_period: Duration::from_secs(args.retry_period_seconds),
        outage: Duration::from_secs(args.outage_seconds),
        runs: args.failover_runs.max(1),
        timeout: Duration::from_secs(args.timeout_seconds),
    };
    eprintln!("measuring failover ...");
    let report = runtime
        .block_on(failover(&options))
        .context("the failover benchmark")?;
    Ok(failover_markdown(&report))
}

/// `--lifecycle`: sleeping and expiring apps at each N.
fn lifecycle_table(
    args: &Args,
    operator: Option<PathBuf>,
    runtime: &Runtime,
) -> anyhow::Result<String> {
    let reports = at_each_n(
        args,
        operator,
        runtime,
        "the lifecycle benchmark",
        lifecycle,
    )?;
    Ok(lifecycle_markdown(&reports))
}

/// `--queue`: N apps created at once, without a cap and with `--build-cap`.
fn queue_table(
    args: &Args,
    operator: Option<PathBuf>,
    runtime: &Runtime,
) -> anyhow::Result<String> {
    let options = QueueOptions {
        apps: args.apps.first().copied().unwrap_or(1000),
        cap: args.build_cap,
        build: Duration::from_millis(args.build_ms),
        operator,
        timeout: Duration::from_secs(args.timeout_seconds),
    };
    let report = runtime
        .block_on(queue(&options))
        .context("the queue benchmark")?;
    Ok(queue_markdown(&report))
}

/// The default: the lifecycle phases (create, deploy, push, redeploy, restart, idle, delete) at
/// each N.
fn lifecycle_phases_table(
    args: &Args,
    operator: Option<PathBuf>,
    runtime: &Runtime,
) -> anyhow::Result<String> {
    let reports = at_each_n(args, operator, runtime, "the benchmark", run)?;
    for report in &reports {
        eprint!("{}", request_breakdown(report));
    }
    Ok(markdown(&reports))
}

/// Runs `bench` at each N of `--apps`, one after the other.
fn at_each_n<R>(
    args: &Args,
    operator: Option<PathBuf>,
    runtime: &Runtime,
    what: &str,
    bench: impl AsyncFn(&BenchOptions) -> anyhow::Result<R>,
) -> anyhow::Result<Vec<R>> {
    let mut reports = Vec::new();
    for &n in &args.apps {
        eprintln!("running {what} at N = {n} ...");
        let options = bench_options(args, n, operator.clone());
        let report = runtime
            .block_on(bench(&options))
            .with_context(|| format!("{what} at N = {n}"))?;
        reports.push(report);
    }
    Ok(reports)
}

fn bench_options(args: &Args, apps: usize, operator: Option<PathBuf>) -> BenchOptions {
    BenchOptions {
        apps,
        operator,
        idle: Duration::from_secs(args.idle_seconds),
        timeout: Duration::from_secs(args.timeout_seconds),
    }
}
