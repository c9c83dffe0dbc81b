//! The write path of a resource served by a registered CRD, in the API server's order:
//! prune undeclared fields (refused with `fieldValidation=Strict`, warned about with `Warn`),
//! drop disallowed `null`s, fill in defaults, validate against the OpenAPI schema, then run the
//! `x-kubernetes-validations` rules (transition rules only on updates, and only where the old
//! object has a value).

use serde_json::Value;

use crate::crd::Registered;
use crate::field_error::{self, FieldError, Problem};
use crate::openapi;
use crate::prune;
use crate::rules::{self, Outcome};
use crate::schema::Schema;
use crate::status::ApiError;

/// The `fieldValidation` of a write: what happens to fields the schema does not declare.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum FieldValidation {
    /// Dropped silently.
    Ignore,
    /// Dropped, with a `Warning` response header each (the default).
    #[default]
    Warn,
    /// The write is refused with `400 BadRequest`.
    Strict,
}

impl FieldValidation {
    /// Parses the `fieldValidation` query parameter (absent or empty: `Warn`).
    pub(crate) fn parse(text: Option<&str>) -> Result<Self, ApiError> {
        match text.unwrap_or_default() {
            "" | "Warn" => Ok(FieldValidation::Warn),
            "Ignore" => Ok(FieldValidation::Ignore),
            "Strict" => Ok(FieldValidation::Strict),
            other => Err(ApiError::bad_request(format!(
                "fieldValidation: Unsupported value: {other:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""
            ))),
        }
    }
}

/// Which top-level parts of the object a write validates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    /// Everything but `status` (writes to the main resource).
    Main,
    /// Only `status` (writes to the status subresource).
    Status,
    /// Everything (objects the test handle creates with a status).
    Whole,
}

impl Part {
    fn covers(self, key: &str) -> bool {
        match self {
            Part::Main => key != "status",
            Part::Status => key == "status",
            Part::Whole => true,
        }
    }
}

/// Prunes, defaults and validates `new` (the object `name` about to be stored; `old` is the
/// stored one for an update). Returns the warnings to answer with.
pub(crate) fn admit(
    registered: &Registered,
    name: &str,
    old: Option<&Value>,
    new: &mut Value,
    part: Part,
    mode: FieldValidation,
) -> Result<Vec<String>, ApiError> {
    let schema = &registered.schema;
    let pruned = prune::prune_object(new, schema);
    if mode == FieldValidation::Strict && !pruned.is_empty() {
        let listed: Vec<String> = pruned
            .iter()
            .map(|p| format!("unknown field {}", quote(p)))
            .collect();
        return Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            listed.join(", ")
        )));
    }
    prune::drop_nulls(new, Some(schema));
    prune::apply_defaults(new, schema);

    let mut errors = Vec::new();
    if let Value::Object(map) = &*new {
        for required in &schema.required {
            if part.covers(required) && !map.contains_key(required) {
                errors.push(FieldError::new(required, Problem::Required, ""));
            }
        }
        for (key, value) in map {
            if matches!(key.as_str(), "apiVersion" | "kind" | "metadata") || !part.covers(key) {
                continue;
            }
            if let Some(property) = schema.properties.get(key) {
                openapi::validate(value, property, key, &mut errors);
            }
        }
    }
    if errors.iter().any(openapi::is_blocking) {
        errors.push(FieldError::invalid(
            "",
            &Value::Null,
            "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
        ));
    } else if schema.has_rules() {
        run_root_rules(new, old, schema, part, &mut errors);
    }
    if !errors.is_empty() {
        return Err(field_error::invalid(
            &registered.group,
            &registered.kind,
            name,
            &errors,
        ));
    }
    Ok(match mode {
        FieldValidation::Warn => pruned
            .iter()
            .map(|p| format!("unknown field {}", quote(p)))
            .collect(),
        FieldValidation::Ignore | FieldValidation::Strict => Vec::new(),
    })
}

/// `"path"` as Go's `%q` quotes it.
fn quote(text: &str) -> String {
    Value::String(text.to_string()).to_string()
}

