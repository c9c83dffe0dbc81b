//! The HTTP side: `POST /webhooks/github`, `/healthz`, `/readyz`, `/metrics`.
//!
//! A delivery is refused before its body is read when `Content-Length` is over GitHub's 25 MiB
//! cap (`413`), and while it is read when a body without one grows past it. Then it is
//! authenticated (`401` without a valid `X-Hub-Signature-256`, nothing else happens), parsed
//! (`400` for malformed JSON or a name that cannot be used, naming the field) and answered at
//! once: `ping` with `200`, a `pull_request` action that can change the app with `202` after
//! queueing its pull request, anything else with `202` and nothing done. The work itself runs
//! in the pull-request scheduler, so a slow or rate-limited GitHub never makes a delivery time
//! out.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use reviewapp_daemon::Readiness;
use reviewapp_daemon::Scheduler;

use crate::config::{GithubConfig, Secret};
use crate::metrics::Metrics;
use crate::naming::review_app_name;
use crate::payload::PullRequestEvent;
use crate::signature;
use crate::sync::PrKey;

/// GitHub's cap on a webhook payload.
pub const MAX_BODY: usize = 25 * 1024 * 1024;
/// Path of the webhook.
pub const WEBHOOK_PATH: &str = "/webhooks/github";

/// `pull_request` actions that can change what the pull request should have.
const ACTIONS: &[&str] = &[
    "opened",
    "reopened",
    "synchronize",
    "closed",
    "ready_for_review",
    "converted_to_draft",
];

/// What the router needs.
#[derive(Clone)]
pub struct WebhookState {
    /// The webhook secret.
    pub secret: Arc<Secret>,
    /// Settings (the opt-out label).
    pub settings: Arc<GithubConfig>,
    /// Metrics, also served on `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Readiness for `/readyz`.
    pub ready: Readiness,
    /// Where pull requests to look at go, keyed by `ReviewApp` name.
    pub queue: Scheduler<PrKey>,
}

/// The router with the four endpoints.
pub fn router(state: WebhookState) -> Router {
    Router::new()
        .route(WEBHOOK_PATH, post(webhook))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn readyz(State(state): State<WebhookState>) -> impl IntoResponse {
    if state.ready.get() {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "ReviewApp watch not synced yet\n",
        )
    }
}

async fn metrics(State(state): State<WebhookState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            reviewapp_daemon::metrics::CONTENT_TYPE,
        )],
        state.metrics.encode(),
    )
}

fn reply(status: StatusCode, text: impl Into<String>) -> Response {
    let mut text = text.into();
    text.push('\n');
    (status, text).into_response()
}

/// A header as text, if it is printable ASCII of at most 100 characters (for logs).
fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let value = headers.get(name)?.to_str().ok()?;
    (value.len() <= 100 && value.bytes().all(|b| b.is_ascii_graphic())).then_some(value)
}

async fn webhook(State(state): State<WebhookState>, request: Request) -> Response {
    let headers = request.headers().clone();
    let event = header_text(&headers, "x-github-event")
        .unwrap_or("")
        .to_string();
    let delivery = header_text(&headers, "x-github-delivery")
        .unwrap_or("-")
        .to_string();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BODY as u64) {
        state.metrics.webhook(&event, "too_large");
        return reply(StatusCode::PAYLOAD_TOO_LARGE, "payload over 25 MiB");
    }
    let body: Bytes = match axum::body::to_bytes(request.into_body(), MAX_BODY).await {
        Ok(body) => body,
        Err(_) => {
            state.metrics.webhook(&event, "too_large");
            return reply(StatusCode::PAYLOAD_TOO_LARGE, "payload over 25 MiB");
        }
    };
    let signature = headers.get("x-hub-signature-256").map(|v| v.as_bytes());
    if let Err(err) = signature::verify(state.secret.expose().as_bytes(), &body, signature) {
        tracing::warn!(%delivery, error = %err, "webhook delivery refused");
        state.metrics.webhook(&event, "unauthorized");
        return reply(StatusCode::UNAUTHORIZED, err.to_string());
    }
    match event.as_str() {
        "ping" => {
            state.metrics.webhook(&event, "pong");
            reply(StatusCode::OK, "pong")
        }
        "pull_request" => pull_request(&state, &body, &delivery),
        _ => {
            state.metrics.webhook(&event, "ignored");
            reply(StatusCode::ACCEPTED, "ignored: not a pull_request event")
        }
    }
}

fn pull_request(state: &WebhookState, body: &[u8], delivery: &str) -> Response {
    let event: PullRequestEvent = match serde_json::from_slice(body) {
        Ok(event) => event,
        Err(err) => {
            state.metrics.webhook("pull_request", "malformed");
            return reply(StatusCode::BAD_REQUEST, format!("malformed payload: {err}"));
        }
    };
    let repo = match event.check() {
        Ok(repo) => repo,
        Err(err) => {
            state.metrics.webhook("pull_request", "malformed");
            return reply(StatusCode::BAD_REQUEST, format!("unusable payload: {err}"));
        }
    };
    let label = state.settings.opt_out_label.trim();
    let relevant = ACTIONS.contains(&event.action.as_str())
        || (matches!(event.action.as_str(), "labeled" | "unlabeled")
            && !label.is_empty()
            && event.label.as_ref().is_some_and(|l| l.name == label));
    if !relevant {
        state.metrics.webhook("pull_request", "ignored");
        return reply(StatusCode::ACCEPTED, "ignored: this action changes nothing");
    }
    let name = review_app_name(&repo, event.number);
    tracing::info!(%delivery, action = %event.action, %repo, pr = event.number, app = %name, "pull request queued");
    state.queue.submit(
        name,
        PrKey {
            repo,
            number: event.number,
        },
    );
    state.metrics.webhook("pull_request", "accepted");
    reply(StatusCode::ACCEPTED, "accepted")
}
