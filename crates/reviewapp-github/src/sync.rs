//! Pull requests in: makes a pull request's `ReviewApp` what the pull request asks for now.
//!
//! A webhook delivery (or the periodic resync) only says *which* pull request to look at. The
//! handler then reads the pull request from the API, so a redelivered or late delivery sees the
//! same, current, pull request as a fresh one: an old `synchronize` cannot bring back an old
//! commit, and a `closed` overtaken by a `reopened` does not delete the app. Deliveries for one
//! pull request run one at a time, in order (the daemon's per-key scheduler).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use reviewapp_api::{ReviewApp, ReviewAppSpec};
use serde_json::{Value, json};

use crate::config::GithubConfig;
use crate::decide::{self, Desired, Skip};
use crate::metrics::Metrics;
use crate::payload::{PullRequest, RepoRef};
use crate::port::{GitHub, GitHubError};
use crate::report::{DeploymentState, Target};
use crate::reporter::post_state;

/// Field manager of every write of the component.
pub const MANAGER: &str = "review-app-operator-github";
/// Label marking the `ReviewApp`s the component created (and may update and delete).
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", MANAGER);
/// The component's finalizer on the `ReviewApp`s it creates: removed once the pull request's
/// deployment is marked inactive and its environment deleted.
pub const FINALIZER: &str = "reviewtron.k8s.revelry.co/github";

/// One pull request, the unit of work.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PrKey {
    /// The base repository.
    pub repo: RepoRef,
    /// The pull request's number.
    pub number: u64,
}

