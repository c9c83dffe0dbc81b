//! What the daemon knows about build Jobs, from the Job watch: each Job's outcome, finalizers
//! and deletion (the store), the Jobs this process just created (the watch has not delivered
//! them yet), and the Jobs being deleted while the operator's build-outcome finalizer holds
//! them, by owning app (so that a Job no app waits for is released).

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use kube::runtime::reflector::{ObjectRef, Store};
use reviewapp_effects::{LiveIndex, Lookup, SecretLookup};
use reviewapp_resources::{ChildKind, ChildRef};
use reviewapp_state::{BuildObservation, JobState, job_state, observe_job};

/// How long a build Job this process created may be missing from the Job store before it counts
/// as vanished. The watch normally delivers it within milliseconds; a Job deleted while the watch
/// relists leaves no delete event, so this bounds how long such a build waits to be restarted.
const JOB_STORE_LAG: Duration = Duration::from_secs(5);

/// The build Jobs of every app.
pub(crate) struct BuildJobs {
    store: Store<Job>,
    namespace: String,
    /// Build Jobs this process started, by name: when, and whether the start replaced a Job of
    /// the same name that was being deleted (whose delete event is still to come).
    started: Mutex<HashMap<String, (Instant, bool)>>,
    /// Build Jobs this process released, by name, with when: until the watch shows it, a Job
    /// seen held and being deleted is the state just before our release, not a new one.
    released: Mutex<HashMap<String, Instant>>,
    /// Jobs being deleted and still held by the build-outcome finalizer, by owning app name.
    held_deleting: Mutex<HashMap<String, BTreeSet<String>>>,
}

