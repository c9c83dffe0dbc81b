//! The GitHub component end to end, without the operator: webhooks over HTTP into the running
//! component, the real octocrab adapter against the fake GitHub API, `ReviewApp`s in the
//! Kubernetes API emulator. Statuses are set on the `ReviewApp`s by the test, as the operator
//! would write them (the full loop with the operator is in the binary's e2e tests).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reviewapp_daemon::Backoff;
use reviewapp_github::fake::{Fake, FakeGitHub, deliver, event_json, exchange, pull_request_json};
use reviewapp_github::signature::sign;
use reviewapp_github::{Auth, GithubConfig, Metrics, OctocrabGitHub, Options, Secret};
use reviewapp_testkit::{Emulator, Handle};
use serde_json::{Value, json};

const TOKEN: &str = "ghp_test_token_never_logged";
const SECRET: &str = "webhook-secret-never-logged";
const OWNER: &str = "revelrylabs";
const REPO: &str = "review-app";
const APP: &str = "revelrylabs.review-app.42";
const SHA1: &str = "c8c9aa334a76677aa0be4ec0ebb08484367f952d";
const SHA2: &str = "5ce6e4a15e2a09fe113aba79263104835bd676c2";
const CONFIG: &str = "namespace: review-apps\napplicationPort: 4000\nfutureKey: kept\nignoreBranches:\n  - \"/^dependabot/\"\n  - skip-me\n";

