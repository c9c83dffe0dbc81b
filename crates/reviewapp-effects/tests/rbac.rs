//! `deploy/rbac.yaml` grants the operator's ServiceAccount exactly the API permissions its code
//! needs: every one it needs (or a request fails with 403 in a real cluster), none it does not
//! (least privilege), and never `*`.
//!
//! The needs are derived from the code wherever the code can tell: the child kinds from
//! [`ChildKind::ALL`] (every kind is watched, metadata only, in every namespace), the create and
//! patch verbs from the plans [`apply_children`] and [`start_build`] render for the dev samples
//! (a server-side apply is a PATCH that creates a missing object, so it needs both), the deletes
//! and build-Job releases from the teardown plan [`tear_down`], and `get` from the TLS Secret
//! copy. What the code cannot tell from its
//! plans is listed by hand below, each with the place that sends it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(
    clippy::too_many_lines,
    reason = "the needed and granted permissions are each gathered in one pass, source by source"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use kube::Resource;
use reviewapp_api::names::AppNames;
use reviewapp_api::{OperatorConfig, ReviewApp, validate};
use reviewapp_resources::{Action, ChildKind, apply_children, start_build, tear_down};
use reviewapp_state::TearDown;
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Where a permission applies.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Scope {
    /// Every namespace (and cluster-scoped objects): a ClusterRole bound by a ClusterRoleBinding.
    Cluster,
    /// One namespace: a Role (or ClusterRole) bound by a RoleBinding there.
    Namespace(String),
}

/// One verb on one resource, somewhere.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Permission {
    group: String,
    resource: String,
    verb: String,
    scope: Scope,
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let group = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        let scope = match &self.scope {
            Scope::Cluster => "cluster-wide".to_string(),
            Scope::Namespace(ns) => format!("in namespace {ns}"),
        };
        write!(f, "{} {group}/{} {scope}", self.verb, self.resource)
    }
}

/// Needed permissions, each with why.
#[derive(Default)]
struct Needs(BTreeMap<Permission, BTreeSet<String>>);

impl Needs {
    fn add(&mut self, group: &str, resource: &str, verbs: &[&str], scope: &Scope, why: &str) {
        for verb in verbs {
            let permission = Permission {
                group: group.to_string(),
                resource: resource.to_string(),
                verb: verb.to_string(),
                scope: scope.clone(),
            };
            self.0
                .entry(permission)
                .or_default()
                .insert(why.to_string());
        }
    }

    fn add_kind(&mut self, kind: ChildKind, verbs: &[&str], why: &str) {
        self.add(kind.group(), kind.plural(), verbs, &Scope::Cluster, why);
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// Every non-empty YAML document of `path`.
fn documents(path: &str) -> Vec<serde_yaml::Value> {
    let text = read(path);
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| serde_yaml::Value::deserialize(doc).unwrap_or_else(|e| panic!("{path}: {e}")))
        .filter(|doc| !doc.is_null())
        .collect()
}

/// The documents of `path` whose `kind` is `kind`, typed.
fn objects<T: DeserializeOwned>(path: &str, kind: &str) -> Vec<T> {
    documents(path)
        .into_iter()
        .filter(|doc| doc.get("kind").and_then(serde_yaml::Value::as_str) == Some(kind))
        .map(|doc| serde_yaml::from_value(doc).unwrap_or_else(|e| panic!("{path} {kind}: {e}")))
        .collect()
}

/// The operator's ServiceAccount as `(namespace, name)`.
fn service_account() -> (String, String) {
    let accounts: Vec<ServiceAccount> = objects("deploy/serviceaccount.yaml", "ServiceAccount");
    assert_eq!(
        accounts.len(),
        1,
        "deploy/serviceaccount.yaml has one ServiceAccount"
    );
    let meta = &accounts[0].metadata;
    (
        meta.namespace.clone().expect("ServiceAccount namespace"),
        meta.name.clone().expect("ServiceAccount name"),
    )
}

/// The namespace the operator runs in, from deploy/deployment.yaml. The Lease lives there:
/// `--lease-namespace` comes from `POD_NAMESPACE`, which the Deployment sets to it.
fn operator_namespace() -> String {
    let deployment = documents("deploy/deployment.yaml")
        .into_iter()
        .find(|doc| doc["kind"].as_str() == Some("Deployment"))
        .expect("deploy/deployment.yaml has a Deployment");
    let env = &deployment["spec"]["template"]["spec"]["containers"][0]["env"];
    let pod_namespace = env
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|e| e["name"].as_str() == Some("POD_NAMESPACE"))
        .and_then(|e| e["valueFrom"]["fieldRef"]["fieldPath"].as_str());
    assert_eq!(
        pod_namespace,
        Some("metadata.namespace"),
        "POD_NAMESPACE (the Lease namespace) comes from the downward API"
    );
    deployment["metadata"]["namespace"]
        .as_str()
        .expect("Deployment namespace")
        .to_string()
}

