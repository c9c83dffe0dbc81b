//! Field ownership (`metadata.managedFields`), simplified: each entry owns a set of leaf paths
//! (map keys only; lists and empty maps are leaves, so lists are atomic), stored in the real
//! `FieldsV1` shape (`{"f:data": {"f:key": {}}}`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::meta;

/// A path of map keys from the object root.
pub(crate) type FieldPath = Vec<String>;
/// A set of owned paths.
pub(crate) type FieldSet = BTreeSet<FieldPath>;

/// Which part of an object a write may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The main resource: everything but `status` (and server-owned metadata).
    Main,
    /// The `status` subresource: only `status`.
    Status,
}

impl Scope {
    /// The `subresource` field of a managedFields entry.
    pub(crate) fn subresource(self) -> &'static str {
        match self {
            Scope::Main => "",
            Scope::Status => "status",
        }
    }
}

/// `Apply` (server-side apply) or `Update` (every other write).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    Apply,
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One `managedFields` entry.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Entry {
    pub manager: String,
    pub operation: Operation,
    pub subresource: String,
    pub api_version: String,
    pub time: String,
    pub fields: FieldSet,
}

impl Entry {
    fn same_slot(&self, other: &Entry) -> bool {
        self.manager == other.manager
            && self.operation == other.operation
            && self.subresource == other.subresource
    }
}

/// Reads `metadata.managedFields` (entries it cannot read are skipped).
pub(crate) fn read(object: &Value) -> Vec<Entry> {
    let Some(list) = meta::meta(object)
        .and_then(|m| m.get("managedFields"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|e| {
            let operation = match e.get("operation").and_then(Value::as_str) {
                Some("Apply") => Operation::Apply,
                Some("Update") => Operation::Update,
                _ => return None,
            };
            let text = |k: &str| {
                e.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let mut fields = FieldSet::new();
            if let Some(tree) = e.get("fieldsV1") {
                parse_fields_v1(tree, &mut Vec::new(), &mut fields);
            }
            Some(Entry {
                manager: text("manager"),
                operation,
                subresource: text("subresource"),
                api_version: text("apiVersion"),
                time: text("time"),
                fields,
            })
        })
        .collect()
}

/// Writes `entries` as `metadata.managedFields` (removing it when empty).
pub(crate) fn write(object: &mut Value, entries: &[Entry]) {
    let Some(meta) = meta::meta_mut(object) else {
        return;
    };
    if entries.is_empty() {
        meta.remove("managedFields");
        return;
    }
    let list: Vec<Value> = entries
        .iter()
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation.as_str(),
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(&e.fields),
            });
            if !e.subresource.is_empty()
                && let Some(map) = v.as_object_mut()
            {
                map.insert("subresource".into(), Value::String(e.subresource.clone()));
            }
            v
        })
        .collect();
    meta.insert("managedFields".into(), Value::Array(list));
}

fn parse_fields_v1(tree: &Value, path: &mut FieldPath, out: &mut FieldSet) {
    let Some(map) = tree.as_object() else {
        return;
    };
    if map.is_empty() {
        if !path.is_empty() {
            out.insert(path.clone());
        }
        return;
    }
    for (key, child) in map {
        if key == "." {
            if !path.is_empty() {
                out.insert(path.clone());
            }
        } else if let Some(field) = key.strip_prefix("f:") {
            path.push(field.to_string());
            parse_fields_v1(child, path, out);
            path.pop();
        } else if !path.is_empty() {
            // `k:`, `v:`, `i:` list members: the list counts as one atomic leaf.
            out.insert(path.clone());
        }
    }
}

fn to_fields_v1(fields: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in fields {
        insert_path(&mut root, path);
    }
    strip_lone_dots(&mut root);
    Value::Object(root)
}

fn insert_path(node: &mut Map<String, Value>, path: &[String]) {
    match path.split_first() {
        None => {
            node.insert(".".into(), Value::Object(Map::new()));
        }
        Some((head, rest)) => {
            let child = node
                .entry(format!("f:{head}"))
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(child) = child {
                insert_path(child, rest);
            }
        }
    }
}

/// `{".": {}}` alone means "this leaf": written as `{}`.
fn strip_lone_dots(map: &mut Map<String, Value>) {
    if map.len() == 1 && map.contains_key(".") {
        map.remove(".");
        return;
    }
    for child in map.values_mut() {
        if let Value::Object(child) = child {
            strip_lone_dots(child);
        }
    }
}

/// The leaf paths of `object` within `scope`, with their values.
pub(crate) fn leaves(object: &Value, scope: Scope) -> BTreeMap<FieldPath, &Value> {
    let mut out = BTreeMap::new();
    let Some(map) = object.as_object() else {
        return out;
    };
    for (key, value) in map {
        match (scope, key.as_str()) {
            (Scope::Status, "status") => collect(value, vec![key.clone()], &mut out),
            (Scope::Status, _) | (Scope::Main, "apiVersion" | "kind" | "status") => {}
            (Scope::Main, "metadata") => {
                if let Some(meta) = value.as_object() {
                    for (field, v) in meta {
                        if !meta::is_system_metadata(field) {
                            collect(v, vec![key.clone(), field.clone()], &mut out);
                        }
                    }
                }
            }
            (Scope::Main, _) => collect(value, vec![key.clone()], &mut out),
        }
    }
    out
}

fn collect<'a>(value: &'a Value, path: FieldPath, out: &mut BTreeMap<FieldPath, &'a Value>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                let mut p = path.clone();
                p.push(key.clone());
                collect(child, p, out);
            }
        }
        _ => {
            out.insert(path, value);
        }
    }
}

/// The value at `path`.
pub(crate) fn value_at<'a>(object: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(object, |v, key| v.get(key))
}

