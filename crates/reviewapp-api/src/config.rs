//! Operator configuration: defaults, overridden by a YAML file, overridden by `REVIEWAPP_*`
//! environment variables. Pure: the caller supplies the file text and an environment lookup.

mod build_cache;
mod env;
mod lifecycle;

use serde::{Deserialize, Serialize};

pub use build_cache::{BuildCacheConfig, is_image_reference, is_registry_prefix};
pub use env::{ENV_VARS, parse_bool, parse_number};
pub use lifecycle::{ActivatorConfig, LifecycleConfig};

/// Everything the operator needs to know about its cluster. See `docs/configuration.md`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct OperatorConfig {
    /// DNS domain under which apps are served: `<app name>.<domain>`.
    pub domain: String,
    /// Namespace where build Jobs run.
    pub build_namespace: String,
    /// Registry prefix for built images (`<registry>/<app name>:<sha10>`); empty for none.
    pub registry: String,
    /// How images are built.
    pub builder: BuilderConfig,
    /// Build Job limits.
    pub build: BuildConfig,
    /// Wildcard TLS secret copied next to every app; no TLS when `secretName` is empty.
    pub tls: TlsConfig,
    /// `ingressClassName` of every Ingress; empty for the cluster default.
    pub ingress_class_name: String,
    /// Image pull secret for app pods when the app names none.
    pub default_registry_secret_name: String,
    /// Seconds between periodic reconciles of every app.
    pub reconcile_interval_seconds: u64,
    /// Namespaces apps may be placed in: exact names or `prefix*`. Empty allows every namespace.
    pub allowed_namespaces: Vec<String>,
    /// Database defaults.
    pub database: DatabaseConfig,
    /// Expiry, sleep and the cap on awake apps.
    pub lifecycle: LifecycleConfig,
    /// Where a sleeping app's Ingress sends requests: the activator's Service.
    pub activator: ActivatorConfig,
}

/// Which tool builds images.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum BuilderKind {
    /// Rootless BuildKit (`buildctl-daemonless.sh`).
    #[default]
    Buildkit,
    /// Kaniko executor (the original operator's builder).
    Kaniko,
}

/// `builder`: images and secrets of the build Job.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct BuilderConfig {
    /// `buildkit` or `kaniko`.
    pub kind: BuilderKind,
    /// Rootless BuildKit image.
    pub buildkit_image: String,
    /// Kaniko executor image.
    pub kaniko_image: String,
    /// Image with `curl` that downloads `spec.tarballUrl`.
    pub fetch_image: String,
    /// Image with `tar` that unpacks the source.
    pub unpack_image: String,
    /// Secret (docker `config.json` under key `config.json`) with push credentials, in the build namespace.
    pub push_secret_name: String,
    /// Image pull secrets for the build pod.
    pub pull_secrets: Vec<String>,
    /// Push to `registry` over plain HTTP (BuildKit `registry.insecure=true`, kaniko
    /// `--insecure`).
    pub insecure_registry: bool,
    /// Secret in the build namespace whose key `token` authenticates the source download
    /// (private repositories); empty for none.
    pub source_token_secret_name: String,
    /// Hosts the source token is sent to (`https` tarball URLs only).
    pub source_token_hosts: Vec<String>,
}

/// `build`: limits of every build Job.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct BuildConfig {
    /// `activeDeadlineSeconds` of the build Job.
    pub active_deadline_seconds: i64,
    /// `ttlSecondsAfterFinished` of the build Job.
    pub ttl_seconds_after_finished: i32,
    /// `backoffLimit` of the build Job.
    pub backoff_limit: i32,
    /// CPU request of the build container.
    pub cpu_request: String,
    /// Memory request of the build container.
    pub memory_request: String,
    /// CPU limit of the build container.
    pub cpu_limit: String,
    /// Memory limit of the build container.
    pub memory_limit: String,
    /// Most build Jobs running at once, across every app; `0` for no cap. At the cap, further
    /// builds wait in a queue, first requested first started.
    pub max_concurrent: u32,
    /// The registry build cache.
    pub cache: BuildCacheConfig,
}

/// `tls`: where the wildcard certificate comes from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Name of the wildcard `kubernetes.io/tls` Secret; empty disables TLS.
    pub secret_name: String,
    /// Namespace of that Secret.
    pub secret_namespace: String,
}

/// `database`: defaults for apps' databases.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// KubeDB `PostgresVersion` name used when the app names none.
    pub kubedb_version: String,
    /// CloudNativePG operand image; empty for the CNPG operator's default.
    pub cnpg_image_name: String,
    /// Storage size of every database.
    pub storage_size: String,
    /// StorageClass of every database; empty for the cluster default.
    pub storage_class_name: String,
}

