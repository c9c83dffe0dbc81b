//! The `ReviewApp` status, written through the `/status` subresource with server-side apply
//! (so a field that became `None` is removed), and only when it differs.

use kube::api::{Patch, PatchParams};
use kube::{Resource, ResourceExt};
use reviewapp_api::{FIELD_MANAGER, ReviewApp, ReviewAppStatus};
use serde_json::json;
use tracing::debug;

use crate::api::review_apps;
use crate::error::{EffectsError, ObjectId, Verb, from_kube, serde_message};
use crate::executor::Effects;
use crate::retry::has_status;

impl Effects {
    /// Writes `status` to `app`'s `/status` subresource unless it equals the current one.
    /// Returns the object as the API server stored it when a write happened (so the caller can
    /// recognise the watch event echoing it), `None` when nothing was written or the app no
    /// longer exists (404).
    pub async fn write_status(
        &self,
        app: &ReviewApp,
        status: &ReviewAppStatus,
    ) -> Result<Option<ReviewApp>, EffectsError> {
        let name = app.name_any();
        if app.status.as_ref() == Some(status) {
            debug!(app = %name, skipped = true, "status unchanged");
            return Ok(None);
        }
        let object = ObjectId::cluster("ReviewApp", &name);
        let status_typed = status;
        let status = serde_json::to_value(status).map_err(|e| EffectsError::Serialize {
            object: object.clone(),
            message: serde_message(&e),
        })?;
        let body = json!({
            "apiVersion": ReviewApp::api_version(&()),
            "kind": ReviewApp::kind(&()),
            "status": status,
        });
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let patch = Patch::Apply(&body);
        let api = review_apps(&self.client);
        let result = self
            .send(Verb::Status, "ReviewApp", || {
                api.patch_status(&name, &params, &patch)
            })
            .await;
        match result {
            Ok(written) => {
                debug!(app = %name, skipped = false, "status written");
                // The answer normally parses; if not, the app with its new status is the best
                // record of the write (the watch's echo then reads as a self-triggered MODIFY).
                Ok(Some(written.try_parse::<ReviewApp>().unwrap_or_else(
                    |_| {
                        let mut app = app.clone();
                        app.status = Some(status_typed.clone());
                        app
                    },
                )))
            }
            Err(err) if has_status(&err, 404) => {
                debug!(app = %name, "status not written: the app is gone");
                Ok(None)
            }
            Err(err) => Err(from_kube(Verb::Status, object, err, &[])),
        }
    }
}
