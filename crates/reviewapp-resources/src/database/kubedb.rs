//! KubeDB `kubedb.com/v1` `Postgres`.
//!
//! Field shapes of KubeDB's `kubedb.com/v1` API: `spec.version` names a
//! `PostgresVersion`; `spec.storage` is a PersistentVolumeClaimSpec; `spec.deletionPolicy`
//! replaced v1alpha2's `terminationPolicy`; `spec.init.script` is a `ScriptSourceSpec`, which
//! inlines a core `VolumeSource` (so `secret: {secretName, ...}` sits directly under `script`);
//! `spec.podTemplate` is offshoot-api v2's template whose `spec.containers` are merged by name
//! into the pods KubeDB creates (the database container is `postgres`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, KeyToPath, PersistentVolumeClaimSpec, SecretVolumeSource, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use reviewapp_api::validate::DatabaseSpec;
use reviewapp_api::{OperatorConfig, ReviewApp, ValidatedSpec};
use serde::Serialize;

use crate::child::ChildKind;
use crate::db_copy::{self, SCRIPT_KEY};
use crate::meta::{self, Component};

/// Name of KubeDB's database container, which runs the init script.
pub const CONTAINER: &str = "postgres";
/// File mode of the mounted init script (`r-xr-xr-x`: runnable, whether KubeDB executes or sources it).
pub const SCRIPT_MODE: i32 = 0o555;

/// A KubeDB `Postgres` (only the fields this operator sets).
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)] // `metadata` and `spec` say it all
pub struct KubedbPostgres {
    /// `kubedb.com/v1`.
    pub api_version: String,
    /// `Postgres`.
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: KubedbPostgresSpec,
}

/// `spec` of a KubeDB `Postgres`.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KubedbPostgresSpec {
    /// Name of a `PostgresVersion`.
    pub version: String,
    /// `Durable` (a PersistentVolumeClaim) or `Ephemeral`.
    pub storage_type: String,
    /// The data volume's claim.
    pub storage: PersistentVolumeClaimSpec,
    /// What deleting the object deletes: `WipeOut` removes data, Secrets and everything else.
    pub deletion_policy: String,
    /// Initialisation from a script (only when a database is copied).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<KubedbInit>,
    /// Pod customisation (only when a database is copied: the copy's environment).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_template: Option<KubedbPodTemplate>,
}

/// `spec.init`.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KubedbInit {
    /// The init script's volume.
    pub script: KubedbScriptSource,
}

/// `spec.init.script`: a `ScriptSourceSpec`, whose inlined `VolumeSource` is here always a Secret.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KubedbScriptSource {
    /// The Secret holding the script.
    pub secret: SecretVolumeSource,
}

/// `spec.podTemplate`.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KubedbPodTemplate {
    /// Pod spec overrides.
    pub spec: KubedbPodSpec,
}

/// `spec.podTemplate.spec`.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KubedbPodSpec {
    /// Containers, merged by name into KubeDB's.
    pub containers: Vec<Container>,
}

/// The `Postgres` `names.database` in the app's namespace. With a copy source, the
/// database-copy Secret's script is its init script and the copy's `SOURCE_*` variables are
/// set on the `postgres` container, each read from a Secret key (no value is ever inlined).
pub fn postgres(
    app: &ReviewApp,
    spec: &ValidatedSpec,
    config: &OperatorConfig,
    db: &DatabaseSpec,
) -> KubedbPostgres {
    let names = &spec.names;
    let storage_class = config.database.storage_class_name.trim();
    let storage = PersistentVolumeClaimSpec {
        access_modes: Some(vec!["ReadWriteOnce".to_string()]),
        resources: Some(VolumeResourceRequirements {
            requests: Some(BTreeMap::from([(
                "storage".to_string(),
                Quantity(config.database.storage_size.trim().to_string()),
            )])),
            limits: None,
        }),
        storage_class_name: (!storage_class.is_empty()).then(|| storage_class.to_string()),
        ..PersistentVolumeClaimSpec::default()
    };
    let (init, pod_template) = match &db.copy_from {
        None => (None, None),
        Some(copy) => (
            Some(KubedbInit {
                script: KubedbScriptSource {
                    secret: SecretVolumeSource {
                        secret_name: Some(names.db_copy_secret.clone()),
                        default_mode: Some(SCRIPT_MODE),
                        // Only the script: the literal values stay out of the script directory.
                        items: Some(vec![KeyToPath {
                            key: SCRIPT_KEY.to_string(),
                            path: SCRIPT_KEY.to_string(),
                            ..KeyToPath::default()
                        }]),
                        ..SecretVolumeSource::default()
                    },
                },
            }),
            Some(KubedbPodTemplate {
                spec: KubedbPodSpec {
                    containers: vec![Container {
                        name: CONTAINER.to_string(),
                        env: Some(db_copy::source_env(spec, copy)),
                        ..Container::default()
                    }],
                },
            }),
        ),
    };
    KubedbPostgres {
        api_version: ChildKind::KubedbPostgres.api_version(),
        kind: ChildKind::KubedbPostgres.kind().to_string(),
        metadata: meta::object_meta(
            app,
            names,
            Component::Database,
            &spec.namespace,
            &names.database,
        ),
        spec: KubedbPostgresSpec {
            version: db
                .version
                .clone()
                .unwrap_or_else(|| config.database.kubedb_version.clone()),
            storage_type: "Durable".to_string(),
            storage,
            deletion_policy: "WipeOut".to_string(),
            init,
            pod_template,
        },
    }
}
