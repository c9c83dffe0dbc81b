//! `validate()` against the original operator's fixture, one mutation per test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, SecretKeySelector};
use reviewapp_api::names::is_dns_label;
use reviewapp_api::validate::{
    Backend, CopySource, DatabaseSpec, EnvSpec, MigrateSpec, Source, ValidatedSpec, identity,
};
use reviewapp_api::{FieldError, OperatorConfig, ReviewApp, ReviewAppSpec, validate};
use serde_json::{Value, json};

/// The original operator's fixture, unchanged.
const FIXTURE: &str = include_str!("../../../dev/samples/reviewapp.yaml");
const SHA: &str = "c8c9aa334a76677aa0be4ec0ebb08484367f952d";
const RDS_URL: &str = "postgresql://database_username:database_password@database_host.us-east-2.rds.amazonaws.com/database_name";

/// The fixture's `spec` as JSON.
fn fixture_spec_json() -> Value {
    let doc: Value = serde_yaml::from_str(FIXTURE).unwrap();
    doc["spec"].clone()
}

/// The fixture with `edit` applied to its `spec`, parsed as a `ReviewApp` would be.
fn spec_with(edit: impl FnOnce(&mut Value)) -> ReviewAppSpec {
    let mut doc: Value = serde_yaml::from_str(FIXTURE).unwrap();
    edit(&mut doc["spec"]);
    serde_json::from_value::<ReviewApp>(doc).unwrap().spec
}

/// Removes the value at the JSON pointer `pointer` (relative to `spec`), which must exist.
fn remove(spec: &mut Value, pointer: &str) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let removed = spec
        .pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .and_then(|o| o.remove(key));
    assert!(removed.is_some(), "{pointer} is not in the fixture");
}

/// Sets the value at the JSON pointer `pointer` (relative to `spec`); the parent must exist.
fn set(spec: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let parent = spec
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("no parent for {pointer}"));
    match parent {
        Value::Object(map) => {
            map.insert(key.to_string(), value);
        }
        Value::Array(items) => items[key.parse::<usize>().unwrap()] = value,
        other => panic!("{pointer}: parent is {other}"),
    }
}

fn without(pointer: &str) -> ReviewAppSpec {
    spec_with(|s| remove(s, pointer))
}

fn with(pointer: &str, value: Value) -> ReviewAppSpec {
    spec_with(|s| set(s, pointer, value))
}

fn ok_with(spec: &ReviewAppSpec, config: &OperatorConfig) -> ValidatedSpec {
    validate(spec, config).unwrap_or_else(|errors| panic!("expected valid, got {errors:?}"))
}

fn ok(spec: &ReviewAppSpec) -> ValidatedSpec {
    ok_with(spec, &OperatorConfig::default())
}

fn errors(spec: &ReviewAppSpec) -> Vec<FieldError> {
    errors_with(spec, &OperatorConfig::default())
}

fn errors_with(spec: &ReviewAppSpec, config: &OperatorConfig) -> Vec<FieldError> {
    match validate(spec, config) {
        Ok(v) => panic!("expected errors, got {v:?}"),
        Err(errors) => errors,
    }
}

/// Asserts that `spec` fails with exactly one error, at `field`, whose message contains `fragment`.
fn assert_only_error(spec: &ReviewAppSpec, field: &str, fragment: &str) {
    assert_only_error_with(spec, &OperatorConfig::default(), field, fragment);
}

fn assert_only_error_with(
    spec: &ReviewAppSpec,
    config: &OperatorConfig,
    field: &str,
    fragment: &str,
) {
    let errors = errors_with(spec, config);
    assert_eq!(errors.len(), 1, "expected one error at {field}: {errors:?}");
    assert_eq!(errors[0].field, field, "{errors:?}");
    assert!(
        errors[0].message.contains(fragment),
        "message {:?} lacks {fragment:?}",
        errors[0].message
    );
}

fn fields(errors: &[FieldError]) -> Vec<&str> {
    errors.iter().map(|e| e.field.as_str()).collect()
}

fn value(s: &str) -> Source {
    Source::Value(s.into())
}

fn secret(name: &str, key: &str) -> Source {
    Source::Secret {
        name: name.into(),
        key: key.into(),
    }
}

fn database(spec: &ReviewAppSpec) -> DatabaseSpec {
    ok(spec).database.expect("a database")
}

fn copy_source(spec: &ReviewAppSpec) -> CopySource {
    database(spec).copy_from.expect("a copy source")
}

fn url_spec(url: &str) -> ReviewAppSpec {
    with(
        "/config/database/copyFrom",
        json!({ "database_url": { "value": url } }),
    )
}

fn plain_env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

// ---------------------------------------------------------------------------------------------
// The fixture

