//! The benchmark driver completes at N = 2 with the daemon in this process (no timing checked).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_driver_completes_a_tiny_run() {
    let options = reviewapp_bench::BenchOptions {
        apps: 2,
        operator: None,
        idle: Duration::from_millis(1500),
        timeout: Duration::from_secs(30),
    };
    let report = reviewapp_bench::run(&options).await.unwrap();
    assert_eq!(report.phases.len(), 5);
    assert!(reviewapp_bench::markdown(&[report]).contains("N = 2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_path_completes_for_three_pull_requests() {
    let report = reviewapp_bench::github::webhook_to_build(3, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(report.pull_requests, 3);
    let table = reviewapp_bench::github::markdown(&report);
    assert!(table.contains("build Job created"), "{table}");
}

/// The failover driver completes with in-process replicas on short timings (no timing checked).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_failover_driver_completes_a_tiny_run() {
    let options = reviewapp_bench::FailoverOptions {
        apps: 2,
        operator: None,
        lease_duration: Duration::from_secs(2),
        renew_deadline: Duration::from_secs(1),
        retry_period: Duration::from_millis(200),
        outage: Duration::from_secs(3),
        runs: 1,
        timeout: Duration::from_secs(30),
    };
    let report = reviewapp_bench::failover(&options).await.unwrap();
    assert_eq!((report.kills.len(), report.outages.len()), (1, 1));
    assert!(report.outages[0].old_leader_stopped.is_some());
    let table = reviewapp_bench::failover_markdown(&report);
    assert!(table.contains("standby reports leading"), "{table}");
}

/// The queue driver completes with the daemon in this process; the cap is never exceeded and
/// every app is built once (no timing checked).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_driver_never_sees_more_builds_than_the_cap() {
    let options = reviewapp_bench::QueueOptions {
        apps: 6,
        cap: 2,
        // Long enough that all six uncapped builds overlap, however slow the machine.
        build: Duration::from_millis(500),
        operator: None,
        timeout: Duration::from_secs(60),
    };
    let report = reviewapp_bench::queue(&options).await.unwrap();
    let [uncapped, capped] = &report.runs[..] else {
        panic!("two runs: {report:?}");
    };
    assert_eq!(capped.most_at_once, 2, "{report:?}");
    assert!(uncapped.most_at_once > 2, "{report:?}");
    assert_eq!((uncapped.job_creates, capped.job_creates), (6, 6));
    let table = reviewapp_bench::queue_markdown(&report);
    assert!(table.contains("| 2 | 2 |"), "{table}");
}
