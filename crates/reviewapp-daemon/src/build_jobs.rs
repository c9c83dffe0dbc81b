//! What the daemon knows about build Jobs: the Job watch's store (each Job's outcome,
//! finalizers and deletion), and [`BuildJobIndex`], what this process did to them that the
//! watch has not shown yet (Jobs it just created or released) and the Jobs being deleted while
//! the operator's build-outcome finalizer holds them, by owning app (so that a Job no app waits
//! for is released).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use kube::runtime::reflector::{ObjectRef, Store};
use reviewapp_effects::{LiveIndex, Lookup, SecretLookup};
use reviewapp_resources::{Action, ChildKind, ChildRef, Plan};
use reviewapp_state::{
    BuildObservation, JOB_STORE_LAG, JobState, build_job_observation, job_state,
};

use crate::index::Shared;

/// A build Job this process created.
#[derive(Debug)]
struct Created {
    at: Instant,
    /// The create replaced a Job of the same name that was being deleted, whose delete event is
    /// still to come.
    replaced: bool,
}

/// What this process did to build Jobs that the Job watch may not show yet, and the Jobs being
/// deleted while held. Plain functions of the watch's events, the plans' writes and the time.
#[derive(Debug, Default)]
pub struct BuildJobIndex {
    /// Build Jobs this process created, by name.
    created: HashMap<String, Created>,
    /// Build Jobs this process released, by name, with when: until the watch shows it, a Job
    /// seen held and being deleted is the state just before our release, not a new one.
    released: HashMap<String, Instant>,
    /// Jobs being deleted and still held by the build-outcome finalizer, by owning app name.
    held_deleting: HashMap<String, BTreeSet<String>>,
}

impl BuildJobIndex {
    /// The Job watch delivered `job` (listed or changed).
    pub fn apply(&mut self, job: &Job, now: Instant) {
        let Some(name) = job.metadata.name.as_deref() else {
            return;
        };
        let state = job_state(job);
        if !state.held {
            self.released.remove(name);
        } else if self
            .released
            .get(name)
            .is_some_and(|at| now.duration_since(*at) < JOB_STORE_LAG)
        {
            return; // the state just before our own release
        }
        match owner(job) {
            Some(owner) if state.deleting && state.held => {
                self.held_deleting
                    .entry(owner)
                    .or_default()
                    .insert(name.to_string());
            }
            _ => self.forget_held(name),
        }
    }

    /// The Job watch saw `name` deleted: if this process created it, its absence from the
    /// store is no longer lag (unless this is the delete of the Job a restart replaced).
    pub fn delete(&mut self, name: &str) {
        match self.created.get_mut(name) {
            Some(Created { replaced, .. }) if *replaced => *replaced = false,
            Some(_) => {
                self.created.remove(name);
            }
            None => {}
        }
        self.released.remove(name);
        self.forget_held(name);
    }

    /// Records what a plan did to build Jobs: `released` (their finalizer removed) and
    /// `created`. A Job both released and created was restarted under the same name.
    pub fn record(&mut self, released: &[&str], created: &[&str], now: Instant) {
        self.created
            .retain(|_, job| now.duration_since(job.at) < JOB_STORE_LAG);
        for name in created {
            let replaced = released.contains(name);
            let job = Created { at: now, replaced };
            self.created.insert((*name).to_string(), job);
        }
        self.released
            .retain(|_, at| now.duration_since(*at) < JOB_STORE_LAG);
        for name in released {
            self.released.insert((*name).to_string(), now);
            self.forget_held(name);
        }
    }

    /// How long ago this process created build Job `name`, while the store may not hold it yet
    /// (until the watch delivers it or sees it deleted).
    pub fn created_ago(&self, name: &str, now: Instant) -> Option<Duration> {
        self.created.get(name).map(|job| now.duration_since(job.at))
    }

    /// Whether this process created build Job `name` so recently that the store may not hold
    /// it yet.
    pub fn just_created(&self, name: &str, now: Instant) -> bool {
        self.created_ago(name, now)
            .is_some_and(|ago| ago < JOB_STORE_LAG)
    }

    /// The store holds build Job `name`: it is no longer "just created".
    pub fn delivered(&mut self, name: &str) {
        self.created.remove(name);
    }

    /// The Jobs owned by app `owner` that are being deleted and still held, except `keep`.
    pub fn held_deleting(&self, owner: &str, keep: Option<&str>) -> Vec<String> {
        self.held_deleting
            .get(owner)
            .into_iter()
            .flatten()
            .filter(|job| Some(job.as_str()) != keep)
            .cloned()
            .collect()
    }

    /// Names of the apps that own a Job being deleted and still held.
    pub fn owners_holding(&self) -> Vec<String> {
        self.held_deleting.keys().cloned().collect()
    }

