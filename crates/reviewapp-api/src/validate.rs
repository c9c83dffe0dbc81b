//! Pure validation: a raw [`ReviewAppSpec`] becomes a [`ValidatedSpec`] or a list of
//! [`FieldError`]s naming each bad field. Never panics, on any input.

use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource};
use serde_json::Value;

use crate::config::OperatorConfig;
use crate::names::{AppNames, is_dns_label, is_dns_subdomain, sanitize};
use crate::spec::{CopyFrom, ReviewAppSpec, ReviewConfig, Unknown, ValueSpec};

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
    /// `spec.repo`.
    pub repo: String,
    /// `spec.branch`.
    pub branch: Option<String>,
    /// `spec.pr` as a string.
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
    /// Command (non-empty).
    pub command: Vec<String>,
    /// Arguments.
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
pub enum Source {
    /// Literal value.
    Value(String),
    /// Secret key in the app's namespace.
    Secret {
        /// Secret name.
        name: String,
        /// Key.
        key: String,
    },
}

/// Where the database copy comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CopySource {
    /// Every connection part (a literal `database_url` is split into these).
    Parts {
        /// Host.
        host: Source,
        /// Port, when a `database_url` names one.
        port: Option<u16>,
        /// Database name.
        database: Source,
        /// User.
        user: Source,
        /// Password.
        password: Source,
    },
    /// A `database_url` kept in a Secret; it is handed to the copy job unparsed.
    UrlSecret {
        /// Secret name.
        name: String,
        /// Key.
        key: String,
    },
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

    let repo = match spec.repo.as_deref().map(str::trim) {
        Some(repo) if !sanitize(repo).is_empty() => repo.to_string(),
        Some(_) => errors.add("spec.repo", "must contain at least one letter or digit"),
        None => errors.add("spec.repo", "is required"),
    };
    let pr = match spec.pr_string().as_deref().map(str::trim) {
        Some(pr) if !sanitize(pr).is_empty() => pr.to_string(),
        Some(_) => errors.add("spec.pr", "must contain at least one letter or digit"),
        None => errors.add("spec.pr", "is required"),
    };
    let commit = match spec.commit_hash.as_deref().map(str::trim) {
        Some(sha)
            if (sha.len() == 40 || sha.len() == 64)
                && sha.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            sha.to_ascii_lowercase()
        }
        Some(sha) => errors.add(
            "spec.commitHash",
            format!(
                "must be a full commit SHA (40 or 64 hexadecimal characters), got {:?}",
                truncate(sha)
            ),
        ),
        None => errors.add("spec.commitHash", "is required"),
    };
    let tarball_url = match spec.tarball_url.as_deref().map(str::trim) {
        Some(raw) => match url::Url::parse(raw) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
                raw.to_string()
            }
            _ => errors.add(
                "spec.tarballUrl",
                "must be an http(s) URL of the source tarball",
            ),
        },
        None => errors.add(
            "spec.tarballUrl",
            "is required: the build fetches the source from it",
        ),
    };

    let default_config = Default::default();
    let app_config = match spec.config.as_ref() {
        Some(c) => c,
        None => {
            errors.add::<()>("spec.config", "is required");
            &default_config
        }
    };
    let namespace = match app_config.namespace.as_deref().map(str::trim) {
        Some(ns) if !is_dns_label(ns) => {
            errors.add("spec.config.namespace", "must be a DNS-1123 label")
        }
        Some(ns) if !config.namespace_allowed(ns) => errors.add(
            "spec.config.namespace",
            format!("namespace {ns:?} is not in the operator's allowedNamespaces"),
        ),
        Some(ns) => ns.to_string(),
        None => errors.add("spec.config.namespace", "is required"),
    };
    let port = match app_config.application_port {
        Some(port @ 1..=65535) => port as i32,
        Some(port) => errors.add(
            "spec.config.applicationPort",
            format!("must be 1-65535, got {port}"),
        ),
        None => errors.add("spec.config.applicationPort", "is required"),
    };
    let registry_secret_name = match app_config.registry_secret_name.as_deref().map(str::trim) {
        Some(name) if !is_dns_subdomain(name) => errors.add(
            "spec.config.registrySecretName",
            "must be a valid Secret name",
        ),
        Some(name) => name.to_string(),
        None => config.default_registry_secret_name.clone(),
    };

    let migrate = app_config.migrate.as_ref().and_then(|m| {
        let command = m.command.clone().unwrap_or_default();
        let args = m.args.clone().unwrap_or_default();
        if command.is_empty() {
            if !args.is_empty() {
                errors.add::<()>(
                    "spec.config.migrate.command",
                    "is required when migrate.args is given",
                );
            }
            None
        } else if command[0].trim().is_empty() {
            errors.add(
                "spec.config.migrate.command",
                "the first element (the executable) must not be empty",
            )
        } else {
            Some(MigrateSpec { command, args })
        }
    });

    let database = app_config.database.as_ref().and_then(|db| {
        let backend = match db.backend.as_deref().map(str::trim) {
            None | Some("") => {
                if db
                    .copy_from
                    .as_ref()
                    .is_some_and(|c| *c != CopyFrom::default())
                {
                    errors.add::<()>(
                        "spec.config.database.backend",
                        "is required when copyFrom is given",
                    );
                }
                return None;
            }
            Some("kubedb") => Backend::Kubedb,
            Some("cnpg") => Backend::Cnpg,
            Some(other) => {
                errors.add::<()>(
                    "spec.config.database.backend",
                    format!(
                        "unknown backend {:?}: expected kubedb or cnpg",
                        truncate(other)
                    ),
                );
                return None;
            }
        };
        if let Some(engine) = db.engine.as_deref()
            && engine != "Postgres"
        {
            errors.add::<()>("spec.config.database.engine", "only Postgres is supported");
        }
        let version = db.version.clone().filter(|v| !v.trim().is_empty());
        let copy_from = db
            .copy_from
            .as_ref()
            .and_then(|c| copy_source(c, backend, &mut errors));
        Some(DatabaseSpec {
            backend,
            version,
            copy_from,
        })
    });

    let env_secret = match app_config.env_secret.as_deref() {
        Some(name) if !is_dns_subdomain(name) => errors.add(
            "spec.config.envSecret",
            format!("{:?} is not a valid Secret name", truncate(name)),
        ),
        other => other.map(str::to_string),
    };
    let mut env = app_config
        .env
        .as_ref()
        .map(|env| env_spec(env, &mut errors))
        .unwrap_or_default();
    if let Some(name) = &env_secret {
        env.secrets.retain(|secret| secret != name);
    }

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
        ignored_keys: ignored_keys(app_config),
    })
}

