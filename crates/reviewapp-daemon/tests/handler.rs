//! Each handler path, end to end through the real transition, renderer and effects layer, with
//! the exact API requests it sends pinned (method, path, content type), against a fake API.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::sync::Arc;

use common::{FakeApi, Logged};
use k8s_openapi::api::batch::v1::Job;
use kube::core::DeserializeGuard;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher::Event;
use reviewapp_api::{OperatorConfig, ReviewApp};
use reviewapp_daemon::{AppHandler, Classified, Index, Metrics};
use reviewapp_effects::{Effects, RetryPolicy};
use reviewapp_state::AppEvent;
use serde_json::{Value, json};

const APP: &str = "/apis/reviewtron.k8s.revelry.co/v1/reviewapps/test";
const JOBS: &str = "/apis/batch/v1/namespaces/review-build/jobs";
const JOB1: &str = "/apis/batch/v1/namespaces/review-build/jobs/test-review-app-678--c8c9aa334a";
const SHA1_FULL: &str = "c8c9aa334a76677aa0be4ec0ebb08484367f952d";
const DBCOPY: &str = "/api/v1/namespaces/test-review-app/secrets/test-review-app-678--dbcopy";
const TLS_SOURCE: &str = "/api/v1/namespaces/default/secrets/star-review-local-tls";
const TLS: &str = "/api/v1/namespaces/test-review-app/secrets/test-review-app-678--ingress-tls";
const DB: &str =
    "/apis/kubedb.com/v1/namespaces/test-review-app/postgreses/test-review-app-678--db";
const CNPG: &str =
    "/apis/postgresql.cnpg.io/v1/namespaces/test-review-app/clusters/test-review-app-678--db";
const SERVICE: &str = "/api/v1/namespaces/test-review-app/services/test-review-app-678";
const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/test-review-app/deployments/test-review-app-678";
const INGRESS: &str =
    "/apis/networking.k8s.io/v1/namespaces/test-review-app/ingresses/test-review-app-678";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/default/events";

struct World {
    fake: FakeApi,
    client: kube::Client,
    handler: AppHandler,
    /// What the watches know, as the handler reads it.
    index: Arc<Index>,
    jobs: Writer<Job>,
}

const SECRETS: &str = "/api/v1/namespaces/test-review-app/secrets";

fn config() -> OperatorConfig {
    let mut config = OperatorConfig {
        registry: "grossvogel".into(),
        ..OperatorConfig::default()
    };
    config.tls.secret_name = "star-review-local-tls".into();
    config
}

fn world() -> World {
    world_with(None)
}

/// A handler (a fresh operator process) over `fake`, with an empty index and Job store.
fn handler_for(
    fake: &FakeApi,
    client: kube::Client,
    listener: Option<reviewapp_daemon::Listener>,
) -> (AppHandler, Arc<Index>, Writer<Job>) {
    let config = Arc::new(config());
    let metrics = Arc::new(Metrics::new());
    let reporter = Reporter {
        controller: "review-app-operator".into(),
        instance: Some("test".into()),
    };
    let effects =
        Effects::new(client, reporter, metrics.clone()).with_retry(RetryPolicy::immediate(1));
    let (store, jobs) = reflector::store::<Job>();
    let index = Arc::new(Index::new(&config, store, Arc::new(fake.clone())));
    let handler = AppHandler::new(config, effects, metrics, index.clone()).with_listener(listener);
    (handler, index, jobs)
}

/// The env Secret `name` exists in the app's namespace (created by its owners, not us).
fn put_secret(fake: &FakeApi, name: &str) {
    fake.put(
        &format!("{SECRETS}/{name}"),
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": name, "namespace": "test-review-app"}}),
    );
}

fn world_with(listener: Option<reviewapp_daemon::Listener>) -> World {
    let (client, fake) = FakeApi::client();
    let (handler, index, jobs) = handler_for(&fake, client.clone(), listener);
    // The sample's env Secrets.
    put_secret(&fake, "secret-one");
    put_secret(&fake, "secret-two");
    fake.put(
        TLS_SOURCE,
        json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
               "metadata": {"name": "star-review-local-tls", "namespace": "default"},
               "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}}),
    );
    let mut app: Value =
        serde_yaml::from_str(include_str!("../../../dev/samples/reviewapp.yaml")).unwrap();
    app["metadata"] =
        json!({"name": "test", "uid": "5b1a6d0e-0000-4000-8000-000000000678", "generation": 1});
    app.as_object_mut().unwrap().remove("status");
    fake.put(APP, app);
    World {
        fake,
        client,
        handler,
        index,
        jobs,
    }
}

