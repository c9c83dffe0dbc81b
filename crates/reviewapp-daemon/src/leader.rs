//! Leader election on a `coordination.k8s.io/v1` Lease, the way client-go's `leaderelection`
//! does it: only the leader watches and writes; standbys wait.
//!
//! Every `retry_period` a replica reads the Lease and, when it is free, expired or its own,
//! writes itself in as the holder with a `replace` at the resourceVersion it read (optimistic
//! concurrency: of two replicas racing for it, one gets `409 Conflict`). Expiry is judged on the
//! local monotonic clock, never by comparing clocks: a Lease held by another replica counts as
//! expired once its record has not changed for `leaseDurationSeconds` since this replica first
//! saw that record.
//!
//! The leader keeps its own deadline: `renew_deadline` after the start of its last successful
//! renewal. It extends the [`WriteFence`] to it; when the deadline passes without a renewal,
//! the fence lapses and nothing more is written (see the effects crate), even if the API server
//! is unreachable and the replica never learns who holds the Lease. Since `renew_deadline` is
//! shorter than the Lease duration, the old leader has stopped by its own clock before any other
//! replica can consider the Lease expired. See `docs/operations.md` for the timings.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use reviewapp_effects::WriteFence;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Where the Lease lives, who we are, and the election's timings.
#[derive(Clone, Debug)]
pub struct LeaderOptions {
    /// Name of the `coordination.k8s.io` Lease the replicas compete for.
    pub lease_name: String,
    /// Lease namespace (the operator's own).
    pub namespace: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// How long a Lease stays valid without renewal, for the other replicas (whole seconds in
    /// the Lease; rounded up).
    pub lease_duration: Duration,
    /// How long the leader keeps leading without a successful renewal; shorter than
    /// `lease_duration`.
    pub renew_deadline: Duration,
    /// How often every replica tries to acquire or renew the Lease; shorter than
    /// `renew_deadline`.
    pub retry_period: Duration,
}

/// client-go's defaults: a 15 s Lease, a 10 s renew deadline, a try every 2 s.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);
/// See [`DEFAULT_LEASE_DURATION`].
pub const DEFAULT_RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// See [`DEFAULT_LEASE_DURATION`].
pub const DEFAULT_RETRY_PERIOD: Duration = Duration::from_secs(2);

impl LeaderOptions {
    /// Options with client-go's default timings.
    pub fn new(lease_name: &str, namespace: &str, identity: &str) -> Self {
        Self {
            lease_name: lease_name.to_string(),
            namespace: namespace.to_string(),
            identity: identity.to_string(),
            lease_duration: DEFAULT_LEASE_DURATION,
            renew_deadline: DEFAULT_RENEW_DEADLINE,
            retry_period: DEFAULT_RETRY_PERIOD,
        }
    }

    /// Checks the timings: `retry_period < renew_deadline < lease_duration`, the Lease at least
    /// one second, and the retry period not zero.
    pub fn validate(&self) -> Result<(), TimingError> {
        if self.lease_duration < Duration::from_secs(1) {
            return Err(TimingError::LeaseTooShort(self.lease_duration));
        }
        if self.retry_period.is_zero() {
            return Err(TimingError::ZeroRetry);
        }
        if self.renew_deadline >= self.lease_duration {
            return Err(TimingError::DeadlineNotBelowDuration {
                renew_deadline: self.renew_deadline,
                lease_duration: self.lease_duration,
            });
        }
        if self.retry_period >= self.renew_deadline {
            return Err(TimingError::RetryNotBelowDeadline {
                retry_period: self.retry_period,
                renew_deadline: self.renew_deadline,
            });
        }
        Ok(())
    }

    /// `leaseDurationSeconds` as written into the Lease.
    fn duration_seconds(&self) -> i32 {
        let secs =
            self.lease_duration.as_secs() + u64::from(self.lease_duration.subsec_nanos() > 0);
        i32::try_from(secs).unwrap_or(i32::MAX)
    }
}

/// Leader election timings that cannot work. Each variant carries the configured values it
/// compares, as named in [`LeaderOptions`].
#[allow(missing_docs)] // the fields are the options of the same names
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimingError {
    /// The renew deadline must leave a margin below the Lease duration.
    #[error(
        "the renew deadline ({renew_deadline:?}) must be shorter than the lease duration ({lease_duration:?})"
    )]
    DeadlineNotBelowDuration {
        renew_deadline: Duration,
        lease_duration: Duration,
    },
    /// The leader must be able to retry a renewal before its deadline.
    #[error(
        "the retry period ({retry_period:?}) must be shorter than the renew deadline ({renew_deadline:?})"
    )]
    RetryNotBelowDeadline {
        retry_period: Duration,
        renew_deadline: Duration,
    },
    /// A Lease lasts whole seconds.
    #[error("the lease duration ({0:?}) must be at least 1 second")]
    LeaseTooShort(Duration),
    /// Replicas would try without pause.
    #[error("the retry period must not be zero")]
    ZeroRetry,
}

