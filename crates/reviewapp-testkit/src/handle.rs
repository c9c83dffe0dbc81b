//! [`Handle`]: what tests use to look at and drive the emulated cluster: objects, Job outcomes,
//! the request log, fault injection and watch disruption.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::admission::FieldValidation;
use crate::apply::{self, ApplyParams};
use crate::faults::{Faults, RequestMatcher, Selection};
use crate::fields::Scope;
use crate::meta;
use crate::outage::{Gate, Outage};
use crate::resource::{self, ResourceKey};
use crate::route;
use crate::selector::Filter;
use crate::status::ApiError;
use crate::store::{Create, Ownership, Preconditions, Propagation, World, Write};

/// Field manager of the handle's own writes.
pub const TESTKIT_MANAGER: &str = "reviewapp-testkit";

/// The request header whose value [`RequestRecord::actor`] records: a client that sets it (say
/// the operator's, with `operator`) can be told apart in the log and in fault predicates.
pub const ACTOR_HEADER: &str = "x-reviewapp-actor";

/// Requests kept in the log; older ones are dropped.
const LOG_LIMIT: usize = 100_000;

/// One request the emulator answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    /// HTTP method (`GET`, `POST`, ...).
    pub method: String,
    /// Path, without the query string.
    pub path: String,
    /// Raw query string (`""` when none).
    pub query: String,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// Whether it was a watch (`watch=true`).
    pub watch: bool,
    /// The HTTP status answered (200 for a watch stream that started; 0 while a fault
    /// predicate looks at the request).
    pub status: u16,
    /// The value of the [`ACTOR_HEADER`] request header, if sent.
    pub actor: Option<String>,
    /// When the emulator received it (before any injected latency).
    pub received: Instant,
}

impl RequestRecord {
    /// Whether the method writes (POST, PUT, PATCH, DELETE).
    pub fn is_write(&self) -> bool {
        matches!(self.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE")
    }
}

/// State shared by the server and every handle.
pub(crate) struct Shared {
    world: Mutex<World>,
    faults: Mutex<Faults>,
    log: Mutex<VecDeque<RequestRecord>>,
    /// The outage switch of the listener and every connection.
    pub(crate) gate: Arc<Gate>,
}

impl Shared {
    pub(crate) fn new(world: World) -> Self {
        Self {
            world: Mutex::new(world),
            faults: Mutex::new(Faults::new()),
            log: Mutex::new(VecDeque::new()),
            gate: Arc::new(Gate::new()),
        }
    }

    /// The world, locked (a poisoned lock is still used: every write leaves it consistent).
    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The fault configuration, locked.
    pub(crate) fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends to the request log.
    pub(crate) fn log(&self, record: RequestRecord) {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if log.len() >= LOG_LIMIT {
            log.pop_front();
        }
        log.push_back(record);
    }

    fn log_lock(&self) -> MutexGuard<'_, VecDeque<RequestRecord>> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A cheap, cloneable handle on an emulator's state (see [`crate::Emulator::handle`]). Every
/// method is synchronous and never blocks on the network. Writes through the handle produce
/// watch events like API writes, but are not in the request log and never fail by injection.
#[derive(Clone)]
pub struct Handle {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("resource_version", &self.resource_version())
            .finish_non_exhaustive()
    }
}

/// The path of one object: `object_path("batch", "v1", "jobs", Some("ns"), "j")` is
/// `/apis/batch/v1/namespaces/ns/jobs/j`.
pub fn object_path(
    group: &str,
    version: &str,
    plural: &str,
    namespace: Option<&str>,
    name: &str,
) -> String {
    format!(
        "{}/{name}",
        ResourceKey::new(group, version, plural).collection_path(namespace)
    )
}

/// Resolves an object path to (resource, namespace or "", name).
fn resolve(path: &str) -> Result<(ResourceKey, String, String), ApiError> {
    match route::parse_path(path) {
        Some(route::Target {
            res,
            namespace,
            name: Some(name),
            subresource: None,
        }) => Ok((res, namespace.unwrap_or_default(), name)),
        _ => Err(ApiError::bad_request(format!(
            "not an object path: {path:?}"
        ))),
    }
}

/// Where an object with `apiVersion`, `kind` and `metadata` lives: the plural and scope come
/// from a registered CRD serving the kind, else from the table of known kinds.
fn locate(world: &World, object: &Value) -> Result<(ResourceKey, String, String), ApiError> {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
    let api_version = text(object.get("apiVersion"));
    let kind = text(object.get("kind"));
    if api_version.is_empty() || kind.is_empty() {
        return Err(ApiError::bad_request(
            "the object needs apiVersion and kind",
        ));
    }
    let (group, version) = resource::split_api_version(&api_version);
    let (plural, namespaced) = match world.registered_kind(group, version, &kind) {
        Some((plural, namespaced)) => (plural, Some(namespaced)),
        None => resource::plural_of(&kind),
    };
    let given = meta::namespace(object).to_string();
    let ns = match namespaced {
        Some(true) if given.is_empty() => "default".to_string(),
        Some(false) => String::new(),
        _ => given,
    };
    Ok((
        ResourceKey::new(group, version, &plural),
        ns,
        meta::name(object).to_string(),
    ))
}

impl Handle {
    /// The world, locked.
    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        self.shared.world()
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.world().resource_version()
    }