struct Harness {
    _emulator: Emulator,
    k8s: Handle,
    _github: FakeGitHub,
    fake: Fake,
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Harness {
    async fn start(settings: GithubConfig) -> Harness {
        Self::start_with(settings, Auth::Token(Secret::new(TOKEN))).await
    }

    async fn start_with(settings: GithubConfig, auth: Auth) -> Harness {
        let emulator = Emulator::start().await.unwrap();
        // The operator's CRD: ReviewApp writes are pruned and validated against its schema and
        // CEL rules, as an API server does.
        emulator
            .handle()
            .create(
                serde_json::to_value(<reviewapp_api::ReviewApp as kube::CustomResourceExt>::crd())
                    .unwrap(),
            )
            .unwrap();
        let github = FakeGitHub::start(TOKEN).await.unwrap();
        let metrics = Arc::new(Metrics::new());
        let observed = metrics.clone();
        let adapter = OctocrabGitHub::new(&github.url(), &auth)
            .unwrap()
            .with_observer(Arc::new(move |endpoint, outcome| {
                observed.api_call(endpoint, outcome)
            }));
        let settings = Arc::new(GithubConfig {
            api_url: github.url(),
            resync_interval_seconds: 0,
            ..settings
        });
        let mut options = Options::new("127.0.0.1:0".parse().unwrap());
        options.backoff = Backoff::new(Duration::from_millis(100), 2.0, Duration::from_secs(1));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (bound, addr) = tokio::sync::oneshot::channel();
        let client = emulator.client();
        let run_metrics = metrics.clone();
        let task = tokio::spawn(async move {
            reviewapp_github::run(
                client,
                Arc::new(adapter),
                settings,
                Secret::new(SECRET),
                run_metrics,
                options,
                async move {
                    let _ = stopped.await;
                },
                move |a| {
                    let _ = bound.send(a);
                },
            )
            .await
            .unwrap();
        });
        let addr = addr.await.unwrap();
        let fake = github.fake();
        let harness = Harness {
            k8s: emulator.handle(),
            _emulator: emulator,
            _github: github,
            fake,
            addr,
            metrics,
            stop: Some(stop),
            task,
        };
        eventually("ready", || async {
            exchange(
                harness.addr,
                b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            )
            .await
            .is_ok_and(|(code, _)| code == 200)
        })
        .await;
        harness
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the component stops")
            .unwrap();
    }

    /// Sets the pull request the API answers, and the configuration file at its head.
    fn open(&self, sha: &str, branch: &str) -> Value {
        let pull = pull_request_json(OWNER, REPO, 42, sha, branch);
        self.fake.set_pull(OWNER, REPO, pull.clone());
        self.fake
            .set_file(OWNER, REPO, sha, ".review_bot.yml", CONFIG);
        pull
    }

    async fn send(&self, action: &str, pull: &Value) -> (u16, String) {
        let body = event_json(action, pull, None).to_string();
        let signature = sign(SECRET.as_bytes(), body.as_bytes());
        deliver(self.addr, "pull_request", body.as_bytes(), Some(&signature))
            .await
            .unwrap()
    }

    fn app(&self) -> Option<Value> {
        self.k8s
            .get_object("reviewtron.k8s.revelry.co", "v1", "reviewapps", None, APP)
    }

    fn app_writes(&self) -> usize {
        self.k8s
            .write_count_where(|r| r.path.contains("/reviewapps"))
    }

    /// Writes the status the operator would write.
    fn set_status(&self, status: Value) {
        self.k8s
            .set_status(
                "/apis/reviewtron.k8s.revelry.co/v1/reviewapps/revelrylabs.review-app.42",
                status,
            )
            .unwrap();
    }

    /// Waits until the handlers are idle: nothing new is written for a while.
    async fn settle(&self) {
        let mut last = (self.fake.requests().len(), self.k8s.resource_version());
        let mut quiet = 0;
        while quiet < 6 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = (self.fake.requests().len(), self.k8s.resource_version());
            if now == last {
                quiet += 1;
            } else {
                quiet = 0;
                last = now;
            }
        }
    }
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "did not happen within 20 s: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opened_pull_request_becomes_a_review_app() {
    let h = Harness::start(GithubConfig::default()).await;
    let pull = h.open(SHA1, "feature/login");
    assert_eq!(h.send("opened", &pull).await.0, 202);
    eventually("the ReviewApp is created", || async { h.app().is_some() }).await;
    let app = h.app().unwrap();
    let spec = &app["spec"];
    assert_eq!(spec["repoOwner"], OWNER);
    assert_eq!(spec["repo"], REPO);
    assert_eq!(spec["branch"], "feature/login");
    assert_eq!(spec["pr"], "42");
    assert_eq!(spec["commitHash"], SHA1);
    assert_eq!(
        spec["tarballUrl"],
        format!("{}/repos/{OWNER}/{REPO}/tarball/{SHA1}", h._github.url())
    );
    assert_eq!(spec["config"]["applicationPort"], 4000);
    // Sent as written; a real API server then keeps only the CRD's keys (the emulator does not
    // prune, see its crate docs), which is why updates compare typed specs.
    assert_eq!(spec["config"]["futureKey"], "kept", "the file as is");
    assert_eq!(
        app["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "review-app-operator-github"
    );
    assert_eq!(
        app["metadata"]["finalizers"],
        json!(["reviewtron.k8s.revelry.co/github"])
    );
    assert_eq!(
        h.fake
            .count(&format!("/contents/.review_bot.yml?ref={SHA1}")),
        1,
        "read at the head commit"
    );

    // A redelivery (and a late duplicate) changes nothing.
    h.settle().await;
    let writes = h.app_writes();
    let version = h.app().unwrap()["metadata"]["resourceVersion"].clone();
    assert_eq!(h.send("opened", &pull).await.0, 202);
    assert_eq!(h.send("synchronize", &pull).await.0, 202);
    h.settle().await;
    assert_eq!(h.app_writes(), writes, "a redelivery writes nothing");
    assert_eq!(h.app().unwrap()["metadata"]["resourceVersion"], version);

    // A new push with an edited configuration updates commit, tarball and config.
    let pull2 = h.open(SHA2, "feature/login");
    h.fake.set_file(
        OWNER,
        REPO,
        SHA2,
        ".review_bot.yml",
        "namespace: review-apps\napplicationPort: 5000\n",
    );
    assert_eq!(h.send("synchronize", &pull2).await.0, 202);
    eventually("the new commit is set", || async {
        h.app().unwrap()["spec"]["commitHash"] == SHA2
    })
    .await;
    let config = &h.app().unwrap()["spec"]["config"];
    assert_eq!(config["applicationPort"], 5000);
    assert!(
        config.get("futureKey").is_none(),
        "removed keys go: {config}"
    );

    // An old synchronize delivered late: the API says the head is SHA2, so nothing moves back.
    assert_eq!(h.send("synchronize", &pull).await.0, 202);
    h.settle().await;
    assert_eq!(h.app().unwrap()["spec"]["commitHash"], SHA2);
    h.stop().await;
}

#[allow(
    clippy::too_many_lines,
    reason = "each kind of bad delivery, one after the other"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_are_authenticated_and_checked_before_anything_happens() {
    let h = Harness::start(GithubConfig::default()).await;
    let pull = h.open(SHA1, "feature");
    let body = event_json("opened", &pull, None).to_string();
    let cases: [(Option<String>, &str); 3] = [
        (None, "missing"),
        (
            Some(sign(b"another secret", body.as_bytes())),
            "does not match",
        ),
        (Some("sha256=xyz".into()), "malformed"),
    ];
    for (signature, expected) in cases {
        let (code, text) = deliver(
            h.addr,
            "pull_request",
            body.as_bytes(),
            signature.as_deref(),
        )
        .await
        .unwrap();
        assert_eq!(code, 401, "{text}");
        assert!(text.contains(expected), "{text}");
        assert!(!text.contains(SECRET));
    }
    // A body changed after signing.
    let signature = sign(SECRET.as_bytes(), body.as_bytes());
    let tampered = body.replace("\"opened\"", "\"closed\"");
    let (code, _) = deliver(
        h.addr,
        "pull_request",
        tampered.as_bytes(),
        Some(&signature),
    )
    .await
    .unwrap();
    assert_eq!(code, 401);

    let signed = |body: &str| sign(SECRET.as_bytes(), body.as_bytes());
    let ping = r#"{"zen":"Keep it logically awesome.","hook_id":1}"#;
    assert_eq!(
        deliver(h.addr, "ping", ping.as_bytes(), Some(&signed(ping)))
            .await
            .unwrap(),
        (200, "pong\n".to_string())
    );
    let push = r#"{"ref":"refs/heads/main"}"#;
    assert_eq!(
        deliver(h.addr, "push", push.as_bytes(), Some(&signed(push)))
            .await
            .unwrap()
            .0,
        202
    );
    let (code, text) = deliver(
        h.addr,
        "pull_request",
        b"{not json",
        Some(&signed("{not json")),
    )
    .await
    .unwrap();
    assert_eq!((code, text.contains("malformed")), (400, true), "{text}");
    let mut evil = pull.clone();
    evil["head"]["sha"] = json!("$(curl evil)");
    let evil = event_json("opened", &evil, None).to_string();
    let (code, text) = deliver(
        h.addr,
        "pull_request",
        evil.as_bytes(),
        Some(&signed(&evil)),
    )
    .await
    .unwrap();
    assert_eq!(code, 400);
    assert!(text.contains("pull_request.head.sha"), "{text}");
    let mut evil = pull.clone();
    evil["base"]["repo"]["name"] = json!("../../admin");
    let evil = event_json("opened", &evil, None).to_string();
    let (code, text) = deliver(
        h.addr,
        "pull_request",
        evil.as_bytes(),
        Some(&signed(&evil)),
    )
    .await
    .unwrap();
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("repository.name"), "{text}");