/// What one try found.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    /// This replica holds the Lease now.
    Holding,
    /// Another replica holds a valid Lease.
    HeldBy(String),
    /// Another replica wrote the Lease between our read and our write.
    Conflict,
}

/// A Lease as this replica last saw it, and when it first saw that version.
struct Observed {
    lease: Lease,
    since: Instant,
}

/// The Lease, read and written with optimistic concurrency.
struct LeaseLock {
    api: Api<Lease>,
    options: LeaderOptions,
    observed: Option<Observed>,
}

fn holder(lease: &Lease) -> Option<&str> {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.as_deref())
        .filter(|h| !h.is_empty())
}

impl LeaseLock {
    fn new(client: kube::Client, options: LeaderOptions) -> Self {
        Self {
            api: Api::namespaced(client, &options.namespace),
            options,
            observed: None,
        }
    }

    /// Remembers `lease`; a new version restarts its expiry clock.
    fn observe(&mut self, lease: Lease) {
        let same = self
            .observed
            .as_ref()
            .is_some_and(|o| o.lease.metadata.resource_version == lease.metadata.resource_version);
        if !same {
            self.observed = Some(Observed {
                lease,
                since: Instant::now(),
            });
        }
    }

    fn identity(&self) -> &str {
        &self.options.identity
    }

    /// One try: read the Lease (the leader first tries to renew the version it last wrote),
    /// then take or renew it when it is free, expired or ours.
    async fn try_acquire_or_renew(&mut self, leading: bool) -> Result<Attempt, kube::Error> {
        let now = MicroTime(Timestamp::now());
        let duration = self.options.duration_seconds();
        let params = PostParams::default();

        if leading
            && let Some(observed) = &self.observed
            && holder(&observed.lease) == Some(self.identity())
        {
            let mut lease = observed.lease.clone();
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            spec.renew_time = Some(now.clone());
            spec.lease_duration_seconds = Some(duration);
            match self.replace(&lease).await {
                Ok(Attempt::Holding) => return Ok(Attempt::Holding),
                Ok(other) => tracing::debug!(
                    ?other,
                    "renewing the Lease as last written failed; reading it"
                ),
                Err(err) => {
                    tracing::debug!(error = %err, "renewing the Lease as last written failed; reading it")
                }
            }
        }

        let Some(current) = self.api.get_opt(&self.options.lease_name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.options.lease_name.clone()),
                    namespace: Some(self.options.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.options.identity.clone()),
                    lease_duration_seconds: Some(duration),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&params, &lease).await {
                Ok(written) => {
                    self.observe(written);
                    Ok(Attempt::Holding)
                }
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Conflict),
                Err(err) => Err(err),
            };
        };
        self.observe(current.clone());
        let previous = holder(&current).map(str::to_string);
        if let Some(other) = previous.as_deref().filter(|h| *h != self.identity()) {
            let valid_for = current
                .spec
                .as_ref()
                .and_then(|s| s.lease_duration_seconds)
                .map_or(self.options.lease_duration, |s| {
                    Duration::from_secs(u64::try_from(s).unwrap_or(0))
                });
            let since = self
                .observed
                .as_ref()
                .map_or_else(Instant::now, |o| o.since);
            // A leader that sees another holder has lost, expired record or not.
            if leading || since + valid_for > Instant::now() {
                return Ok(Attempt::HeldBy(other.to_string()));
            }
        }

        let mut lease = current;
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if previous.as_deref() != Some(self.identity()) {
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        }
        spec.holder_identity = Some(self.options.identity.clone());
        spec.renew_time = Some(now);
        spec.lease_duration_seconds = Some(duration);
        self.replace(&lease).await
    }

    /// Replaces the Lease with `lease`, at the resourceVersion it carries.
    async fn replace(&mut self, lease: &Lease) -> Result<Attempt, kube::Error> {
        match self
            .api
            .replace(&self.options.lease_name, &PostParams::default(), lease)
            .await
        {
            Ok(written) => {
                self.observe(written);
                Ok(Attempt::Holding)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Conflict),
            Err(err) => Err(err),
        }
    }

    /// Gives the Lease up (a graceful shutdown), so that a standby takes over at its next try
    /// instead of after the Lease expires. Only the version this replica last wrote is replaced.
    async fn release(&mut self) -> Result<(), kube::Error> {
        let Some(observed) = &self.observed else {
            return Ok(());
        };
        if holder(&observed.lease) != Some(self.identity()) {
            return Ok(());
        }
        let mut lease = observed.lease.clone();
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        let written = self
            .api
            .replace(&self.options.lease_name, &PostParams::default(), &lease)
            .await?;
        self.observe(written);
        Ok(())
    }
}

