//! The install manifests (`deploy/`) and the minikube overlay (`dev/overlay/`) hang together:
//! every file parses, each kustomization lists exactly the files next to it, the configuration
//! in each ConfigMap loads with [`OperatorConfig::load`], and the Deployment agrees with the
//! ConfigMap, the ServiceAccount, the Service, the kustomize image and the operator's flags.
//! (RBAC has its own test, `rbac.rs`; `deploy/crd.yaml` is compared with the generated CRD by
//! the binary's tests.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(
    clippy::too_many_lines,
    reason = "the Deployment is checked field by field, top to bottom"
)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use reviewapp_api::{OperatorConfig, ReviewApp, validate};
use serde::Deserialize;
use serde_yaml::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// Every non-empty YAML document of `path`.
fn documents(path: &str) -> Vec<Value> {
    let text = read(path);
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{path}: {e}")))
        .filter(|doc| !doc.is_null())
        .collect()
}

/// The only document of kind `kind` in `path`.
fn the(path: &str, kind: &str) -> Value {
    let mut found: Vec<Value> = documents(path)
        .into_iter()
        .filter(|doc| doc["kind"].as_str() == Some(kind))
        .collect();
    assert_eq!(found.len(), 1, "{path} has one {kind}");
    found.remove(0)
}

fn str_of<'a>(value: &'a Value, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {value:?}"))
}

/// The `.yaml`/`.yml` files directly in `dir`, by name.
fn yaml_files(dir: &str) -> BTreeSet<String> {
    std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.is_file()
                && matches!(
                    path.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml")
                )
        })
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// The paths a kustomization refers to: `resources`, `patches[].path`, `patchesStrategicMerge`.
fn kustomization_refs(kustomization: &Value) -> Vec<String> {
    let list = |key: &str| -> Vec<String> {
        kustomization[key]
            .as_sequence()
            .into_iter()
            .flatten()
            .map(|item| match item {
                Value::String(path) => path.clone(),
                other => str_of(&other["path"], key).to_string(),
            })
            .collect()
    };
    let mut refs = list("resources");
    refs.extend(list("patches"));
    refs.extend(list("patchesStrategicMerge"));
    refs
}

/// The operator configuration in a ConfigMap document (key `config.yaml`).
fn config_text(configmap: &Value) -> String {
    str_of(&configmap["data"]["config.yaml"], "data.config.yaml").to_string()
}

/// The operator container of deploy/deployment.yaml.
fn operator_container(deployment: &Value) -> &Value {
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .expect("containers");
    assert_eq!(containers.len(), 1, "one container");
    &containers[0]
}

fn env_of<'a>(container: &'a Value, name: &str) -> &'a Value {
    container["env"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|e| e["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no env {name}"))
}

#[test]
fn every_deploy_file_parses_as_kubernetes_objects() {
    let files = yaml_files("deploy");
    assert!(files.len() >= 8, "{files:?}");
    for dir in ["deploy", "dev/overlay", "dev/resources", "dev/samples"] {
        for file in yaml_files(dir) {
            let path = format!("{dir}/{file}");
            let docs = documents(&path);
            assert!(!docs.is_empty(), "{path} is empty");
            for doc in docs {
                let kind = str_of(&doc["kind"], &format!("{path}: kind"));
                str_of(&doc["apiVersion"], &format!("{path}: apiVersion"));
                if kind != "Kustomization" {
                    str_of(&doc["metadata"]["name"], &format!("{path}: metadata.name"));
                }
            }
        }
    }
}