impl World {
    /// The `ReviewApp` watch delivers `event`: the app events it schedules.
    fn observe(&self, event: Event<DeserializeGuard<ReviewApp>>) -> Vec<(String, AppEvent)> {
        let classified = self.index.apps.lock().apply(event);
        classified
            .into_iter()
            .filter_map(|item| match item {
                Classified::App { name, event, .. } => Some((name, event)),
                Classified::Malformed { .. } => None,
            })
            .collect()
    }

    /// The app as the fake holds it now, as the watch delivers it.
    fn app(&self) -> DeserializeGuard<ReviewApp> {
        DeserializeGuard(Ok(
            serde_json::from_value(self.fake.get(APP).unwrap()).unwrap()
        ))
    }

    /// The watch delivers the app as the fake holds it now.
    fn watch_sees_app(&self) -> Vec<(String, AppEvent)> {
        self.observe(Event::Apply(self.app()))
    }

    /// The `ReviewApp` watch lists (the app as the fake holds it now).
    fn apps_listed(&self) {
        self.observe(Event::Init);
        self.observe(Event::InitApply(self.app()));
        self.observe(Event::InitDone);
    }

    /// Handles `event` and returns exactly the requests it sent.
    async fn handle_logged(&self, event: AppEvent) -> Vec<Logged> {
        self.fake.take_log();
        self.handler.handle("test".into(), event).await.unwrap();
        self.fake.take_log()
    }

    async fn handle(&self, event: AppEvent) -> Vec<String> {
        self.fake.take_log();
        self.handler.handle("test".into(), event).await.unwrap();
        normalise(&self.fake.take_log())
    }

    /// The build Job watch delivers the Job the fake holds, with `status`.
    fn job_reports(&mut self, path: &str, status: Value) {
        let mut job = self.fake.get(path).expect("the Job exists");
        job["status"] = status;
        self.fake.put(path, job.clone());
        let job: Job = serde_json::from_value(job).unwrap();
        self.jobs.apply_watcher_event(&Event::Apply(job));
    }

    /// The build Job watch catches up with every Job the fake holds (and those it no longer
    /// holds), as after our own writes to them.
    fn job_watch_catches_up(&mut self) {
        let jobs: Vec<Job> = self
            .fake
            .paths()
            .into_iter()
            .filter(|p| p.starts_with(&format!("{JOBS}/")))
            .map(|p| serde_json::from_value(self.fake.get(&p).unwrap()).unwrap())
            .collect();
        self.jobs.apply_watcher_event(&Event::Init);
        for job in &jobs {
            self.index.jobs.apply(job);
            self.jobs
                .apply_watcher_event(&Event::InitApply(job.clone()));
        }
        self.jobs.apply_watcher_event(&Event::InitDone);
    }

    /// Someone deletes the build Job (`kubectl delete job`, or its TTL after it finished): the
    /// operator's finalizer keeps it, being deleted; the watch delivers that.
    fn job_deleted_by_someone(&mut self, path: &str) {
        let mut job = self.fake.get(path).expect("the Job exists");
        assert!(
            job["metadata"]["finalizers"]
                .to_string()
                .contains("build-outcome"),
            "held: {job}"
        );
        job["metadata"]["deletionTimestamp"] = json!("2026-11-24T07:00:00Z");
        self.fake.put(path, job.clone());
        let job: Job = serde_json::from_value(job).unwrap();
        self.index.jobs.apply(&job);
        self.jobs.apply_watcher_event(&Event::Apply(job));
    }

    /// The operator restarts: a new handler, whose caches list what exists.
    fn restart(&mut self) {
        let (handler, index, jobs) = handler_for(&self.fake, self.client.clone(), None);
        self.handler = handler;
        self.index = index;
        self.jobs = jobs;
        self.job_watch_catches_up();
        self.apps_listed();
    }

    fn job_vanishes(&mut self, path: &str) {
        let job: Job = serde_json::from_value(self.fake.remove(path).unwrap()).unwrap();
        // What the controller does with the Job watch's delete event.
        self.index.jobs.delete(&job);
        self.jobs.apply_watcher_event(&Event::Delete(job));
    }

