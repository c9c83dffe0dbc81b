//! The [`GitHub`] port on octocrab: octocrab sends the requests (base URL for GitHub
//! Enterprise, `Authorization` only to that host, GitHub App JWTs and installation tokens that it
//! renews 30 s before they expire, and once more on a `401`), and this adapter reads the
//! answers.
//!
//! Written here because octocrab lacks it: rate limits do not sleep inside a call (octocrab's
//! retry layer would hold the caller until the limit resets). A `429`, or a `403` with
//! `Retry-After` or `x-ratelimit-remaining: 0` (primary limit) or a secondary-limit message,
//! closes a gate for that credential until `Retry-After` / `x-ratelimit-reset` (60 s when
//! neither is given, as GitHub asks), and every call through that credential fails at once with
//! [`GitHubError::RateLimited`] until then, without a request. The callers' schedulers retry
//! with backoff, one pull request or app at a time, so nothing waits on another's limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine;
use http::{HeaderMap, Method, StatusCode, header};
use octocrab::Octocrab;
use octocrab::models::InstallationId;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::config::Auth;
use crate::decide::MAX_CONFIG_BYTES;
use crate::payload::{PullRequest, RepoRef};
use crate::port::{GitHub, GitHubError, NewDeployment, NewStatus};

/// Characters left as they are in a path segment or query value.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Wait after a secondary rate limit that names no time (GitHub: "at least one minute").
const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// Told about every API call: `(endpoint, outcome)`, outcome being the status code,
/// `rate_limited`, `gated` (not sent: the gate was closed) or `error` (no answer).
pub type CallObserver = Arc<dyn Fn(&'static str, &str) + Send + Sync>;

/// One credential: a client and its rate-limit gate.
struct Credential {
    crab: Octocrab,
    closed_until: Mutex<Option<Instant>>,
}

impl Credential {
    fn new(crab: Octocrab) -> Arc<Self> {
        Arc::new(Credential {
            crab,
            closed_until: Mutex::new(None),
        })
    }

    fn gate(&self) -> Option<Duration> {
        let until = (*self.closed_until.lock().unwrap_or_else(|e| e.into_inner()))?;
        until.checked_duration_since(Instant::now())
    }

    fn close(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut gate = self.closed_until.lock().unwrap_or_else(|e| e.into_inner());
        if gate.is_none_or(|current| current < until) {
            *gate = Some(until);
        }
    }
}

enum Mode {
    Token(Arc<Credential>),
    App {
        app: Arc<Credential>,
        /// Installation clients by `owner/repo` (each caches and renews its own token).
        installations: Mutex<HashMap<String, Arc<Credential>>>,
    },
}

/// The octocrab adapter.
pub struct OctocrabGitHub {
    api_url: String,
    mode: Mode,
    observer: Option<CallObserver>,
}

impl std::fmt::Debug for OctocrabGitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OctocrabGitHub")
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}

impl OctocrabGitHub {
    /// A client of the API at `api_url` authenticating with `auth`. Needs a Tokio runtime.
    pub fn new(api_url: &str, auth: &Auth) -> Result<Self, GitHubError> {
        let api_url = api_url.trim_end_matches('/').to_string();
        let builder = Octocrab::builder()
            .base_uri(api_url.as_str())
            .map_err(|e| GitHubError::Transport(format!("API URL {api_url}: {e}")))?
            .set_connect_timeout(Some(Duration::from_secs(10)))
            .set_read_timeout(Some(Duration::from_secs(30)));
        let mode = match auth {
            Auth::Token(token) => {
                let crab = builder
                    .personal_token(token.expose().to_string())
                    .build()
                    .map_err(|e| GitHubError::Transport(format!("GitHub client: {e}")))?;
                Mode::Token(Credential::new(crab))
            }
            Auth::App {
                app_id,
                private_key_pem,
            } => {
                let key = octocrab::EncodingKey::from_rsa_pem(private_key_pem.expose().as_bytes())
                    // The key's content is never part of the message.
                    .map_err(|_| {
                        GitHubError::Transport("the App private key is not an RSA PEM key".into())
                    })?;
                let crab = builder
                    .app((*app_id).into(), key)
                    .build()
                    .map_err(|e| GitHubError::Transport(format!("GitHub client: {e}")))?;
                Mode::App {
                    app: Credential::new(crab),
                    installations: Mutex::new(HashMap::new()),
                }
            }
        };
        Ok(OctocrabGitHub {
            api_url,
            mode,
            observer: None,
        })
    }

