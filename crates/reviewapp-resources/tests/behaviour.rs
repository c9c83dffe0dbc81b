//! What the rendered objects must do, independent of their exact text.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Container, EnvVar, Secret};
use k8s_openapi::api::networking::v1::Ingress;
use reviewapp_api::spec::{CopyFrom, SecretRef, ValueSpec};
use reviewapp_api::{BuilderKind, OperatorConfig, ReviewApp};
use reviewapp_resources::db_copy::DB_COPY_SCRIPT;
use reviewapp_resources::{Action, ChildKind, ChildRef, Plan, RenderError, all_children, render};
use reviewapp_state::{EventKind, EventNote, Intent, TearDown};
use serde_json::Value;

const APP: &str = "test-review-app-678";
const JOB: &str = "test-review-app-678--c8c9aa334a";
const DB: &str = "test-review-app-678--db";
const DB_COPY: &str = "test-review-app-678--dbcopy";
const TLS: &str = "test-review-app-678--ingress-tls";

fn deployment(plan: &Plan) -> Deployment {
    typed(manifest(plan, ChildKind::Deployment, APP))
}

fn build(app: &ReviewApp, config: &OperatorConfig) -> Job {
    let spec = spec(app, config);
    let intent = Intent::StartBuild {
        job_name: spec.names.build_job(SHA),
        commit: SHA.into(),
        image: spec.names.image(&config.registry, SHA),
    };
    let plan = render(app, Some(&spec), config, &[intent]).unwrap();
    typed(manifest(&plan, ChildKind::Job, JOB))
}

fn env_names(container: &Container) -> Vec<&str> {
    container
        .env
        .iter()
        .flatten()
        .map(|e| e.name.as_str())
        .collect()
}

fn env_value<'a>(container: &'a Container, name: &str) -> Option<&'a EnvVar> {
    container.env.iter().flatten().find(|e| e.name == name)
}

fn without_uid() -> ReviewApp {
    let mut app = app();
    app.metadata.uid = None;
    app
}

#[test]
fn the_original_operators_names_are_kept() {
    let app = app();
    let config = config();
    let plan = apply_plan(&app, &config, 0, IMAGE, false);
    let names: BTreeSet<(ChildKind, String)> = plan
        .applied()
        .into_iter()
        .map(|c| (c.kind, c.name))
        .collect();
    for expected in [
        (ChildKind::Deployment, APP),
        (ChildKind::Service, APP),
        (ChildKind::Ingress, APP),
        (ChildKind::KubedbPostgres, DB),
        (ChildKind::Secret, DB_COPY),
        (ChildKind::Secret, TLS),
    ] {
        assert!(
            names.contains(&(expected.0, expected.1.to_string())),
            "{expected:?} missing from {names:?}"
        );
    }
    assert!(plan.applied().iter().all(|c| c.namespace == NS));
    let job = build(&app, &config);
    assert_eq!(job.metadata.name.as_deref(), Some(JOB));
    assert_eq!(job.metadata.namespace.as_deref(), Some("review-build"));
}

#[test]
fn every_manifest_names_itself_like_its_child_ref() {
    let plan = apply_plan(&app(), &config(), 0, IMAGE, false);
    for action in &plan.actions {
        let manifest = match action {
            Action::Apply(m) | Action::CopySecret { target: m, .. } => m,
            _ => continue,
        };
        let object = &manifest.object;
        assert_eq!(
            object["apiVersion"],
            manifest.child.kind.api_version(),
            "{:?}",
            manifest.child
        );
        assert_eq!(object["kind"], manifest.child.kind.kind());
        assert_eq!(object["metadata"]["name"], manifest.child.name.as_str());
        assert_eq!(
            object["metadata"]["namespace"],
            manifest.child.namespace.as_str()
        );
    }
}

#[test]
fn every_child_carries_the_common_labels() {
    let app = app();
    let config = config();
    let mut plan = apply_plan(&app, &config, 0, IMAGE, false);
    let spec = spec(&app, &config);
    let job = Intent::StartBuild {
        job_name: JOB.into(),
        commit: SHA.into(),
        image: IMAGE.into(),
    };
    plan.actions
        .extend(render(&app, Some(&spec), &config, &[job]).unwrap().actions);
    for action in &plan.actions {
        let (Action::Apply(m) | Action::CreateJob(m) | Action::CopySecret { target: m, .. }) =
            action
        else {
            continue;
        };
        let labels = &m.object["metadata"]["labels"];
        assert_eq!(
            labels["reviewtron.k8s.revelry.co/app"], "test-review-app",
            "{:?}",
            m.child
        );
        assert_eq!(labels["reviewtron.k8s.revelry.co/build"], "678");
        assert_eq!(
            labels["app.kubernetes.io/managed-by"],
            "review-app-operator"
        );
        assert_eq!(labels["app.kubernetes.io/instance"], "test");
        assert_eq!(labels["app.kubernetes.io/name"], APP);
        let component = match m.child.kind {
            ChildKind::Job => "build",
            ChildKind::KubedbPostgres | ChildKind::CnpgCluster => "database",
            ChildKind::Secret if m.child.name == TLS => "tls",
            ChildKind::Secret => "database",
            ChildKind::Deployment | ChildKind::Service | ChildKind::Ingress => "app",
        };
        assert_eq!(
            labels["app.kubernetes.io/component"], component,
            "{:?}",
            m.child
        );
    }
}

