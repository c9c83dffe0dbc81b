//! Failover through an API server outage longer than the Lease, with two replicas running
//! leader election on short timings (a 3 s Lease, a 2 s renew deadline, a try every 300 ms):
//!
//! - at no instant do two replicas report leading (`reviewapp_leader` on each replica's
//!   `/metrics`, sampled every few milliseconds over the whole run);
//! - the old leader sends nothing after its renew deadline (the emulator's request log, by
//!   actor, with receive times) and exits with `LeadershipLost`;
//! - a survivor finishes the work: the ReviewApp created before the outage, whose build ended
//!   during it, is deployed after it, and its build Job was created exactly once. The survivor
//!   is whichever standby takes the Lease first: r2, or r1 restarted as a standby (r1b).
//!   Both are standbys when the outage ends, so either may win; the test finds out which.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reviewapp_daemon::{DaemonError, DaemonOptions, LeaderOptions};
use reviewapp_testkit::{Outage, RequestRecord};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::world::{BUILD_NS, World, eventually};
use crate::{IMG1, JOB1, SHA1, deployment_runs, has_status};

const LEASE_DURATION: Duration = Duration::from_secs(3);
const RENEW_DEADLINE: Duration = Duration::from_secs(2);
const RETRY_PERIOD: Duration = Duration::from_millis(300);
/// Longer than the Lease.
const OUTAGE: Duration = Duration::from_secs(5);
const LEASE_PATH: &str =
    "/apis/coordination.k8s.io/v1/namespaces/review-app-operator/leases/review-app-operator";

/// One in-process replica: the daemon with leader election, its own client and actor name.
struct Replica {
    name: &'static str,
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), DaemonError>>,
}

async fn start_replica(w: &World, name: &'static str) -> Replica {
    let options = DaemonOptions {
        concurrency: 4,
        listen: "127.0.0.1:0".parse().unwrap(),
        leader: Some(LeaderOptions {
            lease_duration: LEASE_DURATION,
            renew_deadline: RENEW_DEADLINE,
            retry_period: RETRY_PERIOD,
            ..LeaderOptions::new("review-app-operator", "review-app-operator", name)
        }),
        shutdown_grace: Duration::from_secs(5),
        controller_name: "review-app-operator".into(),
        instance: Some(name.into()),
        listener: None,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (bound, listening) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(reviewapp_daemon::run(
        w.client_as(name).unwrap(),
        w.config.clone(),
        options,
        async move {
            let _ = stopped.await;
        },
        move |addr| {
            let _ = bound.send(addr);
        },
    ));
    Replica {
        name,
        addr: listening.await.unwrap(),
        stop,
        task,
    }
}

impl Replica {
    async fn stop(self) {
        let _ = self.stop.send(());
        let result = tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the replica stops");
        result.unwrap().unwrap();
    }
}

/// An HTTP GET on a replica's health port; `None` when it does not answer.
async fn get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    Some(response)
}

/// `reviewapp_leader` of a replica (0 when it does not answer).
async fn leads(addr: SocketAddr) -> bool {
    get(addr, "/metrics")
        .await
        .is_some_and(|body| body.contains("\nreviewapp_leader 1\n"))
}