#[test]
fn each_kustomization_lists_exactly_its_files() {
    for dir in ["deploy", "dev/overlay"] {
        let path = format!("{dir}/kustomization.yaml");
        let kustomization = the(&path, "Kustomization");
        let refs = kustomization_refs(&kustomization);
        let unique: BTreeSet<&String> = refs.iter().collect();
        assert_eq!(
            unique.len(),
            refs.len(),
            "{path} names a file twice: {refs:?}"
        );
        for reference in &refs {
            assert!(
                root().join(dir).join(reference).exists(),
                "{path} names {reference}, which does not exist"
            );
        }
        let local: BTreeSet<String> = refs.iter().filter(|r| !r.contains('/')).cloned().collect();
        let mut files = yaml_files(dir);
        files.remove("kustomization.yaml");
        assert_eq!(
            local, files,
            "{path} must list every file of {dir}/ (and only those)"
        );
    }
    let overlay = the("dev/overlay/kustomization.yaml", "Kustomization");
    assert!(
        kustomization_refs(&overlay).contains(&"../../deploy".to_string()),
        "the dev overlay builds on deploy/"
    );
}

#[test]
fn the_configmap_holds_a_configuration_that_loads() {
    let configmap = the("deploy/configmap.yaml", "ConfigMap");
    let config = OperatorConfig::load(Some(&config_text(&configmap)), |_| None)
        .unwrap_or_else(|e| panic!("deploy/configmap.yaml: {e}"));
    assert_ne!(
        config,
        OperatorConfig::default(),
        "an example, not the defaults"
    );
    // The example must be safe to copy: apps never land in kube-system, the operator's own
    // namespace or the build namespace.
    let operator_namespace = str_of(
        &the("deploy/namespace.yaml", "Namespace")["metadata"]["name"],
        "namespace",
    )
    .to_string();
    for namespace in [
        "kube-system",
        "default",
        &operator_namespace,
        &config.build_namespace,
    ] {
        assert!(
            !config.namespace_allowed(namespace),
            "allowedNamespaces of deploy/configmap.yaml lets apps into {namespace}"
        );
    }
}

#[test]
fn the_dev_configuration_loads_and_accepts_the_dev_sample() {
    let configmap = the("dev/overlay/configmap-patch.yaml", "ConfigMap");
    // dev/up.sh passes the registry addon's address as REVIEWAPP_REGISTRY.
    let config = OperatorConfig::load(Some(&config_text(&configmap)), |var| {
        (var == "REVIEWAPP_REGISTRY").then(|| "10.101.2.3".to_string())
    })
    .unwrap_or_else(|e| panic!("dev/overlay/configmap-patch.yaml: {e}"));
    assert_eq!(config.registry, "10.101.2.3");
    assert_eq!(config.domain, "review.local");
    assert_eq!(config.tls.secret_name, "star-review-local-tls");
    assert_eq!(config.tls.secret_namespace, "default");
    assert_eq!(config.allowed_namespaces, vec!["test-review-app"]);
    // The registry addon speaks plain HTTP; the default rootless BuildKit image pushes to it.
    assert!(config.builder.insecure_registry);
    assert_eq!(
        config.builder.buildkit_image,
        OperatorConfig::default().builder.buildkit_image
    );

    let app: ReviewApp = serde_yaml::from_str(&read("dev/samples/reviewapp-dev.yaml")).unwrap();
    let spec = validate(&app.spec, &config).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(spec.names.app, "test-review-app-678");
    assert!(
        spec.tarball_url
            .starts_with("http://source-server.review-build.svc/app-stub-c8c9aa334a"),
        "{}",
        spec.tarball_url
    );

    let patch = the("dev/overlay/deployment-patch.yaml", "Deployment");
    let registry = env_of(operator_container(&patch), "REVIEWAPP_REGISTRY");
    assert_eq!(
        registry["valueFrom"]["configMapKeyRef"]["key"].as_str(),
        Some("registry")
    );
}

