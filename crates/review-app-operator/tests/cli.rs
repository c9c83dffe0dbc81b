//! The binary's commands, run as a user runs them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_review-app-operator"))
        .args(args)
        .current_dir(root())
        .env_remove("REVIEWAPP_CONFIG")
        .output()
        .expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[test]
fn checked_in_crd_equals_the_generated_one() {
    let output = run(&["crd"]);
    assert!(output.status.success());
    let checked_in =
        std::fs::read_to_string(root().join("deploy/crd.yaml")).expect("deploy/crd.yaml exists");
    assert!(
        stdout(&output) == checked_in,
        "deploy/crd.yaml is stale: regenerate it with `cargo run -p review-app-operator -- crd > deploy/crd.yaml` (or `just crd`)"
    );
}

#[test]
fn crd_is_a_v1_cluster_scoped_definition_with_status() {
    let output = run(&["crd"]);
    let crd: serde_json::Value = serde_yaml::from_str(&stdout(&output)).unwrap();
    assert_eq!(crd["apiVersion"], "apiextensions.k8s.io/v1");
    assert_eq!(crd["spec"]["scope"], "Cluster");
    assert!(crd["spec"]["versions"][0]["subresources"]["status"].is_object());
}

#[test]
fn plan_of_the_sample_prints_every_child() {
    let output = run(&["plan", "-f", "dev/samples/reviewapp.yaml"]);
    let text = stdout(&output);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "kind: Job",
        "name: test-review-app-678--c8c9aa334a",
        "kind: Deployment",
        "replicas: 0",
        "kind: Service",
        "kind: Ingress",
        "host: test-review-app-678.review.local",
        "kind: Postgres",
        "name: test-review-app-678--db",
        "name: test-review-app-678--dbcopy",
        "https://s3.aws.com/bucket/repo_source.tar.gz",
    ] {
        assert!(
            text.contains(expected),
            "plan output lacks {expected:?}:\n{text}"
        );
    }
    // Every document parses as YAML with apiVersion, kind and metadata.name.
    let docs: Vec<&str> = text
        .split("\n---\n")
        .filter(|d| d.contains("apiVersion"))
        .collect();
    assert!(docs.len() >= 6, "{} documents", docs.len());
    for doc in docs {
        let value: serde_json::Value =
            serde_yaml::from_str(doc.trim_start_matches("---\n")).unwrap();
        assert!(
            value["apiVersion"].is_string()
                && value["kind"].is_string()
                && value["metadata"]["name"].is_string()
        );
    }
}

#[test]
fn plan_after_a_successful_build_deploys_one_replica() {
    let dir = tempdir();
    let app = dir.join("built.yaml");
    let sample = std::fs::read_to_string(root().join("dev/samples/reviewapp.yaml")).unwrap();
    let status = "status:\n  appStatus: building\n  buildStatus: building\n  buildJobName: test-review-app-678--c8c9aa334a\n  \
                  buildCommit: c8c9aa334a76677aa0be4ec0ebb08484367f952d\n  image: test-review-app-678:c8c9aa334a\n";
    std::fs::write(&app, sample.replace("status: {}\n", status)).unwrap();
    let output = run(&[
        "plan",
        "-f",
        app.to_str().unwrap(),
        "--event",
        "reconcile",
        "--build",
        "succeeded",
    ]);
    let text = stdout(&output);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.contains("replicas: 1") && text.contains("image: test-review-app-678:c8c9aa334a"),
        "{text}"
    );
    assert!(!text.contains("kind: Job"), "no second build:\n{text}");
}

#[test]
fn plan_of_a_delete_lists_deletes_only() {
    let output = run(&[
        "plan",
        "-f",
        "dev/samples/reviewapp.yaml",
        "--event",
        "delete",
    ]);
    let text = stdout(&output);
    assert!(output.status.success());
    assert!(
        text.contains("# delete Deployment test-review-app/test-review-app-678"),
        "{text}"
    );
    assert!(
        text.contains("# delete Job review-build/test-review-app-678--c8c9aa334a"),
        "{text}"
    );
    assert!(
        !text.contains("\n---\n"),
        "a delete applies nothing:\n{text}"
    );
}

#[test]
fn plan_of_an_invalid_app_names_the_fields_and_fails() {
    let output = run(&["plan", "-f", "dev/samples/invalid-reviewapp.yaml"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty(), "nothing is planned");
    let stderr = String::from_utf8_lossy(&output.stderr);
    for field in [
        "spec.commitHash",
        "spec.config.applicationPort",
        "spec.config.database.backend",
        "spec.config.env.values[0].value",
    ] {
        assert!(stderr.contains(field), "{field} missing from:\n{stderr}");
    }
}

#[test]
fn plan_honours_config_file_and_environment() {
    let dir = tempdir();
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        "domain: apps.example.com\nbuilder:\n  kind: kaniko\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_review-app-operator"))
        .args([
            "plan",
            "-f",
            "dev/samples/reviewapp.yaml",
            "--config",
            config.to_str().unwrap(),
        ])
        .env("REVIEWAPP_BUILD_NAMESPACE", "builds")
        .current_dir(root())
        .output()
        .unwrap();
    let text = stdout(&output);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.contains("host: test-review-app-678.apps.example.com"),
        "{text}"
    );
    assert!(text.contains("namespace: builds"), "{text}");
    assert!(text.contains("--destination="), "kaniko builder:\n{text}");
}

