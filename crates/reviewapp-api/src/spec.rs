//! The `ReviewApp` spec, field for field compatible with the original operator.
//!
//! `spec.config` is the repository's review yaml, copied in by the component that creates
//! `ReviewApp`s: keys the operator does not know are kept (the schema preserves them at every
//! level of `spec.config`, and every config type carries them in an `unknown` map) and reported,
//! never an error.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::EnvVarSource;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::status::ReviewAppStatus;

/// One pull request's review app: what to build and how to run it. `repo`, `pr` and
/// `config.namespace` name every child and cannot change.
//
// Every field is optional at the schema level so that a bad object reaches the operator and gets
// a field-named `Invalid` condition (and a Warning Event) instead of a bare rejection;
// `validate` decides.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[allow(clippy::duplicated_attributes)] // several printer columns share `type_ = "string"`
#[x_kube(
    validation = Rule::new("!has(oldSelf.repo) || has(self.repo) && self.repo == oldSelf.repo").message("repo is immutable: delete and recreate the ReviewApp"),
    validation = Rule::new("!has(oldSelf.pr) || has(self.pr) && self.pr == oldSelf.pr").message("pr is immutable: delete and recreate the ReviewApp"),
    // `namespace` is a CEL reserved word: Kubernetes names that property `__namespace__`.
    validation = Rule::new("!has(oldSelf.config) || !has(oldSelf.config.__namespace__) || has(self.config) && has(self.config.__namespace__) && self.config.__namespace__ == oldSelf.config.__namespace__").message("config.namespace is immutable: delete and recreate the ReviewApp")
)]
#[kube(
    group = "reviewtron.k8s.revelry.co",
    version = "v1",
    kind = "ReviewApp",
    plural = "reviewapps",
    singular = "reviewapp",
    shortname = "ra",
    category = "all",
    status = "ReviewAppStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "A review app: one pull request built in-cluster and served with its own database",
    printcolumn(
        name = "Repo",
        type_ = "string",
        json_path = ".spec.repo",
        description = "The source code repository"
    ),
    printcolumn(
        name = "Branch",
        type_ = "string",
        json_path = ".spec.branch",
        description = "The pull request's branch"
    ),
    printcolumn(
        name = "PR",
        type_ = "string",
        json_path = ".spec.pr",
        description = "The pull request number"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.appStatus",
        description = "building, deployed, error, sleeping or expired"
    ),
    printcolumn(
        name = "Build",
        type_ = "string",
        json_path = ".status.buildStatus",
        description = "Status of the latest build"
    ),
    printcolumn(
        name = "URL",
        type_ = "string",
        json_path = ".status.url",
        description = "Where the review app is served"
    ),
    printcolumn(
        name = "Expires",
        type_ = "date",
        json_path = ".status.expiresAt",
        description = "When the app expires, if it does"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ReviewAppSpec {
    /// Owner (user or organisation) of the repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_owner: Option<String>,
    /// Repository name; the base of every child's name. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    /// Pull request branch (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Pull request number, as a string (`"678"`) or an integer (`678`). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pr: Option<IntOrString>,
    /// Full commit SHA to build and deploy (40 or 64 hex characters). A change starts a rebuild.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_hash: Option<String>,
    /// `http(s)` URL of a gzipped tarball of the commit's source; the build fetches it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tarball_url: Option<String>,
    /// The review configuration from the repository's review yaml.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ReviewConfig>,
}

/// The repository's review configuration (`spec.config`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = preserve_unknown_fields)]
pub struct ReviewConfig {
    /// Existing namespace that receives every child except the build Job. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Port the application listens on (1-65535).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_port: Option<i64>,
    /// Image pull secret for the app's pods; defaults to the operator's `defaultRegistrySecretName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_secret_name: Option<String>,
    /// Secret in `namespace` loaded whole into the app's environment (`envFrom`), before the
    /// Secrets of `env.secrets`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_secret: Option<String>,
    /// Migration command, run as an init container before the app starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrate: Option<Migrate>,
    /// The review app's own database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<Database>,
    /// Environment for the app and its migration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Env>,
    /// Branches the creating component ignores; the operator does not read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_branches: Option<Vec<String>>,
    /// Idle time after which the app expires (its children are torn down, the `ReviewApp`
    /// stays): `90m`, `36h`, `7d`, or a number of seconds; `0` never. Counted from the last new
    /// commit, deploy or wake. Defaults to the operator's `lifecycle.expireAfter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_after: Option<IntOrString>,
    /// Idle time after which the app goes to sleep (scaled to 0 until a request wakes it), in
    /// the same form; `0` never. Defaults to the operator's `lifecycle.sleepAfter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sleep_after: Option<IntOrString>,
    /// Keys the operator does not know, kept as they were written (and reported in the status).
    #[serde(flatten, default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(skip)]
    pub unknown: Unknown,
}

/// Keys of a `spec.config` object that the operator does not know, with their values.
pub type Unknown = BTreeMap<String, serde_json::Value>;

/// `spec.config.migrate`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Migrate {
    /// Command (entrypoint) of the migration init container; empty means no migration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Arguments of the migration init container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// Keys the operator does not know, kept as they were written.
    #[serde(flatten, default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(skip)]
    pub unknown: Unknown,
}