    fn edit_app(&self, edit: impl FnOnce(&mut Value)) {
        let mut app = self.fake.get(APP).unwrap();
        edit(&mut app);
        let generation = app["metadata"]["generation"].as_i64().unwrap_or(1);
        app["metadata"]["generation"] = json!(generation + 1);
        self.fake.put(APP, app);
    }

    fn status(&self) -> Value {
        self.fake.get(APP).unwrap()["status"].clone()
    }
}

/// Expected request lines; `("EVENT", "", "")` stands for recording an Event, which kube's
/// recorder sends as a POST, or as a PATCH of the existing series when the same reason repeats.
fn lines(expected: &[(&str, &str, &str)]) -> Vec<String> {
    expected
        .iter()
        .map(|(method, path, ct)| match (*method, ct.is_empty()) {
            ("EVENT", _) => "EVENT".to_string(),
            (_, true) => format!("{method} {path}"),
            (_, false) => format!("{method} {path} {ct}"),
        })
        .collect()
}

fn normalise(log: &[Logged]) -> Vec<String> {
    log.iter()
        .map(|r| {
            if r.path.starts_with(EVENTS) {
                "EVENT".to_string()
            } else {
                r.line()
            }
        })
        .collect()
}

/// A new app through ADD and to a deployed state (its build Job released, and the watches
/// caught up); returns the world.
async fn deployed() -> World {
    let mut w = world();
    assert_eq!(w.watch_sees_app(), [("test".to_string(), AppEvent::Add)]);
    w.handle(AppEvent::Add).await;
    w.job_reports(
        JOB1,
        json!({"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1}),
    );
    w.handle(AppEvent::Reconcile).await;
    w.watch_sees_app();
    w.job_watch_catches_up();
    w
}

/// The JSON patch that releases the first build Job, held by the build-outcome finalizer only.
fn release_body() -> Value {
    json!([
        {"op": "test", "path": "/metadata/finalizers/0", "value": "reviewtron.k8s.revelry.co/build-outcome"},
        {"op": "remove", "path": "/metadata/finalizers/0"},
    ])
}

#[tokio::test]
async fn add_builds_and_applies_every_child_at_zero_replicas() {
    let w = world();
    assert_eq!(w.watch_sees_app(), [("test".to_string(), AppEvent::Add)]);
    let log = w.handle_logged(AppEvent::Add).await;
    let got = normalise(&log);
    assert_eq!(
        got,
        lines(&[
            ("PATCH", APP, "json-patch"),
            ("POST", JOBS, ""),
            ("PATCH", DBCOPY, "apply"),
            ("GET", TLS_SOURCE, ""),
            ("PATCH", TLS, "apply"),
            ("PATCH", DB, "apply"),
            ("PATCH", SERVICE, "apply"),
            ("PATCH", DEPLOYMENT, "apply"),
            ("PATCH", INGRESS, "apply"),
            ("EVENT", "", ""),
            ("PATCH", &format!("{APP}/status"), "apply"),
        ])
    );
    // Field manager and force on every server-side apply.
    for request in log
        .iter()
        .filter(|r| r.content_type == "application/apply-patch+yaml")
    {
        assert!(
            request.query.contains("fieldManager=review-app-operator"),
            "{}",
            request.query
        );
        assert!(request.query.contains("force=true"), "{}", request.query);
    }
    // Body essentials.
    let deployment = &log[7].body;
    assert_eq!(deployment["spec"]["replicas"], 0);
    assert_eq!(
        deployment["metadata"]["ownerReferences"][0]["uid"],
        "5b1a6d0e-0000-4000-8000-000000000678"
    );
    assert_eq!(
        log[1].body["metadata"]["name"],
        "test-review-app-678--c8c9aa334a"
    );
    assert!(
        log[0]
            .body
            .to_string()
            .contains("reviewtron.k8s.revelry.co/teardown")
    );
    assert_eq!(log[9].body["reason"], "BuildStarted");
    assert_eq!(
        w.fake.get(TLS).unwrap()["data"]["tls.key"],
        "a2V5",
        "the TLS data was copied"
    );
    let status = w.status();
    assert_eq!(
        (status["appStatus"].as_str(), status["buildStatus"].as_str()),
        (Some("building"), Some("building"))
    );
    assert_eq!(status["buildJobName"], "test-review-app-678--c8c9aa334a");
}

#[tokio::test]
async fn modify_triggered_by_our_own_status_write_sends_nothing() {
    let w = world();
    w.watch_sees_app();
    w.handle(AppEvent::Add).await;
    // The watch echoes our finalizer and status writes: nothing to classify, nothing to send.
    let events = w.watch_sees_app();
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(w.handle(AppEvent::Modify).await, Vec::<String>::new());
}

#[tokio::test]
async fn reconcile_while_building_writes_nothing() {
    let mut w = world();
    w.watch_sees_app();
    w.handle(AppEvent::Add).await;
    w.job_reports(JOB1, json!({"active": 1}));
    let sent = w.handle(AppEvent::Reconcile).await;
    assert_eq!(
        sent,
        lines(&[("GET", TLS_SOURCE, "")]),
        "only the TLS source is read"
    );
}

#[tokio::test]
async fn reconcile_after_success_deploys_the_built_image_at_one_replica() {
    let mut w = world();
    w.watch_sees_app();
    w.handle(AppEvent::Add).await;
    w.job_reports(
        JOB1,
        json!({"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1}),
    );
    let log = w.handle_logged(AppEvent::Reconcile).await;
    assert_eq!(
        normalise(&log),
        lines(&[
            ("GET", TLS_SOURCE, ""),
            ("PATCH", DEPLOYMENT, "apply"),
            ("EVENT", "", ""),
            ("PATCH", &format!("{APP}/status"), "apply"),
            ("PATCH", JOB1, "json-patch"),
        ]),
        "the build Job is released only once the status records its outcome"
    );
    assert_eq!(log[4].body, release_body());
    assert!(
        w.fake.get(JOB1).unwrap()["metadata"]["finalizers"]
            .as_array()
            .is_none_or(|f| f.is_empty()),
        "released; its TTL may take it now"
    );
    assert_eq!(log[1].body["spec"]["replicas"], 1);
    assert_eq!(
        log[1].body["spec"]["template"]["spec"]["containers"][0]["image"],
        "grossvogel/test-review-app-678:c8c9aa334a"
    );
    assert_eq!(log[2].body["reason"], "Deployed");
    let status = w.status();
    assert_eq!(
        (status["appStatus"].as_str(), status["buildStatus"].as_str()),
        (Some("deployed"), Some("success"))
    );
    assert_eq!(
        status["deployedCommit"],
        "c8c9aa334a76677aa0be4ec0ebb08484367f952d"
    );
}

#[tokio::test]
async fn reconcile_after_failure_records_the_reason_and_touches_no_child() {
    let mut w = world();
    w.watch_sees_app();
    w.handle(AppEvent::Add).await;
    w.job_reports(
        JOB1,
        json!({"failed": 2, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                                            "message": "Job has reached the specified backoff limit"}]}),
    );
    let log = w.handle_logged(AppEvent::Reconcile).await;
    // The failed Job's pods are listed to read the failing container's log (this fake API
    // serves no pods).
    assert_eq!(
        normalise(&log),
        lines(&[
            ("GET", "/api/v1/namespaces/review-build/pods", ""),
            ("GET", TLS_SOURCE, ""),
            ("EVENT", "", ""),
            ("PATCH", &format!("{APP}/status"), "apply"),
            ("PATCH", JOB1, "json-patch"),
        ])
    );
    assert_eq!(log[2].body["type"], "Warning");
    assert_eq!(log[2].body["reason"], "BuildFailed");
    let status = w.status();
    assert_eq!(status["buildStatus"], "error");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.contains("BackoffLimitExceeded") && message.contains("its log could not be read"),
        "{message}"
    );
}

#[tokio::test]
async fn reconcile_with_a_vanished_job_starts_it_again() {
    let mut w = world();
    w.watch_sees_app();
    w.handle(AppEvent::Add).await;
    w.job_vanishes(JOB1);
    let mut sent = w.handle(AppEvent::Reconcile).await;
    // The status changes only if the clock moved to another second since the ADD.
    if sent.last() == Some(&format!("PATCH {APP}/status apply")) {
        sent.pop();
    }
    assert_eq!(
        sent,
        lines(&[
            ("POST", JOBS, ""),
            ("GET", TLS_SOURCE, ""),
            ("EVENT", "", "")
        ])
    );
    assert!(w.fake.get(JOB1).is_some());
}

#[tokio::test]
async fn modify_with_a_new_commit_builds_while_the_old_version_serves() {
    let w = deployed().await;
    w.edit_app(|app| app["spec"]["commitHash"] = json!("5ce6e4a15e2a09fe113aba79263104835bd676c2"));
    assert_eq!(w.watch_sees_app(), [("test".to_string(), AppEvent::Modify)]);
    let log = w.handle_logged(AppEvent::Modify).await;
    assert_eq!(
        normalise(&log),
        lines(&[
            ("DELETE", JOB1, ""),
            ("POST", JOBS, ""),
            ("GET", TLS_SOURCE, ""),
            ("EVENT", "", ""),
            ("PATCH", &format!("{APP}/status"), "apply"),
        ]),
        "the Deployment keeps the old image (unchanged: not re-applied); nothing else to prune"
    );
    assert_eq!(log[0].body["propagationPolicy"], "Background");
    assert_eq!(
        log[1].body["metadata"]["name"],
        "test-review-app-678--5ce6e4a15e"
    );
    let deployment = w.fake.get(DEPLOYMENT).unwrap();
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        "grossvogel/test-review-app-678:c8c9aa334a"
    );
    let status = w.status();
    assert_eq!(
        (status["appStatus"].as_str(), status["buildStatus"].as_str()),
        (Some("deployed"), Some("building"))
    );
}

