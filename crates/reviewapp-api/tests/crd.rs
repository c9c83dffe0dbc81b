//! The generated `ReviewApp` CustomResourceDefinition.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceDefinitionVersion,
};
use kube::CustomResourceExt;
use reviewapp_api::ReviewApp;
use serde_json::{Value, json};

fn crd() -> CustomResourceDefinition {
    ReviewApp::crd()
}

fn version() -> CustomResourceDefinitionVersion {
    let versions = crd().spec.versions;
    assert_eq!(versions.len(), 1, "exactly one version");
    versions.into_iter().next().unwrap()
}

/// The `openAPIV3Schema` as JSON.
fn schema() -> Value {
    let schema = version().schema.expect("a schema").open_api_v3_schema;
    serde_json::to_value(schema.expect("an openAPIV3Schema")).unwrap()
}

/// The schema node of the field at `path` (`spec.config.namespace`).
fn field(path: &str) -> Value {
    let mut node = schema();
    for part in path.split('.') {
        node = node["properties"][part].clone();
        assert!(node.is_object(), "no schema for {path} (at {part})");
    }
    node
}

#[test]
fn identity() {
    let crd = serde_json::to_value(crd()).unwrap();
    assert_eq!(crd["apiVersion"], "apiextensions.k8s.io/v1");
    assert_eq!(crd["kind"], "CustomResourceDefinition");
    assert_eq!(
        crd["metadata"]["name"],
        "reviewapps.reviewtron.k8s.revelry.co"
    );
    assert_eq!(crd["spec"]["group"], reviewapp_api::GROUP);
    assert_eq!(crd["spec"]["scope"], "Cluster");
    let names = &crd["spec"]["names"];
    assert_eq!(names["kind"], "ReviewApp");
    assert_eq!(names["plural"], "reviewapps");
    assert_eq!(names["singular"], "reviewapp");
    assert!(
        names["shortNames"]
            .as_array()
            .unwrap()
            .contains(&json!("ra")),
        "{names}"
    );
}

#[test]
fn one_served_storage_version_with_status_subresource() {
    let v = version();
    assert_eq!(v.name, "v1");
    assert!(v.served);
    assert!(v.storage);
    let subresources = v.subresources.expect("subresources");
    assert!(subresources.status.is_some(), "status subresource");
    assert!(subresources.scale.is_none());
}

#[test]
fn printer_columns_in_order() {
    let columns: Vec<(String, String, String)> = version()
        .additional_printer_columns
        .expect("printer columns")
        .into_iter()
        .map(|c| (c.name, c.json_path, c.type_))
        .collect();
    let expected = [
        ("Repo", ".spec.repo", "string"),
        ("Branch", ".spec.branch", "string"),
        ("PR", ".spec.pr", "string"),
        ("Status", ".status.appStatus", "string"),
        ("Build", ".status.buildStatus", "string"),
        ("URL", ".status.url", "string"),
        ("Age", ".metadata.creationTimestamp", "date"),
    ];
    let expected: Vec<(String, String, String)> = expected
        .iter()
        .map(|(n, p, t)| (n.to_string(), p.to_string(), t.to_string()))
        .collect();
    assert_eq!(columns, expected);
}

#[test]
fn printer_columns_point_at_schema_fields() {
    for column in version().additional_printer_columns.unwrap() {
        let path = column.json_path.trim_start_matches('.');
        if path.starts_with("metadata.") {
            continue;
        }
        field(path); // panics when the schema has no such field
    }
}

// ---------------------------------------------------------------------------------------------
// Structural schema

