//! The activator's metrics, registered beside the operator's (prefix `reviewapp_activator_`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// `outcome` label of a request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// See [`Outcome::as_str`](super::server::Outcome::as_str).
    pub outcome: &'static str,
}

/// `result` label of a wake request (the annotation patch).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `written` or `failed`.
    pub result: &'static str,
}

/// Requests answered and wakes requested.
#[derive(Clone, Debug, Default)]
pub struct ActivatorMetrics {
    /// Requests answered, by outcome.
    pub requests: Family<OutcomeLabel, Counter>,
    /// Wake requests (annotation patches) sent, by result.
    pub wakes: Family<ResultLabel, Counter>,
}

impl ActivatorMetrics {
    /// Creates the metrics and registers them in `registry` under `activator_`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        let sub = registry.sub_registry_with_prefix("activator");
        sub.register(
            "requests",
            "Requests the activator answered, by outcome",
            metrics.requests.clone(),
        );
        sub.register(
            "wakes",
            "Wake requests (wake-requested-at annotation patches) sent, by result",
            metrics.wakes.clone(),
        );
        metrics
    }
}