#[test]
fn env_and_env_from_keep_the_original_order_and_are_shared_with_the_migration() {
    let deployment = deployment(&apply_plan(&app(), &config(), 0, IMAGE, false));
    let pod = deployment.spec.template.spec.unwrap();
    assert_eq!(pod.containers.len(), 1);
    let containers = pod.init_containers.unwrap();
    assert_eq!(containers.len(), 1, "one migration init container");
    let (main, migrate) = (&pod.containers[0], &containers[0]);
    assert_eq!(main.name, APP);
    assert_eq!(migrate.name, "migrate");
    assert_eq!(migrate.command, Some(vec!["npm".to_string()]));
    assert_eq!(
        migrate.args,
        Some(vec!["run".to_string(), "migrate".to_string()])
    );
    assert_eq!(
        main.env, migrate.env,
        "the original operator's test: init container and container share env"
    );
    assert_eq!(main.env_from, migrate.env_from, "... and envFrom");
    assert_eq!(main.image, migrate.image, "... and image");

    assert_eq!(
        env_names(main),
        [
            "APP_DOMAIN",
            "APP_NAME",
            "CLUSTER_DISABLED",
            "NODE_IP",
            "POSTGRES_HOSTNAME",
            "POSTGRES_DATABASE",
            "POSTGRES_USER",
            "POSTGRES_PASSWORD",
            "ENV_ONE",
            "ENV_TWO",
        ]
    );
    let value = |name| env_value(main, name).and_then(|e| e.value.clone());
    assert_eq!(
        value("APP_DOMAIN").as_deref(),
        Some("test-review-app-678.review.local")
    );
    assert_eq!(value("APP_NAME").as_deref(), Some(APP));
    assert_eq!(value("CLUSTER_DISABLED").as_deref(), Some("1"));
    assert_eq!(value("POSTGRES_HOSTNAME").as_deref(), Some(DB));
    assert_eq!(value("ENV_ONE").as_deref(), Some("value number one"));
    assert_eq!(
        value("ENV_TWO").as_deref(),
        Some("1"),
        "an integer value becomes a string"
    );
    let node_ip = env_value(main, "NODE_IP")
        .unwrap()
        .value_from
        .as_ref()
        .unwrap();
    assert_eq!(
        node_ip.field_ref.as_ref().unwrap().field_path,
        "status.podIP"
    );
    let user = env_value(main, "POSTGRES_USER")
        .unwrap()
        .value_from
        .as_ref()
        .unwrap();
    let user = user.secret_key_ref.as_ref().unwrap();
    assert_eq!(
        (user.name.as_str(), user.key.as_str(), user.optional),
        ("test-review-app-678--db-auth", "username", Some(true))
    );

    assert_eq!(
        env_from(main),
        [
            ("secret", "test-review-app-678--db-auth"),
            ("configMap", "config-map-one"),
            ("secret", "secret-one"),
            ("secret", "secret-two"),
        ]
    );
}

/// `(kind, name)` of each `envFrom` source of `container`.
fn env_from(container: &Container) -> Vec<(&str, &str)> {
    container
        .env_from
        .iter()
        .flatten()
        .map(
            |source| match (&source.secret_ref, &source.config_map_ref) {
                (Some(secret), None) => ("secret", secret.name.as_str()),
                (None, Some(map)) => ("configMap", map.name.as_str()),
                other => panic!("unexpected envFrom {other:?}"),
            },
        )
        .collect()
}

#[test]
fn env_secret_comes_after_the_config_maps_and_before_env_secrets() {
    let mut app = app();
    app.spec.config.as_mut().unwrap().env_secret = Some("app-env".into());
    let pod = deployment(&apply_plan(&app, &config(), 0, IMAGE, false))
        .spec
        .template
        .spec
        .unwrap();
    let (main, migrate) = (&pod.containers[0], &pod.init_containers.unwrap()[0]);
    let expected = [
        ("secret", "test-review-app-678--db-auth"),
        ("configMap", "config-map-one"),
        ("secret", "app-env"),
        ("secret", "secret-one"),
        ("secret", "secret-two"),
    ];
    assert_eq!(env_from(main), expected);
    assert_eq!(env_from(migrate), expected, "the migration loads it too");

    // Also listed in env.secrets: loaded once, at envSecret's place.
    app.spec.config.as_mut().unwrap().env_secret = Some("secret-two".into());
    let plan = apply_plan(&app, &config(), 0, IMAGE, false);
    assert_eq!(
        env_from(&deployment(&plan).spec.template.spec.unwrap().containers[0]),
        [
            ("secret", "test-review-app-678--db-auth"),
            ("configMap", "config-map-one"),
            ("secret", "secret-two"),
            ("secret", "secret-one"),
        ]
    );
}