impl Default for OperatorConfig {
    fn default() -> Self {
        Self {
            domain: "review.local".into(),
            build_namespace: "review-build".into(),
            registry: String::new(),
            builder: BuilderConfig::default(),
            build: BuildConfig::default(),
            tls: TlsConfig::default(),
            ingress_class_name: "nginx".into(),
            default_registry_secret_name: "harbor-credentials".into(),
            reconcile_interval_seconds: 30,
            allowed_namespaces: Vec::new(),
            database: DatabaseConfig::default(),
            lifecycle: LifecycleConfig::default(),
            activator: ActivatorConfig::default(),
        }
    }
}

impl Default for BuilderConfig {
    fn default() -> Self {
        Self {
            kind: BuilderKind::Buildkit,
            buildkit_image: "moby/buildkit:v0.26.2-rootless".into(),
            kaniko_image: "cgr.dev/chainguard/kaniko:latest".into(),
            fetch_image: "curlimages/curl:8.17.0".into(),
            unpack_image: "busybox:1.37".into(),
            push_secret_name: "registry-push".into(),
            pull_secrets: Vec::new(),
            insecure_registry: false,
            source_token_secret_name: String::new(),
            source_token_hosts: vec!["api.github.com".into()],
        }
    }
}

impl Default for BuildConfig {
    fn default() -> Self {
        Self {
            active_deadline_seconds: 1800,
            ttl_seconds_after_finished: 3600,
            backoff_limit: 1,
            cpu_request: "500m".into(),
            memory_request: "1Gi".into(),
            cpu_limit: "2".into(),
            memory_limit: "4Gi".into(),
            max_concurrent: 0,
            cache: BuildCacheConfig::default(),
        }
    }
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            secret_name: String::new(),
            secret_namespace: "default".into(),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            kubedb_version: "16.4".into(),
            cnpg_image_name: String::new(),
            storage_size: "1Gi".into(),
            storage_class_name: String::new(),
        }
    }
}