/// Every violation of Kubernetes' structural-schema rules (and of what CRDs may not contain)
/// under `node`, by path.
fn structural_violations(node: &Value, path: &str, out: &mut Vec<String>, visited: &mut usize) {
    *visited += 1;
    let Some(obj) = node.as_object() else {
        out.push(format!("{path}: schema is not an object"));
        return;
    };
    let flag = |key: &str| obj.get(key) == Some(&Value::Bool(true));
    let int_or_string = flag("x-kubernetes-int-or-string");
    let preserve_unknown = flag("x-kubernetes-preserve-unknown-fields");
    let ty = obj.get("type").and_then(Value::as_str);
    match ty {
        Some("object" | "array" | "string" | "integer" | "number" | "boolean") => {}
        Some(other) => out.push(format!("{path}: unknown type {other:?}")),
        None if int_or_string || preserve_unknown => {}
        None => out.push(format!("{path}: no type")),
    }
    for forbidden in ["$ref", "definitions", "$defs", "$schema"] {
        if obj.contains_key(forbidden) {
            out.push(format!("{path}: has {forbidden}"));
        }
    }
    for junctor in ["anyOf", "oneOf", "allOf", "not"] {
        let Some(branches) = obj.get(junctor) else {
            continue;
        };
        if ty.is_none() && !int_or_string {
            out.push(format!("{path}: {junctor} at a node without a type"));
        }
        let branches: Vec<&Value> = match branches {
            Value::Array(items) => items.iter().collect(),
            single => vec![single],
        };
        for (i, branch) in branches.into_iter().enumerate() {
            // Inside a junctor only value validations are allowed (int-or-string may set `type`).
            for key in [
                "type",
                "description",
                "default",
                "nullable",
                "additionalProperties",
            ] {
                let allowed = int_or_string && key == "type";
                if branch.get(key).is_some() && !allowed {
                    out.push(format!("{path}.{junctor}[{i}]: sets {key}"));
                }
            }
            for (sub, key) in [("properties", "properties"), ("items", "items")] {
                if let Some(inner) = branch.get(key) {
                    let outer = obj.get(sub);
                    if outer.is_none() {
                        out.push(format!(
                            "{path}.{junctor}[{i}]: {key} not also specified outside the {junctor}: {inner}"
                        ));
                    }
                }
            }
        }
    }
    if ty == Some("array") && !obj.contains_key("items") {
        out.push(format!("{path}: array without items"));
    }
    if obj.contains_key("properties") && obj.contains_key("additionalProperties") {
        out.push(format!("{path}: both properties and additionalProperties"));
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (name, child) in props {
            structural_violations(child, &format!("{path}.{name}"), out, visited);
        }
    }
    if let Some(items) = obj.get("items") {
        structural_violations(items, &format!("{path}[]"), out, visited);
    }
    if let Some(additional) = obj.get("additionalProperties").filter(|v| v.is_object()) {
        structural_violations(additional, &format!("{path}{{}}"), out, visited);
    }
}

fn violations_of(schema: &Value) -> (Vec<String>, usize) {
    let mut out = Vec::new();
    let mut visited = 0;
    structural_violations(schema, "", &mut out, &mut visited);
    (out, visited)
}

#[test]
fn schema_is_structural() {
    let schema = schema();
    let (violations, visited) = violations_of(&schema);
    assert!(
        violations.is_empty(),
        "non-structural schema:\n{}",
        violations.join("\n")
    );
    assert!(visited > 60, "only {visited} schema nodes were checked");
    assert_eq!(schema["type"], "object");
    assert!(
        schema["properties"].get("metadata").is_none(),
        "metadata may only restrict name and generateName; leave it out"
    );
    let text = schema.to_string();
    for forbidden in ["\"$ref\"", "\"definitions\"", "\"anyOf\"", "\"oneOf\""] {
        assert!(!text.contains(forbidden), "schema contains {forbidden}");
    }
}

