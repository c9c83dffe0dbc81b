//! Leader election against the API emulator: one leader at a time, takeover only after the
//! Lease expired (or was released), and a leader that cannot renew stops writing by its own
//! clock, before any other replica can take the Lease over.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use reviewapp_daemon::LeaderOptions;
use reviewapp_daemon::leader::Election;
use reviewapp_effects::WriteFence;
use reviewapp_testkit::{ACTOR_HEADER, Emulator, Handle, Outage};
use serde_json::json;
use tokio::time::Instant;

const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/ops/leases/review-app-operator";

fn client(emulator: &Emulator, actor: &'static str) -> kube::Client {
    let mut config = kube::Config::new(emulator.url().parse().unwrap());
    config.headers.push((
        http::HeaderName::from_static(ACTOR_HEADER),
        http::HeaderValue::from_static(actor),
    ));
    kube::Client::try_from(config).unwrap()
}

/// Short timings: a 3 s Lease, a 2 s renew deadline, a try every 300 ms.
fn options(identity: &str) -> LeaderOptions {
    LeaderOptions {
        lease_duration: Duration::from_secs(3),
        renew_deadline: Duration::from_secs(2),
        retry_period: Duration::from_millis(300),
        ..LeaderOptions::new("review-app-operator", "ops", identity)
    }
}

struct Replica {
    election: Election,
    fence: WriteFence,
}

fn replica(emulator: &Emulator, actor: &'static str) -> Replica {
    let fence = WriteFence::standby();
    let election = Election::start(client(emulator, actor), options(actor), fence.clone()).unwrap();
    Replica { election, fence }
}

async fn leads_within(replica: &mut Replica, limit: Duration) -> bool {
    tokio::time::timeout(limit, replica.election.acquired())
        .await
        .unwrap_or(false)
}

fn holder(handle: &Handle) -> Option<String> {
    handle.get(LEASE)?["spec"]["holderIdentity"]
        .as_str()
        .map(str::to_string)
}

