//! The build Job's download of a private repository: the token comes from a Secret in the build
//! namespace, reaches curl through the environment only, and only for an `https` tarball URL on
//! a configured host.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use k8s_openapi::api::core::v1::Container;
use reviewapp_resources::build_job::{SOURCE_TOKEN_ENV, build_job};

fn fetch(tarball_url: &str, secret: &str) -> Container {
    let mut app = common::app();
    app.spec.tarball_url = Some(tarball_url.into());
    let mut config = common::config();
    config.builder.source_token_secret_name = secret.into();
    let spec = common::spec(&app, &config);
    let job = build_job(&app, &spec, &config, "job", common::SHA, common::IMAGE);
    let pod = job.spec.unwrap().template.spec.unwrap();
    pod.init_containers
        .unwrap()
        .into_iter()
        .find(|c| c.name == "fetch")
        .unwrap()
}

const PRIVATE: &str = "https://api.github.com/repos/revelrylabs/private/tarball/c8c9aa334a76677aa0be4ec0ebb08484367f952d";

#[test]
fn a_configured_token_authenticates_the_download_from_the_environment() {
    let fetch = fetch(PRIVATE, "github-source");
    let args = fetch.args.clone().unwrap();
    let at = args
        .iter()
        .position(|a| a == "--variable")
        .expect("imports the variable");
    assert_eq!(args[at + 1], "%SOURCE_TOKEN");
    assert_eq!(args[at + 2], "--expand-header");
    assert_eq!(args[at + 3], "Authorization: Bearer {{SOURCE_TOKEN}}");
    assert_eq!(args.last().unwrap(), "$(SOURCE_URL)", "the URL stays last");
    assert!(
        !args
            .iter()
            .any(|a| a.contains(&format!("$({SOURCE_TOKEN_ENV})"))),
        "Kubernetes never expands the token into an argument: {args:?}"
    );
    let env = fetch.env.unwrap();
    let token = env.iter().find(|e| e.name == SOURCE_TOKEN_ENV).unwrap();
    assert_eq!(token.value, None, "the Job holds no token");
    let key = token
        .value_from
        .as_ref()
        .and_then(|v| v.secret_key_ref.as_ref())
        .unwrap();
    assert_eq!(
        (key.name.as_str(), key.key.as_str()),
        ("github-source", "token")
    );
}

#[test]
fn no_token_without_a_secret_for_other_hosts_or_over_http() {
    let plain = fetch(PRIVATE, "");
    for container in [
        plain.clone(),
        fetch("https://evil.example/repos/x/tarball/y", "github-source"),
        fetch(&PRIVATE.replace("https://", "http://"), "github-source"),
    ] {
        assert!(
            !container
                .args
                .unwrap()
                .iter()
                .any(|a| a.contains("SOURCE_TOKEN"))
        );
        assert!(
            !container
                .env
                .unwrap()
                .iter()
                .any(|e| e.name == SOURCE_TOKEN_ENV)
        );
    }
    assert_eq!(
        plain.args.unwrap(),
        [
            "--fail",
            "--silent",
            "--show-error",
            "--location",
            "--retry",
            "3",
            "--output",
            "/workspace/source.tar.gz",
            "$(SOURCE_URL)"
        ],
        "without the setting the download is as before"
    );
}
