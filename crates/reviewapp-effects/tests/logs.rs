//! Secret values never reach a log line or an error message. (Alone in its test binary: a
//! thread-local tracing subscriber is unreliable while other tests run on other threads.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use reviewapp_effects::{Lookup, NoIndex};
use reviewapp_resources::{Action, Plan};
use reviewapp_state::AppEvent;
use serde_json::json;

/// The ADD plan's copy of the TLS Secret.
fn tls_plan() -> Plan {
    let (_, plan) = pipeline(&app(), AppEvent::Add);
    Plan {
        actions: plan
            .actions
            .into_iter()
            .filter(|a| matches!(a, Action::CopySecret { .. }))
            .collect(),
    }
}

/// A buffer the test's tracing subscriber writes to.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Every string that would reveal the TLS source's data: encoded, decoded, and each PEM line.
fn tls_secrets() -> Vec<String> {
    let mut out = Vec::new();
    for text in [CERT, KEY] {
        out.push(base64(text.as_bytes()));
        out.extend(
            text.lines()
                .filter(|l| !l.starts_with("-----"))
                .map(str::to_string),
        );
    }
    out
}

/// The whole ADD (and a failing TLS apply whose server message quotes the data) at TRACE
/// level: no Secret value in any log line or error message.
#[tokio::test]
async fn secret_values_never_reach_logs_or_errors() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let api = MockApi::healthy();
    let (effects, _) = new_effects(&api);
    let app = app();
    let (_, plan) = pipeline(&app, AppEvent::Add);
    effects
        .execute(&app, &plan, &MapIndex::all(Lookup::Absent))
        .await
        .unwrap();
    assert!(
        api.take()
            .iter()
            .any(|r| r.body["data"]["tls.key"] == json!(base64(KEY.as_bytes()))),
        "the copy carries the data"
    );
    let text = logs.text();
    assert!(text.contains("ingress-tls"), "debug lines were captured");
    for secret in tls_secrets() {
        assert!(!text.contains(&secret), "{secret} logged:\n{text}");
    }

    // A server that quotes the data in its error message (the attempts are retried).
    let quoted = format!(
        "Secret is invalid: data[tls.key]: {} / {}",
        base64(KEY.as_bytes()),
        KEY.lines().nth(1).unwrap()
    );
    let attempts = Arc::new(AtomicU32::new(0));
    let counter = attempts.clone();
    let api = MockApi::start(move |r| {
        (r.content_type == APPLY).then(|| {
            counter.fetch_add(1, Ordering::SeqCst);
            Reply::Json(422, status(422, "Invalid", &quoted))
        })
    });
    let (effects, _) = new_effects(&api);
    let err = effects
        .execute(&app, &tls_plan(), &NoIndex)
        .await
        .unwrap_err();
    assert_eq!(attempts.load(Ordering::SeqCst), 1, "422 is not retried");
    let message = err.to_string();
    assert!(
        message.starts_with(&format!(
            "server-side apply of Secret {NS}/{APP}--ingress-tls failed: 422 Unprocessable Entity: Secret is invalid: data[tls.key]: <redacted>"
        )),
        "{message}"
    );
    for secret in tls_secrets() {
        assert!(!message.contains(&secret), "{secret} in {message}");
        assert!(!format!("{err:?}").contains(&secret), "{secret} in {err:?}");
    }
    // (kube itself logs the server's error Status at debug level; the effects' own lines
    // never contain it.)
    let ours: String = logs
        .text()
        .lines()
        .filter(|l| l.contains("reviewapp_effects"))
        .collect();
    for secret in tls_secrets() {
        assert!(!ours.contains(&secret), "{secret} logged by the effects");
    }
}
