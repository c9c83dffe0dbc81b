//! CloudNativePG `postgresql.cnpg.io/v1` `Cluster`: one instance, an `app` database owned by
//! `app`, and, with a copy source, a native logical import (`bootstrap.initdb.import`, type
//! `microservice`) from an `externalClusters` entry, so no copy script is needed.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::SecretKeySelector;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use reviewapp_api::validate::{CopySource, DatabaseSpec, Source};
use reviewapp_api::{OperatorConfig, ReviewApp, ValidatedSpec};
use serde::Serialize;

use crate::child::ChildKind;
use crate::db_copy::{self, SOURCE_PASSWORD};
use crate::meta::{self, Component};

/// The application database (and its owner) `initdb` creates.
pub const APP_DATABASE: &str = "app";
/// Name of the external cluster the copy is imported from.
pub const SOURCE_CLUSTER: &str = "source";
/// Operand image repository; a version `V` given in the spec selects `<repository>:V`.
pub const IMAGE_REPOSITORY: &str = "ghcr.io/cloudnative-pg/postgresql";

/// A CloudNativePG `Cluster` (only the fields this operator sets).
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)] // `metadata` and `spec` say it all
pub struct CnpgCluster {
    /// `postgresql.cnpg.io/v1`.
    pub api_version: String,
    /// `Cluster`.
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: CnpgClusterSpec,
}

/// `spec` of a `Cluster`.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CnpgClusterSpec {
    /// Number of instances (1: a review app needs no replica).
    pub instances: i32,
    /// Operand image; absent for the CNPG operator's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_name: Option<String>,
    /// Data volume.
    pub storage: CnpgStorage,
    /// How the cluster is created.
    pub bootstrap: CnpgBootstrap,
    /// Clusters to import from.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub external_clusters: Vec<CnpgExternalCluster>,
}

/// `spec.storage`.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CnpgStorage {
    /// Size, e.g. `1Gi`.
    pub size: String,
    /// StorageClass; absent for the cluster default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
}

/// `spec.bootstrap`.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CnpgBootstrap {
    /// A new cluster from `initdb`.
    pub initdb: CnpgInitdb,
}

/// `spec.bootstrap.initdb`.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CnpgInitdb {
    /// Application database.
    pub database: String,
    /// Its owner.
    pub owner: String,
    /// Logical import of an external database.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub import: Option<CnpgImport>,
}

/// `spec.bootstrap.initdb.import`.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CnpgImport {
    /// `microservice`: one database, imported into the application database.
    #[serde(rename = "type")]
    pub type_: String,
    /// The source database (exactly one for `microservice`).
    pub databases: Vec<String>,
    /// Where from.
    pub source: CnpgImportSource,
}

/// `spec.bootstrap.initdb.import.source`.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CnpgImportSource {
    /// Name of an `externalClusters` entry.
    pub external_cluster: String,
}

/// One `spec.externalClusters` entry.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CnpgExternalCluster {
    /// Name referenced by the import.
    pub name: String,
    /// libpq parameters (`host`, `port`, `user`, `dbname`).
    pub connection_parameters: BTreeMap<String, String>,
    /// The password's Secret key.
    pub password: SecretKeySelector,
}

/// The `Cluster` `names.database` in the app's namespace.
///
/// Image: `config.database.cnpgImageName` when set; otherwise a version given in the spec selects
/// `ghcr.io/cloudnative-pg/postgresql:<version>`; otherwise the CNPG operator's default.
/// Validation guarantees host, database and user of a copy source are literal values for this
/// backend; the password is the database-copy Secret's `SOURCE_PASSWORD` key for a literal, or
/// the user's own Secret key.
pub fn cluster(
    app: &ReviewApp,
    spec: &ValidatedSpec,
    config: &OperatorConfig,
    db: &DatabaseSpec,
) -> CnpgCluster {
    let names = &spec.names;
    let configured_image = config.database.cnpg_image_name.trim();
    let image_name = if configured_image.is_empty() {
        db.version
            .as_deref()
            .map(|version| format!("{IMAGE_REPOSITORY}:{}", version.trim()))
    } else {
        Some(configured_image.to_string())
    };
    let storage_class = config.database.storage_class_name.trim();
    let (import, external_clusters) = match &db.copy_from {
        Some(copy) => import_from(spec, copy).unzip(),
        None => (None, None),
    };

    CnpgCluster {
        api_version: ChildKind::CnpgCluster.api_version(),
        kind: ChildKind::CnpgCluster.kind().to_string(),
        metadata: meta::object_meta(
            app,
            names,
            Component::Database,
            &spec.namespace,
            &names.database,
        ),
        spec: CnpgClusterSpec {
            instances: 1,
            image_name,
            storage: CnpgStorage {
                size: config.database.storage_size.trim().to_string(),
                storage_class: (!storage_class.is_empty()).then(|| storage_class.to_string()),
            },
            bootstrap: CnpgBootstrap {
                initdb: CnpgInitdb {
                    database: APP_DATABASE.to_string(),
                    owner: APP_DATABASE.to_string(),
                    import,
                },
            },
            external_clusters: external_clusters.into_iter().collect(),
        },
    }
}

/// The logical import of `copy` and the external cluster it comes from. Validation makes host,
/// database and user literals for this backend; without a literal database there is nothing to
/// name in `databases`, so nothing is imported.
fn import_from(
    spec: &ValidatedSpec,
    copy: &CopySource,
) -> Option<(CnpgImport, CnpgExternalCluster)> {
    let CopySource::Parts {
        host,
        port,
        database: Source::Value(source_database),
        user,
        password,
    } = copy
    else {
        return None;
    };
    let mut parameters = BTreeMap::new();
    for (key, source) in [("host", host), ("user", user)] {
        if let Source::Value(value) = source {
            parameters.insert(key.to_string(), value.clone());
        }
    }
    parameters.insert("dbname".to_string(), source_database.clone());
    if let Some(port) = port {
        parameters.insert("port".to_string(), port.to_string());
    }
    let import = CnpgImport {
        type_: "microservice".to_string(),
        databases: vec![source_database.clone()],
        source: CnpgImportSource {
            external_cluster: SOURCE_CLUSTER.to_string(),
        },
    };
    let cluster = CnpgExternalCluster {
        name: SOURCE_CLUSTER.to_string(),
        connection_parameters: parameters,
        password: db_copy::secret_key_ref(spec, SOURCE_PASSWORD, password),
    };
    Some((import, cluster))
}
