//! A scripted fake API server behind `tower_test::mock`, fixtures, and plans from the real
//! pipeline (`reviewapp_state::transition` + `reviewapp_resources::render`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::client::Body;
use kube::runtime::events::Reporter;
use reviewapp_api::{FINALIZER, OperatorConfig, ReviewApp};
use reviewapp_effects::{ApiObserver, Effects, LiveIndex, Lookup, RetryPolicy, SecretLookup};
use reviewapp_resources::{ChildKind, ChildRef, Plan, render};
use reviewapp_state::{AppEvent, Observed, Transition, transition};
use serde_json::{Value, json};

/// The fixture's namespace.
pub const NS: &str = "test-review-app";
/// The build Job of the fixture's commit.
pub const JOB: &str = "test-review-app-678--c8c9aa334a";
/// The app's child name.
pub const APP: &str = "test-review-app-678";
/// The TLS source Secret's `tls.crt`, decoded.
pub const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUcertificatebodycertificatebody\n-----END CERTIFICATE-----\n";
/// The TLS source Secret's `tls.key`, decoded.
pub const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49privatekeybodyprivate\n-----END PRIVATE KEY-----\n";

/// The original operator's sample `ReviewApp`, with a uid.
pub fn app() -> ReviewApp {
    serde_yaml::from_str(include_str!("../fixtures/reviewapp.yaml")).expect("fixture parses")
}

/// The fixture being deleted: finalizer set, `deletionTimestamp` set, a build recorded.
pub fn deleted_app() -> ReviewApp {
    let mut app = app();
    app.metadata.finalizers = Some(vec![FINALIZER.to_string()]);
    app.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()));
    app.status = Some(reviewapp_api::ReviewAppStatus {
        build_job_name: Some(JOB.into()),
        build_commit: Some("c8c9aa334a76677aa0be4ec0ebb08484367f952d".into()),
        ..Default::default()
    });
    app
}

/// The original operator's dev configuration with TLS from `default/star-review-local-tls`.
pub fn config() -> OperatorConfig {
    let mut config = OperatorConfig {
        domain: "review.local".into(),
        registry: "grossvogel".into(),
        ..OperatorConfig::default()
    };
    config.tls.secret_name = "star-review-local-tls".into();
    config.tls.secret_namespace = "default".into();
    config
}

/// A fixed clock.
pub fn now() -> Timestamp {
    Timestamp::from_second(1_700_000_000).unwrap()
}

/// The transition and plan the real pipeline makes for `event` on `app`.
pub fn pipeline(app: &ReviewApp, event: AppEvent) -> (Transition, Plan) {
    let config = config();
    let t = transition(app, event, &Observed::default(), &config, now());
    let plan = render(app, t.spec.as_ref(), &config, &t.intents).unwrap();
    (t, plan)
}

/// One request the fake API server received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// `GET`, `POST`, ...
    pub method: String,
    /// URI path.
    pub path: String,
    /// URI query (without `?`).
    pub query: String,
    /// `content-type` header.
    pub content_type: String,
    /// JSON body (`Null` when empty).
    pub body: Value,
    /// resourceVersion of the object the server answered with, if any.
    pub returned_rv: Option<String>,
}

impl Recorded {
    /// `METHOD path[?query]`.
    pub fn line(&self) -> String {
        if self.query.is_empty() {
            format!("{} {}", self.method, self.path)
        } else {
            format!("{} {}?{}", self.method, self.path, self.query)
        }
    }
}

/// A scripted answer.
pub enum Reply {
    /// This status and JSON body.
    Json(u16, Value),
    /// This status and a plain-text body (say, `404 page not found` for a kind that is not
    /// installed).
    Text(u16, &'static str),
    /// No response: the connection failed.
    Transport,
}

/// Decides the answer to a request; `None` lets the fake API answer as a healthy server would.
pub type Script = Box<dyn FnMut(&Recorded) -> Option<Reply> + Send>;

/// A fake API server: answers through a script, records every request.
pub struct MockApi {
    /// A client talking to it.
    pub client: Client,
    log: Arc<Mutex<Vec<Recorded>>>,
}

/// Query of a server-side apply exactly as kube 5 sends it (its URL builder starts from
/// `name?`, so the query begins with an empty pair; the API server ignores it).
pub const APPLY_QUERY: &str = "&force=true&fieldManager=review-app-operator";
/// Query of a JSON patch or a create with the operator's field manager, as kube 5 sends it.
pub const MANAGER_QUERY: &str = "&fieldManager=review-app-operator";
/// Content type kube sends server-side apply with.
pub const APPLY: &str = "application/apply-patch+yaml";
/// Content type of a JSON patch.
pub const JSON_PATCH: &str = "application/json-patch+json";
/// Content type of a merge patch.
pub const MERGE_PATCH: &str = "application/merge-patch+json";
/// Content type of a POST/DELETE body.
pub const JSON: &str = "application/json";

impl MockApi {
    /// A fake API answering every request as a healthy server.
    pub fn healthy() -> Self {
        Self::start(|_| None)
    }