    /// Number of stored objects.
    pub fn object_count(&self) -> usize {
        self.world().len()
    }

    /// The object at `path` (`/api/v1/namespaces/ns/configmaps/name`, ...).
    pub fn get(&self, path: &str) -> Option<Value> {
        let (res, ns, name) = resolve(path).ok()?;
        self.world().get(&res, &ns, &name).cloned()
    }

    /// One object by resource and name (`namespace` `None` for cluster-scoped objects).
    pub fn get_object(
        &self,
        group: &str,
        version: &str,
        plural: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let res = ResourceKey::new(group, version, plural);
        self.world()
            .get(&res, namespace.unwrap_or_default(), name)
            .cloned()
    }

    /// Objects of a resource, in one namespace or all, matching a label selector (an invalid
    /// selector matches nothing).
    pub fn list(
        &self,
        group: &str,
        version: &str,
        plural: &str,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Vec<Value> {
        let Ok(filter) = Filter::parse(label_selector, None) else {
            return Vec::new();
        };
        let res = ResourceKey::new(group, version, plural);
        self.world().list(&res, namespace, &filter)
    }

    /// Creates an object from its JSON (`apiVersion`, `kind`, `metadata.name`, and
    /// `metadata.namespace` for namespaced kinds, "default" when absent). Unlike a POST, a
    /// `status` in the object is kept, so tests can seed objects with a status.
    ///
    /// Like every handle write, it is validated as an API write with `fieldValidation=Strict`:
    /// a `CustomResourceDefinition` is compiled and registers its schemas (or is refused with
    /// `422`), an object of a registered CRD is pruned, defaulted and validated (its status
    /// too), and a field its schema does not declare is a `400` rather than dropped silently.
    pub fn create(&self, object: Value) -> Result<Value, ApiError> {
        let mut world = self.world();
        let (res, ns, _) = locate(&world, &object)?;
        world
            .create(
                &res,
                &ns,
                object,
                Create {
                    ownership: Ownership::Update(TESTKIT_MANAGER),
                    keep_status: true,
                    dry_run: false,
                    validation: FieldValidation::Strict,
                },
            )
            .map(|written| written.object)
    }

    /// Server-side applies an object (field manager [`TESTKIT_MANAGER`], forced), creating it
    /// when absent. The status is ignored, as on the main resource. Validated like
    /// [`Handle::create`]: applying a `CustomResourceDefinition` (re)registers its schemas.
    pub fn apply(&self, object: Value) -> Result<Value, ApiError> {
        let mut world = self.world();
        let (res, ns, name) = locate(&world, &object)?;
        let params = ApplyParams {
            manager: TESTKIT_MANAGER,
            force: true,
            scope: Scope::Main,
            validation: FieldValidation::Strict,
        };
        apply::server_side_apply(&mut world, &res, &ns, &name, &object, &params, false)
            .map(|(written, _)| written.object)
    }

    /// Replaces the `status` of the object at `path` through the status rules (watchers see
    /// `MODIFIED`); validated like [`Handle::create`].
    pub fn set_status(&self, path: &str, status: Value) -> Result<Value, ApiError> {
        let (res, ns, name) = resolve(path)?;
        self.world()
            .update(
                &res,
                &ns,
                &name,
                json!({ "status": status }),
                Write {
                    scope: Scope::Status,
                    ownership: Ownership::Update(TESTKIT_MANAGER),
                    dry_run: false,
                    validation: FieldValidation::Strict,
                },
            )
            .map(|written| written.object)
    }

    /// Whether a `CustomResourceDefinition` written through the API or the handle serves
    /// `group/version/plural`: its writes are then pruned, defaulted and validated.
    pub fn is_schema_registered(&self, group: &str, version: &str, plural: &str) -> bool {
        self.world()
            .schema_of(&ResourceKey::new(group, version, plural))
            .is_some()
    }

    /// Deletes the object at `path` as a DELETE with Background propagation would (finalizers
    /// honoured, dependents collected).
    pub fn delete(&self, path: &str) -> Result<(), ApiError> {
        let (res, ns, name) = resolve(path)?;
        self.world()
            .delete(
                &res,
                &ns,
                &name,
                Propagation::Background,
                &Preconditions::default(),
                false,
            )
            .map(|_| ())
    }

    /// Removes the object at `path` at once, ignoring its finalizers (as if someone deleted it
    /// behind the operator's back and stripped its finalizers): watchers get `DELETED`, and its
    /// dependents are garbage-collected. Returns whether it existed.
    pub fn delete_behind_back(&self, path: &str) -> bool {
        let Ok((res, ns, name)) = resolve(path) else {
            return false;
        };
        self.world()
            .remove(&res, &ns, &name, Propagation::Background)
            .is_some()
    }

    /// Makes a resource answer `404 NotFound` to every API request, as when its CRD is not
    /// installed (`available: false`), or serves it again. Stored objects are kept, and the
    /// handle still reads and writes them.
    pub fn set_resource_available(
        &self,
        group: &str,
        version: &str,
        plural: &str,
        available: bool,
    ) {
        self.world()
            .set_available(&ResourceKey::new(group, version, plural), available);
    }

    /// Every logged request, oldest first (the last 100 000 at most).
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.log_lock().iter().cloned().collect()
    }

