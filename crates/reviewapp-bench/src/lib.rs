//! The benchmark driver: the API emulator and the workload run in this process; the operator
//! runs as a child process (`review-app-operator run`, the real binary), so that its peak RSS and
//! CPU time can be read from `/proc/<pid>`. The driver writes only through the emulator's
//! [`Handle`] (no HTTP), so every request in the emulator's log is the operator's. When an
//! operator object lands is observed through in-process subscriptions
//! ([`Handle::subscribe`]), timestamped when the subscriber task receives the change.
//!
//! One run at N apps, in order:
//!
//! 1. **create**: N `ReviewApp`s (the seed's sample, one PR each) created in a burst;
//!    created → all 6 children applied, per app, and N / (last app applied − first create).
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

pub mod github;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kube::CustomResourceExt;
use reviewapp_api::OperatorConfig;

mod failover;

pub use failover::{FailoverOptions, FailoverReport, FailoverSample, failover, failover_markdown};
use reviewapp_testkit::{Emulator, Handle, RequestRecord, object_path};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The namespace of every app, and the build namespace.
pub const APP_NS: &str = "test-review-app";
/// Where build Jobs run.
pub const BUILD_NS: &str = "review-build";
const REGISTRY: &str = "registry.bench/review";
const TLS_SECRET: &str = "star-review-local-tls";
const SHA1: &str = "c8c9aa334a76677aa0be4ec0ebb08484367f952d";
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

/// Latency distribution, in milliseconds.
#[derive(Clone, Debug, Default)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
}