    /// Reports every call to `observer` (metrics).
    pub fn with_observer(mut self, observer: CallObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    fn observe(&self, endpoint: &'static str, outcome: &str) {
        if let Some(observer) = &self.observer {
            observer(endpoint, outcome);
        }
    }

    /// The credential for `repo`: the token, or the App's installation on the repository.
    async fn credential(&self, repo: &RepoRef) -> Result<Arc<Credential>, GitHubError> {
        let (app, installations) = match &self.mode {
            Mode::Token(credential) => return Ok(credential.clone()),
            Mode::App { app, installations } => (app, installations),
        };
        let key = repo.to_string().to_ascii_lowercase();
        if let Some(found) = installations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(found.clone());
        }
        let path = format!("/repos/{}/{}/installation", repo.owner(), repo.name());
        let (status, body) = self
            .call(app, "installation", Method::GET, &path, None)
            .await?;
        let id = expect(status, &body, &[StatusCode::OK])?["id"]
            .as_u64()
            .ok_or_else(|| GitHubError::Invalid("installation without an id".into()))?;
        let crab = app
            .crab
            .installation(InstallationId(id))
            .map_err(|e| GitHubError::Transport(format!("installation {id}: {e}")))?;
        let credential = Credential::new(crab);
        installations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, credential.clone());
        Ok(credential)
    }

    /// Sends one request through `credential` and returns the status and body, or the
    /// rate-limit / transport error.
    async fn call(
        &self,
        credential: &Credential,
        endpoint: &'static str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, String), GitHubError> {
        if let Some(retry_after) = credential.gate() {
            self.observe(endpoint, "gated");
            return Err(GitHubError::RateLimited { retry_after });
        }
        let builder = http::Request::builder()
            .method(method)
            .uri(path)
            .header(header::ACCEPT, "application/vnd.github+json");
        let request = credential
            .crab
            .build_request(builder, body)
            .map_err(|e| GitHubError::Transport(format!("{endpoint}: {e}")))?;
        let response = match credential.crab.execute(request).await {
            Ok(response) => response,
            Err(err) => {
                self.observe(endpoint, "error");
                return Err(GitHubError::Transport(format!("{endpoint}: {err}")));
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        let text = credential
            .crab
            .body_to_string(response)
            .await
            .map_err(|e| GitHubError::Transport(format!("{endpoint}: reading the answer: {e}")))?;
        if let Some(wait) = rate_limit_wait(status, &headers, &text, SystemTime::now()) {
            credential.close(wait);
            self.observe(endpoint, "rate_limited");
            return Err(GitHubError::RateLimited { retry_after: wait });
        }
        self.observe(endpoint, status.as_str());
        Ok((status, text))
    }

    async fn repo_call(
        &self,
        repo: &RepoRef,
        endpoint: &'static str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, String), GitHubError> {
        let credential = self.credential(repo).await?;
        self.call(&credential, endpoint, method, path, body).await
    }
}

/// How long to wait when the answer is a rate limit, per GitHub's documentation.
fn rate_limit_wait(
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
    now: SystemTime,
) -> Option<Duration> {
    let number =
        |name: &str| -> Option<u64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
    let retry_after = number("retry-after").map(Duration::from_secs);
    let exhausted = headers
        .get("x-ratelimit-remaining")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == "0");
    let secondary = body.to_ascii_lowercase().contains("rate limit");
    let limited = status == StatusCode::TOO_MANY_REQUESTS
        || (status == StatusCode::FORBIDDEN && (retry_after.is_some() || exhausted || secondary));
    if !limited {
        return None;
    }
    if let Some(wait) = retry_after {
        return Some(wait);
    }
    if exhausted {
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        if let Some(reset) = number("x-ratelimit-reset") {
            return Some(Duration::from_secs(reset.saturating_sub(now).max(1)));
        }
    }
    Some(DEFAULT_RATE_LIMIT_WAIT)
}

