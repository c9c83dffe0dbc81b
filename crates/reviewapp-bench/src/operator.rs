//! The operators under test and the world they run in: [`Env`] holds the API emulator (with
//! the namespaces and Secrets the sample needs) and starts operators, as child processes of
//! the real binary or as daemons in this process; [`Daemon`] is one running operator, read
//! through its `/readyz` and `/metrics` and, for a child process, `/proc/<pid>`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kube::CustomResourceExt;
use reviewapp_api::OperatorConfig;
use reviewapp_daemon::{DaemonError, DaemonOptions, LeaderOptions};
use reviewapp_testkit::{ApiError, Emulator, Handle};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::report::Usage;
use crate::{APP_NS, BUILD_NS};

const REGISTRY: &str = "registry.bench/review";
const TLS_SECRET: &str = "star-review-local-tls";

/// How an operator runs.
pub(crate) enum Process {
    /// `review-app-operator run`, a child process.
    Child(tokio::process::Child),
    /// The daemon as a task of this process, stopped through `stop`.
    InProcess {
        stop: tokio::sync::oneshot::Sender<()>,
        task: tokio::task::JoinHandle<Result<(), DaemonError>>,
    },
}

/// A running operator.
pub(crate) struct Daemon {
    pub process: Process,
    /// Where it serves `/readyz` and `/metrics`.
    addr: SocketAddr,
    /// CPU seconds already spent at [`Daemon::mark_cpu`].
    cpu_at_start: f64,
}

/// The operator configuration of every run, reconciling every `tick` seconds.
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

