//! `deploy/github/` hangs together and grants exactly what the component needs: the Component
//! lists every file, the settings in the ConfigMap load, the Deployment sets only variables the
//! component reads and serves on the port its probes and Service use, and the ClusterRole grants
//! the ReviewApp verbs the code sends, and nothing else.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use reviewapp_github::GithubConfig;
use reviewapp_github::config::{ENV_VARS, SECRET_VARS};
use serde::Deserialize;
use serde_yaml::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/github")
}

fn documents(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(root().join(file)).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|d| !d.is_null())
        .collect()
}

fn the<T: serde::de::DeserializeOwned>(file: &str, kind: &str) -> T {
    let docs: Vec<Value> = documents(file)
        .into_iter()
        .filter(|d| d["kind"].as_str() == Some(kind))
        .collect();
    assert_eq!(docs.len(), 1, "{file} has one {kind}");
    serde_yaml::from_value(docs[0].clone()).unwrap()
}

#[test]
fn the_component_lists_exactly_its_files() {
    let kustomization: Value = the("kustomization.yaml", "Component");
    assert_eq!(
        kustomization["apiVersion"].as_str(),
        Some("kustomize.config.k8s.io/v1alpha1")
    );
    let listed: BTreeSet<String> = kustomization["resources"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    let files: BTreeSet<String> = std::fs::read_dir(root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".yaml") && f != "kustomization.yaml")
        .collect();
    assert_eq!(listed, files);
    for file in &files {
        for doc in documents(file) {
            assert_eq!(
                doc["metadata"]["labels"]["app.kubernetes.io/component"].as_str(),
                Some("github"),
                "{file}"
            );
        }
    }
}

#[allow(
    clippy::too_many_lines,
    reason = "the Deployment is checked field by field, top to bottom"
)]
#[test]
fn the_deployment_and_the_settings_agree() {
    let configmap: Value = the("configmap.yaml", "ConfigMap");
    let text = configmap["data"]["config.yaml"].as_str().unwrap();
    let settings = GithubConfig::load(Some(text), |_| None).expect("the settings load");
    assert_eq!(
        settings,
        GithubConfig {
            app_private_key_file: settings.app_private_key_file.clone(),
            ..GithubConfig::default()
        },
        "the shipped settings are the defaults"
    );

    let deployment: Deployment = the("deployment.yaml", "Deployment");
    let spec = deployment.spec;
    assert_eq!(
        spec.replicas,
        Some(1),
        "one replica reports each state once"
    );
    assert_eq!(spec.strategy.unwrap().type_.as_deref(), Some("Recreate"));
    let pod = spec.template.spec.unwrap();
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some("review-app-github")
    );
    let container = &pod.containers[0];
    assert_eq!(container.args.as_deref(), Some(&["github".to_string()][..]));
    let known: BTreeSet<&str> = ENV_VARS
        .iter()
        .map(|(v, _, _)| *v)
        .chain(SECRET_VARS.iter().copied())
        .chain([
            "REVIEWAPP_GITHUB_CONFIG",
            "REVIEWAPP_GITHUB_LISTEN",
            "REVIEWAPP_LOG_FORMAT",
            "RUST_LOG",
        ])
        .collect();
    let env = container.env.clone().unwrap();
    for var in &env {
        assert!(
            known.contains(var.name.as_str()),
            "unknown variable {}",
            var.name
        );
        if SECRET_VARS.contains(&var.name.as_str()) {
            assert!(var.value.is_none(), "{} comes from the Secret", var.name);
        }
    }
    let value = |name: &str| {
        env.iter()
            .find(|e| e.name == name)
            .and_then(|e| e.value.clone())
            .unwrap()
    };
    assert_eq!(value("REVIEWAPP_GITHUB_LISTEN"), "0.0.0.0:8090");
    let config_mount = container
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == "config")
        .unwrap();
    assert_eq!(
        value("REVIEWAPP_GITHUB_CONFIG"),
        format!("{}/config.yaml", config_mount.mount_path)
    );
    let key_mount = container
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == "app-key")
        .unwrap();
    assert_eq!(
        settings.app_private_key_file,
        format!("{}/private-key.pem", key_mount.mount_path)
    );
    let port = &container.ports.as_ref().unwrap()[0];
    assert_eq!(
        (port.container_port, port.name.as_deref()),
        (8090, Some("http"))
    );
    for probe in [&container.liveness_probe, &container.readiness_probe] {
        let get = probe.as_ref().unwrap().http_get.as_ref().unwrap();
        assert!(matches!(get.path.as_deref(), Some("/healthz" | "/readyz")));
    }
    let service: Value = the("service.yaml", "Service");
    assert_eq!(
        service["spec"]["ports"][0]["targetPort"].as_str(),
        Some("http")
    );
}

#[test]
fn rbac_grants_exactly_the_reviewapp_verbs_the_code_sends() {
    // What the code sends, each with where:
    let needed: BTreeSet<&str> = [
        "create", // sync.rs: a pull request's new ReviewApp
        "patch",  // sync.rs: the spec (JSON patch); reporter.rs: annotation, finalizer removal
        "delete", // sync.rs: closed, opted out, ignored, namespace moved
        "get",    // sync.rs: the current app; reporter.rs: before removing the finalizer
        "list",   // service.rs: the ReviewApp watch (list, then watch)
        "watch",
    ]
    .into_iter()
    .collect();
    let role: ClusterRole = the("rbac.yaml", "ClusterRole");
    let rules = role.rules.unwrap();
    assert_eq!(rules.len(), 1, "one rule: {rules:?}");
    let rule = &rules[0];
    assert_eq!(
        rule.api_groups.as_deref(),
        Some(&["reviewtron.k8s.revelry.co".to_string()][..])
    );
    assert_eq!(
        rule.resources.as_deref(),
        Some(&["reviewapps".to_string()][..])
    );
    assert!(rule.resource_names.is_none() && rule.non_resource_urls.is_none());
    let granted: BTreeSet<&str> = rule.verbs.iter().map(String::as_str).collect();
    assert_eq!(granted, needed);

    let binding: ClusterRoleBinding = the("rbac.yaml", "ClusterRoleBinding");
    assert_eq!(binding.role_ref.name, "review-app-github");
    let account: Value = the("serviceaccount.yaml", "ServiceAccount");
    let subject = &binding.subjects.unwrap()[0];
    assert_eq!(subject.kind, "ServiceAccount");
    assert_eq!(
        Some(subject.name.as_str()),
        account["metadata"]["name"].as_str()
    );
    assert_eq!(
        subject.namespace.as_deref(),
        account["metadata"]["namespace"].as_str()
    );
}