impl Latency {
    fn of(mut samples: Vec<Duration>) -> Latency {
        if samples.is_empty() {
            return Latency::default();
        }
        samples.sort();
        let at = |q: f64| {
            let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            samples[rank - 1].as_secs_f64() * 1000.0
        };
        Latency {
            p50: at(0.50),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

/// Requests the operator sent during a phase.
#[derive(Clone, Debug, Default)]
pub struct Requests {
    /// GET requests that are not watches (gets and lists).
    pub reads: usize,
    /// Watch requests (streams opened).
    pub watches: usize,
    /// POST, PUT, PATCH, DELETE.
    pub writes: usize,
    /// POST of a build Job.
    pub job_creates: usize,
    /// Reads and writes by method and resource, e.g. `PATCH deployments` (to explain a number).
    pub by: BTreeMap<String, usize>,
}

impl Requests {
    fn of(log: &[RequestRecord]) -> Requests {
        let mut out = Requests::default();
        for r in log {
            if r.watch {
                out.watches += 1;
            } else if r.is_write() {
                out.writes += 1;
                if r.method == "POST" && r.path.ends_with("/jobs") {
                    out.job_creates += 1;
                }
            } else {
                out.reads += 1;
            }
            if !r.watch {
                *out.by
                    .entry(format!("{} {}", r.method, resource_of(&r.path)))
                    .or_default() += 1;
            }
        }
        out
    }
}

/// The plural (and subresource) a request path addresses.
fn resource_of(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    // /api/v1/namespaces/ns/plural[/name[/sub]] or /apis/g/v/namespaces/ns/plural[/name[/sub]]
    let rest = match parts.first() {
        Some(&"api") => &parts[2.min(parts.len())..],
        _ => &parts[3.min(parts.len())..],
    };
    let rest = if rest.first() == Some(&"namespaces") && rest.len() > 2 {
        &rest[2..]
    } else {
        rest
    };
    match rest {
        [plural, _, sub] => format!("{plural}/{sub}"),
        [plural, ..] => (*plural).to_string(),
        [] => path.to_string(),
    }
}

/// The operator process's resource use (`None` when it ran in-process).
#[derive(Clone, Debug, Default)]
pub struct Usage {
    /// Peak resident set (`VmHWM`), KiB.
    pub peak_rss_kib: u64,
    /// User + system CPU time, seconds.
    pub cpu_seconds: f64,
}

/// Everything one run measured.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// N.
    pub apps: usize,
    /// ReviewApp created → its 6 children exist (burst of N creates).
    pub create_to_applied: Latency,
    /// First create → last app fully applied.
    pub create_burst: Duration,
    /// Build finished → Deployment at 1 replica with the built image, one build at a time.
    pub deploy_sequential: Latency,
    /// The same, N builds finishing in a burst.
    pub deploy_burst: Latency,
    /// First build finished → last app deployed, in the burst.
    pub deploy_burst_total: Duration,
    /// Requests per lifecycle phase (create, deploy, push, redeploy, delete).
    pub phases: Vec<(String, Requests)>,
    /// Restart: time until `/readyz` answered 200.
    pub restart_ready: Duration,
    /// Restart: time until every app's ADD was handled.
    pub restart_converged: Duration,
    /// Requests from the restart until every ADD was handled (and 1 s more).
    pub restart_requests: Requests,
    /// Idle window: its length, the RECONCILE events handled in it, and its requests.
    pub idle_window: Duration,
    /// RECONCILE events handled in the idle window.
    pub idle_reconciles: u64,
    /// Requests in the idle window.
    pub idle_requests: Requests,
    /// Operator process during create → redeploy (`None`: in-process daemon).
    pub lifecycle_usage: Option<Usage>,
    /// Operator process during restart + convergence.
    pub restart_usage: Option<Usage>,
    /// Operator process during the idle window (CPU only of the window).
    pub idle_usage: Option<Usage>,
}

impl Report {
    /// Writes per app over one lifecycle, and the minimum.
    pub fn lifecycle_writes_per_app(&self) -> (f64, usize) {
        let writes: usize = self.phases.iter().map(|(_, r)| r.writes).sum();
        (
            writes as f64 / self.apps.max(1) as f64,
            MIN_WRITES.iter().map(|(_, w)| w).sum(),
        )
    }

    /// Reads per app over one lifecycle.
    pub fn lifecycle_reads_per_app(&self) -> f64 {
        let reads: usize = self.phases.iter().map(|(_, r)| r.reads).sum();
        reads as f64 / self.apps.max(1) as f64
    }

    /// Idle writes per hour at the real 30 s tick: writes per full tick of all apps × 120.
    pub fn idle_writes_per_hour(&self) -> f64 {
        let ticks = self.idle_reconciles as f64 / self.apps.max(1) as f64;
        if ticks == 0.0 {
            return self.idle_requests.writes as f64 * 120.0;
        }
        self.idle_requests.writes as f64 / ticks * 120.0
    }
}

/// What the subscriptions saw of one object.
#[derive(Clone, Debug)]
struct Seen {
    at: Instant,
    kind: &'static str,
    replicas: Option<i64>,
    image: Option<String>,
    status: Option<(String, String)>,
}

/// Every change of the watched objects, by (plural, name).
#[derive(Default)]
struct Recorder {
    objects: HashMap<(&'static str, String), Vec<Seen>>,
    /// First ADDED of each child, by ReviewApp name (`app.kubernetes.io/instance`).
    children: HashMap<String, HashMap<(&'static str, String), Instant>>,
}

type Shared = Arc<Mutex<Recorder>>;

fn lock(r: &Shared) -> std::sync::MutexGuard<'_, Recorder> {
    r.lock().unwrap_or_else(|e| e.into_inner())
}

impl Recorder {
    fn history(&self, plural: &'static str, name: &str) -> &[Seen] {
        self.objects
            .get(&(plural, name.to_string()))
            .map_or(&[], Vec::as_slice)
    }

    fn exists(&self, plural: &'static str, name: &str) -> bool {
        self.history(plural, name)
            .last()
            .is_some_and(|s| s.kind != "DELETED")
    }

    fn status(&self, app: &str) -> Option<(String, String)> {
        let last = self.history("reviewapps", app).last()?;
        if last.kind == "DELETED" {
            return None;
        }
        last.status.clone()
    }
}

fn text(v: &Value, pointer: &str) -> Option<String> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The watched resources: (group, version, plural, namespace, is a child).
const WATCHED: [(&str, &str, &str, Option<&str>, bool); 7] = [
    ("", "v1", "secrets", Some(APP_NS), true),
    ("kubedb.com", "v1", "postgreses", Some(APP_NS), true),
    ("", "v1", "services", Some(APP_NS), true),
    ("apps", "v1", "deployments", Some(APP_NS), true),
    ("networking.k8s.io", "v1", "ingresses", Some(APP_NS), true),
    ("batch", "v1", "jobs", Some(BUILD_NS), false),
    (GROUP, "v1", "reviewapps", None, false),
];

fn subscribe_all(
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
                let o = &*event.object;
                let name = text(o, "/metadata/name").unwrap_or_default();
                let seen = Seen {
                    at,
                    kind: event.kind,
                    replicas: o.pointer("/spec/replicas").and_then(Value::as_i64),
                    image: text(o, "/spec/template/spec/containers/0/image"),
                    status: text(o, "/status/appStatus").zip(text(o, "/status/buildStatus")),
                };
                let mut r = lock(&recorder);
                let instance = text(o, "/metadata/labels/app.kubernetes.io~1instance");
                if let Some(app) = instance.filter(|_| child && event.kind == "ADDED") {
                    r.children
                        .entry(app)
                        .or_default()
                        .entry((plural, name.clone()))
                        .or_insert(at);
                }
                r.objects.entry((plural, name)).or_default().push(seen);
            }
        }));
    }
    Ok(tasks)
}

