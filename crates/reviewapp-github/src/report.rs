//! From a `ReviewApp` to the state of its GitHub Deployment: one pure function,
//! [`github_state`], and the record of what was last reported, kept in an annotation on the
//! `ReviewApp` so that a restart repeats nothing.

use reviewapp_api::ReviewApp;
use reviewapp_api::status::{
    AppStatus, BuildStatus, CONDITION_BUILDING, CONDITION_INVALID, ReviewAppStatus,
};
use serde::{Deserialize, Serialize};

/// Annotation holding the [`Reported`] record (JSON), written by the GitHub component.
pub const REPORTED_ANNOTATION: &str = "reviewtron.k8s.revelry.co/github-deployment";
/// Reason of the `Building` condition while a build waits in the operator's queue.
pub const REASON_QUEUED: &str = "Queued";
/// Longest description GitHub accepts on a deployment status.
const MAX_DESCRIPTION: usize = 140;

/// A GitHub deployment status state.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentState {
    /// The build waits for a free slot.
    Queued,
    /// The build runs.
    InProgress,
    /// Deployed: `environment_url` is the app's URL.
    Success,
    /// The build failed.
    Failure,
    /// The app cannot be built as configured (an invalid spec or configuration file).
    Error,
    /// The app no longer serves this deployment (deleted; later: asleep or expired).
    Inactive,
}

impl DeploymentState {
    /// The state as GitHub spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentState::Queued => "queued",
            DeploymentState::InProgress => "in_progress",
            DeploymentState::Success => "success",
            DeploymentState::Failure => "failure",
            DeploymentState::Error => "error",
            DeploymentState::Inactive => "inactive",
        }
    }
}

/// What the pull request should show for one commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The commit the deployment is for.
    pub commit: String,
    /// The deployment state to show for that commit.
    pub state: DeploymentState,
    /// `environment_url` (with `success`).
    pub url: Option<String>,
    /// A short description (the failure's reason, for example).
    pub description: String,
}

/// The state GitHub should show for a live (not deleted) `ReviewApp`, or `None` while there is
/// nothing to show yet (the operator has not started a build). The single place that maps
/// statuses: a new `appStatus` (a sleeping or expired app becomes [`DeploymentState::Inactive`])
/// is one more arm of the `match`.
pub fn github_state(app: &ReviewApp) -> Option<Target> {
    let status = app.status.as_ref()?;
    let invalid = condition_is(status, CONDITION_INVALID, "True");
    let building_reason = status
        .condition(CONDITION_BUILDING)
        .filter(|c| c.status == "True")
        .map(|c| c.reason.as_str());
    let build_commit = status.build_commit.clone();
    let message = status.message.clone().unwrap_or_default();
    let target = |commit: Option<String>, state, url: Option<String>, description: String| {
        Some(Target {
            commit: commit?.to_ascii_lowercase(),
            state,
            url,
            description: truncate(&description),
        })
    };
    match (
        invalid,
        status.app_status,
        status.build_status,
        building_reason,
    ) {
        (true, _, _, _) => target(
            app.spec.commit_hash.clone(),
            DeploymentState::Error,
            None,
            message,
        ),
        // Asleep (its Deployment at 0) or expired (torn down): the environment is inactive; the
        // next request, or a new commit, makes it active again.
        (false, Some(AppStatus::Sleeping), _, _) => target(
            status.deployed_commit.clone(),
            DeploymentState::Inactive,
            status.url.clone(),
            "sleeping: the next request wakes it".into(),
        ),
        (false, Some(AppStatus::Expired), _, _) => target(
            build_commit,
            DeploymentState::Inactive,
            None,
            "expired: a new commit brings it back".into(),
        ),
        (false, _, Some(BuildStatus::Building), Some(REASON_QUEUED)) => target(
            build_commit,
            DeploymentState::Queued,
            None,
            "waiting for a build slot".into(),
        ),
        (false, _, Some(BuildStatus::Building), _) => target(
            build_commit,
            DeploymentState::InProgress,
            None,
            "building".into(),
        ),
        (false, Some(AppStatus::Deployed), Some(BuildStatus::Success), _)
            if status.deployed_commit == status.build_commit =>
        {
            target(
                status.deployed_commit.clone(),
                DeploymentState::Success,
                status.url.clone(),
                "deployed".into(),
            )
        }
        (false, _, Some(BuildStatus::Error), _) => {
            target(build_commit, DeploymentState::Failure, None, message)
        }
        _ => None,
    }
}

fn condition_is(status: &ReviewAppStatus, type_: &str, value: &str) -> bool {
    status.condition(type_).is_some_and(|c| c.status == value)
}

fn truncate(text: &str) -> String {
    if text.chars().count() <= MAX_DESCRIPTION {
        return text.to_string();
    }
    let mut out: String = text.chars().take(MAX_DESCRIPTION - 1).collect();
    out.push('…');
    out
}

/// What the component last reported for an app: the deployment of `commit` and its state.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Reported {
    /// The commit of the deployment.
    pub commit: String,
    /// The GitHub deployment id.
    pub deployment: u64,
    /// The last state posted.
    pub state: DeploymentState,
}

impl Reported {
    /// The record in `app`'s annotation; `None` when absent or unreadable (then the next report
    /// finds the deployment again through the API instead of creating a second one).
    pub fn of(app: &ReviewApp) -> Option<Reported> {
        let text = app
            .metadata
            .annotations
            .as_ref()?
            .get(REPORTED_ANNOTATION)?;
        serde_json::from_str(text).ok()
    }

