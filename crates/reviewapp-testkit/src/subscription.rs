//! In-process watches: [`Handle::subscribe`] and the [`Subscription`] it returns.

use std::sync::Arc;

use serde_json::Value;

use crate::handle::Handle;
use crate::resource::ResourceKey;
use crate::selector::Filter;
use crate::status::ApiError;

/// One change seen by a [`Subscription`].
#[derive(Clone, Debug)]
pub struct ObjectEvent {
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub kind: &'static str,
    /// The object after the change (the last state for `DELETED`).
    pub object: Arc<Value>,
}

/// An in-process watch opened by [`Handle::subscribe`]: every change of the watched objects, as
/// the emulator records it, without HTTP and without an entry in the request log.
#[derive(Debug)]
pub struct Subscription {
    rx: tokio::sync::mpsc::UnboundedReceiver<crate::watch::Item>,
}

impl Subscription {
    /// The next change; `None` once the subscription ended ([`Handle::cut_watches`],
    /// [`Handle::expire_resource_versions`] or the emulator going away).
    pub async fn next(&mut self) -> Option<ObjectEvent> {
        loop {
            match self.rx.recv().await? {
                crate::watch::Item::Event(kind, object) => {
                    return Some(ObjectEvent { kind, object });
                }
                crate::watch::Item::Expired => return None,
                crate::watch::Item::Bookmark(_) | crate::watch::Item::InitialEventsEnd(_) => {}
            }
        }
    }
}

impl Handle {
    /// Watches a resource in-process (in one namespace or all, optionally label-selected),
    /// starting after the current resourceVersion: benchmarks use it to time when the operator's
    /// writes land without polling and without adding requests to the log. It counts as an open
    /// watch ([`Handle::open_watches`]) while it lives.
    pub fn subscribe(
        &self,
        group: &str,
        version: &str,
        plural: &str,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Subscription, ApiError> {
        let filter = Filter::parse(label_selector, None)?;
        let spec = crate::watch::WatchSpec {
            res: ResourceKey::new(group, version, plural),
            namespace: namespace.map(str::to_string),
            filter,
            bookmarks: false,
        };
        let mut world = self.world();
        let rv = world.resource_version().to_string();
        let rx = world.watch(spec, &rv, false)?;
        Ok(Subscription { rx })
    }
}
