//! JSON values as CEL values, seen through the schema: object properties under their
//! escaped names, undeclared ones left out.

use std::collections::HashMap;
use std::sync::Arc;

use cel::objects::{Key, Map};
use serde_json::Value;

use super::decl::{Decl, declared};
use crate::escape::escape;
use crate::schema::Schema;

/// The CEL value of `value` at a node of `schema` (`resource`: a resource root). Object
/// properties appear under their escaped names; properties the schema does not declare (or
/// CEL cannot see) are left out, as the API server does.
pub(crate) fn to_cel(value: &Value, schema: &Schema, resource: bool) -> cel::Value {
    match declared(schema, resource) {
        Some(decl) => convert(value, Some(schema), &decl),
        None => convert(value, None, &Decl::Dyn),
    }
}

/// `value` as a CEL value of the declared type `decl` (`schema`: its node, if known).
fn convert(value: &Value, schema: Option<&Schema>, decl: &Decl<'_>) -> cel::Value {
    match (value, decl) {
        (Value::Null, _) => cel::Value::Null,
        (Value::Bool(b), _) => cel::Value::Bool(*b),
        (Value::Number(n), Decl::Scalar("double")) => cel::Value::Float(n.as_f64().unwrap_or(0.0)),
        (Value::Number(n), _) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => cel::Value::Int(i),
            (None, Some(u)) => cel::Value::UInt(u),
            _ => cel::Value::Float(n.as_f64().unwrap_or(0.0)),
        },
        (Value::String(s), _) => string(s),
        (Value::Array(items), decl) => {
            let item_schema = schema.and_then(|s| s.items.as_deref());
            let item_decl = match decl {
                Decl::List(item) => (**item).clone(),
                _ => Decl::Dyn,
            };
            let items = items.iter().map(|i| convert(i, item_schema, &item_decl));
            cel::Value::List(Arc::new(items.collect()))
        }
        (Value::Object(map), Decl::Object(object_schema, resource)) => {
            let mut out = declared_properties(map, object_schema);
            if *resource {
                out.extend(resource_fields(map));
            }
            cel::Value::Map(Map::from(out))
        }
        (Value::Object(map), decl) => {
            let value_schema = schema.and_then(|s| s.additional.as_deref());
            let value_decl = match decl {
                Decl::Map(value) => (**value).clone(),
                _ => Decl::Dyn,
            };
            let out: HashMap<Key, cel::Value> = map
                .iter()
                .map(|(k, v)| (Key::from(k.clone()), convert(v, value_schema, &value_decl)))
                .collect();
            cel::Value::Map(Map::from(out))
        }
    }
}

fn string(s: &str) -> cel::Value {
    cel::Value::String(Arc::new(s.to_string()))
}

/// The properties of `map` that `schema` declares and CEL can see, under their escaped names.
fn declared_properties(
    map: &serde_json::Map<String, Value>,
    schema: &Schema,
) -> HashMap<Key, cel::Value> {
    let mut out = HashMap::new();
    for (name, property) in &schema.properties {
        let (Some(field), Some(child)) = (map.get(name), escape(name)) else {
            continue;
        };
        if let Some(child_decl) = declared(property, property.embedded_resource) {
            out.insert(
                Key::from(child),
                convert(field, Some(property), &child_decl),
            );
        }
    }
    out
}

/// What a resource root shows besides its schema: `apiVersion`, `kind`, and `metadata` with
/// only `name` and `generateName`.
fn resource_fields(map: &serde_json::Map<String, Value>) -> HashMap<Key, cel::Value> {
    let strings = |from: &serde_json::Map<String, Value>, fields: [&str; 2]| {
        fields
            .into_iter()
            .filter_map(|field| match from.get(field) {
                Some(Value::String(s)) => Some((Key::from(field.to_string()), string(s))),
                _ => None,
            })
            .collect::<HashMap<Key, cel::Value>>()
    };
    let mut out = strings(map, ["apiVersion", "kind"]);
    if let Some(Value::Object(meta)) = map.get("metadata") {
        let kept = strings(meta, ["name", "generateName"]);
        out.insert(
            Key::from("metadata".to_string()),
            cel::Value::Map(Map::from(kept)),
        );
    }
    out
}
