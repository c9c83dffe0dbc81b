//! The awake-app cap (`lifecycle.maxAwakeApps`), a cluster-wide decision made from the app index:
//! which awake apps must go to sleep so that at most `cap` are awake. The apps idle longest go
//! first; kept apps (`keep: "true"`) count as awake but never go. Each app's transition is told
//! whether it is one of them ([`LifecycleFacts::over_cap`](reviewapp_state::LifecycleFacts)),
//! so the decision is re-derived from the cluster after a restart.

use std::collections::BTreeSet;

use reviewapp_api::ReviewApp;
use reviewapp_state::awake_idle_since;

/// Names of the awake apps that must sleep to bring the awake count down to `cap` (`0`: no cap,
/// none must): the non-kept ones idle longest, oldest activity first (ties by name).
pub fn over_cap<'a>(apps: impl IntoIterator<Item = &'a ReviewApp>, cap: u32) -> BTreeSet<String> {
    if cap == 0 {
        return BTreeSet::new();
    }
    let mut awake = 0usize;
    let mut candidates = Vec::new();
    for app in apps {
        let Some((since, kept)) = awake_idle_since(app) else {
            continue;
        };
        awake += 1;
        if !kept && let Some(name) = app.metadata.name.clone() {
            candidates.push((since, name));
        }
    }
    let excess = awake.saturating_sub(cap as usize);
    candidates.sort();
    candidates
        .into_iter()
        .take(excess)
        .map(|(_, name)| name)
        .collect()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;
    use reviewapp_api::annotations::KEEP;
    use reviewapp_api::{AppStatus, ReviewAppStatus};

    use super::*;

    fn app(name: &str, status: AppStatus, active: i64, keep: bool) -> ReviewApp {
        let mut app = ReviewApp::new(name, Default::default());
        app.status = Some(ReviewAppStatus {
            app_status: Some(status),
            deployed_image: Some("img".into()),
            last_active_at: Some(Time(Timestamp::from_second(active).unwrap())),
            ..ReviewAppStatus::default()
        });
        if keep {
            app.metadata.annotations = Some([(KEEP.to_string(), "true".to_string())].into());
        }
        app
    }

    #[test]
    fn the_apps_idle_longest_go_first_and_kept_ones_never() {
        let apps = [
            app("kept-oldest", AppStatus::Deployed, 10, true),
            app("old", AppStatus::Deployed, 20, false),
            app("middle", AppStatus::Deployed, 30, false),
            app("new", AppStatus::Deployed, 40, false),
            app("asleep", AppStatus::Sleeping, 0, false),
            app("expired", AppStatus::Expired, 0, false),
        ];
        let names = |set: BTreeSet<String>| set.into_iter().collect::<Vec<_>>();
        assert_eq!(names(over_cap(&apps, 0)), Vec::<String>::new(), "no cap");
        assert_eq!(names(over_cap(&apps, 4)), Vec::<String>::new(), "4 awake");
        assert_eq!(names(over_cap(&apps, 3)), ["old"]);
        assert_eq!(names(over_cap(&apps, 2)), ["middle", "old"]);
        assert_eq!(
            names(over_cap(&apps, 1)),
            ["middle", "new", "old"],
            "the kept app stays awake and counts"
        );
    }
}
