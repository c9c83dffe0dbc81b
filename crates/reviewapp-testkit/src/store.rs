//! [`World`]: every stored object, the global resourceVersion counter, and the write rules
//! shared by every verb (system metadata, status subresource, generation, ownership,
//! finalizers, no-op detection, events).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Map, Value, json};
use tokio::sync::mpsc::UnboundedSender;

use crate::admission::{self, FieldValidation, Part};
use crate::crd::{self, Registered, Registry};
use crate::fields::{self, Entry, Scope};
use crate::meta;
use crate::pages::Pages;
use crate::resource::ResourceKey;
use crate::selector::Filter;
use crate::status::ApiError;
use crate::watch::{Change, Item, Recorded, Start, WatchHub, WatchSpec};

/// `(namespace or "", name)`.
pub(crate) type ObjName = (String, String);

/// How a write's field ownership is recorded.
pub(crate) enum Ownership<'a> {
    /// A non-apply write by this manager: it owns what it changed.
    Update(&'a str),
    /// A server-side apply: the entries are already computed.
    Apply(Vec<Entry>),
}

/// How an update is made: which part of the object it may change, how ownership is recorded,
/// whether it is only a dry run, and its `fieldValidation`.
pub(crate) struct Write<'a> {
    pub scope: Scope,
    pub ownership: Ownership<'a>,
    pub dry_run: bool,
    pub validation: FieldValidation,
}

/// How a create is made: ownership, whether the body's `status` is kept (the test handle's
/// creates), whether it is only a dry run, and its `fieldValidation`.
pub(crate) struct Create<'a> {
    pub ownership: Ownership<'a>,
    pub keep_status: bool,
    pub dry_run: bool,
    pub validation: FieldValidation,
}

/// A stored (or dry-run) object and the warnings to answer with.
#[derive(Debug)]
pub(crate) struct Written {
    pub object: Value,
    pub warnings: Vec<String>,
}

/// `propagationPolicy` of a delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Propagation {
    Background,
    Foreground,
    Orphan,
}

impl Propagation {
    /// Parses `Background`, `Foreground` or `Orphan` (anything else is Background).
    pub(crate) fn parse(text: Option<&str>) -> Self {
        match text {
            Some("Orphan") => Propagation::Orphan,
            Some("Foreground") => Propagation::Foreground,
            _ => Propagation::Background,
        }
    }
}

/// The outcome of a delete.
pub(crate) enum Deleted {
    /// Removed (its last state).
    Gone(Value),
    /// Kept until its finalizers are removed (with `deletionTimestamp` set).
    Pending(Value),
}

/// Delete preconditions (`preconditions.uid`, `preconditions.resourceVersion`).
#[derive(Default)]
pub(crate) struct Preconditions {
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

/// Every object, and the watch machinery.
pub(crate) struct World {
    rv: u64,
    objects: BTreeMap<ResourceKey, BTreeMap<ObjName, Value>>,
    kinds: HashMap<ResourceKey, String>,
    unavailable: HashSet<ResourceKey>,
    /// The schemas of registered CRDs.
    crds: Registry,
    /// Told the (namespace, name) of every Job that changes: the TTL-after-finished controller.
    job_changes: Option<UnboundedSender<ObjName>>,
    pub(crate) watches: WatchHub,
    /// Lists being read page by page.
    pub(crate) pages: Pages,
    seed: u64,
}

/// The key of an object.
fn key(ns: &str, name: &str) -> ObjName {
    (ns.to_string(), name.to_string())
}

impl World {
    /// An empty world keeping `history` events per resource.
    pub(crate) fn new(history: usize, seed: u64) -> Self {
        Self {
            rv: 0,
            objects: BTreeMap::new(),
            kinds: HashMap::new(),
            unavailable: HashSet::new(),
            crds: Registry::default(),
            job_changes: None,
            watches: WatchHub::new(history),
            pages: Pages::default(),
            seed,
        }
    }

    /// The current (latest) resourceVersion.
    pub(crate) fn resource_version(&self) -> u64 {
        self.rv
    }

    /// Makes `res` answer 404 to every API request (as if its CRD were not installed), or
    /// serves it again.
    pub(crate) fn set_available(&mut self, res: &ResourceKey, available: bool) {
        if available {
            self.unavailable.remove(res);
        } else {
            self.unavailable.insert(res.clone());
        }
    }

    /// Whether `res` is served.
    pub(crate) fn is_available(&self, res: &ResourceKey) -> bool {
        !self.unavailable.contains(res)
    }