#[tokio::test]
async fn a_config_change_reapplies_changed_children_and_prunes() {
    let w = deployed().await;
    w.edit_app(|app| {
        app["spec"]["config"]["applicationPort"] = json!(8080);
        app["spec"]["config"]["database"] = Value::Null;
    });
    w.watch_sees_app();
    let sent = w.handle(AppEvent::Modify).await;
    assert_eq!(
        sent,
        lines(&[
            ("GET", TLS_SOURCE, ""),
            ("PATCH", SERVICE, "apply"),
            ("PATCH", DEPLOYMENT, "apply"),
            ("DELETE", DB, ""),
            ("DELETE", DBCOPY, ""),
            ("PATCH", &format!("{APP}/status"), "apply"),
        ]),
        "no build; the unchanged Ingress and TLS copy are not re-applied; the database goes"
    );
    assert!(w.fake.get(CNPG).is_none());
}

#[tokio::test]
async fn a_child_deleted_by_hand_is_reapplied_on_the_next_tick() {
    let w = deployed().await;
    w.fake.remove(SERVICE);
    let sent = w.handle(AppEvent::Reconcile).await;
    assert_eq!(
        sent,
        lines(&[("GET", TLS_SOURCE, ""), ("PATCH", SERVICE, "apply")])
    );
}