fn sample(path: &str) -> ReviewApp {
    serde_yaml::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// What the operator's code sends, as permissions.
fn needed() -> Needs {
    let mut needs = Needs::default();

    // Every child kind is watched (metadata only, label-selected) in every namespace:
    // reviewapp-daemon live.rs `watch_kind`; build Jobs also in the build namespace
    // (controller.rs), which the cluster-wide grant covers.
    for kind in ChildKind::ALL {
        needs.add_kind(
            kind,
            &["list", "watch"],
            "metadata watch of every child kind (reviewapp-daemon live.rs)",
        );
    }

    // Deletes: teardown deletes every possible child and the build Jobs by name, and releases
    // the build Jobs (the same Delete and ReleaseJob actions supersede a build).
    let names = AppNames::new("test_review_app", "678");
    let config = OperatorConfig {
        tls: reviewapp_api::config::TlsConfig {
            secret_name: "star-review-local-tls".into(),
            secret_namespace: "default".into(),
        },
        ..OperatorConfig::default()
    };
    let teardown = TearDown {
        children: Some(("test-review-app".into(), names)),
        build_jobs: vec!["job".into()],
    };
    let mut deleted: BTreeSet<ChildKind> = BTreeSet::new();
    let mut released: BTreeSet<ChildKind> = BTreeSet::new();
    for action in tear_down(&teardown, &config) {
        match action {
            Action::Delete(child) => {
                deleted.insert(child.kind);
                needs.add_kind(
                    child.kind,
                    &["delete"],
                    "teardown and pruning (Action::Delete)",
                );
            }
            Action::ReleaseJob(job) => {
                released.insert(job.kind);
                needs.add_kind(
                    job.kind,
                    &["patch"],
                    "remove the build-outcome finalizer with a JSON patch (Action::ReleaseJob)",
                );
                needs.add_kind(
                    job.kind,
                    &["get"],
                    "read a build Job's finalizers when the cache does not know them or is stale \
                     (Action::ReleaseJob)",
                );
            }
            other => panic!("unexpected action in a teardown: {other:?}"),
        }
    }
    assert_eq!(
        released,
        BTreeSet::from([ChildKind::Job]),
        "build Jobs are released"
    );

    // Creates and patches: what the plans for both database backends do.
    let mut created = BTreeSet::new();
    for path in [
        "dev/samples/reviewapp.yaml",
        "dev/samples/reviewapp-dev.yaml",
    ] {
        let app = sample(path);
        let spec = validate(&app.spec, &config).unwrap_or_else(|e| panic!("{path}: {e:?}"));
        let mut actions = apply_children(&app, &spec, &config, 1, "registry/app:tag").unwrap();
        actions.push(
            start_build(
                &app,
                &spec,
                &config,
                "job",
                &spec.commit,
                "registry/app:tag",
            )
            .unwrap(),
        );
        for action in actions {
            match action {
                Action::Apply(manifest) => {
                    created.insert(manifest.child.kind);
                    needs.add_kind(
                        manifest.child.kind,
                        &["create", "patch"],
                        "server-side apply, which creates a missing object (Action::Apply)",
                    );
                }
                Action::CopySecret { source, target } => {
                    assert_eq!(target.child.kind, ChildKind::Secret);
                    assert_eq!(source, ("default".into(), "star-review-local-tls".into()));
                    created.insert(target.child.kind);
                    needs.add_kind(
                        target.child.kind,
                        &["create", "patch"],
                        "server-side apply of the TLS copy (Action::CopySecret)",
                    );
                    // The source namespace is configuration (tls.secretNamespace): any namespace.
                    needs.add_kind(
                        ChildKind::Secret,
                        &["get"],
                        "read the wildcard TLS Secret when the cache does not know it (Action::CopySecret)",
                    );
                    needs.add_kind(
                        ChildKind::Secret,
                        &["list", "watch"],
                        "watch of the wildcard TLS Secret (reviewapp-daemon source.rs)",
                    );
                }
                Action::CreateJob(manifest) => {
                    created.insert(manifest.child.kind);
                    needs.add_kind(
                        manifest.child.kind,
                        &["create"],
                        "create the build Job (Action::CreateJob)",
                    );
                }
                other => panic!("unexpected action in a plan of children: {other:?}"),
            }
        }
    }
    let all: BTreeSet<ChildKind> = ChildKind::ALL.into_iter().collect();
    assert_eq!(created, all, "the samples' plans create every child kind");
    assert_eq!(deleted, all, "teardown deletes every child kind");

    // ReviewApps: not in the plans of children.
    let group = reviewapp_api::GROUP;
    needs.add(
        group,
        "reviewapps",
        &["list", "watch"],
        &Scope::Cluster,
        "watch of every ReviewApp (reviewapp-daemon controller.rs)",
    );
    needs.add(
        group,
        "reviewapps",
        &["patch"],
        &Scope::Cluster,
        "finalizer JSON patches (reviewapp-effects finalizer.rs)",
    );
    // The activator, on every replica: its own view of every ReviewApp, and the
    // wake-requested-at annotation, a merge patch on the ReviewApp itself.
    needs.add(
        group,
        "reviewapps",
        &["list", "watch"],
        &Scope::Cluster,
        "the activator's view of every ReviewApp (reviewapp-daemon activator/view.rs)",
    );
    needs.add(
        group,
        "reviewapps",
        &["patch"],
        &Scope::Cluster,
        "the activator's wake-requested-at merge patch (reviewapp-daemon activator/server.rs)",
    );
    needs.add(
        group,
        "reviewapps/status",
        &["patch"],
        &Scope::Cluster,
        "status server-side apply (reviewapp-effects status.rs)",
    );
    needs.add(
        group,
        "reviewapps/finalizers",
        &["update"],
        &Scope::Cluster,
        "owner references with blockOwnerDeletion (OwnerReferencesPermissionEnforcement)",
    );

    // Events: kube's Recorder creates an events.k8s.io/v1 Event in the namespace of the object
    // reference, and patches it for a repeat; a ReviewApp is cluster-scoped, so its reference
    // has no namespace (the API server drops one given for a cluster-scoped object) and the
    // Recorder uses `default`.
    let reference = sample("dev/samples/reviewapp-dev.yaml").object_ref(&());
    assert_eq!(reference.namespace, None, "ReviewApp is cluster-scoped");
    needs.add(
        "events.k8s.io",
        "events",
        &["create", "patch"],
        &Scope::Namespace("default".into()),
        "Events on ReviewApps (kube::runtime::events::Recorder)",
    );

    // Leader election (reviewapp-daemon leader.rs): each try gets the Lease, creates it when
    // missing, and takes, renews or releases it with a replace (PUT) at the resourceVersion read.
    let leader = include_str!("../../reviewapp-daemon/src/leader.rs");
    for call in [".get_opt(", ".create(", ".replace("] {
        assert!(leader.contains(call), "leader.rs calls {call}");
    }
    assert!(
        !leader.contains(".patch(") && !leader.contains(".delete("),
        "leader.rs neither patches nor deletes the Lease"
    );
    // A failed build's log (reviewapp-effects build_log.rs): the Job's pods listed and the
    // failing container's log read, in the build namespace only; the build Secrets read to
    // redact their values (the cluster-wide Secret `get` above covers them).
    let build_log = include_str!("../src/build_log.rs");
    for call in ["pods.list(", ".log_stream(", "api.get_opt("] {
        assert!(build_log.contains(call), "build_log.rs calls {call}");
    }
    let build_namespace = OperatorConfig::default().build_namespace;
    assert!(
        read("deploy/configmap.yaml").contains(&format!("buildNamespace: {build_namespace}")),
        "deploy/configmap.yaml keeps the default build namespace"
    );
    let build_ns = Scope::Namespace(build_namespace);
    needs.add(
        "",
        "pods",
        &["list"],
        &build_ns,
        "list a failed build Job's pods (reviewapp-effects build_log.rs)",
    );
    needs.add(
        "",
        "pods/log",
        &["get"],
        &build_ns,
        "read the failing container's log tail (reviewapp-effects build_log.rs)",
    );
    needs.add_kind(
        ChildKind::Secret,
        &["get"],
        "read the build Secrets to redact their values from a log (reviewapp-effects build_log.rs)",
    );
    needs.add(
        "coordination.k8s.io",
        "leases",
        &["create", "get", "update"],
        &Scope::Namespace(operator_namespace()),
        "leader election (reviewapp-daemon leader.rs)",
    );
    needs
}

/// Permissions granted to the operator's ServiceAccount by deploy/rbac.yaml, each with the role
/// that grants it; panics on anything this check cannot read exactly (wildcards, resource
/// names, non-resource URLs, roles bound to nobody).
fn granted(problems: &mut Vec<String>) -> BTreeMap<Permission, String> {
    const PATH: &str = "deploy/rbac.yaml";
    let (sa_namespace, sa_name) = service_account();
    let is_operator = |subjects: &Option<Vec<Subject>>| {
        subjects.iter().flatten().any(|s| {
            s.kind == "ServiceAccount"
                && s.name == sa_name
                && s.namespace.as_deref() == Some(sa_namespace.as_str())
        })
    };

    let cluster_roles: BTreeMap<String, Vec<PolicyRule>> =
        objects::<ClusterRole>(PATH, "ClusterRole")
            .into_iter()
            .map(|r| (r.metadata.name.unwrap(), r.rules.unwrap_or_default()))
            .collect();
    let roles: BTreeMap<(String, String), Vec<PolicyRule>> = objects::<Role>(PATH, "Role")
        .into_iter()
        .map(|r| {
            let ns = r.metadata.namespace.expect("a Role has a namespace");
            ((ns, r.metadata.name.unwrap()), r.rules.unwrap_or_default())
        })
        .collect();

    // (rules, scope, role description) of every binding to the operator.
    let mut bound: Vec<(Vec<PolicyRule>, Scope, String)> = Vec::new();
    let mut used_cluster_roles = BTreeSet::new();
    let mut used_roles = BTreeSet::new();
    let mut resolve = |role_ref: &RoleRef, namespace: Option<&str>| match role_ref.kind.as_str() {
        "ClusterRole" => {
            let rules = cluster_roles.get(&role_ref.name).cloned();
            used_cluster_roles.insert(role_ref.name.clone());
            rules.map(|rules| (rules, format!("ClusterRole {}", role_ref.name)))
        }
        "Role" => {
            let ns = namespace.expect("RoleBinding namespace").to_string();
            let key = (ns.clone(), role_ref.name.clone());
            let rules = roles.get(&key).cloned();
            used_roles.insert(key);
            rules.map(|rules| (rules, format!("Role {ns}/{}", role_ref.name)))
        }
        other => panic!("unknown roleRef kind {other}"),
    };
    for binding in objects::<ClusterRoleBinding>(PATH, "ClusterRoleBinding") {
        assert!(
            is_operator(&binding.subjects),
            "ClusterRoleBinding {:?} binds someone other than the operator",
            binding.metadata.name
        );
        assert_eq!(binding.role_ref.kind, "ClusterRole");
        let (rules, role) = resolve(&binding.role_ref, None)
            .unwrap_or_else(|| panic!("missing {:?}", binding.role_ref));
        bound.push((rules, Scope::Cluster, role));
    }
    for binding in objects::<RoleBinding>(PATH, "RoleBinding") {
        assert!(
            is_operator(&binding.subjects),
            "RoleBinding {:?} binds someone other than the operator",
            binding.metadata.name
        );
        let ns = binding
            .metadata
            .namespace
            .clone()
            .expect("RoleBinding namespace");
        let (rules, role) = resolve(&binding.role_ref, Some(&ns))
            .unwrap_or_else(|| panic!("missing {:?} in {ns}", binding.role_ref));
        bound.push((rules, Scope::Namespace(ns), role));
    }
    for name in cluster_roles.keys() {
        if !used_cluster_roles.contains(name) {
            problems.push(format!("ClusterRole {name} is bound to nobody"));
        }
    }
    for key in roles.keys() {
        if !used_roles.contains(key) {
            problems.push(format!("Role {}/{} is bound to nobody", key.0, key.1));
        }
    }

    let mut granted = BTreeMap::new();
    for (rules, scope, role) in bound {
        for rule in rules {
            let wildcard = |items: &[String]| items.iter().any(|i| i.contains('*'));
            let groups = rule.api_groups.clone().unwrap_or_default();
            let resources = rule.resources.clone().unwrap_or_default();
            if wildcard(&groups) || wildcard(&resources) || wildcard(&rule.verbs) {
                problems.push(format!("{role} grants `*`: {rule:?}"));
            }
            if rule
                .non_resource_urls
                .as_ref()
                .is_some_and(|u| !u.is_empty())
            {
                problems.push(format!("{role} grants non-resource URLs: {rule:?}"));
            }
            if rule.resource_names.as_ref().is_some_and(|n| !n.is_empty()) {
                problems.push(format!(
                    "{role} limits a rule to resource names, which this check does not model: {rule:?}"
                ));
            }
            for group in &groups {
                for resource in &resources {
                    for verb in &rule.verbs {
                        let permission = Permission {
                            group: group.clone(),
                            resource: resource.clone(),
                            verb: verb.clone(),
                            scope: scope.clone(),
                        };
                        granted.insert(permission, role.clone());
                    }
                }
            }
        }
    }
    granted
}

#[test]
fn rbac_grants_exactly_what_the_operator_needs() {
    let needs = needed();
    let mut problems = Vec::new();
    let granted = granted(&mut problems);

    for (need, why) in &needs.0 {
        let covered = granted.keys().any(|g| {
            g.group == need.group
                && g.resource == need.resource
                && g.verb == need.verb
                && (g.scope == Scope::Cluster || g.scope == need.scope)
        });
        if !covered {
            let why: Vec<&str> = why.iter().map(String::as_str).collect();
            problems.push(format!("missing: {need} (for {})", why.join("; ")));
        }
    }
    for (grant, role) in &granted {
        let needed = needs.0.keys().any(|n| {
            n.group == grant.group
                && n.resource == grant.resource
                && n.verb == grant.verb
                && n.scope == grant.scope
        });
        if !needed {
            problems.push(format!("not needed: {grant} (granted by {role})"));
        }
    }
    assert!(
        problems.is_empty(),
        "deploy/rbac.yaml does not match what the operator needs:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_check_itself_sees_missing_and_extra_grants() {
    // Guards the test above against checking nothing: the needs are not empty, cover every
    // child kind, and a grant the operator does not need would not match any of them.
    let needs = needed();
    assert!(needs.0.len() > 30, "{} needs", needs.0.len());
    for kind in ChildKind::ALL {
        assert!(
            needs
                .0
                .keys()
                .any(|n| n.resource == kind.plural() && n.verb == "watch"),
            "{kind:?}"
        );
    }
    assert!(
        !needs
            .0
            .keys()
            .any(|n| n.verb == "update" && n.resource == "deployments")
    );
    assert!(
        !needs
            .0
            .keys()
            .any(|n| n.resource.starts_with("pods") && n.scope == Scope::Cluster),
        "pods only in the build namespace"
    );
    let mut problems = Vec::new();
    let granted = granted(&mut problems);
    assert!(granted.len() >= needs.0.len(), "{} grants", granted.len());
}