    /// A fake API answering through `script` (falling back to a healthy server's answer).
    pub fn start(script: impl FnMut(&Recorded) -> Option<Reply> + Send + 'static) -> Self {
        let mut script: Script = Box::new(script);
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let log = Arc::new(Mutex::new(Vec::new()));
        let task_log = log.clone();
        tokio::spawn(async move {
            let mut rv = 100u64;
            while let Some((request, send)) = handle.next_request().await {
                let (parts, body) = request.into_parts();
                let bytes = body.collect_bytes().await.unwrap();
                let mut recorded = Recorded {
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_string(),
                    query: parts.uri.query().unwrap_or_default().to_string(),
                    content_type: parts
                        .headers
                        .get(http::header::CONTENT_TYPE)
                        .map(|v| v.to_str().unwrap().to_string())
                        .unwrap_or_default(),
                    body: if bytes.is_empty() {
                        Value::Null
                    } else {
                        serde_json::from_slice(&bytes).unwrap()
                    },
                    returned_rv: None,
                };
                let reply = script(&recorded).unwrap_or_else(|| healthy(&recorded, &mut rv));
                match reply {
                    Reply::Json(code, value) => {
                        recorded.returned_rv = value
                            .pointer("/metadata/resourceVersion")
                            .and_then(Value::as_str)
                            .map(str::to_string);
                        task_log.lock().unwrap().push(recorded);
                        let response = Response::builder()
                            .status(code)
                            .header(http::header::CONTENT_TYPE, JSON)
                            .body(Body::from(serde_json::to_vec(&value).unwrap()))
                            .unwrap();
                        send.send_response(response);
                    }
                    Reply::Text(code, text) => {
                        task_log.lock().unwrap().push(recorded);
                        let response = Response::builder()
                            .status(code)
                            .header(http::header::CONTENT_TYPE, "text/plain")
                            .body(Body::from(text.as_bytes().to_vec()))
                            .unwrap();
                        send.send_response(response);
                    }
                    Reply::Transport => {
                        task_log.lock().unwrap().push(recorded);
                        send.send_error(std::io::Error::new(
                            std::io::ErrorKind::ConnectionReset,
                            "connection reset by peer",
                        ));
                    }
                }
            }
        });
        Self {
            client: Client::new(service, "default"),
            log,
        }
    }

    /// Every request received since the last call, in order.
    pub fn take(&self) -> Vec<Recorded> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }

    /// `METHOD path?query` of [`MockApi::take`].
    pub fn lines(&self) -> Vec<String> {
        self.take().iter().map(Recorded::line).collect()
    }
}

/// How a healthy API server answers `request`: applies and creates echo the object with a new
/// resourceVersion, the TLS source Secret exists, deletes succeed, other GETs are 404.
pub fn healthy(request: &Recorded, rv: &mut u64) -> Reply {
    match (request.method.as_str(), request.content_type.as_str()) {
        ("PATCH", APPLY) | ("POST", _) => {
            *rv += 1;
            let code = if request.method == "POST" { 201 } else { 200 };
            Reply::Json(code, with_rv(&request.body, &rv.to_string()))
        }
        ("PATCH", JSON_PATCH) => {
            *rv += 1;
            let name = request.path.rsplit('/').next().unwrap();
            Reply::Json(
                200,
                json!({
                    "apiVersion": "reviewtron.k8s.revelry.co/v1",
                    "kind": "ReviewApp",
                    "metadata": {"name": name, "resourceVersion": rv.to_string()},
                }),
            )
        }
        ("PATCH", _) => Reply::Json(200, request.body.clone()),
        ("GET", _)
            if request.path == "/api/v1/namespaces/default/secrets/star-review-local-tls" =>
        {
            Reply::Json(200, tls_source())
        }
        ("DELETE", _) => Reply::Json(
            200,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200}),
        ),
        _ => Reply::Json(404, status(404, "NotFound", "not found")),
    }
}

/// `object` with `metadata.resourceVersion` set to `rv`.
pub fn with_rv(object: &Value, rv: &str) -> Value {
    let mut object = object.clone();
    object["metadata"]["resourceVersion"] = json!(rv);
    object
}

/// A `Status` error body.
pub fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}

