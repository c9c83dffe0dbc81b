//! The database-copy Secret, without the original's shell injection.
//!
//! The copy script is a constant: identical for every app, with nothing user-supplied in it.
//! Literal copy values (`copyFrom.*.value`, or the parts of a literal `database_url`) are stored
//! as keys of this Secret and reach the script as environment variables of the database pod;
//! `secretRef` values are referenced where they are, never read by the operator.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{EnvVar, Secret, SecretKeySelector};
use reviewapp_api::validate::{Backend, CopySource, Source};
use reviewapp_api::{ReviewApp, ValidatedSpec};

use crate::env;
use crate::meta::{self, Component};

/// Key of the script in the Secret.
pub const SCRIPT_KEY: &str = "db-copy.sh";
/// Source host (variable and Secret key).
pub const SOURCE_HOST: &str = "SOURCE_HOST";
/// Source port (variable and Secret key); the script defaults it to 5432.
pub const SOURCE_PORT: &str = "SOURCE_PORT";
/// Source database name (variable and Secret key).
pub const SOURCE_DATABASE: &str = "SOURCE_DATABASE";
/// Source user (variable and Secret key).
pub const SOURCE_USER: &str = "SOURCE_USER";
/// Source password (variable and Secret key).
pub const SOURCE_PASSWORD: &str = "SOURCE_PASSWORD";
/// Whole source URL, used instead of the parts when set (a `database_url` kept in a Secret).
pub const SOURCE_DATABASE_URL: &str = "SOURCE_DATABASE_URL";
/// Port used when none is given.
pub const DEFAULT_PORT: &str = "5432";

/// The copy script, run by KubeDB as the database's init script inside the new Postgres pod.
///
/// POSIX sh. It reads the source only from the environment, writes the source credentials to a
/// private `.pgpass` file (escaping `\` and `:` as that format requires), dumps the `public`
/// schema of the source and restores it into the local `postgres` database as
/// `${POSTGRES_USER:-postgres}`. Trailing newlines of a value are lost (command substitution),
/// which `.pgpass` could not represent anyway.
pub const DB_COPY_SCRIPT: &str = r##"#!/bin/sh
# db-copy.sh: copy the public schema of a source PostgreSQL database into this new database.
#
# Written by review-app-operator and identical for every review app: the source is read from the
# environment only, never from this text. Either SOURCE_DATABASE_URL
# (postgres://user:password@host[:port]/database), or SOURCE_HOST, SOURCE_PORT (default 5432),
# SOURCE_DATABASE, SOURCE_USER and SOURCE_PASSWORD; the password then reaches pg_dump through a
# private .pgpass file, not a command line. The body runs in a subshell, so it behaves the same
# whether the database's init executes this file or sources it.
(
  set -eu

  work_dir="$(mktemp -d "${TMPDIR:-/tmp}/db-copy.XXXXXX")"
  trap 'rm -rf "$work_dir"' EXIT
  dump="$work_dir/source.dump"

  # One .pgpass field: a backslash or a colon in it is escaped with a backslash.
  pgpass_field() {
    printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/:/\\:/g'
  }

  unset PGPASSWORD
  echo "db-copy: dumping the source database"
  if [ -n "${SOURCE_DATABASE_URL:-}" ]; then
    pg_dump --dbname="$SOURCE_DATABASE_URL" \
      --format=custom --no-owner --no-acl --schema=public --exclude-table=spatial_ref_sys \
      --file="$dump"
  else
    : "${SOURCE_HOST:?is required}" "${SOURCE_DATABASE:?is required}" "${SOURCE_USER:?is required}"
    : "${SOURCE_PASSWORD?is required}"
    port="${SOURCE_PORT:-5432}"
    umask 077
    printf '%s:%s:%s:%s:%s\n' \
      "$(pgpass_field "$SOURCE_HOST")" "$(pgpass_field "$port")" "$(pgpass_field "$SOURCE_DATABASE")" \
      "$(pgpass_field "$SOURCE_USER")" "$(pgpass_field "$SOURCE_PASSWORD")" >"$work_dir/pgpass"
    chmod 600 "$work_dir/pgpass"
    PGPASSFILE="$work_dir/pgpass" PGHOST="$SOURCE_HOST" PGPORT="$port" \
      PGDATABASE="$SOURCE_DATABASE" PGUSER="$SOURCE_USER" \
      pg_dump --format=custom --no-owner --no-acl --schema=public --exclude-table=spatial_ref_sys \
      --file="$dump"
  fi

  echo "db-copy: restoring into the local database"
  # --clean --if-exists: a dump of schema public re-creates it, and a new database already has it.
  PGPASSWORD="${POSTGRES_PASSWORD:-}" pg_restore --no-owner --no-acl --clean --if-exists \
    --host=localhost --username="${POSTGRES_USER:-postgres}" --dbname=postgres "$dump"
  rm -f "$dump"
  echo "db-copy: done"
)
"##;

