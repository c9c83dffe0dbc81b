//! `run`: the operator daemon.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use reviewapp_daemon::{ActivatorOptions, DaemonError, DaemonOptions, LeaderOptions};

/// Arguments of `run`. Every flag also reads an environment variable.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Operator configuration file.
    #[arg(long, env = "REVIEWAPP_CONFIG")]
    config: Option<PathBuf>,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "REVIEWAPP_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Address of the activator, which answers requests to sleeping apps and wakes them
    /// (served on every replica, leader or not).
    #[arg(
        long,
        env = "REVIEWAPP_ACTIVATOR_LISTEN",
        default_value = "0.0.0.0:8081"
    )]
    activator_listen: SocketAddr,
    /// ReviewApps handled at once (events of one app are always handled one at a time).
    #[arg(long, env = "REVIEWAPP_CONCURRENCY", default_value_t = 8)]
    concurrency: usize,
    /// Compete for a Lease so that only one replica writes (needed with more than one replica).
    #[arg(long, env = "REVIEWAPP_LEADER_ELECTION", default_value_t = false)]
    leader_election: bool,
    /// Name of the Lease.
    #[arg(
        long,
        env = "REVIEWAPP_LEASE_NAME",
        default_value = "review-app-operator"
    )]
    lease_name: String,
    /// Namespace of the Lease (the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "review-app-operator")]
    lease_namespace: String,
    /// This replica's identity in the Lease and in Events (the pod name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Seconds a Lease stays valid without renewal: a standby takes over no sooner.
    #[arg(long, env = "REVIEWAPP_LEASE_DURATION_SECONDS", default_value_t = 15)]
    lease_duration_seconds: u64,
    /// Seconds the leader keeps leading without renewing the Lease, then stops writing and
    /// exits; shorter than --lease-duration-seconds.
    #[arg(long, env = "REVIEWAPP_RENEW_DEADLINE_SECONDS", default_value_t = 10)]
    renew_deadline_seconds: u64,
    /// Seconds between two tries to acquire or renew the Lease; shorter than
    /// --renew-deadline-seconds.
    #[arg(long, env = "REVIEWAPP_RETRY_PERIOD_SECONDS", default_value_t = 2)]
    retry_period_seconds: u64,
    /// Seconds in-flight handlers may take to finish after SIGTERM.
    #[arg(long, env = "REVIEWAPP_SHUTDOWN_GRACE_SECONDS", default_value_t = 20)]
    shutdown_grace_seconds: u64,
    /// Log format; the level comes from RUST_LOG (default `info`).
    #[arg(long, env = "REVIEWAPP_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// Log line format.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

impl RunArgs {
    /// Checks the leader election timings (even without --leader-election, so that a bad value
    /// is found before it matters): retry < renew deadline < lease duration.
    fn check_timings(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.lease_duration_seconds >= 1,
            "--lease-duration-seconds (REVIEWAPP_LEASE_DURATION_SECONDS) must be at least 1"
        );
        anyhow::ensure!(
            self.retry_period_seconds >= 1,
            "--retry-period-seconds (REVIEWAPP_RETRY_PERIOD_SECONDS) must be at least 1"
        );
        anyhow::ensure!(
            self.renew_deadline_seconds < self.lease_duration_seconds,
            "--renew-deadline-seconds ({}) must be shorter than --lease-duration-seconds ({}): \
             the leader must stop before a standby may take the Lease over",
            self.renew_deadline_seconds,
            self.lease_duration_seconds
        );
        anyhow::ensure!(
            self.retry_period_seconds < self.renew_deadline_seconds,
            "--retry-period-seconds ({}) must be shorter than --renew-deadline-seconds ({}): \
             the leader must be able to retry a renewal before its deadline",
            self.retry_period_seconds,
            self.renew_deadline_seconds
        );
        Ok(())
    }
}

/// Runs the daemon until SIGTERM/SIGINT.
pub fn run(args: RunArgs) -> anyhow::Result<std::process::ExitCode> {
    args.check_timings()?;
    init_logging(args.log_format);
    let config = Arc::new(crate::load_config(args.config.as_deref())?);
    crate::runtime()?.block_on(async move {
        let client = crate::kube_client().await?;
        let identity = args
            .identity
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| format!("review-app-operator-{}", std::process::id()));
        let options = DaemonOptions {
            concurrency: args.concurrency.max(1),
            listen: args.listen,
            leader: args.leader_election.then(|| LeaderOptions {
                lease_duration: Duration::from_secs(args.lease_duration_seconds),
                renew_deadline: Duration::from_secs(args.renew_deadline_seconds),
                retry_period: Duration::from_secs(args.retry_period_seconds),
                ..LeaderOptions::new(&args.lease_name, &args.lease_namespace, &identity)
            }),
            shutdown_grace: Duration::from_secs(args.shutdown_grace_seconds),
            controller_name: "review-app-operator".into(),
            instance: Some(identity),
            listener: None,
            activator: Some(ActivatorOptions::new(args.activator_listen)),
        };
        tracing::info!(
            build_namespace = %config.build_namespace,
            domain = %config.domain,
            builder = ?config.builder.kind,
            reconcile_interval_seconds = config.reconcile_interval_seconds,
            "starting review-app-operator"
        );
        match reviewapp_daemon::run(client, config, options, shutdown_signal(), |_| {}).await {
            Ok(()) => Ok(std::process::ExitCode::SUCCESS),
            Err(DaemonError::LeadershipLost) => {
                tracing::error!(
                    "lost the leader lease (not renewed within the renew deadline, or taken over); \
                     exiting so that this replica restarts as a standby"
                );
                Ok(std::process::ExitCode::from(3))
            }
            Err(err) => Err(err.into()),
        }
    })
}

pub(crate) fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Resolves on SIGTERM or SIGINT.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM");
                futures_pending().await
            }
        }
    };
    #[cfg(not(unix))]
    let term = futures_pending();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT received"),
        _ = term => tracing::info!("SIGTERM received"),
    }
}

async fn futures_pending() {
    std::future::pending::<()>().await
}
