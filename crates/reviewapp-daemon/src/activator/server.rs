//! The activator's HTTP side: every request, whatever its method or path, is answered from the
//! `Host` header alone (nothing else of the request is read, nothing is proxied), and a request
//! for a sleeping app sends one wake request (an annotation patch) in the background, at most
//! once per host per [`WAKE_WINDOW`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use k8s_openapi::jiff::{SignedDuration, Timestamp, Unit};
use kube::api::{Api, Patch, PatchParams};
use reviewapp_api::annotations::WAKE_REQUESTED_AT;
use reviewapp_effects::ApiObserver;
use serde_json::json;

use super::host::request_host;
use super::limiter::{RateLimiter, WAKE_WINDOW};
use super::page::Answer;
use super::view::{AppView, View};
use crate::Metrics;
use crate::activator::metrics::{OutcomeLabel, ResultLabel};

/// Field manager of the activator's annotation patch.
pub const FIELD_MANAGER: &str = "review-app-operator-activator";

/// How long one wake request may take; the page reloads and asks again anyway.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// What became of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A sleeping app: a wake request was sent; the waking page.
    WakeRequested,
    /// A sleeping app whose wake was requested within the window (by this replica or, as its
    /// annotation shows, another one): the waking page, nothing written.
    WakePending,
    /// An app that is not asleep (its Ingress has not switched back yet): the waking page,
    /// nothing written.
    Awake,
    /// No app has this host: `404`.
    UnknownHost,
    /// No usable `Host` header: `400`.
    BadHost,
    /// The view has not loaded yet: `503`, nothing written.
    NotReady,
}

impl Outcome {
    /// The `outcome` label: `wake_requested`, `wake_pending`, `awake`, `unknown_host`,
    /// `bad_host` or `not_ready`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::WakeRequested => "wake_requested",
            Outcome::WakePending => "wake_pending",
            Outcome::Awake => "awake",
            Outcome::UnknownHost => "unknown_host",
            Outcome::BadHost => "bad_host",
            Outcome::NotReady => "not_ready",
        }
    }

    /// The answer the client gets.
    pub fn answer(self) -> Answer {
        match self {
            Outcome::WakeRequested | Outcome::WakePending | Outcome::Awake => Answer::Waking,
            Outcome::UnknownHost => Answer::NotFound,
            Outcome::BadHost => Answer::BadRequest,
            Outcome::NotReady => Answer::Starting,
        }
    }
}

/// Whether a wake-requested-at annotation written at `at` still counts as pending at `now`:
/// within `window` before `now` (or as far after it, for another replica's clock). An
/// unreadable value, or one further away, does not count: it is overwritten.
pub fn recently_requested(at: Option<&str>, now: Timestamp, window: Duration) -> bool {
    let Some(at) = at.and_then(|s| s.parse::<Timestamp>().ok()) else {
        return false;
    };
    let window = SignedDuration::try_from(window).unwrap_or(SignedDuration::MAX);
    now.duration_since(at).abs() < window
}

/// The shared state of every request.
#[derive(Clone)]
pub struct Activator {
    view: View,
    limiter: Arc<Mutex<RateLimiter>>,
    api: Api<AppView>,
    metrics: Arc<Metrics>,
}

impl Activator {
    /// An activator answering from `view` and writing through `client`.
    pub fn new(view: View, client: kube::Client, metrics: Arc<Metrics>) -> Self {
        Self {
            view,
            limiter: Arc::new(Mutex::new(RateLimiter::new(WAKE_WINDOW))),
            api: Api::all(client),
            metrics,
        }
    }

    /// The router: one handler for every method and path.
    pub fn router(self) -> Router {
        Router::new().fallback(handle).with_state(self)
    }

    /// Decides what a request with this `Host` gets, and sends the wake request if one is due.
    pub fn decide(&self, host: Option<&[u8]>) -> Outcome {
        let Ok(host) = request_host(host) else {
            return Outcome::BadHost;
        };
        if !self.view.is_ready() {
            return Outcome::NotReady;
        }
        let Some(app) = self.view.find(&host) else {
            return Outcome::UnknownHost;
        };
        if !app.is_sleeping() {
            return Outcome::Awake;
        }
        let now = Timestamp::now();
        if recently_requested(app.wake_requested_at(), now, WAKE_WINDOW) {
            return Outcome::WakePending;
        }
        let acquired = self
            .limiter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .try_acquire(&host, Instant::now());
        if !acquired {
            return Outcome::WakePending;
        }
        self.spawn_wake(app.name().to_string(), now);
        Outcome::WakeRequested
    }

