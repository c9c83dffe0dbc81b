//! Leader election on a `coordination.k8s.io/v1` Lease (kube-lease-manager): only the leader
//! watches and writes; standbys wait. Losing the lease ends the daemon so that the pod restarts
//! as a standby and two leaders never write at once.

use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Where the lease lives and who we are.
#[derive(Clone, Debug)]
pub struct LeaderOptions {
    /// Lease name.
    pub lease_name: String,
    /// Lease namespace (the operator's own).
    pub namespace: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// Seconds a lease stays valid without renewal.
    pub duration_seconds: u64,
    /// Seconds before expiry at which the holder renews.
    pub grace_seconds: u64,
}

/// A running election.
pub struct Election {
    state: watch::Receiver<bool>,
    task: JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>,
}

impl Election {
    /// Starts competing for the lease.
    pub async fn start(
        client: kube::Client,
        options: &LeaderOptions,
    ) -> Result<Self, LeaseManagerError> {
        let manager = LeaseManagerBuilder::new(client, &options.lease_name)
            .with_namespace(&options.namespace)
            .with_identity(&options.identity)
            .with_duration(options.duration_seconds)
            .with_grace(options.grace_seconds)
            .build()
            .await?;
        let (state, task) = manager.watch().await;
        Ok(Self { state, task })
    }

    /// Resolves once this replica holds the lease; `false` if the election stopped first.
    pub async fn acquired(&mut self) -> bool {
        self.state.wait_for(|leader| *leader).await.is_ok()
    }

    /// Resolves when this replica no longer holds the lease.
    pub async fn lost(&mut self) {
        let _ = self.state.wait_for(|leader| !*leader).await;
    }

    /// Stops competing and releases the lease if held.
    pub async fn release(self) {
        drop(self.state);
        match self.task.await {
            Ok(Ok(_)) => tracing::info!("lease released"),
            Ok(Err(err)) => tracing::warn!(error = %err, "releasing the lease failed"),
            Err(err) => tracing::warn!(error = %err, "lease task ended abnormally"),
        }
    }
}