    // Over 25 MiB: refused from the Content-Length alone, before the body is sent.
    let head = format!(
        "POST /webhooks/github HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: pull_request\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        26 * 1024 * 1024
    );
    let (code, _) = exchange(h.addr, head.as_bytes()).await.unwrap();
    assert_eq!(code, 413);

    h.settle().await;
    assert!(h.app().is_none(), "nothing was created");
    assert_eq!(h.app_writes(), 0);
    assert!(
        h.fake.requests().is_empty(),
        "no GitHub call for a refused delivery: {:?}",
        h.fake.requests()
    );
    let metrics = h.metrics.encode();
    for needle in [
        "outcome=\"unauthorized\"} 4",
        "event=\"ping\",outcome=\"pong\"} 1",
        "event=\"other\",outcome=\"ignored\"} 1",
        "outcome=\"malformed\"} 3",
        "outcome=\"too_large\"} 1",
    ] {
        assert!(metrics.contains(needle), "{needle}: {metrics}");
    }
    h.stop().await;
}

#[allow(
    clippy::too_many_lines,
    reason = "each opt-out rule, one after the other"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_file_ignored_branches_drafts_labels_and_forks() {
    let h = Harness::start(GithubConfig::default()).await;
    // No configuration file: the repository did not opt in.
    let pull = pull_request_json(OWNER, REPO, 42, SHA1, "feature");
    h.fake.set_pull(OWNER, REPO, pull.clone());
    assert_eq!(h.send("opened", &pull).await.0, 202);
    h.settle().await;
    assert!(h.app().is_none());
    assert_eq!(h.fake.count("/contents/"), 1);

    // ignoreBranches: a plain name and a /regex/.
    for branch in ["skip-me", "dependabot/cargo/serde"] {
        let pull = h.open(SHA1, branch);
        h.send("opened", &pull).await;
        h.settle().await;
        assert!(h.app().is_none(), "{branch}");
    }

    // A draft waits for ready_for_review.
    let mut draft = h.open(SHA1, "feature");
    draft["draft"] = json!(true);
    h.fake.set_pull(OWNER, REPO, draft.clone());
    h.send("opened", &draft).await;
    h.settle().await;
    assert!(h.app().is_none(), "drafts are skipped");
    let ready = h.open(SHA1, "feature");
    h.send("ready_for_review", &ready).await;
    eventually("ready for review", || async { h.app().is_some() }).await;

    // The opt-out label deletes the app; removing it brings the app back.
    let mut labelled = ready.clone();
    labelled["labels"] = json!([{"id": 1, "name": "no-review-app"}]);
    h.fake.set_pull(OWNER, REPO, labelled.clone());
    let body = event_json("labeled", &labelled, Some("no-review-app")).to_string();
    let signature = sign(SECRET.as_bytes(), body.as_bytes());
    deliver(h.addr, "pull_request", body.as_bytes(), Some(&signature))
        .await
        .unwrap();
    eventually("opted out: deleted", || async { h.app().is_none() }).await;
    h.fake.set_pull(OWNER, REPO, ready.clone());
    let body = event_json("unlabeled", &ready, Some("no-review-app")).to_string();
    let signature = sign(SECRET.as_bytes(), body.as_bytes());
    deliver(h.addr, "pull_request", body.as_bytes(), Some(&signature))
        .await
        .unwrap();
    eventually("opted in again", || async { h.app().is_some() }).await;
    // Another label changes nothing and is not even looked up.
    let pulls_read = h.fake.count("/pulls/42");
    let body = event_json("labeled", &ready, Some("bug")).to_string();
    let signature = sign(SECRET.as_bytes(), body.as_bytes());
    assert_eq!(
        deliver(h.addr, "pull_request", body.as_bytes(), Some(&signature))
            .await
            .unwrap()
            .0,
        202
    );
    h.settle().await;
    assert_eq!(h.fake.count("/pulls/42"), pulls_read);
    h.stop().await;

    // Forks: skipped by default; with buildForks the configuration comes from the base
    // repository's default branch, never from the fork's commit.
    for build_forks in [false, true] {
        let h = Harness::start(GithubConfig {
            build_forks,
            ..GithubConfig::default()
        })
        .await;
        let mut fork = pull_request_json(OWNER, REPO, 42, SHA1, "patch-1");
        fork["head"]["repo"]["id"] = json!(9999);
        fork["head"]["repo"]["owner"]["login"] = json!("stranger");
        h.fake.set_pull(OWNER, REPO, fork.clone());
        h.fake.set_file(
            OWNER,
            REPO,
            SHA1,
            ".review_bot.yml",
            "namespace: kube-system\napplicationPort: 1\n",
        );
        h.fake
            .set_file(OWNER, REPO, "main", ".review_bot.yml", CONFIG);
        h.send("opened", &fork).await;
        if build_forks {
            eventually("the fork's app", || async { h.app().is_some() }).await;
            let app = h.app().unwrap();
            assert_eq!(app["spec"]["config"]["namespace"], "review-apps");
            assert_eq!(app["spec"]["commitHash"], SHA1);
            assert_eq!(h.fake.count(&format!("ref={SHA1}")), 0);
        } else {
            h.settle().await;
            assert!(h.app().is_none());
            assert_eq!(h.fake.count("/contents/"), 0);
        }
        h.stop().await;
    }
}

