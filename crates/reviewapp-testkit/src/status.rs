//! [`ApiError`]: a failed request, rendered as a `meta/v1` `Status` like the real API server's.

use serde_json::{Value, json};

use crate::resource::ResourceKey;

/// A request the emulator refused, with the HTTP code, `reason` and message of the `Status`
/// body it answers with.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `Status.reason` (`NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, ...).
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// `Status.details`, when there are any.
    pub details: Option<Value>,
}

impl ApiError {
    /// An error without details.
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.to_string(),
            message: message.into(),
            details: None,
        }
    }

    fn with_object(mut self, res: &ResourceKey, name: &str) -> Self {
        self.details = Some(json!({"name": name, "group": res.group, "kind": res.plural}));
        self
    }

    /// `404 NotFound` for an object.
    pub(crate) fn not_found(res: &ResourceKey, name: &str) -> Self {
        Self::new(404, "NotFound", format!("{res} \"{name}\" not found")).with_object(res, name)
    }

    /// `409 AlreadyExists` for an object.
    pub(crate) fn already_exists(res: &ResourceKey, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{res} \"{name}\" already exists"),
        )
        .with_object(res, name)
    }

    /// `409 Conflict`: a stale `resourceVersion` (or uid precondition).
    pub(crate) fn conflict(res: &ResourceKey, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {res} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again"
            ),
        )
        .with_object(res, name)
    }

    /// `409 Conflict` of a server-side apply: `conflicts` are (manager, field) pairs.
    pub(crate) fn apply_conflict(
        res: &ResourceKey,
        name: &str,
        conflicts: &[(String, String)],
    ) -> Self {
        let listed: Vec<String> = conflicts
            .iter()
            .map(|(manager, field)| format!("conflict with \"{manager}\": {field}"))
            .collect();
        let message = match listed.as_slice() {
            [one] => format!("Apply failed with 1 conflict: {one}"),
            many => format!(
                "Apply failed with {} conflicts: {}",
                many.len(),
                many.join("\n")
            ),
        };
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|(manager, field)| {
                json!({
                    "reason": "FieldManagerConflict",
                    "message": format!("conflict with \"{manager}\""),
                    "field": field,
                })
            })
            .collect();
        let mut err = Self::new(409, "Conflict", message).with_object(res, name);
        if let Some(details) = err.details.as_mut().and_then(Value::as_object_mut) {
            details.insert("causes".into(), Value::Array(causes));
        }
        err
    }

    /// `400 BadRequest`.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// `422 Invalid` about an object.
    pub(crate) fn invalid(res: &ResourceKey, name: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::new(
            422,
            "Invalid",
            format!("{res} \"{name}\" is invalid: {message}"),
        )
        .with_object(res, name)
    }

    /// `405 MethodNotAllowed`.
    pub(crate) fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    /// `415 UnsupportedMediaType`.
    pub(crate) fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {content_type:?})"
            ),
        )
    }

    /// An injected fault with this code (see [`crate::Handle::fail_next`]).
    pub(crate) fn injected(code: u16) -> Self {
        let reason = reason_of(code);
        let mut err = Self::new(code, reason, format!("injected fault: {code} {reason}"));
        if code == 429 {
            err.details = Some(json!({"retryAfterSeconds": 0}));
        }
        err
    }

    /// The `410 Expired` status a watch ends with when its resourceVersion is too old.
    pub(crate) fn expired() -> Self {
        Self::new(410, "Expired", "too old resource version")
    }

    /// The `Status` JSON body.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let (Some(details), Some(map)) = (&self.details, status.as_object_mut()) {
            map.insert("details".into(), details.clone());
        }
        status
    }
}

/// The `Status.reason` the API server uses for an HTTP code.
fn reason_of(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Expired",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}

/// The `Status` of a successful immediate delete.
pub(crate) fn deleted(res: &ResourceKey, name: &str, uid: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": name, "group": res.group, "kind": res.plural, "uid": uid},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_look_like_the_api_servers() {
        let cms = ResourceKey::new("", "v1", "configmaps");
        let s = ApiError::not_found(&cms, "a").to_status();
        assert_eq!(s["message"], "configmaps \"a\" not found");
        assert_eq!(s["code"], 404);
        assert_eq!(s["details"]["kind"], "configmaps");
        let jobs = ResourceKey::new("batch", "v1", "jobs");
        assert_eq!(
            ApiError::already_exists(&jobs, "j").message,
            "jobs.batch \"j\" already exists"
        );
        let c = ApiError::apply_conflict(&cms, "a", &[("m".into(), ".data.k".into())]);
        assert_eq!(
            c.message,
            "Apply failed with 1 conflict: conflict with \"m\": .data.k"
        );
        assert_eq!(
            ApiError::injected(429).to_status()["details"]["retryAfterSeconds"],
            0
        );
    }
}
