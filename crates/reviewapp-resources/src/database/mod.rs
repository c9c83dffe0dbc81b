//! The app's own Postgres, from one of two operators:
//! KubeDB (`kubedb.com/v1` `Postgres`, the original operator's choice) or CloudNativePG
//! (`postgresql.cnpg.io/v1` `Cluster`).
//!
//! Neither operator's types are in k8s-openapi, so [`kubedb`] and [`cnpg`] define the few
//! fields this operator sets, as serialisable structs.

pub mod cnpg;
pub mod kubedb;

use k8s_openapi::api::core::v1::{EnvVar, SecretKeySelector};
use reviewapp_api::validate::Backend;
use reviewapp_api::{OperatorConfig, ReviewApp, ValidatedSpec};

use crate::child::ChildKind;
use crate::env;

pub use cnpg::CnpgCluster;
pub use kubedb::KubedbPostgres;

/// The database object of either backend.
#[derive(Clone, Debug, PartialEq)]
pub enum DatabaseObject {
    /// KubeDB `Postgres`.
    Kubedb(Box<KubedbPostgres>),
    /// CloudNativePG `Cluster`.
    Cnpg(Box<CnpgCluster>),
}

impl DatabaseObject {
    /// Its child kind.
    pub fn kind(&self) -> ChildKind {
        match self {
            DatabaseObject::Kubedb(_) => ChildKind::KubedbPostgres,
            DatabaseObject::Cnpg(_) => ChildKind::CnpgCluster,
        }
    }
}

/// The database object `names.database`, or `None` when the app has no database.
pub fn database(
    app: &ReviewApp,
    spec: &ValidatedSpec,
    config: &OperatorConfig,
) -> Option<DatabaseObject> {
    let db = spec.database.as_ref()?;
    Some(match db.backend {
        Backend::Kubedb => {
            DatabaseObject::Kubedb(Box::new(kubedb::postgres(app, spec, config, db)))
        }
        Backend::Cnpg => DatabaseObject::Cnpg(Box::new(cnpg::cluster(app, spec, config, db))),
    })
}

/// The Secret with the app's database credentials, created by the database operator:
/// KubeDB's `<database>-auth`, or CloudNativePG's application-user Secret `<database>-app`.
/// Both are `kubernetes.io/basic-auth` Secrets with keys `username` and `password` (KubeDB
/// before v1 used `POSTGRES_USER` and `POSTGRES_PASSWORD`; see [`app_env`]).
pub fn credentials_secret(spec: &ValidatedSpec) -> Option<String> {
    let db = spec.database.as_ref()?;
    let suffix = match db.backend {
        Backend::Kubedb => "auth",
        Backend::Cnpg => "app",
    };
    Some(format!("{}-{suffix}", spec.names.database))
}

/// Host name of the database: KubeDB's primary Service `<database>`, or CloudNativePG's
/// read-write Service `<database>-rw`.
pub fn hostname(spec: &ValidatedSpec) -> Option<String> {
    let db = spec.database.as_ref()?;
    Some(match db.backend {
        Backend::Kubedb => spec.names.database.clone(),
        Backend::Cnpg => format!("{}-rw", spec.names.database),
    })
}

/// The database the app uses: KubeDB's `postgres` (where the copy is restored), or the `app`
/// database CloudNativePG's `initdb` creates (and imports into).
pub fn database_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Kubedb => "postgres",
        Backend::Cnpg => cnpg::APP_DATABASE,
    }
}

/// The app's database variables (none without a database): `POSTGRES_HOSTNAME` (as the original
/// operator set it), then `POSTGRES_DATABASE`, `POSTGRES_USER` and `POSTGRES_PASSWORD`, the names
/// the original operator's apps read. The last two come from the credentials Secret's `username` and `password` keys and are
/// optional: with an older KubeDB whose Secret has `POSTGRES_USER`/`POSTGRES_PASSWORD` keys
/// instead, they are skipped and the `envFrom` of that Secret provides them.
pub fn app_env(spec: &ValidatedSpec) -> Vec<EnvVar> {
    let (Some(db), Some(host), Some(secret)) = (
        spec.database.as_ref(),
        hostname(spec),
        credentials_secret(spec),
    ) else {
        return Vec::new();
    };
    let from_secret = |name: &str, key: &str| {
        env::from_secret(
            name,
            SecretKeySelector {
                name: secret.clone(),
                key: key.into(),
                optional: Some(true),
            },
        )
    };
    vec![
        env::literal("POSTGRES_HOSTNAME", &host),
        env::literal("POSTGRES_DATABASE", database_name(db.backend)),
        from_secret("POSTGRES_USER", "username"),
        from_secret("POSTGRES_PASSWORD", "password"),
    ]
}
