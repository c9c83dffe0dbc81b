//! The port to GitHub: the few REST calls the component makes, as an async trait. One adapter
//! talks to GitHub ([`crate::octo::OctocrabGitHub`]); tests run it against the fake API
//! ([`crate::fake`]).

use std::time::Duration;

use async_trait::async_trait;

use crate::payload::{PullRequest, RepoRef};
use crate::report::DeploymentState;

/// A failed GitHub call. Messages carry GitHub's own error text (which never holds our
/// credentials), never a token or a request header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GitHubError {
    /// The object does not exist (or the credentials may not see it).
    #[error("not found")]
    NotFound,
    /// A primary or secondary rate limit: do not call again before `retry_after`.
    #[error("rate limited for {}s", retry_after.as_secs())]
    RateLimited {
        /// How long to wait.
        retry_after: Duration,
    },
    /// Any other answer.
    #[error("HTTP {status}: {message}")]
    Status {
        /// HTTP status code.
        status: u16,
        /// GitHub's `message`.
        message: String,
    },
    /// No answer (connection, TLS, timeout) or authentication set-up.
    #[error("{0}")]
    Transport(String),
    /// An answer the component cannot read.
    #[error("unexpected answer: {0}")]
    Invalid(String),
}

impl GitHubError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            GitHubError::RateLimited { .. } | GitHubError::Transport(_) => true,
            GitHubError::Status { status, .. } => *status >= 500 || *status == 408,
            GitHubError::NotFound | GitHubError::Invalid(_) => false,
        }
    }
}

/// `POST /repos/{owner}/{repo}/deployments`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDeployment {
    /// The commit SHA (`ref`).
    pub sha: String,
    /// The environment (`pr-<number>` by default).
    pub environment: String,
    /// A short description.
    pub description: String,
}

/// `POST /repos/{owner}/{repo}/deployments/{id}/statuses`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewStatus {
    /// What the pull request shows (`in_progress`, `success`, `failure`, `inactive`).
    pub state: DeploymentState,
    /// `environment_url` (the app's URL, with `success`).
    pub environment_url: Option<String>,
    /// A short description.
    pub description: String,
}

/// What the component asks GitHub.
#[async_trait]
pub trait GitHub: Send + Sync + 'static {
    /// `GET /repos/{owner}/{repo}/pulls/{number}`: the pull request now.
    async fn pull_request(&self, repo: &RepoRef, number: u64) -> Result<PullRequest, GitHubError>;

    /// `GET /repos/{owner}/{repo}/contents/{path}?ref={git_ref}`: the file's bytes, or `None`
    /// when there is no such file at that ref.
    async fn file(
        &self,
        repo: &RepoRef,
        path: &str,
        git_ref: &str,
    ) -> Result<Option<Vec<u8>>, GitHubError>;

    /// The API's tarball URL of `sha` (`{api}/repos/{owner}/{repo}/tarball/{sha}`); no request.
    fn tarball_url(&self, repo: &RepoRef, sha: &str) -> String;

    /// `GET /repos/{owner}/{repo}/deployments?sha=&environment=`: the newest deployment of
    /// `sha` in `environment`, if any.
    async fn find_deployment(
        &self,
        repo: &RepoRef,
        sha: &str,
        environment: &str,
    ) -> Result<Option<u64>, GitHubError>;

    /// `POST /repos/{owner}/{repo}/deployments` (transient, no auto-merge, no required
    /// contexts): the new deployment's id.
    async fn create_deployment(
        &self,
        repo: &RepoRef,
        deployment: &NewDeployment,
    ) -> Result<u64, GitHubError>;

    /// `POST /repos/{owner}/{repo}/deployments/{id}/statuses`.
    async fn create_deployment_status(
        &self,
        repo: &RepoRef,
        deployment: u64,
        status: &NewStatus,
    ) -> Result<(), GitHubError>;

    /// `DELETE /repos/{owner}/{repo}/environments/{name}`; an environment already gone is done.
    async fn delete_environment(
        &self,
        repo: &RepoRef,
        environment: &str,
    ) -> Result<(), GitHubError>;
}
