//! `github`: the GitHub component (pull-request webhooks in as ReviewApps, each app's state out
//! as GitHub Deployments). A separate process from the operator; see `docs/github.md`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use reviewapp_github::{Credentials, GithubConfig, Metrics, OctocrabGitHub, Options};

/// Arguments of `github`. Every flag also reads an environment variable.
#[derive(Args, Debug)]
pub struct GithubArgs {
    /// Settings file (keys in docs/github.md); REVIEWAPP_GITHUB_* variables override it.
    #[arg(long, env = "REVIEWAPP_GITHUB_CONFIG")]
    config: Option<PathBuf>,
    /// Address of POST /webhooks/github, /healthz, /readyz and /metrics.
    #[arg(long, env = "REVIEWAPP_GITHUB_LISTEN", default_value = "0.0.0.0:8090")]
    listen: SocketAddr,
    /// Log format; the level comes from RUST_LOG (default `info`).
    #[arg(long, env = "REVIEWAPP_LOG_FORMAT", value_enum, default_value_t = crate::run_cmd::LogFormat::Text)]
    log_format: crate::run_cmd::LogFormat,
}

/// Loads the settings (defaults, then `path`, then `REVIEWAPP_GITHUB_*` variables).
pub fn load_settings(path: Option<&std::path::Path>) -> anyhow::Result<GithubConfig> {
    let text = path
        .map(|p| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display())))
        .transpose()?;
    GithubConfig::load(text.as_deref(), |var| std::env::var(var).ok())
        .context("loading the GitHub component's settings")
}

/// Runs the component until SIGTERM/SIGINT.
pub fn run(args: GithubArgs) -> anyhow::Result<std::process::ExitCode> {
    crate::run_cmd::init_logging(args.log_format);
    let settings = load_settings(args.config.as_deref())?;
    let credentials = Credentials::load(
        &settings,
        |var| std::env::var(var).ok(),
        // The error names the file, never its content.
        |path| std::fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}")),
    )
    .context("loading the GitHub credentials")?;
    crate::runtime()?.block_on(async move {
        let client = crate::kube_client().await?;
        let metrics = Arc::new(Metrics::new());
        let observed = metrics.clone();
        let github = OctocrabGitHub::new(&settings.api_url, &credentials.auth)
            .context("setting up the GitHub client")?
            .with_observer(Arc::new(move |endpoint, outcome| {
                observed.api_call(endpoint, outcome)
            }));
        tracing::info!(
            api_url = %settings.api_url,
            app = settings.uses_app(),
            build_drafts = settings.build_drafts,
            build_forks = settings.build_forks,
            "starting the GitHub component"
        );
        reviewapp_github::run(
            client,
            Arc::new(github),
            Arc::new(settings),
            credentials.webhook_secret,
            metrics,
            Options::new(args.listen),
            crate::run_cmd::shutdown_signal(),
            |_| {},
        )
        .await?;
        Ok(std::process::ExitCode::SUCCESS)
    })
}