/// Why handling a pull request must be retried.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// GitHub did not answer usefully (rate limit, 5xx, network).
    #[error("GitHub: {0}")]
    GitHub(#[from] GitHubError),
    /// The Kubernetes API did not.
    #[error("Kubernetes: {0}")]
    Kube(#[from] kube::Error),
    /// Waiting for something to happen first.
    #[error("{0}")]
    Waiting(String),
}

/// Whether `object` carries the component's managed-by label.
pub fn is_managed(labels: Option<&std::collections::BTreeMap<String, String>>) -> bool {
    labels
        .and_then(|l| l.get(MANAGED_BY.0))
        .is_some_and(|v| v == MANAGED_BY.1)
}

/// The pull-request side.
pub struct PullRequests {
    apps: Api<DynamicObject>,
    github: Arc<dyn GitHub>,
    settings: Arc<GithubConfig>,
    metrics: Arc<Metrics>,
    /// `(app name, commit, message)` already shown as an invalid configuration.
    shown_invalid: Mutex<HashSet<(String, String, String)>>,
}

impl PullRequests {
    /// The handler, writing `ReviewApp`s through `client`.
    pub fn new(
        client: kube::Client,
        github: Arc<dyn GitHub>,
        settings: Arc<GithubConfig>,
        metrics: Arc<Metrics>,
    ) -> Self {
        PullRequests {
            apps: Api::all_with(client, &ApiResource::erase::<ReviewApp>(&())),
            github,
            settings,
            metrics,
            shown_invalid: Mutex::new(HashSet::new()),
        }
    }

    /// Converges the `ReviewApp` `name` on what pull request `key` asks for now. `Ok` also when
    /// GitHub answered something no retry will change (logged and counted).
    pub async fn handle(&self, name: &str, key: &PrKey) -> Result<(), SyncError> {
        let pr = match self.github.pull_request(&key.repo, key.number).await {
            Ok(pr) => pr,
            Err(err) if err.is_transient() => return Err(err.into()),
            Err(err) => {
                tracing::warn!(repo = %key.repo, pr = key.number, error = %err, "cannot read the pull request; nothing changed");
                self.metrics.pull_request("unreadable");
                return Ok(());
            }
        };
        if let Err(err) = pr.check() {
            tracing::warn!(repo = %key.repo, pr = key.number, error = %err, "the pull request cannot be used; nothing changed");
            self.metrics.pull_request("unreadable");
            return Ok(());
        }
        let source = match decide::config_source(&pr, &self.settings) {
            Ok(source) => source,
            Err(skip) => return self.absent(name, key, skip).await,
        };
        let file = match self
            .github
            .file(&key.repo, &self.settings.config_path, &source.git_ref)
            .await
        {
            Ok(file) => file,
            Err(err) if err.is_transient() => return Err(err.into()),
            Err(err) => {
                return self
                    .invalid(
                        name,
                        key,
                        &pr,
                        format!("{}: {err}", self.settings.config_path),
                    )
                    .await;
            }
        };
        let tarball = self.github.tarball_url(&key.repo, &pr.head.sha);
        match decide::desired(&pr, &key.repo, file.as_deref(), &self.settings, &tarball) {
            Desired::Absent(skip) => self.absent(name, key, skip).await,
            Desired::Present(spec) => self.present(name, key, spec).await,
            Desired::Invalid(message) => self.invalid(name, key, &pr, message).await,
        }
    }

    /// Makes the `ReviewApp` `name` exist with `spec`: creates it, or replaces the spec of one
    /// the component created (moving it by delete and create when its namespace changed).
    async fn present(&self, name: &str, key: &PrKey, spec: Value) -> Result<(), SyncError> {
        let Some(current) = self.apps.get_opt(name).await? else {
            return self.create(name, key, spec).await;
        };
        if current.metadata.deletion_timestamp.is_some() {
            return Err(SyncError::Waiting(format!(
                "{name} is being deleted; it is created again once it is gone"
            )));
        }
        if !is_managed(current.metadata.labels.as_ref()) {
            tracing::warn!(
                app = name,
                "a ReviewApp of that name exists and was not created by the GitHub component; left alone"
            );
            self.metrics.pull_request("not_managed");
            return Ok(());
        }
        let current_spec = current.data.get("spec").cloned().unwrap_or(Value::Null);
        let typed = |v: &Value| serde_json::from_value::<ReviewAppSpec>(v.clone()).ok();
        let (now, wanted) = (typed(&current_spec), typed(&spec));
        if now.is_some() && now == wanted {
            self.metrics.pull_request("unchanged");
            return Ok(());
        }
        let namespace = |s: &Option<ReviewAppSpec>| {
            s.as_ref()
                .and_then(|s| s.config.as_ref())
                .and_then(|c| c.namespace.clone())
        };
        if namespace(&now).is_some() && namespace(&now) != namespace(&wanted) {
            // `config.namespace` is immutable: the app moves by being deleted and created anew.
            self.apps.delete(name, &DeleteParams::default()).await?;
            self.metrics.pull_request("deleted");
            return Err(SyncError::Waiting(format!(
                "{name} moves to another namespace: deleted, created again once it is gone"
            )));
        }
        self.replace_spec(name, key, &current, spec).await
    }

    /// Creates the `ReviewApp` `name` with `spec`, labelled as the component's and held by its
    /// finalizer.
    async fn create(&self, name: &str, key: &PrKey, spec: Value) -> Result<(), SyncError> {
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "reviewtron.k8s.revelry.co/v1",
            "kind": "ReviewApp",
            "metadata": {
                "name": name,
                "labels": {MANAGED_BY.0: MANAGED_BY.1},
                "finalizers": [FINALIZER],
            },
            "spec": spec,
        }))
        .map_err(|e| SyncError::Waiting(format!("building the ReviewApp: {e}")))?;
        let params = PostParams {
            field_manager: Some(MANAGER.into()),
            ..PostParams::default()
        };
        match self.apps.create(&params, &object).await {
            Ok(_) => {}
            // Created meanwhile (another replica, an earlier attempt): look again.
            Err(kube::Error::Api(e)) if e.code == 409 => {
                return Err(SyncError::Waiting(format!("{name} appeared meanwhile")));
            }
            Err(err) => return Err(err.into()),
        }
        tracing::info!(app = name, repo = %key.repo, pr = key.number, commit = %spec["commitHash"], "ReviewApp created");
        self.metrics.pull_request("created");
        Ok(())
    }

    /// Replaces the whole spec of `current` (keys removed from the file go too), guarded by
    /// the resourceVersion read: a concurrent change makes the test fail and the run retry.
    async fn replace_spec(
        &self,
        name: &str,
        key: &PrKey,
        current: &DynamicObject,
        spec: Value,
    ) -> Result<(), SyncError> {
        let rv = current.metadata.resource_version.clone();
        let patch: Patch<()> = Patch::Json(
            serde_json::from_value(json!([
                {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
                {"op": "replace", "path": "/spec", "value": spec},
            ]))
            .map_err(|e| SyncError::Waiting(format!("building the patch: {e}")))?,
        );
        let params = PatchParams {
            field_manager: Some(MANAGER.into()),
            ..PatchParams::default()
        };
        match self.apps.patch(name, &params, &patch).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 422 || e.code == 409 => {
                return Err(SyncError::Waiting(format!("{name} changed meanwhile")));
            }
            Err(err) => return Err(err.into()),
        }
        tracing::info!(app = name, repo = %key.repo, pr = key.number, commit = %spec["commitHash"], "ReviewApp updated");
        self.metrics.pull_request("updated");
        Ok(())
    }

    async fn absent(&self, name: &str, key: &PrKey, skip: Skip) -> Result<(), SyncError> {
        let current = self.apps.get_opt(name).await?;
        match current {
            Some(app)
                if is_managed(app.metadata.labels.as_ref())
                    && app.metadata.deletion_timestamp.is_none() =>
            {
                self.apps.delete(name, &DeleteParams::default()).await?;
                tracing::info!(app = name, repo = %key.repo, pr = key.number, reason = skip.reason(), "ReviewApp deleted");
                self.metrics.pull_request("deleted");
            }
            _ => {
                tracing::debug!(app = name, repo = %key.repo, pr = key.number, reason = skip.reason(), "no review app");
                self.metrics
                    .pull_request(&format!("skipped_{}", skip.reason()));
            }
        }
        Ok(())
    }

    /// Shows an unusable configuration file on the pull request (an `error` deployment status
    /// on the head commit); the `ReviewApp` is left as it is.
    async fn invalid(
        &self,
        name: &str,
        key: &PrKey,
        pr: &PullRequest,
        message: String,
    ) -> Result<(), SyncError> {
        let sha = pr.head.sha.to_ascii_lowercase();
        let seen = (name.to_string(), sha.clone(), message.clone());
        if self
            .shown_invalid
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&seen)
        {
            return Ok(());
        }
        tracing::warn!(app = name, repo = %key.repo, pr = key.number, error = %message, "unusable review configuration");
        self.metrics.pull_request("invalid_config");
        let environment =
            self.settings
                .environment_name(key.repo.owner(), key.repo.name(), key.number);
        let target = Target {
            commit: sha,
            state: DeploymentState::Error,
            url: None,
            description: message,
        };
        match post_state(&*self.github, &key.repo, &environment, &target, None).await {
            Ok(_) => {
                self.metrics.status_report(DeploymentState::Error.as_str());
                self.shown_invalid
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(seen);
                Ok(())
            }
            Err(err) if err.is_transient() => Err(err.into()),
            Err(err) => {
                tracing::warn!(app = name, error = %err, "cannot show the error on the pull request");
                Ok(())
            }
        }
    }
}
