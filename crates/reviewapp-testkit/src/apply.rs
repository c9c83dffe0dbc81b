//! Server-side apply, simplified to leaf-path ownership with atomic lists: conflicts with other
//! managers (unless forced), removal of fields the manager applied before and omits now, and a
//! deep merge of the applied configuration.

use serde_json::{Map, Value, json};

use crate::admission::FieldValidation;
use crate::fields::{self, Entry, FieldSet, Operation, Scope};
use crate::meta;
use crate::resource::ResourceKey;
use crate::status::ApiError;
use crate::store::{Create, Ownership, World, Write, Written};

/// Who applies and how.
pub(crate) struct ApplyParams<'a> {
    pub manager: &'a str,
    pub force: bool,
    pub scope: Scope,
    pub validation: FieldValidation,
}

/// The result of an apply before it is stored: the whole new object and its ownership.
pub(crate) struct Applied {
    pub object: Value,
    pub entries: Vec<Entry>,
}

/// Applies `config` (the request body) over `live` (`None`: the object does not exist yet and
/// `skeleton` is the starting point).
pub(crate) fn apply(
    res: &ResourceKey,
    name: &str,
    live: Option<&Value>,
    skeleton: Value,
    config: &Value,
    params: &ApplyParams<'_>,
) -> Result<Applied, ApiError> {
    let Some(config_map) = config.as_object() else {
        return Err(ApiError::bad_request(
            "the applied configuration is not an object",
        ));
    };
    let api_version = config_map
        .get("apiVersion")
        .and_then(Value::as_str)
        .map_or_else(|| res.api_version(), str::to_string);
    let scoped = scoped_config(config_map, params.scope);
    let applied: FieldSet = fields::leaves(&scoped, params.scope)
        .into_iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(p, _)| p)
        .collect();

    let mut object = live.cloned().unwrap_or(skeleton);
    let mut entries = live.map(fields::read).unwrap_or_default();

    let mut conflicts: Vec<(String, fields::FieldPath)> = Vec::new();
    for entry in entries.iter().filter(|e| e.manager != params.manager) {
        for path in entry.fields.intersection(&applied) {
            if fields::value_at(&object, path) != fields::value_at(&scoped, path) {
                conflicts.push((entry.manager.clone(), path.clone()));
            }
        }
    }
    if !conflicts.is_empty() {
        if !params.force {
            let mut listed: Vec<(String, String)> = conflicts
                .iter()
                .map(|(m, p)| (m.clone(), fields::display_path(p)))
                .collect();
            listed.sort();
            listed.dedup();
            return Err(ApiError::apply_conflict(res, name, &listed));
        }
        for entry in entries.iter_mut().filter(|e| e.manager != params.manager) {
            entry
                .fields
                .retain(|p| !conflicts.iter().any(|(m, c)| *m == entry.manager && c == p));
        }
    }

    let slot = |e: &Entry| {
        e.manager == params.manager
            && e.operation == Operation::Apply
            && e.subresource == params.scope.subresource()
    };
    let previous = entries
        .iter()
        .find(|e| slot(e))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    for path in previous.difference(&applied) {
        let owned_elsewhere = entries.iter().any(|e| !slot(e) && e.fields.contains(path));
        if !owned_elsewhere {
            fields::remove_path(&mut object, path);
        }
    }
    deep_merge(&mut object, &scoped);

    entries.retain(|e| !slot(e));
    if !applied.is_empty() {
        entries.push(Entry {
            manager: params.manager.to_string(),
            operation: Operation::Apply,
            subresource: params.scope.subresource().to_string(),
            api_version,
            time: meta::now(),
            fields: applied,
        });
    }
    Ok(Applied { object, entries })
}