#[allow(
    clippy::too_many_lines,
    reason = "one pull request's reports, step by step"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_are_reported_once_each_and_teardown_deletes_the_environment() {
    let h = Harness::start(GithubConfig::default()).await;
    let pull = h.open(SHA1, "feature");
    h.send("opened", &pull).await;
    eventually("created", || async { h.app().is_some() }).await;

    let building = json!({"appStatus": "building", "buildStatus": "building", "buildCommit": SHA1,
        "conditions": [{"type": "Building", "status": "True", "reason": "BuildRunning", "message": "",
                        "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
    h.set_status(building.clone());
    eventually("in_progress", || async {
        h.fake.states(OWNER, REPO) == ["c8c9aa3 pr-42 in_progress"]
    })
    .await;
    let deployment = &h.fake.deployments(OWNER, REPO)[0];
    assert_eq!(deployment.sha, SHA1);
    assert_eq!(deployment.request["transient_environment"], true);
    assert_eq!(deployment.request["auto_merge"], false);
    assert_eq!(deployment.request["required_contexts"], json!([]));
    eventually("recorded", || async {
        h.app().unwrap()["metadata"]["annotations"]["reviewtron.k8s.revelry.co/github-deployment"]
            .as_str()
            .is_some_and(|a| a.contains("in_progress"))
    })
    .await;

    // The same status again (a relist, a repeated event): nothing new.
    h.set_status(
        json!({"appStatus": "building", "buildStatus": "building", "buildCommit": SHA1,
        "message": "still building",
        "conditions": building["conditions"]}),
    );
    h.settle().await;
    assert_eq!(h.fake.states(OWNER, REPO).len(), 1);

    h.set_status(
        json!({"appStatus": "deployed", "buildStatus": "success", "buildCommit": SHA1,
        "deployedCommit": SHA1, "url": "https://review-app-42.review.local"}),
    );
    eventually("success", || async {
        h.fake.states(OWNER, REPO).last().map(String::as_str) == Some("c8c9aa3 pr-42 success")
    })
    .await;
    let statuses = &h.fake.deployments(OWNER, REPO)[0].statuses;
    assert_eq!(
        statuses.last().unwrap().environment_url.as_deref(),
        Some("https://review-app-42.review.local")
    );
    assert_eq!(
        h.fake.deployments(OWNER, REPO).len(),
        1,
        "one deployment per commit"
    );

    // A failed build of the next commit: a new deployment, failure with the reason.
    h.set_status(
        json!({"appStatus": "deployed", "buildStatus": "error", "buildCommit": SHA2,
        "deployedCommit": SHA1, "url": "https://review-app-42.review.local",
        "message": "build Job x failed: BackoffLimitExceeded"}),
    );
    eventually("failure", || async {
        h.fake.states(OWNER, REPO).last().map(String::as_str) == Some("5ce6e4a pr-42 failure")
    })
    .await;
    let failed = h.fake.deployments(OWNER, REPO)[1].statuses[0].clone();
    assert!(failed.description.contains("BackoffLimitExceeded"));

    // Closed: the app is deleted; the component marks the deployment inactive, deletes the
    // environment, then lets the app go.
    h.fake.set_pull(OWNER, REPO, {
        let mut closed = pull.clone();
        closed["state"] = json!("closed");
        closed
    });
    h.send("closed", &pull).await;
    eventually("the app is gone", || async { h.app().is_none() }).await;
    assert_eq!(
        h.fake.states(OWNER, REPO),
        [
            "c8c9aa3 pr-42 in_progress",
            "c8c9aa3 pr-42 success",
            "5ce6e4a pr-42 failure",
            "5ce6e4a pr-42 inactive"
        ]
    );
    assert_eq!(h.fake.deleted_environments(OWNER, REPO), ["pr-42"]);
    assert!(h.fake.environments(OWNER, REPO).is_empty());
    h.settle().await;
    assert_eq!(
        h.fake.states(OWNER, REPO).len(),
        4,
        "nothing after the teardown"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_reports_nothing_twice() {
    let h = Harness::start(GithubConfig::default()).await;
    let pull = h.open(SHA1, "feature");
    h.send("opened", &pull).await;
    eventually("created", || async { h.app().is_some() }).await;
    h.set_status(
        json!({"appStatus": "deployed", "buildStatus": "success", "buildCommit": SHA1,
        "deployedCommit": SHA1, "url": "https://x.review.local"}),
    );
    eventually("success", || async {
        h.fake.states(OWNER, REPO).len() == 1
    })
    .await;
    eventually("recorded", || async {
        h.app().unwrap()["metadata"]["annotations"]["reviewtron.k8s.revelry.co/github-deployment"]
            .as_str()
            .is_some_and(|a| a.contains("success"))
    })
    .await;
    h.settle().await;

    // A second component (a restart) against the same cluster and GitHub.
    let fake = h.fake.clone();
    let before = fake.requests().len();
    let emulator_client = h._emulator.client();
    let github_url = h._github.url();
    let adapter = OctocrabGitHub::new(&github_url, &Auth::Token(Secret::new(TOKEN))).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (bound, addr) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(reviewapp_github::run(
        emulator_client,
        Arc::new(adapter),
        Arc::new(GithubConfig {
            api_url: github_url,
            ..GithubConfig::default()
        }),
        Secret::new(SECRET),
        Arc::new(Metrics::new()),
        Options::new("127.0.0.1:0".parse().unwrap()),
        async move {
            let _ = stopped.await;
        },
        move |a| {
            let _ = bound.send(a);
        },
    ));
    let addr = addr.await.unwrap();
    eventually("the restarted component is ready", || async {
        exchange(
            addr,
            b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await
        .is_ok_and(|(code, _)| code == 200)
    })
    .await;
    h.settle().await;
    let after: Vec<String> = fake.requests()[before..].to_vec();
    assert!(
        after.iter().all(|r| r.starts_with("GET ")),
        "a restart posts nothing: {after:?}"
    );
    assert_eq!(fake.states(OWNER, REPO).len(), 1);
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_waited_out_and_retried() {
    let h = Harness::start(GithubConfig::default()).await;
    // PR 42's reads are rate limited (a secondary limit, then a 429, both with Retry-After):
    // the credential's gate stays closed meanwhile (no request is sent), the scheduler retries.
    h.fake.rate_limit_next("/pulls/42", 1, 403, Some(1));
    h.fake.rate_limit_next("/pulls/42", 1, 429, Some(1));
    let pull = h.open(SHA1, "feature");
    h.send("opened", &pull).await;
    eventually("created after the limits", || async { h.app().is_some() }).await;
    let metrics = h.metrics.encode();
    assert!(
        metrics.contains("endpoint=\"pulls\",outcome=\"rate_limited\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("reviewapp_github_failures_total{work=\"pull_request\"}"),
        "{metrics}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_app_uses_installation_tokens() {
    // A throwaway RSA key made for this test (PKCS#1, as GitHub issues App keys).
    let pem = include_str!("fixtures/throwaway-test-app-key.pem");
    let h = Harness::start_with(
        GithubConfig::default(),
        Auth::App {
            app_id: 1,
            private_key_pem: Secret::new(pem),
        },
    )
    .await;
    let pull = h.open(SHA1, "feature");
    h.send("opened", &pull).await;
    eventually("created through the installation", || async {
        h.app().is_some()
    })
    .await;
    let requests = h.fake.requests();
    assert_eq!(
        h.fake
            .count("GET /repos/revelrylabs/review-app/installation"),
        1,
        "{requests:?}"
    );
    assert_eq!(
        h.fake.count("POST /app/installations/7/access_tokens"),
        1,
        "{requests:?}"
    );
    // The installation token is cached: later calls need no new one.
    h.set_status(json!({"appStatus": "building", "buildStatus": "building", "buildCommit": SHA1}));
    eventually("reported", || async {
        h.fake.states(OWNER, REPO).len() == 1
    })
    .await;
    assert_eq!(h.fake.count("access_tokens"), 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_of_repositories_out_of_reach_are_not_retried_forever() {
    let h = Harness::start(GithubConfig::default()).await;
    h.fake.hide_repo("someone", "elsewhere");
    // A ReviewApp created some other way, for a repository the credentials cannot see.
    h.k8s
        .create(json!({
            "apiVersion": "reviewtron.k8s.revelry.co/v1", "kind": "ReviewApp",
            "metadata": {"name": "by-hand"},
            "spec": {"repoOwner": "someone", "repo": "elsewhere", "pr": "3", "commitHash": SHA1},
            "status": {"appStatus": "building", "buildStatus": "building", "buildCommit": SHA1}
        }))
        .unwrap();
    eventually("the report was tried", || async {
        h.fake.count("/repos/someone/elsewhere/deployments") > 0
    })
    .await;
    h.settle().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        h.fake.count("/repos/someone/elsewhere/"),
        1,
        "tried once: {:?}",
        h.fake.requests()
    );
    assert!(
        !h.metrics.encode().contains("work=\"report\""),
        "not a failure to retry"
    );
    assert!(
        h.k8s
            .get_object(
                "reviewtron.k8s.revelry.co",
                "v1",
                "reviewapps",
                None,
                "by-hand"
            )
            .unwrap()["metadata"]["annotations"]
            .is_null()
    );
    h.stop().await;
}
