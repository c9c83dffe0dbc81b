//! OpenAPI validation of a (pruned, defaulted) custom resource value against its structural
//! schema: `type`, `nullable`, `x-kubernetes-int-or-string`, `required`, `enum`, `format`
//! `int32`/`int64`, `minimum`/`maximum`, `minLength`/`maxLength`, `minItems`/`maxItems`, with
//! the API server's messages (`spec.x: Invalid value: "string": spec.x in body must be of type
//! integer: "string"`).

use serde_json::Value;

use crate::field_error::{self, FieldError, Problem};
use crate::schema::Schema;

/// The OpenAPI name of a JSON value's type.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if is_integer(n) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_integer(n: &serde_json::Number) -> bool {
    n.is_i64()
        || n.is_u64()
        || n.as_f64()
            .is_some_and(|f| f.fract() == 0.0 && f.is_finite())
}

fn wrong_type(path: &str, value: &Value, expected: &str) -> FieldError {
    let actual = type_name(value);
    FieldError::new(
        path,
        Problem::TypeInvalid(format!("\"{actual}\"")),
        format!("{path} in body must be of type {expected}: \"{actual}\""),
    )
}

/// Validates `value` at `path` against `schema`, appending every error.
pub(crate) fn validate(value: &Value, schema: &Schema, path: &str, errors: &mut Vec<FieldError>) {
    if value.is_null() {
        if !schema.nullable {
            if schema.int_or_string {
                errors.push(wrong_type(path, value, "integer or string"));
            } else if let Some(expected) = &schema.type_ {
                errors.push(wrong_type(path, value, expected));
            }
        }
        return;
    }
    if schema.int_or_string {
        let ok = value.is_string() || value.as_number().is_some_and(is_integer);
        if !ok {
            errors.push(wrong_type(path, value, "integer or string"));
            return;
        }
    }
    let before = errors.len();
    match (schema.type_.as_deref(), value) {
        (Some("object"), Value::Object(map)) => object(map, schema, path, errors),
        (Some("array"), Value::Array(items)) => array(items, value, schema, path, errors),
        (Some("string"), Value::String(s)) => string(s, value, schema, path, errors),
        (Some("integer"), Value::Number(n)) if is_integer(n) => {
            integer(n, value, schema, path, errors);
        }
        (Some("number"), Value::Number(n)) => bounds(n, schema, path, value, errors),
        (Some("boolean"), Value::Bool(_)) => {}
        (
            Some(expected @ ("object" | "array" | "string" | "integer" | "number" | "boolean")),
            _,
        ) => {
            errors.push(wrong_type(path, value, expected));
        }
        _ => {}
    }
    if errors.len() == before {
        enumeration(value, schema, path, errors);
    }
}

/// `required`, then every property (or `additionalProperties` value) in turn.
fn object(
    map: &serde_json::Map<String, Value>,
    schema: &Schema,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    for required in &schema.required {
        if !map.contains_key(required) {
            errors.push(FieldError::new(
                &field_error::child(path, required),
                Problem::Required,
                "",
            ));
        }
    }
    for (key, child) in map {
        if let Some(property) = schema.properties.get(key) {
            validate(child, property, &field_error::child(path, key), errors);
        } else if let Some(additional) = schema.additional.as_deref() {
            validate(child, additional, &field_error::key(path, key), errors);
        }
    }
}

/// `maxItems`, `minItems`, then every item.
fn array(
    items: &[Value],
    value: &Value,
    schema: &Schema,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    if let Some(max) = schema.max_items
        && items.len() as u64 > max
    {
        errors.push(FieldError::new(
            path,
            Problem::TooMany(items.len()),
            format!("must have at most {max} items"),
        ));
    }
    if let Some(min) = schema.min_items
        && (items.len() as u64) < min
    {
        errors.push(FieldError::invalid(
            path,
            value,
            format!("{path} in body should have at least {min} items"),
        ));
    }
    if let Some(item_schema) = schema.items.as_deref() {
        for (i, item) in items.iter().enumerate() {
            validate(item, item_schema, &field_error::index(path, i), errors);
        }
    }
}

/// `maxLength` and `minLength`, in characters.
fn string(s: &str, value: &Value, schema: &Schema, path: &str, errors: &mut Vec<FieldError>) {
    let length = s.chars().count() as u64;
    if let Some(max) = schema.max_length
        && length > max
    {
        errors.push(FieldError::new(
            path,
            Problem::TooLong,
            format!("may not be longer than {max}"),
        ));
    }
    if let Some(min) = schema.min_length
        && length < min
    {
        errors.push(FieldError::invalid(
            path,
            value,
            format!("{path} in body should be at least {min} chars long"),
        ));
    }
}

/// `format` (`int32`, else `int64`) and the bounds.
fn integer(
    n: &serde_json::Number,
    value: &Value,
    schema: &Schema,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    let fits = match schema.format.as_deref() {
        Some("int32") => n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()),
        _ => n.is_i64() || n.as_f64().is_some_and(|f| f.abs() < 9.2e18),
    };
    if !fits {
        let format = schema.format.as_deref().unwrap_or("int64");
        errors.push(FieldError::new(
            path,
            Problem::TypeInvalid(n.to_string()),
            format!("{path} in body must be of type {format}: \"{n}\""),
        ));
    }
    bounds(n, schema, path, value, errors);
}

