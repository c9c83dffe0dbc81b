//! [`EffectsError`]: what failed, on which object, and why, in words fit for a status condition
//! or an Event. Messages never contain Secret values.

use std::fmt;

use k8s_openapi::ByteString;
use reviewapp_resources::ChildRef;
use serde_json::Value;

use crate::retry;

/// The kind of request that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verb {
    /// Server-side apply (`PATCH` with `application/apply-patch+yaml`).
    Apply,
    /// `POST` of a new object (the build Job).
    Create,
    /// `GET` of an object (the TLS source Secret, a build Job's finalizers).
    Get,
    /// `DELETE` with Background propagation.
    Delete,
    /// JSON patch of a finalizer list (the `ReviewApp`'s, or a build Job's).
    Patch,
    /// Server-side apply of the `ReviewApp`'s `/status` subresource.
    Status,
    /// Publication of a Kubernetes Event.
    Event,
    /// `GET` of a collection (a failed build Job's pods).
    List,
    /// `GET` of a pod's `log` subresource (a failed build's container).
    Log,
}

impl Verb {
    /// Short label for metrics: `apply`, `create`, `get`, `delete`, `patch`, `status`, `event`,
    /// `list`, `log`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Apply => "apply",
            Verb::Create => "create",
            Verb::Get => "get",
            Verb::Delete => "delete",
            Verb::Patch => "patch",
            Verb::Status => "status",
            Verb::Event => "event",
            Verb::List => "list",
            Verb::Log => "log",
        }
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verb::Apply => "server-side apply",
            Verb::Create => "create",
            Verb::Get => "read",
            Verb::Delete => "delete",
            Verb::Patch => "finalizer patch",
            Verb::Status => "status write",
            Verb::Event => "event publication",
            Verb::List => "list",
            Verb::Log => "log read",
        })
    }
}

/// An object named in an error: kind (`Deployment`), namespace (none for cluster-scoped objects)
/// and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // kind, namespace and name say it all
pub struct ObjectId {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectId {
    /// A namespaced object.
    pub fn namespaced(kind: &str, namespace: &str, name: &str) -> Self {
        Self {
            kind: kind.to_string(),
            namespace: Some(namespace.to_string()),
            name: name.to_string(),
        }
    }