#[test]
fn every_build_job_is_created_held_by_the_build_outcome_finalizer() {
    for kind in [
        reviewapp_api::BuilderKind::Buildkit,
        reviewapp_api::BuilderKind::Kaniko,
    ] {
        let mut config = config();
        config.builder.kind = kind;
        let job = build(&app(), &config);
        assert_eq!(
            job.metadata.finalizers,
            Some(vec![reviewapp_api::BUILD_FINALIZER.to_string()])
        );
    }
}

#[test]
fn releasing_a_build_job_renders_in_intent_order() {
    let app = app();
    let config = config();
    let intents = [
        Intent::DeleteBuildJob { name: JOB.into() },
        Intent::ReleaseBuildJob { name: JOB.into() },
    ];
    let plan = render(&app, None, &config, &intents).unwrap();
    let job = ChildRef::new(ChildKind::Job, "review-build", JOB);
    assert_eq!(
        plan.actions,
        [Action::Delete(job.clone()), Action::ReleaseJob(job)]
    );
}

#[test]
fn image_pull_secrets_are_name_objects() {
    let plan = apply_plan(&app(), &config(), 0, IMAGE, false);
    let pod = &manifest(&plan, ChildKind::Deployment, APP).object["spec"]["template"]["spec"];
    assert_eq!(
        pod["imagePullSecrets"],
        serde_json::json!([{"name": "harbor"}])
    );

    let app = app();
    let mut config = config();
    config.builder.pull_secrets = vec!["harbor-credentials".into(), "other".into()];
    let spec = spec(&app, &config);
    let intent = Intent::StartBuild {
        job_name: JOB.into(),
        commit: SHA.into(),
        image: IMAGE.into(),
    };
    let plan = render(&app, Some(&spec), &config, &[intent]).unwrap();
    let pod = &manifest(&plan, ChildKind::Job, JOB).object["spec"]["template"]["spec"];
    assert_eq!(
        pod["imagePullSecrets"],
        serde_json::json!([{"name": "harbor-credentials"}, {"name": "other"}])
    );

    config.builder.pull_secrets.clear();
    let plan = render(
        &app,
        Some(&spec),
        &config,
        &[Intent::StartBuild {
            job_name: JOB.into(),
            commit: SHA.into(),
            image: IMAGE.into(),
        }],
    )
    .unwrap();
    let pod = &manifest(&plan, ChildKind::Job, JOB).object["spec"]["template"]["spec"];
    assert!(
        pod.get("imagePullSecrets").is_none(),
        "no empty list: {pod}"
    );
}

