//! The `ReviewApp` custom resource (`reviewtron.k8s.revelry.co/v1`), the operator's configuration,
//! child naming, and the pure validation that turns a raw spec into a [`ValidatedSpec`].
//!
//! Everything here is pure: no IO, no clock.

pub mod annotations;
pub mod config;
pub mod names;
pub mod spec;
pub mod status;
pub mod validate;

pub use config::{BuilderKind, ConfigError, OperatorConfig};
pub use spec::{ReviewApp, ReviewAppSpec};
pub use status::{AppStatus, BuildStatus, ReviewAppStatus};
pub use validate::{FieldError, ValidatedSpec, validate};

/// API group of the `ReviewApp` kind (kept from the original operator).
pub const GROUP: &str = "reviewtron.k8s.revelry.co";
/// Finalizer the operator puts on every `ReviewApp` so teardown runs even after downtime.
pub const FINALIZER: &str = "reviewtron.k8s.revelry.co/teardown";
/// Finalizer on every build Job, so that its outcome is read before the Job can go (a TTL, a
/// person or garbage collection deleting a finished Job leaves it `deleting` until the operator
/// has recorded the outcome and released it).
pub const BUILD_FINALIZER: &str = "reviewtron.k8s.revelry.co/build-outcome";
/// Field manager used for every server-side apply.
pub const FIELD_MANAGER: &str = "review-app-operator";
