//! Property tests against a simulated world of build Jobs: random sequences of events, commits,
//! build outcomes, Jobs deleted (held by the build-outcome finalizer, as a TTL or a person would
//! delete them) or vanishing (finalizer stripped), restarts and duplicate deliveries.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use proptest::prelude::*;
use reviewapp_api::ReviewApp;
use reviewapp_state::{
    AppEvent, BuildObservation, Intent, JobState, Observed, Transition, transition,
};

#[derive(Clone, Debug)]
enum Op {
    /// A watch event or tick (Add = replay after a restart).
    Handle(AppEvent),
    /// A push; `delivered` false means the MODIFY was missed (operator down).
    NewCommit { commit: usize, delivered: bool },
    /// A config-only edit.
    ConfigChange { port: i64, delivered: bool },
    /// The current build Job finishes.
    JobFinishes { success: bool },
    /// The current build Job is deleted (its TTL after it finished, or a person): the operator's
    /// finalizer keeps it, being deleted, until the operator releases it.
    JobDeleted,
    /// The current build Job goes at once (deleted with its finalizer stripped).
    JobVanishes,
    /// The next handling stops right after its status write (a crash, or a failed release).
    StopAfterStatus,
}

const COMMITS: [&str; 3] = [SHA1, SHA2, SHA3];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => prop_oneof![Just(AppEvent::Add), Just(AppEvent::Modify), Just(AppEvent::Reconcile)].prop_map(Op::Handle),
        2 => (0..COMMITS.len(), any::<bool>()).prop_map(|(commit, delivered)| Op::NewCommit { commit, delivered }),
        1 => (1000i64..1003, any::<bool>()).prop_map(|(port, delivered)| Op::ConfigChange { port, delivered }),
        3 => any::<bool>().prop_map(|success| Op::JobFinishes { success }),
        2 => Just(Op::JobDeleted),
        1 => Just(Op::JobVanishes),
        1 => Just(Op::StopAfterStatus),
    ]
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Job {
    Running,
    Succeeded,
    Failed,
}

/// A build Job in the simulated world.
#[derive(Clone, Debug)]
struct SimJob {
    outcome: Job,
    image: String,
    /// Carries the operator's build-outcome finalizer.
    held: bool,
    /// Being deleted (kept only while held).
    deleting: bool,
}

struct World {
    app: ReviewApp,
    jobs: BTreeMap<String, SimJob>,
    /// Images whose build Job succeeded.
    built: BTreeSet<String>,
    /// The next handling does not get past its status write.
    stop_after_status: bool,
}

impl World {
    fn current_job(&self) -> Option<String> {
        self.app
            .status
            .as_ref()
            .and_then(|s| s.build_job_name.clone())
    }

    fn observe(&self) -> Observed {
        let Some(job) = self.current_job().and_then(|n| self.jobs.get(&n)) else {
            return Observed::default();
        };
        Observed {
            build: match job.outcome {
                Job::Running => BuildObservation::Running,
                Job::Succeeded => BuildObservation::Succeeded,
                Job::Failed => failed(),
            },
            job: JobState {
                deleting: job.deleting,
                held: job.held,
            },
            ..Observed::default()
        }
    }

    /// A delete request: a held Job stays, being deleted; any other goes.
    fn delete(&mut self, name: &str) {
        match self.jobs.get_mut(name) {
            Some(job) if job.held => job.deleting = true,
            Some(_) => {
                self.jobs.remove(name);
            }
            None => {}
        }
    }

    /// The finalizer removed: a Job being deleted goes.
    fn release(&mut self, name: &str) {
        if let Some(job) = self.jobs.get_mut(name) {
            job.held = false;
            if job.deleting {
                self.jobs.remove(name);
            }
        }
    }

