//! A small fake Kubernetes API behind `tower-test`: an in-memory object store that answers the
//! requests the effects layer sends (server-side apply, JSON patch, create, delete, get, status,
//! events), logs every request, and serves as the `LiveIndex`. Deleting an object with
//! finalizers marks it (`deletionTimestamp`) and a patch that empties them removes it, as the
//! API server does. Enough to pin a handler's exact requests; the emulator with watches is in
//! `reviewapp-testkit`.
#![allow(
    dead_code,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::{Request, Response};
use kube::client::Body;
use reviewapp_effects::{LiveIndex, Lookup};
use reviewapp_resources::ChildRef;
use serde_json::{Value, json};

/// One request as sent.
#[derive(Clone, Debug)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub body: Value,
}

impl Logged {
    /// `METHOD path (content type short name)`.
    pub fn line(&self) -> String {
        let ct = match self.content_type.as_str() {
            "application/apply-patch+yaml" => " apply",
            "application/json-patch+json" => " json-patch",
            "application/merge-patch+json" => " merge-patch",
            _ => "",
        };
        format!("{} {}{ct}", self.method, self.path)
    }

    pub fn is_write(&self) -> bool {
        self.method != "GET"
    }
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Value>,
    rv: u64,
    log: Vec<Logged>,
}

/// The fake API server's state, shared with the test.
#[derive(Clone, Default)]
pub struct FakeApi(Arc<Mutex<State>>);

impl FakeApi {
    /// A client talking to a new fake.
    pub fn client() -> (kube::Client, FakeApi) {
        let fake = FakeApi::default();
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let server = fake.clone();
        tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let response = server.respond(request).await;
                send.send_response(response);
            }
        });
        (kube::Client::new(service, "default"), fake)
    }

    /// Puts an object at `path` (its resourceVersion is assigned).
    pub fn put(&self, path: &str, mut object: Value) -> Value {
        let mut state = self.0.lock().unwrap();
        state.rv += 1;
        object["metadata"]["resourceVersion"] = json!(state.rv.to_string());
        state.objects.insert(path.to_string(), object.clone());
        object
    }

    pub fn get(&self, path: &str) -> Option<Value> {
        self.0.lock().unwrap().objects.get(path).cloned()
    }

    pub fn remove(&self, path: &str) -> Option<Value> {
        self.0.lock().unwrap().objects.remove(path)
    }

    /// Takes the request log.
    pub fn take_log(&self) -> Vec<Logged> {
        std::mem::take(&mut self.0.lock().unwrap().log)
    }

    /// Takes the request log as `METHOD path kind` lines.
    pub fn take_lines(&self) -> Vec<String> {
        self.take_log().iter().map(Logged::line).collect()
    }

    /// Paths of every stored object.
    pub fn paths(&self) -> Vec<String> {
        self.0.lock().unwrap().objects.keys().cloned().collect()
    }

    #[allow(
        clippy::too_many_lines,
        reason = "the fake API server's routes, one arm each"
    )]
    async fn respond(&self, request: Request<Body>) -> Response<Body> {
        let (parts, body) = request.into_parts();
        let bytes = body.collect_bytes().await.unwrap_or_default();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let path = parts.uri.path().to_string();
        let content_type = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let method = parts.method.to_string();
        let mut state = self.0.lock().unwrap();
        state.log.push(Logged {
            method: method.clone(),
            path: path.clone(),
            query: parts.uri.query().unwrap_or_default().to_string(),
            content_type: content_type.clone(),
            body: body.clone(),
        });
        let (key, subresource) = match path.strip_suffix("/status") {
            Some(key) => (key.to_string(), true),
            None => (path.clone(), false),
        };
        match method.as_str() {
            "GET" => match state.objects.get(&key) {
                Some(obj) => reply(200, obj.clone()),
                None => status(404, "NotFound", &format!("{key} not found")),
            },
            "POST" => {
                let name = body["metadata"]["name"]
                    .as_str()
                    .unwrap_or("generated")
                    .to_string();
                let key = format!("{key}/{name}");
                if path.ends_with("/events") {
                    return reply(201, body);
                }
                if state.objects.contains_key(&key) {
                    return status(409, "AlreadyExists", &format!("{key} already exists"));
                }
                state.rv += 1;
                let mut obj = body;
                obj["metadata"]["resourceVersion"] = json!(state.rv.to_string());
                obj["metadata"]["uid"] = json!(format!("uid-{}", state.rv));
                state.objects.insert(key, obj.clone());
                reply(201, obj)
            }
            "DELETE" => match state.objects.get(&key).cloned() {
                Some(mut obj) if has_finalizers(&obj) => {
                    if obj["metadata"]["deletionTimestamp"].is_null() {
                        state.rv += 1;
                        obj["metadata"]["deletionTimestamp"] = json!("2026-11-24T06:00:00Z");
                        obj["metadata"]["resourceVersion"] = json!(state.rv.to_string());
                        state.objects.insert(key, obj.clone());
                    }
                    reply(200, obj)
                }
                Some(_) => {
                    state.objects.remove(&key);
                    reply(
                        200,
                        json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
                    )
                }
                None => status(404, "NotFound", &format!("{key} not found")),
            },
            "PATCH" => {
                let existing = state.objects.get(&key).cloned();
                let updated = match (content_type.as_str(), existing, subresource) {
                    ("application/apply-patch+yaml", Some(mut obj), true) => {
                        obj["status"] = body["status"].clone();
                        obj
                    }
                    ("application/apply-patch+yaml", existing, false) => {
                        let mut obj = body;
                        if let Some(existing) = existing {
                            obj["metadata"]["uid"] = existing["metadata"]["uid"].clone();
                        }
                        obj
                    }
                    ("application/json-patch+json", Some(obj), false) => {
                        match json_patch(obj, &body) {
                            Ok(obj) => obj,
                            Err(why) => return status(422, "Invalid", &why),
                        }
                    }
                    (_, None, _) => return status(404, "NotFound", &format!("{key} not found")),
                    (other, _, _) => return status(415, "UnsupportedMediaType", other),
                };
                state.rv += 1;
                let mut updated = updated;
                updated["metadata"]["resourceVersion"] = json!(state.rv.to_string());
                if !updated["metadata"]["deletionTimestamp"].is_null() && !has_finalizers(&updated)
                {
                    state.objects.remove(&key); // the last finalizer went
                } else {
                    state.objects.insert(key, updated.clone());
                }
                reply(200, updated)
            }
            _ => status(405, "MethodNotAllowed", &method),
        }
    }
}

