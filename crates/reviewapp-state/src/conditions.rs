//! Kubernetes-style conditions: `lastTransitionTime` moves only when `status` flips.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use reviewapp_api::ReviewAppStatus;
use reviewapp_api::status::CONDITION_RECONCILE_FAILED;

use crate::time::whole_seconds;

/// Longest `ReconcileFailed` message kept (characters).
const MAX_FAILURE_MESSAGE: usize = 1000;

/// Sets condition `type_`, keeping its `lastTransitionTime` when the status does not change.
pub(crate) fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: Timestamp,
) {
    let status = if status { "True" } else { "False" }.to_string();
    let new = |last_transition_time| Condition {
        type_: type_.to_string(),
        status: status.clone(),
        reason: reason.to_string(),
        message: message.clone(),
        observed_generation: generation,
        last_transition_time,
    };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) if existing.status == status => {
            *existing = new(existing.last_transition_time.clone());
        }
        Some(existing) => *existing = new(Time(now)),
        None => conditions.push(new(Time(now))),
    }
}

/// Whether condition `type_` is `True`.
pub(crate) fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// Records on `status` that handling the app failed with `message` (which must hold no Secret
/// value): a `ReconcileFailed` condition, `True`, reason `ApiError`, the message cut to 1000
/// characters, observed at `generation` at `now` (whole seconds). It replaces an earlier one and
/// comes last.
pub fn set_reconcile_failed(
    status: &mut ReviewAppStatus,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) {
    clear_reconcile_failed(status);
    status.conditions.push(Condition {
        type_: CONDITION_RECONCILE_FAILED.into(),
        status: "True".into(),
        reason: "ApiError".into(),
        message: message.chars().take(MAX_FAILURE_MESSAGE).collect(),
        observed_generation: generation,
        last_transition_time: Time(whole_seconds(now)),
    });
}

/// Removes the `ReconcileFailed` condition: the status an attempt writes once it succeeded.
pub fn clear_reconcile_failed(status: &mut ReviewAppStatus) {
    status
        .conditions
        .retain(|c| c.type_ != CONDITION_RECONCILE_FAILED);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_replaces_the_last_one_and_is_cleared() {
        let mut status = ReviewAppStatus::default();
        let now = Timestamp::new(1_700_000_000, 500_000_000).unwrap();
        set(
            &mut status.conditions,
            "Deployed",
            true,
            "Deployed",
            "serving".into(),
            Some(1),
            now,
        );
        set_reconcile_failed(&mut status, "first", Some(1), now);
        set_reconcile_failed(&mut status, &"x".repeat(1500), Some(2), now);
        let types: Vec<&str> = status.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["Deployed", CONDITION_RECONCILE_FAILED]);
        let failed = status.condition(CONDITION_RECONCILE_FAILED).unwrap();
        assert_eq!(
            (failed.status.as_str(), failed.reason.as_str()),
            ("True", "ApiError")
        );
        assert_eq!(failed.message.chars().count(), 1000);
        assert_eq!(failed.observed_generation, Some(2));
        assert_eq!(failed.last_transition_time.0.as_second(), 1_700_000_000);
        assert_eq!(failed.last_transition_time.0.subsec_nanosecond(), 0);
        clear_reconcile_failed(&mut status);
        assert_eq!(status.conditions.len(), 1);
    }
}
