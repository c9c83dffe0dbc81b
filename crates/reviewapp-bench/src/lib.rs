//! The benchmark driver: the API emulator and the workload run in this process; the operator
//! runs as a child process (`review-app-operator run`, the real binary), so that its peak RSS and
//! CPU time can be read from `/proc/<pid>`. The driver writes only through the emulator's
//! [`Handle`](reviewapp_testkit::Handle) (no HTTP), so every request in the emulator's log is the
//! operator's. When an operator object lands is observed through in-process subscriptions
//! ([`Handle::subscribe`](reviewapp_testkit::Handle::subscribe)), timestamped when the
//! subscriber task receives the change.
//!
//! One run at N apps, in order:
//!
//! 1. **create**: N `ReviewApp`s (the sample in `dev/samples/reviewapp.yaml`, one PR each)
//!    created in a burst; created → all 6 children applied, per app, and N / (last app applied
//!    − first create).
//! 2. **deploy**: the N build Jobs succeed one at a time (each waits for its app to be
//!    deployed): build finished → Deployment at 1 replica with the built image.
//! 3. **push**: a new commit for every app, in a burst (old Job deleted, new Job created).
//! 4. **redeploy**: the N new builds succeed in a burst: the same latency under load.
//! 5. **restart**: SIGTERM the operator, start a new one: time until `/readyz` is 200, until
//!    every app's ADD was handled, and the Jobs created and writes sent meanwhile.
//! 6. **idle**: an operator with a 1 s tick, for `idle` seconds: writes and reads per tick.
//! 7. **delete**: every `ReviewApp` deleted in a burst, until nothing is left.
//!
//! Phases 1–4 and 7 make one full lifecycle per app; their requests are counted per app.
//!
//! Modules: `workload` drives the phases, `operator` starts and reads the operators,
//! `recorder` sees their writes, `report` holds the numbers and prints the table; `failover`,
//! `lifecycle` (sleeping and expiring apps), `activator` and [`github`] are the other
//! benchmarks.

pub mod github;

mod activator;
mod failover;
mod lifecycle;
mod operator;
mod recorder;
mod report;
mod workload;

use std::path::PathBuf;
use std::time::Duration;

pub use activator::{ActivatorOptions, ActivatorReport, activator, activator_markdown};
pub use failover::{FailoverOptions, FailoverReport, FailoverSample, failover, failover_markdown};
pub use lifecycle::{LifecycleReport, lifecycle, lifecycle_markdown};
pub use report::{Latency, Report, Requests, Usage, markdown, request_breakdown};
pub use workload::run;

/// The namespace of every app.
pub const APP_NS: &str = "test-review-app";
/// Where build Jobs run.
pub const BUILD_NS: &str = "review-build";
/// The sample's commit.
const SHA1: &str = "c8c9aa334a76677aa0be4ec0ebb08484367f952d";
/// The commit every app is pushed to.
const SHA2: &str = "5ce6e4a15e2a09fe113aba79263104835bd676c2";
const SAMPLE: &str = include_str!("../../../dev/samples/reviewapp.yaml");
const GROUP: &str = "reviewtron.k8s.revelry.co";
/// Children of one app (the sample has a KubeDB database): dbcopy and TLS Secrets, Postgres,
/// Service, Deployment, Ingress.
pub const CHILDREN: usize = 6;
/// Writes one lifecycle needs at least, by phase: ADD 10 (finalizer, Job, 6 children, Event,
/// status), deploy 4 (Deployment, Event, status, release of the finished build Job), push 4
/// (delete the old Job, create the new one, Event, status), redeploy 4, delete 9 (Event, Job,
/// 6 children, finalizer).
pub const MIN_WRITES: [(&str, usize); 5] = [
    ("create", 10),
    ("deploy", 4),
    ("push", 4),
    ("redeploy", 4),
    ("delete", 9),
];

/// How to run one benchmark.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Number of ReviewApps.
    pub apps: usize,
    /// The `review-app-operator` binary to run as a child process; `None` runs the daemon in
    /// this process (no RSS/CPU figures; for the smoke test).
    pub operator: Option<PathBuf>,
    /// Length of the idle window (the operator ticks every second during it).
    pub idle: Duration,
    /// Longest wait for any phase to converge.
    pub timeout: Duration,
}
