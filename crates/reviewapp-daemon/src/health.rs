//! `/healthz`, `/readyz` and `/metrics` on one port. `/readyz`'s body and the
//! `reviewapp_leader` gauge say whether this replica leads, read from its write fence at the
//! moment of the request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use reviewapp_effects::WriteFence;

use crate::metrics::{CONTENT_TYPE, Metrics};

/// Readiness: set once the watches have synced (or while standing by as a non-leader).
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Marks the operator ready or not.
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    /// Whether the operator is ready.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

#[derive(Clone)]
struct AppState {
    ready: Readiness,
    leader: WriteFence,
    metrics: Arc<Metrics>,
}

/// The router with the three endpoints; `leader` is this replica's write fence (open while it
/// leads).
pub fn router(ready: Readiness, leader: WriteFence, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_handler))
        .with_state(AppState {
            ready,
            leader,
            metrics,
        })
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match (state.ready.get(), state.leader.is_open()) {
        (true, true) => (StatusCode::OK, "ready (leader)\n"),
        (true, false) => (StatusCode::OK, "ready (standby)\n"),
        (false, true) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready (leader): watches not synced yet\n",
        ),
        (false, false) => (StatusCode::SERVICE_UNAVAILABLE, "not ready (standby)\n"),
    }
}

async fn metrics_handler(State(state): State<AppState>) -> impl IntoResponse {
    state.metrics.leader.set(i64::from(state.leader.is_open()));
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        state.metrics.encode(),
    )
}

/// Binds `addr` and serves until `shutdown` completes. Returns the bound address (useful with
/// port 0) and the server task.
pub async fn serve(
    addr: SocketAddr,
    ready: Readiness,
    leader: WriteFence,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = router(ready, leader, metrics);
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    });
    Ok((bound, task))
}
