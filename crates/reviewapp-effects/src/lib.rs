//! Executes a rendered [`Plan`](reviewapp_resources::Plan) against the Kubernetes API.
//!
//! Server-side apply of every child (one field manager, `force`), create-or-adopt of build Jobs,
//! deletes with `propagationPolicy: Background` (404 is done), the `ReviewApp` status through the
//! `/status` subresource only, the `ReviewApp`'s finalizer and the build Jobs' build-outcome
//! finalizer through JSON patches guarded by a `test`, and Kubernetes Events through
//! one shared `events.k8s.io/v1` recorder. Transient failures (409, 429, 5xx, timeouts) are
//! retried with jittered exponential backoff. Nothing is written when the desired state already
//! holds: the caller's [`LiveIndex`] says what exists, and applied manifests are remembered.
//! Nothing at all is sent once the leader's [`WriteFence`] lapsed.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use reviewapp_resources::ChildRef;

mod api;
mod applied;
mod children;
mod error;
mod events;
mod executor;
mod fence;
mod finalizer;
mod retry;
mod status;

pub use error::{EffectsError, ObjectId, Verb};
pub use executor::{Effects, Report};
pub use fence::{Fenced, WriteFence};
pub use retry::RetryPolicy;

/// What the daemon's watch caches know about one child object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The object exists with this `metadata.resourceVersion`.
    Present {
        /// Its current resourceVersion.
        resource_version: String,
    },
    /// The object does not exist (its kind is watched and the cache is synced).
    Absent,
    /// Nothing is known (the kind is not watched, say a database CRD that is not installed).
    Unknown,
}

/// Annotation on every applied object: the hash of the manifest that was applied. After a
/// restart (when the in-process memory of applies is empty) an object whose annotation matches
/// the desired manifest is adopted instead of being applied again.
pub const APPLIED_HASH_ANNOTATION: &str = "reviewtron.k8s.revelry.co/applied-hash";

/// Read access to the daemon's caches of child objects.
pub trait LiveIndex: Send + Sync {
    /// What is known about `child`.
    fn lookup(&self, child: &ChildRef) -> Lookup;

    /// The [`APPLIED_HASH_ANNOTATION`] of `child` as the cache last saw it, if known.
    fn applied_hash(&self, _child: &ChildRef) -> Option<String> {
        None
    }

    /// The finalizers of the build Job `job` as a watch cache last saw them: `Some(list)` (empty
    /// for a Job the synced cache does not hold), or `None` when nothing is known, and the
    /// effects layer reads the Job before releasing it.
    fn job_finalizers(&self, _job: &ChildRef) -> Option<Vec<String>> {
        None
    }

    /// Whether the Deployment `child` has an available replica at its current generation, as a
    /// watch cache last saw it (`false` when nothing is known).
    fn available(&self, _child: &ChildRef) -> bool {
        false
    }

    /// A Secret the operator copies (the wildcard TLS Secret), from a watch cache. With
    /// [`SecretLookup::Unknown`] (the default) the effects layer reads it from the API.
    fn source_secret(&self, _namespace: &str, _name: &str) -> SecretLookup {
        SecretLookup::Unknown
    }
}

/// What a watch cache knows of a source Secret (see [`LiveIndex::source_secret`]).
#[derive(Clone, PartialEq)]
pub enum SecretLookup {
    /// The Secret as last seen.
    Found(Arc<Secret>),
    /// It does not exist (the cache is synced).
    Absent,
    /// Not watched, or not listed yet: read it from the API.
    Unknown,
}

/// Never prints the Secret's data.
impl std::fmt::Debug for SecretLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Found(secret) => f
                .debug_struct("Found")
                .field("name", &secret.metadata.name)
                .field("resource_version", &secret.metadata.resource_version)
                .finish_non_exhaustive(),
            Self::Absent => f.write_str("Absent"),
            Self::Unknown => f.write_str("Unknown"),
        }
    }
}

/// An index that knows nothing: every lookup is [`Lookup::Unknown`], so every action is sent.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoIndex;

impl LiveIndex for NoIndex {
    fn lookup(&self, _: &ChildRef) -> Lookup {
        Lookup::Unknown
    }
}

/// Receives one call per API request the effects layer sends (for metrics).
pub trait ApiObserver: Send + Sync {
    /// Called once per attempt (retries included). `verb` is `apply`, `create`, `delete`, `get`,
    /// `patch` (finalizers of ReviewApps and build Jobs), `status` or `event` (see
    /// [`Verb::as_str`]); `kind` the object's kind;
    /// `code` the HTTP status, or `None` when no response arrived (timeout, connection error).
    /// kube does not expose the status of a success: 201 is reported for a create, 200 otherwise.
    fn request(&self, verb: &'static str, kind: &str, code: Option<u16>);
}

/// An observer that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoObserver;

impl ApiObserver for NoObserver {
    fn request(&self, _: &'static str, _: &str, _: Option<u16>) {}
}

/// Shared handle to an observer.
pub type Observer = Arc<dyn ApiObserver>;