#[test]
fn structural_check_catches_violations() {
    let bad = json!({
        "type": "object",
        "properties": {
            "untyped": { "description": "no type" },
            "ref": { "$ref": "#/definitions/Thing" },
            "union": { "anyOf": [{ "type": "string" }, { "type": "integer" }] },
            "list": { "type": "array" },
            "fine": { "x-kubernetes-int-or-string": true },
            "alsoFine": { "x-kubernetes-preserve-unknown-fields": true },
        },
        "definitions": {},
    });
    let (violations, _) = violations_of(&bad);
    let expected = [
        ": has definitions",
        ".list: array without items",
        ".ref: no type",
        ".ref: has $ref",
        ".union: no type",
        ".union: anyOf at a node without a type",
        ".union.anyOf[0]: sets type",
        ".union.anyOf[1]: sets type",
        ".untyped: no type",
    ];
    let mut violations = violations;
    violations.sort();
    let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(violations, expected);
}

#[test]
fn pr_is_int_or_string() {
    let pr = field("spec.pr");
    assert_eq!(pr["x-kubernetes-int-or-string"], true, "{pr}");
    assert!(pr.get("type").is_none(), "{pr}");
    assert!(pr.get("anyOf").is_none(), "{pr}");
}

#[test]
fn env_value_accepts_any_json() {
    let value = field("spec.config.env.values")["items"]["properties"]["value"].clone();
    assert_eq!(
        value["x-kubernetes-preserve-unknown-fields"], true,
        "{value}"
    );
    assert!(value.get("type").is_none(), "{value}");
}

#[test]
fn naming_fields_are_immutable() {
    // The rules sit on `spec`, not on the fields: a rule on a field is skipped when the old
    // value is absent, so "remove it, then set a new value" would slip through.
    let rules = field("spec")["x-kubernetes-validations"].clone();
    let rules = rules.as_array().expect("spec has x-kubernetes-validations");
    for (path, name) in [
        ("repo", "repo"),
        ("pr", "pr"),
        ("config.namespace", "config.namespace"),
    ] {
        let rule = rules
            .iter()
            .find(|r| {
                r["rule"]
                    .as_str()
                    .unwrap()
                    .ends_with(&format!("self.{path} == oldSelf.{path}"))
            })
            .unwrap_or_else(|| panic!("no immutability rule for {path}: {rules:?}"));
        let text = rule["rule"].as_str().unwrap();
        assert!(
            text.contains(&format!("has(self.{path})")),
            "{path}: removing it must fail: {text}"
        );
        assert!(
            text.starts_with("!has(oldSelf."),
            "{path}: an app that lacked it may be fixed: {text}"
        );
        assert!(
            rule["message"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{name} is immutable"))
        );
    }
    for path in ["spec.repo", "spec.pr", "spec.config.namespace"] {
        assert!(
            field(path).get("x-kubernetes-validations").is_none(),
            "{path} keeps a bypassable rule"
        );
    }
}

#[test]
fn status_conditions_are_kubernetes_conditions() {
    let conditions = field("status.conditions");
    assert_eq!(conditions["type"], "array");
    let item = &conditions["items"];
    assert_eq!(item["type"], "object");
    for property in ["type", "status", "reason", "message", "lastTransitionTime"] {
        assert_eq!(
            item["properties"][property]["type"], "string",
            "status.conditions[].{property}"
        );
    }
    assert_eq!(
        item["properties"]["lastTransitionTime"]["format"],
        "date-time"
    );
    assert_eq!(item["properties"]["observedGeneration"]["type"], "integer");
}

#[test]
fn status_enums_list_their_values() {
    assert_eq!(
        field("status.appStatus")["enum"],
        json!(["building", "deployed", "error"])
    );
    assert_eq!(
        field("status.buildStatus")["enum"],
        json!(["building", "success", "error"])
    );
}

#[test]
fn spec_is_required_and_status_optional() {
    let schema = schema();
    assert_eq!(schema["required"], json!(["spec"]));
    assert_eq!(field("spec")["type"], "object");
    assert!(
        field("spec").get("required").is_none(),
        "every spec field is optional"
    );
}

#[test]
fn crd_round_trips_through_yaml() {
    let yaml = serde_yaml::to_string(&crd()).unwrap();
    let back: CustomResourceDefinition = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(back, crd());
}