/// Server-side apply of `config` to the object `name` of `res` in `ns` ("" when
/// cluster-scoped): creates it when absent (main resource only), otherwise merges. Returns the
/// stored object (with its warnings) and whether it was created.
pub(crate) fn server_side_apply(
    world: &mut World,
    res: &ResourceKey,
    ns: &str,
    name: &str,
    config: &Value,
    params: &ApplyParams<'_>,
    dry_run: bool,
) -> Result<(Written, bool), ApiError> {
    if name.is_empty() {
        return Err(ApiError::bad_request("the applied object has no name"));
    }
    if let Some(body_name) = meta::meta_str(config, "name")
        && !body_name.is_empty()
        && body_name != name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let Some(live) = world.get(res, ns, name).cloned() else {
        if params.scope == Scope::Status {
            return Err(ApiError::not_found(res, name));
        }
        let text = |field: &str| {
            config
                .get(field)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let skeleton = json!({
            "apiVersion": text("apiVersion").unwrap_or_else(|| res.api_version()),
            "kind": text("kind").unwrap_or_else(|| world.kind_of(res)),
            "metadata": {"name": name},
        });
        let applied = apply(res, name, None, skeleton, config, params)?;
        let created = world.create(
            res,
            ns,
            applied.object,
            Create {
                ownership: Ownership::Apply(applied.entries),
                keep_status: false,
                dry_run,
                validation: params.validation,
            },
        )?;
        return Ok((created, true));
    };
    let applied = apply(res, name, Some(&live), Value::Null, config, params)?;
    let updated = world.update(
        res,
        ns,
        name,
        applied.object,
        Write {
            scope: params.scope,
            ownership: Ownership::Apply(applied.entries),
            dry_run,
            validation: params.validation,
        },
    )?;
    Ok((updated, false))
}

/// The part of the configuration a scope may write: everything but `status` for the main
/// resource (keeping `apiVersion`, `kind` and `metadata` for the precondition checks), only
/// `status` for the status subresource.
fn scoped_config(config: &Map<String, Value>, scope: Scope) -> Value {
    let mut scoped = config.clone();
    match scope {
        Scope::Main => {
            scoped.remove("status");
        }
        Scope::Status => scoped.retain(|k, _| k == "status"),
    }
    Value::Object(scoped)
}

/// Merges `config` into `target`: maps merge key by key, `null` removes, anything else (lists
/// included) replaces.
fn deep_merge(target: &mut Value, config: &Value) {
    let Value::Object(config) = config else {
        *target = config.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(map) = target else {
        return;
    };
    for (key, value) in config {
        match value {
            Value::Null => {
                map.remove(key);
            }
            Value::Object(_) => deep_merge(map.entry(key.clone()).or_insert(Value::Null), value),
            other => {
                map.insert(key.clone(), other.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn cms() -> ResourceKey {
        ResourceKey::new("", "v1", "configmaps")
    }

    fn run(
        live: Option<&Value>,
        config: Value,
        manager: &str,
        force: bool,
    ) -> Result<Applied, ApiError> {
        let skeleton = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}});
        let params = ApplyParams {
            manager,
            force,
            scope: Scope::Main,
            validation: FieldValidation::Warn,
        };
        apply(&cms(), "a", live, skeleton, &config, &params)
    }

    fn stored(applied: Applied) -> Value {
        let mut o = applied.object;
        fields::write(&mut o, &applied.entries);
        o
    }

    #[test]
    fn reapply_removes_omitted_fields() {
        let first = stored(
            run(
                None,
                json!({"metadata": {"name": "a"}, "data": {"x": "1", "y": "2"}}),
                "m",
                false,
            )
            .unwrap(),
        );
        let second = stored(
            run(
                Some(&first),
                json!({"metadata": {"name": "a"}, "data": {"x": "1"}}),
                "m",
                false,
            )
            .unwrap(),
        );
        assert_eq!(second["data"], json!({"x": "1"}));
        let third = stored(
            run(
                Some(&second),
                json!({"metadata": {"name": "a"}}),
                "m",
                false,
            )
            .unwrap(),
        );
        assert!(third.get("data").is_none());
        assert!(third["metadata"].get("managedFields").is_none());
    }

    #[test]
    fn conflicts_unless_forced_and_shared_ownership_on_equal_values() {
        let first = stored(run(None, json!({"data": {"x": "1", "y": "2"}}), "a", false).unwrap());
        // Same value: no conflict, both own `.data.x`.
        let shared = stored(run(Some(&first), json!({"data": {"x": "1"}}), "b", false).unwrap());
        let err = run(Some(&shared), json!({"data": {"y": "9"}}), "b", false)
            .err()
            .unwrap();
        assert_eq!(err.code, 409);
        assert!(
            err.message.contains("conflict with \"a\": .data.y"),
            "{}",
            err.message
        );
        let forced = stored(run(Some(&shared), json!({"data": {"y": "9"}}), "b", true).unwrap());
        assert_eq!(forced["data"], json!({"x": "1", "y": "9"}));
        let entries = fields::read(&forced);
        let a = entries.iter().find(|e| e.manager == "a").unwrap();
        assert!(
            a.fields
                .contains(&vec!["data".to_string(), "x".to_string()])
        );
        assert!(
            !a.fields
                .contains(&vec!["data".to_string(), "y".to_string()])
        );
        // `b` drops `.data.y`; `a` still owns `.data.x`, which stays although `b` omits it too.
        let dropped = stored(
            run(
                Some(&forced),
                json!({"metadata": {"name": "a"}}),
                "b",
                false,
            )
            .unwrap(),
        );
        assert_eq!(dropped["data"], json!({"x": "1"}));
    }

    #[test]
    fn status_scope_applies_only_status() {
        let live = json!({"metadata": {"name": "a"}, "spec": {"r": 1}});
        let params = ApplyParams {
            manager: "m",
            force: true,
            scope: Scope::Status,
            validation: FieldValidation::Warn,
        };
        let out = apply(
            &cms(),
            "a",
            Some(&live),
            Value::Null,
            &json!({"apiVersion": "v1", "kind": "X", "spec": {"r": 2}, "status": {"ok": true}}),
            &params,
        )
        .unwrap();
        assert_eq!(
            out.object,
            json!({"metadata": {"name": "a"}, "spec": {"r": 1}, "status": {"ok": true}})
        );
        assert_eq!(out.entries[0].subresource, "status");
    }
}