#[test]
fn fixture_parses_unchanged_and_validates() {
    let app: ReviewApp = serde_yaml::from_str(FIXTURE).unwrap();
    assert_eq!(app.metadata.name.as_deref(), Some("test"));
    let v = ok(&app.spec);
    assert_eq!(v.names.app, "test-review-app-678");
    assert_eq!(v.repo_owner.as_deref(), Some("revelrylabs"));
    assert_eq!(v.repo, "test_review_app");
    assert_eq!(v.branch.as_deref(), Some("test-review-operator"));
    assert_eq!(v.pr, "678");
    assert_eq!(v.commit, SHA);
    assert_eq!(
        v.tarball_url,
        "https://s3.aws.com/bucket/repo_source.tar.gz"
    );
    assert_eq!(v.namespace, "test-review-app");
    assert_eq!(v.port, 5000);
    assert_eq!(v.registry_secret_name, "harbor");
    assert_eq!(
        v.migrate,
        Some(MigrateSpec {
            command: vec!["npm".into()],
            args: vec!["run".into(), "migrate".into()],
        })
    );
    assert_eq!(
        v.database,
        Some(DatabaseSpec {
            backend: Backend::Kubedb,
            version: Some("10.6".into()),
            copy_from: Some(CopySource::Parts {
                host: value("database-source"),
                port: None,
                database: value("postgres"),
                user: value("postgres"),
                password: secret("database-source-auth", "POSTGRES_PASSWORD"),
            }),
        })
    );
    assert_eq!(
        v.env,
        EnvSpec {
            config_maps: vec!["config-map-one".into()],
            secrets: vec!["secret-one".into(), "secret-two".into()],
            values: vec![
                plain_env("ENV_ONE", "value number one"),
                plain_env("ENV_TWO", "1"),
            ],
        }
    );
}

#[test]
fn the_unmodified_helpers_give_the_fixture() {
    let direct: ReviewApp = serde_yaml::from_str(FIXTURE).unwrap();
    assert_eq!(spec_with(|_| {}), direct.spec);
    assert_eq!(
        serde_json::to_value(&direct.spec).unwrap(),
        fixture_spec_json()
    );
}

// ---------------------------------------------------------------------------------------------
// commitHash

#[test]
fn commit_hash_is_required() {
    assert_only_error(&without("/commitHash"), "spec.commitHash", "required");
}

#[test]
fn commit_hash_must_be_hex() {
    let not_hex = "g".repeat(40);
    assert_only_error(
        &with("/commitHash", json!(not_hex)),
        "spec.commitHash",
        "40 or 64 hexadecimal",
    );
}

#[test]
fn commit_hash_of_39_characters_is_rejected() {
    assert_only_error(
        &with("/commitHash", json!(&SHA[..39])),
        "spec.commitHash",
        "full commit SHA",
    );
    assert_only_error(
        &with("/commitHash", json!(format!("{SHA}a"))),
        "spec.commitHash",
        "full commit SHA",
    );
}

#[test]
fn sha256_commit_hash_is_accepted() {
    let sha256 = "0123456789abcdef".repeat(4);
    assert_eq!(ok(&with("/commitHash", json!(sha256))).commit, sha256);
}

#[test]
fn uppercase_commit_hash_is_accepted_and_lowercased() {
    let v = ok(&with("/commitHash", json!(SHA.to_ascii_uppercase())));
    assert_eq!(v.commit, SHA);
}

// ---------------------------------------------------------------------------------------------
// repo and pr

#[test]
fn repo_is_required() {
    assert_only_error(&without("/repo"), "spec.repo", "required");
}

#[test]
fn empty_repo_is_rejected() {
    assert_only_error(&with("/repo", json!("")), "spec.repo", "letter or digit");
}

#[test]
fn punctuation_only_repo_is_rejected() {
    assert_only_error(
        &with("/repo", json!("_-.!_")),
        "spec.repo",
        "letter or digit",
    );
}

#[test]
fn pr_is_required() {
    assert_only_error(&without("/pr"), "spec.pr", "required");
}

#[test]
fn integer_pr_is_accepted_as_its_string() {
    let spec = with("/pr", json!(678));
    let v = ok(&spec);
    assert_eq!(v.pr, "678");
    assert_eq!(v.names.app, "test-review-app-678");
    assert_eq!(v, ok(&spec_with(|_| {})), "same result as pr: \"678\"");
}

#[test]
fn empty_pr_is_rejected() {
    assert_only_error(&with("/pr", json!("")), "spec.pr", "letter or digit");
}

// ---------------------------------------------------------------------------------------------
// tarballUrl

#[test]
fn tarball_url_is_required() {
    assert_only_error(&without("/tarballUrl"), "spec.tarballUrl", "required");
}

#[test]
fn tarball_url_must_be_http() {
    assert_only_error(
        &with("/tarballUrl", json!("ftp://s3.aws.com/bucket/src.tar.gz")),
        "spec.tarballUrl",
        "http(s) URL",
    );
    assert_only_error(
        &with("/tarballUrl", json!("file:///etc/passwd")),
        "spec.tarballUrl",
        "http(s) URL",
    );
}

#[test]
fn tarball_url_must_be_a_url() {
    assert_only_error(
        &with("/tarballUrl", json!("not a url")),
        "spec.tarballUrl",
        "http(s) URL",
    );
}