/// `enum`: the value must be one of those listed.
fn enumeration(value: &Value, schema: &Schema, path: &str, errors: &mut Vec<FieldError>) {
    let Some(allowed) = &schema.enumeration else {
        return;
    };
    if allowed.contains(value) {
        return;
    }
    let supported = allowed
        .iter()
        .map(|a| match a {
            Value::String(s) => format!("{:?}", s),
            other => format!("{:?}", other.to_string()),
        })
        .collect();
    errors.push(FieldError::new(
        path,
        Problem::NotSupported(field_error::render(value), supported),
        "",
    ));
}

/// `minimum`/`maximum` (with their exclusive flags).
fn bounds(
    n: &serde_json::Number,
    schema: &Schema,
    path: &str,
    value: &Value,
    errors: &mut Vec<FieldError>,
) {
    let Some(x) = n.as_f64() else {
        return;
    };
    let mut out_of_bounds = |relation: &str, bound: f64| {
        errors.push(FieldError::invalid(
            path,
            value,
            format!("{path} in body should be {relation} {bound}"),
        ));
    };
    if let Some(max) = schema.maximum {
        match schema.exclusive_maximum {
            true if x >= max => out_of_bounds("less than", max),
            false if x > max => out_of_bounds("less than or equal to", max),
            _ => {}
        }
    }
    if let Some(min) = schema.minimum {
        match schema.exclusive_minimum {
            true if x <= min => out_of_bounds("greater than", min),
            false if x < min => out_of_bounds("greater than or equal to", min),
            _ => {}
        }
    }
}

/// Whether an error keeps CEL rules from running (a value of the wrong type or outside its
/// `enum`), as on the API server.
pub(crate) fn is_blocking(error: &FieldError) -> bool {
    matches!(
        error.problem,
        Problem::TypeInvalid(_) | Problem::NotSupported(..)
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(schema: Value, value: Value) -> Vec<String> {
        let mut parse_errors = Vec::new();
        let schema = Schema::parse(&schema, "s", false, &mut parse_errors);
        let mut errors = Vec::new();
        validate(&value, &schema, "spec", &mut errors);
        let mut out: Vec<String> = errors.iter().map(ToString::to_string).collect();
        out.sort();
        out
    }

    #[test]
    fn types() {
        let schema = json!({"type": "object", "properties": {
            "port": {"type": "integer", "format": "int32", "maximum": 65535, "minimum": 1},
            "name": {"type": "string", "maxLength": 3, "minLength": 1},
            "flag": {"type": "boolean"},
            "ratio": {"type": "number"},
            "pr": {"x-kubernetes-int-or-string": true},
            "maybe": {"type": "string", "nullable": true},
            "list": {"type": "array", "maxItems": 1, "items": {"type": "string"}},
            "map": {"type": "object", "additionalProperties": {"type": "integer"}},
            "backend": {"type": "string", "enum": ["kubedb", "cnpg"]},
        }, "required": ["name"]});
        assert!(check(schema.clone(), json!({"name": "a", "port": 80, "flag": true, "ratio": 1, "pr": "7", "maybe": null, "list": ["x"], "map": {"a": 1}, "backend": "cnpg"})).is_empty());
        assert_eq!(
            check(schema.clone(), json!({"name": "a", "port": "80"})),
            vec![
                "spec.port: Invalid value: \"string\": spec.port in body must be of type integer: \"string\""
            ]
        );
        assert_eq!(
            check(schema.clone(), json!({"port": 1.5})),
            vec![
                "spec.name: Required value",
                "spec.port: Invalid value: \"number\": spec.port in body must be of type integer: \"number\"",
            ]
        );
        assert_eq!(
            check(
                schema.clone(),
                json!({"name": "abcd", "port": 70000, "pr": true, "list": ["a", 1], "map": {"k": "v"}, "backend": "x"})
            ),
            vec![
                "spec.backend: Unsupported value: \"x\": supported values: \"kubedb\", \"cnpg\"",
                "spec.list: Too many: 2: must have at most 1 items",
                "spec.list[1]: Invalid value: \"integer\": spec.list[1] in body must be of type string: \"integer\"",
                "spec.map[k]: Invalid value: \"string\": spec.map[k] in body must be of type integer: \"string\"",
                "spec.name: Too long: may not be longer than 3",
                "spec.port: Invalid value: 70000: spec.port in body should be less than or equal to 65535",
                "spec.pr: Invalid value: \"boolean\": spec.pr in body must be of type integer or string: \"boolean\"",
            ]
        );
        assert_eq!(
            check(
                schema.clone(),
                json!({"name": "", "port": 3_000_000_000_i64})
            ),
            vec![
                "spec.name: Invalid value: \"\": spec.name in body should be at least 1 chars long",
                "spec.port: Invalid value: 3000000000: spec.port in body must be of type int32: \"3000000000\"",
                "spec.port: Invalid value: 3000000000: spec.port in body should be less than or equal to 65535",
            ]
        );
        assert_eq!(
            check(
                json!({"type": "array", "items": {"type": "string"}}),
                json!([null])
            ),
            vec![
                "spec[0]: Invalid value: \"null\": spec[0] in body must be of type string: \"null\""
            ]
        );
    }
}
