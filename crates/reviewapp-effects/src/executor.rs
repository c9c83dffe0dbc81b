//! [`Effects`]: runs a plan's actions in order against the API server.

use std::fmt;
use std::sync::Arc;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource, ResourceExt};
use reviewapp_api::{FIELD_MANAGER, OperatorConfig, ReviewApp};
use reviewapp_resources::{Action, ChildKind, ChildRef, Manifest, Plan};
use reviewapp_state::{EventKind, EventNote};
use serde_json::Value;
use tracing::{debug, warn};

use crate::applied::{AppliedMemory, hash_label, live_version, manifest_hash};
use crate::error::{EffectsError, ObjectId, Verb, redact};
use crate::fence::WriteFence;
use crate::retry::{self, RetryPolicy, has_status, is_already_exists};
use crate::{APPLIED_HASH_ANNOTATION, LiveIndex, Lookup, Observer, SecretLookup};

/// Largest `note` the `events.k8s.io/v1` API accepts (bytes).
const MAX_EVENT_NOTE: usize = 1024;

/// Executes plans and writes statuses. Cheap to clone; one instance (one event recorder, one
/// applied-manifest memory) is shared by every app's handler.
#[derive(Clone)]
pub struct Effects {
    pub(crate) client: Client,
    pub(crate) config: Arc<OperatorConfig>,
    pub(crate) recorder: Recorder,
    pub(crate) observer: Observer,
    pub(crate) retry: RetryPolicy,
    pub(crate) fence: WriteFence,
    pub(crate) applied: Arc<AppliedMemory>,
}

/// What one [`Effects::execute`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Actions that sent a write request that succeeded (or counted as done: a 404 on delete,
    /// a 409 AlreadyExists on create), Events included. Retries of one action count once.
    pub writes: u32,
    /// Actions skipped because the desired state already held (nothing was written).
    pub skipped: u32,
    /// Events that could not be recorded (logged; they never fail a plan).
    pub events_failed: u32,
    /// What was written, one [`Action::describe`](reviewapp_resources::Action::describe) line
    /// per written action, in order.
    pub written: Vec<String>,
}

/// How one action ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Wrote,
    Skipped,
    EventFailed,
}

impl fmt::Debug for Effects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Effects")
            .field("retry", &self.retry)
            .field("remembered", &self.applied.len())
            .finish_non_exhaustive()
    }
}

