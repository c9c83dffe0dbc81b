//! What the API server does to a custom resource before validating it: pruning of fields the
//! structural schema does not declare (reporting their paths), dropping `null`s the schema
//! does not allow, and filling in `default`s.
//!
//! Pruning follows the API server's rules: a node with `x-kubernetes-preserve-unknown-fields:
//! true` keeps its unknown fields (and everything below them), but declared properties below
//! it are pruned by their own schema again; at the root, and in a
//! `x-kubernetes-embedded-resource`, `apiVersion`, `kind` and `metadata` are kept.

use serde_json::{Map, Value};

use crate::meta;
use crate::schema::Schema;

/// Prunes the whole object `object` by `schema` (its root), returning the paths of the
/// removed fields (`spec.config.baseApp`, `spec.list[0].x`, `metadata.foo`), sorted.
pub(crate) fn prune_object(object: &mut Value, schema: &Schema) -> Vec<String> {
    let mut pruned = Vec::new();
    if let Some(Value::Object(meta)) = object.get_mut("metadata") {
        meta.retain(|k, _| {
            let known = meta::is_object_meta(k);
            if !known {
                pruned.push(format!("metadata.{k}"));
            }
            known
        });
    }
    prune(object, Some(schema), "", true, &mut pruned);
    pruned.sort();
    pruned
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// Whether `key` of a map at a resource root (or embedded resource) is kept unconditionally.
fn is_resource_meta(key: &str, value: &Value) -> bool {
    match key {
        "apiVersion" | "kind" => value.is_string(),
        "metadata" => value.is_object(),
        _ => false,
    }
}

fn prune(
    value: &mut Value,
    schema: Option<&Schema>,
    path: &str,
    resource: bool,
    out: &mut Vec<String>,
) {
    if let Some(s) = schema
        && s.preserve_unknown
    {
        skip_prune(value, s, path, resource, out);
        return;
    }
    match value {
        Value::Object(map) => {
            let Some(s) = schema else {
                out.extend(map.keys().map(|k| join(path, k)));
                map.clear();
                return;
            };
            let resource = resource || s.embedded_resource;
            map.retain(|key, child| {
                if resource && is_resource_meta(key, child) {
                    return true;
                }
                match s.field(key) {
                    Some(child_schema) => {
                        prune_declared(child, child_schema, &join(path, key), out);
                        true
                    }
                    None => {
                        out.push(join(path, key));
                        false
                    }
                }
            });
        }
        Value::Array(items) => {
            let item_schema = schema.and_then(|s| s.items.as_deref());
            for (i, item) in items.iter_mut().enumerate() {
                let resource = item_schema.is_some_and(|s| s.embedded_resource);
                prune(item, item_schema, &format!("{path}[{i}]"), resource, out);
            }
        }
        _ => {}
    }
}

/// Prunes a declared property (or map value) by its own schema.
fn prune_declared(child: &mut Value, schema: &Schema, path: &str, out: &mut Vec<String>) {
    prune(child, Some(schema), path, schema.embedded_resource, out);
}

/// Below a preserving node: unknown fields stay, declared ones are pruned by their schema.
fn skip_prune(
    value: &mut Value,
    schema: &Schema,
    path: &str,
    resource: bool,
    out: &mut Vec<String>,
) {
    match value {
        Value::Object(map) => {
            let resource = resource || schema.embedded_resource;
            for (key, child) in map.iter_mut() {
                if resource && is_resource_meta(key, child) {
                    continue;
                }
                if let Some(child_schema) = schema.field(key) {
                    prune_declared(child, child_schema, &join(path, key), out);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.items.as_deref() {
                for (i, item) in items.iter_mut().enumerate() {
                    skip_prune(item, item_schema, &format!("{path}[{i}]"), false, out);
                }
            }
        }
        _ => {}
    }
}

/// Drops `null` values of properties that are neither `nullable` nor defaulted, as the API
/// server does before defaulting.
pub(crate) fn drop_nulls(value: &mut Value, schema: Option<&Schema>) {
    match value {
        Value::Object(map) => {
            map.retain(|key, child| {
                let child_schema = schema.and_then(|s| s.field(key));
                let drop = child.is_null()
                    && child_schema.is_some_and(|s| !s.nullable && s.default.is_none());
                if !drop {
                    drop_nulls(child, child_schema);
                }
                !drop
            });
        }
        Value::Array(items) => {
            let item_schema = schema.and_then(|s| s.items.as_deref());
            for item in items {
                drop_nulls(item, item_schema);
            }
        }
        _ => {}
    }
}

/// Fills in the `default` of every absent property (and of a `null` one that is not
/// `nullable`), top down.
pub(crate) fn apply_defaults(value: &mut Value, schema: &Schema) {
    match value {
        Value::Object(map) => {
            for (key, property) in &schema.properties {
                let Some(default) = &property.default else {
                    continue;
                };
                let missing = match map.get(key) {
                    None => true,
                    Some(Value::Null) => !property.nullable,
                    Some(_) => false,
                };
                if missing {
                    map.insert(key.clone(), default.clone());
                }
            }
            default_children(map, schema);
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.items.as_deref() {
                for item in items {
                    apply_defaults(item, item_schema);
                }
            }
        }
        _ => {}
    }
}

fn default_children(map: &mut Map<String, Value>, schema: &Schema) {
    for (key, child) in map.iter_mut() {
        if let Some(child_schema) = schema.field(key) {
            apply_defaults(child, child_schema);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema(value: Value) -> Schema {
        let mut errors = Vec::new();
        Schema::parse(&value, "s", true, &mut errors)
    }

    fn root() -> Schema {
        schema(json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "config": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": true,
                            "properties": {
                                "namespace": {"type": "string"},
                                "database": {"type": "object", "properties": {"version": {"type": "string"}}},
                                "raw": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                            },
                        },
                        "strict": {
                            "type": "object",
                            "properties": {
                                "name": {"type": "string", "default": "n"},
                                "list": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}},
                                "maybe": {"type": "string", "nullable": true},
                                "never": {"type": "string"},
                            },
                        },
                    },
                },
            },
        }))
    }

    #[test]
    fn prunes_undeclared_fields_and_reports_their_paths() {
        let mut object = json!({
            "apiVersion": "x/v1", "kind": "X",
            "metadata": {"name": "a", "labels": {"k": "v"}, "bogus": 1},
            "spec": {
                "config": {"namespace": "ns", "baseApp": "b", "nested": {"deep": 1},
                           "database": {"version": "16", "extra": 1},
                           "raw": {"anything": {"goes": true}}},
                "strict": {"name": "x", "other": 1, "list": [{"a": "1", "b": 2}]},
            },
            "extra": true,
        });
        let pruned = prune_object(&mut object, &root());
        assert_eq!(
            pruned,
            vec![
                "extra",
                "metadata.bogus",
                "spec.config.database.extra",
                "spec.strict.list[0].b",
                "spec.strict.other",
            ]
        );
        assert_eq!(
            object,
            json!({
                "apiVersion": "x/v1", "kind": "X",
                "metadata": {"name": "a", "labels": {"k": "v"}},
                "spec": {
                    "config": {"namespace": "ns", "baseApp": "b", "nested": {"deep": 1},
                               "database": {"version": "16"},
                               "raw": {"anything": {"goes": true}}},
                    "strict": {"name": "x", "list": [{"a": "1"}]},
                },
            })
        );
    }

    #[test]
    fn a_scalar_schema_prunes_every_key_of_a_map_value() {
        let s = schema(json!({"type": "object", "properties": {"n": {"type": "integer"}}}));
        let mut object = json!({"n": {"a": 1}});
        assert_eq!(prune_object(&mut object, &s), vec!["n.a"]);
        assert_eq!(object, json!({"n": {}}));
    }

    #[test]
    fn nulls_and_defaults() {
        let s = root();
        let mut object = json!({"spec": {"strict": {"name": null, "maybe": null, "never": null, "list": [null]}}});
        drop_nulls(&mut object, Some(&s));
        apply_defaults(&mut object, &s);
        assert_eq!(
            object,
            json!({"spec": {"strict": {"name": "n", "maybe": null, "list": [null]}}})
        );
        let mut absent = json!({"spec": {"strict": {}}});
        apply_defaults(&mut absent, &s);
        assert_eq!(absent, json!({"spec": {"strict": {"name": "n"}}}));
    }
}