/// A handle error as an `anyhow` error.
pub(crate) fn api_error(e: ApiError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// The emulator and how to start operators against it.
pub(crate) struct Env {
    pub emulator: Emulator,
    kubeconfig: PathBuf,
    /// Where each child process's stderr goes (`operator-<n>.log`).
    logs: PathBuf,
    /// The binary to run; `None` runs the daemon in this process.
    operator: Option<PathBuf>,
    /// Operators started so far (numbers the logs).
    starts: usize,
}

impl Env {
    /// A fresh emulator holding the app and build namespaces and the wildcard TLS Secret, with
    /// a kubeconfig for it (and the operators' logs) in `dir`.
    pub async fn new(dir: &Path, operator: Option<PathBuf>) -> anyhow::Result<Env> {
        let emulator = Emulator::start().await.context("starting the emulator")?;
        std::fs::create_dir_all(dir)?;
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(&kubeconfig, emulator.kubeconfig_yaml())?;
        install_cluster(&emulator.handle())?;
        Ok(Env {
            emulator,
            kubeconfig,
            logs: dir.to_path_buf(),
            operator,
            starts: 0,
        })
    }

    /// Starts an operator without leader election, reconciling every `tick` seconds.
    pub async fn start_daemon(&mut self, tick: u64) -> anyhow::Result<Daemon> {
        self.start_replica(tick, None).await
    }

    /// Starts an operator, with leader election when `leader` is given (the child process gets
    /// its timings as whole seconds).
    pub async fn start_replica(
        &mut self,
        tick: u64,
        leader: Option<&LeaderOptions>,
    ) -> anyhow::Result<Daemon> {
        self.starts += 1;
        match self.operator.clone() {
            Some(binary) => self.spawn_child(&binary, tick, leader),
            None => self.spawn_in_process(tick, leader).await,
        }
    }

    /// Runs `binary run` on a free port, configured through `REVIEWAPP_*` variables.
    fn spawn_child(
        &self,
        binary: &Path,
        tick: u64,
        leader: Option<&LeaderOptions>,
    ) -> anyhow::Result<Daemon> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let log = self.logs.join(format!("operator-{}.log", self.starts));
        let stderr =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let config = operator_config(tick);
        let child = tokio::process::Command::new(binary)
            .arg("run")
            .arg("--listen")
            .arg(addr.to_string())
            // Replicas run side by side: each activator on a port of its own.
            .arg("--activator-listen")
            .arg("127.0.0.1:0")
            .args(leader.map(leader_args).unwrap_or_default())
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

    /// Runs the daemon as a task of this process, and waits until it listens.
    async fn spawn_in_process(
        &self,
        tick: u64,
        leader: Option<&LeaderOptions>,
    ) -> anyhow::Result<Daemon> {
        let options = DaemonOptions {
            concurrency: 8,
            listen: "127.0.0.1:0".parse()?,
            leader: leader.cloned(),
            shutdown_grace: Duration::from_secs(20),
            controller_name: "review-app-operator".into(),
            instance: Some(leader.map_or("bench".into(), |l| l.identity.clone())),
            listener: None,
            activator: None,
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

/// What the platform team set up before the operator: its CRD (ReviewApp writes are then
/// validated, pruned and checked against its CEL rules, as on an API server), the app and build
/// namespaces, the wildcard TLS Secret, and the sample's env Secrets (`env.secrets`).
fn install_cluster(handle: &Handle) -> anyhow::Result<()> {
    handle
        .create(serde_json::to_value(reviewapp_api::ReviewApp::crd())?)
        .map_err(api_error)?;
    for ns in [APP_NS, BUILD_NS] {
        handle
            .create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
            .map_err(api_error)?;
    }
    handle
        .create(json!({
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": TLS_SECRET, "namespace": "default"},
            "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}
        }))
        .map_err(api_error)?;
    for name in ["secret-one", "secret-two"] {
        handle
            .create(json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": name, "namespace": APP_NS},
                "data": {"SAMPLE": "c2FtcGxl"}
            }))
            .map_err(api_error)?;
    }
    Ok(())
}

/// The `run` flags of a replica with leader election.
fn leader_args(leader: &LeaderOptions) -> Vec<String> {
    vec![
        "--leader-election".into(),
        format!("--identity={}", leader.identity),
        format!("--lease-name={}", leader.lease_name),
        format!("--lease-namespace={}", leader.namespace),
        format!(
            "--lease-duration-seconds={}",
            leader.lease_duration.as_secs()
        ),
        format!(
            "--renew-deadline-seconds={}",
            leader.renew_deadline.as_secs()
        ),
        format!("--retry-period-seconds={}", leader.retry_period.as_secs()),
    ]
}

impl Daemon {
    fn pid(&self) -> Option<u32> {
        match &self.process {
            Process::Child(child) => child.id(),
            Process::InProcess { .. } => None,
        }
    }

    /// Peak RSS and CPU time since start (or since [`Daemon::mark_cpu`]).
    pub fn usage(&self) -> Option<Usage> {
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

    /// Counts CPU time from now on.
    pub fn mark_cpu(&mut self) {
        if let Some(cpu) = self.pid().and_then(cpu_seconds) {
            self.cpu_at_start = cpu;
        }
    }

    /// `GET path` of the operator's health server: the status code and the whole response.
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut stream = tokio::net::TcpStream::connect(self.addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await.ok()?;
        let code = response.split_whitespace().nth(1)?.parse().ok()?;
        Some((code, response))
    }

    /// Waits until `/readyz` answers 200; how long that took.
    pub async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<Duration> {
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
    pub async fn events(&self, event: &str) -> u64 {
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

    /// The value of the unlabelled gauge `name` (0 when absent).
    pub async fn gauge(&self, name: &str) -> u64 {
        let Some((200, body)) = self.get("/metrics").await else {
            return 0;
        };
        body.lines()
            .filter(|l| l.split_whitespace().next() == Some(name))
            .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
            .map(|v| v as u64)
            .sum()
    }

    /// Waits until the operator has handled `n` events of type `event`.
    pub async fn wait_events(&self, event: &str, n: u64, timeout: Duration) -> anyhow::Result<()> {
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
    pub async fn stop(self) -> anyhow::Result<()> {
        match self.process {
            Process::Child(child) => terminate(child).await,
            Process::InProcess { stop, task } => {
                let _ = stop.send(());
                tokio::time::timeout(Duration::from_secs(30), task)
                    .await
                    .context("the daemon did not stop within 30 s")?
                    .context("the daemon task")??;
                Ok(())
            }
        }
    }
}

/// Sends SIGTERM to a child operator and waits (30 s at most) for it to exit successfully.
async fn terminate(mut child: tokio::process::Child) -> anyhow::Result<()> {
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
    Ok(())
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 when unknown).
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// User + system CPU seconds of process `pid`, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the command: state is field 3; utime and stime are fields 14 and 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}
