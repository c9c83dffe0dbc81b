//! `lifecycle` (when apps expire and sleep) and `activator` (the Service a sleeping app's
//! Ingress sends requests to), and their checks. See `docs/configuration.md`.

use serde::{Deserialize, Serialize};

use super::{ConfigError, OperatorConfig};

/// `lifecycle`: when apps expire and sleep (each app's `spec.config` may override the durations).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct LifecycleConfig {
    /// Idle time after which an app expires (`90m`, `36h`, `7d`); `0` never.
    pub expire_after: String,
    /// Idle time after which an app goes to sleep; `0` never.
    pub sleep_after: String,
    /// Most apps awake at once; `0` no cap. Past it, the awake app idle longest (not kept) sleeps.
    pub max_awake_apps: u32,
}

/// `activator`: the Service in front of the operator's activator listener.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ActivatorConfig {
    /// Name of the activator Service.
    pub service_name: String,
    /// Namespace of the activator Service (the operator's install namespace).
    pub namespace: String,
    /// Port of the activator Service.
    pub port: u16,
    /// The cluster's DNS domain, for the activator Service's name
    /// (`<serviceName>.<namespace>.svc.<clusterDomain>`).
    pub cluster_domain: String,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        Self {
            expire_after: "0".into(),
            sleep_after: "0".into(),
            max_awake_apps: 0,
        }
    }
}

impl Default for ActivatorConfig {
    fn default() -> Self {
        Self {
            service_name: "review-app-operator-activator".into(),
            namespace: "review-app-operator".into(),
            port: 80,
            cluster_domain: "cluster.local".into(),
        }
    }
}

impl LifecycleConfig {
    /// `expireAfter` as a duration; `None`: never (also for a value `check` rejects).
    pub fn expire_after(&self) -> Option<std::time::Duration> {
        crate::validate::parse_duration(&self.expire_after)
            .ok()
            .flatten()
    }

    /// `sleepAfter` as a duration; `None`: never (also for a value `check` rejects).
    pub fn sleep_after(&self) -> Option<std::time::Duration> {
        crate::validate::parse_duration(&self.sleep_after)
            .ok()
            .flatten()
    }
}

impl ActivatorConfig {
    /// The activator Service's DNS name: `<serviceName>.<namespace>.svc.<clusterDomain>`.
    pub fn host(&self) -> String {
        format!(
            "{}.{}.svc.{}",
            self.service_name,
            self.namespace,
            self.cluster_domain.trim().trim_matches('.')
        )
    }
}

impl OperatorConfig {
    /// Rejects lifecycle durations that do not parse and an activator Service no DNS name can
    /// have.
    pub(super) fn check_lifecycle(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: String| Err(ConfigError::Invalid { key, reason });
        if let Err(reason) = crate::validate::parse_duration(&self.lifecycle.expire_after) {
            return invalid("lifecycle.expireAfter", reason);
        }
        if let Err(reason) = crate::validate::parse_duration(&self.lifecycle.sleep_after) {
            return invalid("lifecycle.sleepAfter", reason);
        }
        let activator = &self.activator;
        if !crate::names::is_dns_label(&activator.service_name) {
            return invalid("activator.serviceName", "must be a DNS-1123 label".into());
        }
        if !crate::names::is_dns_label(&activator.namespace) {
            return invalid("activator.namespace", "must be a DNS-1123 label".into());
        }
        if activator.port == 0 {
            return invalid("activator.port", "must be 1-65535".into());
        }
        if !crate::names::is_dns_subdomain(activator.cluster_domain.trim().trim_matches('.')) {
            return invalid("activator.clusterDomain", "must be a DNS name".into());
        }
        Ok(())
    }
}
