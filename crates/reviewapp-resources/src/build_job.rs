//! The build Job: download `spec.tarballUrl`, unpack it, build the image and push it.
//!
//! Unlike the original operator's: the source comes from `spec.tarballUrl`, pull secrets are
//! `{name}` objects, the Job has a deadline, a TTL and resource limits, the pod template carries
//! labels instead of a meaningless `generateName`, and the Job carries the operator's
//! build-outcome finalizer, so that it cannot go (TTL, a person, garbage collection) before the
//! operator has recorded its outcome and released it.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    AppArmorProfile, Capabilities, Container, EmptyDirVolumeSource, KeyToPath,
    LocalObjectReference, PodSpec, PodTemplateSpec, ResourceRequirements, SeccompProfile,
    SecretKeySelector, SecretVolumeSource, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use reviewapp_api::names::{AppNames, short_sha};
use reviewapp_api::{BUILD_FINALIZER, BuilderKind, OperatorConfig, ReviewApp, ValidatedSpec};

use crate::build_cache;
use crate::env;
use crate::meta::{self, Component, LABEL_COMMIT};

/// Where the downloaded tarball lives (`download` emptyDir).
pub const DOWNLOAD_DIR: &str = "/workspace";
/// The downloaded tarball.
pub const TARBALL_PATH: &str = "/workspace/source.tar.gz";
/// Where the source is unpacked (`source` emptyDir, a separate volume so no `mkdir` is needed).
pub const SOURCE_DIR: &str = "/workspace/src";
/// Environment variable holding the tarball URL in the `fetch` container.
pub const SOURCE_URL_ENV: &str = "SOURCE_URL";
/// Environment variable holding the source token (from `builder.sourceTokenSecretName`) in the
/// `fetch` container; curl reads it itself, so it is never in the Job's args or a command line.
pub const SOURCE_TOKEN_ENV: &str = "SOURCE_TOKEN";
/// Key of the token in the `builder.sourceTokenSecretName` Secret.
pub const SOURCE_TOKEN_KEY: &str = "token";
/// Key of the docker `config.json` in the push secret.
pub const PUSH_SECRET_KEY: &str = "config.json";

const VOLUME_DOWNLOAD: &str = "download";
const VOLUME_SOURCE: &str = "source";
const VOLUME_DOCKER_CONFIG: &str = "docker-config";
const VOLUME_BUILDKITD: &str = "buildkitd";
/// Home of the `user` (uid 1000) account of the rootless BuildKit image.
const BUILDKIT_HOME: &str = "/home/user";
const NON_ROOT_UID: i64 = 1000;

