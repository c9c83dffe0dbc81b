//! Plans from the real pipeline (ADD, DELETE) executed against a fake API server: the exact
//! requests, in order, and the skip rule on a second run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(
    clippy::too_many_lines,
    reason = "a pinned request sequence reads best as one list"
)]

mod common;

use common::*;
use reviewapp_api::FINALIZER;
use reviewapp_effects::{Lookup, NoIndex};
use reviewapp_resources::{Action, ChildKind, ChildRef, Manifest, Plan};
use reviewapp_state::AppEvent;
use serde_json::{Value, json};

const REVIEWAPP: &str = "/apis/reviewtron.k8s.revelry.co/v1/reviewapps/test";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/default/events";

/// The `(path, manifest)` of every apply of `plan`, in order (the TLS copy without data).
fn applies(plan: &Plan) -> Vec<(String, &Manifest)> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            Action::Apply(m) | Action::CopySecret { target: m, .. } => Some(m),
            _ => None,
        })
        .map(|m| (path_of(&m.child), m))
        .collect()
}

/// URL path of a child.
fn path_of(child: &ChildRef) -> String {
    let prefix = match child.kind.group() {
        "" => "/api/v1".to_string(),
        group => format!("/apis/{group}/v1"),
    };
    format!(
        "{prefix}/namespaces/{}/{}/{}",
        child.namespace,
        child.kind.plural(),
        child.name
    )
}

fn tls_ref() -> ChildRef {
    ChildRef::new(ChildKind::Secret, NS, "test-review-app-678--ingress-tls")
}