impl BuildJobs {
    pub(crate) fn new(store: Store<Job>, namespace: &str) -> Self {
        Self {
            store,
            namespace: namespace.to_string(),
            started: Mutex::new(HashMap::new()),
            released: Mutex::new(HashMap::new()),
            held_deleting: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, name: &str) -> Option<std::sync::Arc<Job>> {
        self.store
            .get(&ObjectRef::new(name).within(&self.namespace))
    }

    fn just_started(&self, name: &str) -> bool {
        self.started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .is_some_and(|(at, _)| at.elapsed() < JOB_STORE_LAG)
    }

    /// The outcome and lifecycle of the build Job `name` (the one in `status.buildJobName`).
    pub(crate) fn observe(&self, name: Option<&str>) -> (BuildObservation, JobState) {
        let Some(name) = name else {
            return (BuildObservation::Missing, JobState::default());
        };
        match self.get(name) {
            Some(job) => {
                self.started
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(name);
                (observe_job(Some(&job)), job_state(&job))
            }
            // Just created by us and not delivered by the watch yet: running, not vanished.
            None if self.just_started(name) => (BuildObservation::Running, JobState::HELD),
            None => (BuildObservation::Missing, JobState::default()),
        }
    }

    /// Records what a plan did to build Jobs: `released` (their finalizer removed) and `created`.
    /// A Job both released and created was restarted under the same name.
    pub(crate) fn record(&self, released: &[&String], created: &[&String]) {
        {
            let mut started = self.started.lock().unwrap_or_else(|e| e.into_inner());
            started.retain(|_, (at, _)| at.elapsed() < JOB_STORE_LAG);
            for name in created {
                let replaced = released.contains(name);
                started.insert((*name).clone(), (Instant::now(), replaced));
            }
        }
        let mut recent = self.released.lock().unwrap_or_else(|e| e.into_inner());
        recent.retain(|_, at| at.elapsed() < JOB_STORE_LAG);
        let mut held = self.held_deleting.lock().unwrap_or_else(|e| e.into_inner());
        for name in released {
            recent.insert((*name).clone(), Instant::now());
            forget(&mut held, name);
        }
    }

    /// The Job watch delivered `job` (listed or changed).
    pub(crate) fn seen(&self, job: &Job) {
        let Some(name) = job.metadata.name.as_deref() else {
            return;
        };
        let state = job_state(job);
        {
            let mut released = self.released.lock().unwrap_or_else(|e| e.into_inner());
            if !state.held {
                released.remove(name);
            } else if released
                .get(name)
                .is_some_and(|at| at.elapsed() < JOB_STORE_LAG)
            {
                return; // the state just before our own release
            }
        }
        let mut held = self.held_deleting.lock().unwrap_or_else(|e| e.into_inner());
        match owner(job) {
            Some(owner) if state.deleting && state.held => {
                held.entry(owner).or_default().insert(name.to_string());
            }
            _ => forget(&mut held, name),
        }
    }

    /// The Job watch saw `name` deleted: if this process started it, its absence from the store
    /// is no longer lag (unless this is the delete of the Job a restart replaced).
    pub(crate) fn gone(&self, name: &str) {
        {
            let mut started = self.started.lock().unwrap_or_else(|e| e.into_inner());
            match started.get_mut(name) {
                Some((_, replaced @ true)) => *replaced = false,
                Some(_) => {
                    started.remove(name);
                }
                None => {}
            }
        }
        self.released
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        forget(
            &mut self.held_deleting.lock().unwrap_or_else(|e| e.into_inner()),
            name,
        );
    }

    /// The Jobs owned by app `owner` that are being deleted and still held, except `keep`.
    pub(crate) fn held_deleting(&self, owner: &str, keep: Option<&str>) -> Vec<String> {
        self.held_deleting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(owner)
            .into_iter()
            .flatten()
            .filter(|job| Some(job.as_str()) != keep)
            .cloned()
            .collect()
    }

    /// Names of the apps that own a Job being deleted and still held.
    pub(crate) fn owners_holding(&self) -> Vec<String> {
        self.held_deleting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// The finalizers of build Job `name` as the store has them; empty for a Job the store does
    /// not hold, `None` for one this process just created (not delivered yet: read it).
    fn finalizers(&self, name: &str) -> Option<Vec<String>> {
        match self.get(name) {
            Some(job) => Some(job.metadata.finalizers.clone().unwrap_or_default()),
            None if self.just_started(name) => None,
            None => Some(Vec::new()),
        }
    }

    /// `live` with the build Jobs' finalizers from this store.
    pub(crate) fn index<'a>(&'a self, live: &'a dyn LiveIndex) -> WithJobs<'a> {
        WithJobs { live, jobs: self }
    }
}

/// Removes `job` from every owner's set (and owners left without one).
fn forget(held: &mut HashMap<String, BTreeSet<String>>, job: &str) {
    held.retain(|_, jobs| {
        jobs.remove(job);
        !jobs.is_empty()
    });
}

/// The owning `ReviewApp` of a build Job (its controller owner reference).
pub(crate) fn owner(job: &Job) -> Option<String> {
    job.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.kind == "ReviewApp" && o.controller == Some(true))
        .map(|o| o.name.clone())
}

/// The child caches, with the build Jobs' finalizers from the Job store.
pub(crate) struct WithJobs<'a> {
    live: &'a dyn LiveIndex,
    jobs: &'a BuildJobs,
}

impl LiveIndex for WithJobs<'_> {
    fn lookup(&self, child: &ChildRef) -> Lookup {
        self.live.lookup(child)
    }

    fn applied_hash(&self, child: &ChildRef) -> Option<String> {
        self.live.applied_hash(child)
    }

    fn job_finalizers(&self, job: &ChildRef) -> Option<Vec<String>> {
        if job.kind == ChildKind::Job && job.namespace == self.jobs.namespace {
            self.jobs.finalizers(&job.name)
        } else {
            self.live.job_finalizers(job)
        }
    }

    fn source_secret(&self, namespace: &str, name: &str) -> SecretLookup {
        self.live.source_secret(namespace, name)
    }
}

#[cfg(test)]
mod tests {
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;

    use super::*;

    fn job(yaml: &str) -> Job {
        serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{e}: {yaml}"))
    }

    const OWNED: &str = "ownerReferences: [{apiVersion: reviewtron.k8s.revelry.co/v1, kind: ReviewApp, name: app, uid: u, controller: true}]";

