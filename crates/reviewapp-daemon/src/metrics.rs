//! Prometheus metrics (prometheus-client, OpenMetrics text format).

use std::collections::BTreeMap;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry};

use reviewapp_api::{BuildStatus, ReviewAppStatus};
use reviewapp_effects::ApiObserver;
use reviewapp_state::{AppEvent, Intent};

use crate::activator::ActivatorMetrics;
use crate::status::status_label;

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
    /// Apps with a lifecycle timer armed (a next expiry or sleep).
    pub lifecycle_timers: Gauge,
    /// The activator's requests and wake requests.
    pub activator: ActivatorMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric under the `reviewapp` prefix.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("reviewapp");
        let handle_duration = Family::<EventLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 16))
        });
        let build_duration = Histogram::new(exponential_buckets(10.0, 2.0, 10));
        let leader_help =
            "1 while this replica leads (holds the Lease within its renew deadline), 0 otherwise";
        Self {
            events: register(&mut r, "events", "ReviewApp events handled, by type"),
            transitions: register(
                &mut r,
                "transitions",
                "ReviewApp status changes (appStatus/buildStatus)",
            ),
            handle_duration: register_with(
                &mut r,
                "handle_duration_seconds",
                "Time to handle one event, API calls included",
                handle_duration,
            ),
            handle_failures: register(
                &mut r,
                "handle_failures",
                "Event handlers that failed and will be retried",
            ),
            builds_started: register(&mut r, "builds_started", "Build Jobs started"),
            builds_succeeded: register(&mut r, "builds_succeeded", "Builds observed to succeed"),
            builds_failed: register(&mut r, "builds_failed", "Builds observed to fail"),
            build_duration: register_with(
                &mut r,
                "build_duration_seconds",
                "Seconds from build start to outcome",
                build_duration,
            ),
            apps: register(&mut r, "apps", "ReviewApps by appStatus"),
            api_requests: register(
                &mut r,
                "api_requests",
                "Kubernetes API requests by verb, kind and code",
            ),
            writes_skipped: register(
                &mut r,
                "writes_skipped",
                "Writes not sent because the object already matched",
            ),
            malformed: register(
                &mut r,
                "malformed",
                "ReviewApps that could not be deserialized",
            ),
            leader: register(&mut r, "leader", leader_help),
            lifecycle_timers: register(
                &mut r,
                "lifecycle_timers",
                "Apps with a lifecycle deadline timer armed",
            ),
            activator: ActivatorMetrics::register(&mut r),
            registry: r,
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
    pub fn event_label(event: AppEvent) -> EventLabel {
        let event = match event {
            AppEvent::Add => "add",
            AppEvent::Modify => "modify",
            AppEvent::Reconcile => "reconcile",
            AppEvent::Delete => "delete",
        };
        EventLabel {
            event: event.into(),
        }
    }

    /// Counts one handled event and the time it took.
    pub fn record_handled(&self, event: AppEvent, elapsed: Duration) {
        let label = Metrics::event_label(event);
        self.events.get_or_create(&label).inc();
        self.handle_duration
            .get_or_create(&label)
            .observe(elapsed.as_secs_f64());
    }

    /// Counts one failed handling (the event is retried).
    pub fn record_handle_failure(&self, event: AppEvent) {
        self.handle_failures
            .get_or_create(&Metrics::event_label(event))
            .inc();
    }

    /// Counts what a written status records: the builds its transition started (`intents`),
    /// the outcome and duration of a build that finished, and the change of
    /// `appStatus/buildStatus`.
    pub fn record_status_change(
        &self,
        before: Option<&ReviewAppStatus>,
        after: &ReviewAppStatus,
        intents: &[Intent],
    ) {
        let builds = intents
            .iter()
            .filter(|i| matches!(i, Intent::StartBuild { .. }))
            .count();
        self.builds_started.inc_by(builds as u64);
        let before_build = before.and_then(|s| s.build_status);
        if before_build == Some(BuildStatus::Building)
            && after.build_status != Some(BuildStatus::Building)
        {
            match after.build_status {
                Some(BuildStatus::Success) => self.builds_succeeded.inc(),
                Some(BuildStatus::Error) => self.builds_failed.inc(),
                _ => 0,
            };
            if let (Some(start), Some(end)) = (after.build_started_at, after.build_finished_at) {
                self.build_duration.observe((end - start).max(0) as f64);
            }
        }
        let from = status_label(before);
        let to = status_label(Some(after));
        if from != to {
            self.transitions
                .get_or_create(&TransitionLabels { from, to })
                .inc();
        }
    }

    /// Sets the `apps` gauge: the number of apps by `appStatus`.
    pub fn set_app_counts(&self, counts: BTreeMap<String, i64>) {
        for (app_status, count) in counts {
            self.apps
                .get_or_create(&AppStatusLabel { app_status })
                .set(count);
        }
    }
}

/// A new `M`, registered in `registry` as `name` (in the exposition order of the calls).
fn register<M: Metric + Clone + Default>(registry: &mut Registry, name: &str, help: &str) -> M {
    register_with(registry, name, help, M::default())
}

/// `metric`, registered in `registry` as `name`.
fn register_with<M: Metric + Clone>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    metric: M,
) -> M {
    registry.register(name, help, metric.clone());
    metric
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