/// App `i` (0-based): its ReviewApp name, PR, Deployment name and build Job for `commit`.
struct App {
    name: String,
    pr: String,
}

impl App {
    fn new(i: usize) -> App {
        App {
            name: format!("app-{}", i + 1),
            pr: format!("{}", i + 1),
        }
    }

    fn deployment(&self) -> String {
        format!("test-review-app-{}", self.pr)
    }

    fn job(&self, commit: &str) -> String {
        format!("test-review-app-{}--{}", self.pr, &commit[..10])
    }

    fn manifest(&self, commit: &str) -> anyhow::Result<Value> {
        let mut app: Value = serde_yaml::from_str(SAMPLE).context("the sample parses")?;
        app["metadata"] = json!({"name": self.name});
        app["spec"]["pr"] = json!(self.pr);
        app["spec"]["commitHash"] = json!(commit);
        if let Some(o) = app.as_object_mut() {
            o.remove("status");
        }
        Ok(app)
    }

    fn path(&self) -> String {
        object_path(GROUP, "v1", "reviewapps", None, &self.name)
    }

    /// When the Deployment first ran 1 replica of the image built from `commit`, after `since`.
    fn deployed_at(&self, r: &Recorder, commit: &str, since: Instant) -> Option<Instant> {
        let suffix = format!(":{}", &commit[..10]);
        r.history("deployments", &self.deployment())
            .iter()
            .find(|s| {
                s.at >= since
                    && s.kind != "DELETED"
                    && s.replicas == Some(1)
                    && s.image.as_deref().is_some_and(|i| i.ends_with(&suffix))
            })
            .map(|s| s.at)
    }
}

