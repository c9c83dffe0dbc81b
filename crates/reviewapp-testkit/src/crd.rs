//! CustomResourceDefinitions: reading one (every served version's schema, its rules
//! compiled), refusing it as the API server would, the status the server's controllers give
//! it, and the registry of schemas by resource.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::field_error::{self, FieldError, Problem};
use crate::meta;
use crate::resource::ResourceKey;
use crate::schema::Schema;
use crate::status::ApiError;

/// The resource of CRDs themselves.
pub(crate) fn is_crd_resource(res: &ResourceKey) -> bool {
    res.group == "apiextensions.k8s.io" && res.plural == "customresourcedefinitions"
}

/// One served version of a CRD.
#[derive(Debug)]
pub(crate) struct Registered {
    pub group: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
    pub schema: Schema,
}

/// The registrations of a CRD's served versions, by resource.
pub(crate) type Versions = Vec<(ResourceKey, Registered)>;

/// Reads a CRD: the registration of every served version, or the errors that make the
/// server refuse it.
pub(crate) fn compile(crd: &Value) -> Result<Versions, Vec<FieldError>> {
    let text = |pointer: &str| {
        crd.pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let names = Names {
        group: text("/spec/group"),
        plural: text("/spec/names/plural"),
        kind: text("/spec/names/kind"),
        namespaced: text("/spec/scope") != "Cluster",
    };
    let mut errors = names.errors(meta::name(crd));
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        errors.push(FieldError::new(
            "spec.versions",
            Problem::Invalid("null".to_string()),
            "must have exactly one version marked as storage version",
        ));
    }
    let registered = names.register(&versions, &mut errors);
    if errors.is_empty() {
        Ok(registered)
    } else {
        Err(errors)
    }
}

/// What a CRD names: its group, plural, kind and scope.
struct Names {
    group: String,
    plural: String,
    kind: String,
    namespaced: bool,
}

impl Names {
    /// Missing names, and a CRD `name` other than `<plural>.<group>`.
    fn errors(&self, name: &str) -> Vec<FieldError> {
        let mut errors = Vec::new();
        for (field, value) in [
            ("spec.group", &self.group),
            ("spec.names.plural", &self.plural),
            ("spec.names.kind", &self.kind),
        ] {
            if value.is_empty() {
                errors.push(FieldError::new(field, Problem::Required, ""));
            }
        }
        if !self.group.is_empty()
            && !self.plural.is_empty()
            && name != format!("{}.{}", self.plural, self.group)
        {
            errors.push(FieldError::invalid(
                "metadata.name",
                &Value::String(name.to_string()),
                "must be spec.names.plural+\".\"+spec.group",
            ));
        }
        errors
    }

    /// The registration of every served version, its schema read (errors in `errors`).
    fn register(&self, versions: &[Value], errors: &mut Vec<FieldError>) -> Versions {
        // The server reports schemas shared by every version at `spec.validation`.
        let schemas: Vec<Option<&Value>> = versions
            .iter()
            .map(|v| v.pointer("/schema/openAPIV3Schema"))
            .collect();
        let shared = schemas.windows(2).all(|w| w.first() == w.get(1));
        let mut registered = Vec::new();
        for (index, version) in versions.iter().enumerate() {
            let at = if shared {
                "spec.validation.openAPIV3Schema".to_string()
            } else {
                format!("spec.versions[{index}].schema.openAPIV3Schema")
            };
            let Some(raw) = schemas.get(index).copied().flatten() else {
                errors.push(FieldError::new(
                    &at,
                    Problem::Required,
                    "schemas are required",
                ));
                continue;
            };
            let mut version_errors = Vec::new();
            let schema = Schema::parse(raw, &at, true, &mut version_errors);
            // Identical schemas give identical errors: report them once.
            if !(shared && index > 0) {
                errors.extend(version_errors);
            }
            let served = version
                .get("served")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let version_name = version
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if served && !version_name.is_empty() {
                registered.push((
                    ResourceKey::new(&self.group, version_name, &self.plural),
                    Registered {
                        group: self.group.clone(),
                        kind: self.kind.clone(),
                        plural: self.plural.clone(),
                        namespaced: self.namespaced,
                        schema,
                    },
                ));
            }
        }
        registered
    }
}

/// `422 Invalid` for a CRD the server refuses.
pub(crate) fn refused(name: &str, errors: &[FieldError]) -> ApiError {
    field_error::invalid(
        "apiextensions.k8s.io",
        "CustomResourceDefinition",
        name,
        errors,
    )
}

