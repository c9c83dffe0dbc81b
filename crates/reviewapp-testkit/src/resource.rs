//! Resource identities (group, version, plural) and the kind → plural table.

use std::fmt;

/// One stored resource: a group, a version and a plural name (`""`, `"v1"`, `"configmaps"`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceKey {
    /// API group, `""` for the core group.
    pub group: String,
    /// API version, e.g. `v1`.
    pub version: String,
    /// Plural resource name, e.g. `configmaps`.
    pub plural: String,
}

impl ResourceKey {
    /// A resource key from its parts.
    pub fn new(group: &str, version: &str, plural: &str) -> Self {
        Self {
            group: group.to_string(),
            version: version.to_string(),
            plural: plural.to_string(),
        }
    }

    /// `apiVersion` of this resource's objects (`v1`, `apps/v1`).
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The URL path of the collection, in `namespace` when given.
    pub fn collection_path(&self, namespace: Option<&str>) -> String {
        let prefix = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        match namespace {
            Some(ns) => format!("{prefix}/namespaces/{ns}/{}", self.plural),
            None => format!("{prefix}/{}", self.plural),
        }
    }

    /// Whether this is the core `namespaces` resource.
    pub(crate) fn is_namespaces(&self) -> bool {
        self.group.is_empty() && self.plural == "namespaces"
    }

    /// The kind of this resource's objects when the table knows it.
    pub(crate) fn known_kind(&self) -> Option<&'static str> {
        KINDS
            .iter()
            .find(|(_, plural, _)| *plural == self.plural)
            .map(|(kind, _, _)| *kind)
    }
}

impl fmt::Display for ResourceKey {
    /// `configmaps`, `jobs.batch`: how the API server names a resource in messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.plural)
        } else {
            write!(f, "{}.{}", self.plural, self.group)
        }
    }
}

/// Known kinds: (kind, plural, namespaced).
const KINDS: &[(&str, &str, bool)] = &[
    ("Namespace", "namespaces", false),
    ("Secret", "secrets", true),
    ("ConfigMap", "configmaps", true),
    ("Service", "services", true),
    ("ServiceAccount", "serviceaccounts", true),
    ("Pod", "pods", true),
    ("Deployment", "deployments", true),
    ("Job", "jobs", true),
    ("Ingress", "ingresses", true),
    ("Event", "events", true),
    ("Lease", "leases", true),
    ("ReviewApp", "reviewapps", false),
    ("Postgres", "postgreses", true),
    ("Cluster", "clusters", true),
    (
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
    ),
    ("Node", "nodes", false),
];

/// The plural of `kind` and whether it is namespaced (`None`: unknown kind, plural guessed).
pub fn plural_of(kind: &str) -> (String, Option<bool>) {
    match KINDS.iter().find(|(k, _, _)| *k == kind) {
        Some((_, plural, namespaced)) => ((*plural).to_string(), Some(*namespaced)),
        None => (guess_plural(kind), None),
    }
}

/// English-ish plural of a lowercased kind (the fallback for kinds not in the table).
fn guess_plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if lower.ends_with('s')
        || lower.ends_with('x')
        || lower.ends_with("ch")
        || lower.ends_with("sh")
    {
        format!("{lower}es")
    } else if let Some(stem) = lower.strip_suffix('y')
        && !stem.ends_with(['a', 'e', 'i', 'o', 'u'])
    {
        format!("{stem}ies")
    } else {
        format!("{lower}s")
    }
}

/// Splits an `apiVersion` into group and version (`v1` → `("", "v1")`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals() {
        assert_eq!(plural_of("Ingress"), ("ingresses".into(), Some(true)));
        assert_eq!(plural_of("ReviewApp"), ("reviewapps".into(), Some(false)));
        assert_eq!(plural_of("Postgres"), ("postgreses".into(), Some(true)));
        assert_eq!(plural_of("Widget"), ("widgets".into(), None));
        assert_eq!(plural_of("Policy").0, "policies");
        assert_eq!(plural_of("Gateway").0, "gateways");
    }

    #[test]
    fn paths_and_names() {
        let jobs = ResourceKey::new("batch", "v1", "jobs");
        assert_eq!(
            jobs.collection_path(Some("ns")),
            "/apis/batch/v1/namespaces/ns/jobs"
        );
        assert_eq!(jobs.to_string(), "jobs.batch");
        let cms = ResourceKey::new("", "v1", "configmaps");
        assert_eq!(cms.collection_path(None), "/api/v1/configmaps");
        assert_eq!(cms.api_version(), "v1");
        assert_eq!(split_api_version("apps/v1"), ("apps", "v1"));
    }
}
