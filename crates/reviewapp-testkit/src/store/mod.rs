//! [`World`]: every stored object, the global resourceVersion counter and the watch events;
//! the write rules shared by every verb (system metadata, status subresource, generation,
//! ownership, finalizers, no-op detection) are in `write`, deletes and finalizers in `delete`.

mod delete;
mod write;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::mpsc::UnboundedSender;

pub(crate) use self::delete::{Deleted, Preconditions, Propagation};
pub(crate) use self::write::{Create, Ownership, Write, Written};
use crate::admission::{self, FieldValidation, Part};
use crate::crd::{self, Registered, Registry};
use crate::meta;
use crate::pages::Pages;
use crate::resource::ResourceKey;
use crate::selector::Filter;
use crate::status::ApiError;
use crate::watch::{Change, Item, Recorded, Start, WatchHub, WatchSpec};

/// `(namespace or "", name)`.
pub(crate) type ObjName = (String, String);

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
    /// Pod logs a test set: (namespace, pod, container) → text.
    pod_logs: BTreeMap<(String, String, String), String>,
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
            pod_logs: BTreeMap::new(),
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

    /// Stores `object` under a new resourceVersion (written into it); no event.
    fn store(&mut self, res: &ResourceKey, ns: &str, name: &str, object: &mut Value) {
        self.next_rv(object);
        self.objects
            .entry(res.clone())
            .or_default()
            .insert(key(ns, name), object.clone());
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

    /// The log a test set for `container` of pod `ns`/`pod`.
    pub(crate) fn pod_log(&self, ns: &str, pod: &str, container: &str) -> Option<&str> {
        self.pod_logs
            .get(&(ns.to_string(), pod.to_string(), container.to_string()))
            .map(String::as_str)
    }

    /// Sets the log of `container` of pod `ns`/`pod`.
    pub(crate) fn set_pod_log(&mut self, ns: &str, pod: &str, container: &str, text: &str) {
        self.pod_logs.insert(
            (ns.to_string(), pod.to_string(), container.to_string()),
            text.to_string(),
        );
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
