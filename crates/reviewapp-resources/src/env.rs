//! Container environment variables: a literal value, or a key of a Secret.

use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, SecretKeySelector};

/// `name` set to `value`.
pub(crate) fn literal(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.to_string()),
        value_from: None,
    }
}

/// `name` read from the Secret key `key` when the container starts.
pub(crate) fn from_secret(name: &str, key: SecretKeySelector) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(key),
            ..EnvVarSource::default()
        }),
    }
}