#[tokio::test]
async fn delete_tears_down_every_child_then_releases_the_finalizer() {
    let w = deployed().await;
    w.edit_app(|app| app["metadata"]["deletionTimestamp"] = json!("2026-11-24T06:00:00Z"));
    assert_eq!(w.watch_sees_app(), [("test".to_string(), AppEvent::Delete)]);
    let log = w.handle_logged(AppEvent::Delete).await;
    assert_eq!(
        normalise(&log),
        lines(&[
            ("EVENT", "", ""),
            ("DELETE", JOB1, ""),
            ("DELETE", INGRESS, ""),
            ("DELETE", DEPLOYMENT, ""),
            ("DELETE", SERVICE, ""),
            ("DELETE", DB, ""),
            ("DELETE", TLS, ""),
            ("DELETE", DBCOPY, ""),
            ("PATCH", APP, "json-patch"),
        ]),
        "absent kinds (the CNPG Cluster) are not even asked for"
    );
    for delete in log.iter().filter(|r| r.method == "DELETE") {
        assert_eq!(
            delete.body["propagationPolicy"], "Background",
            "{}",
            delete.path
        );
    }
    assert!(
        w.fake.get(APP).is_none(),
        "the finalizer went, and the API server removed the app being deleted"
    );
    let leftovers: Vec<String> = w
        .fake
        .paths()
        .into_iter()
        .filter(|p| p.contains("test-review-app-678"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn a_failing_api_call_is_reported_in_the_status_and_returned() {
    let w = world();
    w.watch_sees_app();
    // The TLS source is missing: the plan stops there.
    w.fake.remove(TLS_SOURCE);
    let err = w
        .handler
        .handle("test".into(), AppEvent::Add)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("star-review-local-tls"), "{err}");
    let status = w.status();
    let failed = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "ReconcileFailed")
        .unwrap();
    assert_eq!(failed["status"], "True");
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .contains("star-review-local-tls")
    );
}

