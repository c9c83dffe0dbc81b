//! Creates and updates, with the real server's rules: server-owned metadata, the status
//! subresource, `generation`, field ownership, no new finalizers while deleting, and no write
//! when nothing changed.

use serde_json::{Map, Value, json};

use super::{Propagation, World, key, set_field};
use crate::admission::{FieldValidation, Part};
use crate::crd;
use crate::fields::{self, Entry, Scope};
use crate::meta;
use crate::resource::ResourceKey;
use crate::status::ApiError;
use crate::watch::Change;

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

impl World {
    /// Creates an object (POST, or an apply of an absent object). `ns` is "" for a
    /// cluster-scoped path. The body's `status` is dropped unless `keep_status`.
    pub(crate) fn create(
        &mut self,
        res: &ResourceKey,
        ns: &str,
        body: Value,
        how: Create<'_>,
    ) -> Result<Written, ApiError> {
        let Create {
            ownership,
            keep_status,
            dry_run,
            validation,
        } = how;
        let (mut body, name) = self.new_object(res, ns, body, keep_status)?;
        let part = if keep_status { Part::Whole } else { Part::Main };
        let (warnings, crd_versions) = self.admit(res, &name, None, &mut body, part, validation)?;
        record_ownership(&mut body, None, ownership, Scope::Main);
        self.kinds
            .insert(res.clone(), meta::kind(&body).to_string());
        if !dry_run {
            self.store(res, ns, &name, &mut body);
            if let Some(versions) = crd_versions {
                self.crds.register(&name, versions);
            }
            self.emit(res, Change::Added, &body, None);
            if crate::pods::is_jobs(res) {
                self.start_job_pod(ns, &body);
            }
        }
        Ok(Written {
            object: body,
            warnings,
        })
    }

    /// The object a create stores, before admission: its name (or one made from
    /// `generateName`), namespace, `apiVersion` and `kind` settled, the metadata the server
    /// owns set anew, and its `status` dropped unless `keep_status`.
    fn new_object(
        &mut self,
        res: &ResourceKey,
        ns: &str,
        mut body: Value,
        keep_status: bool,
    ) -> Result<(Value, String), ApiError> {
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
        set_namespace(meta, ns)?;
        let name = new_name(res, meta, &suffix)?;
        if self.get(res, ns, &name).is_some() {
            return Err(ApiError::already_exists(res, &name));
        }
        for field in meta::SERVER_SET_METADATA {
            meta.remove(*field);
        }
        meta.insert("name".into(), Value::String(name.clone()));
        meta.insert("uid".into(), Value::String(uid));
        meta.insert("creationTimestamp".into(), Value::String(meta::now()));
        meta.insert("generation".into(), json!(1));
        if let Some(map) = body.as_object_mut() {
            map.insert("apiVersion".into(), Value::String(api_version));
            map.insert("kind".into(), Value::String(kind));
            if !keep_status {
                map.remove("status");
            }
        }
        meta::normalize(&mut body);
        Ok((body, name))
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
        check_replacement(res, ns, name, &candidate, &old)?;
        let mut new = keep_server_fields(candidate, &old, scope);
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
        record_ownership(&mut new, Some(&old), ownership, scope);
        if new != old && !dry_run {
            self.replace(res, ns, name, &mut new, old, crd_versions);
        }
        Ok(Written {
            object: new,
            warnings,
        })
    }

    /// Stores `new` in place of `old`: with a `MODIFIED` event, or, when it is being deleted
    /// and its last finalizer went, by removing it (`DELETED`, then its dependents collected).
    fn replace(
        &mut self,
        res: &ResourceKey,
        ns: &str,
        name: &str,
        new: &mut Value,
        old: Value,
        crd_versions: Option<crd::Versions>,
    ) {
        if meta::is_deleting(new) && meta::finalizers(new).is_empty() {
            if let Some(objects) = self.objects.get_mut(res) {
                objects.remove(&key(ns, name));
            }
            self.next_rv(new);
            self.removed(res, new);
            self.emit(res, Change::Deleted, new, None);
            crate::gc::collect(self, res, new, Propagation::Background);
            return;
        }
        self.store(res, ns, name, new);
        if let Some(versions) = crd_versions {
            self.crds.register(name, versions);
        }
        self.emit(res, Change::Modified, new, Some(old));
    }
}

