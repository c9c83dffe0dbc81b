//! Watches: a bounded per-resource event history, the open watch streams and what each one is
//! sent (events that match its namespace and selectors, bookmarks, a final `410 Expired`).

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::meta;
use crate::resource::ResourceKey;
use crate::selector::Filter;
use crate::status::ApiError;

/// What happened to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    Added,
    Modified,
    Deleted,
}

/// One change, as kept in the history.
#[derive(Debug)]
pub(crate) struct Recorded {
    pub rv: u64,
    pub change: Change,
    pub object: Arc<Value>,
    /// The object before a modification (to tell selector enter/leave apart).
    pub previous: Option<Arc<Value>>,
}

/// What a watch stream is sent.
#[derive(Debug)]
pub(crate) enum Item {
    Event(&'static str, Arc<Value>),
    Bookmark(u64),
    /// The bookmark ending the initial events of a streaming list (`sendInitialEvents`).
    InitialEventsEnd(u64),
    Expired,
}

/// Which objects a watch covers.
#[derive(Clone, Debug)]
pub(crate) struct WatchSpec {
    pub res: ResourceKey,
    pub namespace: Option<String>,
    pub filter: Filter,
    pub bookmarks: bool,
}

impl WatchSpec {
    fn wants(&self, object: &Value) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| meta::namespace(object) == ns)
            && self.filter.matches(object)
    }

    /// The event this watch sees for a change, if any: a modification that makes an object
    /// enter (leave) the selection is an `ADDED` (`DELETED`), as on the real server.
    fn translate(&self, rec: &Recorded) -> Option<Item> {
        let now = self.wants(&rec.object);
        let kind = match rec.change {
            Change::Added => now.then_some("ADDED"),
            Change::Deleted => now.then_some("DELETED"),
            Change::Modified => {
                let before = rec.previous.as_deref().is_some_and(|p| self.wants(p));
                match (before, now) {
                    (true, true) => Some("MODIFIED"),
                    (false, true) => Some("ADDED"),
                    (true, false) => Some("DELETED"),
                    (false, false) => None,
                }
            }
        };
        kind.map(|k| Item::Event(k, rec.object.clone()))
    }
}

struct Watcher {
    spec: WatchSpec,
    tx: UnboundedSender<Item>,
    last_rv: u64,
}

#[derive(Default)]
struct History {
    events: VecDeque<Arc<Recorded>>,
    /// Resuming from a resourceVersion below this one would miss evicted events.
    floor: u64,
}

/// The event histories and open watches of one world.
pub(crate) struct WatchHub {
    history: HashMap<ResourceKey, History>,
    floor: u64,
    watchers: Vec<Watcher>,
    limit: usize,
}

/// Where a new watch starts.
pub(crate) enum Start {
    /// `resourceVersion` "" or "0": `ADDED` for these existing objects first, then (for a
    /// streaming list) a bookmark marking the end of the initial events.
    Existing(Vec<Arc<Value>>, bool),
    /// After this resourceVersion, replayed from the history.
    After(u64),
}

