//! A fake GitHub REST API over HTTP on `127.0.0.1`, for tests and benchmarks: the real octocrab
//! adapter talks to it as to GitHub. [`FakeGitHub::start`] serves it; [`Fake`] seeds pull
//! requests and files, injects rate limits and reads what was posted. [`pull_request_json`] and
//! [`event_json`] build payloads shaped like GitHub's documented ones.
//!
//! What it serves (answers shaped like GitHub's, reduced to the fields the component reads):
//! `GET /repos/{o}/{r}/pulls/{n}`, `GET /repos/{o}/{r}/contents/{path}?ref=` (base64 JSON),
//! `GET /repos/{o}/{r}/tarball/{sha}`, `GET|POST /repos/{o}/{r}/deployments` (the list newest
//! first, filtered by `sha` and `environment`), `GET|POST
//! /repos/{o}/{r}/deployments/{id}/statuses`, `DELETE /repos/{o}/{r}/environments/{name}`,
//! `GET /repos/{o}/{r}/installation` and `POST /app/installations/{id}/access_tokens`.
//!
//! What it simplifies: one token is accepted (`Authorization: Bearer <token>`, else `401`), and
//! for a GitHub App any bearer JWT is accepted by the `/app` and `installation` endpoints (the
//! signature is not checked) and exchanged for installation tokens that are then accepted too; a
//! deployment creates its environment; no pagination, no ETags, no permissions per endpoint.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use percent_encoding::percent_decode_str;
use serde_json::{Value, json};

/// One deployment status posted (the fields of the request the component sets).
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct FakeStatus {
    pub state: String,
    pub environment_url: Option<String>,
    pub description: String,
}

/// One deployment.
#[derive(Clone, Debug, PartialEq)]
pub struct FakeDeployment {
    /// The id the fake gave it.
    pub id: u64,
    /// `ref` (the SHA).
    pub sha: String,
    /// The environment it deploys to.
    pub environment: String,
    /// The whole request body.
    pub request: Value,
    /// Statuses, oldest first.
    pub statuses: Vec<FakeStatus>,
}

#[derive(Default)]
struct Repo {
    pulls: BTreeMap<u64, Value>,
    /// `(ref, path)` → content.
    files: BTreeMap<(String, String), Vec<u8>>,
    deployments: Vec<FakeDeployment>,
    environments: BTreeMap<String, ()>,
    deleted_environments: Vec<String>,
}

struct Fault {
    path_contains: String,
    remaining: usize,
    status: u16,
    retry_after: Option<u64>,
}

#[derive(Default)]
struct World {
    token: String,
    repos: BTreeMap<String, Repo>,
    next_id: u64,
    installation_tokens: Vec<String>,
    faults: VecDeque<Fault>,
    requests: Vec<String>,
    /// `owner/repo sha7 environment state`, in order.
    status_log: Vec<String>,
    /// Repositories the credentials cannot see: every endpoint answers 404.
    hidden: Vec<String>,
}

/// Drives the fake from a test.
#[derive(Clone)]
pub struct Fake(Arc<Mutex<World>>);

impl Fake {
    fn with<T>(&self, f: impl FnOnce(&mut World) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn repo<T>(&self, owner: &str, repo: &str, f: impl FnOnce(&mut Repo) -> T) -> T {
        self.with(|w| f(w.repos.entry(key(owner, repo)).or_default()))
    }

    /// Sets what `GET /repos/{owner}/{repo}/pulls/{number}` answers (a pull request object,
    /// see [`pull_request_json`]).
    pub fn set_pull(&self, owner: &str, repo: &str, pull: Value) {
        let number = pull["number"].as_u64().unwrap_or_default();
        self.repo(owner, repo, |r| r.pulls.insert(number, pull));
    }

    /// Puts a file at `git_ref` (a SHA or a branch name).
    pub fn set_file(&self, owner: &str, repo: &str, git_ref: &str, path: &str, content: &str) {
        self.repo(owner, repo, |r| {
            r.files.insert(
                (git_ref.to_string(), path.to_string()),
                content.as_bytes().to_vec(),
            )
        });
    }

    /// The next `n` requests whose path contains `path_contains` are answered `status`
    /// (`403` or `429`) as a rate limit, with `Retry-After` when given.
    pub fn rate_limit_next(
        &self,
        path_contains: &str,
        n: usize,
        status: u16,
        retry_after: Option<u64>,
    ) {
        self.with(|w| {
            w.faults.push_back(Fault {
                path_contains: path_contains.to_string(),
                remaining: n,
                status,
                retry_after,
            })
        });
    }

    /// Makes `owner/repo` invisible to the credentials (every call about it answers `404`).
    pub fn hide_repo(&self, owner: &str, repo: &str) {
        self.with(|w| w.hidden.push(key(owner, repo)));
    }

    /// The deployments of `owner/repo`, oldest first.
    pub fn deployments(&self, owner: &str, repo: &str) -> Vec<FakeDeployment> {
        self.repo(owner, repo, |r| r.deployments.clone())
    }

    /// Every deployment status posted to `owner/repo`, in order, as `<sha7> <environment>
    /// <state>` (kept after the environment, and its deployments, are deleted).
    pub fn states(&self, owner: &str, repo: &str) -> Vec<String> {
        let prefix = format!("{} ", key(owner, repo));
        self.with(|w| {
            w.status_log
                .iter()
                .filter_map(|line| line.strip_prefix(&prefix).map(str::to_string))
                .collect()
        })
    }

    /// Environments of `owner/repo` that exist.
    pub fn environments(&self, owner: &str, repo: &str) -> Vec<String> {
        self.repo(owner, repo, |r| r.environments.keys().cloned().collect())
    }

    /// Environments of `owner/repo` deleted through the API.
    pub fn deleted_environments(&self, owner: &str, repo: &str) -> Vec<String> {
        self.repo(owner, repo, |r| r.deleted_environments.clone())
    }

    /// Every request so far, as `METHOD path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.with(|w| w.requests.clone())
    }