#[test]
fn http_tarball_url_is_accepted() {
    let url = "http://minio.review-build.svc:9000/src.tar.gz";
    assert_eq!(ok(&with("/tarballUrl", json!(url))).tarball_url, url);
}

// ---------------------------------------------------------------------------------------------
// config, namespace, port, registry secret

#[test]
fn missing_config_reports_config_namespace_and_port() {
    let errors = errors(&without("/config"));
    assert_eq!(
        fields(&errors),
        [
            "spec.config",
            "spec.config.namespace",
            "spec.config.applicationPort"
        ],
        "{errors:?}"
    );
    assert!(errors.iter().all(|e| e.message.contains("required")));
}

#[test]
fn namespace_is_required() {
    assert_only_error(
        &without("/config/namespace"),
        "spec.config.namespace",
        "required",
    );
}

#[test]
fn namespace_must_be_a_dns_label() {
    for bad in ["Test_Review", "-leading", "a.b", &"n".repeat(64)] {
        assert_only_error(
            &with("/config/namespace", json!(bad)),
            "spec.config.namespace",
            "DNS-1123 label",
        );
    }
}

#[test]
fn namespace_outside_the_allow_list_is_rejected() {
    let config = OperatorConfig {
        allowed_namespaces: vec!["review-*".into(), "test-review-app-2".into()],
        ..OperatorConfig::default()
    };
    assert_only_error_with(
        &spec_with(|_| {}),
        &config,
        "spec.config.namespace",
        "allowedNamespaces",
    );
}

#[test]
fn namespace_in_the_allow_list_is_accepted() {
    let exact = OperatorConfig {
        allowed_namespaces: vec!["other".into(), "test-review-app".into()],
        ..OperatorConfig::default()
    };
    assert_eq!(
        ok_with(&spec_with(|_| {}), &exact).namespace,
        "test-review-app"
    );
    let prefix = OperatorConfig {
        allowed_namespaces: vec!["test-*".into()],
        ..OperatorConfig::default()
    };
    assert_eq!(
        ok_with(&spec_with(|_| {}), &prefix).namespace,
        "test-review-app"
    );
    let spec = with("/config/namespace", json!("kube-system"));
    assert_only_error_with(&spec, &prefix, "spec.config.namespace", "allowedNamespaces");
}

#[test]
fn application_port_is_required() {
    assert_only_error(
        &without("/config/applicationPort"),
        "spec.config.applicationPort",
        "required",
    );
}

#[test]
fn application_port_out_of_range_is_rejected() {
    for bad in [0, 65536, -1] {
        assert_only_error(
            &with("/config/applicationPort", json!(bad)),
            "spec.config.applicationPort",
            &format!("must be 1-65535, got {bad}"),
        );
    }
}

#[test]
fn application_port_bounds_are_accepted() {
    for good in [1, 65535] {
        assert_eq!(ok(&with("/config/applicationPort", json!(good))).port, good);
    }
}

#[test]
fn registry_secret_name_defaults_from_config() {
    let spec = without("/config/registrySecretName");
    assert_eq!(ok(&spec).registry_secret_name, "harbor-credentials");
    let config = OperatorConfig {
        default_registry_secret_name: "pull-secret".into(),
        ..OperatorConfig::default()
    };
    assert_eq!(ok_with(&spec, &config).registry_secret_name, "pull-secret");
}

#[test]
fn invalid_registry_secret_name_is_rejected() {
    assert_only_error(
        &with("/config/registrySecretName", json!("Harbor_Creds")),
        "spec.config.registrySecretName",
        "valid Secret name",
    );
}

// ---------------------------------------------------------------------------------------------
// migrate

#[test]
fn migrate_args_without_command_are_rejected() {
    assert_only_error(
        &with("/config/migrate/command", json!([])),
        "spec.config.migrate.command",
        "required when migrate.args",
    );
    assert_only_error(
        &without("/config/migrate/command"),
        "spec.config.migrate.command",
        "required when migrate.args",
    );
}

#[test]
fn empty_migrate_means_no_migration() {
    let spec = with("/config/migrate", json!({ "command": [], "args": [] }));
    assert_eq!(ok(&spec).migrate, None);
    assert_eq!(ok(&with("/config/migrate", json!({}))).migrate, None);
    assert_eq!(ok(&without("/config/migrate")).migrate, None);
}

#[test]
fn migrate_without_args_has_empty_args() {
    let v = ok(&without("/config/migrate/args"));
    assert_eq!(
        v.migrate,
        Some(MigrateSpec {
            command: vec!["npm".into()],
            args: vec![],
        })
    );
}

// ---------------------------------------------------------------------------------------------
// database

#[test]
fn database_without_backend_is_none() {
    let spec = with("/config/database", json!({ "version": "10.6" }));
    assert_eq!(ok(&spec).database, None);
    let spec = with("/config/database", json!({ "backend": "", "copyFrom": {} }));
    assert_eq!(ok(&spec).database, None);
    assert_eq!(ok(&without("/config/database")).database, None);
}