/// The path of every key of `config` the operator does not know, field by field.
fn ignored_keys(config: &ReviewConfig) -> Vec<String> {
    let mut out = Vec::new();
    let mut add = |path: &str, unknown: &Unknown| {
        out.extend(unknown.keys().map(|key| format!("{path}.{key}")));
    };
    const CONFIG: &str = "spec.config";
    add(CONFIG, &config.unknown);
    if let Some(migrate) = &config.migrate {
        add(&format!("{CONFIG}.migrate"), &migrate.unknown);
    }
    if let Some(database) = &config.database {
        add(&format!("{CONFIG}.database"), &database.unknown);
        if let Some(copy) = &database.copy_from {
            let path = format!("{CONFIG}.database.copyFrom");
            add(&path, &copy.unknown);
            for (name, value) in [
                ("database_url", &copy.database_url),
                ("host", &copy.host),
                ("database", &copy.database),
                ("user", &copy.user),
                ("password", &copy.password),
            ] {
                let Some(value) = value else { continue };
                add(&format!("{path}.{name}"), &value.unknown);
                if let Some(secret_ref) = &value.secret_ref {
                    add(&format!("{path}.{name}.secretRef"), &secret_ref.unknown);
                }
            }
        }
    }
    if let Some(env) = &config.env {
        add(&format!("{CONFIG}.env"), &env.unknown);
        for (i, value) in env.values.iter().flatten().enumerate() {
            add(&format!("{CONFIG}.env.values[{i}]"), &value.unknown);
        }
    }
    out
}

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
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

fn source(spec: &ValueSpec, field: &str, errors: &mut Errors) -> Option<Source> {
    match (&spec.value, &spec.secret_ref) {
        (Some(value), None) => Some(Source::Value(value.clone())),
        (None, Some(r)) if is_dns_subdomain(&r.name) && !r.key.is_empty() => Some(Source::Secret {
            name: r.name.clone(),
            key: r.key.clone(),
        }),
        (None, Some(_)) => errors.add(
            &format!("{field}.secretRef"),
            "needs a valid Secret name and a key",
        ),
        (Some(_), Some(_)) => errors.add(field, "give either value or secretRef, not both"),
        (None, None) => errors.add(field, "needs a value or a secretRef"),
    }
}