#[test]
fn the_build_job_fetches_the_tarball_without_a_shell_and_is_bounded() {
    let app = app();
    let config = config();
    let job = build(&app, &config);
    let job_spec = job.spec.unwrap();
    assert_eq!(
        job_spec.active_deadline_seconds,
        Some(config.build.active_deadline_seconds)
    );
    assert_eq!(
        job_spec.ttl_seconds_after_finished,
        Some(config.build.ttl_seconds_after_finished)
    );
    assert_eq!(job_spec.backoff_limit, Some(config.build.backoff_limit));
    let template = job_spec.template;
    let labels = template.metadata.as_ref().unwrap().labels.as_ref().unwrap();
    assert_eq!(labels["reviewtron.k8s.revelry.co/commit"], "c8c9aa334a");
    assert!(template.metadata.as_ref().unwrap().generate_name.is_none());
    let pod = template.spec.unwrap();
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    assert_eq!(pod.automount_service_account_token, Some(false));
    assert_eq!(pod.enable_service_links, Some(false));

    let init = pod.init_containers.unwrap();
    let fetch = &init[0];
    assert_eq!(fetch.name, "fetch");
    assert_eq!(fetch.command, Some(vec!["curl".to_string()]));
    assert_eq!(
        fetch.args.as_ref().unwrap().last().map(String::as_str),
        Some("$(SOURCE_URL)")
    );
    let url = env_value(fetch, "SOURCE_URL").unwrap().value.as_deref();
    assert_eq!(
        url,
        Some("https://s3.aws.com/bucket/repo_source.tar.gz"),
        "the source is spec.tarballUrl"
    );
    assert_eq!(init[1].name, "unpack");
    assert_eq!(init[1].command, Some(vec!["tar".to_string()]));
    for container in init.iter().chain(&pod.containers) {
        let argv: Vec<&String> = container
            .command
            .iter()
            .flatten()
            .chain(container.args.iter().flatten())
            .collect();
        assert!(
            !argv.iter().any(|a| a.contains("s3.aws.com")),
            "the URL is never an argument: {argv:?}"
        );
        assert!(
            !argv
                .iter()
                .any(|a| *a == "sh" || *a == "-c" || a.ends_with("/sh")),
            "no shell: {argv:?}"
        );
        assert!(
            container.resources.as_ref().unwrap().limits.is_some(),
            "{} has limits",
            container.name
        );
    }
    for step in &init {
        let security = step.security_context.as_ref().unwrap();
        assert_eq!(security.run_as_non_root, Some(true), "{}", step.name);
        assert_eq!(security.allow_privilege_escalation, Some(false));
        assert_eq!(security.read_only_root_filesystem, Some(true));
    }
    let builder = &pod.containers[0];
    let limits = builder.resources.as_ref().unwrap().limits.as_ref().unwrap();
    assert_eq!(limits["cpu"].0, config.build.cpu_limit);
    assert_eq!(limits["memory"].0, config.build.memory_limit);
    assert!(
        builder
            .args
            .iter()
            .flatten()
            .any(|a| a.contains("name=grossvogel/test-review-app-678:c8c9aa334a,push=true")),
        "{:?}",
        builder.args
    );
}

#[test]
fn start_build_uses_the_intents_job_commit_and_image() {
    // A build restarted after a missed commit is for the commit in status, not in the spec.
    let app = app();
    let config = config();
    let spec = spec(&app, &config);
    let old = "5ce6e4a15e2a09fe113aba79263104835bd676c2";
    let intent = Intent::StartBuild {
        job_name: spec.names.build_job(old),
        commit: old.into(),
        image: "registry.example/app:5ce6e4a15e".into(),
    };
    let plan = render(&app, Some(&spec), &config, &[intent]).unwrap();
    assert!(
        matches!(plan.actions.as_slice(), [Action::CreateJob(_)]),
        "a Job is created, never applied"
    );
    let job: Job = typed(manifest(
        &plan,
        ChildKind::Job,
        "test-review-app-678--5ce6e4a15e",
    ));
    assert_eq!(
        job.metadata.labels.unwrap()["reviewtron.k8s.revelry.co/commit"],
        "5ce6e4a15e"
    );
    let args = job.spec.unwrap().template.spec.unwrap().containers[0]
        .args
        .clone()
        .unwrap();
    assert!(
        args.iter()
            .any(|a| a.contains("name=registry.example/app:5ce6e4a15e,")),
        "{args:?}"
    );
}

#[test]
fn an_insecure_registry_is_pushed_to_over_plain_http_by_either_builder() {
    let app = app();
    for kind in [BuilderKind::Buildkit, BuilderKind::Kaniko] {
        let args = |insecure: bool| {
            let mut config = config();
            config.builder.kind = kind;
            config.builder.insecure_registry = insecure;
            let job = build(&app, &config);
            job.spec.unwrap().template.spec.unwrap().containers[0]
                .args
                .clone()
                .unwrap()
        };
        let (secure, insecure) = (args(false), args(true));
        let flag = |args: &[String]| {
            args.iter()
                .any(|a| a == "--insecure" || a.ends_with(",registry.insecure=true"))
        };
        assert!(!flag(&secure), "{kind:?}: {secure:?}");
        assert!(flag(&insecure), "{kind:?}: {insecure:?}");
        // Nothing else changes.
        let rest: Vec<&String> = insecure.iter().filter(|a| *a != "--insecure").collect();
        let differing = rest.iter().zip(&secure).filter(|(a, b)| **a != *b).count();
        assert!(differing <= 1, "{kind:?}: {secure:?} vs {insecure:?}");
    }
}

#[test]
fn replicas_and_image_come_from_the_intent() {
    for (replicas, image) in [
        (0, "grossvogel/test-review-app-678:c8c9aa334a"),
        (1, "registry.example/other:0123456789"),
    ] {
        let deployment = deployment(&apply_plan(&app(), &config(), replicas, image, false));
        assert_eq!(deployment.spec.replicas, Some(replicas));
        let template = deployment.spec.template;
        let annotations = template.metadata.unwrap().annotations.unwrap();
        assert_eq!(annotations["reviewtron.k8s.revelry.co/image"], image);
        let pod = template.spec.unwrap();
        assert_eq!(pod.containers[0].image.as_deref(), Some(image));
        assert_eq!(
            pod.init_containers.unwrap()[0].image.as_deref(),
            Some(image)
        );
    }
}

