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
//!
//! # Driving the world from a test
//!
//! [`Handle`] reads and writes objects directly ([`Handle::get`], [`Handle::list`],
//! [`Handle::create`], [`Handle::apply`], [`Handle::set_status`], [`Handle::delete`],
//! [`Handle::delete_behind_back`]), finishes Jobs ([`Handle::set_job_succeeded`],
//! [`Handle::set_job_failed`]), keeps a request log ([`Handle::requests`],
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
//! - No authentication, authorization (RBAC), admission, validation, defaulting, schema
//!   pruning, CEL rules or conversion: any JSON object is stored as sent. Namespaces need not
//!   exist before objects are created in them; discovery is limited to `/version`, `/api`,
//!   `/apis` (an empty group list).
//! - Every resource exists, as if every CRD were installed; [`Handle::set_resource_available`]
//!   makes one answer 404 like a missing CRD.
//! - Versions are separate stores: `apps/v1` and `apps/v1beta1` deployments do not share objects.
//! - `metadata.generation` is kept for every resource (the real server has none for, say,
//!   ConfigMaps).
//! - [`Handle`] writes bypass HTTP: they are not logged, never fail by injection, and
//!   [`Handle::create`] keeps a `status` so tests can seed one.
//! - No controllers except the garbage collector: Deployments never get pods or a status,
//!   Jobs never run (tests set their status with [`Handle::set_job_succeeded`] and friends),
//!   Namespaces have no phase. Garbage collection runs synchronously right after the owner is
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

mod apply;
mod faults;
mod fields;
mod gc;
mod handle;
mod meta;
mod outage;
mod pages;
mod patch;
mod resource;
mod route;
mod selector;
mod server;
mod status;
mod store;
mod verbs;
mod watch;

pub use faults::RequestMatcher;
pub use handle::{
    ACTOR_HEADER, Handle, ObjectEvent, RequestRecord, Subscription, TESTKIT_MANAGER, object_path,
};
pub use outage::Outage;
pub use patch::{JsonPatchError, json_patch, merge_patch};
pub use resource::{ResourceKey, plural_of, split_api_version};
pub use route::{Target, parse_path};
pub use selector::{FieldSelector, Filter, LabelSelector};
pub use server::{Emulator, EmulatorError, Options};
pub use status::ApiError;