/// Samples of which replicas reported leading, taken together.
type Samples = Arc<Mutex<Vec<(Instant, Vec<&'static str>)>>>;

/// Samples every replica in `replicas` every 5 ms until aborted.
fn sample(
    replicas: Arc<Mutex<Vec<(&'static str, SocketAddr)>>>,
    samples: Samples,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let targets = replicas.lock().unwrap().clone();
            let at = Instant::now();
            let mut leading = Vec::new();
            for (name, addr) in targets {
                if leads(addr).await {
                    leading.push(name);
                }
            }
            samples.lock().unwrap().push((at, leading));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
}

fn by(actor: &str) -> impl Fn(&RequestRecord) -> bool + '_ {
    move |r| r.actor.as_deref() == Some(actor)
}

#[allow(
    clippy::too_many_lines,
    reason = "one outage, told in order: election, outage, takeover, the request log by actor"
)]
async fn failover_through(outage: Outage) {
    let w = World::emulated().await;
    let emulator = w.emulator.clone().unwrap();
    let replicas = Arc::new(Mutex::new(Vec::new()));
    let samples: Samples = Arc::default();
    let sampler = sample(replicas.clone(), samples.clone());

    let r1 = start_replica(&w, "r1").await;
    replicas.lock().unwrap().push((r1.name, r1.addr));
    eventually("r1 leads", || leads(r1.addr)).await;
    let r2 = start_replica(&w, "r2").await;
    replicas.lock().unwrap().push((r2.name, r2.addr));
    eventually("r2 is a ready standby", || async {
        get(r2.addr, "/readyz")
            .await
            .is_some_and(|b| b.contains("200 OK") && b.contains("ready (standby)"))
    })
    .await;
    eventually("r1 is ready", || async {
        get(r1.addr, "/readyz")
            .await
            .is_some_and(|b| b.contains("200 OK") && b.contains("ready (leader)"))
    })
    .await;

    // r1 builds the app; then the API server goes away for longer than the Lease.
    let mut w = w;
    w.apply_app(w.sample("test", "678", SHA1)).await;
    eventually(
        "r1 created the build Job and wrote building/building",
        || async {
            w.jobs().get_opt(JOB1).await.unwrap().is_some()
                && has_status(&w, "test", "building", "building").await
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let outage_start = Instant::now();
    emulator.start_outage(outage);
    // The build finishes meanwhile: the world goes on without the operator.
    emulator.set_job_succeeded(BUILD_NS, JOB1).unwrap();

    // r1 stops by its own clock, during the outage, and exits; its pod restarts it as a
    // standby (r1b).
    let r1_result = tokio::time::timeout(OUTAGE, r1.task)
        .await
        .expect("r1 stops during the outage")
        .unwrap();
    assert!(
        matches!(r1_result, Err(DaemonError::LeadershipLost)),
        "{r1_result:?}"
    );
    let r1_stopped = Instant::now();
    replicas.lock().unwrap().retain(|(name, _)| *name != "r1");
    let r1b = start_replica(&w, "r1b").await;
    replicas.lock().unwrap().push((r1b.name, r1b.addr));
    tokio::time::sleep(OUTAGE.saturating_sub(outage_start.elapsed())).await;
    emulator.end_outage();
    let outage_end = Instant::now();

    // The survivor deploys what was built.
    eventually("the built image is deployed", || {
        deployment_runs(&w, 1, IMG1)
    })
    .await;
    eventually("status deployed/success", || {
        has_status(&w, "test", "deployed", "success")
    })
    .await;
    let candidates = [(r2.name, r2.addr), (r1b.name, r1b.addr)];
    let survivor: Arc<Mutex<Option<&'static str>>> = Arc::default();
    eventually("a standby leads", || async {
        for (name, addr) in candidates {
            if leads(addr).await {
                *survivor.lock().unwrap() = Some(name);
                return true;
            }
        }
        false
    })
    .await;
    let survivor = survivor.lock().unwrap().expect("a standby leads");
    let standby = if survivor == r2.name {
        r1b.name
    } else {
        r2.name
    };
    sampler.abort();
    let _ = sampler.await;

    // Never two leaders at once; r1 led before the outage, the survivor after it, and no one
    // between r1 stopping and the outage ending.
    let samples = samples.lock().unwrap().clone();
    for (at, leading) in &samples {
        assert!(leading.len() <= 1, "two leaders at {at:?}: {leading:?}");
        if *at > r1_stopped && *at < outage_end {
            assert!(
                leading.is_empty(),
                "a leader during the outage: {leading:?}"
            );
        }
    }
    let first_survivor = samples
        .iter()
        .find(|(_, l)| l.contains(&survivor))
        .map(|(at, _)| *at)
        .expect("the survivor was seen leading");
    let last_r1 = samples
        .iter()
        .rev()
        .find(|(_, l)| l.contains(&"r1"))
        .map(|(at, _)| *at)
        .expect("r1 was seen leading");
    assert!(last_r1 < first_survivor);
    assert!(
        samples.iter().all(|(_, l)| !l.contains(&standby)),
        "the other standby stays a standby"
    );

    // Nothing of r1 reached the API server after its deadline: the renew deadline after it
    // started its last renewal (that renewal's receive time bounds its start from above; it
    // may have been received just after the outage was asked for, while in flight).
    let log = emulator.requests();
    let r1_renewed = log
        .iter()
        .filter(|r| by("r1")(r) && r.path == LEASE_PATH && r.is_write() && r.status < 300)
        .map(|r| r.received)
        .max()
        .expect("r1 renewed the Lease");
    let deadline = r1_renewed + RENEW_DEADLINE;
    let late: Vec<String> = log
        .iter()
        .filter(|r| by("r1")(r) && r.received > deadline)
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(late.is_empty(), "r1 after its deadline: {late:#?}");
    // After the outage only the survivor wrote anything but Lease tries.
    let others: Vec<String> = log
        .iter()
        .filter(|r| r.received > outage_start && r.is_write() && r.path != LEASE_PATH)
        .filter(|r| !by(survivor)(r))
        .map(|r| format!("{:?} {} {}", r.actor, r.method, r.path))
        .collect();
    assert!(others.is_empty(), "{others:#?}");
    // One build, created once.
    let creates: Vec<&RequestRecord> = log
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with(&format!("/namespaces/{BUILD_NS}/jobs")))
        .collect();
    assert_eq!(creates.len(), 1, "{creates:#?}");
    assert!(by("r1")(creates[0]) && creates[0].status == 201);

    r2.stop().await;
    r1b.stop().await;
    w.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_after_the_api_server_stopped_on_emulator() {
    failover_through(Outage::Refuse).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_after_a_partition_on_emulator() {
    failover_through(Outage::Hang).await;
}