    /// A cluster-scoped object.
    pub fn cluster(kind: &str, name: &str) -> Self {
        Self {
            kind: kind.to_string(),
            namespace: None,
            name: name.to_string(),
        }
    }
}

impl From<&ChildRef> for ObjectId {
    fn from(child: &ChildRef) -> Self {
        Self::namespaced(child.kind.kind(), &child.namespace, &child.name)
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{} {}/{}", self.kind, namespace, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// Why executing a plan (or writing a status) failed. The caller retries the whole event later.
/// `verb` is what was attempted, `object` what it concerned.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // `verb` and `object` say it all
pub enum EffectsError {
    /// The API server answered with an error status (after any retries).
    #[error("{verb} of {object} failed: {}", describe_status(*status, message))]
    Api {
        verb: Verb,
        object: ObjectId,
        /// HTTP status code (`403`, `422`, ...).
        status: u16,
        /// The server's message (Secret values redacted).
        message: String,
    },
    /// The request could not be sent or no response arrived (connection error, timeout), after
    /// any retries.
    #[error("{verb} of {object} failed: {source}")]
    Transport {
        verb: Verb,
        object: ObjectId,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// The Secret a `CopySecret` action copies from does not exist.
    #[error("source Secret {namespace}/{name} not found (it is copied into the app's namespace)")]
    MissingSource {
        /// Namespace of the source Secret.
        namespace: String,
        /// Name of the source Secret.
        name: String,
    },
    /// The object changed between reading and patching it (a failed JSON-patch `test`).
    #[error("{object} changed while its finalizers were being updated; retry with a fresh copy")]
    Conflict {
        /// The object that changed.
        object: ObjectId,
    },
    /// The request was not sent (or its answer not awaited): this replica stopped leading, its
    /// [`WriteFence`](crate::WriteFence) lapsed.
    #[error("{verb} of {object} not sent: this replica is no longer the leader")]
    Fenced { verb: Verb, object: ObjectId },
    /// A request or response body could not be (de)serialised.
    #[error("cannot serialise {object}: {message}")]
    Serialize {
        object: ObjectId,
        /// What went wrong (never includes object content).
        message: String,
    },
}

impl EffectsError {
    /// The HTTP status of an [`EffectsError::Api`] error (`404` for a missing source Secret,
    /// `409` for a conflict).
    pub fn status(&self) -> Option<u16> {
        match self {
            EffectsError::Api { status, .. } => Some(*status),
            EffectsError::MissingSource { .. } => Some(404),
            EffectsError::Conflict { .. } => Some(409),
            EffectsError::Transport { .. }
            | EffectsError::Serialize { .. }
            | EffectsError::Fenced { .. } => None,
        }
    }

    /// The object the failure concerns.
    pub fn object(&self) -> ObjectId {
        match self {
            EffectsError::Api { object, .. }
            | EffectsError::Transport { object, .. }
            | EffectsError::Conflict { object }
            | EffectsError::Serialize { object, .. }
            | EffectsError::Fenced { object, .. } => object.clone(),
            EffectsError::MissingSource { namespace, name } => {
                ObjectId::namespaced("Secret", namespace, name)
            }
        }
    }
}

/// `403 Forbidden: message`.
fn describe_status(status: u16, message: &str) -> String {
    let text = status_text(status);
    match (text.is_empty(), message.is_empty()) {
        (true, true) => status.to_string(),
        (true, false) => format!("{status}: {message}"),
        (false, true) => format!("{status} {text}"),
        (false, false) => format!("{status} {text}: {message}"),
    }
}

/// Canonical reason phrase of the HTTP statuses the API server returns.
pub(crate) fn status_text(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        409 => "Conflict",
        410 => "Gone",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

/// Removes every occurrence of `secrets` from `message`.
pub(crate) fn redact(message: &str, secrets: &[String]) -> String {
    let mut out = message.to_string();
    for secret in secrets {
        if !secret.is_empty() && out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), "<redacted>");
        }
    }
    out
}

/// Converts a client error into an [`EffectsError`] about `verb` on `object`, removing
/// `secrets` from the server's message.
pub(crate) fn from_kube(
    verb: Verb,
    object: ObjectId,
    err: kube::Error,
    secrets: &[String],
) -> EffectsError {
    match err {
        source if retry::is_fenced(&source) => EffectsError::Fenced { verb, object },
        kube::Error::Api(status) => EffectsError::Api {
            verb,
            object,
            status: retry::status_code(&status),
            message: redact(&status.message, secrets),
        },
        kube::Error::SerdeError(e) => EffectsError::Serialize {
            object,
            message: format!("unreadable response to {verb}: {}", serde_message(&e)),
        },
        source => EffectsError::Transport {
            verb,
            object,
            source,
        },
    }
}

/// A serde error's category and position, never its text (which may quote values).
pub(crate) fn serde_message(e: &serde_json::Error) -> String {
    let category = match e.classify() {
        serde_json::error::Category::Io => "I/O error",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected data",
        serde_json::error::Category::Eof => "unexpected end of input",
    };
    format!("{category} at line {} column {}", e.line(), e.column())
}

/// The values of a Secret manifest's `data` (encoded and decoded) and `stringData`, and their
/// longer lines, longest first: what must never appear in an error message.
pub(crate) fn secret_values(object: &Value) -> Vec<String> {
    if object.get("kind").and_then(Value::as_str) != Some("Secret") {
        return Vec::new();
    }
    let mut values = Vec::new();
    let mut push = |text: &str| {
        values.push(text.to_string());
        values.extend(
            text.lines()
                .map(str::trim)
                .filter(|line| line.len() >= 16)
                .map(str::to_string),
        );
    };
    if let Some(data) = object.get("data").and_then(Value::as_object) {
        for value in data.values() {
            if let Some(encoded) = value.as_str() {
                push(encoded);
            }
            if let Ok(ByteString(bytes)) = serde_json::from_value::<ByteString>(value.clone()) {
                push(&String::from_utf8_lossy(&bytes));
            }
        }
    }
    if let Some(data) = object.get("stringData").and_then(Value::as_object) {
        for value in data.values().filter_map(Value::as_str) {
            push(value);
        }
    }
    values.retain(|v| v.len() >= 4);
    values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    values.dedup();
    values
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn secret_values_cover_encoded_decoded_and_lines() {
        let object = json!({
            "kind": "Secret",
            "data": {"tls.key": "LS0tLS1CRUdJTiBLRVktLS0tLQpzZWNyZXRzZWNyZXRzZWNyZXRzZWNyZXQKLS0tLS1FTkQgS0VZLS0tLS0="},
            "stringData": {"password": "hunter22"}
        });
        let values = secret_values(&object);
        assert!(values.contains(&"hunter22".to_string()));
        assert!(values.iter().any(|v| v.starts_with("LS0tLS1CRUdJTiBLRVkt")));
        assert!(values.contains(&"secretsecretsecretsecret".to_string()));
        assert!(secret_values(&json!({"kind": "Service", "data": {"a": "bbbbbbbb"}})).is_empty());
    }

    #[test]
    fn api_error_names_verb_object_and_status() {
        let e = EffectsError::Api {
            verb: Verb::Apply,
            object: ObjectId::namespaced("Deployment", "ns", "app"),
            status: 403,
            message: "denied".into(),
        };
        assert_eq!(
            e.to_string(),
            "server-side apply of Deployment ns/app failed: 403 Forbidden: denied"
        );
        let e = EffectsError::Api {
            verb: Verb::Patch,
            object: ObjectId::cluster("ReviewApp", "test"),
            status: 599,
            message: String::new(),
        };
        assert_eq!(
            e.to_string(),
            "finalizer patch of ReviewApp test failed: 599"
        );
    }

    #[test]
    fn redact_replaces_every_occurrence() {
        let secrets = vec!["hunter22".to_string(), String::new()];
        assert_eq!(
            redact("bad hunter22 and hunter22", &secrets),
            "bad <redacted> and <redacted>"
        );
    }
}
