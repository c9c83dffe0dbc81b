//! The `REVIEWAPP_*` environment variables: which config key each sets, and how its value is read.

use super::{BuilderKind, ConfigError, OperatorConfig};

type Setter = fn(&mut OperatorConfig, &'static str, String) -> Result<(), ConfigError>;

/// Every environment variable, the config key it sets, and how. The single source of truth for
/// `docs/configuration.md` (a test checks that the doc lists every one).
pub const ENV_VARS: &[(&str, &str, Setter)] = &[
    ("REVIEWAPP_DOMAIN", "domain", |c, _, v| {
        set(&mut c.domain, v)
    }),
    ("REVIEWAPP_BUILD_NAMESPACE", "buildNamespace", |c, _, v| {
        set(&mut c.build_namespace, v)
    }),
    ("REVIEWAPP_REGISTRY", "registry", |c, _, v| {
        set(&mut c.registry, v)
    }),
    ("REVIEWAPP_BUILDER_KIND", "builder.kind", |c, var, v| {
        c.builder.kind = match v.as_str() {
            "buildkit" => BuilderKind::Buildkit,
            "kaniko" => BuilderKind::Kaniko,
            _ => {
                return Err(ConfigError::Env {
                    var,
                    value: v,
                    reason: "expected buildkit or kaniko",
                });
            }
        };
        Ok(())
    }),
    (
        "REVIEWAPP_BUILDER_BUILDKIT_IMAGE",
        "builder.buildkitImage",
        |c, _, v| set(&mut c.builder.buildkit_image, v),
    ),
    (
        "REVIEWAPP_BUILDER_KANIKO_IMAGE",
        "builder.kanikoImage",
        |c, _, v| set(&mut c.builder.kaniko_image, v),
    ),
    (
        "REVIEWAPP_BUILDER_FETCH_IMAGE",
        "builder.fetchImage",
        |c, _, v| set(&mut c.builder.fetch_image, v),
    ),
    (
        "REVIEWAPP_BUILDER_UNPACK_IMAGE",
        "builder.unpackImage",
        |c, _, v| set(&mut c.builder.unpack_image, v),
    ),
    (
        "REVIEWAPP_BUILDER_PUSH_SECRET_NAME",
        "builder.pushSecretName",
        |c, _, v| set(&mut c.builder.push_secret_name, v),
    ),
    (
        "REVIEWAPP_BUILDER_PULL_SECRETS",
        "builder.pullSecrets",
        |c, _, v| {
            c.builder.pull_secrets = list(&v);
            Ok(())
        },
    ),
    (
        "REVIEWAPP_BUILDER_INSECURE_REGISTRY",
        "builder.insecureRegistry",
        |c, var, v| {
            c.builder.insecure_registry = boolean(var, v)?;
            Ok(())
        },
    ),
    (
        "REVIEWAPP_BUILDER_SOURCE_TOKEN_SECRET_NAME",
        "builder.sourceTokenSecretName",
        |c, _, v| set(&mut c.builder.source_token_secret_name, v),
    ),
    (
        "REVIEWAPP_BUILDER_SOURCE_TOKEN_HOSTS",
        "builder.sourceTokenHosts",
        |c, _, v| {
            c.builder.source_token_hosts = list(&v);
            Ok(())
        },
    ),
    (
        "REVIEWAPP_BUILD_ACTIVE_DEADLINE_SECONDS",
        "build.activeDeadlineSeconds",
        |c, var, v| {
            c.build.active_deadline_seconds = number(var, v)?;
            Ok(())
        },
    ),
    (
        "REVIEWAPP_BUILD_TTL_SECONDS_AFTER_FINISHED",
        "build.ttlSecondsAfterFinished",
        |c, var, v| {
            c.build.ttl_seconds_after_finished = number(var, v)?;
            Ok(())
        },
    ),
    (
        "REVIEWAPP_BUILD_BACKOFF_LIMIT",
        "build.backoffLimit",
        |c, var, v| {
            c.build.backoff_limit = number(var, v)?;
            Ok(())
        },
    ),
    (
        "REVIEWAPP_BUILD_CPU_REQUEST",
        "build.cpuRequest",
        |c, _, v| set(&mut c.build.cpu_request, v),
    ),
    (
        "REVIEWAPP_BUILD_MEMORY_REQUEST",
        "build.memoryRequest",
        |c, _, v| set(&mut c.build.memory_request, v),
    ),
    ("REVIEWAPP_BUILD_CPU_LIMIT", "build.cpuLimit", |c, _, v| {
        set(&mut c.build.cpu_limit, v)
    }),
    (
        "REVIEWAPP_BUILD_MEMORY_LIMIT",
        "build.memoryLimit",
        |c, _, v| set(&mut c.build.memory_limit, v),
    ),
    (
        "REVIEWAPP_BUILD_MAX_CONCURRENT",
        "build.maxConcurrent",
        |c, var, v| {
            c.build.max_concurrent = number(var, v)?;
            Ok(())
        },
    ),
    (
        "REVIEWAPP_BUILD_CACHE_ENABLED",
        "build.cache.enabled",
        |c, var, v| {
            c.build.cache.enabled = boolean(var, v)?;
            Ok(())
        },
    ),
    (
        "REVIEWAPP_BUILD_CACHE_IMPORT_FROM",
        "build.cache.importFrom",
        |c, _, v| {
            c.build.cache.import_from = list(&v);
            Ok(())
        },
    ),
    ("REVIEWAPP_TLS_SECRET_NAME", "tls.secretName", |c, _, v| {
        set(&mut c.tls.secret_name, v)
    }),
    (
        "REVIEWAPP_TLS_SECRET_NAMESPACE",
        "tls.secretNamespace",
        |c, _, v| set(&mut c.tls.secret_namespace, v),
    ),
    (
        "REVIEWAPP_INGRESS_CLASS_NAME",
        "ingressClassName",
        |c, _, v| set(&mut c.ingress_class_name, v),
    ),
    (
        "REVIEWAPP_DEFAULT_REGISTRY_SECRET_NAME",
        "defaultRegistrySecretName",
        |c, _, v| set(&mut c.default_registry_secret_name, v),
    ),
    (
        "REVIEWAPP_RECONCILE_INTERVAL_SECONDS",
        "reconcileIntervalSeconds",
        |c, var, v| {
            c.reconcile_interval_seconds = number(var, v)?;
            Ok(())
        },
    ),
    (
        "REVIEWAPP_ALLOWED_NAMESPACES",
        "allowedNamespaces",
        |c, _, v| {
            c.allowed_namespaces = list(&v);
            Ok(())
        },
    ),
    (
        "REVIEWAPP_DATABASE_KUBEDB_VERSION",
        "database.kubedbVersion",
        |c, _, v| set(&mut c.database.kubedb_version, v),
    ),
    (
        "REVIEWAPP_DATABASE_CNPG_IMAGE_NAME",
        "database.cnpgImageName",
        |c, _, v| set(&mut c.database.cnpg_image_name, v),
    ),
    (
        "REVIEWAPP_DATABASE_STORAGE_SIZE",
        "database.storageSize",
        |c, _, v| set(&mut c.database.storage_size, v),
    ),
    (
        "REVIEWAPP_DATABASE_STORAGE_CLASS_NAME",
        "database.storageClassName",
        |c, _, v| set(&mut c.database.storage_class_name, v),
    ),
    (
        "REVIEWAPP_LIFECYCLE_EXPIRE_AFTER",
        "lifecycle.expireAfter",
        |c, _, v| set(&mut c.lifecycle.expire_after, v),
    ),
    (
        "REVIEWAPP_LIFECYCLE_SLEEP_AFTER",
        "lifecycle.sleepAfter",
        |c, _, v| set(&mut c.lifecycle.sleep_after, v),
    ),
    (
        "REVIEWAPP_LIFECYCLE_MAX_AWAKE_APPS",
        "lifecycle.maxAwakeApps",
        |c, var, v| {
            c.lifecycle.max_awake_apps = number(var, v)?;
            Ok(())
        },
    ),
    (
        "REVIEWAPP_ACTIVATOR_SERVICE_NAME",
        "activator.serviceName",
        |c, _, v| set(&mut c.activator.service_name, v),
    ),
    (
        "REVIEWAPP_ACTIVATOR_NAMESPACE",
        "activator.namespace",
        |c, _, v| set(&mut c.activator.namespace, v),
    ),
    ("REVIEWAPP_ACTIVATOR_PORT", "activator.port", |c, var, v| {
        c.activator.port = number(var, v)?;
        Ok(())
    }),
    (
        "REVIEWAPP_ACTIVATOR_CLUSTER_DOMAIN",
        "activator.clusterDomain",
        |c, _, v| set(&mut c.activator.cluster_domain, v),
    ),
];

fn set(field: &mut String, value: String) -> Result<(), ConfigError> {
    *field = value;
    Ok(())
}

fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// A boolean variable's value: `true` or `false` (surrounding spaces ignored), or what was
/// expected. Shared with the GitHub component's settings.
pub fn parse_bool(value: &str) -> Result<bool, &'static str> {
    match value.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("expected true or false"),
    }
}

/// A numeric variable's value (surrounding spaces ignored), or what was expected. Shared with
/// the GitHub component's settings.
pub fn parse_number<T: std::str::FromStr>(value: &str) -> Result<T, &'static str> {
    value.trim().parse().map_err(|_| "expected a whole number")
}

fn boolean(var: &'static str, value: String) -> Result<bool, ConfigError> {
    parse_bool(&value).map_err(|reason| ConfigError::Env { var, value, reason })
}

fn number<T: std::str::FromStr>(var: &'static str, value: String) -> Result<T, ConfigError> {
    parse_number(&value).map_err(|reason| ConfigError::Env { var, value, reason })
}