    /// Removes `job` from every owner's set (and owners left without one).
    fn forget_held(&mut self, job: &str) {
        self.held_deleting.retain(|_, jobs| {
            jobs.remove(job);
            !jobs.is_empty()
        });
    }
}

/// The owning `ReviewApp` of a build Job (its controller owner reference).
pub fn owner(job: &Job) -> Option<String> {
    job.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.kind == "ReviewApp" && o.controller == Some(true))
        .map(|o| o.name.clone())
}

/// The build Jobs of every app: the Job watch's store and the [`BuildJobIndex`], read at the
/// current time.
pub struct BuildJobs {
    store: Store<Job>,
    namespace: String,
    index: Shared<BuildJobIndex>,
}

impl BuildJobs {
    /// The build Jobs in `namespace`, from the Job watch's `store`.
    pub fn new(store: Store<Job>, namespace: &str) -> Self {
        BuildJobs {
            store,
            namespace: namespace.to_string(),
            index: Shared::default(),
        }
    }

    /// Waits until the Job watch has listed.
    pub async fn wait_until_ready(&self) {
        // An error means the writer is gone: its watch task ended, and with it the daemon.
        let _ = self.store.wait_until_ready().await;
    }

    fn get(&self, name: &str) -> Option<Arc<Job>> {
        self.store
            .get(&ObjectRef::new(name).within(&self.namespace))
    }

    /// The Job watch delivered `job` (listed or changed).
    pub fn apply(&self, job: &Job) {
        self.index.lock().apply(job, Instant::now());
    }

    /// The Job watch saw `job` deleted.
    pub fn delete(&self, job: &Job) {
        if let Some(name) = job.metadata.name.as_deref() {
            self.index.lock().delete(name);
        }
    }

    /// The outcome and lifecycle of the build Job `name` (the one in `status.buildJobName`).
    pub fn observe(&self, name: Option<&str>) -> (BuildObservation, JobState) {
        let Some(name) = name else {
            return build_job_observation(None, None);
        };
        let stored = self.get(name);
        let mut index = self.index.lock();
        if stored.is_some() {
            index.delivered(name);
        }
        build_job_observation(stored.as_deref(), index.created_ago(name, Instant::now()))
    }

    /// Records the build Jobs `plan` released and created.
    pub fn record(&self, plan: &Plan) {
        let mut released = Vec::new();
        let mut created = Vec::new();
        for action in &plan.actions {
            match action {
                Action::ReleaseJob(job) => released.push(job.name.as_str()),
                Action::CreateJob(manifest) => created.push(manifest.child.name.as_str()),
                _ => {}
            }
        }
        if !released.is_empty() || !created.is_empty() {
            self.index
                .lock()
                .record(&released, &created, Instant::now());
        }
    }

    /// The Jobs owned by app `owner` that are being deleted and still held, except `keep`.
    pub fn held_deleting(&self, owner: &str, keep: Option<&str>) -> Vec<String> {
        self.index.lock().held_deleting(owner, keep)
    }

    /// Names of the apps that own a Job being deleted and still held.
    pub fn owners_holding(&self) -> Vec<String> {
        self.index.lock().owners_holding()
    }

    /// The finalizers of build Job `name` as the store has them; empty for a Job the store does
    /// not hold, `None` for one this process just created (not delivered yet: read it).
    fn finalizers(&self, name: &str) -> Option<Vec<String>> {
        match self.get(name) {
            Some(job) => Some(job.metadata.finalizers.clone().unwrap_or_default()),
            None if self.index.lock().just_created(name, Instant::now()) => None,
            None => Some(Vec::new()),
        }
    }

    /// `live` with the build Jobs' finalizers from this store.
    pub fn with_live<'a>(&'a self, live: &'a dyn LiveIndex) -> WithJobs<'a> {
        WithJobs { live, jobs: self }
    }
}

