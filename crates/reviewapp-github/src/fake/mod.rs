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

mod deliver;
mod endpoints;
mod payloads;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use serde_json::Value;

pub use self::deliver::{deliver, exchange};
pub use self::payloads::{event_json, pull_request_json, repository_json};

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
        let app = Router::new()
            .fallback(endpoints::serve)
            .with_state(fake.clone());
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
