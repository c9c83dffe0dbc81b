//! Prometheus metrics of the GitHub component (prometheus-client, OpenMetrics text, prefix
//! `reviewapp_github`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// `event`/`outcome` of a webhook delivery.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    /// `X-GitHub-Event` (`pull_request`, `ping`, ...; `other` for unknown ones).
    pub event: String,
    /// `accepted`, `ignored`, `pong`, `unauthorized`, `malformed`, `too_large`.
    pub outcome: String,
}

/// `endpoint`/`outcome` of a GitHub API call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabels {
    /// `pulls`, `contents`, `deployments`, `deployment_statuses`, `environments`, `installation`.
    pub endpoint: String,
    /// The status code, `rate_limited`, `gated` or `error`.
    pub outcome: String,
}

/// `state` of a deployment status posted.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    /// `queued`, `in_progress`, `success`, `failure`, `error`, `inactive`.
    pub state: String,
}

/// `action` taken on a pull request's `ReviewApp`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabel {
    /// `created`, `updated`, `unchanged`, `deleted`, `skipped_<reason>`, `invalid_config`.
    pub action: String,
}

/// `work` of a failed run that will be retried.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkLabel {
    /// `pull_request` or `report`.
    pub work: String,
}

/// Every metric of the component.
pub struct Metrics {
    registry: Registry,
    /// Webhook deliveries by event and outcome.
    pub webhooks: Family<WebhookLabels, Counter>,
    /// GitHub API calls by endpoint and outcome.
    pub api_calls: Family<ApiLabels, Counter>,
    /// Deployment statuses posted, by state.
    pub status_reports: Family<StateLabel, Counter>,
    /// What pull-request handling did to the `ReviewApp`.
    pub pull_requests: Family<ActionLabel, Counter>,
    /// Failed runs (retried with backoff).
    pub failures: Family<WorkLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("reviewapp_github");
        let webhooks = Family::<WebhookLabels, Counter>::default();
        let api_calls = Family::<ApiLabels, Counter>::default();
        let status_reports = Family::<StateLabel, Counter>::default();
        let pull_requests = Family::<ActionLabel, Counter>::default();
        let failures = Family::<WorkLabel, Counter>::default();
        registry.register(
            "webhooks",
            "Webhook deliveries by event and outcome",
            webhooks.clone(),
        );
        registry.register(
            "api_calls",
            "GitHub API calls by endpoint and outcome",
            api_calls.clone(),
        );
        registry.register(
            "status_reports",
            "Deployment statuses posted, by state",
            status_reports.clone(),
        );
        registry.register(
            "pull_requests",
            "Pull requests handled, by what was done to the ReviewApp",
            pull_requests.clone(),
        );
        registry.register(
            "failures",
            "Failed runs, retried with backoff",
            failures.clone(),
        );
        Self {
            registry,
            webhooks,
            api_calls,
            status_reports,
            pull_requests,
            failures,
        }
    }

    /// The registry in OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts a webhook delivery.
    pub fn webhook(&self, event: &str, outcome: &str) {
        let event = match event {
            "pull_request" | "ping" => event,
            _ => "other",
        };
        self.webhooks
            .get_or_create(&WebhookLabels {
                event: event.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    /// Counts a GitHub API call.
    pub fn api_call(&self, endpoint: &str, outcome: &str) {
        self.api_calls
            .get_or_create(&ApiLabels {
                endpoint: endpoint.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    /// Counts what was done for a pull request.
    pub fn pull_request(&self, action: &str) {
        self.pull_requests
            .get_or_create(&ActionLabel {
                action: action.into(),
            })
            .inc();
    }

    /// Counts a deployment status posted.
    pub fn status_report(&self, state: &str) {
        self.status_reports
            .get_or_create(&StateLabel {
                state: state.into(),
            })
            .inc();
    }

    /// Counts a failed run.
    pub fn failure(&self, work: &str) {
        self.failures
            .get_or_create(&WorkLabel { work: work.into() })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_with_the_prefix() {
        let metrics = Metrics::new();
        metrics.webhook("pull_request", "accepted");
        metrics.webhook("x<script>", "ignored");
        metrics.api_call("pulls", "200");
        metrics.status_report("success");
        let text = metrics.encode();
        assert!(
            text.contains(
                "reviewapp_github_webhooks_total{event=\"pull_request\",outcome=\"accepted\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("event=\"other\""),
            "unknown events are not labels: {text}"
        );
        assert!(
            text.contains("reviewapp_github_api_calls_total{endpoint=\"pulls\",outcome=\"200\"} 1")
        );
        assert!(text.contains("reviewapp_github_status_reports_total{state=\"success\"} 1"));
        assert!(text.ends_with("# EOF\n"));
    }
}
