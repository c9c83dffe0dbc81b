//! What changes while an app sleeps or wakes: its Ingress sends requests to the activator, and
//! its database is halted.
//!
//! An Ingress can only name a Service in its own namespace, so beside the app there is an
//! `ExternalName` Service (`names.activator`) whose `externalName` is the activator Service's
//! DNS name (`<activator.serviceName>.<activator.namespace>.svc.<activator.clusterDomain>`), and
//! the Ingress's backend is that Service on `activator.port`. ingress-nginx resolves an
//! `ExternalName` backend itself and sends the client's `Host` header upstream (no
//! `upstream-vhost` is set), which is how the activator knows which app a request is for.
//!
//! The database sleeps as its operator allows: a CloudNativePG `Cluster` gets the
//! `cnpg.io/hibernation: "on"` annotation (declarative hibernation: the pods go, the volumes
//! stay), a KubeDB `Postgres` `spec.halted: true`. Both are fields of the operator's own
//! server-side apply, so the apply that wakes the app, without them, removes them.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use reviewapp_api::{OperatorConfig, ReviewApp, ValidatedSpec};
use serde_json::{Value, json};

use crate::child::ChildKind;
use crate::meta::{self, Component};

/// The CloudNativePG annotation that hibernates a `Cluster`.
pub const CNPG_HIBERNATION: &str = "cnpg.io/hibernation";

/// Name of the activator Service's port in the `ExternalName` Service.
const PORT_NAME: &str = "http";

/// The `ExternalName` Service `names.activator`, naming the activator Service.
pub fn activator_service(
    app: &ReviewApp,
    spec: &ValidatedSpec,
    config: &OperatorConfig,
) -> Service {
    let names = &spec.names;
    let port = i32::from(config.activator.port);
    Service {
        metadata: meta::object_meta(
            app,
            names,
            Component::App,
            &spec.namespace,
            &names.activator,
        ),
        spec: Some(ServiceSpec {
            type_: Some("ExternalName".to_string()),
            external_name: Some(config.activator.host()),
            ports: Some(vec![ServicePort {
                name: Some(PORT_NAME.to_string()),
                port,
                protocol: Some("TCP".to_string()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// Points an Ingress manifest's every backend at the `ExternalName` Service on the activator's
/// port.
pub fn route_to_activator(ingress: &mut Value, spec: &ValidatedSpec, config: &OperatorConfig) {
    let backend = json!({
        "name": spec.names.activator,
        "port": {"number": config.activator.port},
    });
    let rules = ingress
        .pointer_mut("/spec/rules")
        .and_then(Value::as_array_mut);
    for rule in rules.into_iter().flatten() {
        let paths = rule
            .pointer_mut("/http/paths")
            .and_then(Value::as_array_mut);
        for path in paths.into_iter().flatten() {
            if let Some(service) = path.pointer_mut("/backend/service") {
                *service = backend.clone();
            }
        }
    }
}

/// Halts a database manifest of `kind`: CloudNativePG hibernation, KubeDB `halted`.
pub fn halt_database(kind: ChildKind, database: &mut Value) {
    match kind {
        ChildKind::CnpgCluster => {
            if let Some(metadata) = database.get_mut("metadata").and_then(Value::as_object_mut) {
                let annotations = metadata.entry("annotations").or_insert_with(|| json!({}));
                if let Some(annotations) = annotations.as_object_mut() {
                    annotations.insert(CNPG_HIBERNATION.into(), json!("on"));
                }
            }
        }
        ChildKind::KubedbPostgres => {
            if let Some(spec) = database.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("halted".into(), json!(true));
            }
        }
        _ => {}
    }
}