#[test]
fn copy_from_without_backend_is_rejected() {
    assert_only_error(
        &without("/config/database/backend"),
        "spec.config.database.backend",
        "required when copyFrom",
    );
}

#[test]
fn unknown_backend_is_rejected() {
    assert_only_error(
        &with("/config/database/backend", json!("mysql")),
        "spec.config.database.backend",
        "expected kubedb or cnpg",
    );
}

#[test]
fn cnpg_backend_is_accepted() {
    let db = database(&with("/config/database/backend", json!("cnpg")));
    assert_eq!(db.backend, Backend::Cnpg);
    assert_eq!(db.version.as_deref(), Some("10.6"));
}

#[test]
fn non_postgres_engine_is_rejected() {
    assert_only_error(
        &with("/config/database/engine", json!("MySQL")),
        "spec.config.database.engine",
        "only Postgres",
    );
    let db = database(&with("/config/database/engine", json!("Postgres")));
    assert_eq!(db.backend, Backend::Kubedb);
}

#[test]
fn blank_version_uses_the_operator_default() {
    assert_eq!(
        database(&with("/config/database/version", json!(" "))).version,
        None
    );
    assert_eq!(database(&without("/config/database/version")).version, None);
}

#[test]
fn empty_copy_from_copies_nothing() {
    let db = database(&with("/config/database/copyFrom", json!({})));
    assert_eq!(db.backend, Backend::Kubedb);
    assert_eq!(db.copy_from, None);
    assert_eq!(
        database(&without("/config/database/copyFrom")).copy_from,
        None
    );
}

#[test]
fn copy_from_with_only_host_is_rejected() {
    let spec = with(
        "/config/database/copyFrom",
        json!({ "host": { "value": "database-source" } }),
    );
    assert_only_error(
        &spec,
        "spec.config.database.copyFrom",
        "all four of host, database, user and password",
    );
}

#[test]
fn copy_from_parts_mixing_values_and_secrets_are_accepted() {
    let spec = with(
        "/config/database/copyFrom",
        json!({
            "host": { "secretRef": { "name": "source", "key": "HOST" } },
            "database": { "value": "app" },
            "user": { "secretRef": { "name": "source", "key": "USER" } },
            "password": { "secretRef": { "name": "source", "key": "PASSWORD" } },
        }),
    );
    assert_eq!(
        copy_source(&spec),
        CopySource::Parts {
            host: secret("source", "HOST"),
            port: None,
            database: value("app"),
            user: secret("source", "USER"),
            password: secret("source", "PASSWORD"),
        }
    );
}

#[test]
fn value_spec_with_value_and_secret_ref_is_rejected() {
    let spec = with(
        "/config/database/copyFrom/host",
        json!({ "value": "h", "secretRef": { "name": "s", "key": "k" } }),
    );
    assert_only_error(&spec, "spec.config.database.copyFrom.host", "not both");
}

#[test]
fn value_spec_with_neither_is_rejected() {
    assert_only_error(
        &with("/config/database/copyFrom/user", json!({})),
        "spec.config.database.copyFrom.user",
        "needs a value or a secretRef",
    );
}

#[test]
fn secret_ref_needs_a_key_and_a_valid_name() {
    assert_only_error(
        &with(
            "/config/database/copyFrom/password/secretRef/key",
            json!(""),
        ),
        "spec.config.database.copyFrom.password.secretRef",
        "a key",
    );
    assert_only_error(
        &with(
            "/config/database/copyFrom/password/secretRef/name",
            json!("Not_A_Name"),
        ),
        "spec.config.database.copyFrom.password.secretRef",
        "valid Secret name",
    );
}

#[test]
fn database_url_is_split_into_parts() {
    assert_eq!(
        copy_source(&url_spec(RDS_URL)),
        CopySource::Parts {
            host: value("database_host.us-east-2.rds.amazonaws.com"),
            port: None,
            database: value("database_name"),
            user: value("database_username"),
            password: value("database_password"),
        }
    );
}

#[test]
fn database_url_port_is_kept() {
    let url = "postgres://u:p@db.example.com:6543/app";
    let CopySource::Parts { port, host, .. } = copy_source(&url_spec(url)) else {
        panic!("expected parts");
    };
    assert_eq!(port, Some(6543));
    assert_eq!(host, value("db.example.com"));
}

#[test]
fn database_url_is_percent_decoded() {
    let url = "postgres://app%20user:p%40ss%3Aword@db/my%2Ddb";
    let CopySource::Parts {
        user,
        password,
        database,
        ..
    } = copy_source(&url_spec(url))
    else {
        panic!("expected parts");
    };
    assert_eq!(password, value("p@ss:word"));
    assert_eq!(user, value("app user"));
    assert_eq!(database, value("my-db"));
}

#[test]
fn database_url_together_with_parts_is_rejected() {
    // The fixture has all four parts; a URL as well is ambiguous.
    let spec = with(
        "/config/database/copyFrom/database_url",
        json!({ "value": RDS_URL }),
    );
    assert_only_error(&spec, "spec.config.database.copyFrom", "not both");
}

