//! Failover: two replicas with leader election against the emulator, N apps, and two ways of
//! losing the leader, each repeated:
//!
//! 1. **kill**: the leader dies without releasing the Lease (SIGKILL of the child process; in
//!    process, its task is aborted). Measured from the kill: the standby reports leading, handles
//!    its first event, and has handled every app's ADD.
//! 2. **outage**: the API server is unreachable (connections refused) for longer than the Lease.
//!    Measured: how long after the outage began the leader reported standing down, and, from the
//!    end of the outage, the same three times for the standby. The old leader must exit with
//!    `LeadershipLost` (exit code 3).
//!
//! After each round a fresh standby is started, as a restarted pod would be. The rounds start at
//! points spread over one retry period, since a takeover depends on whether the standby had
//! read the leader's last renewal.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reviewapp_daemon::LeaderOptions;
use reviewapp_testkit::Outage;

use crate::SHA1;
use crate::operator::{Daemon, Env, Process, api_error};
use crate::workload::App;

/// How to run the failover benchmark.
#[derive(Clone, Debug)]
pub struct FailoverOptions {
    /// ReviewApps the survivor has to take over.
    pub apps: usize,
    /// The operator binary (child processes, killed with SIGKILL); `None` runs the replicas in
    /// this process (a kill aborts the task).
    pub operator: Option<std::path::PathBuf>,
    /// Lease duration, renew deadline and retry period (whole seconds for child processes).
    pub lease_duration: Duration,
    /// See `lease_duration`.
    pub renew_deadline: Duration,
    /// See `lease_duration`.
    pub retry_period: Duration,
    /// How long each outage lasts (longer than the Lease).
    pub outage: Duration,
    /// Rounds of each kind.
    pub runs: usize,
    /// Longest wait for anything.
    pub timeout: Duration,
}

/// One takeover, timed from the kill or from the end of the outage.
#[derive(Clone, Debug, Default)]
pub struct FailoverSample {
    /// Until the survivor reported `reviewapp_leader 1`.
    pub leading: Duration,
    /// Until the survivor had handled its first event.
    pub first_event: Duration,
    /// Until the survivor had handled every app's ADD.
    pub all_adds: Duration,
    /// Outage only: from the start of the outage until the old leader reported 0.
    pub old_leader_stopped: Option<Duration>,
}

/// Everything the failover benchmark measured.
#[derive(Clone, Debug)]
pub struct FailoverReport {
    /// The options it ran with.
    pub options: FailoverOptions,
    /// One sample per kill.
    pub kills: Vec<FailoverSample>,
    /// One sample per outage.
    pub outages: Vec<FailoverSample>,
}

impl Daemon {
    /// The replica's `reviewapp_leader` gauge (`false` when it does not answer).
    async fn leads(&self) -> bool {
        self.get("/metrics")
            .await
            .is_some_and(|(_, body)| body.contains("\nreviewapp_leader 1\n"))
    }

    /// Events handled, of every type.
    async fn events_handled(&self) -> u64 {
        let mut total = 0;
        for event in ["add", "modify", "reconcile", "delete"] {
            total += self.events(event).await;
        }
        total
    }

    /// Kills the replica at once: SIGKILL, or an aborted task (no release, nothing more sent).
    async fn kill(self) -> anyhow::Result<()> {
        match self.process {
            Process::Child(mut child) => {
                child.start_kill().context("SIGKILL")?;
                child.wait().await.context("reaping the killed operator")?;
            }
            Process::InProcess { task, .. } => {
                task.abort();
                let _ = task.await;
            }
        }
        Ok(())
    }

    /// Waits for a replica to exit on its own because it lost the Lease.
    async fn lost_leadership(self, timeout: Duration) -> anyhow::Result<()> {
        match self.process {
            Process::Child(mut child) => {
                let status = tokio::time::timeout(timeout, child.wait())
                    .await
                    .context("the old leader did not exit")??;
                if status.code() != Some(3) {
                    bail!("the old leader exited with {status}, not 3");
                }
            }
            Process::InProcess { task, .. } => {
                let result = tokio::time::timeout(timeout, task)
                    .await
                    .context("the old leader did not stop")??;
                if !matches!(result, Err(reviewapp_daemon::DaemonError::LeadershipLost)) {
                    bail!("the old leader ended with {result:?}, not LeadershipLost");
                }
            }
        }
        Ok(())
    }
}

