//! `spec.config.database`: the backend, the engine, and where a copy comes from.

use super::{Backend, CopySource, DatabaseSpec, Errors, Source, truncate};
use crate::names::is_dns_subdomain;
use crate::spec::{CopyFrom, Database, ValueSpec};

/// The path of `spec.config.database.copyFrom`.
const COPY_FROM: &str = "spec.config.database.copyFrom";

/// `spec.config.database`: `None` without a backend (an error too when a copy is asked for).
pub(super) fn database(database: Option<&Database>, errors: &mut Errors) -> Option<DatabaseSpec> {
    let db = database?;
    let backend = backend(db, errors)?;
    if let Some(engine) = db.engine.as_deref()
        && engine != "Postgres"
    {
        errors.add::<()>("spec.config.database.engine", "only Postgres is supported");
    }
    let version = db.version.clone().filter(|v| !v.trim().is_empty());
    let copy_from = db
        .copy_from
        .as_ref()
        .and_then(|c| copy_source(c, backend, errors));
    Some(DatabaseSpec {
        backend,
        version,
        copy_from,
    })
}

/// `spec.config.database.backend`: `kubedb` or `cnpg`; none means no database.
fn backend(db: &Database, errors: &mut Errors) -> Option<Backend> {
    const FIELD: &str = "spec.config.database.backend";
    match db.backend.as_deref().map(str::trim) {
        None | Some("") => {
            if db
                .copy_from
                .as_ref()
                .is_some_and(|c| *c != CopyFrom::default())
            {
                errors.add::<()>(FIELD, "is required when copyFrom is given");
            }
            None
        }
        Some("kubedb") => Some(Backend::Kubedb),
        Some("cnpg") => Some(Backend::Cnpg),
        Some(other) => errors.add(
            FIELD,
            format!(
                "unknown backend {:?}: expected kubedb or cnpg",
                truncate(other)
            ),
        ),
    }
}

/// A literal `value` or a `secretRef`, exactly one of them.
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

/// `copyFrom`: a `database_url`, or all four parts; `copyFrom: {}` copies nothing, as in the
/// original operator.
fn copy_source(copy: &CopyFrom, backend: Backend, errors: &mut Errors) -> Option<CopySource> {
    let parts = [&copy.host, &copy.database, &copy.user, &copy.password];
    match (&copy.database_url, parts.iter().any(|p| p.is_some())) {
        (Some(_), true) => errors.add(
            COPY_FROM,
            "give either database_url or host, database, user and password, not both",
        ),
        (Some(url), false) => url_source(url, backend, errors),
        (None, false) => None,
        (None, true) if parts.iter().any(|p| p.is_none()) => errors.add(
            COPY_FROM,
            "needs either database_url or all four of host, database, user and password",
        ),
        (None, true) => parts_source(copy, backend, errors),
    }
}

/// `copyFrom.database_url`: a literal is split into parts; a Secret is kept whole (KubeDB only).
fn url_source(url: &ValueSpec, backend: Backend, errors: &mut Errors) -> Option<CopySource> {
    let field = format!("{COPY_FROM}.database_url");
    match source(url, &field, errors)? {
        Source::Value(raw) => match parse_database_url(&raw) {
            Ok(parts) => Some(parts),
            Err(why) => errors.add(&field, why),
        },
        Source::Secret { name, key } if backend == Backend::Kubedb => {
            Some(CopySource::UrlSecret { name, key })
        }
        Source::Secret { .. } => errors.add(
            &field,
            "the cnpg backend needs the URL as a value, or host/database/user as values and the password as a secretRef",
        ),
    }
}

/// `copyFrom.{host,database,user,password}`: no empty literal but the password; for cnpg only
/// the password may be a `secretRef`.
fn parts_source(copy: &CopyFrom, backend: Backend, errors: &mut Errors) -> Option<CopySource> {
    let mut part = |spec: &Option<ValueSpec>, name: &str| {
        let field = format!("{COPY_FROM}.{name}");
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
    let host = part(&copy.host, "host");
    let database = part(&copy.database, "database");
    let user = part(&copy.user, "user");
    let password = part(&copy.password, "password");
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