#[test]
fn plan_shows_the_registry_cache_flags_of_either_builder() {
    let dir = tempdir();
    let config = dir.join("cache.yaml");
    let plan = |env: &[(&str, &str)]| {
        let output = Command::new(env!("CARGO_BIN_EXE_review-app-operator"))
            .args([
                "plan",
                "-f",
                "dev/samples/reviewapp.yaml",
                "--config",
                config.to_str().unwrap(),
            ])
            .envs(env.iter().copied())
            .current_dir(root())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout(&output)
    };
    std::fs::write(
        &config,
        "registry: registry.example/review\nbuild:\n  cache:\n    enabled: true\n    importFrom: [registry.example/review/main:buildcache]\n",
    )
    .unwrap();
    let text = plan(&[]);
    for flag in [
        "type=registry,ref=registry.example/review/test-review-app-678:buildcache,mode=max,ignore-error=true",
        "type=registry,ref=registry.example/review/main:buildcache",
    ] {
        assert!(text.contains(flag), "{flag}:\n{text}");
    }
    std::fs::write(
        &config,
        "registry: registry.example/review\nbuilder:\n  kind: kaniko\n",
    )
    .unwrap();
    let text = plan(&[("REVIEWAPP_BUILD_CACHE_ENABLED", "true")]);
    assert!(
        text.contains("--cache-repo=registry.example/review/test-review-app-678/cache"),
        "{text}"
    );
    let text = plan(&[]);
    assert!(!text.contains("cache"), "disabled by default:\n{text}");
}

#[test]
fn a_bad_cache_setting_stops_the_start_naming_the_key() {
    let output = Command::new(env!("CARGO_BIN_EXE_review-app-operator"))
        .args(["config"])
        .env("REVIEWAPP_BUILD_CACHE_ENABLED", "true")
        .env_remove("REVIEWAPP_CONFIG")
        .current_dir(root())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("build.cache.enabled"), "{stderr}");
}

#[test]
fn a_bad_config_file_is_an_error_naming_the_key() {
    let dir = tempdir();
    let config = dir.join("config.yaml");
    std::fs::write(&config, "domian: typo.example\n").unwrap();
    let output = run(&["config", "--config", config.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("domian"));
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "rao-cli-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn impossible_leader_election_timings_are_refused_naming_the_flags() {
    let output = run(&[
        "run",
        "--leader-election",
        "--lease-duration-seconds",
        "15",
        "--renew-deadline-seconds",
        "15",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "--renew-deadline-seconds (15) must be shorter than --lease-duration-seconds (15)"
        ),
        "{stderr}"
    );

    let output = Command::new(env!("CARGO_BIN_EXE_review-app-operator"))
        .args(["run", "--leader-election"])
        .env("REVIEWAPP_RETRY_PERIOD_SECONDS", "10")
        .env_remove("REVIEWAPP_CONFIG")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "--retry-period-seconds (10) must be shorter than --renew-deadline-seconds (10)"
        ),
        "{stderr}"
    );
}

#[test]
fn an_activator_port_in_use_is_a_startup_error_naming_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    // A cluster that is never reached: the ports are bound before anything is listed.
    let kubeconfig = tempdir().join("activator-kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n\
         clusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n\
         contexts: [{name: c, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {}}]\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_review-app-operator"))
        .args(["run", "--listen", "127.0.0.1:0"])
        .arg(format!("--activator-listen=127.0.0.1:{port}"))
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("REVIEWAPP_CONFIG")
        .env_remove("REVIEWAPP_ACTIVATOR_LISTEN")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("serving the activator on 127.0.0.1:{port}")),
        "{stderr}"
    );

    let output = run(&["run", "--activator-listen", "nowhere"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--activator-listen"));
    drop(taken);
}

/// `demo`, the README's first command: the sample goes through build, deploy, a new commit and
/// delete against the in-process emulator, and nothing is left behind.
#[cfg(feature = "demo")]
#[test]
fn demo_takes_the_sample_through_its_lifecycle_and_leaves_nothing() {
    let help = stdout(&run(&["--help"]));
    assert!(help.contains("demo"), "{help}");
    let output = run(&["demo"]);
    let text = stdout(&output);
    assert!(
        output.status.success(),
        "{}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "create Job review-build/test-review-app-678--c8c9aa334a",
        "create Job review-build/test-review-app-678--5ce6e4a15e",
        "building → deployed",
        "builds started:   2",
        "left behind:      0 objects",
    ] {
        assert!(
            text.contains(expected),
            "demo output lacks {expected:?}:\n{text}"
        );
    }
}

/// Built without the `demo` feature (the container image), `demo` is not in `--help` and says
/// how to get it.
#[cfg(not(feature = "demo"))]
#[test]
fn without_the_demo_feature_demo_says_how_to_get_it() {
    let help = stdout(&run(&["--help"]));
    assert!(!help.contains("demo"), "{help}");
    let output = run(&["demo"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("built without the `demo` feature")
            && stderr.contains("cargo run -p review-app-operator -- demo"),
        "{stderr}"
    );
}
