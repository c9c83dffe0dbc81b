//! What the watches know, in one place: the `ReviewApp`s ([`AppIndex`]), the build Jobs
//! ([`BuildJobs`]), the build cap's queue ([`BuildSlots`]) and what exists of every child kind (a [`LiveIndex`]). The watch tasks write
//! it; the handlers read it and record their own writes. Also the one lock helper ([`Shared`])
//! and the writer of a reflector store that says when it has listed ([`ListingWriter`]).

use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use k8s_openapi::api::batch::v1::Job;
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::runtime::watcher::Event;
use reviewapp_api::OperatorConfig;
use reviewapp_effects::LiveIndex;

use crate::app_index::AppIndex;
use crate::build_jobs::BuildJobs;
use crate::build_queue::BuildSlots;

/// The watch-side state every handler reads, shared by the watch tasks and the handlers.
pub struct Index {
    /// The `ReviewApp`s the watch delivered, with the daemon's own bookkeeping of them.
    pub apps: Shared<AppIndex>,
    /// The build Jobs: the Job watch's store and what this process did to them.
    pub jobs: BuildJobs,
    /// What exists of every child kind, for the effects layer and the missing env Secrets.
    pub live: Arc<dyn LiveIndex>,
    /// The build cap and its queue (`build.maxConcurrent`).
    pub slots: BuildSlots,
}

impl Index {
    /// An empty index over the Job store `jobs` (build Jobs in `config.build_namespace`) and the
    /// child stores `live`.
    pub fn new(config: &OperatorConfig, jobs: Store<Job>, live: Arc<dyn LiveIndex>) -> Self {
        Index {
            apps: Shared::default(),
            jobs: BuildJobs::new(jobs, &config.build_namespace),
            live,
            slots: BuildSlots::new(config.build_cap()),
        }
    }
}

/// A value behind the one lock that guards it. Every method of the indexes kept this way leaves
/// them consistent when it returns, and none calls out while holding the lock; a panic in one
/// (a bug) is reported by its task, and the index goes on as that call left it.
#[derive(Debug, Default)]
pub struct Shared<T>(Mutex<T>);

impl<T> Shared<T> {
    /// `value`, behind its lock.
    pub fn new(value: T) -> Self {
        Shared(Mutex::new(value))
    }

    /// The value, locked for the caller (a poisoned lock is taken over: see the type's doc).
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A reflector store's writer that also records whether the store's first list has completed,
/// for readers that must not wait ([`Listed`]). kube-runtime's `Store::wait_until_ready` is how
/// the controller waits for it, but it wakes only the task that polled it last: a check without
/// waiting from another task would leave the waiting one asleep.
pub struct ListingWriter<K: reflector::Lookup + Clone + 'static>
where
    K::DynamicType: Eq + Hash + Clone,
{
    writer: Writer<K>,
    listed: Listed,
}

impl<K: reflector::Lookup + Clone + 'static> ListingWriter<K>
where
    K::DynamicType: Eq + Hash + Clone,
{
    /// Writes through `writer`; the store is not listed yet.
    pub fn new(writer: Writer<K>) -> Self {
        ListingWriter {
            writer,
            listed: Listed::default(),
        }
    }

    /// Applies one watch event to the store; the first `InitDone` marks it listed.
    pub fn apply(&mut self, event: &Event<K>) {
        self.writer.apply_watcher_event(event);
        if matches!(event, Event::InitDone) {
            self.listed.0.store(true, Ordering::Release);
        }
    }

    /// A reader of the store.
    pub fn store(&self) -> Store<K> {
        self.writer.as_reader()
    }

    /// Whether the store has listed, for its readers.
    pub fn listed(&self) -> Listed {
        self.listed.clone()
    }
}

/// Whether a store's first list has completed (see [`ListingWriter`]).
#[derive(Clone, Debug, Default)]
pub struct Listed(Arc<AtomicBool>);

impl Listed {
    /// Whether the first list has completed.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}
