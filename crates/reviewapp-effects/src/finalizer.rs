//! The operator's finalizer on the `ReviewApp`, added and removed with JSON patches guarded by a
//! `test` operation (kube-runtime's finalizer helper does the same), so that a concurrent
//! change to the finalizer list is never overwritten.

use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::{Client, ResourceExt};
use reviewapp_api::{FIELD_MANAGER, FINALIZER, ReviewApp};
use serde_json::{Value, json};
use tracing::debug;

use crate::error::{EffectsError, ObjectId, Verb};
use crate::executor::{Effects, Outcome, from_kube, serde_message};
use crate::retry::{self, has_status};

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

/// The JSON patch removing [`FINALIZER`] from `finalizers`, or `None` when it is not there.
pub(crate) fn remove_patch(finalizers: &[String]) -> Option<Value> {
    let index = finalizers.iter().position(|f| f == FINALIZER)?;
    let path = format!("/metadata/finalizers/{index}");
    Some(json!([
        {"op": "test", "path": path, "value": FINALIZER},
        {"op": "remove", "path": path},
    ]))
}

/// The cluster-scoped `ReviewApp` API, untyped (any response body with metadata is accepted).
pub(crate) fn review_apps(client: &Client) -> Api<DynamicObject> {
    Api::all_with(client.clone(), &ApiResource::erase::<ReviewApp>(&()))
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
        let Some(patch) = remove_patch(app.finalizers()) else {
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
        let api = review_apps(&self.client);
        let result = retry::send(
            &self.retry,
            self.observer.as_ref(),
            &self.fence,
            Verb::Patch,
            "ReviewApp",
            || api.patch(&name, &params, &patch),
        )
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if has_status(&err, 422) => Err(EffectsError::Conflict { object }),
            Err(err) => Err(from_kube(Verb::Patch, object, err, &[])),
        }
    }
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
            remove_patch(&list),
            Some(json!([
                {"op": "test", "path": "/metadata/finalizers/1", "value": FINALIZER},
                {"op": "remove", "path": "/metadata/finalizers/1"},
            ]))
        );
        assert_eq!(remove_patch(&list[..1]), None);
    }
}