#[test]
fn empty_literal_connection_parts_are_rejected() {
    let spec = with("/config/database/copyFrom/host", json!({ "value": "" }));
    assert_only_error(
        &spec,
        "spec.config.database.copyFrom.host.value",
        "must not be empty",
    );
}

#[test]
fn blank_migrate_executable_is_rejected() {
    let spec = with("/config/migrate/command", json!([" "]));
    assert_only_error(&spec, "spec.config.migrate.command", "must not be empty");
}

#[test]
fn bad_database_urls_are_rejected() {
    for (url, why) in [
        ("mysql://u:p@h/db", "scheme"),
        ("postgres://u@h/db", "no password"),
        ("postgres://u:p@h", "no database"),
        ("postgres://u:p@h/", "no database"),
        ("postgres://u:p@h/a/b", "no database"),
        ("not a url at all", "must look like postgres://"),
        ("postgres://u:p@h:notaport/db", "must look like postgres://"),
    ] {
        let errors = errors(&url_spec(url));
        assert_eq!(
            fields(&errors),
            ["spec.config.database.copyFrom.database_url"],
            "{url}"
        );
        assert!(errors[0].message.contains(why), "{url}: {errors:?}");
    }
}

#[test]
fn database_url_secret_is_kept_whole_for_kubedb() {
    let spec = with(
        "/config/database/copyFrom",
        json!({ "database_url": { "secretRef": { "name": "source", "key": "DATABASE_URL" } } }),
    );
    assert_eq!(
        copy_source(&spec),
        CopySource::UrlSecret {
            name: "source".into(),
            key: "DATABASE_URL".into(),
        }
    );
}

#[test]
fn database_url_secret_is_rejected_for_cnpg() {
    let spec = spec_with(|s| {
        set(s, "/config/database/backend", json!("cnpg"));
        set(
            s,
            "/config/database/copyFrom",
            json!({ "database_url": { "secretRef": { "name": "source", "key": "DATABASE_URL" } } }),
        );
    });
    assert_only_error(&spec, "spec.config.database.copyFrom.database_url", "cnpg");
}

#[test]
fn cnpg_needs_host_as_a_value() {
    let spec = spec_with(|s| {
        set(s, "/config/database/backend", json!("cnpg"));
        set(
            s,
            "/config/database/copyFrom/host",
            json!({ "secretRef": { "name": "source", "key": "HOST" } }),
        );
    });
    assert_only_error(&spec, "spec.config.database.copyFrom.host", "cnpg");
}

#[test]
fn cnpg_accepts_the_password_as_a_secret() {
    // The fixture's copyFrom has literal host/database/user and a secretRef password.
    let spec = with("/config/database/backend", json!("cnpg"));
    assert_eq!(
        copy_source(&spec),
        CopySource::Parts {
            host: value("database-source"),
            port: None,
            database: value("postgres"),
            user: value("postgres"),
            password: secret("database-source-auth", "POSTGRES_PASSWORD"),
        }
    );
}

// ---------------------------------------------------------------------------------------------
// env

#[test]
fn duplicate_env_sources_are_removed_in_order() {
    let spec = spec_with(|s| {
        set(
            s,
            "/config/env/configMaps",
            json!(["b", "a", "b", "c", "a"]),
        );
        set(s, "/config/env/secrets", json!(["s2", "s1", "s2"]));
    });
    let env = ok(&spec).env;
    assert_eq!(env.config_maps, ["b", "a", "c"]);
    assert_eq!(env.secrets, ["s2", "s1"]);
}

#[test]
fn invalid_env_source_names_are_rejected_by_index() {
    assert_only_error(
        &with("/config/env/configMaps", json!(["ok", "Not_Valid"])),
        "spec.config.env.configMaps[1]",
        "not a valid name",
    );
    assert_only_error(
        &with("/config/env/secrets", json!(["", "ok"])),
        "spec.config.env.secrets[0]",
        "not a valid name",
    );
}

fn env_values(values: Value) -> Vec<EnvVar> {
    ok(&with("/config/env/values", values)).env.values
}

#[test]
fn scalar_env_values_become_strings() {
    let values = env_values(json!([
        { "name": "INT", "value": 1 },
        { "name": "BOOL", "value": true },
        { "name": "FLOAT", "value": 1.5 },
        { "name": "STRING", "value": "kept as is" },
        { "name": "NULL", "value": null },
        { "name": "MISSING" },
    ]));
    assert_eq!(
        values,
        [
            plain_env("INT", "1"),
            plain_env("BOOL", "true"),
            plain_env("FLOAT", "1.5"),
            plain_env("STRING", "kept as is"),
            plain_env("NULL", ""),
            plain_env("MISSING", ""),
        ]
    );
}

#[test]
fn map_and_list_env_values_are_rejected() {
    assert_only_error(
        &with("/config/env/values/1/value", json!({ "a": 1 })),
        "spec.config.env.values[1].value",
        "not a list or map",
    );
    assert_only_error(
        &with("/config/env/values/0/value", json!([1, 2])),
        "spec.config.env.values[0].value",
        "not a list or map",
    );
}

