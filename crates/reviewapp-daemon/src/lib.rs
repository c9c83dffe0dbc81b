//! The operator daemon: watches `ReviewApp`s, build Jobs and every child kind, classifies changes
//! into ADD / MODIFY / DELETE, adds a RECONCILE tick, and handles each app's events one at a time
//! (observe → [`transition`](reviewapp_state::transition) → [`render`](reviewapp_resources::render)
//! → [`Effects`](reviewapp_effects::Effects)). Serves `/healthz`, `/readyz` and `/metrics`, and
//! the [`activator`] that wakes sleeping apps (on every replica);
//! competes for a Lease so that only one replica writes, and stops writing by its own clock when
//! it cannot renew it ([`leader`]); shuts down gracefully.

pub mod activator;
pub mod app_index;
pub mod awake_cap;
mod backoff;
pub mod build_jobs;
pub mod classify;
mod controller;
pub mod handler;
pub mod health;
pub mod index;
pub mod leader;
mod live;
pub mod metrics;
pub mod scheduler;
mod source;
mod status;
pub mod wakeups;
pub mod watch;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kube::runtime::events::Reporter;
use reviewapp_api::OperatorConfig;
use reviewapp_effects::{Effects, WriteFence};

pub use activator::ActivatorOptions;
pub use app_index::AppIndex;
pub use backoff::Backoff;
pub use build_jobs::BuildJobs;
pub use classify::{Classified, Classifier};
pub use handler::{AppHandler, HandleError, Handled, Listener};
pub use health::Readiness;
pub use index::{Index, Shared};
pub use leader::{LeaderOptions, TimingError};
pub use metrics::Metrics;
pub use scheduler::Scheduler;

/// How the daemon runs (the operator configuration proper is [`OperatorConfig`]).
#[derive(Clone, Debug)]
pub struct DaemonOptions {
    /// Apps handled at once.
    pub concurrency: usize,
    /// Address of `/healthz`, `/readyz` and `/metrics`.
    pub listen: SocketAddr,
    /// Leader election; `None` runs as the only replica.
    pub leader: Option<LeaderOptions>,
    /// How long shutdown waits for in-flight handlers.
    pub shutdown_grace: Duration,
    /// `reportingController` of Events.
    pub controller_name: String,
    /// `reportingInstance` of Events (the pod name).
    pub instance: Option<String>,
    /// Told about every handled event (the demo's timeline, benchmarks).
    pub listener: Option<Listener>,
    /// The activator (`None`: not served), on every replica whether it leads or not.
    pub activator: Option<ActivatorOptions>,
}

/// Why the daemon stopped.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The health/metrics port could not be bound.
    #[error("serving health and metrics on {addr}: {source}")]
    Listen {
        /// The address asked for (`--listen`).
        addr: SocketAddr,
        /// Why binding it failed (in use, not permitted).
        source: std::io::Error,
    },
    /// The activator's port could not be bound.
    #[error("serving the activator on {addr}: {source}")]
    ActivatorListen {
        /// The address asked for (`--activator-listen`).
        addr: SocketAddr,
        /// Why binding it failed (in use, not permitted).
        source: std::io::Error,
    },
    /// The leader election timings cannot work.
    #[error("leader election: {0}")]
    Election(#[from] TimingError),
    /// The Lease was not renewed within the renew deadline, or another replica holds it: this
    /// replica stopped writing.
    #[error("lost the leader lease")]
    LeadershipLost,
}

