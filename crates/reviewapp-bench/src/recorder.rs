//! What the benchmark sees of the operator's writes: in-process subscriptions to every watched
//! resource ([`Handle::subscribe`]), each change timestamped when the subscriber task receives it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use reviewapp_testkit::{Handle, ObjectEvent};
use serde_json::Value;

use crate::{APP_NS, BUILD_NS, GROUP};

/// What the subscriptions saw of one object.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    pub at: Instant,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub kind: &'static str,
    pub replicas: Option<i64>,
    /// The first container's image.
    pub image: Option<String>,
    /// `(appStatus, buildStatus)` of a ReviewApp.
    pub status: Option<(String, String)>,
}

/// Every change of the watched objects, by (plural, name).
#[derive(Default)]
pub(crate) struct Recorder {
    objects: HashMap<(&'static str, String), Vec<Seen>>,
    /// First ADDED of each child, by ReviewApp name (`app.kubernetes.io/instance`).
    pub children: HashMap<String, HashMap<(&'static str, String), Instant>>,
}

/// The recorder, shared with the subscriber tasks.
pub(crate) type Shared = Arc<Mutex<Recorder>>;

/// The recorder, locked (a poisoned lock is still used: every record leaves it consistent).
pub(crate) fn lock(r: &Shared) -> std::sync::MutexGuard<'_, Recorder> {
    r.lock().unwrap_or_else(|e| e.into_inner())
}

impl Recorder {
    /// Every change of one object, oldest first.
    pub fn history(&self, plural: &'static str, name: &str) -> &[Seen] {
        self.objects
            .get(&(plural, name.to_string()))
            .map_or(&[], Vec::as_slice)
    }

    /// Whether the object exists (its last change is not a delete).
    pub fn exists(&self, plural: &'static str, name: &str) -> bool {
        self.history(plural, name)
            .last()
            .is_some_and(|s| s.kind != "DELETED")
    }

    /// `(appStatus, buildStatus)` of a ReviewApp that exists.
    pub fn status(&self, app: &str) -> Option<(String, String)> {
        let last = self.history("reviewapps", app).last()?;
        if last.kind == "DELETED" {
            return None;
        }
        last.status.clone()
    }

    /// Records one change of a `plural` object seen `at`; `child`: one of an app's children.
    fn record(&mut self, plural: &'static str, child: bool, event: &ObjectEvent, at: Instant) {
        let o = &*event.object;
        let name = text(o, "/metadata/name").unwrap_or_default();
        let instance = text(o, "/metadata/labels/app.kubernetes.io~1instance");
        if let Some(app) = instance.filter(|_| child && event.kind == "ADDED") {
            self.children
                .entry(app)
                .or_default()
                .entry((plural, name.clone()))
                .or_insert(at);
        }
        let seen = Seen {
            at,
            kind: event.kind,
            replicas: o.pointer("/spec/replicas").and_then(Value::as_i64),
            image: text(o, "/spec/template/spec/containers/0/image"),
            status: text(o, "/status/appStatus").zip(text(o, "/status/buildStatus")),
        };
        self.objects.entry((plural, name)).or_default().push(seen);
    }
}

fn text(v: &Value, pointer: &str) -> Option<String> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The watched resources: (group, version, plural, namespace, is a child).
pub(crate) const WATCHED: [(&str, &str, &str, Option<&str>, bool); 7] = [
    ("", "v1", "secrets", Some(APP_NS), true),
    ("kubedb.com", "v1", "postgreses", Some(APP_NS), true),
    ("", "v1", "services", Some(APP_NS), true),
    ("apps", "v1", "deployments", Some(APP_NS), true),
    ("networking.k8s.io", "v1", "ingresses", Some(APP_NS), true),
    ("batch", "v1", "jobs", Some(BUILD_NS), false),
    (GROUP, "v1", "reviewapps", None, false),
];

/// Subscribes to every [`WATCHED`] resource, recording into `recorder`; the tasks run until
/// aborted.
pub(crate) fn subscribe_all(
    handle: &Handle,
    recorder: &Shared,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut tasks = Vec::new();
    for (group, version, plural, ns, child) in WATCHED {
        let mut sub = handle
            .subscribe(group, version, plural, ns, None)
            .map_err(|e| anyhow::anyhow!("subscribing to {plural}: {e}"))?;
        let recorder = recorder.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(event) = sub.next().await {
                let at = Instant::now();
                lock(&recorder).record(plural, child, &event, at);
            }
        }));
    }
    Ok(tasks)
}