/// Samples both fences every 10 ms for `duration`: never both open.
async fn never_both_lead(a: &WriteFence, b: &WriteFence, duration: Duration) {
    let end = Instant::now() + duration;
    while Instant::now() < end {
        assert!(!(a.is_open() && b.is_open()), "two leaders at once");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_at_a_time_and_a_crashed_one_is_replaced_after_expiry() {
    let emulator = Emulator::start().await.unwrap();
    let handle = emulator.handle();
    let mut first = replica(&emulator, "first");
    assert!(leads_within(&mut first, Duration::from_secs(10)).await);
    assert_eq!(holder(&handle).as_deref(), Some("first"));

    let mut second = replica(&emulator, "second");
    // Longer than the Lease: the renewing leader keeps it.
    never_both_lead(&first.fence, &second.fence, Duration::from_secs(4)).await;
    assert!(first.fence.is_open() && !second.fence.is_open());

    // A crash: no release, the Lease still names `first`.
    let crashed = first.fence.clone();
    drop(first);
    assert!(!crashed.is_open());
    assert_eq!(holder(&handle).as_deref(), Some("first"));
    assert!(leads_within(&mut second, Duration::from_secs(10)).await);
    assert_eq!(holder(&handle).as_deref(), Some("second"));
    let lease = handle.get(LEASE).unwrap();
    assert_eq!(lease["spec"]["leaseTransitions"], 1, "{lease}");
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 3, "{lease}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_lease_is_free_for_the_next_replica() {
    let emulator = Emulator::start().await.unwrap();
    let handle = emulator.handle();
    let mut first = replica(&emulator, "first");
    assert!(leads_within(&mut first, Duration::from_secs(10)).await);
    let mut second = replica(&emulator, "second");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fence = first.fence.clone();
    first.election.release().await;
    assert!(!fence.is_open(), "a released leader writes nothing more");
    let lease = handle.get(LEASE).unwrap();
    assert!(lease["spec"].get("holderIdentity").is_none(), "{lease}");
    assert!(leads_within(&mut second, Duration::from_secs(10)).await);
    assert_eq!(holder(&handle).as_deref(), Some("second"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_finds_another_holder_stops_at_once() {
    let emulator = Emulator::start().await.unwrap();
    let handle = emulator.handle();
    let mut first = replica(&emulator, "first");
    assert!(leads_within(&mut first, Duration::from_secs(10)).await);
    let mut lease = handle.get(LEASE).unwrap();
    lease["spec"]["holderIdentity"] = json!("intruder");
    handle.apply(lease).unwrap();
    // Well before its deadline would pass on its own.
    tokio::time::timeout(Duration::from_secs(1), first.fence.lapsed())
        .await
        .expect("the leader stops at its next try");
    tokio::time::timeout(Duration::from_secs(1), first.election.lost())
        .await
        .expect("the election stops leading");
    assert!(!first.election.is_leading());
    assert_eq!(holder(&handle).as_deref(), Some("intruder"));
}

/// The leader's last renewal before `outage_start`, from the request log.
fn last_renewal(handle: &Handle, actor: &str) -> std::time::Instant {
    handle
        .requests()
        .into_iter()
        .filter(|r| r.actor.as_deref() == Some(actor) && r.path == LEASE && r.method == "PUT")
        .filter(|r| r.status == 200)
        .map(|r| r.received)
        .max()
        .expect("the leader renewed")
}

async fn an_outage_longer_than_the_lease(outage: Outage) {
    let emulator = Emulator::start().await.unwrap();
    let handle = emulator.handle();
    let mut first = replica(&emulator, "first");
    assert!(leads_within(&mut first, Duration::from_secs(10)).await);
    let mut second = replica(&emulator, "second");
    tokio::time::sleep(Duration::from_secs(1)).await;

    handle.start_outage(outage);
    let sampler = {
        let (a, b) = (first.fence.clone(), second.fence.clone());
        tokio::spawn(async move { never_both_lead(&a, &b, Duration::from_secs(9)).await })
    };
    // The leader stops by its own clock, within the renew deadline of its last renewal.
    tokio::time::timeout(Duration::from_secs(5), first.fence.lapsed())
        .await
        .expect("the leader's fence lapses during the outage");
    let stopped = std::time::Instant::now();
    // Its deadline was 2 s after it started its last renewal, which the server received later.
    // (That renewal may have been received just after the outage was asked for: it was in flight.)
    let renewed = last_renewal(&handle, "first");
    assert!(renewed < stopped);
    tokio::time::timeout(Duration::from_secs(1), first.election.lost())
        .await
        .expect("the old leader's election stops leading");
    tokio::time::sleep(Duration::from_secs(4)).await; // the outage lasts longer than the Lease
    handle.end_outage();

    assert!(leads_within(&mut second, Duration::from_secs(10)).await);
    let acquired = std::time::Instant::now();
    assert!(stopped < acquired);
    sampler.await.unwrap();
    // Nothing from the old leader was received after its deadline.
    let late: Vec<_> = handle
        .requests()
        .into_iter()
        .filter(|r| {
            r.actor.as_deref() == Some("first") && r.received > renewed + Duration::from_secs(2)
        })
        .collect();
    assert!(late.is_empty(), "{late:#?}");
    assert_eq!(holder(&handle).as_deref(), Some("second"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_by_a_stopped_server_stops_before_anyone_takes_over() {
    an_outage_longer_than_the_lease(Outage::Refuse).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_by_a_partition_stops_before_anyone_takes_over() {
    an_outage_longer_than_the_lease(Outage::Hang).await;
}

#[tokio::test]
async fn impossible_timings_are_refused() {
    let emulator = Emulator::start().await.unwrap();
    let mut bad = options("first");
    bad.renew_deadline = bad.lease_duration;
    let err = Election::start(emulator.client(), bad, WriteFence::standby())
        .err()
        .expect("refused");
    assert!(err.to_string().contains("renew deadline"), "{err}");
}
