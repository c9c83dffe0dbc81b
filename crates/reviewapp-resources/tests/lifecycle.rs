//! Whole lifecycles through `transition` and `render`: whatever sequence of spec edits, commits,
//! build outcomes and operator reconfigurations an app went through, the final DELETE removes
//! every object that any earlier plan created, build Jobs held by the operator's finalizer
//! included.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{app, config};
use k8s_openapi::jiff::Timestamp;
use proptest::prelude::*;
use reviewapp_api::spec::{Database, Migrate};
use reviewapp_api::{BUILD_FINALIZER, FINALIZER, OperatorConfig, ReviewApp};
use reviewapp_resources::{Action, ChildKind, ChildRef, render};
use reviewapp_state::{AppEvent, BuildObservation, JobState, Observed, transition};

const COMMITS: [&str; 3] = [
    "c8c9aa334a76677aa0be4ec0ebb08484367f952d",
    "5ce6e4a15e2a09fe113aba79263104835bd676c2",
    "0123456789abcdef0123456789abcdef01234567",
];

#[derive(Clone, Debug)]
enum Op {
    Commit(usize),
    /// 0: no database, 1: kubedb, 2: cnpg.
    Database(u8),
    CopyFrom(bool),
    Migrate(bool),
    Tls(bool),
    BuildFinishes(bool),
    Tick,
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..COMMITS.len()).prop_map(Op::Commit),
        (0u8..3).prop_map(Op::Database),
        any::<bool>().prop_map(Op::CopyFrom),
        any::<bool>().prop_map(Op::Migrate),
        any::<bool>().prop_map(Op::Tls),
        any::<bool>().prop_map(Op::BuildFinishes),
        Just(Op::Tick),
        Just(Op::Restart),
    ]
}

struct World {
    app: ReviewApp,
    config: OperatorConfig,
    /// Every object that exists, by reference.
    objects: BTreeSet<ChildRef>,
    /// Build Jobs: outcome (`None` while running) and lifecycle.
    jobs: BTreeMap<String, (Option<bool>, JobState)>,
}

impl World {
    fn observe(&self) -> Observed {
        let name = self
            .app
            .status
            .as_ref()
            .and_then(|s| s.build_job_name.clone());
        let Some((outcome, job)) = name.and_then(|n| self.jobs.get(&n).copied()) else {
            return Observed::default();
        };
        Observed {
            build: match outcome {
                None => BuildObservation::Running,
                Some(true) => BuildObservation::Succeeded,
                Some(false) => BuildObservation::Failed {
                    reason: "BackoffLimitExceeded".into(),
                    message: String::new(),
                },
            },
            job,
            ..Observed::default()
        }
    }

    fn handle(&mut self, event: AppEvent) {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let t = transition(&self.app, event, &self.observe(), &self.config, now);
        let plan = render(&self.app, t.spec.as_ref(), &self.config, &t.intents).expect("renders");
        self.execute(plan.actions);
        self.app.status = Some(t.status.clone());
        let after =
            render(&self.app, t.spec.as_ref(), &self.config, &t.after_status).expect("renders");
        self.execute(after.actions);
    }

    fn execute(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Apply(m) | Action::CopySecret { target: m, .. } => {
                    self.objects.insert(m.child);
                }
                Action::CreateJob(m) => {
                    let held = m.object["metadata"]["finalizers"][0] == BUILD_FINALIZER;
                    assert!(
                        held,
                        "every build Job is created held: {}",
                        m.object["metadata"]
                    );
                    self.jobs
                        .entry(m.child.name.clone())
                        .or_insert((None, JobState::HELD));
                    self.objects.insert(m.child);
                }
                // A held Job stays, being deleted, until it is released.
                Action::Delete(child) => match self.jobs.get_mut(&child.name) {
                    Some((_, job)) if child.kind == ChildKind::Job && job.held => {
                        job.deleting = true;
                    }
                    _ => {
                        if child.kind == ChildKind::Job {
                            self.jobs.remove(&child.name);
                        }
                        self.objects.remove(&child);
                    }
                },
                Action::ReleaseJob(child) => {
                    if let Some((_, job)) = self.jobs.get_mut(&child.name) {
                        job.held = false;
                        if job.deleting {
                            self.jobs.remove(&child.name);
                            self.objects.remove(&child);
                        }
                    }
                }
                Action::AddFinalizer => self
                    .app
                    .metadata
                    .finalizers
                    .get_or_insert_default()
                    .push(FINALIZER.into()),
                Action::RemoveFinalizer => self
                    .app
                    .metadata
                    .finalizers
                    .get_or_insert_default()
                    .retain(|f| f != FINALIZER),
                Action::Event(_) => {}
            }
        }
    }

    /// A spec edit as the API server records it, then its MODIFY event.
    fn edit(&mut self, edit: impl FnOnce(&mut ReviewApp)) {
        edit(&mut self.app);
        self.app.metadata.generation = Some(self.app.metadata.generation.unwrap_or(1) + 1);
        self.handle(AppEvent::Modify);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn delete_removes_everything_any_earlier_plan_created(ops in prop::collection::vec(op(), 1..30)) {
        let mut initial = app();
        initial.metadata.generation = Some(1);
        let original_db = initial.spec.config.as_ref().unwrap().database.clone().unwrap();
        let mut world = World { app: initial, config: config(), objects: BTreeSet::new(), jobs: BTreeMap::new() };
        world.handle(AppEvent::Add);
        for op in ops {
            match op {
                Op::Commit(i) => world.edit(|a| a.spec.commit_hash = Some(COMMITS[i].into())),
                Op::Database(kind) => {
                    let db = match kind {
                        0 => None,
                        1 => Some(Database { backend: Some("kubedb".into()), ..original_db.clone() }),
                        _ => Some(Database { backend: Some("cnpg".into()), ..original_db.clone() }),
                    };
                    world.edit(|a| a.spec.config.as_mut().unwrap().database = db);
                }
                Op::CopyFrom(on) => world.edit(|a| {
                    if let Some(db) = a.spec.config.as_mut().unwrap().database.as_mut() {
                        db.copy_from = on.then(|| original_db.copy_from.clone().unwrap());
                    }
                }),
                Op::Migrate(on) => world.edit(|a| {
                    a.spec.config.as_mut().unwrap().migrate =
                        on.then(|| Migrate { command: Some(vec!["npm".into()]), ..Migrate::default() });
                }),
                Op::Tls(on) => {
                    // The operator is reconfigured: no spec change, the next tick applies it.
                    world.config.tls.secret_name = if on { "star-review-local-tls".into() } else { String::new() };
                    world.handle(AppEvent::Reconcile);
                }
                Op::BuildFinishes(success) => {
                    let current = world.app.status.as_ref().and_then(|s| s.build_job_name.clone());
                    if let Some((outcome, _)) = current.and_then(|n| world.jobs.get_mut(&n)) {
                        outcome.get_or_insert(success);
                    }
                    world.handle(AppEvent::Reconcile);
                }
                Op::Tick => world.handle(AppEvent::Reconcile),
                Op::Restart => world.handle(AppEvent::Add),
            }
        }
        prop_assert!(world.objects.iter().any(|c| c.kind == ChildKind::Deployment), "the app was deployed somewhere");
        world.handle(AppEvent::Delete);
        prop_assert!(world.objects.is_empty(), "DELETE left {:?}", world.objects);
        prop_assert!(world.app.metadata.finalizers.unwrap_or_default().is_empty());
    }
}
