//! What the daemon adds to a `ReviewApp`'s status on top of the transition (the
//! `ReconcileFailed` condition of a failed attempt), and the `appStatus/buildStatus` labels of
//! its metrics, log and listener.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use reviewapp_api::ReviewAppStatus;
use serde::Serialize;

/// Condition type the daemon sets while an app's last attempt failed (removed on success).
pub const CONDITION_RECONCILE_FAILED: &str = "ReconcileFailed";

/// Drops the `ReconcileFailed` condition: an attempt that succeeds clears it.
pub(crate) fn clear_failure(status: &mut ReviewAppStatus) {
    status
        .conditions
        .retain(|c| c.type_ != CONDITION_RECONCILE_FAILED);
}

/// `status` with the `ReconcileFailed` condition saying `message` (cut to 1000 characters) at
/// `now`, for the object at `generation`.
pub(crate) fn failure_status(
    mut status: ReviewAppStatus,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> ReviewAppStatus {
    clear_failure(&mut status);
    status.conditions.push(Condition {
        type_: CONDITION_RECONCILE_FAILED.into(),
        status: "True".into(),
        reason: "ApiError".into(),
        message: message.chars().take(1000).collect(),
        observed_generation: generation,
        last_transition_time: Time(whole_seconds(now)),
    });
    status
}

/// `now` truncated to whole seconds, as every time in the status is.
pub(crate) fn whole_seconds(now: Timestamp) -> Timestamp {
    Timestamp::from_second(now.as_second()).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// `appStatus/buildStatus` (`none` for either that is not set), e.g. `deployed/building`.
pub(crate) fn status_label(status: Option<&ReviewAppStatus>) -> String {
    let build = status.and_then(|s| s.build_status);
    format!("{}/{}", app_status_label(status), word(build))
}

/// `appStatus` (`none` when it is not set).
pub(crate) fn app_status_label(status: Option<&ReviewAppStatus>) -> String {
    word(status.and_then(|s| s.app_status))
}

/// A status enum as the status spells it (`building`), or `none`.
fn word(value: Option<impl Serialize>) -> String {
    value
        .and_then(|v| serde_json::to_value(v).ok())
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_else(|| "none".into())
}

#[cfg(test)]
mod tests {
    use reviewapp_api::{AppStatus, BuildStatus};

    use super::*;

    #[test]
    fn labels_spell_the_status_as_stored() {
        assert_eq!(status_label(None), "none/none");
        let status = ReviewAppStatus {
            app_status: Some(AppStatus::Deployed),
            build_status: Some(BuildStatus::Building),
            ..ReviewAppStatus::default()
        };
        assert_eq!(status_label(Some(&status)), "deployed/building");
        assert_eq!(app_status_label(Some(&status)), "deployed");
    }

    #[test]
    fn a_failure_replaces_the_previous_one_in_whole_seconds() {
        let now = Timestamp::from_millisecond(1_700_000_000_750).unwrap_or_else(|e| panic!("{e}"));
        let first = failure_status(ReviewAppStatus::default(), "first", Some(3), now);
        let status = failure_status(first, &"x".repeat(2000), Some(4), now);
        let [failed] = status.conditions.as_slice() else {
            panic!("{:?}", status.conditions)
        };
        assert_eq!(failed.type_, CONDITION_RECONCILE_FAILED);
        assert_eq!(failed.message.len(), 1000);
        assert_eq!(failed.observed_generation, Some(4));
        assert_eq!(failed.last_transition_time.0.as_second(), 1_700_000_000);
        assert_eq!(failed.last_transition_time.0.subsec_nanosecond(), 0);
        let mut cleared = status;
        clear_failure(&mut cleared);
        assert!(cleared.conditions.is_empty());
    }
}