    /// Number of requests whose line contains `fragment`.
    pub fn count(&self, fragment: &str) -> usize {
        self.with(|w| w.requests.iter().filter(|r| r.contains(fragment)).count())
    }
}

fn key(owner: &str, repo: &str) -> String {
    format!(
        "{}/{}",
        owner.to_ascii_lowercase(),
        repo.to_ascii_lowercase()
    )
}

/// The running fake.
pub struct FakeGitHub {
    addr: SocketAddr,
    fake: Fake,
    task: tokio::task::JoinHandle<()>,
}

impl FakeGitHub {
    /// Serves the fake on `127.0.0.1:<free port>`, accepting `token`.
    pub async fn start(token: &str) -> std::io::Result<Self> {
        let fake = Fake(Arc::new(Mutex::new(World {
            token: token.to_string(),
            next_id: 1000,
            ..World::default()
        })));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = Router::new().fallback(serve).with_state(fake.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeGitHub { addr, fake, task })
    }

    /// `http://127.0.0.1:<port>`, the API URL to configure.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The handle that drives it.
    pub fn fake(&self) -> Fake {
        self.fake.clone()
    }
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

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

async fn serve(State(fake): State<Fake>, request: Request) -> Response {
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

/// A pull request object as the API returns it (and as a webhook payload carries it).
pub fn pull_request_json(owner: &str, repo: &str, number: u64, sha: &str, branch: &str) -> Value {
    let repository = repository_json(owner, repo, 4242);
    json!({
        "url": format!("https://api.github.com/repos/{owner}/{repo}/pulls/{number}"),
        "id": 100_000 + number,
        "number": number,
        "state": "open",
        "locked": false,
        "title": "A change",
        "user": {"login": "octocat", "id": 1, "type": "User"},
        "body": null,
        "labels": [],
        "draft": false,
        "merged": false,
        "head": {"label": format!("{owner}:{branch}"), "ref": branch, "sha": sha,
                 "user": {"login": owner}, "repo": repository},
        "base": {"label": format!("{owner}:main"), "ref": "main",
                 "sha": "0000000000000000000000000000000000000000",
                 "user": {"login": owner}, "repo": repository},
        "author_association": "MEMBER",
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
    })
}

/// A repository object.
pub fn repository_json(owner: &str, repo: &str, id: u64) -> Value {
    json!({
        "id": id,
        "node_id": "R_1",
        "name": repo,
        "full_name": format!("{owner}/{repo}"),
        "private": false,
        "owner": {"login": owner, "id": 2, "type": "Organization"},
        "fork": false,
        "default_branch": "main",
    })
}

/// A `pull_request` webhook payload: `action`, `number`, `pull_request`, `repository`,
/// `sender`, `installation` (and `label` for `labeled`/`unlabeled`).
pub fn event_json(action: &str, pull: &Value, label: Option<&str>) -> Value {
    let repository = pull["base"]["repo"].clone();
    let mut event = json!({
        "action": action,
        "number": pull["number"],
        "pull_request": pull,
        "repository": repository,
        "sender": {"login": "octocat", "id": 1, "type": "User"},
        "installation": {"id": 7, "node_id": "I_1"},
    });
    if let Some(label) = label {
        event["label"] = json!({"id": 1, "name": label, "color": "ededed"});
    }
    event
}

/// Posts a webhook delivery to `addr` as GitHub would (`X-GitHub-Event`, `X-GitHub-Delivery`,
/// `X-Hub-Signature-256` when `signature` is given) over plain HTTP/1.1, and returns the status
/// code and body of the answer.
pub async fn deliver(
    addr: SocketAddr,
    event: &str,
    body: &[u8],
    signature: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: GitHub-Hookshot/fake\r\nContent-Type: application/json\r\nContent-Length: {}\r\nX-GitHub-Event: {event}\r\nX-GitHub-Delivery: 72d3162e-cc78-11e3-81ab-4c9367dc0958\r\nConnection: close\r\n",
        crate::webhook::WEBHOOK_PATH,
        body.len()
    );
    if let Some(signature) = signature {
        head.push_str(&format!("X-Hub-Signature-256: {signature}\r\n"));
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    exchange(addr, &request).await
}

/// Sends raw bytes to `addr` and reads the HTTP answer until the server closes the connection.
pub async fn exchange(addr: SocketAddr, request: &[u8]) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.write_all(request).await?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            // The server may close without reading a body it refused.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !answer.is_empty() => {
                break;
            }
            Err(e) => return Err(e),
        }
        if let Some(done) = complete(&answer) {
            answer.truncate(done);
            break;
        }
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// The length of a complete answer with a `content-length` header, if `bytes` holds one.
fn complete(bytes: &[u8]) -> Option<usize> {
    let text = String::from_utf8_lossy(bytes);
    let (head, _) = text.split_once("\r\n\r\n")?;
    let length: usize = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())
            .flatten()
    })?;
    let total = head.len() + 4 + length;
    (bytes.len() >= total).then_some(total)
}
