//! Field errors as the API server words them (`spec.x: Invalid value: "string": ...`), and the
//! `422 Invalid` status that lists them.

use std::fmt;

use serde_json::{Value, json};

use crate::status::ApiError;

/// What is wrong with a field.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Problem {
    /// `Invalid value: <value>` (the value already rendered).
    Invalid(String),
    /// `Invalid value: <type>`: a value of the wrong type (blocks CEL rules).
    TypeInvalid(String),
    /// `Required value`.
    Required,
    /// `Forbidden`.
    Forbidden,
    /// `Duplicate value: <value>`.
    Duplicate(String),
    /// `Unsupported value: <value>` with the supported values, rendered.
    NotSupported(String, Vec<String>),
    /// `Too long` (a string over its `maxLength`).
    TooLong,
    /// `Too many: <count>` (a list over its `maxItems`).
    TooMany(usize),
}

/// One field error.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct FieldError {
    /// The field path (`spec.config.applicationPort`, `spec.list[0]`); empty for none.
    pub field: String,
    pub problem: Problem,
    pub detail: String,
}

impl FieldError {
    /// An `Invalid value` error with `value` rendered.
    pub(crate) fn invalid(field: &str, value: &Value, detail: impl Into<String>) -> Self {
        Self {
            field: field.to_string(),
            problem: Problem::Invalid(render(value)),
            detail: detail.into(),
        }
    }

    /// An error of any other kind.
    pub(crate) fn new(field: &str, problem: Problem, detail: impl Into<String>) -> Self {
        Self {
            field: field.to_string(),
            problem,
            detail: detail.into(),
        }
    }

    /// The `reason` of the error's `StatusCause` (`FieldValueInvalid`, ...).
    pub(crate) fn reason(&self) -> &'static str {
        match self.problem {
            Problem::Invalid(_) => "FieldValueInvalid",
            Problem::TypeInvalid(_) => "FieldValueTypeInvalid",
            Problem::Required => "FieldValueRequired",
            Problem::Forbidden => "FieldValueForbidden",
            Problem::Duplicate(_) => "FieldValueDuplicate",
            Problem::NotSupported(..) => "FieldValueNotSupported",
            Problem::TooLong => "FieldValueTooLong",
            Problem::TooMany(_) => "FieldValueTooMany",
        }
    }

    /// The message without the field (`Invalid value: "object": ...`), as in `StatusCause`.
    pub(crate) fn body(&self) -> String {
        let mut body = match &self.problem {
            Problem::Invalid(value) | Problem::TypeInvalid(value) => {
                format!("Invalid value: {value}")
            }
            Problem::Required => "Required value".to_string(),
            Problem::Forbidden => "Forbidden".to_string(),
            Problem::Duplicate(value) => format!("Duplicate value: {value}"),
            Problem::NotSupported(value, supported) => format!(
                "Unsupported value: {value}: supported values: {}",
                supported.join(", ")
            ),
            Problem::TooLong => "Too long".to_string(),
            Problem::TooMany(count) => format!("Too many: {count}"),
        };
        if !self.detail.is_empty() {
            body.push_str(": ");
            body.push_str(&self.detail);
        }
        body
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = if self.field.is_empty() {
            "<nil>"
        } else {
            &self.field
        };
        write!(f, "{field}: {}", self.body())
    }
}

/// A value as the server prints a bad value: strings quoted, numbers and booleans bare,
/// `null` as `"null"`, anything else as JSON.
pub(crate) fn render(value: &Value) -> String {
    match value {
        Value::Null => "\"null\"".to_string(),
        Value::String(_) | Value::Number(_) | Value::Bool(_) => value.to_string(),
        other => other.to_string(),
    }
}

/// A field path under construction: `spec`, `spec.config`, `spec.list[0]`, `spec.labels[key]`.
pub(crate) fn child(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// `parent[index]`.
pub(crate) fn index(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// `parent[key]`: a key of a map (`additionalProperties`).
pub(crate) fn key(parent: &str, key: &str) -> String {
    format!("{parent}[{key}]")
}

/// `422 Invalid` about the object `name` of `Kind.group`, listing every error (one error
/// alone, several as `[a, b]`) with one `details.causes` entry each.
pub(crate) fn invalid(group: &str, kind: &str, name: &str, errors: &[FieldError]) -> ApiError {
    let qualified = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    let listed: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let message = match listed.as_slice() {
        [] => format!("{qualified} \"{name}\" is invalid"),
        [one] => format!("{qualified} \"{name}\" is invalid: {one}"),
        many => format!("{qualified} \"{name}\" is invalid: [{}]", many.join(", ")),
    };
    let causes: Vec<Value> = errors
        .iter()
        .map(|e| json!({"reason": e.reason(), "message": e.body(), "field": e.field}))
        .collect();
    let mut err = ApiError::new(422, "Invalid", message);
    err.details = Some(json!({"name": name, "group": group, "kind": kind, "causes": causes}));
    err
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn errors_read_like_the_servers() {
        let e = FieldError::invalid(
            "spec.config.applicationPort",
            &json!("string"),
            "spec.config.applicationPort in body must be of type integer: \"string\"",
        );
        assert_eq!(
            e.to_string(),
            "spec.config.applicationPort: Invalid value: \"string\": spec.config.applicationPort in body must be of type integer: \"string\""
        );
        assert_eq!(
            FieldError::new("spec.repo", Problem::Required, "").to_string(),
            "spec.repo: Required value"
        );
        let unsupported = FieldError::new(
            "spec.backend",
            Problem::NotSupported("\"x\"".into(), vec!["\"cnpg\"".into(), "\"kubedb\"".into()]),
            "",
        );
        assert_eq!(
            unsupported.body(),
            "Unsupported value: \"x\": supported values: \"cnpg\", \"kubedb\""
        );
        let status = invalid("example.com", "Widget", "w", &[e.clone(), e]);
        assert!(
            status
                .message
                .starts_with("Widget.example.com \"w\" is invalid: [spec.")
        );
        let causes = &status.details.unwrap()["causes"];
        assert_eq!(causes[0]["reason"], "FieldValueInvalid");
        assert_eq!(causes[0]["field"], "spec.config.applicationPort");
        assert_eq!(render(&Value::Null), "\"null\"");
        assert_eq!(key(&index(&child("spec", "l"), 2), "k"), "spec.l[2][k]");
    }
}
