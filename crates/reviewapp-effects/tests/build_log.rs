//! A failed build's log tail through the effects layer, against a server that does not honour
//! `limitBytes`: the operator still reads at most `LOG_READ_BYTES`, redacts the push Secret's
//! values and names the failing container.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use reviewapp_effects::LOG_READ_BYTES;
use reviewapp_state::FailureLog;
use serde_json::json;

const JOB: &str = "test-review-app-678--c8c9aa334a";
const PASSWORD: &str = "s3cret-registry-password";

fn failed_pod() -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "PodList", "metadata": {},
        "items": [{
            "metadata": {"name": format!("{JOB}-abcde"), "creationTimestamp": "2026-01-01T00:00:00Z"},
            "status": {
                "phase": "Failed",
                "initContainerStatuses": [
                    {"name": "fetch", "image": "c", "imageID": "", "ready": false, "restartCount": 0,
                     "state": {"terminated": {"exitCode": 0}}},
                    {"name": "unpack", "image": "b", "imageID": "", "ready": false, "restartCount": 0,
                     "state": {"terminated": {"exitCode": 0}}},
                ],
                "containerStatuses": [
                    {"name": "build", "image": "k", "imageID": "", "ready": false, "restartCount": 0,
                     "state": {"terminated": {"exitCode": 1}}},
                ],
            },
        }],
    })
}

#[tokio::test]
async fn a_huge_log_is_read_up_to_the_cap_and_redacted() {
    // 8 MiB of log, whatever limitBytes said, with the password in the bounded part.
    let mut huge = format!("pushing with {PASSWORD}\n");
    let mut step = 0;
    while huge.len() < 8 * 1024 * 1024 {
        step += 1;
        huge.push_str(&format!("\u{1b}[32mstep {step}\u{1b}[0m ok\n"));
    }
    let huge: &'static str = Box::leak(huge.into_boxed_str());
    let config = json!({"auths": {"registry.example": {"password": PASSWORD}}}).to_string();
    let api = MockApi::start(move |r| match (r.method.as_str(), r.path.as_str()) {
        ("GET", "/api/v1/namespaces/review-build/pods") => Some(Reply::Json(200, failed_pod())),
        ("GET", "/api/v1/namespaces/review-build/secrets/registry-push") => Some(Reply::Json(
            200,
            json!({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": "registry-push", "namespace": "review-build"},
                   "data": {"config.json": base64(config.as_bytes())}}),
        )),
        ("GET", path) if path.ends_with("/log") => Some(Reply::Text(200, huge)),
        _ => None,
    });
    let (effects, _) = new_effects(&api);
    let log = effects
        .failed_build_log(
            "review-build",
            JOB,
            &["registry-push".into(), String::new()],
        )
        .await;
    let FailureLog::Tail {
        container,
        exit_code,
        text,
    } = log
    else {
        panic!("{log:?}")
    };
    assert_eq!((container.as_str(), exit_code), ("build", 1));
    assert!(text.len() <= 2048 && text.ends_with(" ok"), "{text}");
    // The last line kept is one of the first 16 KiB: nothing past the cap was read.
    let last: usize = text
        .lines()
        .last()
        .and_then(|l| l.strip_prefix("step "))
        .and_then(|l| l.strip_suffix(" ok"))
        .unwrap()
        .parse()
        .unwrap();
    assert!(last * 20 <= LOG_READ_BYTES, "line {last} of {step}");
    assert!(!text.contains('\u{1b}'));
    let lines = api.lines();
    let log_read = lines.iter().find(|l| l.contains("/log")).unwrap();
    assert!(
        log_read.contains("container=build")
            && log_read.contains("tailLines=20")
            && log_read.contains(&format!("limitBytes={LOG_READ_BYTES}")),
        "{log_read}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("labelSelector=batch.kubernetes.io%2Fjob-name%3D")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn a_secret_value_in_the_tail_is_redacted() {
    let config = json!({"auths": {"registry.example": {"password": PASSWORD}}}).to_string();
    let api = MockApi::start(move |r| match (r.method.as_str(), r.path.as_str()) {
        ("GET", "/api/v1/namespaces/review-build/pods") => Some(Reply::Json(200, failed_pod())),
        ("GET", "/api/v1/namespaces/review-build/secrets/registry-push") => Some(Reply::Json(
            200,
            json!({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": "registry-push", "namespace": "review-build"},
                   "data": {"config.json": base64(config.as_bytes())}}),
        )),
        ("GET", path) if path.ends_with("/log") => Some(Reply::Text(
            200,
            "login as bot with s3cret-registry-password\nerror: denied\n",
        )),
        _ => None,
    });
    let (effects, _) = new_effects(&api);
    let log = effects
        .failed_build_log("review-build", JOB, &["registry-push".into()])
        .await;
    assert_eq!(
        log,
        FailureLog::Tail {
            container: "build".into(),
            exit_code: 1,
            text: "login as bot with [redacted]\nerror: denied".into(),
        }
    );
}

#[tokio::test]
async fn an_unreadable_secret_shows_no_log() {
    let api = MockApi::start(|r| match (r.method.as_str(), r.path.as_str()) {
        ("GET", "/api/v1/namespaces/review-build/pods") => Some(Reply::Json(200, failed_pod())),
        ("GET", "/api/v1/namespaces/review-build/secrets/registry-push") => {
            Some(Reply::Json(403, status(403, "Forbidden", "no")))
        }
        _ => None,
    });
    let (effects, _) = new_effects(&api);
    let log = effects
        .failed_build_log("review-build", JOB, &["registry-push".into()])
        .await;
    assert_eq!(
        log,
        FailureLog::Unavailable {
            why: "reading Secret registry-push (to redact its values) failed: 403 Forbidden".into()
        }
    );
    assert!(
        !api.lines().iter().any(|l| l.contains("/log")),
        "no log read"
    );
}
