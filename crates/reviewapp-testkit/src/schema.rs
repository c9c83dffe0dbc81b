//! The structural schema of one CRD version (`openAPIV3Schema`), read into a tree that the
//! write path prunes, defaults and validates with, its `x-kubernetes-validations` rules
//! compiled.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::field_error::{FieldError, Problem};
use crate::rules::{self, Rule};

/// One node of a structural schema.
#[derive(Debug, Default)]
pub(crate) struct Schema {
    /// `type`: `object`, `array`, `string`, `integer`, `number`, `boolean` (none for
    /// `x-kubernetes-int-or-string` and schema-less `x-kubernetes-preserve-unknown-fields`).
    pub type_: Option<String>,
    pub format: Option<String>,
    pub nullable: bool,
    pub int_or_string: bool,
    pub preserve_unknown: bool,
    pub embedded_resource: bool,
    pub properties: BTreeMap<String, Schema>,
    pub additional: Option<Box<Schema>>,
    pub items: Option<Box<Schema>>,
    pub required: Vec<String>,
    pub enumeration: Option<Vec<Value>>,
    pub default: Option<Value>,
    pub minimum: Option<f64>,
    pub exclusive_minimum: bool,
    pub maximum: Option<f64>,
    pub exclusive_maximum: bool,
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub min_items: Option<u64>,
    pub max_items: Option<u64>,
    /// Compiled `x-kubernetes-validations`.
    pub rules: Vec<Rule>,
    /// Whether this node or any node below it has rules.
    subtree_rules: bool,
}

impl Schema {
    /// Reads `value` (an `openAPIV3Schema`) found at `path` of the CRD. Rules that do not
    /// compile are reported in `errors` (and left out). `root` marks the schema of a whole
    /// resource (its rules may read `apiVersion`, `kind`, `metadata.name`).
    pub(crate) fn parse(
        value: &Value,
        path: &str,
        root: bool,
        errors: &mut Vec<FieldError>,
    ) -> Self {
        let text = |k: &str| value.get(k).and_then(Value::as_str).map(str::to_string);
        let flag = |k: &str| value.get(k).and_then(Value::as_bool).unwrap_or(false);
        let number = |k: &str| value.get(k).and_then(Value::as_f64);
        let count = |k: &str| value.get(k).and_then(Value::as_u64);
        let mut schema = Schema {
            type_: text("type"),
            format: text("format"),
            nullable: flag("nullable"),
            int_or_string: flag("x-kubernetes-int-or-string"),
            preserve_unknown: flag("x-kubernetes-preserve-unknown-fields"),
            embedded_resource: flag("x-kubernetes-embedded-resource"),
            required: value
                .get("required")
                .and_then(Value::as_array)
                .map(|r| {
                    r.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            enumeration: value.get("enum").and_then(Value::as_array).cloned(),
            default: value.get("default").cloned(),
            minimum: number("minimum"),
            exclusive_minimum: flag("exclusiveMinimum"),
            maximum: number("maximum"),
            exclusive_maximum: flag("exclusiveMaximum"),
            min_length: count("minLength"),
            max_length: count("maxLength"),
            min_items: count("minItems"),
            max_items: count("maxItems"),
            ..Schema::default()
        };
        schema.parse_children(value, path, errors);
        let resource = root || schema.embedded_resource;
        schema.compile_rules(value, path, resource, errors);
        schema.subtree_rules = !schema.rules.is_empty()
            || schema.properties.values().any(|p| p.subtree_rules)
            || schema
                .additional
                .as_deref()
                .is_some_and(|a| a.subtree_rules)
            || schema.items.as_deref().is_some_and(|i| i.subtree_rules);
        schema
    }

    /// Reads the nodes below this one: `properties`, `additionalProperties` (a schema, or
    /// `true` for any value) and `items`.
    fn parse_children(&mut self, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
        if let Some(properties) = value.get("properties").and_then(Value::as_object) {
            for (name, property) in properties {
                let at = format!("{path}.properties[{name}]");
                self.properties
                    .insert(name.clone(), Schema::parse(property, &at, false, errors));
            }
        }
        match value.get("additionalProperties") {
            Some(additional @ Value::Object(_)) => {
                let at = format!("{path}.additionalProperties");
                self.additional = Some(Box::new(Schema::parse(additional, &at, false, errors)));
            }
            // `true`: any value, kept as is.
            Some(Value::Bool(true)) => {
                self.additional = Some(Box::new(Schema {
                    preserve_unknown: true,
                    ..Schema::default()
                }));
            }
            _ => {}
        }
        if let Some(items) = value.get("items").filter(|i| i.is_object()) {
            let at = format!("{path}.items");
            self.items = Some(Box::new(Schema::parse(items, &at, false, errors)));
        }
    }

    /// Compiles this node's `x-kubernetes-validations` (`resource`: the node is a resource
    /// root), reporting those that do not compile.
    fn compile_rules(
        &mut self,
        value: &Value,
        path: &str,
        resource: bool,
        errors: &mut Vec<FieldError>,
    ) {
        let listed = value
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (index, rule) in listed.iter().enumerate() {
            let at = format!("{path}.x-kubernetes-validations[{index}]");
            match rules::compile(rule, self, resource) {
                Ok(compiled) => self.rules.push(compiled),
                Err(failure) => errors.push(FieldError::new(
                    &format!("{at}.{}", failure.field),
                    Problem::Invalid(failure.value),
                    failure.detail,
                )),
            }
        }
    }

    /// The schema of the property or map value `key`, if declared.
    pub(crate) fn field(&self, key: &str) -> Option<&Schema> {
        self.properties.get(key).or(self.additional.as_deref())
    }

    /// Whether this node has rules, or any node below it.
    pub(crate) fn has_rules(&self) -> bool {
        self.subtree_rules
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_the_tree_and_reports_rules_that_do_not_compile() {
        let mut errors = Vec::new();
        let schema = Schema::parse(
            &json!({
                "type": "object",
                "properties": {
                    "spec": {
                        "type": "object",
                        "required": ["repo"],
                        "properties": {
                            "repo": {"type": "string", "maxLength": 5},
                            "pr": {"x-kubernetes-int-or-string": true},
                            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                            "list": {"type": "array", "items": {"type": "integer", "format": "int32"}},
                        },
                        "x-kubernetes-validations": [
                            {"rule": "self.repo.size() > 0"},
                            {"rule": "self.nope == 1"},
                        ],
                    },
                },
            }),
            "spec.validation.openAPIV3Schema",
            true,
            &mut errors,
        );
        let spec = schema.field("spec").unwrap();
        assert_eq!(spec.required, vec!["repo".to_string()]);
        assert_eq!(spec.field("repo").unwrap().max_length, Some(5));
        assert!(spec.field("pr").unwrap().int_or_string);
        assert!(spec.field("labels").unwrap().field("anything").is_some());
        assert_eq!(
            spec.field("list")
                .unwrap()
                .items
                .as_ref()
                .unwrap()
                .format
                .as_deref(),
            Some("int32")
        );
        assert_eq!(spec.rules.len(), 1);
        assert!(schema.has_rules());
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].field,
            "spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[1].rule"
        );
        assert!(
            errors[0].detail.contains("undefined field 'nope'"),
            "{}",
            errors[0].detail
        );
    }
}
