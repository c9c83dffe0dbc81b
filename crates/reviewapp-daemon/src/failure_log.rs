//! Reading why a build failed: once the build Job awaited has failed and the status does not
//! record it yet, the failing container's log tail is read (through the effects layer, which
//! bounds and sanitises it) and handed to the transition in the observation.
//!
//! What was read is remembered by the Job's uid, so that a second handling before the status
//! recording the failure is seen (a watch echo of an older status, a retry after a failed
//! write) reuses it instead of reading the log again: one read per failed Job and process.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use reviewapp_api::{OperatorConfig, ReviewApp};
use reviewapp_effects::Effects;
use reviewapp_state::{FailureLog, Observed, wants_failure_log};

use crate::build_jobs::BuildJobs;

/// How many failed Jobs' logs are remembered (the oldest go first).
const REMEMBERED: usize = 1024;

/// The failure logs read so far, by Job uid.
#[derive(Default)]
pub(crate) struct FailureLogs {
    read: Mutex<(BTreeMap<String, FailureLog>, VecDeque<String>)>,
}

impl FailureLogs {
    fn get(&self, uid: &str) -> Option<FailureLog> {
        let read = self.read.lock().unwrap_or_else(|e| e.into_inner());
        read.0.get(uid).cloned()
    }

    fn remember(&self, uid: String, log: FailureLog) {
        let mut read = self.read.lock().unwrap_or_else(|e| e.into_inner());
        let (logs, order) = &mut *read;
        if logs.insert(uid.clone(), log).is_none() {
            order.push_back(uid);
        }
        while order.len() > REMEMBERED {
            if let Some(oldest) = order.pop_front() {
                logs.remove(&oldest);
            }
        }
    }

    /// Adds the failure log to `observed` when the transition will record a failure of the
    /// build Job named in `app`'s status; otherwise leaves it alone (no request).
    pub(crate) async fn observe(
        &self,
        effects: &Effects,
        config: &OperatorConfig,
        jobs: &BuildJobs,
        app: &ReviewApp,
        observed: &mut Observed,
    ) {
        let status = app.status.as_ref();
        if !wants_failure_log(status, &observed.build) {
            return;
        }
        let Some(job) = status.and_then(|s| s.build_job_name.as_deref()) else {
            return;
        };
        let uid = jobs.uid(job);
        if let Some(log) = uid.as_deref().and_then(|uid| self.get(uid)) {
            observed.failure_log = Some(log);
            return;
        }
        let secrets = [
            config.builder.push_secret_name.clone(),
            config.builder.source_token_secret_name.clone(),
        ];
        let log = effects
            .failed_build_log(&config.build_namespace, job, &secrets)
            .await;
        tracing::debug!(job, ?log, "read the failed build's log");
        if let Some(uid) = uid {
            self.remember(uid, log.clone());
        }
        observed.failure_log = Some(log);
    }
}