/// The root's rules (on any part), then the rules below the parts the write covers.
fn run_root_rules(
    new: &Value,
    old: Option<&Value>,
    schema: &Schema,
    part: Part,
    errors: &mut Vec<FieldError>,
) {
    check_rules(new, old, schema, "", true, errors);
    let Value::Object(map) = new else {
        return;
    };
    for (key, value) in map {
        if matches!(key.as_str(), "apiVersion" | "kind" | "metadata") || !part.covers(key) {
            continue;
        }
        if let Some(property) = schema.properties.get(key) {
            let old_value = old.and_then(|o| o.get(key));
            run_rules(value, old_value, property, key, errors);
        }
    }
}

/// The rules of `schema` and of every node below it, on `value` at `path`.
fn run_rules(
    value: &Value,
    old: Option<&Value>,
    schema: &Schema,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    if value.is_null() || !schema.has_rules() {
        return;
    }
    check_rules(value, old, schema, path, schema.embedded_resource, errors);
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let old_child = old.and_then(|o| o.get(key));
                if let Some(property) = schema.properties.get(key) {
                    run_rules(
                        child,
                        old_child,
                        property,
                        &field_error::child(path, key),
                        errors,
                    );
                } else if let Some(additional) = schema.additional.as_deref() {
                    run_rules(
                        child,
                        old_child,
                        additional,
                        &field_error::key(path, key),
                        errors,
                    );
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.items.as_deref() {
                for (i, item) in items.iter().enumerate() {
                    run_rules(
                        item,
                        None,
                        item_schema,
                        &field_error::index(path, i),
                        errors,
                    );
                }
            }
        }
        _ => {}
    }
}

/// The rules on one node.
fn check_rules(
    value: &Value,
    old: Option<&Value>,
    schema: &Schema,
    path: &str,
    resource: bool,
    errors: &mut Vec<FieldError>,
) {
    if schema.rules.is_empty() || value.is_null() {
        return;
    }
    let this = rules::to_cel(value, schema, resource);
    let old = old
        .filter(|o| !o.is_null())
        .map(|o| rules::to_cel(o, schema, resource));
    let type_name = Value::String(schema.type_.clone().unwrap_or_default());
    for rule in &schema.rules {
        if rule.transition && old.is_none() {
            continue;
        }
        match rule.evaluate(&this, old.as_ref()) {
            Outcome::Passed => {}
            Outcome::Failed(message) => {
                let field = match &rule.field_path {
                    Some(relative) => relative_path(path, relative),
                    None => path.to_string(),
                };
                let problem = match rule.reason.as_deref() {
                    Some("FieldValueForbidden") => Problem::Forbidden,
                    Some("FieldValueRequired") => Problem::Required,
                    Some("FieldValueDuplicate") => {
                        errors.push(FieldError::new(
                            &field,
                            Problem::Duplicate(field_error::render(&type_name)),
                            "",
                        ));
                        continue;
                    }
                    _ => Problem::Invalid(field_error::render(&type_name)),
                };
                errors.push(FieldError::new(&field, problem, message));
            }
            Outcome::Error(message) => errors.push(FieldError::invalid(path, &type_name, message)),
        }
    }
}