/// The child stores, with the build Jobs' finalizers from the Job store.
pub struct WithJobs<'a> {
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

    fn available(&self, child: &ChildRef) -> bool {
        self.live.available(child)
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

    fn held_deleting_job() -> Job {
        job(&format!(
            "metadata: {{name: j1, namespace: builds, deletionTimestamp: '2026-11-24T00:00:00Z', \
             finalizers: [reviewtron.k8s.revelry.co/build-outcome], {OWNED}}}"
        ))
    }

    fn plan(released: &[&str], created: &[&str]) -> Plan {
        let release = released
            .iter()
            .map(|name| Action::ReleaseJob(ChildRef::new(ChildKind::Job, "builds", name)));
        let create = created.iter().map(|name| {
            let child = ChildRef::new(ChildKind::Job, "builds", name);
            Action::CreateJob(reviewapp_resources::Manifest {
                child,
                object: serde_json::Value::Null,
            })
        });
        Plan {
            actions: release.chain(create).collect(),
        }
    }

    #[test]
    fn held_deleting_jobs_are_tracked_by_owner_until_released_or_gone() {
        let now = Instant::now();
        let mut jobs = BuildJobIndex::default();
        jobs.apply(&held_deleting_job(), now);
        assert_eq!(jobs.owners_holding(), ["app"]);
        assert_eq!(jobs.held_deleting("app", None), ["j1"]);
        assert!(jobs.held_deleting("app", Some("j1")).is_empty());
        // Released: no longer held.
        let released = job(&format!(
            "metadata: {{name: j1, namespace: builds, deletionTimestamp: '2026-11-24T00:00:00Z', {OWNED}}}"
        ));
        jobs.apply(&released, now);
        assert!(jobs.owners_holding().is_empty());
        jobs.apply(&held_deleting_job(), now);
        jobs.delete("j1");
        assert!(jobs.owners_holding().is_empty());
        // Held but not being deleted, or deleting without an owner: nothing to release.
        jobs.apply(
            &job(&format!(
                "metadata: {{name: j2, namespace: builds, finalizers: [reviewtron.k8s.revelry.co/build-outcome], {OWNED}}}"
            )),
            now,
        );
        jobs.apply(
            &job(
                "metadata: {name: j3, namespace: builds, deletionTimestamp: '2026-11-24T00:00:00Z', finalizers: [reviewtron.k8s.revelry.co/build-outcome]}",
            ),
            now,
        );
        assert!(jobs.owners_holding().is_empty());
    }

    #[test]
    fn a_created_job_counts_as_just_created_until_delivered_gone_or_the_lag_passed() {
        let now = Instant::now();
        let mut jobs = BuildJobIndex::default();
        jobs.record(&[], &["j1", "j2", "j3"], now);
        assert!(jobs.just_created("j1", now));
        assert!(!jobs.just_created("other", now));
        jobs.delivered("j1");
        assert!(!jobs.just_created("j1", now), "the store holds it");
        jobs.delete("j2");
        assert!(!jobs.just_created("j2", now), "it vanished");
        assert!(jobs.just_created("j3", now + JOB_STORE_LAG / 2));
        assert!(
            !jobs.just_created("j3", now + JOB_STORE_LAG),
            "the lag bound passed"
        );
    }

    #[test]
    fn a_restart_under_the_same_name_survives_the_old_jobs_delete_event() {
        let now = Instant::now();
        let mut jobs = BuildJobIndex::default();
        jobs.record(&["j1"], &["j1"], now);
        jobs.delete("j1"); // the Job that was released
        assert!(
            jobs.just_created("j1", now),
            "the new Job is not delivered yet"
        );
        jobs.delete("j1"); // the new one vanished
        assert!(!jobs.just_created("j1", now));
    }

    #[test]
    fn the_state_just_before_our_release_is_not_tracked_until_the_lag_passed() {
        let now = Instant::now();
        let mut jobs = BuildJobIndex::default();
        jobs.record(&["j1"], &[], now);
        jobs.apply(&held_deleting_job(), now);
        assert!(jobs.owners_holding().is_empty());
        jobs.apply(&held_deleting_job(), now + JOB_STORE_LAG);
        assert_eq!(
            jobs.owners_holding(),
            ["app"],
            "held again, long after our release"
        );
    }

    #[test]
    fn finalizers_come_from_the_store_and_a_just_created_job_is_read() {
        let (store, mut writer) = reflector::store::<Job>();
        let jobs = BuildJobs::new(store, "builds");
        writer.apply_watcher_event(&Event::Apply(job(
            "metadata: {name: j1, namespace: builds, finalizers: [a/b, reviewtron.k8s.revelry.co/build-outcome]}",
        )));
        let index = jobs.with_live(&reviewapp_effects::NoIndex);
        let at = |name: &str| ChildRef::new(ChildKind::Job, "builds", name);
        assert_eq!(
            index.job_finalizers(&at("j1")),
            Some(vec![
                "a/b".to_string(),
                "reviewtron.k8s.revelry.co/build-outcome".to_string()
            ])
        );
        assert_eq!(index.job_finalizers(&at("j2")), Some(vec![]), "not there");
        jobs.record(&plan(&[], &["j2"]));
        assert_eq!(
            index.job_finalizers(&at("j2")),
            None,
            "just created: read it"
        );
        assert_eq!(
            jobs.observe(Some("j2")),
            (BuildObservation::Running, JobState::HELD)
        );
        jobs.delete(&job("metadata: {name: j2, namespace: builds}"));
        assert_eq!(
            jobs.observe(Some("j2")),
            (BuildObservation::Missing, JobState::default())
        );
        assert_eq!(
            jobs.observe(None),
            (BuildObservation::Missing, JobState::default())
        );
    }
}