#[test]
fn the_deployment_agrees_with_the_other_manifests() {
    let deployment = the("deploy/deployment.yaml", "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = operator_container(&deployment);
    assert_eq!(deployment["spec"]["replicas"].as_u64(), Some(2));

    // Flags: leader election (two replicas), and a shutdown grace shorter than the pod's.
    let args: Vec<&str> = container["args"]
        .as_sequence()
        .expect("args")
        .iter()
        .map(|a| str_of(a, "arg"))
        .collect();
    assert_eq!(args.first(), Some(&"run"));
    assert!(args.contains(&"--leader-election"), "{args:?}");
    let grace: u64 = args
        .iter()
        .find_map(|a| a.strip_prefix("--shutdown-grace-seconds="))
        .expect("--shutdown-grace-seconds=N")
        .parse()
        .unwrap();
    let termination = pod["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("grace");
    assert!(termination > grace, "{termination} <= {grace}");

    // Configuration: REVIEWAPP_CONFIG is the ConfigMap's key, mounted.
    let configmap = the("deploy/configmap.yaml", "ConfigMap");
    let config_path = str_of(
        &env_of(container, "REVIEWAPP_CONFIG")["value"],
        "REVIEWAPP_CONFIG",
    );
    let (dir, key) = config_path.rsplit_once('/').expect("a path");
    assert!(
        configmap["data"][key].is_string(),
        "the ConfigMap has no key {key}"
    );
    let mount = container["volumeMounts"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|m| m["mountPath"].as_str() == Some(dir))
        .unwrap_or_else(|| panic!("nothing mounted at {dir}"));
    let volume = pod["volumes"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == mount["name"])
        .expect("the mounted volume");
    assert_eq!(volume["configMap"]["name"], configmap["metadata"]["name"]);
    assert_eq!(
        str_of(
            &env_of(container, "REVIEWAPP_LOG_FORMAT")["value"],
            "log format"
        ),
        "json"
    );
    for (var, field) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        assert_eq!(
            env_of(container, var)["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
            Some(field),
            "{var}"
        );
    }

    // Probes on the named metrics port, which the Service targets.
    let port = container["ports"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|p| p["name"].as_str() == Some("http-metrics"))
        .expect("port http-metrics");
    assert_eq!(port["containerPort"].as_u64(), Some(8080));
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(
            container[probe]["httpGet"]["path"].as_str(),
            Some(path),
            "{probe}"
        );
        assert_eq!(
            container[probe]["httpGet"]["port"].as_str(),
            Some("http-metrics"),
            "{probe}"
        );
    }
    let service = the("deploy/service.yaml", "Service");
    let service_port = &service["spec"]["ports"][0];
    assert_eq!(service_port["port"].as_u64(), Some(8080));
    assert_eq!(service_port["targetPort"].as_str(), Some("http-metrics"));
    let labels = pod_labels(&deployment);
    for (key, value) in service["spec"]["selector"].as_mapping().expect("selector") {
        assert_eq!(
            labels.get(key),
            Some(value),
            "the Service selects the operator pods"
        );
    }
    for (key, value) in deployment["spec"]["selector"]["matchLabels"]
        .as_mapping()
        .expect("matchLabels")
    {
        assert_eq!(
            labels.get(key),
            Some(value),
            "the Deployment selects its pods"
        );
    }

    // Identity, hardening and resources.
    let account = the("deploy/serviceaccount.yaml", "ServiceAccount");
    assert_eq!(pod["serviceAccountName"], account["metadata"]["name"]);
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"].as_str(),
        Some("RuntimeDefault")
    );
    let security = &container["securityContext"];
    assert_eq!(security["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(security["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(security["capabilities"]["drop"][0].as_str(), Some("ALL"));
    for bound in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                container["resources"][bound][resource].is_string(),
                "resources.{bound}.{resource}"
            );
        }
    }

    // The image is the one kustomize's `images:` rewrites (in deploy/ and in the dev overlay).
    let image = str_of(&container["image"], "image");
    let name = image.rsplit_once(':').map_or(image, |(name, _)| name);
    for kustomization in [
        "deploy/kustomization.yaml",
        "dev/overlay/kustomization.yaml",
    ] {
        let images = &the(kustomization, "Kustomization")["images"];
        assert!(
            images
                .as_sequence()
                .into_iter()
                .flatten()
                .any(|i| i["name"].as_str() == Some(name)),
            "{kustomization} does not rewrite {name}"
        );
    }

    // Everything of the operator lives in its namespace (the Events Role aside, see rbac.yaml).
    let namespace = the("deploy/namespace.yaml", "Namespace")["metadata"]["name"].clone();
    for file in [
        "serviceaccount.yaml",
        "configmap.yaml",
        "service.yaml",
        "activator-service.yaml",
        "deployment.yaml",
    ] {
        for doc in documents(&format!("deploy/{file}")) {
            assert_eq!(doc["metadata"]["namespace"], namespace, "{file}");
        }
    }
}

