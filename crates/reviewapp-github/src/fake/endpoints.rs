//! The fake's HTTP side: authentication, injected rate limits, and one handler per endpoint.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use percent_encoding::percent_decode_str;
use serde_json::{Value, json};

use super::{Fake, FakeDeployment, FakeStatus, World, key};

fn answer(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

fn not_found() -> Response {
    answer(
        StatusCode::NOT_FOUND,
        json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}),
    )
}

/// Answers one request: logged, then an injected rate limit, then authentication, then the
/// endpoint.
pub(super) async fn serve(State(fake): State<Fake>, request: Request) -> Response {
    let method = request.method().clone();
    let uri = request.uri().clone();
    let headers = request.headers().clone();
    let body = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap_or_else(|_| Bytes::new());
    let line = format!(
        "{method} {}",
        uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    );
    let query: BTreeMap<String, String> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), decode(v)))
        .collect();
    let segments: Vec<String> = uri
        .path()
        .trim_matches('/')
        .split('/')
        .map(decode)
        .collect();
    let mut w = fake.0.lock().unwrap_or_else(|e| e.into_inner());
    w.requests.push(line.clone());
    if let Some(fault) = w
        .faults
        .iter_mut()
        .find(|f| f.remaining > 0 && line.contains(&f.path_contains))
    {
        fault.remaining -= 1;
        let mut response = answer(
            StatusCode::from_u16(fault.status).unwrap_or(StatusCode::TOO_MANY_REQUESTS),
            json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}),
        );
        if let Some(secs) = fault.retry_after
            && let Ok(value) = secs.to_string().parse()
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    if !authorized(&w, &headers, &segs) {
        return answer(
            StatusCode::UNAUTHORIZED,
            json!({"message": "Bad credentials"}),
        );
    }
    if segs.first() == Some(&"repos") && segs.len() > 2 && w.hidden.contains(&key(segs[1], segs[2]))
    {
        return not_found();
    }
    route(&mut w, &method, &segs, &query, &body)
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

fn authorized(w: &World, headers: &HeaderMap, segs: &[&str]) -> bool {
    let Some(bearer) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("token "))
        })
    else {
        return false;
    };
    let app_endpoint = segs.first() == Some(&"app") || segs.last() == Some(&"installation");
    if app_endpoint {
        return bearer.split('.').count() == 3;
    }
    bearer == w.token || w.installation_tokens.iter().any(|t| t == bearer)
}

/// Answers one authorized request about a visible repository.
fn route(
    w: &mut World,
    method: &Method,
    segs: &[&str],
    query: &BTreeMap<String, String>,
    body: &[u8],
) -> Response {
    let json_body = || serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);
    match (method.as_str(), segs) {
        ("POST", ["app", "installations", id, "access_tokens"]) => installation_token(w, id),
        ("GET", ["repos", _, _, "installation"]) => {
            answer(StatusCode::OK, json!({"id": 7, "app_id": 1}))
        }
        ("GET", ["repos", owner, repo, "pulls", number]) => {
            let number: u64 = number.parse().unwrap_or_default();
            let found = w
                .repos
                .get(&key(owner, repo))
                .and_then(|r| r.pulls.get(&number).cloned());
            found.map_or_else(not_found, |pr| answer(StatusCode::OK, pr))
        }
        ("GET", ["repos", owner, repo, "contents", path @ ..]) => {
            let git_ref = query.get("ref").cloned().unwrap_or_default();
            let path = path.join("/");
            w.repos
                .get(&key(owner, repo))
                .and_then(|r| r.files.get(&(git_ref, path.clone())))
                .map_or_else(not_found, |content| file_content(&path, content))
        }
        ("GET", ["repos", _, _, "tarball", sha]) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/x-gzip")],
            format!("tarball of {sha}"),
        )
            .into_response(),
        ("GET", ["repos", owner, repo, "deployments"]) => list_deployments(w, owner, repo, query),
        ("POST", ["repos", owner, repo, "deployments"]) => {
            create_deployment(w, owner, repo, &json_body())
        }
        ("POST", ["repos", owner, repo, "deployments", id, "statuses"]) => {
            let id: u64 = id.parse().unwrap_or_default();
            create_status(w, owner, repo, id, &json_body())
        }
        ("GET", ["repos", owner, repo, "deployments", id, "statuses"]) => {
            let id: u64 = id.parse().unwrap_or_default();
            list_statuses(w, owner, repo, id)
        }
        ("DELETE", ["repos", owner, repo, "environments", name]) => {
            delete_environment(w, owner, repo, name)
        }
        _ => not_found(),
    }
}

