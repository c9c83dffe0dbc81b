//! The app's Deployment, with probes, a rollout that keeps the old version
//! serving, and the image that was built (never one derived from a newer commit).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    ConfigMapEnvSource, Container, ContainerPort, EnvFromSource, EnvVar, EnvVarSource,
    LocalObjectReference, ObjectFieldSelector, PodSpec, PodTemplateSpec, Probe, SecretEnvSource,
    SecurityContext, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use reviewapp_api::{OperatorConfig, ReviewApp, ValidatedSpec};

use crate::meta::{self, ANNOTATION_IMAGE, Component, PORT_NAME};
use crate::{database, env};

/// Name of the migration init container.
pub const MIGRATE_CONTAINER: &str = "migrate";

/// The Deployment `names.app` in the app's namespace, at `replicas` (0 or 1) running `image`.
pub fn deployment(
    app: &ReviewApp,
    spec: &ValidatedSpec,
    config: &OperatorConfig,
    replicas: i32,
    image: &str,
) -> Deployment {
    let names = &spec.names;
    let deployment_spec = DeploymentSpec {
        replicas: Some(replicas),
        revision_history_limit: Some(2),
        selector: LabelSelector {
            match_labels: Some(meta::pod_selector(names)),
            match_expressions: None,
        },
        // Start the new version before stopping the old one: it keeps serving until the new
        // pod (and its migration) is ready.
        strategy: Some(DeploymentStrategy {
            type_: Some("RollingUpdate".to_string()),
            rolling_update: Some(RollingUpdateDeployment {
                max_surge: Some(IntOrString::Int(1)),
                max_unavailable: Some(IntOrString::Int(0)),
            }),
        }),
        template: pod_template(app, spec, config, image),
        ..DeploymentSpec::default()
    };
    let mut deployment = Deployment {
        metadata: meta::object_meta(app, names, Component::App, &spec.namespace, &names.app),
        ..Deployment::default()
    };
    // `Deployment.spec` is optional up to Kubernetes 1.36 and required from 1.37; `into` fits both.
    #[allow(clippy::useless_conversion)]
    {
        deployment.spec = deployment_spec.into();
    }
    deployment
}

/// The app's pods: labelled for the selector, annotated with the image, running the migration
/// (when there is one) and then the app, both with the same environment.
fn pod_template(
    app: &ReviewApp,
    spec: &ValidatedSpec,
    config: &OperatorConfig,
    image: &str,
) -> PodTemplateSpec {
    let names = &spec.names;
    let mut labels = meta::labels(app, names, Component::App);
    labels.extend(meta::pod_selector(names));
    let env = app_env(spec, config);
    let env_from = app_env_from(spec);
    let migrate = spec.migrate.as_ref().map(|migrate| Container {
        name: MIGRATE_CONTAINER.to_string(),
        image: Some(image.to_string()),
        command: Some(migrate.command.clone()),
        args: Some(migrate.args.clone()),
        env: Some(env.clone()),
        env_from: Some(env_from.clone()),
        security_context: Some(no_privilege_escalation()),
        ..Container::default()
    });
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                ANNOTATION_IMAGE.to_string(),
                image.to_string(),
            )])),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            automount_service_account_token: Some(false),
            image_pull_secrets: Some(vec![LocalObjectReference {
                name: spec.registry_secret_name.clone(),
            }]),
            init_containers: migrate.map(|c| vec![c]),
            containers: vec![app_container(spec, image, env, env_from)],
            ..PodSpec::default()
        }),
    }
}

/// The app itself, ready once it accepts TCP connections on its port.
fn app_container(
    spec: &ValidatedSpec,
    image: &str,
    env: Vec<EnvVar>,
    env_from: Vec<EnvFromSource>,
) -> Container {
    Container {
        name: spec.names.app.clone(),
        image: Some(image.to_string()),
        ports: Some(vec![ContainerPort {
            name: Some(PORT_NAME.to_string()),
            container_port: spec.port,
            protocol: Some("TCP".to_string()),
            ..ContainerPort::default()
        }]),
        env: Some(env),
        env_from: Some(env_from),
        // The app's HTTP paths are unknown, so readiness is "accepts TCP connections".
        readiness_probe: Some(Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(spec.port),
                host: None,
            }),
            period_seconds: Some(5),
            ..Probe::default()
        }),
        security_context: Some(no_privilege_escalation()),
        ..Container::default()
    }
}

fn no_privilege_escalation() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        ..SecurityContext::default()
    }
}

/// `envFrom` of the app and its migration, in the original operator's order: the database
/// credentials Secret, then each ConfigMap, then `spec.config.envSecret`, then each Secret of
/// `spec.config.env`. A later source wins a key they share, so the Secrets override the
/// ConfigMaps, and the Secrets a review yaml lists one by one override its broad `envSecret`.
pub fn app_env_from(spec: &ValidatedSpec) -> Vec<EnvFromSource> {
    let secret = |name: &str| EnvFromSource {
        secret_ref: Some(SecretEnvSource {
            name: name.to_string(),
            optional: None,
        }),
        ..EnvFromSource::default()
    };
    let mut out: Vec<EnvFromSource> = database::credentials_secret(spec)
        .iter()
        .map(|name| secret(name))
        .collect();
    out.extend(spec.env.config_maps.iter().map(|name| EnvFromSource {
        config_map_ref: Some(ConfigMapEnvSource {
            name: name.clone(),
            optional: None,
        }),
        ..EnvFromSource::default()
    }));
    out.extend(spec.env_secrets().map(secret));
    out
}

/// `env` of the app and its migration, in the original operator's order: `APP_DOMAIN`, `APP_NAME`,
/// `CLUSTER_DISABLED`, `NODE_IP` (the pod IP, name kept), the database variables, then
/// `spec.config.env.values` (which come last, so they can override anything before them).
pub fn app_env(spec: &ValidatedSpec, config: &OperatorConfig) -> Vec<EnvVar> {
    let names = &spec.names;
    let mut env = vec![
        env::literal("APP_DOMAIN", &names.host(&config.domain)),
        env::literal("APP_NAME", &names.app),
        env::literal("CLUSTER_DISABLED", "1"),
        EnvVar {
            name: "NODE_IP".to_string(),
            value: None,
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "status.podIP".to_string(),
                    api_version: None,
                }),
                ..EnvVarSource::default()
            }),
        },
    ];
    env.extend(database::app_env(spec));
    env.extend(spec.env.values.iter().cloned());
    env
}