/// Polls `check` every 2 ms until it holds; fails naming `what` after `timeout`.
async fn wait_until(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while !check() {
        if Instant::now() > deadline {
            bail!("did not converge within {timeout:?}: {what}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

/// Waits until the request log stops growing for 300 ms (at most 30 s).
async fn settle(handle: &Handle) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = usize::MAX;
    let mut stable = 0;
    while stable < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = handle.requests().len();
        if now == last {
            stable += 1;
        } else {
            stable = 0;
            last = now;
        }
    }
}

/// Takes the request log of a phase and empties it.
fn take_requests(handle: &Handle) -> Requests {
    let log = handle.requests();
    handle.clear_requests();
    Requests::of(&log)
}

enum Process {
    Child(tokio::process::Child),
    InProcess {
        stop: tokio::sync::oneshot::Sender<()>,
        task: tokio::task::JoinHandle<Result<(), reviewapp_daemon::DaemonError>>,
    },
}

/// A running operator.
struct Daemon {
    process: Process,
    addr: SocketAddr,
    cpu_at_start: f64,
}

fn operator_config(tick: u64) -> OperatorConfig {
    let mut config = OperatorConfig {
        registry: REGISTRY.into(),
        build_namespace: BUILD_NS.into(),
        reconcile_interval_seconds: tick,
        ..OperatorConfig::default()
    };
    config.tls.secret_name = TLS_SECRET.into();
    config.tls.secret_namespace = "default".into();
    config
}

struct Env {
    emulator: Emulator,
    kubeconfig: PathBuf,
    logs: PathBuf,
    operator: Option<PathBuf>,
    starts: usize,
}

impl Env {
    /// A fresh emulator holding the app and build namespaces and the wildcard TLS Secret, with
    /// a kubeconfig for it (and the operators' logs) in `dir`.
    async fn new(dir: &std::path::Path, operator: Option<PathBuf>) -> anyhow::Result<Env> {
        let emulator = Emulator::start().await.context("starting the emulator")?;
        std::fs::create_dir_all(dir)?;
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(&kubeconfig, emulator.kubeconfig_yaml())?;
        let handle = emulator.handle();
        let fail = |e: reviewapp_testkit::ApiError| anyhow::anyhow!("{e}");
        // The operator's CRD: ReviewApp writes are validated, pruned and checked against its CEL
        // rules, as on an API server.
        handle
            .create(serde_json::to_value(reviewapp_api::ReviewApp::crd())?)
            .map_err(fail)?;
        for ns in [APP_NS, BUILD_NS] {
            handle
                .create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
                .map_err(fail)?;
        }
        handle
            .create(json!({
                "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                "metadata": {"name": TLS_SECRET, "namespace": "default"},
                "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}
            }))
            .map_err(fail)?;
        // The sample's env Secrets (`env.secrets`).
        for name in ["secret-one", "secret-two"] {
            handle
                .create(json!({
                    "apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": name, "namespace": APP_NS},
                    "data": {"SAMPLE": "c2FtcGxl"}
                }))
                .map_err(fail)?;
        }
        Ok(Env {
            emulator,
            kubeconfig,
            logs: dir.to_path_buf(),
            operator,
            starts: 0,
        })
    }

    async fn start_daemon(&mut self, tick: u64) -> anyhow::Result<Daemon> {
        self.start_replica(tick, None).await
    }

    /// Starts an operator, with leader election when `leader` is given (the child process gets
    /// its timings as whole seconds).
    async fn start_replica(
        &mut self,
        tick: u64,
        leader: Option<&reviewapp_daemon::LeaderOptions>,
    ) -> anyhow::Result<Daemon> {
        self.starts += 1;
        match &self.operator {
            Some(binary) => {
                let port = std::net::TcpListener::bind("127.0.0.1:0")?
                    .local_addr()?
                    .port();
                let addr: SocketAddr = ([127, 0, 0, 1], port).into();
                let log = self.logs.join(format!("operator-{}.log", self.starts));
                let stderr = std::fs::File::create(&log)
                    .with_context(|| format!("creating {}", log.display()))?;
                let config = operator_config(tick);
                let mut command = tokio::process::Command::new(binary);
                command.arg("run").arg("--listen").arg(addr.to_string());
                if let Some(leader) = leader {
                    command
                        .arg("--leader-election")
                        .arg(format!("--identity={}", leader.identity))
                        .arg(format!("--lease-name={}", leader.lease_name))
                        .arg(format!("--lease-namespace={}", leader.namespace))
                        .arg(format!(
                            "--lease-duration-seconds={}",
                            leader.lease_duration.as_secs()
                        ))
                        .arg(format!(
                            "--renew-deadline-seconds={}",
                            leader.renew_deadline.as_secs()
                        ))
                        .arg(format!(
                            "--retry-period-seconds={}",
                            leader.retry_period.as_secs()
                        ));
                }
                let child = command
                    .env("KUBECONFIG", &self.kubeconfig)
                    .env("REVIEWAPP_REGISTRY", &config.registry)
                    .env("REVIEWAPP_BUILD_NAMESPACE", &config.build_namespace)
                    .env("REVIEWAPP_TLS_SECRET_NAME", &config.tls.secret_name)
                    .env(
                        "REVIEWAPP_TLS_SECRET_NAMESPACE",
                        &config.tls.secret_namespace,
                    )
                    .env("REVIEWAPP_RECONCILE_INTERVAL_SECONDS", tick.to_string())
                    .env("RUST_LOG", "warn")
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(stderr)
                    .kill_on_drop(true)
                    .spawn()
                    .with_context(|| format!("starting {}", binary.display()))?;
                Ok(Daemon {
                    process: Process::Child(child),
                    addr,
                    cpu_at_start: 0.0,
                })
            }
            None => {
                let options = reviewapp_daemon::DaemonOptions {
                    concurrency: 8,
                    listen: "127.0.0.1:0".parse()?,
                    leader: leader.cloned(),
                    shutdown_grace: Duration::from_secs(20),
                    controller_name: "review-app-operator".into(),
                    instance: Some(leader.map_or("bench".into(), |l| l.identity.clone())),
                    listener: None,
                };
                let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
                let (bound, listening) = std::sync::mpsc::channel();
                let task = tokio::spawn(reviewapp_daemon::run(
                    self.emulator.client(),
                    Arc::new(operator_config(tick)),
                    options,
                    async move {
                        let _ = stopped.await;
                    },
                    move |addr| {
                        let _ = bound.send(addr);
                    },
                ));
                let deadline = Instant::now() + Duration::from_secs(10);
                let addr = loop {
                    if let Ok(addr) = listening.try_recv() {
                        break addr;
                    }
                    if Instant::now() > deadline {
                        bail!("the in-process daemon did not listen");
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                };
                Ok(Daemon {
                    process: Process::InProcess { stop, task },
                    addr,
                    cpu_at_start: 0.0,
                })
            }
        }
    }
}

impl Daemon {
    fn pid(&self) -> Option<u32> {
        match &self.process {
            Process::Child(child) => child.id(),
            Process::InProcess { .. } => None,
        }
    }

    /// Peak RSS and CPU time since start (or since [`Daemon::mark_cpu`]).
    fn usage(&self) -> Option<Usage> {
        let pid = self.pid()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let peak_rss_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())?;
        Some(Usage {
            peak_rss_kib,
            cpu_seconds: cpu_seconds(pid)? - self.cpu_at_start,
        })
    }

    fn mark_cpu(&mut self) {
        if let Some(cpu) = self.pid().and_then(cpu_seconds) {
            self.cpu_at_start = cpu;
        }
    }

    async fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut stream = tokio::net::TcpStream::connect(self.addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await.ok()?;
        let code = response.split_whitespace().nth(1)?.parse().ok()?;
        Some((code, response))
    }

    async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<Duration> {
        let start = Instant::now();
        loop {
            if let Some((200, _)) = self.get("/readyz").await {
                return Ok(start.elapsed());
            }
            if start.elapsed() > timeout {
                bail!("the operator was not ready within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// `reviewapp_events_total{event="<event>"}`.
    async fn events(&self, event: &str) -> u64 {
        let Some((200, body)) = self.get("/metrics").await else {
            return 0;
        };
        let label = format!("event=\"{event}\"");
        body.lines()
            .filter(|l| l.starts_with("reviewapp_events_total{") && l.contains(&label))
            .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
            .map(|v| v as u64)
            .sum()
    }

    async fn wait_events(&self, event: &str, n: u64, timeout: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        while self.events(event).await < n {
            if start.elapsed() > timeout {
                bail!("the operator did not handle {n} {event} events within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    /// SIGTERM (or the in-process stop signal), then waits for a clean exit.
    async fn stop(self) -> anyhow::Result<()> {
        match self.process {
            Process::Child(mut child) => {
                if let Some(pid) = child.id() {
                    let status = tokio::process::Command::new("kill")
                        .arg("-TERM")
                        .arg(pid.to_string())
                        .status()
                        .await
                        .context("running kill")?;
                    if !status.success() {
                        bail!("kill -TERM {pid} failed");
                    }
                }
                let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
                    .await
                    .context("the operator did not stop within 30 s")??;
                if !status.success() {
                    bail!("the operator exited with {status}");
                }
            }
            Process::InProcess { stop, task } => {
                let _ = stop.send(());
                tokio::time::timeout(Duration::from_secs(30), task)
                    .await
                    .context("the daemon did not stop within 30 s")?
                    .context("the daemon task")??;
            }
        }
        Ok(())
    }
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the command: state is field 3; utime and stime are fields 14 and 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

/// Runs the whole benchmark at `options.apps` apps.
pub async fn run(options: &BenchOptions) -> anyhow::Result<Report> {
    let n = options.apps;
    let dir = std::env::temp_dir().join(format!("reviewapp-bench-{}-{n}", std::process::id()));
    let mut env = Env::new(&dir, options.operator.clone()).await?;
    let handle = env.emulator.handle();
    let recorder: Shared = Arc::default();
    let tasks = subscribe_all(&handle, &recorder)?;
    let apps: Vec<App> = (0..n).map(App::new).collect();
    let mut report = Report {
        apps: n,
        ..Report::default()
    };
    let result = lifecycle(&mut env, &handle, &recorder, &apps, options, &mut report).await;
    for task in tasks {
        task.abort();
    }
    env.emulator.shutdown().await;
    result.with_context(|| format!("operator logs in {}", dir.display()))?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(report)
}

async fn lifecycle(
    env: &mut Env,
    handle: &Handle,
    recorder: &Shared,
    apps: &[App],
    options: &BenchOptions,
    report: &mut Report,
) -> anyhow::Result<()> {
    let timeout = options.timeout;
    let fail = |e: reviewapp_testkit::ApiError| anyhow::anyhow!("{e}");

    let daemon = env.start_daemon(30).await?;
    daemon.wait_ready(timeout).await?;
    settle(handle).await;
    handle.clear_requests();

    // 1. create: a burst of N creates.
    let mut created = Vec::with_capacity(apps.len());
    for app in apps {
        created.push(Instant::now());
        handle.apply(app.manifest(SHA1)?).map_err(fail)?;
    }
    wait_until("every app has its 6 children", timeout, || {
        let r = lock(recorder);
        apps.iter()
            .all(|a| r.children.get(&a.name).is_some_and(|c| c.len() >= CHILDREN))
    })
    .await?;
    wait_until("every app is building/building", timeout, || {
        let r = lock(recorder);
        apps.iter().all(|a| {
            r.exists("jobs", &a.job(SHA1))
                && r.status(&a.name) == Some(("building".into(), "building".into()))
        })
    })
    .await?;
    {
        let r = lock(recorder);
        let mut samples = Vec::new();
        let mut last = created[0];
        for (app, t0) in apps.iter().zip(&created) {
            let done = r
                .children
                .get(&app.name)
                .and_then(|c| c.values().max().copied())
                .unwrap_or(*t0);
            last = last.max(done);
            samples.push(done.saturating_duration_since(*t0));
        }
        report.create_to_applied = Latency::of(samples);
        report.create_burst = last.saturating_duration_since(created[0]);
    }
    settle(handle).await;
    report.phases.push(("create".into(), take_requests(handle)));

    // 2. deploy: builds finish one at a time.
    let mut samples = Vec::with_capacity(apps.len());
    for app in apps {
        let t0 = Instant::now();
        handle
            .set_job_succeeded(BUILD_NS, &app.job(SHA1))
            .map_err(fail)?;
        let mut done = None;
        wait_until("the built image is deployed", timeout, || {
            done = app.deployed_at(&lock(recorder), SHA1, t0);
            done.is_some()
        })
        .await?;
        samples.push(done.map_or(Duration::ZERO, |d| d.saturating_duration_since(t0)));
        wait_until("deployed/success", timeout, || {
            lock(recorder).status(&app.name) == Some(("deployed".into(), "success".into()))
        })
        .await?;
    }
    report.deploy_sequential = Latency::of(samples);
    settle(handle).await;
    report.phases.push(("deploy".into(), take_requests(handle)));

    // 3. push: a new commit for every app.
    for app in apps {
        handle.apply(app.manifest(SHA2)?).map_err(fail)?;
    }
    wait_until(
        "every app rebuilds (new Job, old one deleted, deployed/building)",
        timeout,
        || {
            let r = lock(recorder);
            apps.iter().all(|a| {
                r.exists("jobs", &a.job(SHA2))
                    && !r.exists("jobs", &a.job(SHA1))
                    && r.status(&a.name) == Some(("deployed".into(), "building".into()))
            })
        },
    )
    .await?;
    settle(handle).await;
    report.phases.push(("push".into(), take_requests(handle)));

    // 4. redeploy: the N new builds finish in a burst.
    let mut finished = Vec::with_capacity(apps.len());
    for app in apps {
        finished.push(Instant::now());
        handle
            .set_job_succeeded(BUILD_NS, &app.job(SHA2))
            .map_err(fail)?;
    }
    wait_until("every new image is deployed", timeout, || {
        let r = lock(recorder);
        apps.iter()
            .zip(&finished)
            .all(|(a, t0)| a.deployed_at(&r, SHA2, *t0).is_some())
    })
    .await?;
    {
        let r = lock(recorder);
        let mut samples = Vec::new();
        let mut last = finished[0];
        for (app, t0) in apps.iter().zip(&finished) {
            let at = app.deployed_at(&r, SHA2, *t0).unwrap_or(*t0);
            last = last.max(at);
            samples.push(at.saturating_duration_since(*t0));
        }
        report.deploy_burst = Latency::of(samples);
        report.deploy_burst_total = last.saturating_duration_since(finished[0]);
    }
    wait_until("every app is deployed/success", timeout, || {
        let r = lock(recorder);
        apps.iter()
            .all(|a| r.status(&a.name) == Some(("deployed".into(), "success".into())))
    })
    .await?;
    settle(handle).await;
    report
        .phases
        .push(("redeploy".into(), take_requests(handle)));
    report.lifecycle_usage = daemon.usage();

    // 5. restart with N deployed apps (the real 30 s tick).
    daemon.stop().await?;
    handle.clear_requests();
    let start = Instant::now();
    let daemon = env.start_daemon(30).await?;
    daemon.wait_ready(timeout).await?;
    report.restart_ready = start.elapsed();
    daemon
        .wait_events("add", apps.len() as u64, timeout)
        .await?;
    report.restart_converged = start.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    settle(handle).await;
    report.restart_requests = take_requests(handle);
    report.restart_usage = daemon.usage();
    daemon.stop().await?;

    // 6. idle: a 1 s tick, compressing time; counted once every app's ADD was handled.
    let mut daemon = env.start_daemon(1).await?;
    daemon.wait_ready(timeout).await?;
    daemon
        .wait_events("add", apps.len() as u64, timeout)
        .await?;
    settle(handle).await;
    handle.clear_requests();
    daemon.mark_cpu();
    let before = daemon.events("reconcile").await;
    let start = Instant::now();
    tokio::time::sleep(options.idle).await;
    report.idle_reconciles = daemon.events("reconcile").await.saturating_sub(before);
    report.idle_window = start.elapsed();
    report.idle_requests = take_requests(handle);
    report.idle_usage = daemon.usage();
    daemon.stop().await?;

    // 7. delete, with a fresh operator at the real tick.
    let daemon = env.start_daemon(30).await?;
    daemon.wait_ready(timeout).await?;
    daemon
        .wait_events("add", apps.len() as u64, timeout)
        .await?;
    settle(handle).await;
    handle.clear_requests();
    for app in apps {
        handle.delete(&app.path()).map_err(fail)?;
    }
    wait_until("every ReviewApp is gone", timeout, || {
        let r = lock(recorder);
        apps.iter().all(|a| !r.exists("reviewapps", &a.name))
    })
    .await?;
    wait_until("nothing of any app is left", timeout, || {
        let selector = "app.kubernetes.io/managed-by=review-app-operator";
        WATCHED
            .iter()
            .filter(|(_, _, plural, _, _)| *plural != "reviewapps")
            .all(|(g, v, p, ns, _)| handle.list(g, v, p, *ns, Some(selector)).is_empty())
    })
    .await?;
    settle(handle).await;
    report.phases.push(("delete".into(), take_requests(handle)));
    daemon.stop().await?;
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn mib(usage: &Option<Usage>) -> String {
    usage.as_ref().map_or("n/a".into(), |u| {
        format!("{:.1}", u.peak_rss_kib as f64 / 1024.0)
    })
}

fn cpu(usage: &Option<Usage>) -> String {
    usage
        .as_ref()
        .map_or("n/a".into(), |u| format!("{:.2}", u.cpu_seconds))
}

/// The reports as one markdown table (a column per N).
pub fn markdown(reports: &[Report]) -> String {
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let mut row = |name: &str, f: &dyn Fn(&Report) -> String| {
        rows.push((name.to_string(), reports.iter().map(f).collect()));
    };
    row(
        "build finished → deployed, one at a time: p50 / p99 / max (ms)",
        &|r| {
            let l = &r.deploy_sequential;
            format!("{:.1} / {:.1} / {:.1}", l.p50, l.p99, l.max)
        },
    );
    row(
        "build finished → deployed, N at once: p50 / p99 / max (ms)",
        &|r| {
            let l = &r.deploy_burst;
            format!("{:.1} / {:.1} / {:.1}", l.p50, l.p99, l.max)
        },
    );
    row("N builds finished at once → last deployed (ms)", &|r| {
        ms(r.deploy_burst_total)
    });
    row(
        "created → 6 children applied, N at once: p50 / p99 (ms)",
        &|r| {
            let l = &r.create_to_applied;
            format!("{:.1} / {:.1}", l.p50, l.p99)
        },
    );
    row("burst of N creates: all applied (ms) / apps per s", &|r| {
        let s = r.create_burst.as_secs_f64();
        format!(
            "{} / {:.0}",
            ms(r.create_burst),
            if s > 0.0 { r.apps as f64 / s } else { 0.0 }
        )
    });
    let minimum: usize = MIN_WRITES.iter().map(|(_, w)| w).sum();
    row(
        &format!("writes per app per lifecycle (minimum {minimum})"),
        &|r| {
            let (w, min) = r.lifecycle_writes_per_app();
            format!("{w:.2} (min {min})")
        },
    );
    for (i, (phase, min)) in MIN_WRITES.iter().enumerate() {
        row(
            &format!("  writes per app: {phase} (minimum {min})"),
            &|r| {
                r.phases.get(i).map_or("n/a".into(), |(_, q)| {
                    format!("{:.2}", q.writes as f64 / r.apps.max(1) as f64)
                })
            },
        );
    }
    row("reads (GET/LIST) per app per lifecycle", &|r| {
        format!("{:.2}", r.lifecycle_reads_per_app())
    });
    row("watch requests during the lifecycle (total)", &|r| {
        r.phases
            .iter()
            .map(|(_, q)| q.watches)
            .sum::<usize>()
            .to_string()
    });
    row("idle: writes in window / RECONCILEs handled", &|r| {
        format!(
            "{} / {} in {:.0} s",
            r.idle_requests.writes,
            r.idle_reconciles,
            r.idle_window.as_secs_f64()
        )
    });
    row("idle: writes per hour at the 30 s tick", &|r| {
        format!("{:.0}", r.idle_writes_per_hour())
    });
    row("idle: reads per app per tick", &|r| {
        let ticks = r.idle_reconciles as f64;
        if ticks == 0.0 {
            "n/a".into()
        } else {
            format!("{:.2}", r.idle_requests.reads as f64 / ticks)
        }
    });
    row("restart: until /readyz 200 (ms)", &|r| ms(r.restart_ready));
    row("restart: until every ADD handled (ms)", &|r| {
        ms(r.restart_converged)
    });
    row("restart: builds started / writes", &|r| {
        format!(
            "{} / {}",
            r.restart_requests.job_creates, r.restart_requests.writes
        )
    });
    row("restart: reads / watch requests", &|r| {
        format!(
            "{} / {}",
            r.restart_requests.reads, r.restart_requests.watches
        )
    });
    row("operator peak RSS, create → redeploy (MiB)", &|r| {
        mib(&r.lifecycle_usage)
    });
    row("operator CPU time, create → redeploy (s)", &|r| {
        cpu(&r.lifecycle_usage)
    });
    row(
        "operator peak RSS / CPU, restart → converged (MiB / s)",
        &|r| format!("{} / {}", mib(&r.restart_usage), cpu(&r.restart_usage)),
    );
    row("operator CPU time in the idle window (s)", &|r| {
        cpu(&r.idle_usage)
    });

    let mut out = String::from("| metric |");
    for r in reports {
        out.push_str(&format!(" N = {} |", r.apps));
    }
    out.push_str("\n|---|");
    for _ in reports {
        out.push_str("---|");
    }
    out.push('\n');
    for (name, cells) in rows {
        out.push_str(&format!("| {name} | {} |\n", cells.join(" | ")));
    }
    out
}

/// Requests (reads and writes, no watches) by method and resource, per phase, per app (to
/// explain the counts).
pub fn request_breakdown(report: &Report) -> String {
    let mut out = format!("requests per app by phase at N = {}:\n", report.apps);
    for (phase, q) in &report.phases {
        let parts: Vec<String> =
            q.by.iter()
                .map(|(k, v)| format!("{k} {:.2}", *v as f64 / report.apps.max(1) as f64))
                .collect();
        out.push_str(&format!("  {phase}: {}\n", parts.join(", ")));
    }
    out
}