/// Puts the request's namespace into `meta` (removes it for a cluster-scoped path); a different
/// namespace in the body is an error.
fn set_namespace(meta: &mut Map<String, Value>, ns: &str) -> Result<(), ApiError> {
    let body_ns = meta
        .get("namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !ns.is_empty() && !body_ns.is_empty() && body_ns != ns {
        return Err(ApiError::bad_request(NAMESPACE_MISMATCH));
    }
    if ns.is_empty() {
        meta.remove("namespace");
    } else {
        meta.insert("namespace".into(), Value::String(ns.to_string()));
    }
    Ok(())
}

const NAMESPACE_MISMATCH: &str =
    "the namespace of the provided object does not match the namespace sent on the request";

/// The name of a new object: `metadata.name`, else `generateName` + `suffix`.
fn new_name(
    res: &ResourceKey,
    meta: &Map<String, Value>,
    suffix: &str,
) -> Result<String, ApiError> {
    let text = |field: &str| {
        meta.get(field)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    match (text("name"), text("generateName")) {
        (Some(name), _) => Ok(name.to_string()),
        (None, Some(prefix)) => Ok(format!("{prefix}{suffix}")),
        (None, None) => Err(ApiError::invalid(
            res,
            "",
            "metadata.name: Required value: name or generateName is required",
        )),
    }
}

/// Refuses a replacement of `old` that is not a JSON map, names another object or namespace,
/// or carries a stale `resourceVersion`.
fn check_replacement(
    res: &ResourceKey,
    ns: &str,
    name: &str,
    candidate: &Value,
    old: &Value,
) -> Result<(), ApiError> {
    if !candidate.is_object() {
        return Err(ApiError::bad_request("the object is not a JSON map"));
    }
    if let Some(body_name) = meta::meta_str(candidate, "name")
        && !body_name.is_empty()
        && body_name != name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    if let Some(body_ns) = meta::meta_str(candidate, "namespace")
        && !body_ns.is_empty()
        && !ns.is_empty()
        && body_ns != ns
    {
        return Err(ApiError::bad_request(NAMESPACE_MISMATCH));
    }
    let wanted_rv = meta::resource_version(candidate);
    if !wanted_rv.is_empty() && wanted_rv != meta::resource_version(old) {
        return Err(ApiError::conflict(res, name));
    }
    Ok(())
}

/// `candidate` with what a write to `scope` may not change taken from `old`: the status (main
/// resource) or everything but the status (status subresource), `apiVersion`, `kind` and the
/// server's metadata.
fn keep_server_fields(candidate: Value, old: &Value, scope: Scope) -> Value {
    let mut new = candidate;
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
        for field in meta::system_metadata() {
            match meta::meta(old).and_then(|m| m.get(field)) {
                Some(value) => meta.insert(field.to_string(), value.clone()),
                None => meta.remove(field),
            };
        }
    }
    new
}

/// Writes the field ownership of `new` (replacing `old`, or created): an update's manager owns
/// what it changed; an apply's entries are given.
fn record_ownership(new: &mut Value, old: Option<&Value>, ownership: Ownership<'_>, scope: Scope) {
    let previous = old.map(fields::read).unwrap_or_default();
    let mut entries = match ownership {
        Ownership::Update(manager) => {
            let mut entries = previous.clone();
            let changed = fields::changed(old, new, scope);
            let api_version = meta::api_version(new).to_string();
            fields::record_update(&mut entries, manager, scope, &changed, &api_version);
            entries
        }
        Ownership::Apply(entries) => entries,
    };
    fields::settle(&mut entries, new, &previous);
    fields::write(new, &entries);
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
