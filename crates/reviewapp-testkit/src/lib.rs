//! An in-process Kubernetes API emulator, so that end-to-end tests, the `demo` command and the
//! benchmarks can drive the real operator daemon and the real kube client over HTTP where no
//! API server can run.
//!
//! [`Emulator::start`] serves plain HTTP on `127.0.0.1:<free port>` in a tokio task;
//! [`Emulator::client`] is a `kube::Client` for it and [`Emulator::kubeconfig_yaml`] a
//! kubeconfig for other processes. [`Emulator::handle`] gives a [`Handle`] to look at objects,
//! finish Jobs, read the request log, inject faults and disturb watches.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use reviewapp_testkit::{Emulator, RequestMatcher};
//! let emulator = Emulator::start().await?;
//! let client = emulator.client(); // give it to the daemon
//! let handle = emulator.handle();
//! // ... the daemon creates a build Job ...
//! handle.set_job_succeeded("builds", "app-42--c8c9aa334a")?;
//! handle.fail_next(RequestMatcher::method("PATCH"), 1, 500);
//! assert!(handle.write_count_where(|r| r.path.contains("/deployments/")) > 0);
//! # Ok(()) }
//! ```
//!
//! # What it serves
//!
//! - Any `group/version/plural`: `/api/v1/...` and `/apis/{group}/{version}/...`, namespaced
//!   under `/namespaces/{ns}/`, cluster-scoped otherwise (`/api/v1/namespaces/{name}` is the
//!   Namespace itself). Nothing needs registering: a resource exists once written.
//! - One global resourceVersion counter; `uid`, `creationTimestamp`, `generation` (1 on
//!   create, +1 only when something outside `metadata` and `status` changes).
//! - get, list (label selectors `=`, `==`, `!=`, `key`, `!key`, `in`, `notin`; field
//!   selectors), watch (newline-delimited JSON events, replay from a bounded per-resource
//!   history, `410 Expired` error events, bookmarks, `timeoutSeconds`, `sendInitialEvents`),
//!   create (`generateName` too), replace with optimistic concurrency, patch (server-side apply,
//!   merge, JSON patch), delete with finalizers and garbage collection, deletecollection,
//!   `dryRun=All`.
//! - The `status` subresource for every resource, as the real server does it: a create drops
//!   the status, writes to the main resource keep the stored status, writes to `/status`
//!   change only the status (a status apply body needs no `metadata.name`).
//! - Writes that change nothing (same content, same field ownership) store nothing: no new
//!   resourceVersion, no watch event.
//! - Metadata-only answers (`PartialObjectMetadata[List]`) when the `Accept` header asks.
//! - Empty `finalizers`, `labels`, `annotations`, `ownerReferences` are omitted, as the real
//!   server's `omitempty` does (so a JSON patch `test` of an absent list against `null` passes).
//! - `CustomResourceDefinition`s (`apiextensions.k8s.io/v1`, written by any verb or by the
//!   handle) register the schema of every served version for their group, version and plural.
//!   Every `x-kubernetes-validations` rule is compiled first (with the `cel` crate) under
//!   Kubernetes' property-name escaping (`namespace` is `__namespace__`, `x-y` is
//!   `x__dash__y`, ...): a rule that does not parse, or that selects a field the schema does
//!   not declare (`undefined field 'namespace'`), makes the CRD a `422 Invalid` worded like the
//!   server's, and nothing is stored. An accepted CRD gets the `NamesAccepted` and
//!   `Established` conditions, `acceptedNames` and `storedVersions`; deleting it unregisters
//!   its schemas.
//! - Writes of a resource with a registered schema (create, replace, merge and JSON patch,
//!   server-side apply; the main resource validates everything but `status`, `/status` only
//!   `status`), in the server's order: fields the structural schema does not declare are
//!   pruned (except below `x-kubernetes-preserve-unknown-fields`, where only declared
//!   properties are pruned by their own schema; unknown `metadata` fields go too), and
//!   `fieldValidation` decides: `Strict` answers `400` (`strict decoding error: unknown field
//!   "spec.x", ...`) and stores nothing, `Warn` (the default) stores the pruned object and
//!   answers a `Warning: 299 - "unknown field \"spec.x\""` header per field, `Ignore` prunes
//!   silently. Then `null`s of fields that are neither `nullable` nor defaulted are dropped,
//!   `default`s are filled in, the OpenAPI checks run (`type`, `nullable`,
//!   `x-kubernetes-int-or-string`, `required`, `enum`, `format` `int32`/`int64`,
//!   `minimum`/`maximum`, `minLength`/`maxLength`, `minItems`/`maxItems`) and, when no value
//!   has the wrong type, the CEL rules (`self` is the value at the rule's node; transition
//!   rules, those reading `oldSelf`, only on updates where the old object has a value there;
//!   `message`, `messageExpression`, `reason`, `fieldPath`). Failures answer `422 Invalid`
//!   (`ReviewApp.group "name" is invalid: spec: Invalid value: "object": <message>`, one
//!   `details.causes` entry per error).
//! - The TTL-after-finished controller ([`Options::ttl_after_finished`], on by default): a
//!   `batch/v1` Job with `spec.ttlSecondsAfterFinished` whose `Complete` or `Failed` condition
//!   is `True` is deleted (`Foreground`, with a uid precondition, as kube-controller-manager
//!   does) once the TTL has passed since that condition's `lastTransitionTime` (a Job without
//!   one is left alone): at once if it already has, otherwise by a timer armed for that
//!   instant. A Job with finalizers gets its `deletionTimestamp` and stays until they go.
//!
//! # Driving the world from a test
//!
//! [`Handle`] reads and writes objects directly ([`Handle::get`], [`Handle::list`],
//! [`Handle::create`], [`Handle::apply`], [`Handle::set_status`], [`Handle::delete`],
//! [`Handle::delete_behind_back`]; [`Handle::is_schema_registered`] tells whether a CRD
//! serves a resource), finishes Jobs ([`Handle::set_job_succeeded`],
//! [`Handle::set_job_failed`]), rolls Deployments out ([`Handle::set_deployment_available`]),
//! keeps a request log ([`Handle::requests`],
//! [`Handle::write_count_where`]; a client sending the [`ACTOR_HEADER`] header is recorded as
//! that actor), injects faults ([`Handle::fail_next`], [`Handle::fail_ratio`], their `_where`
//! variants taking a predicate, [`Handle::set_latency`]) and disturbs watches
//! ([`Handle::cut_watches`], [`Handle::expire_resource_versions`]).
//!
//! kube's client retries `429`, `503` and `504` answers by itself (up to 15 times, with
//! backoff), so an injected 429 only reaches the caller when it repeats; the request log shows
//! every attempt.
//!
//! # What it simplifies (compared with a real API server)
//!
//! - No authentication, authorization (RBAC), admission webhooks or conversion. Built-in
//!   resources, and custom resources whose CRD was not written, are not validated, defaulted
//!   or pruned: any JSON object is stored as sent (`fieldValidation` is ignored for them).
//!   Namespaces need not exist before objects are created in them; discovery is limited to
//!   `/version`, `/api`, `/apis` (an empty group list).
//! - Every resource exists, as if every CRD were installed; [`Handle::set_resource_available`]
//!   makes one answer 404 like a missing CRD. A CRD's `scope` does not change which paths
//!   serve its resource; its versions are not converted into each other; its objects stay
//!   when it is deleted (the server deletes them), and objects stored before it was written
//!   are not pruned or defaulted until their next write (the server does both on read too).
//! - Of a CRD itself only the rules are checked (plus `metadata.name` = plural.group and a
//!   schema per version): the schema is not checked for being structural, nor are names,
//!   defaults or list types. Status subresources exist whether or not `subresources.status`
//!   is declared.
//! - Schema validation leaves out `pattern`, string `format`s (`date-time`, `byte`, ...),
//!   `minProperties`/`maxProperties`, `multipleOf`, `uniqueItems`, `anyOf`/`oneOf`/`allOf`/
//!   `not`, `x-kubernetes-list-type`/`-map-keys` (lists are never merged or checked for
//!   duplicates), embedded resources' metadata, and ratcheting (unchanged invalid values are
//!   refused again). Server-side apply reports unknown fields like every other write (the
//!   server words them differently for apply); duplicate JSON keys are not reported.
//! - CEL: rules run on cel-rust, not cel-go. Compiling checks syntax, field selections on
//!   `self`/`oldSelf` against the schema (under the escaping rules; fields of a
//!   preserve-unknown-fields object that are not declared are not visible, as on the server),
//!   selections on scalars and lists, and unknown variables, but has no other type checking
//!   (wrong argument types, unknown functions and non-boolean rules only show when a rule
//!   runs) and no cost estimation or runtime cost limit. The environment is cel-rust's
//!   standard library with the strings extension and `matches()`; Kubernetes' own libraries
//!   are missing (lists `isSorted`/`sum`/`min`/`max`/`indexOf`, regex `find`/`findAll`,
//!   `url`, `ip`/`cidr`, `quantity`, `semver`, `format`, sets, `cel.bind`), and so are
//!   `timestamp`/`duration` (strings with a date or duration `format` are plain strings): a
//!   rule using them fails as a runtime error. `optionalOldSelf` is not honoured, and
//!   transition rules below list items never run (old list items are not correlated).
//! - Versions are separate stores: `apps/v1` and `apps/v1beta1` deployments do not share objects.
//! - `metadata.generation` is kept for every resource (the real server has none for, say,
//!   ConfigMaps).
//! - [`Handle`] writes bypass HTTP: they are not logged, never fail by injection, and
//!   [`Handle::create`] keeps a `status` so tests can seed one. They are validated like API
//!   writes with `fieldValidation=Strict` (a CRD registers, an object of a registered CRD is
//!   pruned, defaulted and checked, an unknown field is an error rather than silently lost).
//! - No controllers except the garbage collector and the Jobs' TTL-after-finished controller:
//!   Deployments never get pods or a status by themselves (tests report them rolled out with
//!   [`Handle::set_deployment_available`], once per change: a later scale leaves the status
//!   as it was, with an older `observedGeneration`), Jobs never run (tests set their status
//!   with [`Handle::set_job_succeeded`] and friends), Namespaces have no phase. The TTL controller
//!   runs on the emulator's clock (the system clock, whole seconds as written in `metav1.Time`
//!   fields, so a one-second TTL may run out up to a second early); its deletes are not in the
//!   request log. Garbage collection runs synchronously right after the owner is
//!   removed (before the response) instead of asynchronously; `Foreground` is treated as
//!   `Background`; `Orphan` removes the owner references; no `orphan`/`foregroundDeletion`
//!   finalizers are added; dependents whose owner never existed are not collected. Deleting a
//!   Namespace deletes its contents at once (honouring their finalizers).
//! - Server-side apply tracks ownership at leaf-path granularity: every list is atomic (no
//!   merge keys, no `k:`/`v:` members), an empty map is a leaf, and a `null` in an applied
//!   configuration removes the field. Conflicts are only reported between different manager
//!   names; non-apply writes (create, replace, patch) make their manager (`fieldManager`, else
//!   the user agent's product name) own the paths they changed. `managedFields` sent by clients
//!   are ignored.
//! - `application/strategic-merge-patch+json` is applied as a JSON merge patch (lists are
//!   replaced, no `$patch` directives).
//! - Lists honour `limit` and `continue` as etcd does: the first page fixes a snapshot and
//!   later pages come from it at the first page's resourceVersion (`remainingItemCount` is
//!   set). At most 16 unfinished lists are kept; an evicted one, or any after
//!   [`Handle::expire_resource_versions`], answers `410 Expired`. List
//!   `resourceVersion`/`resourceVersionMatch` are ignored (first pages are always current).
//! - The watch history is bounded per resource ([`Options::history_limit`]); a resume from an
//!   older resourceVersion (or anything before [`Handle::expire_resource_versions`], which
//!   also ends every open watch that way) gets a `410 Expired` error event. Bookmarks come every [`Options::bookmark_interval`] when the
//!   resourceVersion moved. A watch without `timeoutSeconds` ends after 30 minutes.
//! - Deletion has no grace periods: `deletionTimestamp` is set with
//!   `deletionGracePeriodSeconds: 0` when finalizers remain, and the object goes as soon as an
//!   update empties them (the update is answered with the last state, watchers see `DELETED`).
//!   An immediate delete answers a `Status` with `status: Success`.
//! - No protobuf, no table output, no HTTP/2, no `exec`/`logs`/`scale` or other subresources,
//!   no `PUT` that creates.
//! - Outages ([`Handle::start_outage`]) act on the TCP connections of the one emulated server:
//!   a refusing outage closes the port and binds the same port again when it ends; a hanging one
//!   never serves a request sent during it (a real partition may still deliver a delayed request
//!   late, through TCP retransmission), and a connection that saw any outage is reset when it
//!   ends. The handle and in-process subscriptions ([`Handle::subscribe`]) are not affected.

mod admission;
mod apply;
mod crd;
mod deployment_status;
mod escape;
mod faults;
mod field_error;
mod fields;
mod gc;
mod handle;
mod job_status;
mod meta;
mod openapi;
mod outage;
mod pages;
mod patch;
mod prune;
mod resource;
mod route;
mod rules;
mod schema;
mod selector;
mod server;
mod status;
mod store;
mod subscription;
mod ttl;
mod verbs;
mod watch;

pub use faults::RequestMatcher;
pub use handle::{ACTOR_HEADER, Handle, RequestRecord, TESTKIT_MANAGER, object_path};
pub use outage::Outage;
pub use patch::{JsonPatchError, json_patch, merge_patch};
pub use resource::{ResourceKey, plural_of, split_api_version};
pub use route::{Target, parse_path};
pub use selector::{FieldSelector, Filter, LabelSelector};
pub use server::{Emulator, EmulatorError, Options};
pub use status::ApiError;
pub use subscription::{ObjectEvent, Subscription};
