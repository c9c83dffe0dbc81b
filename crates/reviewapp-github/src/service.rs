//! The running component: the HTTP server, the pull-request scheduler, the `ReviewApp` watch
//! with the reporter's scheduler, and the resync tick.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::{WatchStreamExt, watcher};
use reviewapp_api::ReviewApp;
use reviewapp_daemon::{Backoff, Readiness, Scheduler};

use crate::config::{GithubConfig, Secret};
use crate::metrics::Metrics;
use crate::port::GitHub;
use crate::reporter::{Reporter, Work};
use crate::sync::{PrKey, PullRequests};
use crate::webhook::{WebhookState, router};

/// How the component runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Address of the webhook, `/healthz`, `/readyz` and `/metrics`.
    pub listen: SocketAddr,
    /// How long shutdown waits for running handlers.
    pub shutdown_grace: Duration,
    /// Retry backoff of failed pull requests and reports.
    pub backoff: Backoff,
}

impl Options {
    /// Listens on `listen`, 10 s of shutdown grace, 1 s backoff doubling to 5 minutes.
    pub fn new(listen: SocketAddr) -> Self {
        Options {
            listen,
            shutdown_grace: Duration::from_secs(10),
            backoff: Backoff::new(Duration::from_secs(1), 2.0, Duration::from_secs(300))
                .with_jitter(0.2),
        }
    }
}

/// Why the component stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The port could not be bound.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// Why it could not be bound.
        source: std::io::Error,
    },
}

/// Runs the component until `shutdown` completes; `on_listen` gets the bound address (tests use
/// port 0).
#[allow(clippy::too_many_arguments)]
pub async fn run(
    client: kube::Client,
    github: Arc<dyn GitHub>,
    settings: Arc<GithubConfig>,
    webhook_secret: Secret,
    metrics: Arc<Metrics>,
    options: Options,
    shutdown: impl Future<Output = ()> + Send,
    on_listen: impl FnOnce(SocketAddr),
) -> Result<(), ServiceError> {
    let pulls = Arc::new(PullRequests::new(
        client.clone(),
        github.clone(),
        settings.clone(),
        metrics.clone(),
    ));
    let queue = pull_request_queue(pulls, &settings, &options, metrics.clone());
    let reporter = Arc::new(Reporter::new(
        client.clone(),
        github,
        settings.clone(),
        metrics.clone(),
    ));
    let reports = report_queue(reporter.clone(), &settings, &options, metrics.clone());
    let ready = Readiness::default();
    let state = WebhookState {
        secret: Arc::new(webhook_secret),
        settings: settings.clone(),
        metrics,
        ready: ready.clone(),
        queue: queue.clone(),
    };
    let http = serve(options.listen, state, on_listen).await?;

    let watch = watch_apps(
        client,
        reporter.clone(),
        reports.clone(),
        queue.clone(),
        ready,
    );
    let resync = resync(
        reporter,
        queue.clone(),
        Duration::from_secs(settings.resync_interval_seconds),
    );
    tokio::select! {
        _ = watch => {}
        _ = resync => {}
        _ = shutdown => tracing::info!("shutting down"),
    }
    http.stop().await;
    queue.shutdown(options.shutdown_grace).await;
    reports.shutdown(options.shutdown_grace).await;
    Ok(())
}

/// One pull request at a time each, `settings.concurrency` at once; failures are counted,
/// logged and retried with backoff.
fn pull_request_queue(
    pulls: Arc<PullRequests>,
    settings: &GithubConfig,
    options: &Options,
    metrics: Arc<Metrics>,
) -> Scheduler<PrKey> {
    Scheduler::new(settings.concurrency, options.backoff, move |name: String, key: PrKey| {
        let pulls = pulls.clone();
        async move { pulls.handle(&name, &key).await }
    })
    .with_on_error(move |name, key: &PrKey, error, attempt, retry_in| {
        metrics.failure("pull_request");
        tracing::warn!(app = name, repo = %key.repo, pr = key.number, attempt, retry_in_secs = retry_in.as_secs_f64(), error, "pull request handling failed; will retry");
    })
}

/// The reports of one app at a time each, `settings.concurrency` at once; failures are
/// counted, logged and retried, and a teardown supersedes a failing report.
fn report_queue(
    reporter: Arc<Reporter>,
    settings: &GithubConfig,
    options: &Options,
    metrics: Arc<Metrics>,
) -> Scheduler<Work> {
    Scheduler::new(
        settings.concurrency,
        options.backoff,
        move |name: String, work: Work| {
            let reporter = reporter.clone();
            async move { reporter.handle(&name, &work).await }
        },
    )
    .with_on_error(move |name, _work: &Work, error, attempt, retry_in| {
        metrics.failure("report");
        tracing::warn!(
            app = name,
            attempt,
            retry_in_secs = retry_in.as_secs_f64(),
            error,
            "reporting failed; will retry"
        );
    })
    // A teardown must not wait behind a failing report of the same app.
    .with_supersede(|newer: &Work, failed: &Work| newer == failed || matches!(newer, Work::Gone(_)))
}

/// The HTTP server (webhook, probes, metrics), running until stopped.
struct Http {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Http {
    /// Stops accepting, lets requests in flight finish, and waits for the server to end.
    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Binds `listen`, tells `on_listen` the bound address, and serves the webhook router.
async fn serve(
    listen: SocketAddr,
    state: WebhookState,
    on_listen: impl FnOnce(SocketAddr),
) -> Result<Http, ServiceError> {
    let listen_error = |source| ServiceError::Listen {
        addr: listen,
        source,
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(listen_error)?;
    let addr = listener.local_addr().map_err(listen_error)?;
    on_listen(addr);
    tracing::info!(%addr, "serving /webhooks/github, /healthz, /readyz and /metrics");
    let app = router(state);
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            })
            .await
    });
    Ok(Http { stop, task })
}

/// Watches every `ReviewApp`: each change is a report; the first complete list makes the
/// component ready and queues every managed pull request once (what changed while it was down).
async fn watch_apps(
    client: kube::Client,
    reporter: Arc<Reporter>,
    reports: Scheduler<Work>,
    queue: Scheduler<PrKey>,
    ready: Readiness,
) {
    let apps: Api<DeserializeGuard<ReviewApp>> = Api::all(client);
    let stream = watcher(apps, watcher::Config::default().page_size(100))
        .default_backoff()
        .modify(|guard: &mut DeserializeGuard<ReviewApp>| {
            if let Ok(app) = guard.0.as_mut() {
                app.metadata.managed_fields = None;
            }
        });
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(event) => event,
            Err(err) => {
                tracing::warn!(error = %err, "ReviewApp watch error; retrying");
                continue;
            }
        };
        let synced = matches!(event, watcher::Event::InitDone);
        for (name, work) in reporter.observe(event) {
            reports.submit(name, work);
        }
        if synced && !ready.get() {
            ready.set(true);
            for (name, key) in reporter.managed_pull_requests() {
                queue.submit(name, key);
            }
        }
    }
}

/// Every `interval`, queues every managed pull request (`0` turns it off).
async fn resync(reporter: Arc<Reporter>, queue: Scheduler<PrKey>, interval: Duration) {
    if interval.is_zero() {
        return futures::future::pending().await;
    }
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        for (name, key) in reporter.managed_pull_requests() {
            queue.submit(name, key);
        }
    }
}