/// The build Job `job_name` in `config.build_namespace`, building `commit` into `image`.
///
/// `job_name`, `commit` and `image` come from the `StartBuild` intent: a restarted build may be
/// for an older commit than `spec.commitHash`, so they are not derived from the spec here.
pub fn build_job(
    app: &ReviewApp,
    spec: &ValidatedSpec,
    config: &OperatorConfig,
    job_name: &str,
    commit: &str,
    image: &str,
) -> Job {
    let names = &spec.names;
    let mut labels = meta::labels(app, names, Component::Build);
    labels.insert(LABEL_COMMIT.to_string(), short_sha(commit).to_string());
    let mut metadata = meta::object_meta(
        app,
        names,
        Component::Build,
        &config.build_namespace,
        job_name,
    );
    metadata.labels = Some(labels.clone());
    metadata.finalizers = Some(vec![BUILD_FINALIZER.to_string()]);

    let builder = match config.builder.kind {
        BuilderKind::Buildkit => buildkit_container(config, names, image),
        BuilderKind::Kaniko => kaniko_container(config, names, image),
    };
    let mut volumes = vec![
        empty_dir(VOLUME_DOWNLOAD),
        empty_dir(VOLUME_SOURCE),
        Volume {
            name: VOLUME_DOCKER_CONFIG.to_string(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(config.builder.push_secret_name.clone()),
                items: Some(vec![KeyToPath {
                    key: PUSH_SECRET_KEY.to_string(),
                    path: PUSH_SECRET_KEY.to_string(),
                    ..KeyToPath::default()
                }]),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        },
    ];
    if config.builder.kind == BuilderKind::Buildkit {
        volumes.push(empty_dir(VOLUME_BUILDKITD));
    }
    let pull_secrets: Vec<LocalObjectReference> = config
        .builder
        .pull_secrets
        .iter()
        .map(|name| LocalObjectReference { name: name.clone() })
        .collect();

    Job {
        metadata,
        spec: Some(JobSpec {
            backoff_limit: Some(config.build.backoff_limit),
            active_deadline_seconds: Some(config.build.active_deadline_seconds),
            ttl_seconds_after_finished: Some(config.build.ttl_seconds_after_finished),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".to_string()),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    image_pull_secrets: (!pull_secrets.is_empty()).then_some(pull_secrets),
                    init_containers: Some(vec![
                        fetch_container(config, spec),
                        unpack_container(config),
                    ]),
                    containers: vec![builder],
                    volumes: Some(volumes),
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        status: None,
    }
}

/// Downloads the tarball with curl, without a shell: Kubernetes expands `$(SOURCE_URL)` in
/// `args` from the container's env once and never re-expands the result, so the URL is an
/// argument to curl and never shell text.
///
/// For a private repository ([`OperatorConfig::source_token_applies`]), `SOURCE_TOKEN` comes
/// from the token Secret and curl itself imports it (`--variable %SOURCE_TOKEN`) into an
/// `Authorization: Bearer` header (`--expand-header`, curl 8.3 or later): the Job holds only the
/// Secret's name, and the token is in no argument or command line. curl does not send that header
/// on to another host when GitHub redirects the download (to `codeload.github.com`, whose URL
/// carries its own short-lived token).
fn fetch_container(config: &OperatorConfig, spec: &ValidatedSpec) -> Container {
    let mut args = strings(&[
        "--fail",
        "--silent",
        "--show-error",
        "--location",
        "--retry",
        "3",
        "--output",
        TARBALL_PATH,
    ]);
    let mut env = vec![env::literal(SOURCE_URL_ENV, &spec.tarball_url)];
    if config.source_token_applies(&spec.tarball_url) {
        args.extend(strings(&[
            "--variable",
            &format!("%{SOURCE_TOKEN_ENV}"),
            "--expand-header",
            &format!("Authorization: Bearer {{{{{SOURCE_TOKEN_ENV}}}}}"),
        ]));
        env.push(env::from_secret(
            SOURCE_TOKEN_ENV,
            SecretKeySelector {
                name: config.builder.source_token_secret_name.clone(),
                key: SOURCE_TOKEN_KEY.to_string(),
                optional: Some(false),
            },
        ));
    }
    args.push(format!("$({SOURCE_URL_ENV})"));
    Container {
        name: "fetch".to_string(),
        image: Some(config.builder.fetch_image.clone()),
        command: Some(strings(&["curl"])),
        args: Some(args),
        env: Some(env),
        volume_mounts: Some(vec![mount(VOLUME_DOWNLOAD, DOWNLOAD_DIR, false)]),
        security_context: Some(restricted_security_context()),
        resources: Some(small_resources()),
        ..Container::default()
    }
}

/// Unpacks the tarball into the `source` volume, dropping the top directory GitHub-style
/// tarballs have (`<repo>-<sha>/`).
fn unpack_container(config: &OperatorConfig) -> Container {
    Container {
        name: "unpack".to_string(),
        image: Some(config.builder.unpack_image.clone()),
        command: Some(strings(&["tar"])),
        args: Some(strings(&[
            "-xzf",
            TARBALL_PATH,
            "-C",
            SOURCE_DIR,
            "--strip-components=1",
        ])),
        volume_mounts: Some(vec![
            mount(VOLUME_DOWNLOAD, DOWNLOAD_DIR, false),
            mount(VOLUME_SOURCE, SOURCE_DIR, false),
        ]),
        security_context: Some(restricted_security_context()),
        resources: Some(small_resources()),
        ..Container::default()
    }
}

/// Rootless BuildKit, daemonless: `buildctl-daemonless.sh` starts `buildkitd` in the container.
fn buildkit_container(config: &OperatorConfig, names: &AppNames, image: &str) -> Container {
    let mut args = strings(&[
        "build",
        "--frontend",
        "dockerfile.v0",
        "--local",
        &format!("context={SOURCE_DIR}"),
        "--local",
        &format!("dockerfile={SOURCE_DIR}"),
        "--output",
        &buildkit_output(config, image),
    ]);
    args.extend(build_cache::buildkit_args(config, names));
    Container {
        name: "build".to_string(),
        image: Some(config.builder.buildkit_image.clone()),
        command: Some(strings(&["buildctl-daemonless.sh"])),
        args: Some(args),
        env: Some(vec![
            // No PID-namespace sandbox per build step: creating one needs a privileged /proc mount.
            env::literal("BUILDKITD_FLAGS", "--oci-worker-no-process-sandbox"),
            env::literal("HOME", BUILDKIT_HOME),
            env::literal("DOCKER_CONFIG", &format!("{BUILDKIT_HOME}/.docker")),
        ]),
        volume_mounts: Some(vec![
            mount(VOLUME_SOURCE, SOURCE_DIR, true),
            mount(
                VOLUME_BUILDKITD,
                &format!("{BUILDKIT_HOME}/.local/share/buildkit"),
                false,
            ),
            mount(
                VOLUME_DOCKER_CONFIG,
                &format!("{BUILDKIT_HOME}/.docker"),
                true,
            ),
        ]),
        // Rootless BuildKit creates a user namespace (rootlesskit) and mounts inside it, which the
        // runtime's default seccomp and AppArmor profiles forbid; BuildKit's own rootless
        // Kubernetes examples run it Unconfined for this reason. It also needs `newuidmap`, a
        // setuid helper, so `allowPrivilegeEscalation` must stay at its default (true), and it
        // writes to its home and `/run/user/1000`, so the root filesystem stays writable. The
        // process itself never runs as root.
        security_context: Some(SecurityContext {
            run_as_user: Some(NON_ROOT_UID),
            run_as_group: Some(NON_ROOT_UID),
            run_as_non_root: Some(true),
            seccomp_profile: Some(SeccompProfile {
                type_: "Unconfined".to_string(),
                localhost_profile: None,
            }),
            app_armor_profile: Some(AppArmorProfile {
                type_: "Unconfined".to_string(),
                localhost_profile: None,
            }),
            ..SecurityContext::default()
        }),
        resources: Some(build_resources(config)),
        ..Container::default()
    }
}

/// BuildKit's image exporter: push `image`, over plain HTTP with `builder.insecureRegistry`.
fn buildkit_output(config: &OperatorConfig, image: &str) -> String {
    let insecure = if config.builder.insecure_registry {
        ",registry.insecure=true"
    } else {
        ""
    };
    format!("type=image,name={image},push=true{insecure}")
}

/// Kaniko executor (the original operator's builder).
fn kaniko_container(config: &OperatorConfig, names: &AppNames, image: &str) -> Container {
    let mut args = vec![
        "--dockerfile=Dockerfile".to_string(),
        format!("--context=dir://{SOURCE_DIR}"),
        format!("--destination={image}"),
    ];
    if config.builder.insecure_registry {
        args.push("--insecure".to_string());
    }
    args.extend(build_cache::kaniko_args(config, names));
    Container {
        name: "build".to_string(),
        image: Some(config.builder.kaniko_image.clone()),
        args: Some(args),
        volume_mounts: Some(vec![
            mount(VOLUME_SOURCE, SOURCE_DIR, true),
            mount(VOLUME_DOCKER_CONFIG, "/kaniko/.docker", true),
        ]),
        // Kaniko unpacks base images and runs the Dockerfile's steps in its own root filesystem,
        // so it must run as uid 0 (no `runAsNonRoot`); it never needs to gain privileges beyond
        // that, so privilege escalation (setuid binaries) is still refused.
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            ..SecurityContext::default()
        }),
        resources: Some(build_resources(config)),
        ..Container::default()
    }
}

/// Non-root, read-only, no capabilities: for the small `fetch` and `unpack` steps.
fn restricted_security_context() -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(NON_ROOT_UID),
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_string()]),
            add: None,
        }),
        read_only_root_filesystem: Some(true),
        ..SecurityContext::default()
    }
}

fn small_resources() -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(quantities(&[("cpu", "50m"), ("memory", "64Mi")])),
        limits: Some(quantities(&[("cpu", "1"), ("memory", "256Mi")])),
        ..ResourceRequirements::default()
    }
}

/// Requests and limits of the build container from `config.build`; empty values are left out.
fn build_resources(config: &OperatorConfig) -> ResourceRequirements {
    let build = &config.build;
    let requests = quantities(&[
        ("cpu", &build.cpu_request),
        ("memory", &build.memory_request),
    ]);
    let limits = quantities(&[("cpu", &build.cpu_limit), ("memory", &build.memory_limit)]);
    ResourceRequirements {
        requests: (!requests.is_empty()).then_some(requests),
        limits: (!limits.is_empty()).then_some(limits),
        ..ResourceRequirements::default()
    }
}

fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .filter(|(_, value)| !value.trim().is_empty())
        .map(|(key, value)| (key.to_string(), Quantity(value.trim().to_string())))
        .collect()
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.to_string(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }
}

fn mount(volume: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: volume.to_string(),
        mount_path: path.to_string(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}
