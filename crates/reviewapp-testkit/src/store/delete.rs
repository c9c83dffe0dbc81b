//! Deletes: preconditions, finalizers (`deletionTimestamp` until they go), removal with a
//! `DELETED` event, and garbage collection of dependents.

use serde_json::{Value, json};

use super::{World, key};
use crate::meta;
use crate::resource::ResourceKey;
use crate::status::ApiError;
use crate::watch::Change;

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

impl World {
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
        self.store(res, ns, name, &mut new);
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
}
