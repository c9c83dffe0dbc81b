//! The copy of the wildcard TLS Secret next to the app.
//!
//! Rendered as the target of a `CopySecret` action: metadata (labels, owner, the source it was
//! copied from) and type only; the effects layer reads the source and fills in the data. It is
//! re-applied on every `ApplyChildren`, so a renewed certificate propagates.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use reviewapp_api::{OperatorConfig, ReviewApp, ValidatedSpec};

use crate::meta::{self, ANNOTATION_COPIED_FROM, Component};

/// Type of the copied Secret.
pub const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";

/// The source Secret as `(namespace, name)`, or `None` when TLS is off.
pub fn tls_source(config: &OperatorConfig) -> Option<(String, String)> {
    config.tls_enabled().then(|| {
        (
            config.tls.secret_namespace.clone(),
            config.tls.secret_name.clone(),
        )
    })
}

/// The copy `names.tls_secret` in the app's namespace, without data; `None` when TLS is off.
pub fn tls_secret(
    app: &ReviewApp,
    spec: &ValidatedSpec,
    config: &OperatorConfig,
) -> Option<Secret> {
    let (namespace, name) = tls_source(config)?;
    let names = &spec.names;
    let mut metadata = meta::object_meta(
        app,
        names,
        Component::Tls,
        &spec.namespace,
        &names.tls_secret,
    );
    metadata.annotations = Some(BTreeMap::from([(
        ANNOTATION_COPIED_FROM.to_string(),
        format!("{namespace}/{name}"),
    )]));
    Some(Secret {
        metadata,
        type_: Some(TLS_SECRET_TYPE.to_string()),
        ..Secret::default()
    })
}
