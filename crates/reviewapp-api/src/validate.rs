//! Pure validation: a raw [`ReviewAppSpec`] becomes a [`ValidatedSpec`] or a list of
//! [`FieldError`]s naming each bad field. Never panics, on any input.
//!
//! Each field has a rule of its own; [`validate`] runs them in the order of the spec's fields and
//! collects every error. [`identity`] applies the rules of the fields that name an app's children
//! to a spec that may fail the others (the teardown of an invalid app).

mod database;
mod env;
mod lifecycle;
mod unknown;

pub use lifecycle::{
    Controls, LIFECYCLE_ANNOTATIONS, LifecycleSpec, annotation_field, controls,
    lifecycle_annotations, parse_duration,
};

use k8s_openapi::api::core::v1::EnvVar;

use crate::config::OperatorConfig;
use crate::names::{AppNames, is_dns_label, is_dns_subdomain, sanitize};
use crate::spec::{Migrate, ReviewAppSpec, ReviewConfig};

/// One invalid field: its path from the object root and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Path such as `spec.config.applicationPort`.
    pub field: String,
    /// What is wrong, in words for the person who wrote the `ReviewApp`.
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// A `ReviewApp` spec that passed validation, with defaults resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidatedSpec {
    /// Every child name.
    pub names: AppNames,
    /// `spec.repoOwner`.
    pub repo_owner: Option<String>,
    /// `spec.repo`, trimmed.
    pub repo: String,
    /// `spec.branch`.
    pub branch: Option<String>,
    /// `spec.pr` as a string, trimmed.
    pub pr: String,
    /// `spec.commitHash`, lowercase.
    pub commit: String,
    /// `spec.tarballUrl`.
    pub tarball_url: String,
    /// `spec.config.namespace`.
    pub namespace: String,
    /// `spec.config.applicationPort`.
    pub port: i32,
    /// Pull secret of the app's pods.
    pub registry_secret_name: String,
    /// The migration init container, when a command is given.
    pub migrate: Option<MigrateSpec>,
    /// The app's database, when a backend is given.
    pub database: Option<DatabaseSpec>,
    /// `spec.config.envSecret`: a Secret loaded whole into the environment, before `env.secrets`.
    pub env_secret: Option<String>,
    /// Environment, in the order it is applied.
    pub env: EnvSpec,
    /// `spec.config.expireAfter` and `sleepAfter`, or the operator's defaults.
    pub lifecycle: LifecycleSpec,
    /// Paths of the `spec.config` keys the operator does not know (`spec.config.baseApp`,
    /// `spec.config.migrate.foo`), in the order of the config's fields: kept, reported, not used.
    pub ignored_keys: Vec<String>,
}

impl ValidatedSpec {
    /// Every Secret the app's environment loads whole (`envFrom`), in order: `envSecret`, then
    /// `env.secrets`. Each appears once.
    pub fn env_secrets(&self) -> impl Iterator<Item = &str> {
        self.env_secret
            .iter()
            .chain(self.env.secrets.iter())
            .map(String::as_str)
    }
}

/// Migration command and arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrateSpec {
    /// Command; its first element (the executable) is not blank.
    pub command: Vec<String>,
    /// Arguments (possibly none).
    pub args: Vec<String>,
}

/// Database operator that provides the app's Postgres.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// KubeDB `kubedb.com/v1` `Postgres`.
    Kubedb,
    /// CloudNativePG `postgresql.cnpg.io/v1` `Cluster`.
    Cnpg,
}

/// The app's database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseSpec {
    /// Which operator provides it.
    pub backend: Backend,
    /// Version from the spec; `None` uses the operator default.
    pub version: Option<String>,
    /// Database to copy at creation.
    pub copy_from: Option<CopySource>,
}

/// A value known now, or a key of a Secret in the app's namespace read at run time.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // `name` and `key` of a Secret say it all
pub enum Source {
    /// Literal value.
    Value(String),
    /// Secret key in the app's namespace.
    Secret { name: String, key: String },
}

