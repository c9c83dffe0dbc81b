//! JSON merge patch (RFC 7386) and JSON patch (RFC 6902) on `serde_json::Value`s.

use serde_json::{Map, Value};

/// Applies an RFC 7386 merge patch to `target` (a `null` removes a field; maps merge; anything
/// else replaces).
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(map) = target else {
        return;
    };
    for (key, value) in patch {
        if value.is_null() {
            map.remove(key);
        } else {
            merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// Why a JSON patch could not be applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JsonPatchError {
    /// The body is not a list of operations.
    #[error("invalid JSON patch: {0}")]
    Malformed(String),
    /// An operation could not be applied (missing path, failed `test`, ...).
    #[error("{0}")]
    Failed(String),
}

/// Applies an RFC 6902 JSON patch to `target`, all or nothing. As on the real API server, a
/// `test` of a missing path compares its value with `null`.
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), JsonPatchError> {
    let ops = patch
        .as_array()
        .ok_or_else(|| JsonPatchError::Malformed("the patch is not a JSON array".into()))?;
    let mut doc = target.clone();
    for (index, op) in ops.iter().enumerate() {
        apply_op(&mut doc, op).map_err(|e| match e {
            JsonPatchError::Failed(m) => JsonPatchError::Failed(format!("operation {index}: {m}")),
            other => other,
        })?;
    }
    *target = doc;
    Ok(())
}

fn str_field<'a>(op: &'a Value, field: &str) -> Result<&'a str, JsonPatchError> {
    op.get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| JsonPatchError::Malformed(format!("operation without a string {field:?}")))
}

fn value_field(op: &Value) -> Result<Value, JsonPatchError> {
    op.get("value")
        .cloned()
        .ok_or_else(|| JsonPatchError::Malformed("operation without \"value\"".into()))
}

fn apply_op(doc: &mut Value, op: &Value) -> Result<(), JsonPatchError> {
    let kind = str_field(op, "op")?;
    let path = parse_pointer(str_field(op, "path")?)?;
    match kind {
        "add" => add(doc, &path, value_field(op)?),
        "remove" => remove(doc, &path).map(|_| ()),
        "replace" => {
            let value = value_field(op)?;
            let slot = get_mut(doc, &path).ok_or_else(|| missing(&path))?;
            *slot = value;
            Ok(())
        }
        "test" => {
            let expected = value_field(op)?;
            let actual = get(doc, &path).cloned().unwrap_or(Value::Null);
            if actual == expected {
                Ok(())
            } else {
                Err(JsonPatchError::Failed(format!(
                    "testing value {} failed",
                    display(&path)
                )))
            }
        }
        "move" => {
            let from = parse_pointer(str_field(op, "from")?)?;
            if path.len() > from.len() && path.starts_with(&from) {
                return Err(JsonPatchError::Failed(
                    "cannot move a value into one of its children".into(),
                ));
            }
            let value = remove(doc, &from)?;
            add(doc, &path, value)
        }
        "copy" => {
            let from = parse_pointer(str_field(op, "from")?)?;
            let value = get(doc, &from).cloned().ok_or_else(|| missing(&from))?;
            add(doc, &path, value)
        }
        other => Err(JsonPatchError::Malformed(format!(
            "unknown operation {other:?}"
        ))),
    }
}

/// Parses a JSON pointer (`/a/b~1c` → `["a", "b/c"]`).
pub fn parse_pointer(pointer: &str) -> Result<Vec<String>, JsonPatchError> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let rest = pointer
        .strip_prefix('/')
        .ok_or_else(|| JsonPatchError::Malformed(format!("invalid pointer {pointer:?}")))?;
    Ok(rest
        .split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn display(path: &[String]) -> String {
    if path.is_empty() {
        return "/".into();
    }
    path.iter()
        .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
        .collect()
}

fn missing(path: &[String]) -> JsonPatchError {
    JsonPatchError::Failed(format!("path {} does not exist", display(path)))
}

fn array_index(segment: &str, len: usize, allow_end: bool) -> Option<usize> {
    if segment == "-" {
        return allow_end.then_some(len);
    }
    if segment.len() > 1 && segment.starts_with('0') {
        return None;
    }
    let index: usize = segment.parse().ok()?;
    let limit = if allow_end {
        len
    } else {
        len.saturating_sub(1)
    };
    (index <= limit && (allow_end || len > 0)).then_some(index)
}

fn get<'a>(doc: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut current = doc;
    for segment in path {
        current = match current {
            Value::Object(map) => map.get(segment)?,
            Value::Array(list) => list.get(array_index(segment, list.len(), false)?)?,
            _ => return None,
        };
    }
    Some(current)
}