#[tokio::test]
async fn an_app_deleted_while_the_watch_was_away_is_torn_down_without_a_finalizer_patch() {
    let w = deployed().await;
    // A relist no longer shows the app (someone removed the finalizer and deleted it meanwhile).
    let gone: ReviewApp = serde_json::from_value(w.fake.remove(APP).unwrap()).unwrap();
    w.observe(Event::Init);
    assert_eq!(
        w.observe(Event::InitDone),
        [("test".to_string(), AppEvent::Delete)]
    );
    assert!(gone.metadata.finalizers.is_some());
    let sent = w.handle(AppEvent::Delete).await;
    assert!(
        sent.iter().any(|l| l == &format!("DELETE {DEPLOYMENT}")),
        "{sent:?}"
    );
    assert!(
        !sent.iter().any(|l| l.contains("reviewapps/test")),
        "no patch of a gone object: {sent:?}"
    );
    // A second DELETE for the same app (the watch's own delete event) finds nothing to do.
    assert_eq!(w.handle(AppEvent::Delete).await, Vec::<String>::new());
}

#[tokio::test]
async fn a_malformed_app_gets_a_warning_event() {
    let w = world();
    let guard: DeserializeGuard<ReviewApp> = serde_json::from_value(json!({
        "apiVersion": "reviewtron.k8s.revelry.co/v1", "kind": "ReviewApp",
        "metadata": {"name": "broken", "uid": "u-1", "resourceVersion": "7"},
        "spec": {"config": {"applicationPort": "not a number"}}
    }))
    .unwrap();
    let classified = w.index.apps.lock().apply(Event::Apply(guard));
    let [Classified::Malformed { name, error }] = classified.as_slice() else {
        panic!("{classified:?}");
    };
    w.fake.take_log();
    w.handler.report_malformed(name, error).await;
    let log = w.fake.take_log();
    assert_eq!(normalise(&log), ["EVENT"]);
    assert_eq!(log[0].body["type"], "Warning");
    assert_eq!(log[0].body["regarding"]["name"], "broken");
}

#[tokio::test]
async fn the_listener_sees_event_transition_and_writes() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    let w = world_with(Some(reviewapp_daemon::Listener(Arc::new(
        move |h: &reviewapp_daemon::Handled| {
            sink.lock().unwrap().push(h.clone());
        },
    ))));
    w.watch_sees_app();
    w.handler
        .handle("test".into(), AppEvent::Add)
        .await
        .unwrap();
    let seen = seen.lock().unwrap();
    let [handled] = seen.as_slice() else {
        panic!("{seen:?}")
    };
    assert_eq!(handled.event, AppEvent::Add);
    assert_eq!(
        (handled.from.as_str(), handled.to.as_str()),
        ("none/none", "building/building")
    );
    assert_eq!(
        handled.written.first().map(String::as_str),
        Some("add finalizer")
    );
    assert!(
        handled
            .written
            .contains(&"create Job review-build/test-review-app-678--c8c9aa334a".to_string())
    );
    assert_eq!(
        handled.written.last().map(String::as_str),
        Some("write status")
    );
    assert!(handled.error.is_none());
}

#[tokio::test]
async fn a_failed_push_keeps_the_old_status_so_the_retry_redoes_everything() {
    let w = deployed().await;
    w.edit_app(|app| app["spec"]["commitHash"] = json!("5ce6e4a15e2a09fe113aba79263104835bd676c2"));
    w.watch_sees_app();
    // The TLS source vanishes: the plan fails after the old Job was deleted and the new created.
    let tls = w.fake.remove(TLS_SOURCE).unwrap();
    assert!(
        w.handler
            .handle("test".into(), AppEvent::Modify)
            .await
            .is_err()
    );
    let status = w.status();
    assert_eq!(
        status["buildCommit"], SHA1_FULL,
        "the failed transition's status is not written"
    );
    assert!(
        status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "ReconcileFailed")
    );
    // The retry, once the Secret is back, redoes the build and records it.
    w.fake.put(TLS_SOURCE, tls);
    w.watch_sees_app();
    w.handler
        .handle("test".into(), AppEvent::Modify)
        .await
        .unwrap();
    let status = w.status();
    assert_eq!(
        status["buildCommit"],
        "5ce6e4a15e2a09fe113aba79263104835bd676c2"
    );
    assert!(
        w.fake.get(JOB1).is_none()
            && w.fake
                .get(&format!("{JOBS}/test-review-app-678--5ce6e4a15e"))
                .is_some()
    );
    assert!(
        !status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "ReconcileFailed")
    );
}

