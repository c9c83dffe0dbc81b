//! `reviewapp-bench`: runs the real operator (`review-app-operator run`, a child process)
//! against the in-process API emulator at each N and prints a markdown table. See the crate
//! documentation for the phases, and docs/benchmarks.md for the results. With `--failover`, it
//! measures leader failover instead (two replicas; the leader killed, then API outages).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use reviewapp_bench::{
    BenchOptions, FailoverOptions, failover, failover_markdown, lifecycle, lifecycle_markdown,
    markdown, request_breakdown, run,
};

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
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let operator = if args.in_process {
        None
    } else {
        Some(match args.operator {
            Some(path) => path,
            None => std::env::current_exe()
                .context("locating this binary")?
                .with_file_name("review-app-operator"),
        })
    };
    if let Some(path) = &operator {
        anyhow::ensure!(
            path.exists(),
            "{} does not exist: build it first (cargo build --release -p review-app-operator) or pass --operator",
            path.display()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    if args.failover {
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
        print!("{}", failover_markdown(&report));
        return Ok(());
    }
    if args.lifecycle {
        let mut reports = Vec::new();
        for n in args.apps {
            eprintln!("measuring sleeping and expiring apps at N = {n} ...");
            let options = BenchOptions {
                apps: n,
                operator: operator.clone(),
                idle: Duration::from_secs(args.idle_seconds),
                timeout: Duration::from_secs(args.timeout_seconds),
            };
            let report = runtime
                .block_on(lifecycle(&options))
                .with_context(|| format!("the lifecycle benchmark at N = {n}"))?;
            reports.push(report);
        }
        print!("{}", lifecycle_markdown(&reports));
        return Ok(());
    }
    let mut reports = Vec::new();
    for n in args.apps {
        eprintln!("running N = {n} ...");
        let options = BenchOptions {
            apps: n,
            operator: operator.clone(),
            idle: Duration::from_secs(args.idle_seconds),
            timeout: Duration::from_secs(args.timeout_seconds),
        };
        let report = runtime
            .block_on(run(&options))
            .with_context(|| format!("the benchmark at N = {n}"))?;
        eprint!("{}", request_breakdown(&report));
        reports.push(report);
    }
    print!("{}", markdown(&reports));
    Ok(())
}