impl WatchHub {
    /// A hub keeping at most `limit` events per resource.
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            history: HashMap::new(),
            floor: 0,
            watchers: Vec::new(),
            limit: limit.max(1),
        }
    }

    /// Records a change of `res` and sends it to the watches that see it.
    pub(crate) fn record(&mut self, res: &ResourceKey, rec: Recorded) {
        let rec = Arc::new(rec);
        let history = self.history.entry(res.clone()).or_default();
        history.events.push_back(rec.clone());
        while history.events.len() > self.limit {
            if let Some(evicted) = history.events.pop_front() {
                history.floor = evicted.rv;
            }
        }
        self.watchers.retain_mut(|w| {
            if w.spec.res != *res {
                return !w.tx.is_closed();
            }
            match w.spec.translate(&rec) {
                Some(item) => {
                    w.last_rv = rec.rv;
                    w.tx.send(item).is_ok()
                }
                None => !w.tx.is_closed(),
            }
        })
    }

    /// Opens a watch at `start`; `current` is the world's resourceVersion.
    pub(crate) fn open(
        &mut self,
        spec: WatchSpec,
        start: Start,
        current: u64,
    ) -> UnboundedReceiver<Item> {
        let (tx, rx) = unbounded_channel();
        match start {
            Start::Existing(objects, initial_events_end) => {
                for object in objects.into_iter().filter(|o| spec.wants(o)) {
                    let _ = tx.send(Item::Event("ADDED", object));
                }
                if initial_events_end {
                    let _ = tx.send(Item::InitialEventsEnd(current));
                }
            }
            Start::After(rv) => {
                let history = self.history.get(&spec.res);
                let floor = self.floor.max(history.map_or(0, |h| h.floor));
                if rv < floor {
                    let _ = tx.send(Item::Expired);
                    return rx;
                }
                for rec in history
                    .iter()
                    .flat_map(|h| h.events.iter())
                    .filter(|r| r.rv > rv)
                {
                    if let Some(item) = spec.translate(rec) {
                        let _ = tx.send(item);
                    }
                }
            }
        }
        self.watchers.push(Watcher {
            spec,
            tx,
            last_rv: current,
        });
        rx
    }

    /// Sends a bookmark at `rv` to every watch that asked for bookmarks and has not been told
    /// about `rv` yet.
    pub(crate) fn bookmark(&mut self, rv: u64) {
        self.watchers.retain_mut(|w| {
            if w.spec.bookmarks && w.last_rv < rv {
                w.last_rv = rv;
                w.tx.send(Item::Bookmark(rv)).is_ok()
            } else {
                !w.tx.is_closed()
            }
        });
    }

    /// Ends every open watch (after the events already sent to it).
    pub(crate) fn cut(&mut self) {
        self.watchers.clear();
    }

    /// Forgets every event up to `rv`: open watches end with `410 Expired`, and so does any
    /// watch resuming from an older resourceVersion.
    pub(crate) fn expire(&mut self, rv: u64) {
        self.history.clear();
        self.floor = rv;
        for w in self.watchers.drain(..) {
            let _ = w.tx.send(Item::Expired);
        }
    }

    /// Number of open watches.
    pub(crate) fn open_count(&self) -> usize {
        self.watchers.iter().filter(|w| !w.tx.is_closed()).count()
    }
}

/// How a watch stream renders its items.
#[derive(Clone, Debug)]
pub(crate) struct Render {
    /// Answer `PartialObjectMetadata` objects.
    pub meta_only: bool,
    /// `apiVersion` of bookmark objects.
    pub api_version: String,
    /// `kind` of bookmark objects.
    pub kind: String,
}

impl Render {
    fn line(&self, item: &Item) -> Vec<u8> {
        let event = match item {
            Item::Event(kind, object) => {
                let object = if self.meta_only {
                    partial_metadata(object)
                } else {
                    (**object).clone()
                };
                json!({"type": kind, "object": object})
            }
            Item::Bookmark(rv) | Item::InitialEventsEnd(rv) => {
                let (api_version, kind) = if self.meta_only {
                    ("meta.k8s.io/v1", "PartialObjectMetadata")
                } else {
                    (self.api_version.as_str(), self.kind.as_str())
                };
                let mut metadata = json!({"resourceVersion": rv.to_string()});
                if matches!(item, Item::InitialEventsEnd(_)) {
                    metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
                }
                json!({"type": "BOOKMARK", "object": {
                    "apiVersion": api_version, "kind": kind, "metadata": metadata,
                }})
            }
            Item::Expired => json!({"type": "ERROR", "object": ApiError::expired().to_status()}),
        };
        let mut line = serde_json::to_vec(&event).unwrap_or_default();
        line.push(b'\n');
        line
    }
}

