//! [`Effects`]: runs a plan's actions in order against the API server, each through the module
//! that does it (children, finalizers, Events; the status is written apart).

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use kube::runtime::events::{Recorder, Reporter};
use kube::{Client, ResourceExt};
use reviewapp_api::ReviewApp;
use reviewapp_resources::{Action, ChildRef, Plan};
use tracing::debug;

use crate::applied::AppliedMemory;
use crate::error::{EffectsError, ObjectId, Verb, secret_values};
use crate::fence::WriteFence;
use crate::retry::{self, RetryPolicy};
use crate::{LiveIndex, Observer};

/// Executes plans and writes statuses. Cheap to clone; one instance (one event recorder, one
/// applied-manifest memory) is shared by every app's handler.
#[derive(Clone)]
pub struct Effects {
    pub(crate) client: Client,
    pub(crate) recorder: Recorder,
    pub(crate) observer: Observer,
    pub(crate) retry: RetryPolicy,
    pub(crate) fence: WriteFence,
    pub(crate) applied: Arc<AppliedMemory>,
}

/// What one [`Effects::execute`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Actions that sent a write request that succeeded (or counted as done: a 404 on delete,
    /// a 409 AlreadyExists on create), Events included. Retries of one action count once.
    pub writes: u32,
    /// Actions skipped because the desired state already held (nothing was written).
    pub skipped: u32,
    /// Events that could not be recorded (logged; they never fail a plan).
    pub events_failed: u32,
    /// What was written, one [`Action::describe`](reviewapp_resources::Action::describe) line
    /// per written action, in order.
    pub written: Vec<String>,
}

/// How one action ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A write request succeeded (or counted as done).
    Wrote,
    /// Nothing was sent: the desired state already held.
    Skipped,
    /// An Event could not be recorded.
    EventFailed,
}

impl fmt::Debug for Effects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Effects")
            .field("retry", &self.retry)
            .field("remembered", &self.applied.len())
            .finish_non_exhaustive()
    }
}

impl Effects {
    /// Effects that talk to the API server through `client`, record Events as `reporter`, and
    /// report every request to `observer`. Uses the default [`RetryPolicy`].
    pub fn new(client: Client, reporter: Reporter, observer: Observer) -> Self {
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            observer,
            retry: RetryPolicy::default(),
            fence: WriteFence::open(),
            applied: Arc::default(),
        }
    }

    /// The same effects with another retry policy.
    #[must_use]
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The same effects, sending nothing once `fence` lapsed: every request (applies, creates,
    /// deletes, finalizer patches, status writes, Events) then fails with
    /// [`EffectsError::Fenced`] instead. Without it the fence is open for good.
    #[must_use]
    pub fn with_fence(mut self, fence: WriteFence) -> Self {
        self.fence = fence;
        self
    }

    /// Sends one request through [`retry::send`] with these effects' retry policy, observer
    /// and write fence.
    pub(crate) async fn send<T, F, Fut>(
        &self,
        verb: Verb,
        kind: &str,
        request: F,
    ) -> Result<T, kube::Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        retry::send(
            &self.retry,
            self.observer.as_ref(),
            &self.fence,
            verb,
            kind,
            request,
        )
        .await
    }

    /// Number of children whose last applied manifest is remembered.
    pub fn remembered(&self) -> usize {
        self.applied.len()
    }

    /// Runs `plan`'s actions for `app` in order and stops at the first error, which is returned
    /// (the caller retries the whole event later; every action is idempotent). `live` says what
    /// exists, so that actions whose desired state already holds are skipped.
    pub async fn execute(
        &self,
        app: &ReviewApp,
        plan: &Plan,
        live: &dyn LiveIndex,
    ) -> Result<Report, EffectsError> {
        let mut report = Report::default();
        // Build Jobs deleted or released by this plan: the cache may still show the old Job, so
        // a create of the same name that follows (a restarted build) must not be skipped.
        let mut let_go: Vec<&ChildRef> = Vec::new();
        for action in &plan.actions {
            let outcome = match action {
                Action::CreateJob(manifest) => {
                    let trust_cache = !let_go.contains(&&manifest.child);
                    self.create_job(manifest, live, trust_cache).await?
                }
                other => self.run(app, other, live).await?,
            };
            if let Action::Delete(child) | Action::ReleaseJob(child) = action {
                let_go.push(child);
            }
            match outcome {
                Outcome::Wrote => {
                    report.writes += 1;
                    report.written.push(action.describe());
                }
                Outcome::Skipped => report.skipped += 1,
                Outcome::EventFailed => report.events_failed += 1,
            }
        }
        debug!(
            app = %app.name_any(),
            writes = report.writes,
            skipped = report.skipped,
            events_failed = report.events_failed,
            "plan executed"
        );
        Ok(report)
    }

    async fn run(
        &self,
        app: &ReviewApp,
        action: &Action,
        live: &dyn LiveIndex,
    ) -> Result<Outcome, EffectsError> {
        match action {
            Action::AddFinalizer => self.add_finalizer(app).await,
            Action::RemoveFinalizer => self.remove_finalizer(app).await,
            Action::Apply(manifest) => {
                let secrets = secret_values(&manifest.object);
                self.apply(manifest, live, &secrets).await
            }
            Action::CreateJob(manifest) => self.create_job(manifest, live, true).await,
            Action::CopySecret { source, target } => self.copy_secret(source, target, live).await,
            Action::Delete(child) => self.delete(child, live).await,
            Action::ReleaseJob(child) => self.release_job(child, live).await,
            Action::Event(note) => match self.event(app, note).await {
                // A lost Event never fails a plan, but a fenced one ends it: nothing after it
                // may be sent either.
                Outcome::EventFailed if !self.fence.is_open() => Err(EffectsError::Fenced {
                    verb: Verb::Event,
                    object: ObjectId::cluster("ReviewApp", &app.name_any()),
                }),
                outcome => Ok(outcome),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The daemon spawns these futures on a multi-threaded runtime.
    #[allow(dead_code)]
    fn futures_are_send(effects: &Effects, app: &ReviewApp, plan: &Plan, live: &dyn LiveIndex) {
        fn is_send<T: Send>(_: T) {}
        is_send(effects.execute(app, plan, live));
        let status = reviewapp_api::ReviewAppStatus::default();
        is_send(effects.write_status(app, &status));
    }

    #[test]
    fn effects_and_errors_are_thread_safe() {
        fn is_send_sync<T: Send + Sync + 'static>() {}
        is_send_sync::<Effects>();
        is_send_sync::<EffectsError>();
    }
}
