//! Shared fixtures of the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use k8s_openapi::api::core::v1::Secret;
use reviewapp_api::spec::{CopyFrom, ValueSpec};
use reviewapp_api::{OperatorConfig, ReviewApp, ValidatedSpec, validate};
use reviewapp_resources::{Action, ChildKind, Manifest, Plan, render};
use reviewapp_state::Intent;
use serde_json::Value;

/// The fixture's commit.
pub const SHA: &str = "c8c9aa334a76677aa0be4ec0ebb08484367f952d";
/// The image the original operator's dev setup builds for it.
pub const IMAGE: &str = "grossvogel/test-review-app-678:c8c9aa334a";
/// The fixture's namespace.
pub const NS: &str = "test-review-app";

/// The original operator's fixture.
pub fn app() -> ReviewApp {
    serde_yaml::from_str(include_str!("../fixtures/reviewapp.yaml")).expect("fixture parses")
}

/// The fixture with `spec.config.database.backend: cnpg`.
pub fn cnpg_app() -> ReviewApp {
    let mut app = app();
    database_mut(&mut app).backend = Some("cnpg".into());
    app
}

/// The fixture's `spec.config.database`.
pub fn database_mut(app: &mut ReviewApp) -> &mut reviewapp_api::spec::Database {
    app.spec.config.as_mut().unwrap().database.as_mut().unwrap()
}

/// The fixture's `spec.config.database.copyFrom`.
pub fn copy_from_mut(app: &mut ReviewApp) -> &mut CopyFrom {
    database_mut(app).copy_from.as_mut().unwrap()
}

/// `{value: v}`.
pub fn literal(v: &str) -> Option<ValueSpec> {
    Some(ValueSpec {
        value: Some(v.into()),
        ..ValueSpec::default()
    })
}

/// The original operator's dev configuration: domain review.local, registry grossvogel, TLS from
/// `default/star-review-local-tls`.
pub fn config() -> OperatorConfig {
    let mut config = OperatorConfig {
        domain: "review.local".into(),
        registry: "grossvogel".into(),
        ..OperatorConfig::default()
    };
    config.tls.secret_name = "star-review-local-tls".into();
    config.tls.secret_namespace = "default".into();
    config
}

/// The validated spec of `app`.
pub fn spec(app: &ReviewApp, config: &OperatorConfig) -> ValidatedSpec {
    validate(&app.spec, config).expect("fixture is valid")
}

/// The plan of one `ApplyChildren`.
pub fn apply_plan(
    app: &ReviewApp,
    config: &OperatorConfig,
    replicas: i32,
    image: &str,
    prune: bool,
) -> Plan {
    let spec = spec(app, config);
    render(
        app,
        Some(&spec),
        config,
        &[Intent::ApplyChildren {
            replicas,
            image: image.into(),
            prune,
            phase: reviewapp_state::Phase::Serving,
        }],
    )
    .unwrap()
}

/// The manifest of `kind` named `name` among the plan's applies (including copy targets and Jobs).
pub fn manifest<'a>(plan: &'a Plan, kind: ChildKind, name: &str) -> &'a Manifest {
    plan.actions
        .iter()
        .find_map(|action| match action {
            Action::Apply(m) | Action::CreateJob(m) | Action::CopySecret { target: m, .. }
                if m.child.kind == kind && m.child.name == name =>
            {
                Some(m)
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no {kind:?} {name} in {:#?}", plan.applied()))
}

/// Deserialises a manifest into a typed object.
pub fn typed<T: serde::de::DeserializeOwned>(manifest: &Manifest) -> T {
    serde_json::from_value(manifest.object.clone()).expect("manifest deserialises")
}

/// The decoded `data` of a Secret manifest.
pub fn secret_data(manifest: &Manifest) -> std::collections::BTreeMap<String, String> {
    let secret: Secret = typed(manifest);
    secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v.0).expect("utf-8")))
        .collect()
}

/// `(action, kind, namespace, name)` of each action that touches an object.
pub fn summary(plan: &Plan) -> Vec<String> {
    plan.actions
        .iter()
        .map(|action| match action {
            Action::Apply(m) => format!(
                "apply {} {}/{}",
                m.child.kind.kind(),
                m.child.namespace,
                m.child.name
            ),
            Action::CreateJob(m) => format!(
                "create {} {}/{}",
                m.child.kind.kind(),
                m.child.namespace,
                m.child.name
            ),
            Action::CopySecret { source, target } => format!(
                "copy Secret {}/{} to {}/{}",
                source.0, source.1, target.child.namespace, target.child.name
            ),
            Action::Delete(c) => format!("delete {} {}/{}", c.kind.kind(), c.namespace, c.name),
            Action::ReleaseJob(c) => {
                format!("release {} {}/{}", c.kind.kind(), c.namespace, c.name)
            }
            Action::AddFinalizer => "add finalizer".into(),
            Action::RemoveFinalizer => "remove finalizer".into(),
            Action::Event(e) => format!("event {}", e.reason),
        })
        .collect()
}

/// Walks `value` and returns every string in it.
pub fn strings(value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::String(s) => out.push(s.clone()),
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            Value::Object(map) => map.iter().for_each(|(k, v)| {
                out.push(k.clone());
                walk(v, out)
            }),
            _ => {}
        }
    }
    walk(value, &mut out);
    out
}
