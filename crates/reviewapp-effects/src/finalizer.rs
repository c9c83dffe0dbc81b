//! The operator's finalizers, added and removed with JSON patches guarded by a `test` operation
//! (kube-runtime's finalizer helper does the same), so that a concurrent change to the
//! finalizer list is never overwritten: the teardown finalizer on the `ReviewApp`, and the
//! build-outcome finalizer every build Job is created with, released here.

use kube::ResourceExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use reviewapp_api::{BUILD_FINALIZER, FIELD_MANAGER, FINALIZER, ReviewApp};
use reviewapp_resources::ChildRef;
use serde_json::{Value, json};
use tracing::debug;

use crate::LiveIndex;
use crate::api::{child_api, review_apps};
use crate::error::{EffectsError, ObjectId, Verb, from_kube, serde_message};
use crate::executor::{Effects, Outcome};
use crate::retry::has_status;

/// The JSON patch adding [`FINALIZER`] to `finalizers`, or `None` when it is already there.
pub(crate) fn add_patch(finalizers: &[String]) -> Option<Value> {
    if finalizers.iter().any(|f| f == FINALIZER) {
        return None;
    }
    Some(if finalizers.is_empty() {
        // The server omits an empty list, so "absent" is tested as null.
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
        ])
    } else {
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": finalizers},
            {"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER},
        ])
    })
}

/// The JSON patch removing `finalizer` from `finalizers`, or `None` when it is not there.
pub(crate) fn remove_patch(finalizers: &[String], finalizer: &str) -> Option<Value> {
    let index = finalizers.iter().position(|f| f == finalizer)?;
    let path = format!("/metadata/finalizers/{index}");
    Some(json!([
        {"op": "test", "path": path, "value": finalizer},
        {"op": "remove", "path": path},
    ]))
}

impl Effects {
    /// Adds the finalizer unless `app` already has it.
    pub(crate) async fn add_finalizer(&self, app: &ReviewApp) -> Result<Outcome, EffectsError> {
        let Some(patch) = add_patch(app.finalizers()) else {
            debug!(app = %app.name_any(), skipped = true, "add finalizer");
            return Ok(Outcome::Skipped);
        };
        self.patch_finalizers(app, patch).await?;
        debug!(app = %app.name_any(), skipped = false, "add finalizer");
        Ok(Outcome::Wrote)
    }

    /// Removes the finalizer if `app` has it; an app already gone counts as done.
    pub(crate) async fn remove_finalizer(&self, app: &ReviewApp) -> Result<Outcome, EffectsError> {
        let Some(patch) = remove_patch(app.finalizers(), FINALIZER) else {
            debug!(app = %app.name_any(), skipped = true, "remove finalizer");
            return Ok(Outcome::Skipped);
        };
        match self.patch_finalizers(app, patch).await {
            Err(EffectsError::Api { status: 404, .. }) | Ok(()) => {}
            Err(err) => return Err(err),
        }
        debug!(app = %app.name_any(), skipped = false, "remove finalizer");
        Ok(Outcome::Wrote)
    }

    /// Sends a finalizer JSON patch; a failed `test` (422) is a [`EffectsError::Conflict`].
    async fn patch_finalizers(&self, app: &ReviewApp, patch: Value) -> Result<(), EffectsError> {
        let name = app.name_any();
        let object = ObjectId::cluster("ReviewApp", &name);
        self.json_patch(&review_apps(&self.client), &name, object, patch)
            .await
    }