    /// The annotation value.
    pub fn to_annotation(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Whether `target` was already reported.
    pub fn covers(&self, target: &Target) -> bool {
        self.commit == target.commit && self.state == target.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    const SHA1: &str = "c8c9aa334a76677aa0be4ec0ebb08484367f952d";
    const SHA2: &str = "5ce6e4a15e2a09fe113aba79263104835bd676c2";

    fn condition(type_: &str, status: &str, reason: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: String::new(),
            last_transition_time: Time(Default::default()),
            observed_generation: None,
        }
    }

    fn app(status: ReviewAppStatus) -> ReviewApp {
        let mut app = ReviewApp::new("a", Default::default());
        app.spec.commit_hash = Some(SHA2.into());
        app.status = Some(status);
        app
    }

    fn state(status: ReviewAppStatus) -> Option<(String, DeploymentState, Option<String>)> {
        github_state(&app(status)).map(|t| (t.commit, t.state, t.url))
    }

    #[test]
    fn maps_every_status() {
        assert_eq!(github_state(&ReviewApp::new("a", Default::default())), None);
        assert_eq!(state(ReviewAppStatus::default()), None, "not picked up yet");
        let building = ReviewAppStatus {
            app_status: Some(AppStatus::Building),
            build_status: Some(BuildStatus::Building),
            build_commit: Some(SHA1.into()),
            conditions: vec![condition(CONDITION_BUILDING, "True", "BuildRunning")],
            ..Default::default()
        };
        assert_eq!(
            state(building.clone()),
            Some((SHA1.into(), DeploymentState::InProgress, None))
        );
        let queued = ReviewAppStatus {
            conditions: vec![condition(CONDITION_BUILDING, "True", REASON_QUEUED)],
            ..building.clone()
        };
        assert_eq!(
            state(queued),
            Some((SHA1.into(), DeploymentState::Queued, None))
        );
        let deployed = ReviewAppStatus {
            app_status: Some(AppStatus::Deployed),
            build_status: Some(BuildStatus::Success),
            build_commit: Some(SHA1.into()),
            deployed_commit: Some(SHA1.into()),
            url: Some("https://app.review.local".into()),
            ..Default::default()
        };
        assert_eq!(
            state(deployed.clone()),
            Some((
                SHA1.into(),
                DeploymentState::Success,
                Some("https://app.review.local".into())
            ))
        );
        let rebuilding = ReviewAppStatus {
            build_status: Some(BuildStatus::Building),
            build_commit: Some(SHA2.into()),
            ..deployed.clone()
        };
        assert_eq!(
            state(rebuilding),
            Some((SHA2.into(), DeploymentState::InProgress, None))
        );
        let failed = ReviewAppStatus {
            app_status: Some(AppStatus::Error),
            build_status: Some(BuildStatus::Error),
            build_commit: Some(SHA1.into()),
            message: Some("build Job x failed: BackoffLimitExceeded".into()),
            ..Default::default()
        };
        let target = github_state(&app(failed)).unwrap();
        assert_eq!(target.state, DeploymentState::Failure);
        assert!(target.description.contains("BackoffLimitExceeded"));
        let rebuild_failed = ReviewAppStatus {
            build_status: Some(BuildStatus::Error),
            build_commit: Some(SHA2.into()),
            ..deployed
        };
        assert_eq!(
            state(rebuild_failed),
            Some((SHA2.into(), DeploymentState::Failure, None))
        );
        let invalid = ReviewAppStatus {
            message: Some("x".repeat(500)),
            conditions: vec![condition(CONDITION_INVALID, "True", "InvalidSpec")],
            ..building
        };
        let target = github_state(&app(invalid)).unwrap();
        assert_eq!(
            (target.commit.as_str(), target.state),
            (SHA2, DeploymentState::Error)
        );
        assert_eq!(target.description.chars().count(), MAX_DESCRIPTION);
    }

    #[test]
    fn sleeping_and_expired_apps_are_inactive() {
        let deployed = ReviewAppStatus {
            app_status: Some(AppStatus::Deployed),
            build_status: Some(BuildStatus::Success),
            build_commit: Some(SHA1.into()),
            deployed_commit: Some(SHA1.into()),
            url: Some("https://app.review.local".into()),
            ..Default::default()
        };
        let sleeping = ReviewAppStatus {
            app_status: Some(AppStatus::Sleeping),
            ..deployed.clone()
        };
        assert_eq!(
            state(sleeping),
            Some((
                SHA1.into(),
                DeploymentState::Inactive,
                Some("https://app.review.local".into())
            ))
        );
        let expired = ReviewAppStatus {
            app_status: Some(AppStatus::Expired),
            deployed_commit: None,
            ..deployed.clone()
        };
        assert_eq!(
            state(expired),
            Some((SHA1.into(), DeploymentState::Inactive, None))
        );
    }

    #[test]
    fn the_record_round_trips_through_the_annotation() {
        let record = Reported {
            commit: SHA1.into(),
            deployment: 12,
            state: DeploymentState::Success,
        };
        let mut app = ReviewApp::new("a", Default::default());
        assert_eq!(Reported::of(&app), None);
        app.metadata.annotations = Some(
            [(REPORTED_ANNOTATION.to_string(), record.to_annotation())]
                .into_iter()
                .collect(),
        );
        assert_eq!(Reported::of(&app), Some(record.clone()));
        assert!(record.to_annotation().contains("\"success\""));
        let target = Target {
            commit: SHA1.into(),
            state: DeploymentState::Success,
            url: None,
            description: String::new(),
        };
        assert!(record.covers(&target));
        assert!(!record.covers(&Target {
            state: DeploymentState::Failure,
            ..target
        }));
        app.metadata.annotations = Some(
            [(REPORTED_ANNOTATION.to_string(), "{not json".to_string())]
                .into_iter()
                .collect(),
        );
        assert_eq!(Reported::of(&app), None);
    }
}