/// `spec.config.database`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Database {
    /// `kubedb` (KubeDB `Postgres`) or `cnpg` (CloudNativePG `Cluster`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Database engine; only `Postgres` is supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// Engine version (KubeDB version name, or the Postgres major for CNPG).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Existing database to copy into the new one when it is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_from: Option<CopyFrom>,
    /// Keys the operator does not know, kept as they were written.
    #[serde(flatten, default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(skip)]
    pub unknown: Unknown,
}

/// `spec.config.database.copyFrom`: a `database_url`, or all four parts.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct CopyFrom {
    /// `postgres[ql]://user:password@host[:port]/database`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_url: Option<ValueSpec>,
    /// Source host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<ValueSpec>,
    /// Source database name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<ValueSpec>,
    /// Source user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<ValueSpec>,
    /// Source password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<ValueSpec>,
    /// Keys the operator does not know, kept as they were written.
    #[serde(flatten, default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(skip)]
    pub unknown: Unknown,
}

/// A literal `value` or a `secretRef` to a key of a Secret in `config.namespace`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ValueSpec {
    /// Literal value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Reference to a Secret key in `config.namespace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,
    /// Keys the operator does not know, kept as they were written.
    #[serde(flatten, default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(skip)]
    pub unknown: Unknown,
}

/// `{name, key}` of a Secret in `config.namespace`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct SecretRef {
    /// Secret name.
    #[serde(default)]
    pub name: String,
    /// Key within the Secret.
    #[serde(default)]
    pub key: String,
    /// Keys the operator does not know, kept as they were written.
    #[serde(flatten, default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(skip)]
    pub unknown: Unknown,
}

/// `spec.config.env`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Env {
    /// ConfigMaps loaded whole with `envFrom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_maps: Option<Vec<String>>,
    /// Secrets loaded whole with `envFrom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<Vec<String>>,
    /// Single variables; scalar values are turned into strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<EnvValue>>,
    /// Keys the operator does not know, kept as they were written.
    #[serde(flatten, default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(skip)]
    pub unknown: Unknown,
}

/// One entry of `spec.config.env.values`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EnvValue {
    /// Variable name.
    #[serde(default)]
    pub name: String,
    /// A scalar (string, number or boolean); lists and maps are rejected by validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_value")]
    pub value: Option<serde_json::Value>,
    /// A Kubernetes `valueFrom` source, passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<EnvVarSource>,
    /// Keys the operator does not know, kept as they were written.
    #[serde(flatten, default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(skip)]
    pub unknown: Unknown,
}

/// Schema for a value of any JSON type (validation rejects the non-scalar ones with a field error).
fn any_value(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
}

/// Marks every object node of a schema `x-kubernetes-preserve-unknown-fields: true`, so that the
/// API server neither prunes nor (with strict field validation) rejects keys it does not know.
/// `properties` stay, so the schema stays structural and known fields stay typed.
fn preserve_unknown_fields(schema: &mut schemars::Schema) {
    use serde_json::Value;
    fn walk(node: &mut Value) {
        let Some(map) = node.as_object_mut() else {
            return;
        };
        if map.get("type").and_then(Value::as_str) == Some("object")
            || map.contains_key("properties")
        {
            map.insert(
                "x-kubernetes-preserve-unknown-fields".into(),
                Value::Bool(true),
            );
        }
        if let Some(properties) = map.get_mut("properties").and_then(Value::as_object_mut) {
            properties.values_mut().for_each(walk);
        }
        for key in ["items", "additionalProperties"] {
            if let Some(child) = map.get_mut(key) {
                walk(child);
            }
        }
        for key in ["allOf", "anyOf", "oneOf"] {
            if let Some(Value::Array(branches)) = map.get_mut(key) {
                branches.iter_mut().for_each(walk);
            }
        }
    }
    if let Some(object) = schema.as_object_mut() {
        let mut root = Value::Object(std::mem::take(object));
        walk(&mut root);
        if let Value::Object(map) = root {
            *object = map;
        }
    }
}

impl ReviewAppSpec {
    /// The pull request identifier as a string, whichever form it was given in.
    pub fn pr_string(&self) -> Option<String> {
        match self.pr.as_ref()? {
            IntOrString::Int(i) => Some(i.to_string()),
            IntOrString::String(s) => Some(s.clone()),
        }
    }
}