/// Leaf paths of `new` (within `scope`) whose value differs from `old`'s.
pub(crate) fn changed(old: Option<&Value>, new: &Value, scope: Scope) -> FieldSet {
    leaves(new, scope)
        .into_iter()
        .filter(|(path, value)| old.and_then(|o| value_at(o, path)) != Some(*value))
        .map(|(path, _)| path)
        .collect()
}

/// Records an `Update` by `manager`: it takes every changed path from the other entries.
pub(crate) fn record_update(
    entries: &mut Vec<Entry>,
    manager: &str,
    scope: Scope,
    changed: &FieldSet,
    api_version: &str,
) {
    if changed.is_empty() {
        return;
    }
    for entry in entries.iter_mut() {
        entry.fields.retain(|p| !changed.contains(p));
    }
    let slot = Entry {
        manager: manager.to_string(),
        operation: Operation::Update,
        subresource: scope.subresource().to_string(),
        api_version: api_version.to_string(),
        time: meta::now(),
        fields: FieldSet::new(),
    };
    match entries.iter_mut().find(|e| e.same_slot(&slot)) {
        Some(entry) => {
            entry.fields.extend(changed.iter().cloned());
            entry.time = slot.time;
            entry.api_version = slot.api_version;
        }
        None => entries.push(Entry {
            fields: changed.clone(),
            ..slot
        }),
    }
}

/// Drops owned paths that no longer exist in `object`, then empty entries; an entry whose
/// fields did not change keeps its previous time.
pub(crate) fn settle(entries: &mut Vec<Entry>, object: &Value, previous: &[Entry]) {
    for entry in entries.iter_mut() {
        entry.fields.retain(|p| value_at(object, p).is_some());
        if let Some(old) = previous.iter().find(|o| o.same_slot(entry))
            && old.fields == entry.fields
        {
            entry.time.clone_from(&old.time);
            entry.api_version.clone_from(&old.api_version);
        }
    }
    entries.retain(|e| !e.fields.is_empty());
}

/// `.data.key`: how the API server prints a field path.
pub(crate) fn display_path(path: &[String]) -> String {
    path.iter().map(|s| format!(".{s}")).collect()
}

/// Removes the value at `path`, then every ancestor map this leaves empty (never the root or
/// `metadata` itself).
pub(crate) fn remove_path(object: &mut Value, path: &[String]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    let mut node = Some(&mut *object);
    for key in parent {
        node = node.and_then(|n| n.get_mut(key));
    }
    if let Some(Value::Object(map)) = node {
        map.remove(last);
    }
    let mut depth = parent.len();
    while depth > 0 {
        let ancestor = path.get(..depth).unwrap_or_default();
        if ancestor == ["metadata".to_string()] {
            break;
        }
        let empty = matches!(value_at(object, ancestor), Some(Value::Object(m)) if m.is_empty());
        if !empty {
            break;
        }
        let Some((leaf, above)) = ancestor.split_last() else {
            break;
        };
        let mut node = Some(&mut *object);
        for key in above {
            node = node.and_then(|n| n.get_mut(key));
        }
        if let Some(Value::Object(map)) = node {
            map.remove(leaf);
        }
        depth -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> FieldPath {
        s.split('.').map(str::to_string).collect()
    }

    #[test]
    fn leaves_by_scope() {
        let o = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "uid": "u", "labels": {"x": "1"}, "finalizers": ["f"]},
            "data": {"k": "v", "empty": {}}, "list": [1, {"a": 2}],
            "status": {"phase": "Done"}
        });
        let main: Vec<FieldPath> = leaves(&o, Scope::Main).into_keys().collect();
        assert_eq!(
            main,
            vec![
                p("data.empty"),
                p("data.k"),
                p("list"),
                p("metadata.finalizers"),
                p("metadata.labels.x")
            ]
        );
        let status: Vec<FieldPath> = leaves(&o, Scope::Status).into_keys().collect();
        assert_eq!(status, vec![p("status.phase")]);
    }

    #[test]
    fn fields_v1_round_trip() {
        let set: FieldSet = [
            p("data.k"),
            p("spec"),
            p("spec.x.y"),
            p("metadata.labels.a"),
        ]
        .into_iter()
        .collect();
        let tree = to_fields_v1(&set);
        assert_eq!(
            tree,
            json!({"f:data": {"f:k": {}}, "f:metadata": {"f:labels": {"f:a": {}}},
                   "f:spec": {".": {}, "f:x": {"f:y": {}}}})
        );
        let mut back = FieldSet::new();
        parse_fields_v1(&tree, &mut Vec::new(), &mut back);
        assert_eq!(back, set);
    }

    #[test]
    fn entries_round_trip_through_the_object() {
        let mut o = json!({"metadata": {"name": "a"}, "data": {"k": "v"}});
        let mut entries = Vec::new();
        record_update(
            &mut entries,
            "m",
            Scope::Main,
            &changed(None, &o, Scope::Main),
            "v1",
        );
        write(&mut o, &entries);
        assert_eq!(read(&o), entries);
        assert_eq!(
            o["metadata"]["managedFields"][0]["fieldsV1"],
            json!({"f:data": {"f:k": {}}})
        );
    }

    #[test]
    fn remove_path_prunes_empty_parents() {
        let mut o = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"x": {"y": 1}, "z": 2}});
        remove_path(&mut o, &p("spec.x.y"));
        assert_eq!(
            o,
            json!({"metadata": {"labels": {"a": "1"}}, "spec": {"z": 2}})
        );
        remove_path(&mut o, &p("metadata.labels.a"));
        assert_eq!(o, json!({"metadata": {}, "spec": {"z": 2}}));
        remove_path(&mut o, &p("nope.deeper"));
        assert_eq!(o, json!({"metadata": {}, "spec": {"z": 2}}));
    }
}