fn get_mut<'a>(doc: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    let mut current = doc;
    for segment in path {
        current = match current {
            Value::Object(map) => map.get_mut(segment)?,
            Value::Array(list) => {
                let index = array_index(segment, list.len(), false)?;
                list.get_mut(index)?
            }
            _ => return None,
        };
    }
    Some(current)
}

fn add(doc: &mut Value, path: &[String], value: Value) -> Result<(), JsonPatchError> {
    let Some((last, parent_path)) = path.split_last() else {
        *doc = value;
        return Ok(());
    };
    let parent = get_mut(doc, parent_path).ok_or_else(|| missing(parent_path))?;
    match parent {
        Value::Object(map) => {
            map.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(list) => {
            let index = array_index(last, list.len(), true).ok_or_else(|| missing(path))?;
            list.insert(index, value);
            Ok(())
        }
        _ => Err(missing(path)),
    }
}

fn remove(doc: &mut Value, path: &[String]) -> Result<Value, JsonPatchError> {
    let Some((last, parent_path)) = path.split_last() else {
        return Err(JsonPatchError::Failed(
            "cannot remove the whole document".into(),
        ));
    };
    let parent = get_mut(doc, parent_path).ok_or_else(|| missing(path))?;
    match parent {
        Value::Object(map) => map.remove(last).ok_or_else(|| missing(path)),
        Value::Array(list) => {
            let index = array_index(last, list.len(), false).ok_or_else(|| missing(path))?;
            Ok(list.remove(index))
        }
        _ => Err(missing(path)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        merge_patch(
            &mut doc,
            &json!({"a": "z", "c": {"f": null}, "l": [3], "n": {"x": 1}}),
        );
        assert_eq!(
            doc,
            json!({"a": "z", "c": {"d": "e"}, "l": [3], "n": {"x": 1}})
        );
        merge_patch(&mut doc, &json!(["whole"]));
        assert_eq!(doc, json!(["whole"]));
    }

    #[test]
    fn json_patch_operations() {
        let mut doc = json!({"metadata": {"name": "a"}, "list": [1, 2]});
        json_patch(
            &mut doc,
            &json!([
                {"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": ["f"]},
                {"op": "add", "path": "/metadata/finalizers/-", "value": "g"},
                {"op": "replace", "path": "/list/0", "value": 9},
                {"op": "copy", "from": "/list", "path": "/copied"},
                {"op": "move", "from": "/copied/1", "path": "/moved"},
                {"op": "remove", "path": "/list/1"},
                {"op": "add", "path": "/a~1b", "value": true},
            ]),
        )
        .unwrap();
        assert_eq!(
            doc,
            json!({"metadata": {"name": "a", "finalizers": ["f", "g"]}, "list": [9],
                   "copied": [9], "moved": 2, "a/b": true})
        );
    }

    #[test]
    fn json_patch_is_all_or_nothing() {
        let mut doc = json!({"metadata": {"finalizers": ["f"]}});
        let before = doc.clone();
        let err = json_patch(
            &mut doc,
            &json!([
                {"op": "remove", "path": "/metadata/finalizers/0"},
                {"op": "test", "path": "/metadata/finalizers/0", "value": "f"},
            ]),
        )
        .unwrap_err();
        assert!(matches!(err, JsonPatchError::Failed(_)));
        assert_eq!(doc, before);
        assert!(json_patch(&mut doc, &json!([{"op": "remove", "path": "/nope"}])).is_err());
        assert!(
            json_patch(
                &mut doc,
                &json!([{"op": "add", "path": "/x/y", "value": 1}])
            )
            .is_err()
        );
        assert!(matches!(
            json_patch(&mut doc, &json!({"op": "add"})),
            Err(JsonPatchError::Malformed(_))
        ));
        assert!(
            json_patch(
                &mut doc,
                &json!([{"op": "replace", "path": "/metadata/finalizers/5", "value": 1}])
            )
            .is_err()
        );
    }
}
