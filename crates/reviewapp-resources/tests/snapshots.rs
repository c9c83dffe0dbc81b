//! Golden manifests of the original operator's fixture. Review changes with
//! `INSTA_UPDATE=always cargo test -p reviewapp-resources` and read every changed `.snap`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use reviewapp_api::BuilderKind;
use reviewapp_resources::{Action, ChildKind, render};
use reviewapp_state::{Intent, TearDown};
use serde_json::json;

/// Snapshots with map keys sorted, so the files do not depend on serde_json's map order.
macro_rules! snapshot {
    ($name:expr, $value:expr) => {{
        let mut settings = insta::Settings::clone_current();
        settings.set_sort_maps(true);
        settings.bind(|| insta::assert_yaml_snapshot!($name, $value));
    }};
}

fn build_plan(kind: BuilderKind) -> reviewapp_resources::Plan {
    build_plan_with(kind, None)
}

/// The build plan, with `build.cache` enabled importing from `import_from` when given.
fn build_plan_with(kind: BuilderKind, import_from: Option<&[&str]>) -> reviewapp_resources::Plan {
    let app = app();
    let mut config = config();
    config.builder.kind = kind;
    if let Some(import_from) = import_from {
        config.registry = "registry.example/review".into();
        config.build.cache.enabled = true;
        config.build.cache.import_from = import_from.iter().map(|r| r.to_string()).collect();
        config.check().unwrap();
    }
    config.builder.pull_secrets = vec!["harbor-credentials".into()];
    let spec = spec(&app, &config);
    let intent = Intent::StartBuild {
        job_name: spec.names.build_job(SHA),
        commit: SHA.into(),
        image: spec.names.image(&config.registry, SHA),
    };
    render(&app, Some(&spec), &config, &[intent]).unwrap()
}

#[test]
fn build_job_buildkit() {
    let plan = build_plan(BuilderKind::Buildkit);
    snapshot!(
        "build_job_buildkit",
        &manifest(&plan, ChildKind::Job, "test-review-app-678--c8c9aa334a").object
    );
}

#[test]
fn build_job_kaniko() {
    let plan = build_plan(BuilderKind::Kaniko);
    snapshot!(
        "build_job_kaniko",
        &manifest(&plan, ChildKind::Job, "test-review-app-678--c8c9aa334a").object
    );
}

#[test]
fn build_job_buildkit_with_cache() {
    let plan = build_plan_with(
        BuilderKind::Buildkit,
        Some(&["registry.example/review/main:buildcache"]),
    );
    snapshot!(
        "build_job_buildkit_cache",
        &manifest(&plan, ChildKind::Job, "test-review-app-678--c8c9aa334a").object["spec"]["template"]
            ["spec"]["containers"][0]["args"]
    );
}

#[test]
fn build_job_kaniko_with_cache() {
    let plan = build_plan_with(BuilderKind::Kaniko, Some(&[]));
    snapshot!(
        "build_job_kaniko_cache",
        &manifest(&plan, ChildKind::Job, "test-review-app-678--c8c9aa334a").object["spec"]["template"]
            ["spec"]["containers"][0]["args"]
    );
}

#[test]
fn deployment_at_zero_and_one_replicas() {
    let plan = apply_plan(&app(), &config(), 0, IMAGE, false);
    snapshot!(
        "deployment_replicas_0",
        &manifest(&plan, ChildKind::Deployment, "test-review-app-678").object
    );
    let plan = apply_plan(&app(), &config(), 1, IMAGE, false);
    snapshot!(
        "deployment_replicas_1",
        &manifest(&plan, ChildKind::Deployment, "test-review-app-678").object
    );
}