/// Polls every 2 ms until `check` holds; the time it took since `from`.
async fn until<F, Fut>(
    what: &str,
    from: Instant,
    timeout: Duration,
    mut check: F,
) -> anyhow::Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    loop {
        if check().await {
            return Ok(from.elapsed());
        }
        if from.elapsed() > timeout {
            bail!("not within {timeout:?}: {what}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// How the standby took over, timed from `from`.
async fn takeover(
    survivor: &Daemon,
    apps: u64,
    from: Instant,
    timeout: Duration,
) -> anyhow::Result<FailoverSample> {
    let leading = until("the standby leads", from, timeout, || survivor.leads()).await?;
    let first_event = until("the new leader handles an event", from, timeout, || async {
        survivor.events_handled().await > 0
    })
    .await?;
    let all_adds = until(
        "the new leader handles every ADD",
        from,
        timeout,
        || async { survivor.events("add").await >= apps },
    )
    .await?;
    Ok(FailoverSample {
        leading,
        first_event,
        all_adds,
        old_leader_stopped: None,
    })
}

/// Runs the failover benchmark.
pub async fn failover(options: &FailoverOptions) -> anyhow::Result<FailoverReport> {
    let dir = std::env::temp_dir().join(format!("reviewapp-failover-{}", std::process::id()));
    let mut env = Env::new(&dir, options.operator.clone()).await?;
    let handle = env.emulator.handle();
    let result = rounds(&mut env, options).await;
    handle.end_outage();
    env.emulator.shutdown().await;
    let report = result.with_context(|| format!("operator logs in {}", dir.display()))?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(report)
}

/// The apps, a leader and a standby; then the kill rounds and the outage rounds, each followed
/// by a fresh standby.
async fn rounds(env: &mut Env, options: &FailoverOptions) -> anyhow::Result<FailoverReport> {
    let handle = env.emulator.handle();
    for i in 0..options.apps {
        handle
            .apply(App::new(i).manifest(SHA1)?)
            .map_err(api_error)?;
    }
    let apps = options.apps as u64;
    let timeout = options.timeout;
    let mut replicas = Replicas {
        options,
        started: 0,
    };
    let mut leader = replicas.start_leader(env).await?;
    let mut standby = replicas.start_standby(env).await?;
    let mut report = FailoverReport {
        options: options.clone(),
        kills: Vec::new(),
        outages: Vec::new(),
    };
    for run in 0..options.runs {
        tokio::time::sleep(sweep(options, run)).await;
        let killed = Instant::now();
        leader.kill().await?;
        report
            .kills
            .push(takeover(&standby, apps, killed, timeout).await?);
        leader = standby;
        standby = replicas.start_standby(env).await?;
    }
    for run in 0..options.runs {
        tokio::time::sleep(sweep(options, run)).await;
        report
            .outages
            .push(outage(&handle, &leader, &standby, options).await?);
        leader.lost_leadership(timeout).await?;
        leader = standby;
        standby = replicas.start_standby(env).await?;
    }
    standby.stop().await?;
    leader.stop().await?;
    Ok(report)
}

/// When round `run` starts, after the last one settled: each at another point of the retry
/// period (a sweep over it), since how long a takeover takes depends on whether the standby
/// read the leader's last renewal.
fn sweep(options: &FailoverOptions, run: usize) -> Duration {
    options.retry_period * 2
        + options
            .retry_period
            .mul_f64(run as f64 / options.runs as f64)
}

/// One outage longer than the Lease (connections refused): when the leader stood down, and
/// how the standby took over once the API server was back.
async fn outage(
    handle: &reviewapp_testkit::Handle,
    leader: &Daemon,
    standby: &Daemon,
    options: &FailoverOptions,
) -> anyhow::Result<FailoverSample> {
    let started = Instant::now();
    handle.start_outage(Outage::Refuse);
    let stopped = until(
        "the leader stands down",
        started,
        options.timeout,
        || async { !leader.leads().await },
    )
    .await?;
    let left = options.outage.saturating_sub(started.elapsed());
    tokio::time::sleep(left).await;
    handle.end_outage();
    let ended = Instant::now();
    let mut sample = takeover(standby, options.apps as u64, ended, options.timeout).await?;
    sample.old_leader_stopped = Some(stopped);
    Ok(sample)
}

/// Starts the replicas, each with leader election and its own identity (`replica-<n>`).
struct Replicas<'o> {
    options: &'o FailoverOptions,
    /// Replicas started so far.
    started: usize,
}

impl Replicas<'_> {
    async fn start(&mut self, env: &mut Env) -> anyhow::Result<Daemon> {
        self.started += 1;
        let leader = LeaderOptions {
            lease_duration: self.options.lease_duration,
            renew_deadline: self.options.renew_deadline,
            retry_period: self.options.retry_period,
            ..LeaderOptions::new(
                "review-app-operator",
                "default",
                &format!("replica-{}", self.started),
            )
        };
        env.start_replica(30, Some(&leader)).await
    }

    /// The first replica, once it leads and has handled every app's ADD.
    async fn start_leader(&mut self, env: &mut Env) -> anyhow::Result<Daemon> {
        let timeout = self.options.timeout;
        let leader = self.start(env).await?;
        until("the first replica leads", Instant::now(), timeout, || {
            leader.leads()
        })
        .await?;
        leader
            .wait_events("add", self.options.apps as u64, timeout)
            .await?;
        Ok(leader)
    }

    /// A standby, once ready (as a restarted pod would be).
    async fn start_standby(&mut self, env: &mut Env) -> anyhow::Result<Daemon> {
        let standby = self.start(env).await?;
        standby.wait_ready(self.options.timeout).await?;
        Ok(standby)
    }
}

fn seconds(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

/// `min / median / max` of the samples' `field`, in seconds.
fn spread(
    samples: &[FailoverSample],
    field: impl Fn(&FailoverSample) -> Option<Duration>,
) -> String {
    let mut values: Vec<Duration> = samples.iter().filter_map(field).collect();
    if values.is_empty() {
        return "n/a".into();
    }
    values.sort();
    format!(
        "{} / {} / {}",
        seconds(values[0]),
        seconds(values[values.len() / 2]),
        seconds(values[values.len() - 1])
    )
}

/// One measured time of a sample.
type Field = fn(&FailoverSample) -> Option<Duration>;

/// The report as a markdown table (seconds, min / median / max over the runs).
pub fn failover_markdown(report: &FailoverReport) -> String {
    let o = &report.options;
    let mut out = format!(
        "Lease {} s, renew deadline {} s, retry {} s; {} apps; outage {} s (connections refused); {} runs each.\n\n",
        seconds(o.lease_duration),
        seconds(o.renew_deadline),
        seconds(o.retry_period),
        o.apps,
        seconds(o.outage),
        o.runs
    );
    out.push_str("| seconds, min / median / max | leader killed (from the kill) | API outage (from its end) |\n|---|---|---|\n");
    let rows: [(&str, Field); 3] = [
        ("standby reports leading", |s| Some(s.leading)),
        ("new leader handled its first event", |s| {
            Some(s.first_event)
        }),
        ("new leader handled every app's ADD", |s| Some(s.all_adds)),
    ];
    for (name, field) in rows {
        out.push_str(&format!(
            "| {name} | {} | {} |\n",
            spread(&report.kills, field),
            spread(&report.outages, field)
        ));
    }
    out.push_str(&format!(
        "| old leader stood down (from the start of the outage) | n/a | {} |\n",
        spread(&report.outages, |s| s.old_leader_stopped)
    ));
    let each = |samples: &[FailoverSample]| {
        samples
            .iter()
            .map(|s| seconds(s.first_event))
            .collect::<Vec<_>>()
            .join(", ")
    };
    out.push_str(&format!(
        "\nFirst event handled, each run in order (its start swept over one retry period): kill {}; outage {}.\n",
        each(&report.kills),
        each(&report.outages)
    ));
    out
}