#[test]
fn owner_references_only_with_a_uid() {
    let config = config();
    let plan = apply_plan(&app(), &config, 0, IMAGE, false);
    let mut checked = 0;
    for action in &plan.actions {
        let (Action::Apply(m) | Action::CopySecret { target: m, .. }) = action else {
            continue;
        };
        let refs = m.object["metadata"]["ownerReferences"].as_array().unwrap();
        assert_eq!(refs.len(), 1, "{:?}", m.child);
        let owner = &refs[0];
        assert_eq!(owner["apiVersion"], "reviewtron.k8s.revelry.co/v1");
        assert_eq!(owner["kind"], "ReviewApp");
        assert_eq!(owner["name"], "test");
        assert_eq!(owner["uid"], "5b1a6d0e-0000-4000-8000-000000000678");
        assert_eq!(owner["controller"], true);
        assert_eq!(owner["blockOwnerDeletion"], true);
        checked += 1;
    }
    assert_eq!(checked, 6);

    let app = without_uid();
    let spec = spec(&app, &config);
    let intents = [
        Intent::StartBuild {
            job_name: JOB.into(),
            commit: SHA.into(),
            image: IMAGE.into(),
        },
        Intent::ApplyChildren {
            replicas: 0,
            image: IMAGE.into(),
            prune: false,
            phase: reviewapp_state::Phase::Serving,
        },
    ];
    let plan = render(&app, Some(&spec), &config, &intents).unwrap();
    for action in &plan.actions {
        let (Action::Apply(m) | Action::CreateJob(m) | Action::CopySecret { target: m, .. }) =
            action
        else {
            continue;
        };
        assert!(
            m.object["metadata"].get("ownerReferences").is_none(),
            "{:?}",
            m.child
        );
    }
}

#[test]
fn tls_off_means_no_tls_secret_and_no_ingress_tls() {
    let mut config = config();
    config.tls.secret_name.clear();
    let plan = apply_plan(&app(), &config, 0, IMAGE, true);
    assert!(
        !plan
            .actions
            .iter()
            .any(|a| matches!(a, Action::CopySecret { .. }))
    );
    assert!(!plan.applied().iter().any(|c| c.name == TLS));
    let ingress: Ingress = typed(manifest(&plan, ChildKind::Ingress, APP));
    assert!(ingress.spec.unwrap().tls.is_none());
    assert!(
        plan.deleted()
            .contains(&ChildRef::new(ChildKind::Secret, NS, TLS)),
        "prune removes an old copy"
    );

    let plan = apply_plan(&app(), &self::config(), 0, IMAGE, false);
    let ingress: Ingress = typed(manifest(&plan, ChildKind::Ingress, APP));
    let tls = ingress.spec.unwrap().tls.unwrap();
    assert_eq!(tls[0].secret_name.as_deref(), Some(TLS));
    assert_eq!(
        tls[0].hosts,
        Some(vec!["test-review-app-678.review.local".to_string()])
    );
}

#[test]
fn the_ingress_class_is_configurable_and_optional() {
    let mut config = config();
    config.ingress_class_name = "traefik".into();
    let plan = apply_plan(&app(), &config, 0, IMAGE, false);
    assert_eq!(
        manifest(&plan, ChildKind::Ingress, APP).object["spec"]["ingressClassName"],
        "traefik"
    );
    config.ingress_class_name.clear();
    let plan = apply_plan(&app(), &config, 0, IMAGE, false);
    assert!(
        manifest(&plan, ChildKind::Ingress, APP).object["spec"]
            .get("ingressClassName")
            .is_none()
    );
}

#[test]
fn no_database_means_no_database_objects_and_no_postgres_env() {
    let mut app = app();
    app.spec.config.as_mut().unwrap().database = None;
    let plan = apply_plan(&app, &config(), 0, IMAGE, true);
    let applied = plan.applied();
    assert!(
        !applied
            .iter()
            .any(|c| matches!(c.kind, ChildKind::KubedbPostgres | ChildKind::CnpgCluster))
    );
    assert!(!applied.iter().any(|c| c.name == DB_COPY));
    let deployment = deployment(&plan);
    let main = &deployment.spec.template.spec.unwrap().containers[0];
    assert!(
        !env_names(main).iter().any(|n| n.starts_with("POSTGRES_")),
        "{:?}",
        env_names(main)
    );
    assert!(!main.env_from.iter().flatten().any(|s| {
        s.secret_ref
            .as_ref()
            .is_some_and(|r| r.name.contains("--db"))
    }));
    let deleted: BTreeSet<ChildRef> = plan.deleted().into_iter().collect();
    assert_eq!(
        deleted,
        BTreeSet::from([
            ChildRef::new(ChildKind::KubedbPostgres, NS, DB),
            ChildRef::new(ChildKind::CnpgCluster, NS, DB),
            ChildRef::new(ChildKind::Secret, NS, DB_COPY),
        ])
    );
}