/// ADD on an empty cluster: finalizer, build Job, every child in order (the TLS source read
/// just before its copy), the Event, then the status.
#[tokio::test]
async fn add_on_an_empty_cluster_sends_the_pinned_requests() {
    let api = MockApi::healthy();
    let (effects, calls) = new_effects(&api);
    let app = app();
    let (t, plan) = pipeline(&app, AppEvent::Add);

    let report = effects
        .execute(&app, &plan, &MapIndex::all(Lookup::Absent))
        .await
        .unwrap();
    assert_eq!(
        (report.writes, report.skipped, report.events_failed),
        (9, 0, 0)
    );
    assert_eq!(
        report.written.first().map(String::as_str),
        Some("add finalizer")
    );
    assert_eq!(
        report.written.get(1).map(String::as_str),
        Some("create Job review-build/test-review-app-678--c8c9aa334a")
    );
    assert_eq!(report.written.len(), 9);
    let requests = api.take();
    let lines: Vec<String> = requests.iter().map(Recorded::line).collect();
    let mut expected = vec![
        format!("PATCH {REVIEWAPP}?{MANAGER_QUERY}"),
        format!("POST /apis/batch/v1/namespaces/review-build/jobs?{MANAGER_QUERY}"),
    ];
    for (path, manifest) in applies(&plan) {
        if manifest.child == tls_ref() {
            expected.push("GET /api/v1/namespaces/default/secrets/star-review-local-tls".into());
        }
        expected.push(format!("PATCH {path}?{APPLY_QUERY}"));
    }
    expected.push(format!("POST {EVENTS}"));
    assert_eq!(lines, expected);
    assert_eq!(
        lines[2..9],
        [
            format!("PATCH /api/v1/namespaces/{NS}/secrets/{APP}--dbcopy?{APPLY_QUERY}"),
            "GET /api/v1/namespaces/default/secrets/star-review-local-tls".to_string(),
            format!("PATCH /api/v1/namespaces/{NS}/secrets/{APP}--ingress-tls?{APPLY_QUERY}"),
            format!("PATCH /apis/kubedb.com/v1/namespaces/{NS}/postgreses/{APP}--db?{APPLY_QUERY}"),
            format!("PATCH /api/v1/namespaces/{NS}/services/{APP}?{APPLY_QUERY}"),
            format!("PATCH /apis/apps/v1/namespaces/{NS}/deployments/{APP}?{APPLY_QUERY}"),
            format!(
                "PATCH /apis/networking.k8s.io/v1/namespaces/{NS}/ingresses/{APP}?{APPLY_QUERY}"
            ),
        ]
    );

    // The finalizer: a JSON patch guarded by a test of the (absent) list.
    assert_eq!(requests[0].content_type, JSON_PATCH);
    assert_eq!(
        requests[0].body,
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
        ])
    );
    // The build Job: created, not applied.
    assert_eq!(requests[1].content_type, JSON);
    assert_eq!(requests[1].body["kind"], "Job");
    assert_eq!(requests[1].body["metadata"]["name"], JOB);
    assert_eq!(requests[1].body["metadata"]["namespace"], "review-build");
    // Every apply sends exactly the rendered manifest, as server-side apply.
    let applied: Vec<&Recorded> = requests
        .iter()
        .filter(|r| r.method == "PATCH" && r.content_type == APPLY)
        .collect();
    assert_eq!(applied.len(), 6);
    for (request, (_, manifest)) in applied.iter().zip(applies(&plan)) {
        // Every applied object carries the hash of its manifest, then is exactly the manifest.
        let mut body = request.body.clone();
        let annotations = body["metadata"]["annotations"]
            .as_object_mut()
            .expect("annotated");
        let hash = annotations
            .remove(reviewapp_effects::APPLIED_HASH_ANNOTATION)
            .expect("applied-hash");
        assert!(
            hash.as_str()
                .is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit())),
            "{hash}"
        );
        if annotations.is_empty() {
            body["metadata"]
                .as_object_mut()
                .expect("metadata")
                .remove("annotations");
        }
        if manifest.child == tls_ref() {
            let mut expected = manifest.object.clone();
            expected["type"] = json!("kubernetes.io/tls");
            expected["data"] = tls_source()["data"].clone();
            assert_eq!(body, expected);
        } else {
            assert_eq!(body, manifest.object, "{}", request.line());
        }
    }
    // The Event: on the cluster-scoped ReviewApp, so POSTed to the `default` namespace (the
    // body names none: the server fills it from the URL).
    let event = &requests[9];
    assert_eq!(event.content_type, JSON);
    assert_eq!(event.body["apiVersion"], "events.k8s.io/v1");
    assert!(event.body["metadata"].get("namespace").is_none());
    assert!(
        event.body["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("test.")
    );
    assert_eq!(event.body["type"], "Normal");
    assert_eq!(event.body["reason"], "BuildStarted");
    assert_eq!(event.body["action"], "Build");
    assert_eq!(
        event.body["note"],
        format!("building commit c8c9aa334a in Job review-build/{JOB}")
    );
    assert_eq!(event.body["reportingController"], "review-app-operator");
    assert_eq!(event.body["reportingInstance"], "test-pod");
    assert_eq!(
        event.body["regarding"],
        json!({
            "apiVersion": "reviewtron.k8s.revelry.co/v1",
            "kind": "ReviewApp",
            "name": "test",
            "uid": "5b1a6d0e-0000-4000-8000-000000000678",
        })
    );

    // The status, through /status with server-side apply.
    assert!(
        effects
            .write_status(&app, &t.status)
            .await
            .unwrap()
            .is_some()
    );
    let status = api.take();
    assert_eq!(status.len(), 1);
    assert_eq!(
        status[0].line(),
        format!("PATCH {REVIEWAPP}/status?{APPLY_QUERY}")
    );
    assert_eq!(status[0].content_type, APPLY);
    assert_eq!(
        status[0].body,
        json!({
            "apiVersion": "reviewtron.k8s.revelry.co/v1",
            "kind": "ReviewApp",
            "status": serde_json::to_value(&t.status).unwrap(),
        })
    );

    let verbs: Vec<(String, String, Option<u16>)> = calls.all();
    assert_eq!(verbs.len(), 11);
    assert_eq!(verbs[0], ("patch".into(), "ReviewApp".into(), Some(200)));
    assert_eq!(verbs[1], ("create".into(), "Job".into(), Some(201)));
    assert_eq!(verbs[3], ("get".into(), "Secret".into(), Some(200)));
    assert_eq!(verbs[9], ("event".into(), "Event".into(), Some(200)));
    assert_eq!(verbs[10], ("status".into(), "ReviewApp".into(), Some(200)));
    assert_quiet(&api).await;
}

/// The app as the daemon sees it after the first ADD was executed.
async fn first_add(
    api: &MockApi,
    effects: &reviewapp_effects::Effects,
) -> (reviewapp_api::ReviewApp, Plan, MapIndex) {
    let app = app();
    let (t, plan) = pipeline(&app, AppEvent::Add);
    effects
        .execute(&app, &plan, &MapIndex::all(Lookup::Absent))
        .await
        .unwrap();
    let index = MapIndex::from_responses(&api.take(), Lookup::Absent);
    let mut seen = app.clone();
    seen.metadata.finalizers = Some(vec![FINALIZER.to_string()]);
    seen.status = Some(t.status);
    (seen, plan, index)
}