/// Base64 of `bytes` (standard alphabet, padded).
pub fn base64(bytes: &[u8]) -> String {
    serde_json::to_value(k8s_openapi::ByteString(bytes.to_vec()))
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

/// The wildcard TLS Secret the operator copies.
pub fn tls_source() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "star-review-local-tls", "namespace": "default", "resourceVersion": "42"},
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": base64(CERT.as_bytes()), "tls.key": base64(KEY.as_bytes())},
    })
}

/// A live index backed by a map, with a default for everything else.
#[derive(Clone, Debug)]
pub struct MapIndex {
    /// Known objects.
    pub map: HashMap<ChildRef, Lookup>,
    /// Answer for anything not in `map`.
    pub default: Lookup,
    /// Answer for every source Secret.
    pub secret: SecretLookup,
    /// Finalizers of build Jobs (unknown when not listed).
    pub finalizers: HashMap<ChildRef, Vec<String>>,
}

impl MapIndex {
    /// Every lookup answers `default`.
    pub fn all(default: Lookup) -> Self {
        Self {
            map: HashMap::new(),
            default,
            secret: SecretLookup::Unknown,
            finalizers: HashMap::new(),
        }
    }

    /// The objects the fake API returned for `requests` (applies and creates), present with
    /// the resourceVersions it returned; everything else `default`.
    pub fn from_responses(requests: &[Recorded], default: Lookup) -> Self {
        let mut index = Self::all(default);
        for r in requests {
            let (Some(rv), Some(child)) = (&r.returned_rv, child_of(&r.body)) else {
                continue;
            };
            if r.method == "POST" || r.content_type == APPLY {
                index.set(child, present(rv));
            }
        }
        index
    }

    /// Sets what is known about `child`.
    pub fn set(&mut self, child: ChildRef, lookup: Lookup) -> &mut Self {
        self.map.insert(child, lookup);
        self
    }
}

impl LiveIndex for MapIndex {
    fn lookup(&self, child: &ChildRef) -> Lookup {
        self.map.get(child).cloned().unwrap_or(self.default.clone())
    }

    fn source_secret(&self, _namespace: &str, _name: &str) -> SecretLookup {
        self.secret.clone()
    }

    fn job_finalizers(&self, job: &ChildRef) -> Option<Vec<String>> {
        self.finalizers.get(job).cloned()
    }
}

/// `Present` at `rv`.
pub fn present(rv: &str) -> Lookup {
    Lookup::Present {
        resource_version: rv.to_string(),
    }
}

/// The child an object body describes (by `apiVersion`, `kind`, namespace and name).
pub fn child_of(body: &Value) -> Option<ChildRef> {
    let api_version = body.get("apiVersion")?.as_str()?;
    let kind = body.get("kind")?.as_str()?;
    let kind = ChildKind::ALL
        .into_iter()
        .find(|k| k.kind() == kind && k.api_version() == api_version)?;
    Some(ChildRef::new(
        kind,
        body.pointer("/metadata/namespace")?.as_str()?,
        body.pointer("/metadata/name")?.as_str()?,
    ))
}

/// Every `(verb, kind, code)` the effects reported.
#[derive(Debug, Default)]
pub struct Calls(pub Mutex<Vec<(String, String, Option<u16>)>>);

impl ApiObserver for Calls {
    fn request(&self, verb: &'static str, kind: &str, code: Option<u16>) {
        self.0
            .lock()
            .unwrap()
            .push((verb.to_string(), kind.to_string(), code));
    }
}

impl Calls {
    /// The calls so far.
    pub fn all(&self) -> Vec<(String, String, Option<u16>)> {
        self.0.lock().unwrap().clone()
    }
}

/// Effects over `api` with zero-delay retries (5 attempts) and an observer.
pub fn new_effects(api: &MockApi) -> (Effects, Arc<Calls>) {
    let calls = Arc::new(Calls::default());
    let effects = Effects::new(
        api.client.clone(),
        Reporter {
            controller: "review-app-operator".into(),
            instance: Some("test-pod".into()),
        },
        calls.clone(),
    )
    .with_retry(RetryPolicy::immediate(5));
    (effects, calls)
}

/// Path of `plural`/`name` in the app's namespace under `prefix` (`/api/v1` or `/apis/g/v`).
pub fn child_path(prefix: &str, plural: &str, name: &str) -> String {
    format!("{prefix}/namespaces/{NS}/{plural}/{name}")
}

/// Waits briefly and asserts the fake API received nothing more.
pub async fn assert_quiet(api: &MockApi) {
    tokio::time::sleep(Duration::from_millis(20)).await;
    let rest = api.lines();
    assert!(rest.is_empty(), "unexpected requests: {rest:#?}");
}