#[test]
fn cnpg_uses_its_app_secret_and_read_write_service() {
    let plan = apply_plan(&cnpg_app(), &config(), 0, IMAGE, false);
    let main = &deployment(&plan).spec.template.spec.unwrap().containers[0];
    assert_eq!(
        env_value(main, "POSTGRES_HOSTNAME")
            .unwrap()
            .value
            .as_deref(),
        Some("test-review-app-678--db-rw")
    );
    assert_eq!(
        env_value(main, "POSTGRES_DATABASE")
            .unwrap()
            .value
            .as_deref(),
        Some("app")
    );
    let first = &main.env_from.as_ref().unwrap()[0];
    assert_eq!(
        first.secret_ref.as_ref().unwrap().name,
        "test-review-app-678--db-app"
    );
    // The password is a secretRef, so there is nothing for a database-copy Secret to hold.
    assert!(!plan.applied().iter().any(|c| c.name == DB_COPY));
    let cluster = &manifest(&plan, ChildKind::CnpgCluster, DB).object;
    assert_eq!(
        cluster["spec"]["externalClusters"][0]["password"]["name"],
        "database-source-auth"
    );
    assert_eq!(
        cluster["spec"]["bootstrap"]["initdb"]["import"]["databases"],
        serde_json::json!(["postgres"])
    );
}

#[test]
fn cnpg_image_comes_from_config_then_version_then_the_operator_default() {
    let image = |app: &ReviewApp, config: &OperatorConfig| {
        manifest(
            &apply_plan(app, config, 0, IMAGE, false),
            ChildKind::CnpgCluster,
            DB,
        )
        .object["spec"]
            .get("imageName")
            .cloned()
    };
    let mut config = config();
    let mut app = cnpg_app();
    assert_eq!(
        image(&app, &config),
        Some(Value::from("ghcr.io/cloudnative-pg/postgresql:10.6"))
    );
    config.database.cnpg_image_name = "registry.example/pg:17".into();
    assert_eq!(
        image(&app, &config),
        Some(Value::from("registry.example/pg:17"))
    );
    config.database.cnpg_image_name.clear();
    database_mut(&mut app).version = None;
    assert_eq!(image(&app, &config), None);
}

#[test]
fn kubedb_version_defaults_from_config_and_storage_class_is_optional() {
    let mut app = app();
    database_mut(&mut app).version = None;
    database_mut(&mut app).copy_from = None;
    let mut config = config();
    config.database.storage_class_name = "fast".into();
    config.database.storage_size = "5Gi".into();
    let plan = apply_plan(&app, &config, 0, IMAGE, false);
    let postgres = &manifest(&plan, ChildKind::KubedbPostgres, DB).object["spec"];
    assert_eq!(postgres["version"], config.database.kubedb_version.as_str());
    assert_eq!(postgres["storage"]["storageClassName"], "fast");
    assert_eq!(
        postgres["storage"]["resources"]["requests"]["storage"],
        "5Gi"
    );
    assert!(
        postgres.get("init").is_none() && postgres.get("podTemplate").is_none(),
        "nothing to copy: {postgres}"
    );
    assert!(
        !plan.applied().iter().any(|c| c.name == DB_COPY),
        "no copy, no Secret"
    );
}