/// A second run of the same plan against what the first one left writes nothing but the
/// Event (a series update of the first one); the TLS source is read to compare its data.
#[tokio::test]
async fn second_run_writes_nothing_but_the_event() {
    let api = MockApi::healthy();
    let (effects, _) = new_effects(&api);
    let (app, plan, index) = first_add(&api, &effects).await;
    assert_eq!(index.map.len(), 7, "the Job and six children");
    assert_eq!(effects.remembered(), 6);

    let report = effects.execute(&app, &plan, &index).await.unwrap();
    assert_eq!(
        (report.writes, report.skipped, report.events_failed),
        (1, 8, 0)
    );
    let requests = api.take();
    let lines: Vec<String> = requests.iter().map(Recorded::line).collect();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert_eq!(
        lines[0],
        "GET /api/v1/namespaces/default/secrets/star-review-local-tls"
    );
    // The recorder turns a repeated Event into a series: a merge patch of the first one.
    assert!(
        lines[1].starts_with(&format!("PATCH {EVENTS}/test.")),
        "{}",
        lines[1]
    );
    assert_eq!(requests[1].content_type, MERGE_PATCH);
    assert_eq!(requests[1].body["series"]["count"], 2);

    // An identical status is not written: no request at all.
    let status = app.status.clone().unwrap();
    assert!(effects.write_status(&app, &status).await.unwrap().is_none());
    assert_quiet(&api).await;
}

/// A Deployment deleted behind the operator's back is re-applied, and only it.
#[tokio::test]
async fn drift_a_deleted_deployment_is_applied_again() {
    let api = MockApi::healthy();
    let (effects, _) = new_effects(&api);
    let (app, plan, mut index) = first_add(&api, &effects).await;
    // The watch cache shows every object as created (a quiet second run), then the Deployment
    // is deleted behind the operator's back.
    effects.execute(&app, &plan, &index).await.unwrap();
    api.take();
    let deployment = ChildRef::new(ChildKind::Deployment, NS, APP);
    index.set(deployment.clone(), Lookup::Absent);

    let report = effects.execute(&app, &plan, &index).await.unwrap();
    assert_eq!((report.writes, report.skipped), (2, 7));
    let requests = api.take();
    let applied: Vec<&Recorded> = requests
        .iter()
        .filter(|r| r.content_type == APPLY)
        .collect();
    assert_eq!(applied.len(), 1);
    assert_eq!(
        applied[0].line(),
        format!("PATCH {}?{APPLY_QUERY}", path_of(&deployment))
    );
    assert_eq!(requests.len(), 3, "GET TLS source, the apply, the Event");
}

/// Changed by someone else (another resourceVersion): applied again; a watch cache still
/// reporting the resourceVersion from before our own apply: skipped.
#[tokio::test]
async fn foreign_changes_are_reverted_and_a_lagging_cache_is_tolerated() {
    let api = MockApi::healthy();
    let (effects, _) = new_effects(&api);
    let app = app();
    let (_, plan) = pipeline(&app, AppEvent::Add);
    let service = ChildRef::new(ChildKind::Service, NS, APP);
    let only_service = Plan {
        actions: plan
            .actions
            .iter()
            .filter(|a| a.applied() == Some(&service))
            .cloned()
            .collect(),
    };
    let mut index = MapIndex::all(Lookup::Absent);
    index.set(service.clone(), present("7"));

    // Pre-existing at "7": applied (nothing remembered).
    let report = effects.execute(&app, &only_service, &index).await.unwrap();
    assert_eq!((report.writes, report.skipped), (1, 0));
    let returned = api.take()[0].returned_rv.clone().unwrap();
    assert_ne!(returned, "7");

    // The cache has not seen our write yet: still "7". Skipped.
    let report = effects.execute(&app, &only_service, &index).await.unwrap();
    assert_eq!((report.writes, report.skipped), (0, 1));
    // The cache caught up.
    index.set(service.clone(), present(&returned));
    let report = effects.execute(&app, &only_service, &index).await.unwrap();
    assert_eq!((report.writes, report.skipped), (0, 1));
    assert!(api.take().is_empty());

    // Someone else changed it.
    index.set(service.clone(), present("999"));
    let report = effects.execute(&app, &only_service, &index).await.unwrap();
    assert_eq!((report.writes, report.skipped), (1, 0));
    assert_eq!(api.take().len(), 1);
}

