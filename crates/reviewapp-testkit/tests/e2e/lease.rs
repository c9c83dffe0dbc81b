//! What leader election relies on: a Lease is created once (a second create is `409
//! AlreadyExists`), replaced only at the resourceVersion it was read at (`409 Conflict`
//! otherwise), and keeps its microsecond times as written.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};

use crate::common::start;

fn lease(holder: &str, renew: Timestamp) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some("review-app-operator".into()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            acquire_time: Some(MicroTime(renew)),
            renew_time: Some(MicroTime(renew)),
            lease_transitions: Some(0),
            ..LeaseSpec::default()
        }),
    }
}

#[tokio::test]
async fn a_lease_is_created_once_and_replaced_with_optimistic_concurrency() {
    let (_emulator, client, _handle) = start().await;
    let api: Api<Lease> = Api::namespaced(client, "ops");
    let renew: Timestamp = "2026-01-02T03:04:05.123456Z".parse().unwrap();
    let created = api
        .create(&PostParams::default(), &lease("first", renew))
        .await
        .unwrap();
    let err = api
        .create(&PostParams::default(), &lease("second", renew))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists"),
        "{err:?}"
    );

    let read = api.get("review-app-operator").await.unwrap();
    let spec = read.spec.clone().unwrap();
    assert_eq!(spec.renew_time, Some(MicroTime(renew)), "microseconds kept");
    assert_eq!(
        read.metadata.resource_version,
        created.metadata.resource_version
    );

    // Both replicas read the same version; only the first replace wins.
    let mut mine = read.clone();
    mine.spec.as_mut().unwrap().holder_identity = Some("second".into());
    let mut theirs = read.clone();
    theirs.spec.as_mut().unwrap().holder_identity = Some("third".into());
    let won = api
        .replace("review-app-operator", &PostParams::default(), &mine)
        .await
        .unwrap();
    assert_ne!(
        won.metadata.resource_version,
        read.metadata.resource_version
    );
    let err = api
        .replace("review-app-operator", &PostParams::default(), &theirs)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 409 && s.reason == "Conflict"),
        "{err:?}"
    );
    let now = api.get("review-app-operator").await.unwrap();
    assert_eq!(now.spec.unwrap().holder_identity.as_deref(), Some("second"));
}