#[test]
fn the_activator_service_reaches_every_replicas_activator_port() {
    // Where the operator's `activator.*` settings say it is by default (each app's ExternalName
    // Service names it), and the default of `run --activator-listen` (0.0.0.0:8081).
    let defaults = OperatorConfig::default().activator;
    let service = the("deploy/activator-service.yaml", "Service");
    assert_eq!(
        service["metadata"]["name"].as_str(),
        Some(defaults.service_name.as_str())
    );
    assert_eq!(
        service["metadata"]["namespace"].as_str(),
        Some(defaults.namespace.as_str())
    );
    assert_eq!(
        service["metadata"]["namespace"],
        the("deploy/namespace.yaml", "Namespace")["metadata"]["name"]
    );
    assert_eq!(service["spec"]["type"].as_str(), Some("ClusterIP"));
    let ports = service["spec"]["ports"].as_sequence().expect("ports");
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0]["name"].as_str(), Some("http"));
    assert_eq!(ports[0]["port"].as_u64(), Some(u64::from(defaults.port)));
    assert_eq!(ports[0]["targetPort"].as_str(), Some("activator"));

    let deployment = the("deploy/deployment.yaml", "Deployment");
    let container = operator_container(&deployment);
    let port = container["ports"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|p| p["name"].as_str() == Some("activator"))
        .expect("container port activator");
    assert_eq!(port["containerPort"].as_u64(), Some(8081));
    let args = container["args"].as_sequence().expect("args");
    assert!(
        !args.iter().any(|a| a
            .as_str()
            .is_some_and(|a| a.starts_with("--activator-listen"))),
        "the activator listens on the default port 8081 that the container port names"
    );
    assert!(
        container["env"]
            .as_sequence()
            .into_iter()
            .flatten()
            .all(|e| e["name"].as_str() != Some("REVIEWAPP_ACTIVATOR_LISTEN")),
        "nor does the environment move it"
    );

    // Every replica serves it, leader or not: the selector picks every operator pod, as the
    // metrics Service does.
    let labels = pod_labels(&deployment);
    let selector = service["spec"]["selector"].as_mapping().expect("selector");
    assert!(!selector.is_empty());
    for (key, value) in selector {
        assert_eq!(
            labels.get(key),
            Some(value),
            "the Service selects the operator pods"
        );
    }
    assert_eq!(
        selector,
        the("deploy/service.yaml", "Service")["spec"]["selector"]
            .as_mapping()
            .expect("selector"),
        "the same pods as the metrics Service"
    );
}

fn pod_labels(deployment: &Value) -> serde_yaml::Mapping {
    deployment["spec"]["template"]["metadata"]["labels"]
        .as_mapping()
        .expect("pod labels")
        .clone()
}

#[test]
fn the_dev_scripts_are_executable() {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(root().join("dev")).unwrap() {
        let path = entry.unwrap().path();
        let script = path.extension().and_then(|e| e.to_str()) == Some("sh");
        // lib.sh is sourced, not run.
        if script && path.file_name() != Some(Path::new("lib.sh").as_os_str()) {
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert!(mode & 0o111 != 0, "{} is not executable", path.display());
        }
    }
}
