//! Reading why a build failed: once the build Job awaited has failed and the status does not
//! record it yet, the failing container's log tail is read (through the effects layer, which
//! bounds and sanitises it) and handed to the transition in the observation.

use reviewapp_api::{OperatorConfig, ReviewApp};
use reviewapp_effects::Effects;
use reviewapp_state::{Observed, wants_failure_log};

/// Adds the failure log to `observed` when the transition will record a failure of the build
/// Job named in `app`'s status; otherwise leaves it alone (no request).
pub(crate) async fn observe(
    effects: &Effects,
    config: &OperatorConfig,
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
    let secrets = [
        config.builder.push_secret_name.clone(),
        config.builder.source_token_secret_name.clone(),
    ];
    let log = effects
        .failed_build_log(&config.build_namespace, job, &secrets)
        .await;
    tracing::debug!(job, ?log, "read the failed build's log");
    observed.failure_log = Some(log);
}