/// Without an index (kinds nobody watches) every manifest is applied once, then only when it
/// changes; creates and deletes are always sent.
#[tokio::test]
async fn unknown_objects_are_applied_once_per_manifest() {
    let api = MockApi::healthy();
    let (effects, _) = new_effects(&api);
    let app = app();
    let (_, plan) = pipeline(&app, AppEvent::Add);
    let report = effects.execute(&app, &plan, &NoIndex).await.unwrap();
    assert_eq!((report.writes, report.skipped), (9, 0));
    api.take();

    let report = effects.execute(&app, &plan, &NoIndex).await.unwrap();
    // Finalizer patch, Job create (the server would answer 409 and it would be adopted),
    // the Event; the six applies are skipped.
    assert_eq!((report.writes, report.skipped), (3, 6));
    let methods: Vec<String> = api
        .take()
        .iter()
        .map(|r| format!("{} {}", r.method, r.content_type))
        .collect();
    assert_eq!(methods.len(), 4, "{methods:#?}"); // + the GET of the TLS source
    assert!(!methods.iter().any(|m| m.ends_with(APPLY)));

    // A changed manifest (a new replica count) is applied again.
    let mut changed = plan.clone();
    for action in &mut changed.actions {
        if let Action::Apply(m) = action
            && m.child.kind == ChildKind::Deployment
        {
            m.object["spec"]["replicas"] = json!(1);
        }
    }
    effects.execute(&app, &changed, &NoIndex).await.unwrap();
    let applied: Vec<Recorded> = api
        .take()
        .into_iter()
        .filter(|r| r.content_type == APPLY)
        .collect();
    assert_eq!(applied.len(), 1);
    assert_eq!(applied[0].body["kind"], "Deployment");
    assert_eq!(applied[0].body["spec"]["replicas"], 1);
}

/// DELETE: the Event, a Background delete of the build Job and its release (an index that knows
/// nothing: the Job is read, and a Job that is gone needs no release), every child
/// latest-created first (404s, including a kind that is not installed, count as done), then the
/// finalizer removal.
#[tokio::test]
async fn delete_tears_down_in_order_and_removes_the_finalizer() {
    let api = MockApi::start(|r| {
        if r.method != "DELETE" {
            return None;
        }
        if r.path.contains("/postgresql.cnpg.io/") {
            Some(Reply::Text(404, "404 page not found"))
        } else if r.path.contains("/deployments/") {
            Some(Reply::Json(
                404,
                status(404, "NotFound", "deployments.apps \"x\" not found"),
            ))
        } else {
            None
        }
    });
    let (effects, _) = new_effects(&api);
    let (_, _, _) = first_add(&api, &effects).await;
    assert_eq!(effects.remembered(), 6);

    let app = deleted_app();
    let (_, plan) = pipeline(&app, AppEvent::Delete);
    let report = effects.execute(&app, &plan, &NoIndex).await.unwrap();
    assert_eq!(
        (report.writes, report.skipped, report.events_failed),
        (11, 1, 0)
    );
    assert_eq!(effects.remembered(), 0, "deletes forget what was applied");

    let requests = api.take();
    let lines: Vec<String> = requests.iter().map(Recorded::line).collect();
    assert_eq!(
        lines,
        vec![
            format!("POST {EVENTS}"),
            format!("DELETE /apis/batch/v1/namespaces/review-build/jobs/{JOB}"),
            format!("GET /apis/batch/v1/namespaces/review-build/jobs/{JOB}"),
            format!("DELETE /apis/networking.k8s.io/v1/namespaces/{NS}/ingresses/{APP}"),
            format!("DELETE /api/v1/namespaces/{NS}/services/{APP}--activator"),
            format!("DELETE /apis/apps/v1/namespaces/{NS}/deployments/{APP}"),
            format!("DELETE /api/v1/namespaces/{NS}/services/{APP}"),
            format!("DELETE /apis/postgresql.cnpg.io/v1/namespaces/{NS}/clusters/{APP}--db"),
            format!("DELETE /apis/kubedb.com/v1/namespaces/{NS}/postgreses/{APP}--db"),
            format!("DELETE /api/v1/namespaces/{NS}/secrets/{APP}--ingress-tls"),
            format!("DELETE /api/v1/namespaces/{NS}/secrets/{APP}--dbcopy"),
            format!("PATCH {REVIEWAPP}?{MANAGER_QUERY}"),
        ]
    );
    for delete in requests.iter().filter(|r| r.method == "DELETE") {
        assert_eq!(delete.content_type, JSON);
        assert_eq!(delete.body, json!({"propagationPolicy": "Background"}));
    }
    assert_eq!(requests[0].body["reason"], "TearDown");
    let finalizer = requests.last().unwrap();
    assert_eq!(finalizer.content_type, JSON_PATCH);
    assert_eq!(
        finalizer.body,
        json!([
            {"op": "test", "path": "/metadata/finalizers/0", "value": FINALIZER},
            {"op": "remove", "path": "/metadata/finalizers/0"},
        ])
    );
}

