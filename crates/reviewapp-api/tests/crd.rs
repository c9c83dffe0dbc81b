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
        ("Expires", ".status.expiresAt", "date"),
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
    // (path in CEL, with `namespace` escaped as Kubernetes requires; name in the message)
    for (path, name) in [
        ("repo", "repo"),
        ("pr", "pr"),
        ("config.__namespace__", "config.namespace"),
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

// ---------------------------------------------------------------------------------------------
// CEL rules: property names as Kubernetes exposes them

/// CEL reserved words: Kubernetes exposes a property of that name as `__{word}__`, and a rule
/// selecting it unescaped does not compile ("undefined field").
const CEL_RESERVED: &[&str] = &[
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
];

/// A property name as a CEL rule must spell it (Kubernetes' escaping rules).
fn cel_escape(property: &str) -> String {
    if CEL_RESERVED.contains(&property) {
        return format!("__{property}__");
    }
    property
        .replace("__", "__underscores__")
        .replace('.', "__dot__")
        .replace('-', "__dash__")
        .replace('/', "__slash__")
}

/// Every `self.a.b` / `oldSelf.a.b` selection in `rule` (string literals skipped), as segments.
fn selections(rule: &str) -> Vec<Vec<String>> {
    let mut code = String::new();
    let mut quote = None;
    for ch in rule.chars() {
        match quote {
            Some(q) if ch == q => quote = None,
            Some(_) => {}
            None if ch == '\'' || ch == '"' => quote = Some(ch),
            None => code.push(ch),
        }
    }
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = Vec::new();
    let mut rest = code.as_str();
    while let Some(start) = rest.find(|c: char| is_ident(c)) {
        let preceded_by_dot = rest[..start].ends_with('.');
        let tail = &rest[start..];
        let end = tail.find(|c: char| !is_ident(c)).unwrap_or(tail.len());
        let word = &tail[..end];
        rest = &tail[end..];
        if preceded_by_dot || !matches!(word, "self" | "oldSelf") {
            continue;
        }
        let mut chain = Vec::new();
        while let Some(after_dot) = rest.strip_prefix('.') {
            let end = after_dot
                .find(|c: char| !is_ident(c))
                .unwrap_or(after_dot.len());
            chain.push(after_dot[..end].to_string());
            rest = &after_dot[end..];
        }
        out.push(chain);
    }
    out
}

/// What is wrong with every rule under `node` (at `path`): a selected field that is not a
/// property, or a property spelled other than Kubernetes exposes it.
fn rule_violations(node: &Value, path: &str, out: &mut Vec<String>, rules: &mut usize) {
    for rule in node["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        *rules += 1;
        let text = rule["rule"].as_str().unwrap_or_default();
        for chain in selections(text) {
            let mut at = node;
            for segment in &chain {
                let property = at["properties"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .find(|(name, _)| cel_escape(name) == *segment);
                match property {
                    Some((_, schema)) => at = schema,
                    None => {
                        out.push(format!(
                            "{path}: `{text}` selects `{segment}`, which is not a property as CEL \
                             sees it (reserved words and -./__ are escaped)"
                        ));
                        break;
                    }
                }
            }
        }
    }
    if let Some(props) = node["properties"].as_object() {
        for (name, child) in props {
            rule_violations(child, &format!("{path}.{name}"), out, rules);
        }
    }
    if node["items"].is_object() {
        rule_violations(&node["items"], &format!("{path}[]"), out, rules);
    }
}

#[test]
fn rules_select_properties_as_kubernetes_escapes_them() {
    let mut violations = Vec::new();
    let mut rules = 0;
    rule_violations(&schema(), "", &mut violations, &mut rules);
    assert!(rules >= 3, "only {rules} rules found");
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn rule_check_catches_an_unescaped_reserved_word() {
    // The rule a real API server refused: "undefined field 'namespace'".
    let schema = json!({
        "type": "object",
        "properties": {"spec": {
            "type": "object",
            "properties": {"config": {"type": "object", "properties": {
                "namespace": {"type": "string"}, "x-y": {"type": "string"}}}},
            "x-kubernetes-validations": [
                {"rule": "!has(oldSelf.config.namespace) || self.config.namespace == 'namespace.x'"},
                {"rule": "self.config.__namespace__ == oldSelf.config.__namespace__"},
                {"rule": "has(self.config.x__dash__y) && self.config.missing == \"a.b\""},
            ],
        }},
    });
    let mut violations = Vec::new();
    rule_violations(&schema, "", &mut violations, &mut 0);
    assert_eq!(violations.len(), 3, "{violations:#?}");
    assert!(violations[0].contains("`namespace`"), "{}", violations[0]);
    assert!(violations[2].contains("`missing`"), "{}", violations[2]);
}

// ---------------------------------------------------------------------------------------------
// Unknown keys: preserved under spec.config, strict elsewhere

/// Every object node under `node`, by path.
fn object_nodes<'a>(node: &'a Value, path: &str, out: &mut Vec<(String, &'a Value)>) {
    if node["type"] == "object" || node.get("properties").is_some() {
        out.push((path.to_string(), node));
    }
    if let Some(props) = node["properties"].as_object() {
        for (name, child) in props {
            object_nodes(child, &format!("{path}.{name}"), out);
        }
    }
    if node["items"].is_object() {
        object_nodes(&node["items"], &format!("{path}[]"), out);
    }
}

#[test]
fn every_object_under_spec_config_preserves_unknown_fields() {
    let config = field("spec.config");
    let mut nodes = Vec::new();
    object_nodes(&config, "spec.config", &mut nodes);
    assert!(
        nodes.len() >= 10,
        "{:?}",
        nodes.iter().map(|n| &n.0).collect::<Vec<_>>()
    );
    for (path, node) in &nodes {
        assert_eq!(
            node["x-kubernetes-preserve-unknown-fields"], true,
            "{path} would prune or refuse unknown keys"
        );
        assert!(
            node.get("properties").is_some(),
            "{path}: known fields stay typed"
        );
        assert!(node.get("additionalProperties").is_none(), "{path}");
    }
    for path in [
        "spec.config",
        "spec.config.migrate",
        "spec.config.database.copyFrom.user.secretRef",
        "spec.config.env.values[]",
    ] {
        assert!(nodes.iter().any(|(p, _)| p == path), "{path} not checked");
    }
}

#[test]
fn the_rest_of_spec_and_status_stay_strict() {
    let schema = schema();
    let mut nodes = Vec::new();
    object_nodes(&schema["properties"]["spec"], "spec", &mut nodes);
    object_nodes(&schema["properties"]["status"], "status", &mut nodes);
    let strict: Vec<&String> = nodes
        .iter()
        .filter(|(path, _)| !path.starts_with("spec.config"))
        .map(|(path, node)| {
            assert!(
                node.get("x-kubernetes-preserve-unknown-fields").is_none(),
                "{path} preserves unknown fields"
            );
            path
        })
        .collect();
    assert!(strict.len() >= 3, "{strict:?}");
}

#[test]
fn unknown_config_keys_survive_a_round_trip() {
    let mut doc: Value = serde_yaml::from_str(include_str!(
        "../../../dev/samples/reviewapp-app-template.yaml"
    ))
    .unwrap();
    // What three other public repositories' review yaml holds, and a key nested deeper.
    doc["spec"]["config"]["baseApp"] = json!("app-template");
    doc["spec"]["config"]["migrate"]["timeoutSeconds"] = json!(600);
    doc["spec"]["config"]["database"]["copyFrom"]["user"]["secretRef"]["optional"] = json!(true);
    let app: ReviewApp = serde_json::from_value(doc.clone()).unwrap();
    let config = app.spec.config.as_ref().unwrap();
    assert_eq!(config.unknown["baseApp"], "app-template");
    assert_eq!(
        config.env_secret.as_deref(),
        Some("app-template-env-secret")
    );
    assert_eq!(
        serde_json::to_value(&app.spec).unwrap(),
        doc["spec"],
        "every key comes back as it was written"
    );
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
        json!(["building", "deployed", "error", "sleeping", "expired"])
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