/// Where the database copy comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // the connection parts and Secret `name`/`key` say it all
pub enum CopySource {
    /// Every connection part (a literal `database_url` is split into these); `port` only when a
    /// `database_url` names one.
    Parts {
        host: Source,
        port: Option<u16>,
        database: Source,
        user: Source,
        password: Source,
    },
    /// A `database_url` kept in a Secret; it is handed to the copy job unparsed.
    UrlSecret { name: String, key: String },
}

/// The app's environment.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct EnvSpec {
    /// ConfigMaps for `envFrom`, duplicates removed, order kept.
    pub config_maps: Vec<String>,
    /// Secrets for `envFrom`, duplicates (and `envSecret`) removed, order kept.
    pub secrets: Vec<String>,
    /// Single variables, scalars turned into strings.
    pub values: Vec<EnvVar>,
}

/// Validates `spec` against `config`. Every problem is reported, not only the first.
pub fn validate(
    spec: &ReviewAppSpec,
    config: &OperatorConfig,
) -> Result<ValidatedSpec, Vec<FieldError>> {
    let mut errors = Errors::default();
    let repo = errors.check("spec.repo", identifier(spec.repo.as_deref()));
    let pr = errors.check("spec.pr", identifier(spec.pr_string().as_deref()));
    let commit = errors.check("spec.commitHash", commit_hash(spec.commit_hash.as_deref()));
    let tarball_url = errors.check("spec.tarballUrl", tarball_url(spec.tarball_url.as_deref()));
    let default_config = ReviewConfig::default();
    let app_config = spec.config.as_ref().unwrap_or_else(|| {
        errors.add::<()>("spec.config", "is required");
        &default_config
    });
    let namespace = errors.check(
        "spec.config.namespace",
        allowed_namespace(app_config.namespace.as_deref(), config),
    );
    let port = errors.check(
        "spec.config.applicationPort",
        application_port(app_config.application_port),
    );
    let registry_secret_name = errors.check(
        "spec.config.registrySecretName",
        registry_secret_name(app_config.registry_secret_name.as_deref(), config),
    );
    let migrate = migrate(app_config.migrate.as_ref(), &mut errors);
    let database = database::database(app_config.database.as_ref(), &mut errors);
    let (env_secret, env) = env::environment(app_config, &mut errors);
    let lifecycle = LifecycleSpec {
        expire_after: errors.check(
            "spec.config.expireAfter",
            lifecycle::duration_field(
                app_config.expire_after.as_ref(),
                config.lifecycle.expire_after(),
            ),
        ),
        sleep_after: errors.check(
            "spec.config.sleepAfter",
            lifecycle::duration_field(
                app_config.sleep_after.as_ref(),
                config.lifecycle.sleep_after(),
            ),
        ),
    };
    if !errors.0.is_empty() {
        return Err(errors.0);
    }
    Ok(ValidatedSpec {
        names: AppNames::new(&repo, &pr),
        repo_owner: spec.repo_owner.clone(),
        repo,
        branch: spec.branch.clone(),
        pr,
        commit,
        tarball_url,
        namespace,
        port,
        registry_secret_name,
        migrate,
        database,
        env_secret,
        env,
        lifecycle,
        ignored_keys: unknown::ignored_keys(app_config),
    })
}

/// What names an app's children, read from a spec whatever else is wrong with it: each part is
/// `Some` when its field passes its [`validate`] rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Every child name, when `spec.repo` and `spec.pr` are valid.
    pub names: Option<AppNames>,
    /// `spec.config.namespace` when it is a DNS-1123 label. The operator's `allowedNamespaces`
    /// is not consulted: it may have changed since the children were created there.
    pub namespace: Option<String>,
    /// `spec.commitHash`, lowercased, when it is a full commit SHA.
    pub commit: Option<String>,
}

/// The [`Identity`] of `spec`: what a teardown may delete by name.
pub fn identity(spec: &ReviewAppSpec) -> Identity {
    let repo = identifier(spec.repo.as_deref()).ok();
    let pr = identifier(spec.pr_string().as_deref()).ok();
    let namespace = spec.config.as_ref().and_then(|c| c.namespace.as_deref());
    Identity {
        names: repo.zip(pr).map(|(repo, pr)| AppNames::new(&repo, &pr)),
        namespace: namespace_label(namespace).ok(),
        commit: commit_hash(spec.commit_hash.as_deref()).ok(),
    }
}