/// The JSON body of a successful answer, or the error the status means.
fn expect(status: StatusCode, body: &str, ok: &[StatusCode]) -> Result<Value, GitHubError> {
    if status == StatusCode::NOT_FOUND {
        return Err(GitHubError::NotFound);
    }
    if !ok.contains(&status) {
        let message = serde_json::from_str::<Value>(body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or_default();
        let message: String = message.chars().take(300).collect();
        return Err(GitHubError::Status {
            status: status.as_u16(),
            message,
        });
    }
    if body.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(body).map_err(|e| GitHubError::Invalid(e.to_string()))
}

fn encode(segment: &str) -> String {
    utf8_percent_encode(segment, SEGMENT).to_string()
}

fn repo_path(repo: &RepoRef) -> String {
    format!("/repos/{}/{}", repo.owner(), repo.name())
}

#[async_trait]
impl GitHub for OctocrabGitHub {
    async fn pull_request(&self, repo: &RepoRef, number: u64) -> Result<PullRequest, GitHubError> {
        let path = format!("{}/pulls/{number}", repo_path(repo));
        let (status, body) = self
            .repo_call(repo, "pulls", Method::GET, &path, None)
            .await?;
        let value = expect(status, &body, &[StatusCode::OK])?;
        serde_json::from_value(value)
            .map_err(|e| GitHubError::Invalid(format!("pull request: {e}")))
    }

    async fn file(
        &self,
        repo: &RepoRef,
        path: &str,
        git_ref: &str,
    ) -> Result<Option<Vec<u8>>, GitHubError> {
        let encoded: Vec<String> = path.split('/').map(encode).collect();
        let url = format!(
            "{}/contents/{}?ref={}",
            repo_path(repo),
            encoded.join("/"),
            encode(git_ref)
        );
        let (status, body) = self
            .repo_call(repo, "contents", Method::GET, &url, None)
            .await?;
        let value = match expect(status, &body, &[StatusCode::OK]) {
            Err(GitHubError::NotFound) => return Ok(None),
            other => other?,
        };
        // A directory is a list; a symlink or submodule is not a file either.
        if value["type"].as_str() != Some("file") {
            return Ok(None);
        }
        let size = value["size"].as_u64().unwrap_or(0);
        if size > MAX_CONFIG_BYTES as u64 || value["encoding"].as_str() != Some("base64") {
            return Err(GitHubError::Invalid(format!(
                "{path} is larger than {} KiB",
                MAX_CONFIG_BYTES / 1024
            )));
        }
        let content: String = value["content"]
            .as_str()
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        base64::engine::general_purpose::STANDARD
            .decode(content)
            .map(Some)
            .map_err(|e| GitHubError::Invalid(format!("{path}: {e}")))
    }

    fn tarball_url(&self, repo: &RepoRef, sha: &str) -> String {
        format!("{}{}/tarball/{sha}", self.api_url, repo_path(repo))
    }

    async fn find_deployment(
        &self,
        repo: &RepoRef,
        sha: &str,
        environment: &str,
    ) -> Result<Option<u64>, GitHubError> {
        let url = format!(
            "{}/deployments?sha={}&environment={}&per_page=1",
            repo_path(repo),
            encode(sha),
            encode(environment)
        );
        let (status, body) = self
            .repo_call(repo, "deployments", Method::GET, &url, None)
            .await?;
        let value = expect(status, &body, &[StatusCode::OK])?;
        Ok(value
            .as_array()
            .and_then(|list| list.first())
            .and_then(|d| d["id"].as_u64()))
    }

    async fn create_deployment(
        &self,
        repo: &RepoRef,
        deployment: &NewDeployment,
    ) -> Result<u64, GitHubError> {
        let body = json!({
            "ref": deployment.sha,
            "environment": deployment.environment,
            "description": deployment.description,
            "transient_environment": true,
            "production_environment": false,
            "auto_merge": false,
            "required_contexts": [],
        });
        let path = format!("{}/deployments", repo_path(repo));
        let (status, text) = self
            .repo_call(repo, "deployments", Method::POST, &path, Some(&body))
            .await?;
        expect(status, &text, &[StatusCode::CREATED])?["id"]
            .as_u64()
            .ok_or_else(|| GitHubError::Invalid("deployment without an id".into()))
    }

    async fn create_deployment_status(
        &self,
        repo: &RepoRef,
        deployment: u64,
        status: &NewStatus,
    ) -> Result<(), GitHubError> {
        let mut body = json!({
            "state": status.state.as_str(),
            "description": status.description,
            "auto_inactive": true,
        });
        if let Some(url) = &status.environment_url {
            body["environment_url"] = json!(url);
        }
        let path = format!("{}/deployments/{deployment}/statuses", repo_path(repo));
        let (code, text) = self
            .repo_call(
                repo,
                "deployment_statuses",
                Method::POST,
                &path,
                Some(&body),
            )
            .await?;
        expect(code, &text, &[StatusCode::CREATED]).map(|_| ())
    }

    async fn delete_environment(
        &self,
        repo: &RepoRef,
        environment: &str,
    ) -> Result<(), GitHubError> {
        let path = format!("{}/environments/{}", repo_path(repo), encode(environment));
        let (status, text) = self
            .repo_call(repo, "environments", Method::DELETE, &path, None)
            .await?;
        match expect(status, &text, &[StatusCode::NO_CONTENT, StatusCode::OK]) {
            Ok(_) | Err(GitHubError::NotFound) => Ok(()),
            Err(err) => Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn rate_limits_follow_githubs_rules() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let wait = |status: u16, pairs: &[(&'static str, &str)], body: &str| {
            rate_limit_wait(
                StatusCode::from_u16(status).unwrap(),
                &headers(pairs),
                body,
                now,
            )
        };
        assert_eq!(
            wait(429, &[("retry-after", "7")], ""),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            wait(403, &[("retry-after", "3")], ""),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            wait(
                403,
                &[
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", "1042")
                ],
                ""
            ),
            Some(Duration::from_secs(42))
        );
        assert_eq!(
            wait(
                403,
                &[],
                r#"{"message":"You have exceeded a secondary rate limit"}"#
            ),
            Some(DEFAULT_RATE_LIMIT_WAIT)
        );
        assert_eq!(wait(429, &[], ""), Some(DEFAULT_RATE_LIMIT_WAIT));
        assert_eq!(
            wait(403, &[], r#"{"message":"Resource not accessible"}"#),
            None
        );
        assert_eq!(wait(200, &[("retry-after", "5")], ""), None);
        assert_eq!(wait(500, &[], ""), None);
    }

    #[test]
    fn answers_become_errors() {
        assert_eq!(
            expect(StatusCode::NOT_FOUND, "", &[StatusCode::OK]),
            Err(GitHubError::NotFound)
        );
        let err = expect(
            StatusCode::UNPROCESSABLE_ENTITY,
            r#"{"message":"Validation Failed"}"#,
            &[StatusCode::CREATED],
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "HTTP 422: Validation Failed");
        assert!(!err.is_transient());
        assert!(
            GitHubError::Status {
                status: 502,
                message: String::new()
            }
            .is_transient()
        );
        assert_eq!(
            expect(StatusCode::NO_CONTENT, "", &[StatusCode::NO_CONTENT]),
            Ok(Value::Null)
        );
        assert!(matches!(
            expect(StatusCode::OK, "{", &[StatusCode::OK]),
            Err(GitHubError::Invalid(_))
        ));
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(encode("pr-7"), "pr-7");
        assert_eq!(encode("review/o#1 x"), "review%2Fo%231%20x");
        assert_eq!(encode("feature/a&b=c"), "feature%2Fa%26b%3Dc");
    }
}
