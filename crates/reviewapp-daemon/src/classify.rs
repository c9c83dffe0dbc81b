//! Turns the `ReviewApp` watch stream into explicit ADD / MODIFY / DELETE events.
//!
//! [`Classifier`] is a plain state machine: no IO, no async, no clock. It remembers, per name, the
//! uid, the last resourceVersion seen and the last object that deserialized (one
//! `Arc<ReviewApp>` per app), and classifies each [`watcher::Event`]:
//!
//! | watch event | classified as |
//! |---|---|
//! | `Apply`/`InitApply` of an unknown name | ADD (DELETE if `deletionTimestamp` is set) |
//! | ... of a known name, new resourceVersion | MODIFY (DELETE if `deletionTimestamp` is set) |
//! | ... of a known name, same resourceVersion | nothing |
//! | ... of a known name with another uid | DELETE of the old object, then the new one as unknown |
//! | `Delete` | DELETE, and the name is forgotten |
//! | `InitDone` | DELETE (last known object) for every name the relist did not show |
//!
//! An object that does not deserialize is reported as [`Classified::Malformed`] once per
//! resourceVersion and never causes a DELETE by being malformed: it counts as seen in a relist,
//! and an app that turns malformed keeps its last good object. Only proof that the object itself
//! is going away (a `Delete` event, absence from a relist, a new uid, a `deletionTimestamp`)
//! produces a DELETE, carrying the last good object so teardown needs no lookup.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::DeserializeGuard;
use kube::runtime::watcher;
use reviewapp_api::ReviewApp;
use reviewapp_state::AppEvent;

/// One classified watch event.
#[derive(Clone, Debug, PartialEq)]
pub enum Classified {
    /// A ReviewApp event to schedule; `object` is the latest known object (for a DELETE of a
    /// vanished app: the last one seen, so teardown needs no lookup).
    App {
        /// `metadata.name` of the `ReviewApp`.
        name: String,
        /// ADD, MODIFY or DELETE (never RECONCILE).
        event: AppEvent,
        /// The latest known object.
        object: Arc<ReviewApp>,
    },
    /// An object that does not deserialize: report it (Warning Event/metric/log) and leave it
    /// alone.
    Malformed {
        /// `metadata.name` of the object.
        name: String,
        /// The deserialization error.
        error: String,
    },
}

/// What is remembered about one name.
#[derive(Debug)]
struct Entry {
    uid: Option<String>,
    /// resourceVersion of the last object seen, well-formed or not.
    resource_version: Option<String>,
    /// The last object that deserialized; `None` while the name has only been seen malformed
    /// (no ADD was emitted for it yet).
    object: Option<Arc<ReviewApp>>,
    /// resourceVersion of the operator's own last write recorded with `record_write`.
    own_write: Option<String>,
}

/// Whether `rv` is at or before `floor`. resourceVersions are opaque to clients, but every API
/// server numbers them with etcd revisions; when either is not a number, nothing is "older".
fn is_older(rv: Option<&str>, floor: Option<&str>) -> bool {
    match (
        rv.and_then(|r| r.parse::<u64>().ok()),
        floor.and_then(|f| f.parse::<u64>().ok()),
    ) {
        (Some(rv), Some(floor)) => rv <= floor,
        _ => false,
    }
}

/// Classifies `watcher::Event<DeserializeGuard<ReviewApp>>` into [`Classified`] events.
#[derive(Debug, Default)]
pub struct Classifier {
    entries: HashMap<String, Entry>,
    /// Names seen since the last `Init`; `Some` while a relist is in progress.
    relist: Option<HashSet<String>>,
}

impl Classifier {
    /// A classifier that knows nothing: everything it sees first is an ADD.
    pub fn new() -> Self {
        Self::default()
    }

    /// The last well-formed object seen under `name`, if any.
    pub fn last_known(&self, name: &str) -> Option<Arc<ReviewApp>> {
        self.entries.get(name).and_then(|e| e.object.clone())
    }