/// Runs the operator until `shutdown` completes (then finishes in-flight work) or leadership is
/// lost (then returns [`DaemonError::LeadershipLost`] at once: nothing more is written, no
/// handler starts, running ones are cancelled). Returns the bound health address through
/// `on_listen` so tests can use port 0.
pub async fn run(
    client: kube::Client,
    config: Arc<OperatorConfig>,
    options: DaemonOptions,
    shutdown: impl Future<Output = ()> + Send,
    on_listen: impl FnOnce(SocketAddr),
) -> Result<(), DaemonError> {
    if let Some(leader) = &options.leader {
        leader.validate()?;
    }
    let metrics = Arc::new(Metrics::new());
    let ready = Readiness::default();
    // Without leader election this replica is the only writer; with it, it writes only while
    // the election keeps the fence open.
    let fence = match options.leader {
        Some(_) => WriteFence::standby(),
        None => WriteFence::open(),
    };
    let (stop_health, health_stopped) = tokio::sync::watch::channel(false);
    let mut health_stopped = health_stopped;
    let (addr, health) = health::serve(
        options.listen,
        ready.clone(),
        fence.clone(),
        metrics.clone(),
        async move {
            let _ = health_stopped.wait_for(|stop| *stop).await;
        },
    )
    .await
    .map_err(|source| DaemonError::Listen {
        addr: options.listen,
        source,
    })?;
    on_listen(addr);
    tracing::info!(%addr, "serving /healthz, /readyz and /metrics");
    let activator = match &options.activator {
        Some(activator) => {
            let mut stopped = stop_health.subscribe();
            let started =
                activator::start(activator, client.clone(), metrics.clone(), async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .await;
            match started {
                Ok((addr, task)) => {
                    tracing::info!(%addr, "serving the activator");
                    Some(task)
                }
                Err(source) => {
                    let _ = stop_health.send(true);
                    let _ = health.await;
                    return Err(DaemonError::ActivatorListen {
                        addr: activator.listen,
                        source,
                    });
                }
            }
        }
        None => None,
    };
    futures::pin_mut!(shutdown);

    let result = run_leader(
        client,
        config,
        &options,
        metrics,
        ready,
        fence,
        &mut shutdown,
    )
    .await;

    let _ = stop_health.send(true);
    let _ = health.await;
    if let Some(activator) = activator {
        let _ = activator.await;
    }
    result
}

async fn run_leader(
    client: kube::Client,
    config: Arc<OperatorConfig>,
    options: &DaemonOptions,
    metrics: Arc<Metrics>,
    ready: Readiness,
    fence: WriteFence,
    shutdown: &mut (impl Future<Output = ()> + Unpin),
) -> Result<(), DaemonError> {
    let election = match &options.leader {
        Some(leader) => {
            let mut election =
                leader::Election::start(client.clone(), leader.clone(), fence.clone())?;
            ready.set(true); // a standby is healthy and ready
            tracing::info!(lease = %leader.lease_name, identity = %leader.identity, "waiting to become the leader");
            tokio::select! {
                _ = &mut *shutdown => {
                    election.release().await;
                    return Ok(());
                }
                acquired = election.acquired() => {
                    if !acquired {
                        return Err(DaemonError::LeadershipLost);
                    }
                }
            }
            ready.set(false);
            tracing::info!("became the leader");
            Some(election)
        }
        None => None,
    };

    let reporter = Reporter {
        controller: options.controller_name.clone(),
        instance: options.instance.clone(),
    };
    let effects = Effects::new(client.clone(), reporter, metrics.clone()).with_fence(fence.clone());
    let controller = controller::Controller::new(
        config,
        effects,
        metrics,
        options.concurrency,
        options.listener.clone(),
    );
    let scheduler = controller.scheduler();
    // Dropping `controller.run` ends every watch and the tick.
    let result = tokio::select! {
        () = controller.run(client, ready.clone()) => Ok(()),
        () = &mut *shutdown => {
            tracing::info!("shutting down: finishing in-flight handlers");
            Ok(())
        }
        () = fence.lapsed() => Err(DaemonError::LeadershipLost),
    };
    ready.set(false);
    match result {
        Ok(()) => {
            scheduler.shutdown(options.shutdown_grace).await;
            if let Some(election) = election {
                election.release().await;
            }
        }
        Err(_) => {
            // Nothing may be written any more: start nothing, cancel what runs (their requests
            // are fenced already), and give nothing back (the Lease is not ours to release).
            drop(election);
            scheduler.shutdown(Duration::ZERO).await;
        }
    }
    result
}
