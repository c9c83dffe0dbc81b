//! The `appStatus/buildStatus` labels of the daemon's metrics, log and listener.

use reviewapp_api::ReviewAppStatus;

/// `appStatus/buildStatus` (`none` for either that is not set), e.g. `deployed/building`.
pub(crate) fn status_label(status: Option<&ReviewAppStatus>) -> String {
    let build = status.and_then(|s| s.build_status).map(|b| b.as_str());
    format!("{}/{}", app_status_label(status), build.unwrap_or("none"))
}

/// `appStatus` (`none` when it is not set).
pub(crate) fn app_status_label(status: Option<&ReviewAppStatus>) -> String {
    let app = status.and_then(|s| s.app_status).map(|a| a.as_str());
    app.unwrap_or("none").to_string()
}

#[cfg(test)]
mod tests {
    use reviewapp_api::{AppStatus, BuildStatus};

    use super::*;

    #[test]
    fn labels_spell_the_status_as_stored() {
        assert_eq!(status_label(None), "none/none");
        let status = ReviewAppStatus {
            app_status: Some(AppStatus::Deployed),
            build_status: Some(BuildStatus::Building),
            ..ReviewAppStatus::default()
        };
        assert_eq!(status_label(Some(&status)), "deployed/building");
        assert_eq!(app_status_label(Some(&status)), "deployed");
    }
}
