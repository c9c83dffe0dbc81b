//! kube-lease-manager (server-side apply without force, strategic merge patches) against the
//! emulator.

use std::time::Duration;

use kube_lease_manager::LeaseManagerBuilder;

use crate::common::start;

#[tokio::test]
async fn a_lease_is_acquired_held_and_taken_over_after_expiry() {
    let (_emulator, client, handle) = start().await;
    let build = |identity: &str| {
        LeaseManagerBuilder::new(client.clone(), "review-app-operator")
            .with_namespace("ops")
            .with_identity(identity)
            .with_duration(1)
            .with_grace(1)
            .build()
    };
    let first = build("first").await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_secs(5), first.changed())
            .await
            .unwrap()
            .unwrap()
    );
    let lease = handle
        .get("/apis/coordination.k8s.io/v1/namespaces/ops/leases/review-app-operator")
        .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "first");

    // `first` stops renewing; once the lease expires `second` takes it over.
    let second = build("second").await.unwrap();
    let taken = tokio::time::timeout(Duration::from_secs(10), second.changed())
        .await
        .unwrap()
        .unwrap();
    assert!(taken);
    let lease = handle
        .get("/apis/coordination.k8s.io/v1/namespaces/ops/leases/review-app-operator")
        .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "second");
    second.release().await.unwrap();
    let lease = handle
        .get("/apis/coordination.k8s.io/v1/namespaces/ops/leases/review-app-operator")
        .unwrap();
    assert!(lease["spec"].get("holderIdentity").is_none());
}