/// The literal values of `copy` stored in the Secret, by key. For the cnpg backend only the
/// password is needed (host, database and user are literals in the `Cluster` itself).
pub fn literal_values(backend: Backend, copy: &CopySource) -> BTreeMap<&'static str, String> {
    let mut out = BTreeMap::new();
    if let CopySource::Parts {
        host,
        port,
        database,
        user,
        password,
    } = copy
    {
        let mut literal = |key: &'static str, source: &Source| {
            if let Source::Value(value) = source {
                out.insert(key, value.clone());
            }
        };
        if backend == Backend::Kubedb {
            literal(SOURCE_HOST, host);
            literal(SOURCE_DATABASE, database);
            literal(SOURCE_USER, user);
        }
        literal(SOURCE_PASSWORD, password);
        if backend == Backend::Kubedb
            && let Some(port) = port
        {
            out.insert(SOURCE_PORT, port.to_string());
        }
    }
    out
}

/// The Secret `names.db_copy_secret`, or `None` when nothing is copied (or, for cnpg, when the
/// password is a `secretRef` and so there is nothing to store).
///
/// KubeDB: the script under [`SCRIPT_KEY`] plus the literal values. CloudNativePG imports the
/// source natively, so it needs no script: only a literal password under [`SOURCE_PASSWORD`].
pub fn db_copy_secret(app: &ReviewApp, spec: &ValidatedSpec) -> Option<Secret> {
    let database = spec.database.as_ref()?;
    let copy = database.copy_from.as_ref()?;
    let mut data: BTreeMap<String, ByteString> = literal_values(database.backend, copy)
        .into_iter()
        .map(|(key, value)| (key.to_string(), ByteString(value.into_bytes())))
        .collect();
    if database.backend == Backend::Kubedb {
        data.insert(
            SCRIPT_KEY.to_string(),
            ByteString(DB_COPY_SCRIPT.as_bytes().to_vec()),
        );
    }
    if data.is_empty() {
        return None;
    }
    let names = &spec.names;
    Some(Secret {
        metadata: meta::object_meta(
            app,
            names,
            Component::Database,
            &spec.namespace,
            &names.db_copy_secret,
        ),
        type_: Some("Opaque".to_string()),
        data: Some(data),
        ..Secret::default()
    })
}

/// A reference to where `source` lives: the user's Secret for a `secretRef`, or `key` of the
/// database-copy Secret for a literal.
pub fn secret_key_ref(spec: &ValidatedSpec, key: &str, source: &Source) -> SecretKeySelector {
    match source {
        Source::Value(_) => own_key(spec, key),
        Source::Secret { name, key } => SecretKeySelector {
            name: name.clone(),
            key: key.clone(),
            optional: None,
        },
    }
}

/// `key` of the database-copy Secret.
fn own_key(spec: &ValidatedSpec, key: &str) -> SecretKeySelector {
    SecretKeySelector {
        name: spec.names.db_copy_secret.clone(),
        key: key.to_string(),
        optional: None,
    }
}

/// The `SOURCE_*` variables of the KubeDB database container, each read from a Secret key.
pub fn source_env(spec: &ValidatedSpec, copy: &CopySource) -> Vec<EnvVar> {
    match copy {
        CopySource::UrlSecret { name, key } => vec![env::from_secret(
            SOURCE_DATABASE_URL,
            SecretKeySelector {
                name: name.clone(),
                key: key.clone(),
                optional: None,
            },
        )],
        CopySource::Parts {
            host,
            port,
            database,
            user,
            password,
        } => {
            let port = match port {
                Some(_) => env::from_secret(SOURCE_PORT, own_key(spec, SOURCE_PORT)),
                None => env::literal(SOURCE_PORT, DEFAULT_PORT),
            };
            vec![
                env::from_secret(SOURCE_HOST, secret_key_ref(spec, SOURCE_HOST, host)),
                port,
                env::from_secret(
                    SOURCE_DATABASE,
                    secret_key_ref(spec, SOURCE_DATABASE, database),
                ),
                env::from_secret(SOURCE_USER, secret_key_ref(spec, SOURCE_USER, user)),
                env::from_secret(
                    SOURCE_PASSWORD,
                    secret_key_ref(spec, SOURCE_PASSWORD, password),
                ),
            ]
        }
    }
}
