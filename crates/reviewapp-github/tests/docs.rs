//! `docs/github.md` stays in step with the code: every setting with its variable and real
//! default, every credential variable, every metric.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeMap;

use reviewapp_github::config::{ENV_VARS, SECRET_VARS};
use reviewapp_github::{GithubConfig, Metrics};

fn doc() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/github.md")).unwrap()
}

/// Rows of the settings table: key → (variable, default), backticks removed.
fn settings_table(doc: &str) -> BTreeMap<String, (String, String)> {
    doc.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line
                .trim()
                .trim_matches('|')
                .split(" | ")
                .map(str::trim)
                .collect();
            (cells.len() == 4 && cells[1].starts_with("`REVIEWAPP_GITHUB_")).then(|| {
                let unquote = |c: &str| c.trim_matches('`').to_string();
                (unquote(cells[0]), (unquote(cells[1]), unquote(cells[2])))
            })
        })
        .collect()
}

#[test]
fn every_setting_is_documented_with_its_default() {
    let table = settings_table(&doc());
    let defaults = serde_json::to_value(GithubConfig::default()).unwrap();
    assert_eq!(table.len(), ENV_VARS.len(), "{table:?}");
    for (var, key, _) in ENV_VARS {
        let (documented_var, default) = table
            .get(*key)
            .unwrap_or_else(|| panic!("docs/github.md has no row for {key}"));
        assert_eq!(documented_var, var);
        let real = match &defaults[*key] {
            serde_json::Value::String(s) if s.is_empty() => "\"\"".to_string(),
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        assert_eq!(*default, real, "default of {key}");
    }
    assert_eq!(
        defaults.as_object().unwrap().len(),
        ENV_VARS.len(),
        "every key has a variable"
    );
}

#[test]
fn credentials_flags_and_metrics_are_documented() {
    let doc = doc();
    for var in SECRET_VARS
        .iter()
        .chain(&["REVIEWAPP_GITHUB_CONFIG", "REVIEWAPP_GITHUB_LISTEN"])
    {
        assert!(doc.contains(var), "docs/github.md lacks {var}");
    }
    let metrics = Metrics::new();
    metrics.webhook("ping", "pong");
    metrics.api_call("pulls", "200");
    metrics.status_report("success");
    metrics.pull_request("created");
    metrics.failure("report");
    for line in metrics
        .encode()
        .lines()
        .filter(|l| l.starts_with("# TYPE "))
    {
        let name = line.split_whitespace().nth(2).unwrap();
        let documented = name.trim_start_matches("reviewapp_github_");
        assert!(
            doc.contains(&format!("{documented}_total")) || doc.contains(documented),
            "docs/github.md lacks the metric {name}"
        );
    }
}