    /// Sends the (namespace, name) of every Job that changes to `changes`.
    pub(crate) fn watch_jobs(&mut self, changes: UnboundedSender<ObjName>) {
        self.job_changes = Some(changes);
    }

    /// The registration of the CRD serving `res`, if any.
    pub(crate) fn schema_of(&self, res: &ResourceKey) -> Option<std::sync::Arc<Registered>> {
        self.crds.get(res)
    }

    /// (plural, namespaced) of a kind a registered CRD serves.
    pub(crate) fn registered_kind(
        &self,
        group: &str,
        version: &str,
        kind: &str,
    ) -> Option<(String, bool)> {
        self.crds.find_kind(group, version, kind)
    }

    /// The kind of `res`'s objects: from its CRD, as last created, from the table, or guessed.
    pub(crate) fn kind_of(&self, res: &ResourceKey) -> String {
        if let Some(registered) = self.crds.get(res) {
            return registered.kind.clone();
        }
        if let Some(kind) = self.kinds.get(res) {
            return kind.clone();
        }
        if let Some(kind) = res.known_kind() {
            return kind.to_string();
        }
        let singular = res.plural.strip_suffix('s').unwrap_or(&res.plural);
        let mut chars = singular.chars();
        chars
            .next()
            .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
            .unwrap_or_default()
    }

    /// One object.
    pub(crate) fn get(&self, res: &ResourceKey, ns: &str, name: &str) -> Option<&Value> {
        self.objects.get(res)?.get(&key(ns, name))
    }

    /// Objects of `res` (in `ns` when given) matching `filter`, ordered by namespace and name.
    pub(crate) fn list(&self, res: &ResourceKey, ns: Option<&str>, filter: &Filter) -> Vec<Value> {
        self.objects
            .get(res)
            .into_iter()
            .flat_map(|objects| objects.iter())
            .filter(|((o_ns, _), _)| ns.is_none_or(|ns| ns == o_ns))
            .filter(|(_, o)| filter.matches(o))
            .map(|(_, o)| o.clone())
            .collect()
    }

