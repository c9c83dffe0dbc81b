//! `docs/configuration.md` stays in step with `OperatorConfig` and `ENV_VARS`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeMap;

use reviewapp_api::OperatorConfig;
use reviewapp_api::config::ENV_VARS;
use serde_json::Value;

fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/configuration.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The body of the first fenced block whose info string is `lang`.
fn first_block(doc: &str, lang: &str) -> String {
    let open = format!("```{lang}\n");
    let start = doc
        .find(&open)
        .unwrap_or_else(|| panic!("no ```{lang} block"))
        + open.len();
    let len = doc[start..].find("\n```").expect("unclosed block");
    doc[start..start + len + 1].to_string()
}

/// Rows of the key table: key → (environment variable, default), backticks removed.
fn key_table(doc: &str) -> BTreeMap<String, (String, String)> {
    let mut rows = BTreeMap::new();
    for line in doc.lines() {
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split(" | ")
            .map(str::trim)
            .collect();
        if cells.len() != 5 || !cells[1].starts_with("`REVIEWAPP_") {
            continue;
        }
        let unquote = |cell: &str| cell.trim_matches('`').to_string();
        let previous = rows.insert(unquote(cells[0]), (unquote(cells[1]), unquote(cells[3])));
        assert!(previous.is_none(), "duplicate row: {line}");
    }
    rows
}

/// Dotted paths of every non-map value: `build.activeDeadlineSeconds` → its value.
fn leaves(value: &Value, prefix: &str, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                leaves(child, &path, out);
            }
        }
        leaf => {
            out.insert(prefix.to_string(), leaf.clone());
        }
    }
}

fn default_leaves() -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    leaves(
        &serde_json::to_value(OperatorConfig::default()).unwrap(),
        "",
        &mut out,
    );
    out
}

/// How the doc writes a default value.
fn render(value: &Value) -> String {
    match value {
        Value::String(s) if s.is_empty() => "\"\"".to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.is_empty() => "[]".to_string(),
        other => other.to_string(),
    }
}

#[test]
fn doc_names_every_variable_and_key() {
    let doc = doc();
    for (var, key, _) in ENV_VARS {
        assert!(doc.contains(var), "docs/configuration.md lacks {var}");
        assert!(
            doc.contains(&format!("`{key}`")),
            "docs/configuration.md lacks `{key}`"
        );
    }
}

#[test]
fn key_table_has_one_row_per_variable() {
    let table = key_table(&doc());
    let expected: BTreeMap<String, String> = ENV_VARS
        .iter()
        .map(|(var, key, _)| (key.to_string(), var.to_string()))
        .collect();
    let documented: BTreeMap<String, String> = table
        .iter()
        .map(|(key, (var, _))| (key.clone(), var.clone()))
        .collect();
    assert_eq!(documented, expected);
}

#[test]
fn every_config_key_has_a_variable() {
    let keys: Vec<String> = default_leaves().into_keys().collect();
    let mut with_var: Vec<String> = ENV_VARS.iter().map(|(_, k, _)| k.to_string()).collect();
    with_var.sort();
    assert_eq!(keys, with_var);
}

#[test]
fn documented_defaults_are_the_real_defaults() {
    let table = key_table(&doc());
    for (key, value) in default_leaves() {
        let (_, documented) = table
            .get(&key)
            .unwrap_or_else(|| panic!("no row for {key}"));
        assert_eq!(*documented, render(&value), "default of {key}");
    }
}

#[test]
fn example_yaml_loads() {
    let example = first_block(&doc(), "yaml");
    let config = OperatorConfig::load(Some(&example), |_| None)
        .unwrap_or_else(|e| panic!("the example does not load: {e}\n{example}"));
    assert_ne!(config, OperatorConfig::default());
}

#[test]
fn example_yaml_sets_every_key() {
    let example = first_block(&doc(), "yaml");
    let yaml: Value = serde_yaml::from_str(&example).unwrap();
    for (_, key, _) in ENV_VARS {
        let pointer = format!("/{}", key.replace('.', "/"));
        assert!(
            yaml.pointer(&pointer).is_some(),
            "the example does not set {key}"
        );
    }
}

#[test]
fn example_yaml_and_env_block_agree() {
    // The `sh` block lists some of the example's settings as variables; they must load to the
    // same values as the file.
    let doc = doc();
    let example = first_block(&doc, "yaml");
    let from_file = OperatorConfig::load(Some(&example), |_| None).unwrap();
    let env_block = doc
        .split("```sh\n")
        .map(|rest| rest.split("\n```").next().unwrap_or_default())
        .find(|block| block.contains("REVIEWAPP_DOMAIN="))
        .expect("an sh block with REVIEWAPP_ variables");
    let vars: BTreeMap<String, String> = env_block
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert!(vars.len() >= 5, "{vars:?}");
    let from_env = OperatorConfig::load(None, |var| vars.get(var).cloned()).unwrap();
    let file_leaves = {
        let mut out = BTreeMap::new();
        leaves(&serde_json::to_value(&from_file).unwrap(), "", &mut out);
        out
    };
    let mut env_leaves = BTreeMap::new();
    leaves(
        &serde_json::to_value(&from_env).unwrap(),
        "",
        &mut env_leaves,
    );
    for (var, key, _) in ENV_VARS {
        if vars.contains_key(*var) {
            assert_eq!(env_leaves[*key], file_leaves[*key], "{var}");
        }
    }
}