#[test]
fn kubedb_copy_from_a_url_secret_passes_the_url_through() {
    let mut app = app();
    *copy_from_mut(&mut app) = CopyFrom {
        database_url: Some(ValueSpec {
            value: None,
            secret_ref: Some(SecretRef {
                name: "prod-db".into(),
                key: "DATABASE_URL".into(),
                ..SecretRef::default()
            }),
            ..ValueSpec::default()
        }),
        ..CopyFrom::default()
    };
    let plan = apply_plan(&app, &config(), 0, IMAGE, false);
    let data = secret_data(manifest(&plan, ChildKind::Secret, DB_COPY));
    assert_eq!(
        data.keys().collect::<Vec<_>>(),
        ["db-copy.sh"],
        "no literal values to store"
    );
    let env = &manifest(&plan, ChildKind::KubedbPostgres, DB).object["spec"]["podTemplate"]["spec"]
        ["containers"][0]["env"];
    assert_eq!(
        env,
        &serde_json::json!([{"name": "SOURCE_DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "prod-db", "key": "DATABASE_URL"}}}])
    );
}

#[test]
fn kubedb_copy_from_a_literal_url_stores_every_part_including_the_port() {
    let mut app = app();
    *copy_from_mut(&mut app) = CopyFrom {
        database_url: literal("postgres://reader:pa%3Ass@db.example.com:6543/shop"),
        ..CopyFrom::default()
    };
    let plan = apply_plan(&app, &config(), 0, IMAGE, false);
    let data = secret_data(manifest(&plan, ChildKind::Secret, DB_COPY));
    assert_eq!(data["SOURCE_HOST"], "db.example.com");
    assert_eq!(data["SOURCE_PORT"], "6543");
    assert_eq!(data["SOURCE_DATABASE"], "shop");
    assert_eq!(data["SOURCE_USER"], "reader");
    assert_eq!(data["SOURCE_PASSWORD"], "pa:ss");
    let postgres: Value = manifest(&plan, ChildKind::KubedbPostgres, DB)
        .object
        .clone();
    let env = postgres["spec"]["podTemplate"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .clone();
    for var in env {
        let selector = &var["valueFrom"]["secretKeyRef"];
        assert_eq!(selector["name"], DB_COPY, "{var}");
        assert_eq!(selector["key"], var["name"], "{var}");
    }
}

#[test]
fn copy_values_never_reach_a_script_only_secret_data() {
    let hostile_password = r#""; rm -rf / #$(whoami)"#;
    let hostile_host = r#"db"host'`id`"#;
    let plans: Vec<Plan> = [("test_review_app", "678"), ("other-repo", "42")]
        .into_iter()
        .map(|(repo, pr)| {
            let mut app = app();
            app.spec.repo = Some(repo.into());
            app.spec.pr =
                Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(pr.into()));
            let copy = copy_from_mut(&mut app);
            copy.password = literal(hostile_password);
            copy.host = literal(hostile_host);
            apply_plan(&app, &config(), 0, IMAGE, false)
        })
        .collect();
    let mut scripts = Vec::new();
    for plan in &plans {
        let secret_ref = plan
            .applied()
            .into_iter()
            .find(|c| c.name.ends_with("--dbcopy"))
            .unwrap();
        let secret = manifest(plan, ChildKind::Secret, &secret_ref.name);
        let data = secret_data(secret);
        let script = &data["db-copy.sh"];
        assert_eq!(script, DB_COPY_SCRIPT);
        assert!(
            !script.contains(hostile_password)
                && !script.contains("whoami")
                && !script.contains(hostile_host)
        );
        assert_eq!(data["SOURCE_PASSWORD"], hostile_password);
        assert_eq!(data["SOURCE_HOST"], hostile_host);
        scripts.push(script.clone());
        // Nowhere else in the plan: not in the Postgres object, the Deployment, or any other string.
        for action in &plan.actions {
            let (Action::Apply(m) | Action::CopySecret { target: m, .. }) = action else {
                continue;
            };
            if m.child.kind == ChildKind::Secret && m.child.name == secret_ref.name {
                continue;
            }
            let all = strings(&m.object).join("\n");
            assert!(
                !all.contains("whoami") && !all.contains(hostile_host),
                "{:?} leaks a copy value",
                m.child
            );
        }
    }
    assert_eq!(
        scripts[0], scripts[1],
        "the script is byte-identical for two different apps"
    );
}

#[test]
fn teardown_deletes_every_child_kind_and_each_build_job() {
    let app = app();
    let config = config();
    let names = spec(&app, &config).names;
    let jobs = vec![
        names.build_job(SHA),
        names.build_job("5ce6e4a15e2a09fe113aba79263104835bd676c2"),
    ];
    let intents = [Intent::TearDown(TearDown {
        children: Some((NS.into(), names.clone())),
        build_jobs: jobs.clone(),
    })];
    let plan = render(&app, None, &config, &intents).unwrap();
    let deleted = plan.deleted();
    assert!(plan.applied().is_empty());
    let kinds: BTreeSet<ChildKind> = deleted.iter().map(|c| c.kind).collect();
    assert_eq!(kinds, ChildKind::ALL.into_iter().collect(), "every kind");
    for child in all_children(NS, &names) {
        assert!(deleted.contains(&child), "{child:?}");
    }
    for job in &jobs {
        assert!(
            deleted.contains(&ChildRef::new(ChildKind::Job, "review-build", job)),
            "{job}"
        );
    }
    assert_eq!(deleted.len(), 10, "no duplicates: {deleted:?}");
    let released: Vec<&ChildRef> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::ReleaseJob(job) => Some(job),
            _ => None,
        })
        .collect();
    assert_eq!(
        released.len(),
        2,
        "each build Job is released after its delete"
    );

    // An app that never validated has no names: only its build Jobs are deleted.
    let intents = [Intent::TearDown(TearDown {
        children: None,
        build_jobs: vec![JOB.into(), JOB.into()],
    })];
    let plan = render(&app, None, &config, &intents).unwrap();
    assert_eq!(
        plan.deleted(),
        [ChildRef::new(ChildKind::Job, "review-build", JOB)]
    );
}

#[test]
fn prune_deletes_only_what_the_spec_no_longer_wants() {
    let config = config();
    let full = apply_plan(&app(), &config, 0, IMAGE, true);
    assert_eq!(
        full.deleted(),
        [ChildRef::new(ChildKind::CnpgCluster, NS, DB)],
        "only the other backend"
    );

    let plan = apply_plan(&cnpg_app(), &config, 0, IMAGE, true);
    let deleted: BTreeSet<ChildRef> = plan.deleted().into_iter().collect();
    assert_eq!(
        deleted,
        BTreeSet::from([
            ChildRef::new(ChildKind::KubedbPostgres, NS, DB),
            ChildRef::new(ChildKind::Secret, NS, DB_COPY)
        ])
    );

    let not_pruned = apply_plan(&cnpg_app(), &config, 0, IMAGE, false);
    assert!(not_pruned.deleted().is_empty());

    for plan in [&full, &plan] {
        let applied: BTreeSet<ChildRef> = plan.applied().into_iter().collect();
        let deleted: BTreeSet<ChildRef> = plan.deleted().into_iter().collect();
        assert!(applied.is_disjoint(&deleted));
        let union: BTreeSet<ChildRef> = applied.union(&deleted).cloned().collect();
        // Every child but the activator route, which the sleep cycle adds and removes.
        let names = spec(&app(), &config).names;
        let route = ChildRef::new(ChildKind::Service, NS, &names.activator);
        assert_eq!(
            union,
            all_children(NS, &names)
                .into_iter()
                .filter(|child| *child != route)
                .collect()
        );
    }
}

#[test]
fn children_are_ordered_so_references_exist_first() {
    let plan = apply_plan(&app(), &config(), 0, IMAGE, false);
    let order: Vec<(ChildKind, String)> = plan
        .applied()
        .into_iter()
        .map(|c| (c.kind, c.name))
        .collect();
    let position = |kind, name: &str| {
        order
            .iter()
            .position(|(k, n)| *k == kind && n == name)
            .unwrap()
    };
    assert!(
        position(ChildKind::Secret, DB_COPY) < position(ChildKind::KubedbPostgres, DB),
        "init Secret before the DB"
    );
    assert!(position(ChildKind::Secret, TLS) < position(ChildKind::Ingress, APP));
    assert!(position(ChildKind::KubedbPostgres, DB) < position(ChildKind::Deployment, APP));
    assert!(position(ChildKind::Service, APP) < position(ChildKind::Ingress, APP));
}

#[test]
fn render_needs_a_spec_only_for_builds_and_children() {
    let app = app();
    let config = config();
    let start = Intent::StartBuild {
        job_name: JOB.into(),
        commit: SHA.into(),
        image: IMAGE.into(),
    };
    assert_eq!(
        render(&app, None, &config, &[start]),
        Err(RenderError::NeedsSpec("StartBuild"))
    );
    let apply = Intent::ApplyChildren {
        replicas: 1,
        image: IMAGE.into(),
        prune: true,
        phase: reviewapp_state::Phase::Serving,
    };
    assert_eq!(
        render(&app, None, &config, &[apply]),
        Err(RenderError::NeedsSpec("ApplyChildren"))
    );

    let note = EventNote {
        kind: EventKind::Normal,
        reason: "TearDown",
        action: "Delete",
        note: "bye".into(),
    };
    let intents = [
        Intent::Event(note.clone()),
        Intent::DeleteBuildJob { name: JOB.into() },
        Intent::TearDown(TearDown {
            children: None,
            build_jobs: vec![],
        }),
        Intent::RemoveFinalizer,
        Intent::AddFinalizer,
    ];
    let plan = render(&app, None, &config, &intents).unwrap();
    assert_eq!(
        plan.actions,
        [
            Action::Event(note),
            Action::Delete(ChildRef::new(ChildKind::Job, "review-build", JOB)),
            Action::RemoveFinalizer,
            Action::AddFinalizer,
        ]
    );
}

#[test]
fn the_tls_copy_is_reapplied_with_its_source() {
    let plan = apply_plan(&app(), &config(), 1, IMAGE, false);
    let (source, target) = plan
        .actions
        .iter()
        .find_map(|a| match a {
            Action::CopySecret { source, target } => Some((source, target)),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        source,
        &("default".to_string(), "star-review-local-tls".to_string())
    );
    let secret: Secret = typed(target);
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
    assert!(secret.data.is_none(), "the effects layer fills the data");
    assert_eq!(
        secret.metadata.annotations.unwrap()["reviewtron.k8s.revelry.co/copied-from"],
        "default/star-review-local-tls"
    );
}
