//! State out: watches every `ReviewApp` and shows its state on its pull request as a GitHub
//! Deployment per commit with deployment statuses ([`github_state`]).
//!
//! Driven by the watch, not by webhooks, so it is right after a restart and for apps created by
//! anything else. What was reported is recorded on the app (annotation
//! [`REPORTED_ANNOTATION`]: the commit, its deployment id and the last state), so every state is
//! posted once: a restart, a relist or a repeated watch event posts nothing new. The operator
//! ignores the annotation write (a metadata-only change). When an app goes, its deployment is
//! marked `inactive` and the pull request's environment deleted; apps the component created
//! carry its finalizer until that is done.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::runtime::watcher;
use reviewapp_api::ReviewApp;
use reviewapp_daemon::{Classified, Classifier};
use reviewapp_state::AppEvent;
use serde_json::json;

use crate::config::GithubConfig;
use crate::metrics::Metrics;
use crate::payload::RepoRef;
use crate::port::{GitHub, GitHubError, NewDeployment, NewStatus};
use crate::report::{DeploymentState, REPORTED_ANNOTATION, Reported, Target, github_state};
use crate::sync::{FINALIZER, MANAGER, PrKey, is_managed};

/// What changed about an app.
#[derive(Clone, Debug, PartialEq)]
pub enum Work {
    /// Look at the newest object.
    Changed,
    /// The app is going or gone; this is the last object seen.
    Gone(Arc<ReviewApp>),
}

