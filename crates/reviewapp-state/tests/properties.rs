//! Property tests against a simulated world of build Jobs: random sequences of events, commits,
//! build outcomes, vanishing Jobs, restarts and duplicate deliveries.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use proptest::prelude::*;
use reviewapp_api::ReviewApp;
use reviewapp_state::{AppEvent, BuildObservation, Intent, Transition, transition};

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
    /// The current build Job is deleted behind the operator's back.
    JobVanishes,
}

const COMMITS: [&str; 3] = [SHA1, SHA2, SHA3];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => prop_oneof![Just(AppEvent::Add), Just(AppEvent::Modify), Just(AppEvent::Reconcile)].prop_map(Op::Handle),
        2 => (0..COMMITS.len(), any::<bool>()).prop_map(|(commit, delivered)| Op::NewCommit { commit, delivered }),
        1 => (1000i64..1003, any::<bool>()).prop_map(|(port, delivered)| Op::ConfigChange { port, delivered }),
        3 => any::<bool>().prop_map(|success| Op::JobFinishes { success }),
        1 => Just(Op::JobVanishes),
    ]
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Job {
    Running,
    Succeeded,
    Failed,
}

struct World {
    app: ReviewApp,
    jobs: BTreeMap<String, (Job, String)>,
    /// Images whose build Job succeeded.
    built: BTreeSet<String>,
}

impl World {
    fn observe(&self) -> BuildObservation {
        let name = self
            .app
            .status
            .as_ref()
            .and_then(|s| s.build_job_name.clone());
        match name.and_then(|n| self.jobs.get(&n)) {
            Some((Job::Running, _)) => BuildObservation::Running,
            Some((Job::Succeeded, _)) => BuildObservation::Succeeded,
            Some((Job::Failed, _)) => failed(),
            None => BuildObservation::Missing,
        }
    }

    /// Handles one event like the daemon: observe, transition, execute intents, write status.
    fn handle(&mut self, event: AppEvent) -> Result<Transition, TestCaseError> {
        let t = transition(&self.app, event, &self.observe(), &config(), now());
        for intent in &t.intents {
            match intent {
                Intent::StartBuild {
                    job_name, image, ..
                } => {
                    prop_assert!(
                        !self.jobs.contains_key(job_name),
                        "asked to start {job_name}, which exists"
                    );
                    self.jobs
                        .insert(job_name.clone(), (Job::Running, image.clone()));
                }
                Intent::DeleteBuildJob { name } => {
                    self.jobs.remove(name);
                }
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
                        self.jobs.remove(job);
                    }
                }
                _ => {}
            }
        }
        self.app = applied(self.app.clone(), &t);
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
        let mut world = World { app: fresh(), jobs: BTreeMap::new(), built: BTreeSet::new() };
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
                    let current = world.app.status.as_ref().and_then(|s| s.build_job_name.clone());
                    if let Some((state, image)) = current.and_then(|n| world.jobs.get_mut(&n))
                        && *state == Job::Running
                    {
                        *state = if success { Job::Succeeded } else { Job::Failed };
                        if success {
                            world.built.insert(image.clone());
                        }
                    }
                    Some(AppEvent::Reconcile)
                }
                Op::JobVanishes => {
                    if let Some(name) = world.app.status.as_ref().and_then(|s| s.build_job_name.clone()) {
                        world.jobs.remove(&name);
                    }
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
        world.handle(AppEvent::Reconcile)?;
        let status = world.app.status.clone().unwrap();
        prop_assert_eq!(status.build_commit.as_deref(), world.app.spec.commit_hash.as_deref());
        // At most one build Job is alive: every superseded one was deleted.
        let running = world.jobs.values().filter(|(state, _)| *state == Job::Running).count();
        prop_assert!(running <= 1, "{} running jobs: {:?}", running, world.jobs.keys());

        world.handle(AppEvent::Delete)?;
        prop_assert!(world.jobs.is_empty(), "DELETE left build Jobs behind: {:?}", world.jobs.keys());
        prop_assert!(!world.app.metadata.finalizers.unwrap_or_default().iter().any(|f| f == reviewapp_api::FINALIZER));
    }
}