fn copy_source(copy: &CopyFrom, backend: Backend, errors: &mut Errors) -> Option<CopySource> {
    const FIELD: &str = "spec.config.database.copyFrom";
    let parts = [&copy.host, &copy.database, &copy.user, &copy.password];
    if copy.database_url.is_some() && parts.iter().any(|p| p.is_some()) {
        return errors.add(
            FIELD,
            "give either database_url or host, database, user and password, not both",
        );
    }
    if let Some(url_spec) = &copy.database_url {
        let field = format!("{FIELD}.database_url");
        return match source(url_spec, &field, errors)? {
            Source::Value(raw) => match parse_database_url(&raw) {
                Ok(parts) => Some(parts),
                Err(why) => errors.add(&field, why),
            },
            Source::Secret { name, key } if backend == Backend::Kubedb => Some(CopySource::UrlSecret { name, key }),
            Source::Secret { .. } => errors.add(
                &field,
                "the cnpg backend needs the URL as a value, or host/database/user as values and the password as a secretRef",
            ),
        };
    }
    if parts.iter().all(|p| p.is_none()) {
        return None; // `copyFrom: {}`: nothing to copy, as in the original operator.
    }
    if parts.iter().any(|p| p.is_none()) {
        return errors.add(
            FIELD,
            "needs either database_url or all four of host, database, user and password",
        );
    }
    let mut get = |spec: &Option<ValueSpec>, name: &str| {
        let field = format!("{FIELD}.{name}");
        let value = source(spec.as_ref()?, &field, errors)?;
        if name != "password" && value == Source::Value(String::new()) {
            return errors.add(&format!("{field}.value"), "must not be empty");
        }
        if backend == Backend::Cnpg && name != "password" && matches!(value, Source::Secret { .. })
        {
            return errors.add(
                &field,
                "the cnpg backend needs this as a value (only password may be a secretRef)",
            );
        }
        Some(value)
    };
    let host = get(&copy.host, "host");
    let database = get(&copy.database, "database");
    let user = get(&copy.user, "user");
    let password = get(&copy.password, "password");
    Some(CopySource::Parts {
        host: host?,
        port: None,
        database: database?,
        user: user?,
        password: password?,
    })
}

/// Splits `postgres[ql]://user:password@host[:port]/database`, percent-decoding every part.
fn parse_database_url(raw: &str) -> Result<CopySource, String> {
    const SHAPE: &str = "must look like postgres://user:password@host[:port]/database";
    let url = url::Url::parse(raw.trim()).map_err(|e| format!("{SHAPE} ({e})"))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err(format!("{SHAPE} (scheme must be postgres or postgresql)"));
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or(format!("{SHAPE} (no host)"))?;
    let user = Some(url.username())
        .filter(|u| !u.is_empty())
        .ok_or(format!("{SHAPE} (no user)"))?;
    let password = url.password().ok_or(format!("{SHAPE} (no password)"))?;
    let database = url.path().trim_start_matches('/');
    if database.is_empty() || database.contains('/') {
        return Err(format!("{SHAPE} (no database name)"));
    }
    Ok(CopySource::Parts {
        host: Source::Value(
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
        ),
        port: url.port(),
        database: Source::Value(decode(database)),
        user: Source::Value(decode(user)),
        password: Source::Value(decode(password)),
    })
}

fn env_spec(env: &crate::spec::Env, errors: &mut Errors) -> EnvSpec {
    let mut names = |list: &Option<Vec<String>>, field: &str| -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (i, name) in list.iter().flatten().enumerate() {
            if !is_dns_subdomain(name) {
                errors.add::<()>(
                    &format!("{field}[{i}]"),
                    format!("{:?} is not a valid name", truncate(name)),
                );
            } else if !out.contains(name) {
                out.push(name.clone());
            }
        }
        out
    };
    let config_maps = names(&env.config_maps, "spec.config.env.configMaps");
    let secrets = names(&env.secrets, "spec.config.env.secrets");
    let mut values = Vec::new();
    for (i, item) in env.values.iter().flatten().enumerate() {
        let field = format!("spec.config.env.values[{i}]");
        // The API server's (relaxed) rule: printable ASCII other than '='.
        if item.name.is_empty()
            || item.name.contains('=')
            || !item.name.chars().all(|c| c == ' ' || c.is_ascii_graphic())
        {
            errors.add::<()>(
                &format!("{field}.name"),
                "must be a non-empty name of printable ASCII characters without '='",
            );
            continue;
        }
        let value = match &item.value {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => Some(v.to_string()),
            Some(Value::Array(_) | Value::Object(_)) => {
                errors.add::<()>(
                    &format!("{field}.value"),
                    "must be a string, number or boolean, not a list or map",
                );
                continue;
            }
        };
        let value_from: Option<EnvVarSource> = item.value_from.clone();
        if value.is_some() && value_from.is_some() {
            errors.add::<()>(&field, "give either value or valueFrom, not both");
            continue;
        }
        let value = if value_from.is_none() {
            Some(value.unwrap_or_default())
        } else {
            None
        };
        values.push(EnvVar {
            name: item.name.clone(),
            value,
            value_from,
        });
    }
    EnvSpec {
        config_maps,
        secrets,
        values,
    }
}