    /// Empties the request log.
    pub fn clear_requests(&self) {
        self.shared.log_lock().clear();
    }

    /// Number of logged writes (POST, PUT, PATCH, DELETE), failed ones included.
    pub fn write_count(&self) -> usize {
        self.write_count_where(|_| true)
    }

    /// Number of logged writes for which `predicate` holds.
    pub fn write_count_where(&self, predicate: impl Fn(&RequestRecord) -> bool) -> usize {
        self.shared
            .log_lock()
            .iter()
            .filter(|r| r.is_write() && predicate(r))
            .count()
    }

    /// The next `n` requests matching `matcher` fail with `code` and a `Status` body (a 429
    /// carries `retryAfterSeconds: 0`). Note that kube's client retries 429, 503 and 504 by
    /// itself (up to 15 times), so those codes only reach the caller when `n` is larger.
    pub fn fail_next(&self, matcher: RequestMatcher, n: u64, status_code: u16) {
        self.shared
            .faults()
            .fail_next(Selection::Fields(matcher), n, status_code);
    }

    /// Like [`Handle::fail_next`] for the requests `predicate` selects (it sees the request
    /// with `status` 0), e.g. `|r| r.actor.as_deref() == Some("operator")`.
    pub fn fail_next_where(
        &self,
        n: u64,
        status_code: u16,
        predicate: impl Fn(&RequestRecord) -> bool + Send + 'static,
    ) {
        self.shared
            .faults()
            .fail_next(Selection::Predicate(Box::new(predicate)), n, status_code);
    }

    /// Fails `ratio` (0.0–1.0) of non-watch requests with 500, 429 or 409, chosen by a
    /// generator seeded with `seed`: the same request sequence fails the same way every run.
    /// `fail_ratio(0.0, _)` turns it off.
    pub fn fail_ratio(&self, ratio: f64, seed: u64) {
        self.shared.faults().fail_ratio(ratio, seed, None);
    }

    /// Like [`Handle::fail_ratio`], for the non-watch requests `predicate` selects only.
    pub fn fail_ratio_where(
        &self,
        ratio: f64,
        seed: u64,
        predicate: impl Fn(&RequestRecord) -> bool + Send + 'static,
    ) {
        self.shared
            .faults()
            .fail_ratio(ratio, seed, Some(Box::new(predicate)));
    }

    /// Removes every `fail_next` rule and the failure ratio.
    pub fn clear_faults(&self) {
        self.shared.faults().clear();
    }

    /// Delays every request by `latency` before it is handled (`Duration::ZERO`: none).
    pub fn set_latency(&self, latency: Duration) {
        self.shared.faults().latency = latency;
    }

    /// Makes the API server unreachable, for every client, until [`Handle::end_outage`]:
    /// [`Outage::Refuse`] as a stopped server (port closed, open connections and watches reset),
    /// [`Outage::Hang`] as a network partition (requests and watches hang, then are reset when
    /// the outage ends). Requests caught in it never reach the emulator and are not logged. The
    /// handle keeps working meanwhile (the world goes on without the clients).
    pub fn start_outage(&self, outage: Outage) {
        self.shared.gate.set(Some(outage));
    }

    /// Ends an outage: the server accepts connections again on the same address.
    pub fn end_outage(&self) {
        self.shared.gate.set(None);
    }

    /// The current outage, if any.
    pub fn outage(&self) -> Option<Outage> {
        self.shared.gate.outage()
    }

    /// Ends every open watch stream now (events already sent are delivered first); clients
    /// resume from their last resourceVersion.
    pub fn cut_watches(&self) {
        self.world().watches.cut();
    }

    /// Drops the event history: open watches end with a `410 Expired` error event and any
    /// watch resuming from an older resourceVersion gets one too, so watchers relist. The
    /// continue tokens of unfinished paginated lists expire too.
    pub fn expire_resource_versions(&self) {
        let mut world = self.world();
        let rv = world.resource_version();
        world.watches.expire(rv);
        world.pages.expire();
    }

    /// Number of watch streams currently open.
    pub fn open_watches(&self) -> usize {
        self.world().watches.open_count()
    }
}
