//! The app's Ingress on `networking.k8s.io/v1` with `ingressClassName`
//! (the original used the removed `v1beta1`), served at `<app>.<domain>`.

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};
use reviewapp_api::{OperatorConfig, ReviewApp, ValidatedSpec};

use crate::meta::{self, Component, SERVICE_PORT};

/// The Ingress `names.app`: host `names.host(domain)`, path `/` to the Service, and TLS with the
/// copied wildcard Secret when TLS is configured.
pub fn ingress(app: &ReviewApp, spec: &ValidatedSpec, config: &OperatorConfig) -> Ingress {
    let names = &spec.names;
    let host = names.host(&config.domain);
    let class = config.ingress_class_name.trim();
    Ingress {
        metadata: meta::object_meta(app, names, Component::App, &spec.namespace, &names.app),
        spec: Some(IngressSpec {
            ingress_class_name: (!class.is_empty()).then(|| class.to_string()),
            rules: Some(vec![IngressRule {
                host: Some(host.clone()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some("/".to_string()),
                        path_type: "Prefix".to_string(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: names.app.clone(),
                                port: Some(ServiceBackendPort {
                                    number: Some(SERVICE_PORT),
                                    name: None,
                                }),
                            }),
                            resource: None,
                        },
                    }],
                }),
            }]),
            tls: config.tls_enabled().then(|| {
                vec![IngressTLS {
                    hosts: Some(vec![host.clone()]),
                    secret_name: Some(names.tls_secret.clone()),
                }]
            }),
            ..IngressSpec::default()
        }),
        status: None,
    }
}