/// How the election loop ends.
enum Stop {
    /// Graceful shutdown: give the Lease up if still leading.
    Release,
}

/// A running election: a task trying to acquire, then renew, the Lease.
pub struct Election {
    fence: WriteFence,
    leading: watch::Receiver<bool>,
    stop: Option<oneshot::Sender<Stop>>,
    task: Option<JoinHandle<()>>,
}

impl Election {
    /// Starts competing for the Lease; `fence` is extended after every successful renewal and
    /// shut when leadership ends.
    pub fn start(
        client: kube::Client,
        options: LeaderOptions,
        fence: WriteFence,
    ) -> Result<Self, TimingError> {
        options.validate()?;
        let (leading_tx, leading) = watch::channel(false);
        let (stop, stopped) = oneshot::channel();
        let lock = LeaseLock::new(client, options);
        let task = tokio::spawn(elect(lock, fence.clone(), leading_tx, stopped));
        Ok(Self {
            fence,
            leading,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// Resolves once this replica leads; `false` if the election ended first.
    pub async fn acquired(&mut self) -> bool {
        self.leading.wait_for(|leading| *leading).await.is_ok()
    }

    /// Resolves once the election loop has stopped leading (or ended).
    pub async fn lost(&mut self) {
        let _ = self.leading.wait_for(|leading| !*leading).await;
    }

    /// Whether this replica may write now.
    pub fn is_leading(&self) -> bool {
        self.fence.is_open()
    }

    /// Stops competing; a leader whose fence is still open gives the Lease up (without waiting
    /// past its deadline).
    pub async fn release(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(Stop::Release);
        }
        if let Some(task) = self.task.take()
            && let Err(err) = task.await
        {
            tracing::warn!(error = %err, "the leader election task ended abnormally");
        }
    }
}

impl Drop for Election {
    /// Dropped without [`Election::release`] (leadership lost, or the daemon aborted): stop at
    /// once, writing nothing more.
    fn drop(&mut self) {
        self.fence.shut();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The election loop: a try every `retry_period` until stopped, or until leadership is lost.
async fn elect(
    mut lock: LeaseLock,
    fence: WriteFence,
    leading: watch::Sender<bool>,
    mut stop: oneshot::Receiver<Stop>,
) {
    let options = lock.options.clone();
    let mut next = Instant::now();
    let mut failing = false;
    loop {
        let is_leading = *leading.borrow();
        tokio::select! {
            biased;
            request = &mut stop => {
                stopped(request, &mut lock, &fence, is_leading).await;
                break;
            }
            () = fence.lapsed(), if is_leading => {
                tracing::error!(
                    renew_deadline_secs = options.renew_deadline.as_secs_f64(),
                    "the Lease was not renewed within the renew deadline: no longer the leader"
                );
                break;
            }
            () = tokio::time::sleep_until(next) => {}
        }
        let started = Instant::now();
        next = started + options.retry_period;
        // A try may take until the leader's deadline, a standby's until the renew deadline.
        let limit = match fence.deadline() {
            Some(deadline) if is_leading => deadline.saturating_duration_since(started),
            _ => options.renew_deadline,
        };
        let attempt = tokio::select! {
            biased;
            request = &mut stop => {
                stopped(request, &mut lock, &fence, is_leading).await;
                break;
            }
            attempt = tokio::time::timeout(limit, lock.try_acquire_or_renew(is_leading)) => attempt,
        };
        let tried = Tried {
            started,
            is_leading,
        };
        if !tried.settle(attempt, &options, &fence, &leading, &mut failing) {
            break;
        }
    }
    fence.shut();
    let _ = leading.send(false);
}

/// Stops the loop on `request`: gives the Lease up first when asked to and still leading.
async fn stopped(
    request: Result<Stop, oneshot::error::RecvError>,
    lock: &mut LeaseLock,
    fence: &WriteFence,
    is_leading: bool,
) {
    if matches!(request, Ok(Stop::Release)) && is_leading && fence.is_open() {
        release(lock, fence).await;
    }
}

/// One try of the election loop: when it started, and whether this replica led then.
struct Tried {
    started: Instant,
    is_leading: bool,
}

impl Tried {
    /// Acts on the try's outcome (or its timeout): a renewal extends the fence to
    /// its start plus the renew deadline. False when leadership is lost (another replica holds
    /// the Lease).
    fn settle(
        &self,
        attempt: Result<Result<Attempt, kube::Error>, tokio::time::error::Elapsed>,
        options: &LeaderOptions,
        fence: &WriteFence,
        leading: &watch::Sender<bool>,
        failing: &mut bool,
    ) -> bool {
        match attempt {
            Ok(Ok(Attempt::Holding)) => {
                if *failing {
                    *failing = false;
                    tracing::info!("the Lease can be read and written again");
                }
                let deadline = self.started + options.renew_deadline;
                if deadline <= Instant::now() {
                    tracing::warn!("the Lease was taken too late to lead; trying again");
                    return true;
                }
                fence.extend_to(deadline);
                if !self.is_leading {
                    tracing::info!(lease = %options.lease_name, identity = %options.identity, "acquired the Lease");
                    let _ = leading.send(true);
                }
            }
            Ok(Ok(Attempt::HeldBy(holder))) => {
                if self.is_leading {
                    tracing::error!(%holder, "another replica holds the Lease: no longer the leader");
                    return false;
                }
                tracing::debug!(%holder, "the Lease is held by another replica");
            }
            Ok(Ok(Attempt::Conflict)) => {
                tracing::debug!("the Lease changed meanwhile; trying again");
            }
            Ok(Err(err)) => {
                if !*failing || self.is_leading {
                    tracing::warn!(error = %err, leading = self.is_leading, "could not read or renew the Lease");
                }
                *failing = true;
            }
            Err(_) => {
                if !*failing || self.is_leading {
                    tracing::warn!(
                        leading = self.is_leading,
                        "reading or renewing the Lease timed out"
                    );
                }
                *failing = true;
            }
        }
        true
    }
}

/// Gives the Lease up within the leader's deadline; a failure only delays the successor.
async fn release(lock: &mut LeaseLock, fence: &WriteFence) {
    let limit = fence.deadline().map_or(Duration::from_secs(5), |d| {
        d.saturating_duration_since(Instant::now())
    });
    match tokio::time::timeout(limit, lock.release()).await {
        Ok(Ok(())) => tracing::info!("released the Lease"),
        Ok(Err(err)) => tracing::warn!(error = %err, "releasing the Lease failed"),
        Err(_) => tracing::warn!("releasing the Lease timed out"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_client_gos_and_valid() {
        let options = LeaderOptions::new("l", "ns", "me");
        assert_eq!(
            (
                options.lease_duration,
                options.renew_deadline,
                options.retry_period
            ),
            (
                Duration::from_secs(15),
                Duration::from_secs(10),
                Duration::from_secs(2)
            )
        );
        assert_eq!(options.validate(), Ok(()));
        assert_eq!(options.duration_seconds(), 15);
    }

    #[test]
    fn invalid_timings_are_named() {
        let base = LeaderOptions::new("l", "ns", "me");
        let with = |lease: u64, deadline: u64, retry: u64| LeaderOptions {
            lease_duration: Duration::from_millis(lease),
            renew_deadline: Duration::from_millis(deadline),
            retry_period: Duration::from_millis(retry),
            ..base.clone()
        };
        assert!(matches!(
            with(15_000, 15_000, 2_000).validate(),
            Err(TimingError::DeadlineNotBelowDuration { .. })
        ));
        assert!(matches!(
            with(15_000, 10_000, 10_000).validate(),
            Err(TimingError::RetryNotBelowDeadline { .. })
        ));
        assert_eq!(
            with(15_000, 10_000, 0).validate(),
            Err(TimingError::ZeroRetry)
        );
        assert!(matches!(
            with(500, 400, 100).validate(),
            Err(TimingError::LeaseTooShort(_))
        ));
        let err = with(15_000, 20_000, 2_000)
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("renew deadline (20s)") && err.contains("lease duration (15s)"),
            "{err}"
        );
        assert_eq!(with(1_500, 1_000, 250).duration_seconds(), 2, "rounded up");
    }
}