/// `spec.repo` or `spec.pr`: trimmed, with a letter or digit to build names from.
fn identifier(raw: Option<&str>) -> Result<String, String> {
    match raw.map(str::trim) {
        Some(value) if !sanitize(value).is_empty() => Ok(value.to_string()),
        Some(_) => Err("must contain at least one letter or digit".into()),
        None => Err("is required".into()),
    }
}

/// `spec.commitHash`: a full SHA-1 or SHA-256 commit hash, lowercased.
fn commit_hash(raw: Option<&str>) -> Result<String, String> {
    match raw.map(str::trim) {
        Some(sha)
            if (sha.len() == 40 || sha.len() == 64)
                && sha.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            Ok(sha.to_ascii_lowercase())
        }
        Some(sha) => Err(format!(
            "must be a full commit SHA (40 or 64 hexadecimal characters), got {:?}",
            truncate(sha)
        )),
        None => Err("is required".into()),
    }
}

/// `spec.tarballUrl`: an `http(s)` URL with a host.
fn tarball_url(raw: Option<&str>) -> Result<String, String> {
    let Some(raw) = raw.map(str::trim) else {
        return Err("is required: the build fetches the source from it".into());
    };
    match url::Url::parse(raw) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
            Ok(raw.to_string())
        }
        _ => Err("must be an http(s) URL of the source tarball".into()),
    }
}

/// `spec.config.namespace`: a DNS-1123 label.
fn namespace_label(raw: Option<&str>) -> Result<String, String> {
    match raw.map(str::trim) {
        Some(ns) if is_dns_label(ns) => Ok(ns.to_string()),
        Some(_) => Err("must be a DNS-1123 label".into()),
        None => Err("is required".into()),
    }
}

/// `spec.config.namespace`: a DNS-1123 label the operator's `allowedNamespaces` admits.
fn allowed_namespace(raw: Option<&str>, config: &OperatorConfig) -> Result<String, String> {
    let ns = namespace_label(raw)?;
    if config.namespace_allowed(&ns) {
        Ok(ns)
    } else {
        Err(format!(
            "namespace {ns:?} is not in the operator's allowedNamespaces"
        ))
    }
}

/// `spec.config.applicationPort`: 1-65535.
fn application_port(raw: Option<i64>) -> Result<i32, String> {
    match raw {
        Some(port @ 1..=65535) => Ok(port as i32),
        Some(port) => Err(format!("must be 1-65535, got {port}")),
        None => Err("is required".into()),
    }
}

/// `spec.config.registrySecretName`: a Secret name, by default the operator's.
fn registry_secret_name(raw: Option<&str>, config: &OperatorConfig) -> Result<String, String> {
    match raw.map(str::trim) {
        Some(name) if !is_dns_subdomain(name) => Err("must be a valid Secret name".into()),
        Some(name) => Ok(name.to_string()),
        None => Ok(config.default_registry_secret_name.clone()),
    }
}

/// `spec.config.migrate`: a command whose executable is not blank; no command, no migration.
fn migrate(migrate: Option<&Migrate>, errors: &mut Errors) -> Option<MigrateSpec> {
    const FIELD: &str = "spec.config.migrate.command";
    let migrate = migrate?;
    let command = migrate.command.clone().unwrap_or_default();
    let args = migrate.args.clone().unwrap_or_default();
    match command.first() {
        None if !args.is_empty() => errors.add(FIELD, "is required when migrate.args is given"),
        None => None,
        Some(executable) if executable.trim().is_empty() => errors.add(
            FIELD,
            "the first element (the executable) must not be empty",
        ),
        Some(_) => Some(MigrateSpec { command, args }),
    }
}

/// The errors found so far.
#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    /// Records an error and returns a placeholder; the placeholder is never used because any
    /// error makes `validate` return `Err`.
    fn add<T: Default>(&mut self, field: &str, message: impl Into<String>) -> T {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
        T::default()
    }

    /// The value a field rule accepted, or (its error recorded) a placeholder.
    fn check<T: Default>(&mut self, field: &str, rule: Result<T, String>) -> T {
        rule.unwrap_or_else(|message| self.add(field, message))
    }
}

/// At most 80 characters of a value quoted in an error.
fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}
