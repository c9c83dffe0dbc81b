//! `ReviewApp` status: the original operator's fields plus Kubernetes-style conditions.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition type: the spec failed validation (`True`) or passed it (`False`).
pub const CONDITION_INVALID: &str = "Invalid";
/// Condition type: a build Job is running (`True`) or not (`False`).
pub const CONDITION_BUILDING: &str = "Building";
/// Condition type: a successfully built image is deployed at one replica.
pub const CONDITION_DEPLOYED: &str = "Deployed";
/// Condition type: `spec.config` has keys the operator does not know (`True`, naming them), which
/// it keeps and ignores; `False` when every key is known.
pub const CONDITION_IGNORED_KEYS: &str = "IgnoredKeys";
/// Condition type: a Secret the app's environment loads (`envSecret`, `env.secrets`) does not
/// exist in its namespace (`True`, naming it); the pods start once it exists.
pub const CONDITION_MISSING_SECRETS: &str = "MissingSecrets";
/// Condition type: the operator's last attempt to handle the app failed (`True`, with the error);
/// the next attempt that succeeds removes it.
pub const CONDITION_RECONCILE_FAILED: &str = "ReconcileFailed";

/// Observed state of a `ReviewApp`. Written only by the operator, through the status subresource.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReviewAppStatus {
    /// See [`AppStatus`] (its doc is also the CRD's description of this field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_status: Option<AppStatus>,
    /// Status of the latest build: `building`, `success` or `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_status: Option<BuildStatus>,
    /// When the latest build Job was started (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_started_at: Option<i64>,
    /// When the latest build finished (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_finished_at: Option<i64>,
    /// Name of the latest build Job (in the build namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_job_name: Option<String>,
    /// Commit the latest build is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_commit: Option<String>,
    /// Image the latest build pushes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Commit currently deployed (its build succeeded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed_commit: Option<String>,
    /// Image currently deployed (built from `deployedCommit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed_image: Option<String>,
    /// Where the review app is served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Human-readable reason for the current state (validation or build failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `metadata.generation` the status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When the app last had a new commit, a deploy or a wake (its creation before any): the
    /// start of the idle time after which it expires (`expireAfter`) and goes to sleep
    /// (`sleepAfter`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_active_at: Option<Time>,
    /// When the app expires (its children are torn down, the `ReviewApp` stays); absent when it
    /// never does. After expiry: when it expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
    /// When the app goes to sleep if nobody uses it (or, while it sleeps, when it did); absent
    /// when it never does by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sleeps_at: Option<Time>,
    /// When the app last went to sleep. A `wake-requested-at` annotation newer than this wakes
    /// it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slept_at: Option<Time>,
    /// Set while a woken app's Deployment is not available yet: its Ingress still sends requests
    /// to the activator (which answers a "waking up" page), and switches back once it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waking_since: Option<Time>,
    /// The lifecycle annotations (`keep`, `expires-at`, `sleep`, `wake-requested-at`) as they were
    /// when this status was computed: a change to one is noticed by comparing with it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lifecycle_annotations: BTreeMap<String, String>,
    /// `Invalid`, `Building`, `Deployed`, `IgnoredKeys`, `MissingSecrets` and `ReconcileFailed`
    /// conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// What the app is doing: `building` (nothing deployed yet, a build running), `deployed` (a
/// successfully built image serves, even while a newer commit builds or after a newer build
/// failed), `error` (no build has succeeded and the latest one failed, so nothing serves),
/// `sleeping` (scaled to 0; a request wakes it) or `expired` (torn down; a new commit brings it
/// back).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AppStatus {
    /// Nothing is deployed yet and the latest build has not finished.
    Building,
    /// A build succeeded and its image is deployed (whatever later builds do).
    Deployed,
    /// Nothing is deployed and the latest build failed. Once any build has succeeded the app
    /// stays [`AppStatus::Deployed`]: a later failure shows in `buildStatus` only.
    Error,
    /// Deployed, then put to sleep: its Deployment is scaled to 0 (its database halted where the
    /// backend allows it) and its Ingress sends requests to the activator, which wakes it.
    Sleeping,
    /// Expired: everything the app ran is torn down and the `ReviewApp` stays. A new commit (or
    /// clearing the expiry) brings it back.
    Expired,
}

impl AppStatus {
    /// The value as written in the status: `building`, `deployed`, `error`, `sleeping` or
    /// `expired`.
    pub fn as_str(self) -> &'static str {
        match self {
            AppStatus::Building => "building",
            AppStatus::Deployed => "deployed",
            AppStatus::Error => "error",
            AppStatus::Sleeping => "sleeping",
            AppStatus::Expired => "expired",
        }
    }
}

/// Status of the latest build: `building`, `success` or `error`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BuildStatus {
    /// The build Job is running.
    Building,
    /// The build Job succeeded.
    Success,
    /// The build Job failed.
    Error,
}

impl BuildStatus {
    /// The value as written in the status: `building`, `success` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            BuildStatus::Building => "building",
            BuildStatus::Success => "success",
            BuildStatus::Error => "error",
        }
    }
}

impl ReviewAppStatus {
    /// The condition of type `type_`, if set.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_str_is_the_serialised_value() {
        for status in [
            AppStatus::Building,
            AppStatus::Deployed,
            AppStatus::Error,
            AppStatus::Sleeping,
            AppStatus::Expired,
        ] {
            let json = serde_json::to_value(status).unwrap();
            assert_eq!(json.as_str(), Some(status.as_str()));
        }
        for status in [
            BuildStatus::Building,
            BuildStatus::Success,
            BuildStatus::Error,
        ] {
            let json = serde_json::to_value(status).unwrap();
            assert_eq!(json.as_str(), Some(status.as_str()));
        }
    }
}