    /// Names of every app with a well-formed object, sorted (for the RECONCILE tick).
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.object.is_some())
            .map(|(n, _)| n.clone())
            .collect();
        names.sort();
        names
    }

    /// Every well-formed object.
    pub fn objects(&self) -> Vec<Arc<ReviewApp>> {
        self.entries
            .values()
            .filter_map(|e| e.object.clone())
            .collect()
    }

    /// Records an object the operator itself just wrote (the API server's answer to a status or
    /// finalizer patch), so that the watch event echoing that write is not classified as a
    /// MODIFY. Ignored unless the name and uid are known. Its `managedFields` are dropped, as the
    /// watch drops them: they are never read and are a large share of each object.
    pub fn record_write(&mut self, mut object: ReviewApp) {
        object.metadata.managed_fields = None;
        let Some(name) = object.metadata.name.clone() else {
            return;
        };
        if let Some(entry) = self.entries.get_mut(&name)
            && entry.uid.is_some()
            && entry.uid == object.metadata.uid
        {
            entry.resource_version = object.metadata.resource_version.clone();
            entry.own_write = object.metadata.resource_version.clone();
            entry.object = Some(Arc::new(object));
        }
    }

    /// Classifies one watch event.
    pub fn classify(
        &mut self,
        event: watcher::Event<DeserializeGuard<ReviewApp>>,
    ) -> Vec<Classified> {
        let mut out = Vec::new();
        match event {
            watcher::Event::Init => self.relist = Some(HashSet::new()),
            watcher::Event::InitApply(obj) | watcher::Event::Apply(obj) => {
                self.apply(obj, &mut out);
            }
            watcher::Event::Delete(obj) => self.delete(obj, &mut out),
            watcher::Event::InitDone => self.init_done(&mut out),
        }
        out
    }

    fn apply(&mut self, guard: DeserializeGuard<ReviewApp>, out: &mut Vec<Classified>) {
        let Some(name) = name_of(&guard) else {
            return;
        };
        if let Some(seen) = self.relist.as_mut() {
            seen.insert(name.clone());
        }
        match guard.0 {
            Ok(app) => self.apply_good(name, app, out),
            Err(invalid) => self.apply_malformed(name, invalid, out),
        }
    }

    fn apply_good(&mut self, name: String, app: ReviewApp, out: &mut Vec<Classified>) {
        let uid = app.metadata.uid.clone();
        let rv = app.metadata.resource_version.clone();
        self.forget_if_replaced(&name, uid.as_deref(), out);
        let deleting = is_deleting(&app.metadata);
        let object = Arc::new(app);
        let event = match self.entries.get_mut(&name) {
            None => {
                self.entries.insert(
                    name.clone(),
                    Entry {
                        uid,
                        resource_version: rv,
                        object: Some(object.clone()),
                        own_write: None,
                    },
                );
                if deleting {
                    AppEvent::Delete
                } else {
                    AppEvent::Add
                }
            }
            Some(entry) => {
                if entry.object.is_some() && entry.resource_version == rv && rv.is_some() {
                    return;
                }
                // The watch echoing a write older than one of our own writes recorded since
                // (say, our finalizer patch arriving after our status write): keep the newer
                // object we already hold.
                if entry.object.is_some()
                    && entry.uid == uid
                    && is_older(rv.as_deref(), entry.own_write.as_deref())
                {
                    return;
                }
                let announced = entry.object.is_some();
                entry.uid = uid;
                entry.resource_version = rv;
                entry.object = Some(object.clone());
                match (deleting, announced) {
                    (true, _) => AppEvent::Delete,
                    (false, true) => AppEvent::Modify,
                    (false, false) => AppEvent::Add,
                }
            }
        };
        out.push(Classified::App {
            name,
            event,
            object,
        });
    }

    fn apply_malformed(
        &mut self,
        name: String,
        invalid: kube::core::error_boundary::InvalidObject,
        out: &mut Vec<Classified>,
    ) {
        let meta = invalid.metadata;
        self.forget_if_replaced(&name, meta.uid.as_deref(), out);
        let deleting = is_deleting(&meta);
        let entry = self.entries.entry(name.clone()).or_insert_with(|| Entry {
            uid: meta.uid.clone(),
            resource_version: None,
            object: None,
            own_write: None,
        });
        if entry.resource_version.is_some() && entry.resource_version == meta.resource_version {
            return;
        }
        entry.uid = meta.uid;
        entry.resource_version = meta.resource_version;
        out.push(Classified::Malformed {
            name: name.clone(),
            error: invalid.error,
        });
        // The user deleted it: tear down what its last good version created, if we know it.
        // Being malformed alone never gets here.
        if deleting && let Some(object) = entry.object.clone() {
            out.push(Classified::App {
                name,
                event: AppEvent::Delete,
                object,
            });
        }
    }

    fn delete(&mut self, guard: DeserializeGuard<ReviewApp>, out: &mut Vec<Classified>) {
        let Some(name) = name_of(&guard) else {
            return;
        };
        if let Some(seen) = self.relist.as_mut() {
            seen.remove(&name);
        }
        let uid = match &guard.0 {
            Ok(app) => app.metadata.uid.clone(),
            Err(invalid) => invalid.metadata.uid.clone(),
        };
        self.forget_if_replaced(&name, uid.as_deref(), out);
        let last = self.entries.remove(&name).and_then(|e| e.object);
        let object = match guard.0 {
            Ok(app) => Some(Arc::new(app)),
            // A malformed object that is gone for good: tear down its last good version.
            Err(_) => last,
        };
        if let Some(object) = object {
            out.push(Classified::App {
                name,
                event: AppEvent::Delete,
                object,
            });
        }
    }

    fn init_done(&mut self, out: &mut Vec<Classified>) {
        let Some(seen) = self.relist.take() else {
            return;
        };
        let mut gone: Vec<String> = self
            .entries
            .keys()
            .filter(|name| !seen.contains(*name))
            .cloned()
            .collect();
        gone.sort();
        for name in gone {
            if let Some(object) = self.entries.remove(&name).and_then(|e| e.object) {
                out.push(Classified::App {
                    name,
                    event: AppEvent::Delete,
                    object,
                });
            }
        }
    }

    /// If `name` is known under another uid, the old object was deleted (and the name reused)
    /// while the watch was away: DELETE the old one and forget it.
    fn forget_if_replaced(&mut self, name: &str, uid: Option<&str>, out: &mut Vec<Classified>) {
        let replaced = match (self.entries.get(name), uid) {
            (Some(entry), Some(uid)) => entry.uid.as_deref().is_some_and(|old| old != uid),
            _ => false,
        };
        if !replaced {
            return;
        }
        if let Some(object) = self.entries.remove(name).and_then(|e| e.object) {
            out.push(Classified::App {
                name: name.to_owned(),
                event: AppEvent::Delete,
                object,
            });
        }
    }
}

fn name_of(guard: &DeserializeGuard<ReviewApp>) -> Option<String> {
    let meta = match &guard.0 {
        Ok(app) => &app.metadata,
        Err(invalid) => &invalid.metadata,
    };
    meta.name.clone()
}

fn is_deleting(meta: &ObjectMeta) -> bool {
    meta.deletion_timestamp.is_some()
}