/// A configuration file or variable that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The YAML file does not parse or has unknown keys.
    #[error("config file: {0}")]
    Yaml(#[from] serde_yaml::Error),
    /// An environment variable has a value of the wrong type.
    #[error("{var}={value:?}: {reason}")]
    Env {
        /// Variable name.
        var: &'static str,
        /// The offending value.
        value: String,
        /// What was expected.
        reason: &'static str,
    },
    /// The merged configuration is not usable.
    #[error("config key {key}: {reason}")]
    Invalid {
        /// Key path, e.g. `build.backoffLimit`.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl OperatorConfig {
    /// Defaults, then the YAML file (if any), then environment variables from `env`, then checks.
    pub fn load(
        file: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut config = match file {
            Some(text) if !text.trim().is_empty() => serde_yaml::from_str(text)?,
            _ => Self::default(),
        };
        for (var, _, setter) in ENV_VARS {
            if let Some(value) = env(var) {
                setter(&mut config, var, value)?;
            }
        }
        config.check()?;
        Ok(config)
    }

    /// Rejects values no cluster would accept.
    pub fn check(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.into(),
            })
        };
        if self.domain.trim().is_empty() {
            return invalid("domain", "must not be empty");
        }
        if !crate::names::is_dns_label(&self.build_namespace) {
            return invalid("buildNamespace", "must be a DNS-1123 label");
        }
        if self.reconcile_interval_seconds == 0 {
            return invalid("reconcileIntervalSeconds", "must be at least 1");
        }
        if self.build.active_deadline_seconds <= 0 {
            return invalid("build.activeDeadlineSeconds", "must be positive");
        }
        if self.build.ttl_seconds_after_finished < 0 || self.build.backoff_limit < 0 {
            return invalid(
                "build.ttlSecondsAfterFinished",
                "ttl and backoffLimit must not be negative",
            );
        }
        if !self.tls.secret_name.is_empty()
            && !crate::names::is_dns_label(&self.tls.secret_namespace)
        {
            return invalid(
                "tls.secretNamespace",
                "must be a DNS-1123 label when tls.secretName is set",
            );
        }
        self.check_lifecycle()?;
        self.check_build_cache()?;
        let token_secret = &self.builder.source_token_secret_name;
        if !token_secret.is_empty() && !crate::names::is_dns_subdomain(token_secret) {
            return invalid(
                "builder.sourceTokenSecretName",
                "must be a Secret name (DNS-1123 subdomain)",
            );
        }
        Ok(())
    }

    /// Whether the build of `tarball_url` downloads it with the source token: a token Secret is
    /// configured, the URL is `https` and its host is one of `builder.sourceTokenHosts`
    /// (case-insensitive). A token is never sent anywhere else, whatever a `ReviewApp` says.
    pub fn source_token_applies(&self, tarball_url: &str) -> bool {
        if self.builder.source_token_secret_name.is_empty() {
            return false;
        }
        let Ok(url) = url::Url::parse(tarball_url) else {
            return false;
        };
        let Some(host) = url.host_str() else {
            return false;
        };
        url.scheme() == "https"
            && self
                .builder
                .source_token_hosts
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(host))
    }

    /// Whether `namespace` may receive review apps.
    pub fn namespace_allowed(&self, namespace: &str) -> bool {
        self.allowed_namespaces.is_empty()
            || self
                .allowed_namespaces
                .iter()
                .any(|pattern| match pattern.strip_suffix('*') {
                    Some(prefix) => namespace.starts_with(prefix),
                    None => namespace == pattern,
                })
    }

    /// The build cap: `Some(n)` when at most `n` build Jobs may run at once, `None` without a
    /// cap (`build.maxConcurrent: 0`).
    pub fn build_cap(&self) -> Option<usize> {
        (self.build.max_concurrent > 0).then_some(self.build.max_concurrent as usize)
    }

    /// Whether a wildcard TLS secret is configured.
    pub fn tls_enabled(&self) -> bool {
        !self.tls.secret_name.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_load_without_file_or_env() {
        let config = OperatorConfig::load(None, env(&[])).unwrap();
        assert_eq!(config, OperatorConfig::default());
        assert_eq!(config.builder.kind, BuilderKind::Buildkit);
    }

    #[test]
    fn file_overrides_defaults_and_env_overrides_file() {
        let file = "domain: example.com\nbuilder:\n  kind: kaniko\nallowedNamespaces: [a, b]\n";
        let config =
            OperatorConfig::load(Some(file), env(&[("REVIEWAPP_DOMAIN", "env.example")])).unwrap();
        assert_eq!(config.domain, "env.example");
        assert_eq!(config.builder.kind, BuilderKind::Kaniko);
        assert_eq!(config.allowed_namespaces, vec!["a", "b"]);
        assert_eq!(
            config.build_namespace, "review-build",
            "untouched keys keep defaults"
        );
    }

    #[test]
    fn every_env_var_is_applied() {
        // A registry, which `build.cache.enabled` needs.
        let file = "registry: registry.example\n";
        let base = OperatorConfig::load(Some(file), env(&[])).unwrap();
        for (var, key, _) in ENV_VARS {
            let changed = ["kaniko", "7", "ns-x", "x1,x2", "true", "7d"]
                .iter()
                .any(|value| {
                    OperatorConfig::load(Some(file), env(&[(var, value)]))
                        .is_ok_and(|config| config != base)
                });
            assert!(changed, "{var} ({key}) changed nothing");
        }
    }

    #[test]
    fn booleans_are_true_or_false_only() {
        let var = "REVIEWAPP_BUILDER_INSECURE_REGISTRY";
        for (value, expected) in [("true", true), ("false", false), (" true ", true)] {
            let config = OperatorConfig::load(None, env(&[(var, value)])).unwrap();
            assert_eq!(config.builder.insecure_registry, expected, "{value:?}");
        }
        for value in ["yes", "1", "TRUE", ""] {
            let err = OperatorConfig::load(None, env(&[(var, value)])).unwrap_err();
            assert!(err.to_string().contains(var), "{value:?}: {err}");
        }
        let file = "builder:\n  insecureRegistry: true\n";
        assert!(
            OperatorConfig::load(Some(file), env(&[]))
                .unwrap()
                .builder
                .insecure_registry
        );
    }

    #[test]
    fn bad_env_values_name_the_variable() {
        let err = OperatorConfig::load(None, env(&[("REVIEWAPP_BUILD_BACKOFF_LIMIT", "lots")]))
            .unwrap_err();
        assert!(
            err.to_string().contains("REVIEWAPP_BUILD_BACKOFF_LIMIT"),
            "{err}"
        );
        let err =
            OperatorConfig::load(None, env(&[("REVIEWAPP_BUILDER_KIND", "docker")])).unwrap_err();
        assert!(err.to_string().contains("buildkit or kaniko"), "{err}");
    }

    #[test]
    fn unknown_file_keys_are_rejected() {
        let err = OperatorConfig::load(Some("domian: typo.example\n"), env(&[])).unwrap_err();
        assert!(err.to_string().contains("domian"), "{err}");
    }

    #[test]
    fn checks_reject_unusable_values() {
        let err =
            OperatorConfig::load(Some("reconcileIntervalSeconds: 0\n"), env(&[])).unwrap_err();
        assert!(err.to_string().contains("reconcileIntervalSeconds"));
        let err =
            OperatorConfig::load(Some("buildNamespace: Not_A_Label\n"), env(&[])).unwrap_err();
        assert!(err.to_string().contains("buildNamespace"));
    }

    #[test]
    fn the_source_token_goes_to_listed_https_hosts_only() {
        let mut config = OperatorConfig::default();
        let url =
            "https://api.github.com/repos/o/r/tarball/c8c9aa334a76677aa0be4ec0ebb08484367f952d";
        assert!(!config.source_token_applies(url), "no Secret configured");
        config.builder.source_token_secret_name = "github-source".into();
        assert!(config.source_token_applies(url));
        assert!(config.source_token_applies(&url.replace("api.github.com", "API.GitHub.com")));
        for other in [
            "http://api.github.com/repos/o/r/tarball/x",
            "https://evil.example/steal",
            "https://api.github.com.evil.example/x",
            "https://user@evil.example/api.github.com",
            "not a url",
        ] {
            assert!(!config.source_token_applies(other), "{other}");
        }
        let config = OperatorConfig::load(
            None,
            env(&[
                ("REVIEWAPP_BUILDER_SOURCE_TOKEN_SECRET_NAME", "tok"),
                (
                    "REVIEWAPP_BUILDER_SOURCE_TOKEN_HOSTS",
                    "ghe.example.com, api.github.com",
                ),
            ]),
        )
        .unwrap();
        assert!(config.source_token_applies("https://ghe.example.com/api/v3/repos/o/r/tarball/x"));
        let err = OperatorConfig::load(
            None,
            env(&[("REVIEWAPP_BUILDER_SOURCE_TOKEN_SECRET_NAME", "Not A Name")]),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("builder.sourceTokenSecretName"),
            "{err}"
        );
    }

    #[test]
    fn the_build_cap_is_off_by_default_and_set_by_file_or_env() {
        assert_eq!(OperatorConfig::default().build_cap(), None);
        let config = OperatorConfig::load(Some("build:\n  maxConcurrent: 10\n"), env(&[])).unwrap();
        assert_eq!(config.build_cap(), Some(10));
        let var = "REVIEWAPP_BUILD_MAX_CONCURRENT";
        let config = OperatorConfig::load(None, env(&[(var, "3")])).unwrap();
        assert_eq!(config.build_cap(), Some(3));
        for bad in ["-1", "ten", "4294967296"] {
            let err = OperatorConfig::load(None, env(&[(var, bad)])).unwrap_err();
            assert!(err.to_string().contains(var), "{bad}: {err}");
        }
        let err =
            OperatorConfig::load(Some("build:\n  maxConcurrent: -1\n"), env(&[])).unwrap_err();
        assert!(err.to_string().contains("build.maxConcurrent"), "{err}");
    }

    #[test]
    fn namespace_allow_list_supports_prefixes() {
        let mut config = OperatorConfig::default();
        assert!(
            config.namespace_allowed("anything"),
            "empty list allows all"
        );
        config.allowed_namespaces = vec!["review-*".into(), "test-review-app".into()];
        assert!(config.namespace_allowed("review-42"));
        assert!(config.namespace_allowed("test-review-app"));
        assert!(!config.namespace_allowed("kube-system"));
        assert!(!config.namespace_allowed("test-review-app-2"));
    }

    #[test]
    fn invalid_cache_settings_name_the_key() {
        let cases = [
            (
                "build:\n  cache:\n    enabled: true\n",
                "build.cache.enabled",
            ),
            (
                "registry: 'registry.example/x,push=false'\nbuild:\n  cache:\n    enabled: true\n",
                "build.cache.enabled",
            ),
            (
                "registry: registry.example\nbuild:\n  cache:\n    enabled: true\n    importFrom: ['registry.example/main:buildcache,mode=max']\n",
                "build.cache.importFrom",
            ),
            (
                "registry: registry.example\nbuilder:\n  kind: kaniko\nbuild:\n  cache:\n    enabled: true\n    importFrom: [registry.example/main/cache]\n",
                "build.cache.importFrom",
            ),
            ("build:\n  cache:\n    enabeld: true\n", "enabeld"),
        ];
        for (file, key) in cases {
            let err = OperatorConfig::load(Some(file), env(&[])).unwrap_err();
            assert!(err.to_string().contains(key), "{file}: {err}");
        }
        let err = OperatorConfig::load(
            Some("registry: registry.example\n"),
            env(&[
                ("REVIEWAPP_BUILD_CACHE_ENABLED", "true"),
                (
                    "REVIEWAPP_BUILD_CACHE_IMPORT_FROM",
                    "ok.example/a:b, bad ref",
                ),
            ]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("build.cache.importFrom"), "{err}");
        let config = OperatorConfig::load(
            Some("registry: registry.example/review\nbuild:\n  cache:\n    enabled: true\n    importFrom: [registry.example/review/main:buildcache]\n"),
            env(&[]),
        )
        .unwrap();
        assert!(config.build.cache.enabled);
        assert_eq!(
            config.build.cache.import_from,
            ["registry.example/review/main:buildcache"]
        );
    }
}
