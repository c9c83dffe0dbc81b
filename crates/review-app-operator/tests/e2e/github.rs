//! The GitHub component and the operator together: a pull request's webhooks, through the real
//! component (in this process, octocrab against the fake GitHub API), make a ReviewApp that the
//! real operator builds and deploys; the component reports every state back and cleans up.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reviewapp_daemon::Backoff;
use reviewapp_github::fake::{Fake, FakeGitHub, deliver, event_json, pull_request_json};
use reviewapp_github::signature::sign;
use reviewapp_github::{Auth, GithubConfig, Metrics, OctocrabGitHub, Options, Secret};
use serde_json::{Value, json};

use crate::world::{APP_NS, BUILD_NS, World, eventually};

const TOKEN: &str = "ghp_e2e";
const SECRET: &str = "e2e-webhook-secret";
const OWNER: &str = "revelrylabs";
const REPO: &str = "review-app";
const APP: &str = "revelrylabs.review-app.42";
const SHA1: &str = "c8c9aa334a76677aa0be4ec0ebb08484367f952d";
const SHA2: &str = "5ce6e4a15e2a09fe113aba79263104835bd676c2";

/// The component, running against the world's API and a fake GitHub.
pub struct Component {
    _github: FakeGitHub,
    pub fake: Fake,
    pub addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Component {
    pub async fn start(w: &World) -> Component {
        let github = FakeGitHub::start(TOKEN)
            .await
            .expect("the fake GitHub starts");
        let adapter = OctocrabGitHub::new(&github.url(), &Auth::Token(Secret::new(TOKEN)))
            .expect("the adapter");
        let settings = Arc::new(GithubConfig {
            api_url: github.url(),
            resync_interval_seconds: 0,
            ..GithubConfig::default()
        });
        let mut options = Options::new("127.0.0.1:0".parse().expect("address"));
        options.backoff = Backoff::new(Duration::from_millis(100), 2.0, Duration::from_secs(1));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (bound, addr) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(reviewapp_github_run(
            w.client.clone(),
            Arc::new(adapter),
            settings,
            options,
            async move {
                let _ = stopped.await;
            },
            bound,
        ));
        let addr = addr.await.expect("the component listens");
        let fake = github.fake();
        Component {
            _github: github,
            fake,
            addr,
            stop,
            task,
        }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the component stops")
            .expect("no panic");
    }

    /// The pull request as the API answers it now, with the review configuration at `sha`.
    pub fn push(&self, sha: &str) -> Value {
        let pull = pull_request_json(OWNER, REPO, 42, sha, "feature/login");
        self.fake.set_pull(OWNER, REPO, pull.clone());
        self.fake.set_file(
            OWNER,
            REPO,
            sha,
            ".review_bot.yml",
            &format!("namespace: {APP_NS}\napplicationPort: 5000\n"),
        );
        pull
    }

    pub async fn send(&self, action: &str, pull: &Value) {
        let body = event_json(action, pull, None).to_string();
        let signature = sign(SECRET.as_bytes(), body.as_bytes());
        let (code, text) = deliver(self.addr, "pull_request", body.as_bytes(), Some(&signature))
            .await
            .expect("the delivery is answered");
        assert_eq!(code, 202, "{text}");
    }

    pub fn states(&self) -> Vec<String> {
        self.fake.states(OWNER, REPO)
    }
}

async fn reviewapp_github_run(
    client: kube::Client,
    github: Arc<OctocrabGitHub>,
    settings: Arc<GithubConfig>,
    options: Options,
    shutdown: impl std::future::Future<Output = ()> + Send,
    bound: tokio::sync::oneshot::Sender<SocketAddr>,
) {
    reviewapp_github::run(
        client,
        github,
        settings,
        Secret::new(SECRET),
        Arc::new(Metrics::new()),
        options,
        shutdown,
        move |addr| {
            let _ = bound.send(addr);
        },
    )
    .await
    .expect("the component runs");
}

/// Webhook → ReviewApp → build → deployed → `success` with the URL → new push → rebuild →
/// `success` again → closed → the app and every child deleted → `inactive`, environment deleted.
#[allow(
    clippy::too_many_lines,
    reason = "one pull request's whole life, step by step"
)]
pub async fn pull_request_lifecycle(w: &mut World) {
    w.start().await;
    let c = Component::start(w).await;
    let job1 = "review-app-42--c8c9aa334a";
    let job2 = "review-app-42--5ce6e4a15e";
    let url = "https://review-app-42.review.local";

    let pull = c.push(SHA1);
    c.send("opened", &pull).await;
    eventually(
        "the operator starts the build of the pull request's head",
        || async { w.jobs().get_opt(job1).await.ok().flatten().is_some() },
    )
    .await;
    eventually("in_progress on the pull request", || async {
        c.states() == ["c8c9aa3 pr-42 in_progress"]
    })
    .await;

    w.finish_job(job1, true).await;
    eventually("success with the app's URL", || async {
        c.states().last().map(String::as_str) == Some("c8c9aa3 pr-42 success")
    })
    .await;
    let deployments = c.fake.deployments(OWNER, REPO);
    assert_eq!(deployments.len(), 1);
    assert_eq!(
        deployments[0]
            .statuses
            .last()
            .and_then(|s| s.environment_url.as_deref()),
        Some(url)
    );

    // A new push: the old version keeps serving while the new commit builds.
    let pull2 = c.push(SHA2);
    c.send("synchronize", &pull2).await;
    eventually("the new commit builds", || async {
        w.jobs().get_opt(job2).await.ok().flatten().is_some()
    })
    .await;
    eventually("in_progress for the new commit", || async {
        c.states().last().map(String::as_str) == Some("5ce6e4a pr-42 in_progress")
    })
    .await;
    w.finish_job(job2, true).await;
    eventually("success for the new commit", || async {
        c.states().last().map(String::as_str) == Some("5ce6e4a pr-42 success")
    })
    .await;

    // Closed: the ReviewApp goes, the operator tears everything down, the component marks the
    // deployment inactive and deletes the environment.
    let mut closed = pull2.clone();
    closed["state"] = json!("closed");
    c.fake.set_pull(OWNER, REPO, closed.clone());
    c.send("closed", &closed).await;
    eventually("the ReviewApp is deleted", || async {
        w.app(APP).await.is_none()
    })
    .await;
    eventually("nothing of the app is left", || async {
        w.children(APP).await.is_empty()
    })
    .await;
    assert_eq!(
        c.states(),
        [
            "c8c9aa3 pr-42 in_progress",
            "c8c9aa3 pr-42 success",
            "5ce6e4a pr-42 in_progress",
            "5ce6e4a pr-42 success",
            "5ce6e4a pr-42 inactive",
        ],
        "one status per state change, none repeated"
    );
    assert_eq!(c.fake.deleted_environments(OWNER, REPO), ["pr-42"]);
    let jobs = w
        .jobs()
        .list(&kube::api::ListParams::default())
        .await
        .expect("list Jobs");
    assert!(
        jobs.items.iter().all(|j| !j
            .metadata
            .name
            .as_deref()
            .unwrap_or("")
            .starts_with("review-app-42")),
        "no build Job left in {BUILD_NS}"
    );
    c.stop().await;
}