/// `object` as a `meta.k8s.io/v1` `PartialObjectMetadata`.
pub(crate) fn partial_metadata(object: &Value) -> Value {
    json!({
        "apiVersion": "meta.k8s.io/v1",
        "kind": "PartialObjectMetadata",
        "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// The chunked body of a watch: one JSON event per line until the watch is cut, expires, the
/// timeout passes or the emulator stops.
pub(crate) fn body(rx: UnboundedReceiver<Item>, timeout: Duration, render: Render) -> Body {
    struct State {
        rx: UnboundedReceiver<Item>,
        deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
        done: bool,
    }
    let state = State {
        rx,
        deadline: Box::pin(tokio::time::sleep(timeout)),
        done: false,
    };
    let stream = futures::stream::unfold(state, move |mut state| {
        let render = render.clone();
        async move {
            if state.done {
                return None;
            }
            let item = tokio::select! {
                biased;
                () = &mut state.deadline => None,
                item = state.rx.recv() => item,
            }?;
            state.done = matches!(item, Item::Expired);
            Some((render.line(&item), state))
        }
    });
    Body::from_stream(stream.map(Ok::<_, Infallible>))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(name: &str, rv: u64, app: &str) -> Arc<Value> {
        Arc::new(
            json!({"metadata": {"name": name, "namespace": "ns", "resourceVersion": rv.to_string(), "labels": {"app": app}}}),
        )
    }

    fn spec(selector: &str) -> WatchSpec {
        WatchSpec {
            res: ResourceKey::new("", "v1", "configmaps"),
            namespace: Some("ns".into()),
            filter: Filter::parse(Some(selector), None).unwrap(),
            bookmarks: true,
        }
    }

    fn kinds(rx: &mut UnboundedReceiver<Item>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(item) = rx.try_recv() {
            out.push(match item {
                Item::Event(k, o) => format!("{k} {}", meta::name(&o)),
                Item::Bookmark(rv) | Item::InitialEventsEnd(rv) => format!("BOOKMARK {rv}"),
                Item::Expired => "EXPIRED".into(),
            });
        }
        out
    }

    #[test]
    fn selector_enter_and_leave_become_added_and_deleted() {
        let res = ResourceKey::new("", "v1", "configmaps");
        let mut hub = WatchHub::new(10);
        let mut rx = hub.open(spec("app=web"), Start::After(0), 0);
        hub.record(
            &res,
            Recorded {
                rv: 1,
                change: Change::Added,
                object: cm("a", 1, "db"),
                previous: None,
            },
        );
        hub.record(
            &res,
            Recorded {
                rv: 2,
                change: Change::Modified,
                object: cm("a", 2, "web"),
                previous: Some(cm("a", 1, "db")),
            },
        );
        hub.record(
            &res,
            Recorded {
                rv: 3,
                change: Change::Modified,
                object: cm("a", 3, "db"),
                previous: Some(cm("a", 2, "web")),
            },
        );
        hub.bookmark(3);
        hub.bookmark(3);
        assert_eq!(kinds(&mut rx), ["ADDED a", "DELETED a"]);
        hub.bookmark(4);
        assert_eq!(kinds(&mut rx), ["BOOKMARK 4"]);
    }

    #[test]
    fn replay_and_expiry() {
        let res = ResourceKey::new("", "v1", "configmaps");
        let mut hub = WatchHub::new(2);
        for rv in 1..=3 {
            hub.record(
                &res,
                Recorded {
                    rv,
                    change: Change::Added,
                    object: cm(&format!("c{rv}"), rv, "x"),
                    previous: None,
                },
            );
        }
        let mut rx = hub.open(spec(""), Start::After(1), 3);
        assert_eq!(kinds(&mut rx), ["ADDED c2", "ADDED c3"]);
        let mut old = hub.open(spec(""), Start::After(0), 3);
        assert_eq!(kinds(&mut old), ["EXPIRED"]);
        assert_eq!(hub.open_count(), 1);
        hub.expire(3);
        assert_eq!(kinds(&mut rx), ["EXPIRED"]);
        let mut again = hub.open(spec(""), Start::After(2), 3);
        assert_eq!(kinds(&mut again), ["EXPIRED"]);
        let mut fresh = hub.open(spec(""), Start::After(3), 3);
        assert!(kinds(&mut fresh).is_empty());
        hub.cut();
        assert_eq!(hub.open_count(), 0);
    }
}
