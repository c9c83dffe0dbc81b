//! Prometheus metrics (prometheus-client, OpenMetrics text format).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use reviewapp_effects::ApiObserver;

/// Content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `event` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabel {
    /// `add`, `modify`, `reconcile` or `delete`.
    pub event: String,
}

/// `from`/`to` labels of a status change (`appStatus/buildStatus`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransitionLabels {
    /// Status before, e.g. `building/building`.
    pub from: String,
    /// Status after, e.g. `deployed/success`.
    pub to: String,
}

/// `app_status` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppStatusLabel {
    /// `building`, `deployed`, `error` or `none`.
    pub app_status: String,
}

/// `verb`/`kind`/`code` labels of an API request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabels {
    /// `apply`, `create`, `delete`, `get`, `patch`, `status`.
    pub verb: String,
    /// Object kind.
    pub kind: String,
    /// HTTP status code, or `none` when no response arrived.
    pub code: String,
}

/// Every metric the operator exports.
pub struct Metrics {
    registry: Registry,
    /// Events handled, by type.
    pub events: Family<EventLabel, Counter>,
    /// Status changes, by `appStatus/buildStatus` before and after.
    pub transitions: Family<TransitionLabels, Counter>,
    /// Time to handle one event (transition, render, API calls, status write).
    pub handle_duration: Family<EventLabel, Histogram>,
    /// Handler failures (the event is retried with backoff).
    pub handle_failures: Family<EventLabel, Counter>,
    /// Build Jobs started.
    pub builds_started: Counter,
    /// Builds observed to succeed.
    pub builds_succeeded: Counter,
    /// Builds observed to fail.
    pub builds_failed: Counter,
    /// Seconds from build start to the observed outcome.
    pub build_duration: Histogram,
    /// Apps by `appStatus`.
    pub apps: Family<AppStatusLabel, Gauge>,
    /// API requests sent by the effects layer, by verb, kind and status code.
    pub api_requests: Family<ApiLabels, Counter>,
    /// Objects not written because the desired state already held.
    pub writes_skipped: Counter,
    /// ReviewApps that do not deserialize.
    pub malformed: Counter,
    /// 1 while this replica leads (set from its write fence at every scrape), 0 otherwise.
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric under the `reviewapp` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("reviewapp");
        let events = Family::<EventLabel, Counter>::default();
        let transitions = Family::<TransitionLabels, Counter>::default();
        let handle_duration = Family::<EventLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 16))
        });
        let handle_failures = Family::<EventLabel, Counter>::default();
        let builds_started = Counter::default();
        let builds_succeeded = Counter::default();
        let builds_failed = Counter::default();
        let build_duration = Histogram::new(exponential_buckets(10.0, 2.0, 10));
        let apps = Family::<AppStatusLabel, Gauge>::default();
        let api_requests = Family::<ApiLabels, Counter>::default();
        let writes_skipped = Counter::default();
        let malformed = Counter::default();
        let leader = Gauge::default();
        registry.register(
            "events",
            "ReviewApp events handled, by type",
            events.clone(),
        );
        registry.register(
            "transitions",
            "ReviewApp status changes (appStatus/buildStatus)",
            transitions.clone(),
        );
        registry.register(
            "handle_duration_seconds",
            "Time to handle one event, API calls included",
            handle_duration.clone(),
        );
        registry.register(
            "handle_failures",
            "Event handlers that failed and will be retried",
            handle_failures.clone(),
        );
        registry.register(
            "builds_started",
            "Build Jobs started",
            builds_started.clone(),
        );
        registry.register(
            "builds_succeeded",
            "Builds observed to succeed",
            builds_succeeded.clone(),
        );
        registry.register(
            "builds_failed",
            "Builds observed to fail",
            builds_failed.clone(),
        );
        registry.register(
            "build_duration_seconds",
            "Seconds from build start to outcome",
            build_duration.clone(),
        );
        registry.register("apps", "ReviewApps by appStatus", apps.clone());
        registry.register(
            "api_requests",
            "Kubernetes API requests by verb, kind and code",
            api_requests.clone(),
        );
        registry.register(
            "writes_skipped",
            "Writes not sent because the object already matched",
            writes_skipped.clone(),
        );
        registry.register(
            "malformed",
            "ReviewApps that could not be deserialized",
            malformed.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica leads (holds the Lease within its renew deadline), 0 otherwise",
            leader.clone(),
        );
        Self {
            registry,
            events,
            transitions,
            handle_duration,
            handle_failures,
            builds_started,
            builds_succeeded,
            builds_failed,
            build_duration,
            apps,
            api_requests,
            writes_skipped,
            malformed,
            leader,
        }
    }

    /// The registry in OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The `event` label for an event.
    pub fn event_label(event: reviewapp_state::AppEvent) -> EventLabel {
        let event = match event {
            reviewapp_state::AppEvent::Add => "add",
            reviewapp_state::AppEvent::Modify => "modify",
            reviewapp_state::AppEvent::Reconcile => "reconcile",
            reviewapp_state::AppEvent::Delete => "delete",
        };
        EventLabel {
            event: event.into(),
        }
    }
}

impl ApiObserver for Metrics {
    fn request(&self, verb: &'static str, kind: &str, code: Option<u16>) {
        let code = code.map_or_else(|| "none".to_string(), |c| c.to_string());
        self.api_requests
            .get_or_create(&ApiLabels {
                verb: verb.into(),
                kind: kind.into(),
                code,
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_registered_metrics_with_prefix() {
        let metrics = Metrics::new();
        metrics
            .events
            .get_or_create(&Metrics::event_label(reviewapp_state::AppEvent::Add))
            .inc();
        metrics.request("apply", "Deployment", Some(200));
        metrics.request("delete", "Job", None);
        metrics
            .handle_duration
            .get_or_create(&Metrics::event_label(reviewapp_state::AppEvent::Add))
            .observe(0.002);
        let text = metrics.encode();
        assert!(
            text.contains("reviewapp_events_total{event=\"add\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "reviewapp_api_requests_total{verb=\"apply\",kind=\"Deployment\",code=\"200\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("code=\"none\""), "{text}");
        assert!(
            text.contains("# TYPE reviewapp_handle_duration_seconds histogram"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
