//! `reviewapp-bench-activator`: the activator of a standby replica (the real binary, a child
//! process) against the API emulator with N sleeping apps: request → waking page, request →
//! `wake-requested-at` annotation written, a burst of repeated requests, and the standby's peak
//! RSS. Prints a markdown table (docs/benchmarks.md).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use reviewapp_bench::{ActivatorOptions, activator, activator_markdown};

#[derive(Parser)]
#[command(
    name = "reviewapp-bench-activator",
    about = "Benchmarks the activator against the API emulator"
)]
struct Args {
    /// Numbers of sleeping ReviewApps, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000")]
    apps: Vec<usize>,
    /// The operator binary (default: `review-app-operator` next to this one).
    #[arg(long)]
    operator: Option<PathBuf>,
    /// Longest wait for one phase, in seconds.
    #[arg(long, default_value_t = 120)]
    timeout_seconds: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let operator = match args.operator {
        Some(path) => path,
        None => std::env::current_exe()
            .context("locating this binary")?
            .with_file_name("review-app-operator"),
    };
    anyhow::ensure!(
        operator.exists(),
        "{} does not exist: build it first (cargo build --release -p review-app-operator) or pass --operator",
        operator.display()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let dir =
        std::env::temp_dir().join(format!("reviewapp-bench-activator-{}", std::process::id()));
    let mut reports = Vec::new();
    for apps in args.apps {
        let options = ActivatorOptions {
            apps,
            operator: operator.clone(),
            timeout: Duration::from_secs(args.timeout_seconds),
        };
        eprintln!("activator: {apps} sleeping apps");
        let report = runtime.block_on(activator(&options, &dir.join(apps.to_string())))?;
        reports.push(report);
    }
    print!("{}", activator_markdown(&reports));
    Ok(())
}