/// DELETE with a synced cache: children this process never applied and the cache knows to be
/// absent are not deleted; build Jobs always are (a skipped delete of a superseded build would
/// never be retried).
#[tokio::test]
async fn delete_skips_objects_known_to_be_absent() {
    let api = MockApi::healthy();
    let (effects, _) = new_effects(&api);
    let app = deleted_app();
    let (_, plan) = pipeline(&app, AppEvent::Delete);
    let mut index = MapIndex::all(Lookup::Absent);
    index.set(ChildRef::new(ChildKind::Deployment, NS, APP), present("5"));
    index.finalizers.insert(
        ChildRef::new(ChildKind::Job, "review-build", JOB),
        Vec::new(),
    );
    let report = effects.execute(&app, &plan, &index).await.unwrap();
    assert_eq!(
        (report.writes, report.skipped),
        (4, 8),
        "no release: not held"
    );
    let lines = api.lines();
    assert_eq!(lines[0], format!("POST {EVENTS}"));
    assert!(
        lines[1].starts_with("DELETE /apis/batch/v1/namespaces/review-build/jobs/"),
        "{}",
        lines[1]
    );
    assert_eq!(
        lines[2],
        format!("DELETE /apis/apps/v1/namespaces/{NS}/deployments/{APP}")
    );
    assert_eq!(lines[3], format!("PATCH {REVIEWAPP}?{MANAGER_QUERY}"));
    assert_eq!(lines.len(), 4);
}

/// A child this process applied is deleted even when the cache says it is absent: the cache
/// may lag, and a teardown must not leave it behind.
#[tokio::test]
async fn delete_of_an_applied_child_is_sent_whatever_the_cache_says() {
    let api = MockApi::healthy();
    let (effects, _) = new_effects(&api);
    let (app, _plan, _index) = first_add(&api, &effects).await;
    let (_, teardown) = pipeline(&deleted_app(), AppEvent::Delete);
    api.take();
    effects
        .execute(&app, &teardown, &MapIndex::all(Lookup::Absent))
        .await
        .unwrap();
    let lines = api.lines();
    assert!(
        lines.contains(&format!(
            "DELETE /apis/apps/v1/namespaces/{NS}/deployments/{APP}"
        )),
        "{lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("postgresql.cnpg.io")),
        "never applied and known absent: not deleted: {lines:#?}"
    );
}

/// A build Job that already exists is adopted: a 409 AlreadyExists is success, not retried,
/// and the plan goes on; a Job the cache knows is not created at all.
#[tokio::test]
async fn an_existing_build_job_is_adopted() {
    let api = MockApi::start(|r| {
        (r.method == "POST" && r.path.ends_with("/jobs")).then(|| {
            Reply::Json(
                409,
                status(
                    409,
                    "AlreadyExists",
                    &format!("jobs.batch \"{JOB}\" already exists"),
                ),
            )
        })
    });
    let (effects, calls) = new_effects(&api);
    let app = app();
    let (_, plan) = pipeline(&app, AppEvent::Add);
    let report = effects
        .execute(&app, &plan, &MapIndex::all(Lookup::Absent))
        .await
        .unwrap();
    assert_eq!(report.writes, 9);
    let lines = api.lines();
    assert_eq!(lines.len(), 10);
    assert!(lines[1].starts_with("POST /apis/batch/v1/namespaces/review-build/jobs"));
    assert!(lines[2].starts_with("PATCH /api/v1/namespaces/test-review-app/secrets/"));
    let creates: Vec<_> = calls
        .all()
        .into_iter()
        .filter(|(verb, _, _)| verb == "create")
        .collect();
    assert_eq!(creates, vec![("create".into(), "Job".into(), Some(409))]);

    let mut index = MapIndex::all(Lookup::Absent);
    index.set(
        ChildRef::new(ChildKind::Job, "review-build", JOB),
        present("3"),
    );
    let job_only = Plan {
        actions: plan
            .actions
            .iter()
            .filter(|a| matches!(a, Action::CreateJob(_)))
            .cloned()
            .collect(),
    };
    let report = effects.execute(&app, &job_only, &index).await.unwrap();
    assert_eq!((report.writes, report.skipped), (0, 1));
    assert_quiet(&api).await;
}