#[tokio::test]
async fn a_build_job_just_created_is_not_mistaken_for_a_vanished_one() {
    // The Job watch has not delivered the Job the ADD created when a RECONCILE comes in.
    let w = world();
    w.watch_sees_app();
    w.handle(AppEvent::Add).await;
    let sent = w.handle(AppEvent::Reconcile).await;
    assert_eq!(
        sent,
        lines(&[("GET", TLS_SOURCE, "")]),
        "no restart, no BuildRestarted Warning"
    );
}

/// The reasons of the Events among `log`.
fn event_reasons(log: &[Logged]) -> Vec<String> {
    log.iter()
        .filter(|r| r.path.starts_with(EVENTS))
        .map(|r| r.body["reason"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn a_build_that_finished_and_was_deleted_while_the_operator_was_down_is_deployed() {
    let mut w = world();
    w.watch_sees_app();
    w.handle(AppEvent::Add).await;
    // The operator stops. The build succeeds; then the Job's TTL deletes it: the build-outcome
    // finalizer keeps it, being deleted, with its outcome.
    let mut job = w.fake.get(JOB1).unwrap();
    job["status"] = json!({"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1});
    job["metadata"]["deletionTimestamp"] = json!("2026-11-24T07:00:00Z");
    w.fake.put(JOB1, job);

    w.restart();
    let log = w.handle_logged(AppEvent::Add).await;
    let sent = normalise(&log);
    assert!(
        !sent.iter().any(|l| l.starts_with(&format!("POST {JOBS}"))),
        "no second build: {sent:#?}"
    );
    assert_eq!(event_reasons(&log), ["Deployed"], "no BuildRestarted");
    let deployment = log.iter().find(|r| r.path == DEPLOYMENT).unwrap();
    assert_eq!(deployment.body["spec"]["replicas"], 1);
    assert_eq!(
        deployment.body["spec"]["template"]["spec"]["containers"][0]["image"],
        "grossvogel/test-review-app-678:c8c9aa334a"
    );
    // The status records the outcome, then the Job is released (and goes).
    let status_at = sent
        .iter()
        .position(|l| l == &format!("PATCH {APP}/status apply"))
        .unwrap();
    assert_eq!(sent.last(), Some(&format!("PATCH {JOB1} json-patch")));
    assert!(status_at < sent.len() - 1);
    assert_eq!(log.last().unwrap().body, release_body());
    assert!(w.fake.get(JOB1).is_none(), "released: the deleted Job goes");
    let status = w.status();
    assert_eq!(
        (status["appStatus"].as_str(), status["buildStatus"].as_str()),
        (Some("deployed"), Some("success"))
    );
}

#[tokio::test]
async fn a_running_build_deleted_by_hand_is_released_and_started_again() {
    let mut w = world();
    w.watch_sees_app();
    w.handle(AppEvent::Add).await;
    w.job_reports(JOB1, json!({"active": 1}));
    let first_uid = w.fake.get(JOB1).unwrap()["metadata"]["uid"].clone();
    w.job_deleted_by_someone(JOB1);
    let log = w.handle_logged(AppEvent::Reconcile).await;
    let mut sent = normalise(&log);
    // The status changes only if the clock moved to another second since the ADD.
    if sent.last() == Some(&format!("PATCH {APP}/status apply")) {
        sent.pop();
    }
    assert_eq!(
        sent,
        lines(&[
            ("PATCH", JOB1, "json-patch"),
            ("POST", JOBS, ""),
            ("GET", TLS_SOURCE, ""),
            ("EVENT", "", ""),
        ]),
        "release first, then create the same Job again"
    );
    assert_eq!(event_reasons(&log), ["BuildRestarted"]);
    let job = w.fake.get(JOB1).expect("started again");
    assert_ne!(job["metadata"]["uid"], first_uid);
    assert!(job["metadata"]["deletionTimestamp"].is_null());
}

#[tokio::test]
async fn build_jobs_no_app_waits_for_are_released_once_the_apps_are_listed() {
    let mut w = world();
    w.watch_sees_app();
    w.handle(AppEvent::Add).await;
    let deleting = |name: &str, owner: &str| {
        json!({"apiVersion": "batch/v1", "kind": "Job",
               "metadata": {"name": name, "namespace": "review-build",
                            "deletionTimestamp": "2026-11-24T07:00:00Z",
                            "finalizers": ["reviewtron.k8s.revelry.co/build-outcome"],
                            "ownerReferences": [{"apiVersion": "reviewtron.k8s.revelry.co/v1",
                                "kind": "ReviewApp", "name": owner, "uid": "u", "controller": true}]},
               "spec": {"template": {}}})
    };
    // A Job of an app that is gone (garbage-collected after its teardown, say), and an old Job
    // of the app, not the one it waits for.
    let orphan = format!("{JOBS}/gone-1--0123456789");
    let old = format!("{JOBS}/test-review-app-678--5ce6e4a15e");
    w.fake.put(&orphan, deleting("gone-1--0123456789", "gone"));
    w.fake
        .put(&old, deleting("test-review-app-678--5ce6e4a15e", "test"));
    w.job_watch_catches_up();

    // Before the app list completes, an unknown app may just not be listed yet.
    w.fake.take_log();
    w.handler
        .handle("gone".into(), AppEvent::Reconcile)
        .await
        .unwrap();
    assert!(w.fake.take_log().is_empty(), "nothing released early");

    w.apps_listed();
    let mut owners = w.index.jobs.owners_holding();
    owners.sort();
    assert_eq!(owners, ["gone", "test"]);
    w.fake.take_log();
    w.handler
        .handle("gone".into(), AppEvent::Reconcile)
        .await
        .unwrap();
    assert_eq!(
        normalise(&w.fake.take_log()),
        lines(&[("PATCH", &orphan, "json-patch")])
    );
    let sent = w.handle(AppEvent::Reconcile).await;
    assert!(
        sent.contains(&format!("PATCH {old} json-patch")),
        "{sent:#?}"
    );
    assert!(
        w.fake.get(JOB1).is_some(),
        "the Job the app waits for is left to its transition"
    );
    assert!(w.fake.get(&orphan).is_none() && w.fake.get(&old).is_none());
}

#[tokio::test]
async fn a_missing_env_secret_is_reported_and_clears_when_it_appears() {
    let w = world();
    w.fake.remove(&format!("{SECRETS}/secret-two"));
    w.watch_sees_app();
    let log = w.handle_logged(AppEvent::Add).await;
    assert_eq!(event_reasons(&log), ["BuildStarted", "MissingSecrets"]);
    assert!(
        normalise(&log).contains(&format!("PATCH {DEPLOYMENT} apply")),
        "the children are applied anyway"
    );
    let condition = |w: &World| {
        w.status()["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "MissingSecrets")
            .cloned()
            .unwrap()
    };
    let missing = condition(&w);
    assert_eq!(missing["status"], "True");
    assert!(
        missing["message"].as_str().unwrap().contains("secret-two"),
        "{missing}"
    );
    // Still missing: nothing more.
    w.watch_sees_app();
    assert_eq!(
        w.handle(AppEvent::Reconcile).await,
        lines(&[("GET", TLS_SOURCE, "")])
    );

    // The Secret watch tells which apps load it; their RECONCILE clears the condition.
    assert_eq!(
        w.index
            .apps
            .lock()
            .using_secret("test-review-app", "secret-two"),
        ["test"]
    );
    assert!(
        w.index
            .apps
            .lock()
            .using_secret("test-review-app", "unrelated")
            .is_empty()
    );
    assert!(
        w.index
            .apps
            .lock()
            .using_secret("elsewhere", "secret-two")
            .is_empty()
    );
    put_secret(&w.fake, "secret-two");
    let log = w.handle_logged(AppEvent::Reconcile).await;
    assert!(event_reasons(&log).is_empty());
    assert_eq!(
        normalise(&log).last(),
        Some(&format!("PATCH {APP}/status apply"))
    );
    assert_eq!(condition(&w)["status"], "False");
}