impl Effects {
    /// Effects that talk to the API server through `client`, record Events as `reporter`, and
    /// report every request to `observer`. Uses the default [`RetryPolicy`].
    pub fn new(
        client: Client,
        config: Arc<OperatorConfig>,
        reporter: Reporter,
        observer: Observer,
    ) -> Self {
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            config,
            observer,
            retry: RetryPolicy::default(),
            fence: WriteFence::open(),
            applied: Arc::default(),
        }
    }

    /// The same effects with another retry policy.
    #[must_use]
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The same effects, sending nothing once `fence` lapsed: every request (applies, creates,
    /// deletes, finalizer patches, status writes, Events) then fails with
    /// [`EffectsError::Fenced`] instead. Without it the fence is open for good.
    #[must_use]
    pub fn with_fence(mut self, fence: WriteFence) -> Self {
        self.fence = fence;
        self
    }

    /// The operator configuration these effects were built with.
    pub fn config(&self) -> &OperatorConfig {
        &self.config
    }

    /// Number of children whose last applied manifest is remembered.
    pub fn remembered(&self) -> usize {
        self.applied.len()
    }

    /// Runs `plan`'s actions for `app` in order and stops at the first error, which is returned
    /// (the caller retries the whole event later; every action is idempotent). `live` says what
    /// exists, so that actions whose desired state already holds are skipped.
    pub async fn execute(
        &self,
        app: &ReviewApp,
        plan: &Plan,
        live: &dyn LiveIndex,
    ) -> Result<Report, EffectsError> {
        let mut report = Report::default();
        // Build Jobs deleted or released by this plan: the cache may still show the old Job, so
        // a create of the same name that follows (a restarted build) must not be skipped.
        let mut let_go: Vec<&ChildRef> = Vec::new();
        for action in &plan.actions {
            let outcome = match action {
                Action::CreateJob(manifest) => {
                    let trust_cache = !let_go.contains(&&manifest.child);
                    self.create_job(manifest, live, trust_cache).await?
                }
                other => self.run(app, other, live).await?,
            };
            if let Action::Delete(child) | Action::ReleaseJob(child) = action {
                let_go.push(child);
            }
            match outcome {
                Outcome::Wrote => {
                    report.writes += 1;
                    report.written.push(action.describe());
                }
                Outcome::Skipped => report.skipped += 1,
                Outcome::EventFailed => report.events_failed += 1,
            }
        }
        debug!(
            app = %app.name_any(),
            writes = report.writes,
            skipped = report.skipped,
            events_failed = report.events_failed,
            "plan executed"
        );
        Ok(report)
    }

    async fn run(
        &self,
        app: &ReviewApp,
        action: &Action,
        live: &dyn LiveIndex,
    ) -> Result<Outcome, EffectsError> {
        match action {
            Action::AddFinalizer => self.add_finalizer(app).await,
            Action::RemoveFinalizer => self.remove_finalizer(app).await,
            Action::Apply(manifest) => {
                let secrets = secret_values(&manifest.object);
                self.apply(manifest, live, &secrets).await
            }
            Action::CreateJob(manifest) => self.create_job(manifest, live, true).await,
            Action::CopySecret { source, target } => self.copy_secret(source, target, live).await,
            Action::Delete(child) => self.delete(child, live).await,
            Action::ReleaseJob(child) => self.release_job(child, live).await,
            Action::Event(note) => match self.event(app, note).await {
                // A lost Event never fails a plan, but a fenced one ends it: nothing after it
                // may be sent either.
                Outcome::EventFailed if !self.fence.is_open() => Err(EffectsError::Fenced {
                    verb: Verb::Event,
                    object: ObjectId::cluster("ReviewApp", &app.name_any()),
                }),
                outcome => Ok(outcome),
            },
        }
    }

    /// Server-side apply of `manifest`, unless the memory says it already holds. `secrets` are
    /// redacted from error messages.
    async fn apply(
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
        let result = retry::send(
            &self.retry,
            self.observer.as_ref(),
            &self.fence,
            Verb::Apply,
            child.kind.kind(),
            || api.patch(&child.name, &params, &patch),
        )
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
    async fn create_job(
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
        let result = retry::send(
            &self.retry,
            self.observer.as_ref(),
            &self.fence,
            Verb::Create,
            child.kind.kind(),
            || api.create(&params, &object),
        )
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
    async fn copy_secret(
        &self,
        (namespace, name): &(String, String),
        target: &Manifest,
        live: &dyn LiveIndex,
    ) -> Result<Outcome, EffectsError> {
        let missing = || EffectsError::MissingSource {
            namespace: namespace.clone(),
            name: name.clone(),
        };
        let source = match live.source_secret(namespace, name) {
            SecretLookup::Found(secret) => secret,
            SecretLookup::Absent => return Err(missing()),
            SecretLookup::Unknown => {
                let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
                let result = retry::send(
                    &self.retry,
                    self.observer.as_ref(),
                    &self.fence,
                    Verb::Get,
                    "Secret",
                    || secrets.get(name),
                )
                .await;
                match result {
                    Ok(secret) => Arc::new(secret),
                    Err(err) if has_status(&err, 404) => return Err(missing()),
                    Err(err) => {
                        return Err(from_kube(
                            Verb::Get,
                            ObjectId::namespaced("Secret", namespace, name),
                            err,
                            &[],
                        ));
                    }
                }
            }
        };
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

    /// Deletes `child` with Background propagation; absent (404, or an unknown kind) is done.
    async fn delete(
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
        let result = retry::send(
            &self.retry,
            self.observer.as_ref(),
            &self.fence,
            Verb::Delete,
            child.kind.kind(),
            || api.delete(&child.name, &params),
        )
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

    /// Records a Kubernetes Event on `app` through the shared recorder, outside any plan (for
    /// example on an object that does not deserialize). Returns whether it was recorded; a
    /// failure is logged, never returned.
    pub async fn record(&self, app: &ReviewApp, note: &EventNote) -> bool {
        matches!(self.event(app, note).await, Outcome::Wrote)
    }

    /// Records `note` on `app`. A failure is logged and counted, never returned.
    async fn event(&self, app: &ReviewApp, note: &EventNote) -> Outcome {
        let reference = app.object_ref(&());
        let event = Event {
            type_: match note.kind {
                EventKind::Normal => EventType::Normal,
                EventKind::Warning => EventType::Warning,
            },
            reason: note.reason.to_string(),
            note: Some(truncate(&note.note, MAX_EVENT_NOTE)),
            action: note.action.to_string(),
            secondary: None,
        };
        let result = retry::send(
            &self.retry,
            self.observer.as_ref(),
            &self.fence,
            Verb::Event,
            "Event",
            || self.recorder.publish(&event, &reference),
        )
        .await;
        match result {
            Ok(()) => {
                debug!(app = %app.name_any(), reason = note.reason, "event recorded");
                Outcome::Wrote
            }
            Err(err) if retry::is_fenced(&err) => {
                debug!(app = %app.name_any(), reason = note.reason, "event not recorded: fenced");
                Outcome::EventFailed
            }
            Err(err) => {
                warn!(
                    app = %app.name_any(),
                    reason = note.reason,
                    error = %err,
                    "could not record event"
                );
                Outcome::EventFailed
            }
        }
    }
}

/// The API resource of a child kind (every child kind is namespaced).
pub(crate) fn api_resource(kind: ChildKind) -> ApiResource {
    ApiResource {
        group: kind.group().to_string(),
        version: kind.version().to_string(),
        api_version: kind.api_version(),
        kind: kind.kind().to_string(),
        plural: kind.plural().to_string(),
    }
}

/// A dynamic API for `child`'s kind in `child`'s namespace.
pub(crate) fn child_api(client: &Client, child: &ChildRef) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), &child.namespace, &api_resource(child.kind))
}

/// Converts a client error into an [`EffectsError`] about `verb` on `object`, removing
/// `secrets` from the server's message.
pub(crate) fn from_kube(
    verb: Verb,
    object: ObjectId,
    err: kube::Error,
    secrets: &[String],
) -> EffectsError {
    match err {
        source if retry::is_fenced(&source) => EffectsError::Fenced { verb, object },
        kube::Error::Api(status) => EffectsError::Api {
            verb,
            object,
            status: retry::status_code(&status),
            message: redact(&status.message, secrets),
        },
        kube::Error::SerdeError(e) => EffectsError::Serialize {
            object,
            message: format!("unreadable response to {verb}: {}", serde_message(&e)),
        },
        source => EffectsError::Transport {
            verb,
            object,
            source,
        },
    }
}

/// A serde error's category and position, never its text (which may quote values).
pub(crate) fn serde_message(e: &serde_json::Error) -> String {
    let category = match e.classify() {
        serde_json::error::Category::Io => "I/O error",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected data",
        serde_json::error::Category::Eof => "unexpected end of input",
    };
    format!("{category} at line {} column {}", e.line(), e.column())
}

/// The values of a Secret manifest's `data` (encoded and decoded) and `stringData`, and their
/// longer lines, longest first: what must never appear in an error message.
pub(crate) fn secret_values(object: &Value) -> Vec<String> {
    if object.get("kind").and_then(Value::as_str) != Some("Secret") {
        return Vec::new();
    }
    let mut values = Vec::new();
    let mut push = |text: &str| {
        values.push(text.to_string());
        values.extend(
            text.lines()
                .map(str::trim)
                .filter(|line| line.len() >= 16)
                .map(str::to_string),
        );
    };
    if let Some(data) = object.get("data").and_then(Value::as_object) {
        for value in data.values() {
            if let Some(encoded) = value.as_str() {
                push(encoded);
            }
            if let Ok(ByteString(bytes)) = serde_json::from_value::<ByteString>(value.clone()) {
                push(&String::from_utf8_lossy(&bytes));
            }
        }
    }
    if let Some(data) = object.get("stringData").and_then(Value::as_object) {
        for value in data.values().filter_map(Value::as_str) {
            push(value);
        }
    }
    values.retain(|v| v.len() >= 4);
    values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    values.dedup();
    values
}

/// `text`, cut to at most `max` bytes at a character boundary.
fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn secret_values_cover_encoded_decoded_and_lines() {
        let object = json!({
            "kind": "Secret",
            "data": {"tls.key": "LS0tLS1CRUdJTiBLRVktLS0tLQpzZWNyZXRzZWNyZXRzZWNyZXRzZWNyZXQKLS0tLS1FTkQgS0VZLS0tLS0="},
            "stringData": {"password": "hunter22"}
        });
        let values = secret_values(&object);
        assert!(values.contains(&"hunter22".to_string()));
        assert!(values.iter().any(|v| v.starts_with("LS0tLS1CRUdJTiBLRVkt")));
        assert!(values.contains(&"secretsecretsecretsecret".to_string()));
        assert!(secret_values(&json!({"kind": "Service", "data": {"a": "bbbbbbbb"}})).is_empty());
    }

    /// The daemon spawns these futures on a multi-threaded runtime.
    #[allow(dead_code)]
    fn futures_are_send(effects: &Effects, app: &ReviewApp, plan: &Plan, live: &dyn LiveIndex) {
        fn is_send<T: Send>(_: T) {}
        is_send(effects.execute(app, plan, live));
        let status = reviewapp_api::ReviewAppStatus::default();
        is_send(effects.write_status(app, &status));
    }

    #[test]
    fn effects_and_errors_are_thread_safe() {
        fn is_send_sync<T: Send + Sync + 'static>() {}
        is_send_sync::<Effects>();
        is_send_sync::<EffectsError>();
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("hello", 10), "hello");
        assert_eq!(truncate(&"x".repeat(2000), MAX_EVENT_NOTE).len(), 1024);
    }

    #[test]
    fn api_resources_of_every_kind() {
        let ar = api_resource(ChildKind::Deployment);
        assert_eq!(
            (ar.api_version.as_str(), ar.plural.as_str()),
            ("apps/v1", "deployments")
        );
        assert_eq!(api_resource(ChildKind::Secret).api_version, "v1");
    }
}