#[test]
fn bad_env_names_are_rejected() {
    for bad in ["A=B", "", "NAME\n", "ÄNV"] {
        assert_only_error(
            &with("/config/env/values/1/name", json!(bad)),
            "spec.config.env.values[1].name",
            "without '='",
        );
    }
    // The API server's relaxed rule allows any printable ASCII except '='.
    assert_eq!(
        env_values(json!([{ "name": "my.var-1 x", "value": "v" }])),
        [plain_env("my.var-1 x", "v")]
    );
}

#[test]
fn value_from_is_passed_through() {
    let values = env_values(json!([{
        "name": "FROM_SECRET",
        "valueFrom": { "secretKeyRef": { "name": "creds", "key": "token" } },
    }]));
    assert_eq!(
        values,
        [EnvVar {
            name: "FROM_SECRET".into(),
            value: None,
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: "creds".into(),
                    key: "token".into(),
                    optional: None,
                }),
                ..EnvVarSource::default()
            }),
        }]
    );
}

#[test]
fn value_and_value_from_together_are_rejected() {
    let spec = with(
        "/config/env/values/0/valueFrom",
        json!({ "secretKeyRef": { "name": "creds", "key": "token" } }),
    );
    assert_only_error(&spec, "spec.config.env.values[0]", "not both");
}

// ---------------------------------------------------------------------------------------------
// envSecret

#[test]
fn env_secret_comes_before_env_secrets_and_is_not_repeated() {
    let v = ok(&with("/config/envSecret", json!("app-env")));
    assert_eq!(v.env_secret.as_deref(), Some("app-env"));
    assert_eq!(
        v.env_secrets().collect::<Vec<_>>(),
        ["app-env", "secret-one", "secret-two"]
    );
    let spec = spec_with(|s| {
        set(s, "/config/envSecret", json!("secret-two"));
    });
    let v = ok(&spec);
    assert_eq!(v.env.secrets, ["secret-one"], "listed once, as envSecret");
    assert_eq!(
        v.env_secrets().collect::<Vec<_>>(),
        ["secret-two", "secret-one"]
    );
    assert_eq!(ok(&spec_with(|_| {})).env_secret, None);
}