#[test]
fn deployment_of_the_app_template_loads_its_env_secret() {
    // The real review yaml of revelrylabs/revelry_phoenix_app_template: `envSecret`, a migration.
    let app: reviewapp_api::ReviewApp = serde_yaml::from_str(include_str!(
        "../../../dev/samples/reviewapp-app-template.yaml"
    ))
    .unwrap();
    let image = "grossvogel/revelry-phoenix-app-template-42:3f786850e3";
    let plan = apply_plan(&app, &config(), 1, image, false);
    snapshot!(
        "deployment_app_template",
        &manifest(
            &plan,
            ChildKind::Deployment,
            "revelry-phoenix-app-template-42"
        )
        .object
    );
}

#[test]
fn service() {
    let plan = apply_plan(&app(), &config(), 0, IMAGE, false);
    snapshot!(
        "service",
        &manifest(&plan, ChildKind::Service, "test-review-app-678").object
    );
}

#[test]
fn ingress() {
    let plan = apply_plan(&app(), &config(), 0, IMAGE, false);
    snapshot!(
        "ingress",
        &manifest(&plan, ChildKind::Ingress, "test-review-app-678").object
    );
}

#[test]
fn tls_copy_action() {
    let plan = apply_plan(&app(), &config(), 0, IMAGE, false);
    let copy = plan
        .actions
        .iter()
        .find_map(|action| match action {
            Action::CopySecret { source, target } => {
                Some(json!({"source": source, "target": target.object}))
            }
            _ => None,
        })
        .expect("a CopySecret action");
    snapshot!("tls_copy_action", &copy);
}

#[test]
fn kubedb_postgres() {
    let plan = apply_plan(&app(), &config(), 0, IMAGE, false);
    snapshot!(
        "kubedb_postgres",
        &manifest(&plan, ChildKind::KubedbPostgres, "test-review-app-678--db").object
    );
}

#[test]
fn cnpg_cluster() {
    let plan = apply_plan(&cnpg_app(), &config(), 0, IMAGE, false);
    snapshot!(
        "cnpg_cluster",
        &manifest(&plan, ChildKind::CnpgCluster, "test-review-app-678--db").object
    );
}

#[test]
fn cnpg_cluster_from_a_literal_database_url() {
    let mut app = cnpg_app();
    *copy_from_mut(&mut app) = reviewapp_api::spec::CopyFrom {
        database_url: literal("postgresql://reader:s3cr%3At@db.example.com:6543/shop"),
        ..Default::default()
    };
    let plan = apply_plan(&app, &config(), 0, IMAGE, false);
    snapshot!(
        "cnpg_cluster_from_url",
        &manifest(&plan, ChildKind::CnpgCluster, "test-review-app-678--db").object
    );
    snapshot!(
        "cnpg_db_copy_secret",
        &secret_data(manifest(
            &plan,
            ChildKind::Secret,
            "test-review-app-678--dbcopy"
        ))
    );
}

#[test]
fn db_copy_secret_and_script() {
    let plan = apply_plan(&app(), &config(), 0, IMAGE, false);
    let secret = manifest(&plan, ChildKind::Secret, "test-review-app-678--dbcopy");
    let data = secret_data(secret);
    insta::assert_snapshot!("db_copy_script", data["db-copy.sh"]);
    // The script is snapshotted above as text; keep its base64 out of the Secret's snapshot.
    let mut object = secret.object.clone();
    object["data"]["db-copy.sh"] = json!("<base64 of the db_copy_script snapshot>");
    snapshot!("db_copy_secret", &object);
}

#[test]
fn apply_children_plan() {
    let plan = apply_plan(&app(), &config(), 0, IMAGE, true);
    snapshot!("apply_children_plan", &summary(&plan));
}

#[test]
fn teardown_plan() {
    let app = app();
    let config = config();
    let names = spec(&app, &config).names;
    let intents = [Intent::TearDown(TearDown {
        children: Some((NS.into(), names.clone())),
        build_jobs: vec![
            names.build_job(SHA),
            names.build_job("5ce6e4a15e2a09fe113aba79263104835bd676c2"),
        ],
    })];
    let plan = render(&app, None, &config, &intents).unwrap();
    snapshot!("teardown_plan", &summary(&plan));
}
