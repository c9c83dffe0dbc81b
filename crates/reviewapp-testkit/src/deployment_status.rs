//! The Deployment controller's part, played by tests: a [`Handle`] method that reports an
//! `apps/v1` Deployment's pods as ready, through its status, as kube-controller-manager would
//! once they are.

use serde_json::{Value, json};

use crate::handle::{Handle, object_path};
use crate::resource::ResourceKey;
use crate::status::ApiError;

impl Handle {
    /// Marks the Deployment `namespace`/`name` as rolled out: its status says the controller
    /// observed its current `metadata.generation` and that all of `spec.replicas` (default 1)
    /// are updated, ready and available, with an `Available` condition (`True` when at least
    /// one replica is). A Deployment at 0 replicas reports 0 available. Call it again after the
    /// Deployment changed: the emulator runs no Deployment controller, so nothing else moves
    /// its status.
    pub fn set_deployment_available(&self, namespace: &str, name: &str) -> Result<Value, ApiError> {
        let path = object_path("apps", "v1", "deployments", Some(namespace), name);
        let res = ResourceKey::new("apps", "v1", "deployments");
        let deployment = self
            .get(&path)
            .ok_or_else(|| ApiError::new(404, "NotFound", format!("{res} \"{name}\" not found")))?;
        let generation = deployment
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let replicas = deployment
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let available = if replicas >= 1 { "True" } else { "False" };
        self.set_status(
            &path,
            json!({
                "observedGeneration": generation,
                "replicas": replicas,
                "updatedReplicas": replicas,
                "readyReplicas": replicas,
                "availableReplicas": replicas,
                "conditions": [{
                    "type": "Available", "status": available,
                    "reason": "MinimumReplicasAvailable",
                    "message": "Deployment has minimum availability.",
                }],
            }),
        )
    }
}