    /// Writes the annotation in the background: the answer never waits for the API server.
    fn spawn_wake(&self, name: String, now: Timestamp) {
        let api = self.api.clone();
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            let result = tokio::time::timeout(WRITE_TIMEOUT, request_wake(&api, &name, now)).await;
            let code = match &result {
                Ok(Ok(())) => Some(200),
                Ok(Err(kube::Error::Api(status))) => Some(status.code),
                Ok(Err(_)) | Err(_) => None,
            };
            metrics.request("patch", "ReviewApp", code);
            let written = matches!(result, Ok(Ok(())));
            let label = ResultLabel {
                result: if written { "written" } else { "failed" },
            };
            metrics.activator.wakes.get_or_create(&label).inc();
            match result {
                Ok(Ok(())) => tracing::info!(app = %name, "activator: wake requested"),
                Ok(Err(kube::Error::Api(status))) => tracing::warn!(
                    app = %name, code = status.code, reason = %status.reason,
                    "activator: wake request refused (the next request tries again)"
                ),
                Ok(Err(err)) => tracing::warn!(
                    app = %name, error = %err,
                    "activator: wake request failed (the next request tries again)"
                ),
                Err(_) => tracing::warn!(
                    app = %name,
                    "activator: wake request timed out (the next request tries again)"
                ),
            }
        });
    }
}

/// The merge patch that asks the operator to wake `name`: [`WAKE_REQUESTED_AT`] = `now` in
/// whole seconds.
async fn request_wake(api: &Api<AppView>, name: &str, now: Timestamp) -> Result<(), kube::Error> {
    let at = now.round(Unit::Second).unwrap_or(now).to_string();
    let patch = json!({"metadata": {"annotations": {WAKE_REQUESTED_AT: at}}});
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    api.patch(name, &params, &Patch::Merge(&patch)).await?;
    Ok(())
}

async fn handle(State(activator): State<Activator>, headers: HeaderMap) -> Answer {
    let outcome = activator.decide(headers.get(header::HOST).map(|v| v.as_bytes()));
    let label = OutcomeLabel {
        outcome: outcome.as_str(),
    };
    activator
        .metrics
        .activator
        .requests
        .get_or_create(&label)
        .inc();
    outcome.answer()
}

/// Binds `addr` and serves `activator` until `shutdown` completes. Returns the bound address
/// and the server task.
pub async fn serve(
    addr: SocketAddr,
    activator: Activator,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = activator.router();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    });
    Ok((bound, task))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_recent_annotation_is_pending_and_an_old_or_odd_one_is_not() {
        let now: Timestamp = "2026-11-30T00:00:10Z".parse().unwrap();
        let pending = |at: &str| recently_requested(Some(at), now, WAKE_WINDOW);
        assert!(pending("2026-11-30T00:00:10Z"));
        assert!(pending("2026-11-30T00:00:06Z"));
        assert!(
            pending("2026-11-30T00:00:14Z"),
            "another replica's clock ahead"
        );
        assert!(!pending("2026-11-30T00:00:05Z"));
        assert!(!pending("2026-11-30T00:00:15Z"));
        assert!(
            !pending("2030-01-01T00:00:00Z"),
            "a far future value is overwritten"
        );
        assert!(!pending("yesterday"));
        assert!(!pending(""));
        assert!(!recently_requested(None, now, WAKE_WINDOW));
    }

    #[test]
    fn outcomes_answer_as_documented() {
        use axum::http::StatusCode;
        use axum::response::IntoResponse;
        let status = |o: Outcome| o.answer().into_response().status();
        for outcome in [
            Outcome::WakeRequested,
            Outcome::WakePending,
            Outcome::Awake,
            Outcome::NotReady,
        ] {
            assert_eq!(
                status(outcome),
                StatusCode::SERVICE_UNAVAILABLE,
                "{outcome:?}"
            );
        }
        assert_eq!(status(Outcome::UnknownHost), StatusCode::NOT_FOUND);
        assert_eq!(status(Outcome::BadHost), StatusCode::BAD_REQUEST);
    }
}
