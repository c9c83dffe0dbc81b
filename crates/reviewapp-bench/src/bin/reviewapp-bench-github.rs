//! `reviewapp-bench-github`: the webhook path (delivery → ReviewApp → build Job) with the GitHub
//! component and the operator in this process against the API emulator and the fake GitHub API;
//! prints a markdown table (docs/benchmarks.md).

use std::time::Duration;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "reviewapp-bench-github",
    about = "Benchmarks the webhook path: delivery → ReviewApp → build Job"
)]
struct Args {
    /// Pull requests to deliver, one at a time.
    #[arg(long, default_value_t = 200)]
    pull_requests: usize,
    /// Longest wait for one step, in seconds.
    #[arg(long, default_value_t = 30)]
    timeout_seconds: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(reviewapp_bench::github::webhook_to_build(
        args.pull_requests,
        Duration::from_secs(args.timeout_seconds),
    ))?;
    print!("{}", reviewapp_bench::github::markdown(&report));
    Ok(())
}
