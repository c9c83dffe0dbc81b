//! The kinds of object the operator creates, with their API coordinates, and a reference to one
//! child by kind, namespace and name.

/// Every kind of object the operator creates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChildKind {
    /// `batch/v1` `Job` (the build, in the build namespace).
    Job,
    /// `apps/v1` `Deployment`.
    Deployment,
    /// `v1` `Service`.
    Service,
    /// `networking.k8s.io/v1` `Ingress`.
    Ingress,
    /// `v1` `Secret` (TLS copy and database-copy secret).
    Secret,
    /// `kubedb.com/v1` `Postgres`.
    KubedbPostgres,
    /// `postgresql.cnpg.io/v1` `Cluster`.
    CnpgCluster,
}

impl ChildKind {
    /// Every kind.
    pub const ALL: [ChildKind; 7] = [
        ChildKind::Job,
        ChildKind::Deployment,
        ChildKind::Service,
        ChildKind::Ingress,
        ChildKind::Secret,
        ChildKind::KubedbPostgres,
        ChildKind::CnpgCluster,
    ];

    /// API group (empty for core).
    pub const fn group(self) -> &'static str {
        match self {
            ChildKind::Job => "batch",
            ChildKind::Deployment => "apps",
            ChildKind::Service | ChildKind::Secret => "",
            ChildKind::Ingress => "networking.k8s.io",
            ChildKind::KubedbPostgres => "kubedb.com",
            ChildKind::CnpgCluster => "postgresql.cnpg.io",
        }
    }

    /// API version (without group).
    pub const fn version(self) -> &'static str {
        "v1"
    }

    /// `apiVersion` field value.
    pub fn api_version(self) -> String {
        match self.group() {
            "" => self.version().to_string(),
            group => format!("{group}/{}", self.version()),
        }
    }

    /// `kind` field value.
    pub const fn kind(self) -> &'static str {
        match self {
            ChildKind::Job => "Job",
            ChildKind::Deployment => "Deployment",
            ChildKind::Service => "Service",
            ChildKind::Ingress => "Ingress",
            ChildKind::Secret => "Secret",
            ChildKind::KubedbPostgres => "Postgres",
            ChildKind::CnpgCluster => "Cluster",
        }
    }

    /// Resource (plural) name in URLs.
    pub const fn plural(self) -> &'static str {
        match self {
            ChildKind::Job => "jobs",
            ChildKind::Deployment => "deployments",
            ChildKind::Service => "services",
            ChildKind::Ingress => "ingresses",
            ChildKind::Secret => "secrets",
            ChildKind::KubedbPostgres => "postgreses",
            ChildKind::CnpgCluster => "clusters",
        }
    }
}

/// A child identified by kind, namespace and name (every child kind is namespaced).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)] // kind, namespace and name say it all
pub struct ChildRef {
    pub kind: ChildKind,
    pub namespace: String,
    pub name: String,
}

impl ChildRef {
    /// A reference to `kind` `namespace`/`name`.
    pub fn new(kind: ChildKind, namespace: &str, name: &str) -> Self {
        Self {
            kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}
