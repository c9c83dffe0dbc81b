//! Annotations on a `ReviewApp` that people (`kubectl annotate`) and the activator use to steer
//! its lifecycle. What each one does is in `docs/operations.md`.

/// `"true"`: the app never expires and never goes to sleep by itself.
pub const KEEP: &str = "reviewtron.k8s.revelry.co/keep";
/// An RFC 3339 instant: the app expires then, whatever `expireAfter` says.
pub const EXPIRES_AT: &str = "reviewtron.k8s.revelry.co/expires-at";
/// `"true"` puts the app to sleep now; `"false"` wakes it.
pub const SLEEP: &str = "reviewtron.k8s.revelry.co/sleep";
/// An RFC 3339 instant, written by the activator when a request reached a sleeping app: wake it.
pub const WAKE_REQUESTED_AT: &str = "reviewtron.k8s.revelry.co/wake-requested-at";