/// `path` joined with a rule's `fieldPath` (`.a.b` or `['a']`).
fn relative_path(path: &str, relative: &str) -> String {
    let relative = relative.trim();
    if let Some(rest) = relative.strip_prefix('.') {
        field_error::child(path, rest)
    } else {
        format!("{path}{relative}")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::crd;

    fn registered() -> Registered {
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com",
                "names": {"kind": "Widget", "plural": "widgets"},
                "scope": "Namespaced",
                "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {
                            "type": "object",
                            "required": ["size"],
                            "properties": {
                                "size": {"type": "integer"},
                                "color": {"type": "string", "default": "red"},
                                "items": {"type": "array", "items": {"type": "object",
                                    "properties": {"n": {"type": "integer"}},
                                    "x-kubernetes-validations": [{"rule": "self.n > 0", "message": "n must be positive", "fieldPath": ".n"}]}},
                            },
                            "x-kubernetes-validations": [
                                {"rule": "self.size < 10", "reason": "FieldValueForbidden"},
                                {"rule": "self.size >= oldSelf.size", "message": "size may only grow"},
                            ],
                        },
                        "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
                    },
                }}}],
            },
        });
        crd::compile(&crd).unwrap().remove(0).1
    }

    fn admit_new(new: Value, mode: FieldValidation) -> Result<(Value, Vec<String>), ApiError> {
        let mut new = new;
        let warnings = admit(&registered(), "w", None, &mut new, Part::Main, mode)?;
        Ok((new, warnings))
    }

    #[test]
    fn field_validation_modes() {
        let body = json!({"metadata": {"name": "w"}, "spec": {"size": 1, "b": 1, "a": 2}});
        let err = admit_new(body.clone(), FieldValidation::Strict).unwrap_err();
        assert_eq!(err.code, 400);
        assert_eq!(
            err.message,
            "strict decoding error: unknown field \"spec.a\", unknown field \"spec.b\""
        );
        let (stored, warnings) = admit_new(body.clone(), FieldValidation::Warn).unwrap();
        assert_eq!(
            warnings,
            vec!["unknown field \"spec.a\"", "unknown field \"spec.b\""]
        );
        assert_eq!(stored["spec"], json!({"size": 1, "color": "red"}));
        let (_, none) = admit_new(body, FieldValidation::Ignore).unwrap();
        assert!(none.is_empty());
        assert!(FieldValidation::parse(Some("Loose")).is_err());
        assert_eq!(FieldValidation::parse(None).unwrap(), FieldValidation::Warn);
    }

    #[test]
    fn rules_report_like_the_server() {
        let err = admit_new(json!({"spec": {"size": 12}}), FieldValidation::Warn).unwrap_err();
        assert_eq!(err.code, 422);
        assert_eq!(
            err.message,
            "Widget.example.com \"w\" is invalid: spec: Forbidden: failed rule: self.size < 10"
        );
        let err = admit_new(
            json!({"spec": {"size": 1, "items": [{"n": 1}, {"n": 0}]}}),
            FieldValidation::Warn,
        )
        .unwrap_err();
        assert_eq!(
            err.message,
            "Widget.example.com \"w\" is invalid: spec.items[1].n: Invalid value: \"object\": n must be positive"
        );
        // Transition rules: not on create, on update against the old value.
        let old = json!({"spec": {"size": 5}});
        let mut shrunk = json!({"spec": {"size": 4}});
        let err = admit(
            &registered(),
            "w",
            Some(&old),
            &mut shrunk,
            Part::Main,
            FieldValidation::Warn,
        )
        .unwrap_err();
        let details = err.details.unwrap();
        assert_eq!(details["causes"][0]["field"], "spec");
        assert_eq!(
            details["causes"][0]["message"],
            "Invalid value: \"object\": size may only grow"
        );
        assert_eq!(details["kind"], "Widget");
    }

    #[test]
    fn type_errors_block_rules_and_parts_are_respected() {
        let err = admit_new(json!({"spec": {"size": "big"}}), FieldValidation::Warn).unwrap_err();
        assert_eq!(
            err.message,
            "Widget.example.com \"w\" is invalid: [spec.size: Invalid value: \"string\": spec.size in body must be of type integer: \"string\", <nil>: Invalid value: \"null\": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation]"
        );
        // A status write does not validate the spec (a stored bad spec stays writable).
        let check = |mut object: Value, part: Part| {
            admit(
                &registered(),
                "w",
                None,
                &mut object,
                part,
                FieldValidation::Warn,
            )
            .is_ok()
        };
        assert!(check(
            json!({"spec": {"size": 99}, "status": {"ready": true}}),
            Part::Status
        ));
        let bad_status = json!({"spec": {"size": 1}, "status": {"ready": "yes"}});
        assert!(check(bad_status.clone(), Part::Main));
        assert!(!check(bad_status, Part::Whole));
    }
}