    /// Opens a watch: `resource_version` "" or "0" starts with the existing objects (ending
    /// with an initial-events-end bookmark when `send_initial_events`).
    pub(crate) fn watch(
        &mut self,
        spec: WatchSpec,
        resource_version: &str,
        send_initial_events: bool,
    ) -> Result<tokio::sync::mpsc::UnboundedReceiver<Item>, ApiError> {
        let start =
            match resource_version {
                "" | "0" => Start::Existing(
                    self.objects
                        .get(&spec.res)
                        .into_iter()
                        .flat_map(|o| o.values())
                        .map(|o| Arc::new(o.clone()))
                        .collect(),
                    send_initial_events,
                ),
                rv => Start::After(rv.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid resourceVersion {rv:?}"))
                })?),
            };
        Ok(self.watches.open(spec, start, self.rv))
    }

    fn next_rv(&mut self, object: &mut Value) -> u64 {
        self.rv += 1;
        if let Some(meta) = meta::meta_mut(object) {
            meta.insert("resourceVersion".into(), Value::String(self.rv.to_string()));
        }
        self.rv
    }

    fn emit(&mut self, res: &ResourceKey, change: Change, object: &Value, previous: Option<Value>) {
        let rec = Recorded {
            rv: self.rv,
            change,
            object: Arc::new(object.clone()),
            previous: previous.map(Arc::new),
        };
        self.watches.record(res, rec);
        if res.group == "batch"
            && res.version == "v1"
            && res.plural == "jobs"
            && let Some(changes) = &self.job_changes
        {
            // The controller may be gone (emulator shutting down): nothing to tell then.
            let _ = changes.send((
                meta::namespace(object).to_string(),
                meta::name(object).to_string(),
            ));
        }
    }

    /// Prunes, defaults and validates `new` when `res` is served by a registered CRD; a CRD
    /// itself is compiled (returned, to register once stored) and given its status.
    fn admit(
        &self,
        res: &ResourceKey,
        name: &str,
        old: Option<&Value>,
        new: &mut Value,
        part: Part,
        validation: FieldValidation,
    ) -> Result<(Vec<String>, Option<crd::Versions>), ApiError> {
        let warnings = match self.crds.get(res) {
            Some(registered) => admission::admit(&registered, name, old, new, part, validation)?,
            None => Vec::new(),
        };
        if !crd::is_crd_resource(res) || part == Part::Status {
            return Ok((warnings, None));
        }
        let versions = crd::compile(new).map_err(|errors| crd::refused(name, &errors))?;
        let status = crd::status(new, old);
        set_field(new, "status", Some(&status));
        Ok((warnings, Some(versions)))
    }

    /// What follows an object's removal: a CRD's schemas are unregistered.
    fn removed(&mut self, res: &ResourceKey, object: &Value) {
        if crd::is_crd_resource(res) {
            self.crds.forget(meta::name(object));
        }
    }

    /// Creates an object (POST, or an apply of an absent object). `ns` is "" for a
    /// cluster-scoped path. The body's `status` is dropped unless `keep_status`.
    pub(crate) fn create(
        &mut self,
        res: &ResourceKey,
        ns: &str,
        mut body: Value,
        how: Create<'_>,
    ) -> Result<Written, ApiError> {
        let Create {
            ownership,
            keep_status,
            dry_run,
            validation,
        } = how;
        if !body.is_object() {
            return Err(ApiError::bad_request("the object is not a JSON map"));
        }
        let api_version = body
            .get("apiVersion")
            .and_then(Value::as_str)
            .map_or_else(|| res.api_version(), str::to_string);
        let kind = body
            .get("kind")
            .and_then(Value::as_str)
            .map_or_else(|| self.kind_of(res), str::to_string);
        let uid = meta::new_uid(&mut self.seed);
        let suffix = meta::name_suffix(&mut self.seed);
        let Some(meta) = meta::meta_mut(&mut body) else {
            return Err(ApiError::bad_request("the object is not a JSON map"));
        };
        let body_ns = meta
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !ns.is_empty() && !body_ns.is_empty() && body_ns != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        if ns.is_empty() {
            meta.remove("namespace");
        } else {
            meta.insert("namespace".into(), Value::String(ns.to_string()));
        }
        let name = match meta.get("name").and_then(Value::as_str) {
            Some(name) if !name.is_empty() => name.to_string(),
            _ => match meta.get("generateName").and_then(Value::as_str) {
                Some(prefix) if !prefix.is_empty() => format!("{prefix}{suffix}"),
                _ => {
                    return Err(ApiError::invalid(
                        res,
                        "",
                        "metadata.name: Required value: name or generateName is required",
                    ));
                }
            },
        };
        if self.get(res, ns, &name).is_some() {
            return Err(ApiError::already_exists(res, &name));
        }
        for field in [
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
            "managedFields",
        ] {
            meta.remove(field);
        }
        meta.insert("name".into(), Value::String(name.clone()));
        meta.insert("uid".into(), Value::String(uid));
        meta.insert("creationTimestamp".into(), Value::String(meta::now()));
        meta.insert("generation".into(), json!(1));
        if let Some(map) = body.as_object_mut() {
            map.insert("apiVersion".into(), Value::String(api_version.clone()));
            map.insert("kind".into(), Value::String(kind.clone()));
            if !keep_status {
                map.remove("status");
            }
        }
        meta::normalize(&mut body);
        let part = if keep_status { Part::Whole } else { Part::Main };
        let (warnings, crd_versions) = self.admit(res, &name, None, &mut body, part, validation)?;
        let mut entries = match ownership {
            Ownership::Update(manager) => {
                let mut entries = Vec::new();
                let changed = fields::changed(None, &body, Scope::Main);
                fields::record_update(&mut entries, manager, Scope::Main, &changed, &api_version);
                entries
            }
            Ownership::Apply(entries) => entries,
        };
        fields::settle(&mut entries, &body, &[]);
        fields::write(&mut body, &entries);
        self.kinds.insert(res.clone(), kind);
        if dry_run {
            return Ok(Written {
                object: body,
                warnings,
            });
        }
        self.next_rv(&mut body);
        self.objects
            .entry(res.clone())
            .or_default()
            .insert(key(ns, &name), body.clone());
        if let Some(versions) = crd_versions {
            self.crds.register(&name, versions);
        }
        self.emit(res, Change::Added, &body, None);
        Ok(Written {
            object: body,
            warnings,
        })
    }

    /// Replaces an object with `candidate` (the whole object a PUT, patch or apply computed),
    /// following the real server's rules: server-owned metadata is kept; the main resource
    /// keeps the stored status and the status subresource changes only the status; a stale
    /// `resourceVersion` is a conflict; `generation` moves on spec changes; no new finalizers
    /// while deleting; nothing is written when nothing changed; an object being deleted whose
    /// last finalizer goes is removed.
    pub(crate) fn update(
        &mut self,
        res: &ResourceKey,
        ns: &str,
        name: &str,
        candidate: Value,
        write: Write<'_>,
    ) -> Result<Written, ApiError> {
        let Write {
            scope,
            ownership,
            dry_run,
            validation,
        } = write;
        let Some(old) = self.get(res, ns, name).cloned() else {
            return Err(ApiError::not_found(res, name));
        };
        if !candidate.is_object() {
            return Err(ApiError::bad_request("the object is not a JSON map"));
        }
        let mut new = candidate;
        match meta::meta_str(&new, "name") {
            Some(body_name) if !body_name.is_empty() && body_name != name => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({body_name}) does not match the name on the URL ({name})"
                )));
            }
            _ => {}
        }
        match meta::meta_str(&new, "namespace") {
            Some(body_ns) if !body_ns.is_empty() && !ns.is_empty() && body_ns != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {}
        }
        let wanted_rv = meta::resource_version(&new);
        if !wanted_rv.is_empty() && wanted_rv != meta::resource_version(&old) {
            return Err(ApiError::conflict(res, name));
        }

        match scope {
            Scope::Main => set_field(&mut new, "status", old.get("status")),
            Scope::Status => {
                let status = new.get("status").cloned();
                new = old.clone();
                set_field(&mut new, "status", status.as_ref());
            }
        }
        for field in ["apiVersion", "kind"] {
            set_field(&mut new, field, old.get(field));
        }
        if let Some(meta) = meta::meta_mut(&mut new) {
            for field in meta::SYSTEM_METADATA {
                match meta::meta(&old).and_then(|m| m.get(*field)) {
                    Some(value) => meta.insert((*field).to_string(), value.clone()),
                    None => meta.remove(*field),
                };
            }
        }
        if meta::is_deleting(&old) {
            let before = meta::finalizers(&old);
            if meta::finalizers(&new).iter().any(|f| !before.contains(f)) {
                return Err(ApiError::invalid(
                    res,
                    name,
                    "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted",
                ));
            }
        }
        meta::normalize(&mut new);
        let part = match scope {
            Scope::Main => Part::Main,
            Scope::Status => Part::Status,
        };
        let (warnings, crd_versions) =
            self.admit(res, name, Some(&old), &mut new, part, validation)?;
        if scope == Scope::Main && !same_spec(&old, &new) {
            let generation = meta::meta(&old)
                .and_then(|m| m.get("generation"))
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if let Some(meta) = meta::meta_mut(&mut new) {
                meta.insert("generation".into(), json!(generation + 1));
            }
        }

        let previous = fields::read(&old);
        let mut entries = match ownership {
            Ownership::Update(manager) => {
                let mut entries = previous.clone();
                let changed = fields::changed(Some(&old), &new, scope);
                let api_version = new
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                fields::record_update(&mut entries, manager, scope, &changed, &api_version);
                entries
            }
            Ownership::Apply(entries) => entries,
        };
        fields::settle(&mut entries, &new, &previous);
        fields::write(&mut new, &entries);

        if new == old || dry_run {
            return Ok(Written {
                object: new,
                warnings,
            });
        }
        if meta::is_deleting(&new) && meta::finalizers(&new).is_empty() {
            if let Some(objects) = self.objects.get_mut(res) {
                objects.remove(&key(ns, name));
            }
            self.next_rv(&mut new);
            self.removed(res, &new);
            self.emit(res, Change::Deleted, &new, None);
            crate::gc::collect(self, res, &new, Propagation::Background);
            return Ok(Written {
                object: new,
                warnings,
            });
        }
        self.next_rv(&mut new);
        self.objects
            .entry(res.clone())
            .or_default()
            .insert(key(ns, name), new.clone());
        if let Some(versions) = crd_versions {
            self.crds.register(name, versions);
        }
        self.emit(res, Change::Modified, &new, Some(old));
        Ok(Written {
            object: new,
            warnings,
        })
    }

    /// Deletes an object: with finalizers it only gets a `deletionTimestamp`; otherwise it is
    /// removed and its dependents are garbage-collected.
    pub(crate) fn delete(
        &mut self,
        res: &ResourceKey,
        ns: &str,
        name: &str,
        propagation: Propagation,
        preconditions: &Preconditions,
        dry_run: bool,
    ) -> Result<Deleted, ApiError> {
        let Some(old) = self.get(res, ns, name) else {
            return Err(ApiError::not_found(res, name));
        };
        let uid_mismatch = preconditions
            .uid
            .as_deref()
            .is_some_and(|uid| uid != meta::uid(old));
        let rv_mismatch = preconditions
            .resource_version
            .as_deref()
            .is_some_and(|rv| rv != meta::resource_version(old));
        if uid_mismatch || rv_mismatch {
            return Err(ApiError::conflict(res, name));
        }
        if dry_run {
            return Ok(if meta::finalizers(old).is_empty() {
                Deleted::Gone(old.clone())
            } else {
                Deleted::Pending(old.clone())
            });
        }
        self.begin_delete(res, ns, name, propagation)
            .ok_or_else(|| ApiError::not_found(res, name))
    }

    /// The delete logic without preconditions.
    pub(crate) fn begin_delete(
        &mut self,
        res: &ResourceKey,
        ns: &str,
        name: &str,
        propagation: Propagation,
    ) -> Option<Deleted> {
        let outcome = self.begin_delete_no_gc(res, ns, name)?;
        if let Deleted::Gone(gone) = &outcome {
            crate::gc::collect(self, res, gone, propagation);
        }
        Some(outcome)
    }

    /// Marks an object with finalizers as deleting, or removes it; dependents are left to the
    /// caller (the garbage collector's own loop).
    pub(crate) fn begin_delete_no_gc(
        &mut self,
        res: &ResourceKey,
        ns: &str,
        name: &str,
    ) -> Option<Deleted> {
        let old = self.get(res, ns, name)?.clone();
        if meta::finalizers(&old).is_empty() {
            return self.remove_one(res, ns, name).map(Deleted::Gone);
        }
        if meta::is_deleting(&old) {
            return Some(Deleted::Pending(old));
        }
        let mut new = old.clone();
        if let Some(meta) = meta::meta_mut(&mut new) {
            meta.insert("deletionTimestamp".into(), Value::String(meta::now()));
            meta.insert("deletionGracePeriodSeconds".into(), json!(0));
        }
        self.next_rv(&mut new);
        self.objects
            .entry(res.clone())
            .or_default()
            .insert(key(ns, name), new.clone());
        self.emit(res, Change::Modified, &new, Some(old));
        Some(Deleted::Pending(new))
    }

    /// Removes an object at once (finalizers ignored), with a `DELETED` event, then collects
    /// its dependents.
    pub(crate) fn remove(
        &mut self,
        res: &ResourceKey,
        ns: &str,
        name: &str,
        propagation: Propagation,
    ) -> Option<Value> {
        let removed = self.remove_one(res, ns, name)?;
        crate::gc::collect(self, res, &removed, propagation);
        Some(removed)
    }

    /// Removes one object with a `DELETED` event, nothing else.
    pub(crate) fn remove_one(&mut self, res: &ResourceKey, ns: &str, name: &str) -> Option<Value> {
        let mut removed = self.objects.get_mut(res)?.remove(&key(ns, name))?;
        self.next_rv(&mut removed);
        self.removed(res, &removed);
        self.emit(res, Change::Deleted, &removed, None);
        Some(removed)
    }

    /// Objects matching `predicate`, as (resource, namespace, name).
    pub(crate) fn find(
        &self,
        mut predicate: impl FnMut(&ResourceKey, &Value) -> bool,
    ) -> Vec<(ResourceKey, String, String)> {
        self.objects
            .iter()
            .flat_map(|(res, objects)| objects.iter().map(move |(k, o)| (res, k, o)))
            .filter(|(res, _, o)| predicate(res, o))
            .map(|(res, (ns, name), _)| (res.clone(), ns.clone(), name.clone()))
            .collect()
    }

    /// Number of stored objects.
    pub(crate) fn len(&self) -> usize {
        self.objects.values().map(BTreeMap::len).sum()
    }
}

/// Sets (or, with `None`, removes) a top-level field.
fn set_field(object: &mut Value, field: &str, value: Option<&Value>) {
    if let Some(map) = object.as_object_mut() {
        match value {
            Some(v) => {
                map.insert(field.to_string(), v.clone());
            }
            None => {
                map.remove(field);
            }
        }
    }
}

/// Whether two objects agree outside `metadata` and `status` (what moves `generation`).
fn same_spec(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| -> Map<String, Value> {
        v.as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "metadata" | "status"))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    strip(a) == strip(b)
}
