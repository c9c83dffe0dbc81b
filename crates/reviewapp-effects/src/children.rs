//! Writes of child objects: server-side apply (skipped when the desired state already holds),
//! create-or-adopt of build Jobs, the copy of the TLS Secret, and deletes.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use reviewapp_api::FIELD_MANAGER;
use reviewapp_resources::{ChildKind, ChildRef, Manifest};
use serde_json::Value;
use tracing::debug;

use crate::api::child_api;
use crate::applied::{hash_label, live_version, manifest_hash};
use crate::error::{EffectsError, ObjectId, Verb, from_kube, secret_values, serde_message};
use crate::executor::{Effects, Outcome};
use crate::retry::{has_status, is_already_exists};
use crate::{APPLIED_HASH_ANNOTATION, LiveIndex, Lookup, SecretLookup};

impl Effects {
    /// Server-side apply of `manifest`, unless the memory says it already holds. `secrets` are
    /// redacted from error messages.
    pub(crate) async fn apply(
        &self,
        manifest: &Manifest,
        live: &dyn LiveIndex,
        secrets: &[String],
    ) -> Result<Outcome, EffectsError> {
        let child = &manifest.child;
        let hash = manifest_hash(&manifest.object);
        let lookup = live.lookup(child);
        if self
            .applied
            .holds(child, hash, &lookup, live.applied_hash(child).as_deref())
        {
            trace_action("apply", child, true);
            return Ok(Outcome::Skipped);
        }
        let api = child_api(&self.client, child);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let mut object = manifest.object.clone();
        if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            let annotations = metadata
                .entry("annotations")
                .or_insert_with(|| Value::Object(Default::default()));
            if let Some(annotations) = annotations.as_object_mut() {
                annotations.insert(
                    APPLIED_HASH_ANNOTATION.to_string(),
                    Value::String(hash_label(hash)),
                );
            }
        }
        let patch = Patch::Apply(&object);
        let result = self
            .send(Verb::Apply, child.kind.kind(), || {
                api.patch(&child.name, &params, &patch)
            })
            .await;
        match result {
            Ok(object) => {
                self.applied.remember(
                    child,
                    hash,
                    object.metadata.resource_version,
                    live_version(&lookup),
                );
                trace_action("apply", child, false);
                Ok(Outcome::Wrote)
            }
            Err(err) => {
                self.applied.forget(child);
                Err(from_kube(Verb::Apply, child.into(), err, secrets))
            }
        }
    }

    /// Creates the build Job, or adopts an existing one of that name. With `trust_cache`, a Job
    /// the cache shows is adopted without a request.
    pub(crate) async fn create_job(
        &self,
        manifest: &Manifest,
        live: &dyn LiveIndex,
        trust_cache: bool,
    ) -> Result<Outcome, EffectsError> {
        let child = &manifest.child;
        if trust_cache && matches!(live.lookup(child), Lookup::Present { .. }) {
            trace_action("create", child, true);
            return Ok(Outcome::Skipped);
        }
        let object: DynamicObject =
            serde_json::from_value(manifest.object.clone()).map_err(|e| {
                EffectsError::Serialize {
                    object: child.into(),
                    message: serde_message(&e),
                }
            })?;
        let api = child_api(&self.client, child);
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..PostParams::default()
        };
        let result = self
            .send(Verb::Create, child.kind.kind(), || {
                api.create(&params, &object)
            })
            .await;
        match result {
            Ok(_) => {
                trace_action("create", child, false);
                Ok(Outcome::Wrote)
            }
            Err(err) if is_already_exists(&err) => {
                debug!(
                    kind = child.kind.kind(),
                    namespace = %child.namespace,
                    name = %child.name,
                    "already exists: adopted"
                );
                Ok(Outcome::Wrote)
            }
            Err(err) => Err(from_kube(Verb::Create, child.into(), err, &[])),
        }
    }

    /// Takes the source Secret from the watch cache (or reads it when the cache does not know
    /// it), copies its `type` and `data` into `target`, and applies it.
    pub(crate) async fn copy_secret(
        &self,
        (namespace, name): &(String, String),
        target: &Manifest,
        live: &dyn LiveIndex,
    ) -> Result<Outcome, EffectsError> {
        let source = self.source_secret(namespace, name, live).await?;
        let serialize_error = |message: String| EffectsError::Serialize {
            object: (&target.child).into(),
            message,
        };
        let mut object = target.object.clone();
        let Some(fields) = object.as_object_mut() else {
            return Err(serialize_error(
                "the target manifest is not an object".into(),
            ));
        };
        if let Some(type_) = &source.type_ {
            fields.insert("type".into(), Value::String(type_.clone()));
        }
        match &source.data {
            Some(data) => {
                let data =
                    serde_json::to_value(data).map_err(|e| serialize_error(serde_message(&e)))?;
                fields.insert("data".into(), data);
            }
            None => {
                fields.remove("data");
            }
        }
        let manifest = Manifest {
            child: target.child.clone(),
            object,
        };
        let secrets = secret_values(&manifest.object);
        self.apply(&manifest, live, &secrets).await
    }

    /// The Secret `namespace`/`name` from the watch cache, or read when the cache does not know
    /// it; [`EffectsError::MissingSource`] when it does not exist.
    async fn source_secret(
        &self,
        namespace: &str,
        name: &str,
        live: &dyn LiveIndex,
    ) -> Result<Arc<Secret>, EffectsError> {
        let missing = || EffectsError::MissingSource {
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        match live.source_secret(namespace, name) {
            SecretLookup::Found(secret) => return Ok(secret),
            SecretLookup::Absent => return Err(missing()),
            SecretLookup::Unknown => {}
        }
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let result = self.send(Verb::Get, "Secret", || secrets.get(name)).await;
        match result {
            Ok(secret) => Ok(Arc::new(secret)),
            Err(err) if has_status(&err, 404) => Err(missing()),
            Err(err) => Err(from_kube(
                Verb::Get,
                ObjectId::namespaced("Secret", namespace, name),
                err,
                &[],
            )),
        }
    }

    /// Deletes `child` with Background propagation; absent (404, or an unknown kind) is done.
    pub(crate) async fn delete(
        &self,
        child: &ChildRef,
        live: &dyn LiveIndex,
    ) -> Result<Outcome, EffectsError> {
        // A cache that says "absent" is trusted only for objects this process never wrote (the
        // other database backend's kind, say). A build Job, or a child we applied, is deleted
        // for real whatever the cache says: a watch cache can lag or be mid-relist, and a
        // skipped delete would never be retried (a superseded build would keep running).
        if child.kind != ChildKind::Job
            && !self.applied.contains(child)
            && live.lookup(child) == Lookup::Absent
        {
            trace_action("delete", child, true);
            return Ok(Outcome::Skipped);
        }
        let api = child_api(&self.client, child);
        let params = DeleteParams::background();
        let result = self
            .send(Verb::Delete, child.kind.kind(), || {
                api.delete(&child.name, &params)
            })
            .await;
        match result {
            Ok(_) => {}
            Err(err) if has_status(&err, 404) => {}
            Err(err) => return Err(from_kube(Verb::Delete, child.into(), err, &[])),
        }
        self.applied.forget(child);
        trace_action("delete", child, false);
        Ok(Outcome::Wrote)
    }
}

/// One debug line per object action: never the manifest.
fn trace_action(action: &'static str, child: &ChildRef, skipped: bool) {
    debug!(
        action,
        kind = child.kind.kind(),
        namespace = %child.namespace,
        name = %child.name,
        skipped,
        "{}",
        if skipped { "skipped: already holds" } else { "done" }
    );
}