    /// Removes [`BUILD_FINALIZER`] from the build Job `job`. The finalizer list comes from
    /// `live` (the daemon's Job cache), or from a read when the cache knows nothing; when the
    /// cached list turns out stale (the patch's `test` fails) the Job is read and the patch sent
    /// once more. A Job that is gone, or no longer carries the finalizer, is done.
    pub(crate) async fn release_job(
        &self,
        job: &ChildRef,
        live: &dyn LiveIndex,
    ) -> Result<Outcome, EffectsError> {
        let mut finalizers = match live.job_finalizers(job) {
            Some(finalizers) => finalizers,
            None => match self.read_finalizers(job).await? {
                Some(finalizers) => finalizers,
                None => return Ok(released(job, Outcome::Skipped)),
            },
        };
        let api = child_api(&self.client, job);
        for fresh in [false, true] {
            let Some(patch) = remove_patch(&finalizers, BUILD_FINALIZER) else {
                return Ok(released(job, Outcome::Skipped));
            };
            match self.json_patch(&api, &job.name, job.into(), patch).await {
                Ok(()) | Err(EffectsError::Api { status: 404, .. }) => {
                    return Ok(released(job, Outcome::Wrote));
                }
                Err(EffectsError::Conflict { .. }) if !fresh => {
                    match self.read_finalizers(job).await? {
                        Some(read) => finalizers = read,
                        None => return Ok(released(job, Outcome::Skipped)),
                    }
                }
                Err(err) => return Err(err),
            }
        }
        Err(EffectsError::Conflict { object: job.into() })
    }

    /// The finalizers of `job` as the API server has them, `None` when it does not exist.
    async fn read_finalizers(&self, job: &ChildRef) -> Result<Option<Vec<String>>, EffectsError> {
        let api = child_api(&self.client, job);
        let result = self
            .send(Verb::Get, job.kind.kind(), || api.get(&job.name))
            .await;
        match result {
            Ok(object) => Ok(Some(object.metadata.finalizers.unwrap_or_default())),
            Err(err) if has_status(&err, 404) => Ok(None),
            Err(err) => Err(from_kube(Verb::Get, job.into(), err, &[])),
        }
    }

    /// Sends a JSON patch to `name` through `api`; a failed `test` (422) is a
    /// [`EffectsError::Conflict`].
    async fn json_patch(
        &self,
        api: &Api<DynamicObject>,
        name: &str,
        object: ObjectId,
        patch: Value,
    ) -> Result<(), EffectsError> {
        let patch: Patch<()> =
            Patch::Json(
                serde_json::from_value(patch).map_err(|e| EffectsError::Serialize {
                    object: object.clone(),
                    message: serde_message(&e),
                })?,
            );
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..PatchParams::default()
        };
        let result = self
            .send(Verb::Patch, &object.kind, || {
                api.patch(name, &params, &patch)
            })
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if has_status(&err, 422) => Err(EffectsError::Conflict { object }),
            Err(err) => Err(from_kube(Verb::Patch, object, err, &[])),
        }
    }
}

/// Logs the end of a release and returns `outcome`.
fn released(job: &ChildRef, outcome: Outcome) -> Outcome {
    debug!(
        action = "release",
        namespace = %job.namespace,
        name = %job.name,
        skipped = outcome == Outcome::Skipped,
        "build Job released"
    );
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_to_no_finalizers_tests_for_null() {
        assert_eq!(
            add_patch(&[]),
            Some(json!([
                {"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
            ]))
        );
    }

    #[test]
    fn add_to_other_finalizers_tests_the_list() {
        let others = vec!["other/one".to_string()];
        assert_eq!(
            add_patch(&others),
            Some(json!([
                {"op": "test", "path": "/metadata/finalizers", "value": ["other/one"]},
                {"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER},
            ]))
        );
        assert_eq!(add_patch(&[FINALIZER.to_string()]), None);
    }

    #[test]
    fn remove_tests_the_index() {
        let list = vec!["other/one".to_string(), FINALIZER.to_string()];
        assert_eq!(
            remove_patch(&list, FINALIZER),
            Some(json!([
                {"op": "test", "path": "/metadata/finalizers/1", "value": FINALIZER},
                {"op": "remove", "path": "/metadata/finalizers/1"},
            ]))
        );
        assert_eq!(remove_patch(&list[..1], FINALIZER), None);
        assert_eq!(remove_patch(&list, BUILD_FINALIZER), None);
        let job = vec![BUILD_FINALIZER.to_string()];
        assert_eq!(
            remove_patch(&job, BUILD_FINALIZER),
            Some(json!([
                {"op": "test", "path": "/metadata/finalizers/0", "value": BUILD_FINALIZER},
                {"op": "remove", "path": "/metadata/finalizers/0"},
            ]))
        );
    }
}
