//! The app's Service: port 80 to the application port.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use reviewapp_api::{ReviewApp, ValidatedSpec};

use crate::meta::{self, Component, PORT_NAME, SERVICE_PORT};

/// The ClusterIP Service `names.app`, selecting the app's pods.
pub fn service(app: &ReviewApp, spec: &ValidatedSpec) -> Service {
    let names = &spec.names;
    Service {
        metadata: meta::object_meta(app, names, Component::App, &spec.namespace, &names.app),
        spec: Some(ServiceSpec {
            ports: Some(vec![ServicePort {
                name: Some(PORT_NAME.to_string()),
                port: SERVICE_PORT,
                protocol: Some("TCP".to_string()),
                target_port: Some(IntOrString::Int(spec.port)),
                ..ServicePort::default()
            }]),
            selector: Some(meta::pod_selector(names)),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}