/// The status is written only when it differs, and an app that is gone is not an error.
#[tokio::test]
async fn status_of_a_vanished_app_is_not_an_error() {
    let api = MockApi::start(|r| {
        r.path.ends_with("/status").then(|| {
            Reply::Json(
                404,
                status(404, "NotFound", "reviewapps \"test\" not found"),
            )
        })
    });
    let (effects, _) = new_effects(&api);
    let app = app();
    let (t, _) = pipeline(&app, AppEvent::Add);
    assert!(
        effects
            .write_status(&app, &t.status)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(api.take().len(), 1);

    // A field that became None is removed because the whole status is applied.
    let mut seen = app.clone();
    seen.status = Some(t.status.clone());
    let mut cleared = t.status.clone();
    cleared.url = None;
    let api = MockApi::healthy();
    let (effects, _) = new_effects(&api);
    assert!(
        effects
            .write_status(&seen, &cleared)
            .await
            .unwrap()
            .is_some()
    );
    let body: Value = api.take()[0].body.clone();
    assert!(body["status"].get("url").is_none());
    assert_eq!(body["status"]["buildJobName"], JOB);
}

/// What a restarted operator's cache shows: the objects with the resourceVersions and the
/// applied-hash annotations the previous process left.
struct AfterRestart {
    index: MapIndex,
    hashes: std::collections::HashMap<ChildRef, String>,
}

impl reviewapp_effects::LiveIndex for AfterRestart {
    fn lookup(&self, child: &ChildRef) -> Lookup {
        self.index.lookup(child)
    }

    fn applied_hash(&self, child: &ChildRef) -> Option<String> {
        self.hashes.get(child).cloned()
    }
}

/// After a restart the memory of applies is empty: objects whose applied-hash annotation
/// matches the desired manifest are adopted, not applied again; a changed manifest still is.
#[tokio::test]
async fn a_restarted_operator_adopts_what_it_applied_before() {
    let api = MockApi::healthy();
    let (first, _) = new_effects(&api);
    let app = app();
    let (_, plan) = pipeline(&app, AppEvent::Add);
    first
        .execute(&app, &plan, &MapIndex::all(Lookup::Absent))
        .await
        .unwrap();
    let requests = api.take();
    let mut hashes = std::collections::HashMap::new();
    for r in requests.iter().filter(|r| r.content_type == APPLY) {
        let child = child_of(&r.body).expect("a child");
        let hash = r.body["metadata"]["annotations"][reviewapp_effects::APPLIED_HASH_ANNOTATION]
            .as_str()
            .expect("annotated");
        hashes.insert(child, hash.to_string());
    }
    assert_eq!(hashes.len(), 6);
    let restarted = AfterRestart {
        index: MapIndex::from_responses(&requests, Lookup::Absent),
        hashes,
    };

    let (second, _) = new_effects(&api);
    assert_eq!(second.remembered(), 0, "a new process remembers nothing");
    let mut seen = app.clone();
    seen.metadata.finalizers = Some(vec![FINALIZER.to_string()]);
    let report = second.execute(&seen, &plan, &restarted).await.unwrap();
    let writes: Vec<String> = api
        .take()
        .iter()
        .filter(|r| r.method != "GET")
        .map(Recorded::line)
        .collect();
    assert!(
        writes.iter().all(|l| l.contains("/events")),
        "only the Event is written, no child is applied again: {writes:#?}"
    );
    assert_eq!(report.skipped, 8, "the Job, six children, the finalizer");
    assert_eq!(second.remembered(), 6, "adopted objects are remembered");
}