fn has_finalizers(object: &Value) -> bool {
    object["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty())
}

/// The URL path of a child.
pub fn child_path(child: &ChildRef) -> String {
    let prefix = match child.kind.group() {
        "" => format!("/api/{}", child.kind.version()),
        group => format!("/apis/{group}/{}", child.kind.version()),
    };
    format!(
        "{prefix}/namespaces/{}/{}/{}",
        child.namespace,
        child.kind.plural(),
        child.name
    )
}

impl LiveIndex for FakeApi {
    fn lookup(&self, child: &ChildRef) -> Lookup {
        match self.get(&child_path(child)) {
            Some(obj) => Lookup::Present {
                resource_version: obj["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            },
            None => Lookup::Absent,
        }
    }
}

fn reply(code: u16, body: Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap()
}

fn status(code: u16, reason: &str, message: &str) -> Response<Body> {
    reply(
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "reason": reason, "message": message, "code": code}),
    )
}

/// `test`, `add` and `remove` JSON patch operations (what the finalizer patches use).
fn json_patch(mut obj: Value, ops: &Value) -> Result<Value, String> {
    for op in ops.as_array().ok_or("patch is not a list")? {
        let path = op["path"].as_str().ok_or("op without path")?;
        match op["op"].as_str() {
            Some("test") => {
                // As the API server does: a missing path tests equal to null.
                if obj.pointer(path).unwrap_or(&Value::Null) != &op["value"] {
                    return Err(format!("test of {path} failed"));
                }
            }
            Some("add") => {
                let (parent, last) = path.rsplit_once('/').ok_or("bad path")?;
                let target = obj.pointer_mut(parent).ok_or("no parent")?;
                match (target, last) {
                    (Value::Array(items), "-") => items.push(op["value"].clone()),
                    (Value::Array(items), index) => {
                        items.insert(index.parse().map_err(|_| "bad index")?, op["value"].clone())
                    }
                    (Value::Object(map), key) => {
                        map.insert(key.to_string(), op["value"].clone());
                    }
                    _ => return Err(format!("cannot add at {path}")),
                }
            }
            Some("remove") => {
                let (parent, last) = path.rsplit_once('/').ok_or("bad path")?;
                match obj.pointer_mut(parent).ok_or("no parent")? {
                    Value::Array(items) => {
                        let index: usize = last.parse().map_err(|_| "bad index")?;
                        if index >= items.len() {
                            return Err(format!("no {path}"));
                        }
                        items.remove(index);
                    }
                    Value::Object(map) => {
                        map.remove(last).ok_or(format!("no {path}"))?;
                    }
                    _ => return Err(format!("cannot remove {path}")),
                }
            }
            other => return Err(format!("unsupported op {other:?}")),
        }
    }
    Ok(obj)
}