    fn execute(&mut self, intents: &[Intent]) -> Result<(), TestCaseError> {
        for intent in intents {
            match intent {
                Intent::StartBuild {
                    job_name, image, ..
                } => {
                    let existing = self.jobs.get(job_name);
                    prop_assert!(
                        existing.is_none(),
                        "asked to start {job_name}, which exists: {existing:?}"
                    );
                    self.jobs.insert(
                        job_name.clone(),
                        SimJob {
                            outcome: Job::Running,
                            image: image.clone(),
                            held: true,
                            deleting: false,
                        },
                    );
                }
                Intent::DeleteBuildJob { name } => self.delete(name),
                Intent::ReleaseBuildJob { name } => self.release(name),
                Intent::ApplyChildren {
                    replicas, image, ..
                } => {
                    prop_assert!(
                        *replicas == 0 || self.built.contains(image),
                        "deployed {image}, never built"
                    );
                }
                Intent::TearDown(teardown) => {
                    for job in &teardown.build_jobs {
                        self.delete(job);
                        self.release(job);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Handles one event like the daemon: observe, transition, execute the intents, write the
    /// status, then run what waits for the status.
    fn handle(&mut self, event: AppEvent) -> Result<Transition, TestCaseError> {
        let observed = self.observe();
        let t = transition(&self.app, event, &observed, &config(), now());
        // A finished outcome the operator can still read is never thrown away by a rebuild.
        if event != AppEvent::Delete
            && observed.job.held
            && matches!(
                observed.build,
                BuildObservation::Succeeded | BuildObservation::Failed { .. }
            )
            && self.app.spec.commit_hash
                == self
                    .app
                    .status
                    .as_ref()
                    .and_then(|s| s.build_commit.clone())
        {
            prop_assert_eq!(starts(&t), 0, "rebuilt a finished build: {:?}", t.intents);
        }
        self.execute(&t.intents)?;
        self.app = applied(self.app.clone(), &t);
        if !std::mem::take(&mut self.stop_after_status) {
            self.execute(&t.after_status)?;
        }
        Ok(t)
    }
}

fn starts(t: &Transition) -> usize {
    t.intents
        .iter()
        .filter(|i| matches!(i, Intent::StartBuild { .. }))
        .count()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Idempotence (a duplicate delivery starts no second build), never deploying an image
    /// whose build did not succeed, never recreating an existing Job, and DELETE leaving no
    /// build Job behind.
    #[test]
    fn lifecycle_properties(ops in prop::collection::vec(op(), 1..40)) {
        let mut world = World {
            app: fresh(),
            jobs: BTreeMap::new(),
            built: BTreeSet::new(),
            stop_after_status: false,
        };
        world.handle(AppEvent::Add)?;
        for op in ops {
            let event = match op {
                Op::Handle(event) => Some(event),
                Op::NewCommit { commit, delivered } => {
                    world.app = with_commit(&world.app, COMMITS[commit]);
                    delivered.then_some(AppEvent::Modify)
                }
                Op::ConfigChange { port, delivered } => {
                    world.app = with_port(&world.app, port);
                    delivered.then_some(AppEvent::Modify)
                }
                Op::JobFinishes { success } => {
                    let current = world.current_job();
                    if let Some(job) = current.and_then(|n| world.jobs.get_mut(&n))
                        && job.outcome == Job::Running
                        && !job.deleting
                    {
                        job.outcome = if success { Job::Succeeded } else { Job::Failed };
                        if success {
                            world.built.insert(job.image.clone());
                        }
                    }
                    Some(AppEvent::Reconcile)
                }
                Op::JobDeleted => {
                    if let Some(name) = world.current_job() {
                        world.delete(&name);
                    }
                    // The Job watch reports the change, unless the operator is down.
                    None
                }
                Op::JobVanishes => {
                    if let Some(name) = world.current_job() {
                        world.jobs.remove(&name);
                    }
                    None
                }
                Op::StopAfterStatus => {
                    world.stop_after_status = true;
                    None
                }
            };
            if let Some(event) = event {
                world.handle(event)?;
                let again = world.handle(event)?;
                prop_assert_eq!(starts(&again), 0, "duplicate {:?} started a second build", event);
            }
        }
        // Whatever happened, a final tick converges on the current commit.
        world.stop_after_status = false;
        world.handle(AppEvent::Reconcile)?;
        let status = world.app.status.clone().unwrap();
        prop_assert_eq!(status.build_commit.as_deref(), world.app.spec.commit_hash.as_deref());
        // At most one build Job is alive: every superseded one was deleted.
        let running = world.jobs.values().filter(|job| job.outcome == Job::Running && !job.deleting).count();
        prop_assert!(running <= 1, "{} running jobs: {:?}", running, world.jobs);
        // No Job is left hanging on the operator's finalizer, and every finished one is released
        // (its outcome is on record).
        let stuck: Vec<&String> = world.jobs.iter().filter(|(_, job)| job.deleting).map(|(name, _)| name).collect();
        prop_assert!(stuck.is_empty(), "held while being deleted: {:?}", stuck);
        let held: Vec<&String> = world.jobs.iter().filter(|(_, job)| job.held && job.outcome != Job::Running).map(|(name, _)| name).collect();
        prop_assert!(held.is_empty(), "finished and still held: {:?}", held);

        world.handle(AppEvent::Delete)?;
        prop_assert!(world.jobs.is_empty(), "DELETE left build Jobs behind: {:?}", world.jobs.keys());
        prop_assert!(!world.app.metadata.finalizers.unwrap_or_default().iter().any(|f| f == reviewapp_api::FINALIZER));
    }
}