/// `POST /app/installations/{id}/access_tokens`: a new installation token, accepted from now on.
fn installation_token(w: &mut World, id: &str) -> Response {
    w.next_id += 1;
    let token = format!("ghs_installation_{id}_{}", w.next_id);
    w.installation_tokens.push(token.clone());
    answer(
        StatusCode::CREATED,
        json!({"token": token, "expires_at": "2099-01-01T00:00:00Z",
               "permissions": {"contents": "read", "pull_requests": "read",
                               "deployments": "write", "administration": "write",
                               "metadata": "read"},
               "repository_selection": "all"}),
    )
}

/// A file as `GET .../contents/{path}` answers it: base64, wrapped at 60 characters as GitHub
/// does.
fn file_content(path: &str, content: &[u8]) -> Response {
    let encoded = base64::engine::general_purpose::STANDARD.encode(content);
    let wrapped: Vec<String> = encoded
        .as_bytes()
        .chunks(60)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    answer(
        StatusCode::OK,
        json!({"type": "file", "encoding": "base64", "size": content.len(),
               "name": path.rsplit('/').next(), "path": path,
               "content": wrapped.join("\n") + "\n"}),
    )
}

/// `GET .../deployments`: newest first, filtered by `sha` and `environment`.
fn list_deployments(
    w: &World,
    owner: &str,
    repo: &str,
    query: &BTreeMap<String, String>,
) -> Response {
    let list: Vec<Value> = w
        .repos
        .get(&key(owner, repo))
        .map(|r| {
            r.deployments
                .iter()
                .rev()
                .filter(|d| query.get("sha").is_none_or(|s| *s == d.sha))
                .filter(|d| query.get("environment").is_none_or(|e| *e == d.environment))
                .map(|d| json!({"id": d.id, "sha": d.sha, "ref": d.sha, "environment": d.environment}))
                .collect()
        })
        .unwrap_or_default();
    answer(StatusCode::OK, Value::Array(list))
}

fn validation_failed() -> Response {
    answer(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({"message": "Validation Failed"}),
    )
}

/// `POST .../deployments` (`ref` and `environment` required): the deployment and its
/// environment.
fn create_deployment(w: &mut World, owner: &str, repo: &str, request: &Value) -> Response {
    let (Some(sha), Some(environment)) = (request["ref"].as_str(), request["environment"].as_str())
    else {
        return validation_failed();
    };
    w.next_id += 1;
    let id = w.next_id;
    let deployment = FakeDeployment {
        id,
        sha: sha.to_string(),
        environment: environment.to_string(),
        request: request.clone(),
        statuses: Vec::new(),
    };
    let repo = w.repos.entry(key(owner, repo)).or_default();
    repo.environments.insert(environment.to_string(), ());
    repo.deployments.push(deployment);
    answer(
        StatusCode::CREATED,
        json!({"id": id, "sha": sha, "ref": sha, "environment": environment}),
    )
}

/// `POST .../deployments/{id}/statuses` (`state` required), also written to the status log.
fn create_status(w: &mut World, owner: &str, repo: &str, id: u64, request: &Value) -> Response {
    let Some(deployment) = w
        .repos
        .get_mut(&key(owner, repo))
        .and_then(|r| r.deployments.iter_mut().find(|d| d.id == id))
    else {
        return not_found();
    };
    let Some(state) = request["state"].as_str() else {
        return validation_failed();
    };
    let line = format!(
        "{} {} {} {state}",
        key(owner, repo),
        deployment.sha.get(..7).unwrap_or(&deployment.sha),
        deployment.environment
    );
    deployment.statuses.push(FakeStatus {
        state: state.to_string(),
        environment_url: request["environment_url"].as_str().map(str::to_string),
        description: request["description"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    });
    let status_id = id * 100 + deployment.statuses.len() as u64;
    w.status_log.push(line);
    answer(
        StatusCode::CREATED,
        json!({"id": status_id, "state": state}),
    )
}

/// `GET .../deployments/{id}/statuses`: newest first.
fn list_statuses(w: &World, owner: &str, repo: &str, id: u64) -> Response {
    let statuses: Vec<Value> = w
        .repos
        .get(&key(owner, repo))
        .and_then(|r| r.deployments.iter().find(|d| d.id == id))
        .map(|d| {
            d.statuses
                .iter()
                .rev()
                .map(|s| json!({"state": s.state}))
                .collect()
        })
        .unwrap_or_default();
    answer(StatusCode::OK, Value::Array(statuses))
}

/// `DELETE .../environments/{name}`: the environment and its deployments.
fn delete_environment(w: &mut World, owner: &str, repo: &str, name: &str) -> Response {
    let Some(repo) = w.repos.get_mut(&key(owner, repo)) else {
        return not_found();
    };
    if repo.environments.remove(name).is_none() {
        return not_found();
    }
    repo.deployments.retain(|d| d.environment != name);
    repo.deleted_environments.push(name.to_string());
    StatusCode::NO_CONTENT.into_response()
}