/// The status the API server's CRD controllers give an accepted CRD: `NamesAccepted` and
/// `Established` (times kept from `old`), `acceptedNames`, and `storedVersions` (the storage
/// version added to the old ones).
pub(crate) fn status(crd: &Value, old: Option<&Value>) -> Value {
    let now = meta::now();
    let old_time = |kind: &str| {
        old.and_then(|o| o.pointer("/status/conditions"))
            .and_then(Value::as_array)
            .and_then(|c| {
                c.iter()
                    .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
            })
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or_else(|| Value::String(now.clone()))
    };
    let mut stored: Vec<Value> = old
        .and_then(|o| o.pointer("/status/storedVersions"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let storage = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .and_then(|v| {
            v.iter()
                .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        })
        .and_then(|v| v.get("name").cloned());
    if let Some(storage) = storage
        && !stored.contains(&storage)
    {
        stored.push(storage);
    }
    json!({
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": old_time("NamesAccepted")},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": old_time("Established")},
        ],
        "acceptedNames": crd.pointer("/spec/names").cloned().unwrap_or_else(|| json!({})),
        "storedVersions": stored,
    })
}

/// The schemas of every registered CRD, by resource.
#[derive(Default)]
pub(crate) struct Registry {
    by_resource: HashMap<ResourceKey, Arc<Registered>>,
    /// The resources each CRD (by name) registered.
    by_crd: HashMap<String, Vec<ResourceKey>>,
}

impl Registry {
    /// The registration serving `res`, if any.
    pub(crate) fn get(&self, res: &ResourceKey) -> Option<Arc<Registered>> {
        self.by_resource.get(res).cloned()
    }

    /// Replaces what the CRD `name` registered.
    pub(crate) fn register(&mut self, name: &str, versions: Versions) {
        self.forget(name);
        let keys = versions.iter().map(|(k, _)| k.clone()).collect();
        for (key, registered) in versions {
            self.by_resource.insert(key, Arc::new(registered));
        }
        self.by_crd.insert(name.to_string(), keys);
    }

    /// Drops what the CRD `name` registered.
    pub(crate) fn forget(&mut self, name: &str) {
        for key in self.by_crd.remove(name).unwrap_or_default() {
            self.by_resource.remove(&key);
        }
    }

    /// (group, plural, namespaced) of a registered `apiVersion`/`kind`.
    pub(crate) fn find_kind(
        &self,
        group: &str,
        version: &str,
        kind: &str,
    ) -> Option<(String, bool)> {
        self.by_resource
            .iter()
            .find(|(key, r)| key.group == group && key.version == version && r.kind == kind)
            .map(|(_, r)| (r.plural.clone(), r.namespaced))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn crd(rule: &str, versions: usize) -> Value {
        let schema = json!({"type": "object", "properties": {"spec": {
            "type": "object",
            "properties": {"config": {"type": "object", "properties": {"namespace": {"type": "string"}}}},
            "x-kubernetes-validations": [{"rule": "true"}, {"rule": rule}],
        }}});
        let versions: Vec<Value> = (0..versions)
            .map(|i| {
                json!({"name": format!("v{}", i + 1), "served": true, "storage": i == 0,
                            "schema": {"openAPIV3Schema": schema}})
            })
            .collect();
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Cluster",
                     "names": {"kind": "Widget", "plural": "widgets"}, "versions": versions},
        })
    }

    #[test]
    fn registers_every_served_version() {
        let versions = compile(&crd("self.config.__namespace__ != ''", 2)).unwrap();
        let keys: Vec<String> = versions.iter().map(|(k, _)| k.api_version()).collect();
        assert_eq!(keys, vec!["example.com/v1", "example.com/v2"]);
        assert!(!versions[0].1.namespaced);
        let mut registry = Registry::default();
        registry.register("widgets.example.com", versions);
        assert_eq!(
            registry.find_kind("example.com", "v2", "Widget"),
            Some(("widgets".to_string(), false))
        );
        registry.forget("widgets.example.com");
        assert!(
            registry
                .get(&ResourceKey::new("example.com", "v1", "widgets"))
                .is_none()
        );
    }

    #[test]
    fn refuses_rules_that_do_not_compile_where_the_server_does() {
        let errors = compile(&crd("self.config.namespace != ''", 1)).unwrap_err();
        assert_eq!(errors.len(), 1);
        let err = refused("widgets.example.com", &errors);
        assert_eq!(err.code, 422);
        assert!(
            err.message.starts_with(
                "CustomResourceDefinition.apiextensions.k8s.io \"widgets.example.com\" is invalid: spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[1].rule: Invalid value: apiextensions.ValidationRule{Rule:\"self.config.namespace != ''\""
            ),
            "{}",
            err.message
        );
        assert!(
            err.message
                .contains(": compilation failed: ERROR: <input>:1:12: undefined field 'namespace'"),
            "{}",
            err.message
        );
        let mut renamed = crd("true", 1);
        renamed["metadata"]["name"] = json!("wrong");
        assert_eq!(compile(&renamed).unwrap_err()[0].field, "metadata.name");
    }

    #[test]
    fn status_says_established() {
        let c = crd("true", 2);
        let first = status(&c, None);
        assert_eq!(first["conditions"][1]["type"], "Established");
        assert_eq!(first["storedVersions"], json!(["v1"]));
        let with_status = json!({"status": first});
        assert_eq!(
            status(&c, Some(&with_status))["conditions"],
            first["conditions"]
        );
    }
}