/// Why a report must be retried.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// GitHub did not answer usefully.
    #[error("GitHub: {0}")]
    GitHub(#[from] GitHubError),
    /// The Kubernetes API did not.
    #[error("Kubernetes: {0}")]
    Kube(#[from] kube::Error),
}

/// Posts `target` for `repo`'s `environment`: on `known` (a deployment of that commit), else on
/// the newest deployment of the commit in the environment, else on a new one. Returns the
/// deployment's id.
pub async fn post_state(
    github: &dyn GitHub,
    repo: &RepoRef,
    environment: &str,
    target: &Target,
    known: Option<u64>,
) -> Result<u64, GitHubError> {
    let deployment = match known {
        Some(id) => id,
        None => match github
            .find_deployment(repo, &target.commit, environment)
            .await?
        {
            Some(id) => id,
            None => {
                github
                    .create_deployment(
                        repo,
                        &NewDeployment {
                            sha: target.commit.clone(),
                            environment: environment.to_string(),
                            description: "review app".into(),
                        },
                    )
                    .await?
            }
        },
    };
    github
        .create_deployment_status(
            repo,
            deployment,
            &NewStatus {
                state: target.state,
                environment_url: target.url.clone(),
                description: target.description.clone(),
            },
        )
        .await?;
    Ok(deployment)
}

/// The pull request a `ReviewApp` belongs to, from `spec.repoOwner`, `spec.repo`, `spec.pr`.
pub fn pull_request_of(app: &ReviewApp) -> Option<PrKey> {
    let owner = app.spec.repo_owner.as_deref()?;
    let repo = RepoRef::new(owner, app.spec.repo.as_deref()?).ok()?;
    let number = app.spec.pr_string()?.trim().parse().ok()?;
    Some(PrKey { repo, number })
}

/// The reporting side.
pub struct Reporter {
    apps: Api<ReviewApp>,
    github: Arc<dyn GitHub>,
    settings: Arc<GithubConfig>,
    metrics: Arc<Metrics>,
    classifier: Mutex<Classifier>,
    /// Reports posted whose annotation is not written yet (so a retry does not post again).
    posted: Mutex<HashMap<String, Reported>>,
    /// uids of apps whose teardown was reported.
    torn_down: Mutex<HashSet<String>>,
}

impl Reporter {
    /// The reporter, writing annotations and its finalizer through `client`.
    pub fn new(
        client: kube::Client,
        github: Arc<dyn GitHub>,
        settings: Arc<GithubConfig>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Reporter {
            apps: Api::all(client),
            github,
            settings,
            metrics,
            classifier: Mutex::new(Classifier::new()),
            posted: Mutex::new(HashMap::new()),
            torn_down: Mutex::new(HashSet::new()),
        }
    }

    /// The report posted for `name` whose annotation is not written yet, if any.
    fn pending(&self, name: &str) -> Option<Reported> {
        self.posted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Classifies one watch event into the work it causes, by app name.
    pub fn observe(
        &self,
        event: watcher::Event<DeserializeGuard<ReviewApp>>,
    ) -> Vec<(String, Work)> {
        let classified = self
            .classifier
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .classify(event);
        classified
            .into_iter()
            .filter_map(|item| match item {
                Classified::App {
                    name,
                    event,
                    object,
                } => Some(if event == AppEvent::Delete {
                    (name, Work::Gone(object))
                } else {
                    (name, Work::Changed)
                }),
                Classified::Malformed { name, error } => {
                    tracing::warn!(app = %name, error = %error, "a ReviewApp does not deserialize; not reported");
                    None
                }
            })
            .collect()
    }

    /// The pull requests of every app the component created (for the resync).
    pub fn managed_pull_requests(&self) -> Vec<(String, PrKey)> {
        let objects = self
            .classifier
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .objects();
        objects
            .iter()
            .filter(|app| {
                is_managed(app.metadata.labels.as_ref())
                    && app.metadata.deletion_timestamp.is_none()
            })
            .filter_map(|app| Some((app.metadata.name.clone()?, pull_request_of(app)?)))
            .collect()
    }

    /// Reports app `name`'s state, if it changed.
    pub async fn handle(&self, name: &str, work: &Work) -> Result<(), ReportError> {
        let known = self
            .classifier
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last_known(name);
        let app = match (work, known) {
            // The object a deletion was seen with can be older than our own last annotation
            // write (the deletion raced with it): the newest object of the same app says what
            // was reported.
            (Work::Gone(gone), Some(newest)) if newest.metadata.uid == gone.metadata.uid => newest,
            (Work::Gone(gone), _) => gone.clone(),
            (Work::Changed, Some(newest)) => newest,
            (Work::Changed, None) => return Ok(()),
        };
        if matches!(work, Work::Gone(_)) || app.metadata.deletion_timestamp.is_some() {
            return self.tear_down(name, &app).await;
        }
        let Some(key) = pull_request_of(&app) else {
            return Ok(());
        };
        let Some(target) = github_state(&app) else {
            return Ok(());
        };
        let pending = self.pending(name);
        let record = pending.clone().or_else(|| Reported::of(&app));
        let covered = record.as_ref().is_some_and(|r| r.covers(&target));
        let reported = match (&record, covered) {
            (Some(record), true) => record.clone(),
            _ => {
                let known = record
                    .as_ref()
                    .filter(|r| r.commit == target.commit)
                    .map(|r| r.deployment);
                let environment = self.environment(&key);
                let deployment = match post_state(
                    &*self.github,
                    &key.repo,
                    &environment,
                    &target,
                    known,
                )
                .await
                {
                    Ok(deployment) => deployment,
                    Err(err) if err.is_transient() => return Err(err.into()),
                    // Not a repository the credentials reach (an app created some other
                    // way), or an answer no retry changes: logged, tried again on the
                    // app's next change.
                    Err(err) => {
                        tracing::warn!(app = name, repo = %key.repo, error = %err, "cannot report to the pull request");
                        return Ok(());
                    }
                };
                self.metrics.status_report(target.state.as_str());
                tracing::info!(app = name, repo = %key.repo, pr = key.number, commit = %target.commit, state = target.state.as_str(), deployment, "deployment status posted");
                let reported = Reported {
                    commit: target.commit.clone(),
                    deployment,
                    state: target.state,
                };
                self.posted
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(name.to_string(), reported.clone());
                reported
            }
        };
        if Reported::of(&app).as_ref() != Some(&reported) {
            self.record(name, &reported).await?;
        }
        self.posted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        Ok(())
    }

    fn environment(&self, key: &PrKey) -> String {
        self.settings
            .environment_name(key.repo.owner(), key.repo.name(), key.number)
    }

    /// Writes the annotation (a metadata-only merge patch) and remembers the answer, so its
    /// watch event is no change.
    async fn record(&self, name: &str, reported: &Reported) -> Result<(), ReportError> {
        let patch =
            json!({"metadata": {"annotations": {REPORTED_ANNOTATION: reported.to_annotation()}}});
        let params = PatchParams {
            field_manager: Some(MANAGER.into()),
            ..PatchParams::default()
        };
        match self.apps.patch(name, &params, &Patch::Merge(&patch)).await {
            Ok(mut written) => {
                written.metadata.managed_fields = None;
                self.classifier
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .record_write(written);
                Ok(())
            }
            // Deleted meanwhile: its teardown comes next.
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    /// The app is going: its deployment becomes `inactive`, the pull request's environment is
    /// deleted, and the component's finalizer removed.
    async fn tear_down(&self, name: &str, app: &ReviewApp) -> Result<(), ReportError> {
        let uid = app.metadata.uid.clone().unwrap_or_default();
        if self
            .torn_down
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&uid)
        {
            return self.remove_finalizer(name, app).await;
        }
        if let Some(key) = pull_request_of(app) {
            let record = self.pending(name).or_else(|| Reported::of(app));
            if let Some(record) = record.filter(|r| r.state != DeploymentState::Inactive) {
                let status = NewStatus {
                    state: DeploymentState::Inactive,
                    environment_url: None,
                    description: "review app deleted".into(),
                };
                match self
                    .github
                    .create_deployment_status(&key.repo, record.deployment, &status)
                    .await
                {
                    Ok(()) => self
                        .metrics
                        .status_report(DeploymentState::Inactive.as_str()),
                    Err(err) if err.is_transient() => return Err(err.into()),
                    Err(err) => {
                        tracing::warn!(app = name, error = %err, "cannot mark the deployment inactive")
                    }
                }
            }
            match self
                .github
                .delete_environment(&key.repo, &self.environment(&key))
                .await
            {
                Ok(()) => {}
                Err(err) if err.is_transient() => return Err(err.into()),
                Err(err) => {
                    tracing::warn!(app = name, error = %err, "cannot delete the environment")
                }
            }
            tracing::info!(app = name, repo = %key.repo, pr = key.number, "deployment inactive, environment deleted");
        }
        self.posted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        self.torn_down
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(uid);
        self.remove_finalizer(name, app).await
    }

    /// Removes the component's finalizer from the current object (a JSON patch guarded by a
    /// `test` of its position), if it is still there.
    async fn remove_finalizer(&self, name: &str, app: &ReviewApp) -> Result<(), ReportError> {
        if !app.finalizers().iter().any(|f| f == FINALIZER) {
            return Ok(());
        }
        let Some(current) = self.apps.get_opt(name).await? else {
            return Ok(());
        };
        if current.metadata.uid != app.metadata.uid {
            return Ok(());
        }
        let Some(index) = current
            .metadata
            .finalizers
            .iter()
            .flatten()
            .position(|f| f == FINALIZER)
        else {
            return Ok(());
        };
        let path = format!("/metadata/finalizers/{index}");
        let patch: Patch<()> = Patch::Json(
            serde_json::from_value(json!([
                {"op": "test", "path": path, "value": FINALIZER},
                {"op": "remove", "path": path},
            ]))
            .map_err(|e| GitHubError::Invalid(format!("finalizer patch: {e}")))?,
        );
        let params = PatchParams {
            field_manager: Some(MANAGER.into()),
            ..PatchParams::default()
        };
        match self.apps.patch(name, &params, &patch).await {
            Ok(_) => Ok(()),
            // Gone already, or the list moved (the watch brings the newer object and a retry).
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(err) => Err(err.into()),
        }
    }
}