#[test]
fn invalid_env_secret_is_rejected() {
    for bad in ["", "Not_Valid", "a b"] {
        assert_only_error(
            &with("/config/envSecret", json!(bad)),
            "spec.config.envSecret",
            "not a valid Secret name",
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Unknown keys: accepted, listed by path

#[test]
fn the_sample_fixture_has_no_unknown_keys() {
    assert!(ok(&spec_with(|_| {})).ignored_keys.is_empty());
}

#[test]
fn unknown_keys_are_listed_by_path_and_nothing_else_changes() {
    let plain = ok(&spec_with(|_| {}));
    let spec = spec_with(|s| {
        set(s, "/config/baseApp", json!("app-template"));
        set(s, "/config/zeta", json!({"nested": [1]}));
        set(s, "/config/migrate/foo", json!(1));
        set(
            s,
            "/config/database/copyFrom/password/secretRef/optional",
            json!(true),
        );
        set(s, "/config/database/copyFrom/host/note", json!("x"));
        set(s, "/config/database/copyFrom/extra", json!(null));
        set(s, "/config/database/replicas", json!(3));
        set(s, "/config/env/files", json!([]));
        set(s, "/config/env/values/1/description", json!("two"));
    });
    let v = ok(&spec);
    assert_eq!(
        v.ignored_keys,
        [
            "spec.config.baseApp",
            "spec.config.zeta",
            "spec.config.migrate.foo",
            "spec.config.database.replicas",
            "spec.config.database.copyFrom.extra",
            "spec.config.database.copyFrom.host.note",
            "spec.config.database.copyFrom.password.secretRef.optional",
            "spec.config.env.files",
            "spec.config.env.values[1].description",
        ]
    );
    assert_eq!(
        ValidatedSpec {
            ignored_keys: Vec::new(),
            ..v
        },
        plain,
        "unknown keys change nothing else"
    );
}

#[test]
fn a_config_of_only_an_unknown_key_names_what_is_missing() {
    // What three public repositories' review yaml holds: `baseApp: <name>` and nothing else.
    let spec = with("/config", json!({"baseApp": "some-app"}));
    assert_eq!(
        fields(&errors(&spec)),
        ["spec.config.namespace", "spec.config.applicationPort"]
    );
}

#[test]
fn the_app_template_review_yaml_validates() {
    let app: ReviewApp = serde_yaml::from_str(include_str!(
        "../../../dev/samples/reviewapp-app-template.yaml"
    ))
    .unwrap();
    let v = ok(&app.spec);
    assert_eq!(v.names.app, "revelry-phoenix-app-template-42");
    assert_eq!(v.namespace, "app-template");
    assert_eq!(v.env_secret.as_deref(), Some("app-template-env-secret"));
    assert!(v.env.secrets.is_empty());
    assert!(v.ignored_keys.is_empty(), "{:?}", v.ignored_keys);
    assert_eq!(
        v.migrate,
        Some(MigrateSpec {
            command: vec!["./bin/app_template".into()],
            args: vec!["eval".into(), "AppTemplate.ReleaseTasks.migrate()".into()],
        })
    );
    assert_eq!(
        database(&app.spec).copy_from,
        Some(CopySource::Parts {
            host: value("app-template-database"),
            port: None,
            database: value("postgres"),
            user: secret("app-template-database-auth", "username"),
            password: secret("app-template-database-auth", "password"),
        })
    );
}

// ---------------------------------------------------------------------------------------------
// Several problems at once

#[test]
fn every_problem_is_reported_in_one_call() {
    let spec = spec_with(|s| {
        set(s, "/commitHash", json!("abc"));
        set(s, "/config/applicationPort", json!(0));
        set(s, "/config/env/values/0/name", json!("A=B"));
    });
    let errors = errors(&spec);
    assert_eq!(
        fields(&errors),
        [
            "spec.commitHash",
            "spec.config.applicationPort",
            "spec.config.env.values[0].name"
        ],
        "{errors:?}"
    );
}

#[test]
fn field_errors_display_path_and_message() {
    let errors = errors(&with("/config/applicationPort", json!(0)));
    assert_eq!(
        errors[0].to_string(),
        "spec.config.applicationPort: must be 1-65535, got 0"
    );
}

// ---------------------------------------------------------------------------------------------
// Identity: what names the children of an app, valid or not

#[test]
fn identity_of_a_valid_spec_is_its_validated_names() {
    let spec = ok(&spec_with(|_| {}));
    let identity = identity(&spec_with(|_| {}));
    assert_eq!(identity.names.as_ref(), Some(&spec.names));
    assert_eq!(identity.namespace.as_deref(), Some(spec.namespace.as_str()));
    assert_eq!(identity.commit.as_deref(), Some(SHA));
}

#[test]
fn identity_follows_the_field_rules_whatever_else_is_wrong() {
    // The port is wrong and the namespace is outside the allow list: still identified.
    let config = OperatorConfig {
        allowed_namespaces: vec!["review-*".into()],
        ..OperatorConfig::default()
    };
    let spec = with("/config/applicationPort", json!(0));
    assert!(validate(&spec, &config).is_err());
    let found = identity(&spec);
    assert!(found.names.is_some() && found.namespace.is_some() && found.commit.is_some());
    // Uppercase and padded values read as validation reads them.
    let spec = spec_with(|s| {
        set(s, "/commitHash", json!(format!(" {} ", SHA.to_uppercase())));
        set(s, "/config/namespace", json!(" test-review-app "));
    });
    assert_eq!(identity(&spec), identity(&spec_with(|_| {})));
    // Each part is absent exactly when its own field fails.
    let short_commit = identity(&with("/commitHash", json!(&SHA[..12])));
    assert_eq!(short_commit.commit, None);
    assert!(short_commit.names.is_some());
    let bad_namespace = identity(&with("/config/namespace", json!("Not_A_Label")));
    assert_eq!(bad_namespace.namespace, None);
    assert!(bad_namespace.names.is_some());
    for nameless in [without("/repo"), with("/pr", json!("--"))] {
        let found = identity(&nameless);
        assert_eq!(found.names, None);
        assert!(found.namespace.is_some());
    }
    let without_config = identity(&without("/config"));
    assert_eq!(without_config.namespace, None);
}

// ---------------------------------------------------------------------------------------------
// Property tests

mod properties {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    use std::cell::Cell;

    /// Keys of the spec at every level, so that generated maps often hit real fields.
    const KEYS: &[&str] = &[
        "repoOwner",
        "repo",
        "branch",
        "pr",
        "commitHash",
        "tarballUrl",
        "config",
        "namespace",
        "applicationPort",
        "registrySecretName",
        "migrate",
        "command",
        "args",
        "database",
        "backend",
        "engine",
        "version",
        "copyFrom",
        "database_url",
        "host",
        "user",
        "password",
        "value",
        "secretRef",
        "name",
        "key",
        "env",
        "configMaps",
        "secrets",
        "values",
        "valueFrom",
        "ignoreBranches",
    ];

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "\\PC{0,12}",
            "[0-9a-fA-F]{40}",
            "[0-9a-f]{64}",
            "[a-z][a-z0-9-]{0,20}",
            "https?://[a-z]{1,8}(\\.[a-z]{2,3})?/[a-z_.]{0,10}",
            "postgres(ql)?://[a-z%0-9]{0,5}(:[a-z%@:0-9]{0,6})?@[a-z.]{0,8}(:[0-9]{1,6})?(/[a-z]{0,5})?",
            Just("kubedb".to_string()),
            Just("cnpg".to_string()),
            Just("Postgres".to_string()),
        ]
    }

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (-70_000i64..70_000).prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            text().prop_map(Value::from),
        ]
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => proptest::sample::select(KEYS).prop_map(str::to_string),
            1 => "\\PC{0,6}",
        ]
    }

    /// Nested maps, lists and scalars.
    fn json_value() -> impl Strategy<Value = Value> {
        scalar().prop_recursive(5, 96, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                proptest::collection::btree_map(key(), inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// The fixture with a few paths replaced by arbitrary values or removed, so valid results
    /// are common too.
    fn mutated_fixture() -> impl Strategy<Value = Value> {
        const PATHS: &[&str] = &[
            "/repo",
            "/pr",
            "/commitHash",
            "/tarballUrl",
            "/config",
            "/config/namespace",
            "/config/applicationPort",
            "/config/registrySecretName",
            "/config/migrate",
            "/config/migrate/command",
            "/config/migrate/args",
            "/config/database",
            "/config/database/backend",
            "/config/database/engine",
            "/config/database/version",
            "/config/database/copyFrom",
            "/config/database/copyFrom/host",
            "/config/database/copyFrom/password",
            "/config/database/copyFrom/password/secretRef",
            "/config/database/copyFrom/database_url",
            "/config/env",
            "/config/env/configMaps",
            "/config/env/values",
            "/config/env/values/0",
            "/config/env/values/1/value",
        ];
        let edit = (
            proptest::sample::select(PATHS),
            proptest::option::weighted(0.8, json_value()),
        );
        proptest::collection::vec(edit, 0..4).prop_map(|edits| {
            let mut spec = fixture_spec_json();
            for (path, replacement) in edits {
                let (parent, key) = path.rsplit_once('/').unwrap_or(("", path));
                let Some(parent) = spec.pointer_mut(parent) else {
                    continue;
                };
                match (parent, replacement) {
                    (Value::Object(map), Some(v)) => {
                        map.insert(key.to_string(), v);
                    }
                    (Value::Object(map), None) => {
                        map.remove(key);
                    }
                    (Value::Array(items), Some(v)) => {
                        if let Some(slot) = key.parse::<usize>().ok().and_then(|i| items.get_mut(i))
                        {
                            *slot = v;
                        }
                    }
                    _ => {}
                }
            }
            spec
        })
    }

    fn config() -> impl Strategy<Value = OperatorConfig> {
        proptest::collection::vec(
            prop_oneof![
                Just("test-review-app".to_string()),
                Just("test-*".to_string()),
                "[a-z-]{0,6}\\*?",
            ],
            0..3,
        )
        .prop_map(|allowed_namespaces| OperatorConfig {
            allowed_namespaces,
            ..OperatorConfig::default()
        })
    }

    /// Validates `spec` (skipping it when serde rejects it) and checks what any `Ok` promises.
    /// Returns whether the result was `Ok`.
    fn check(spec: Value, config: &OperatorConfig) -> Result<bool, TestCaseError> {
        let Ok(spec) = serde_json::from_value::<ReviewAppSpec>(spec) else {
            return Ok(false);
        };
        let Ok(v) = validate(&spec, config) else {
            return Ok(false);
        };
        prop_assert!(is_dns_label(&v.namespace), "{:?}", v.namespace);
        prop_assert!(config.namespace_allowed(&v.namespace));
        prop_assert!((1..=65535).contains(&v.port), "{}", v.port);
        prop_assert!(matches!(v.commit.len(), 40 | 64), "{:?}", v.commit);
        prop_assert!(
            v.commit
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{:?}",
            v.commit
        );
        prop_assert!(is_dns_label(&v.names.app), "{:?}", v.names.app);
        prop_assert!(
            v.tarball_url.starts_with("http://") || v.tarball_url.starts_with("https://"),
            "{:?}",
            v.tarball_url
        );
        Ok(true)
    }

    fn run(cases: u32, strategy: impl Strategy<Value = (Value, OperatorConfig)>) -> (u32, u32) {
        let parsed = Cell::new(0u32);
        let valid = Cell::new(0u32);
        let mut runner = TestRunner::new(Config {
            cases,
            source_file: Some(file!()),
            ..Config::default()
        });
        let result = runner.run(&strategy, |(spec, config)| {
            if serde_json::from_value::<ReviewAppSpec>(spec.clone()).is_ok() {
                parsed.set(parsed.get() + 1);
            }
            if check(spec, &config)? {
                valid.set(valid.get() + 1);
            }
            Ok(())
        });
        if let Err(e) = result {
            panic!("{e}");
        }
        (parsed.get(), valid.get())
    }

    #[test]
    fn arbitrary_json_never_panics_and_ok_results_are_sound() {
        let (parsed, _) = run(512, (json_value(), config()));
        assert!(parsed > 0, "the strategy never produced a parseable spec");
    }

    #[test]
    fn mutated_fixtures_never_panic_and_ok_results_are_sound() {
        let (parsed, valid) = run(512, (mutated_fixture(), config()));
        assert!(parsed > 0 && valid > 0, "parsed {parsed}, valid {valid}");
    }
}