    #[test]
    fn held_deleting_jobs_are_tracked_by_owner_until_released_or_gone() {
        let (store, _writer) = reflector::store::<Job>();
        let jobs = BuildJobs::new(store, "builds");
        let deleting = job(&format!(
            "metadata: {{name: j1, namespace: builds, deletionTimestamp: '2026-11-24T00:00:00Z', \
             finalizers: [reviewtron.k8s.revelry.co/build-outcome], {OWNED}}}"
        ));
        jobs.seen(&deleting);
        assert_eq!(jobs.owners_holding(), ["app"]);
        assert_eq!(jobs.held_deleting("app", None), ["j1"]);
        assert!(jobs.held_deleting("app", Some("j1")).is_empty());
        // Released: no longer held.
        let released = job(&format!(
            "metadata: {{name: j1, namespace: builds, deletionTimestamp: '2026-11-24T00:00:00Z', {OWNED}}}"
        ));
        jobs.seen(&released);
        assert!(jobs.owners_holding().is_empty());
        jobs.seen(&deleting);
        jobs.gone("j1");
        assert!(jobs.owners_holding().is_empty());
        // Held but not being deleted, or deleting without an owner: nothing to release.
        jobs.seen(&job(&format!(
            "metadata: {{name: j2, namespace: builds, finalizers: [reviewtron.k8s.revelry.co/build-outcome], {OWNED}}}"
        )));
        jobs.seen(&job(
            "metadata: {name: j3, namespace: builds, deletionTimestamp: '2026-11-24T00:00:00Z', finalizers: [reviewtron.k8s.revelry.co/build-outcome]}",
        ));
        assert!(jobs.owners_holding().is_empty());
    }

    #[test]
    fn finalizers_come_from_the_store_and_a_just_created_job_is_read() {
        let (store, mut writer) = reflector::store::<Job>();
        let jobs = BuildJobs::new(store, "builds");
        writer.apply_watcher_event(&Event::Apply(job(
            "metadata: {name: j1, namespace: builds, finalizers: [a/b, reviewtron.k8s.revelry.co/build-outcome]}",
        )));
        let index = jobs.index(&reviewapp_effects::NoIndex);
        let at = |name: &str| ChildRef::new(ChildKind::Job, "builds", name);
        assert_eq!(
            index.job_finalizers(&at("j1")),
            Some(vec![
                "a/b".to_string(),
                "reviewtron.k8s.revelry.co/build-outcome".to_string()
            ])
        );
        assert_eq!(index.job_finalizers(&at("j2")), Some(vec![]), "not there");
        jobs.record(&[], &[&"j2".to_string()]);
        assert_eq!(
            index.job_finalizers(&at("j2")),
            None,
            "just created: read it"
        );
        assert_eq!(
            jobs.observe(Some("j2")),
            (BuildObservation::Running, JobState::HELD)
        );
        jobs.gone("j2");
        assert_eq!(
            jobs.observe(Some("j2")),
            (BuildObservation::Missing, JobState::default())
        );
    }

    #[test]
    fn a_restart_under_the_same_name_survives_the_old_jobs_delete_event() {
        let (store, _writer) = reflector::store::<Job>();
        let jobs = BuildJobs::new(store, "builds");
        let j1 = "j1".to_string();
        jobs.record(&[&j1], &[&j1]);
        jobs.gone("j1"); // the Job that was released
        assert_eq!(
            jobs.observe(Some("j1")).0,
            BuildObservation::Running,
            "the new Job is not delivered yet"
        );
        jobs.gone("j1"); // the new one vanished
        assert_eq!(jobs.observe(Some("j1")).0, BuildObservation::Missing);
    }

    #[test]
    fn the_state_just_before_our_release_is_not_tracked() {
        let (store, _writer) = reflector::store::<Job>();
        let jobs = BuildJobs::new(store, "builds");
        jobs.record(&[&"j1".to_string()], &[]);
        jobs.seen(&job(&format!(
            "metadata: {{name: j1, namespace: builds, deletionTimestamp: '2026-11-24T00:00:00Z', \
             finalizers: [reviewtron.k8s.revelry.co/build-outcome], {OWNED}}}"
        )));
        assert!(jobs.owners_holding().is_empty());
    }
}
