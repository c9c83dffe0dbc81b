//! What every child shares: labels, annotations, the owner reference, common metadata, and the
//! app's port names.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use reviewapp_api::names::{AppNames, label_value};
use reviewapp_api::{GROUP, ReviewApp};

/// `reviewtron.k8s.revelry.co/app`: the sanitised repository (kept from the original operator).
pub const LABEL_APP: &str = "reviewtron.k8s.revelry.co/app";
/// `reviewtron.k8s.revelry.co/build`: the sanitised pull request (kept from the original operator).
pub const LABEL_BUILD: &str = "reviewtron.k8s.revelry.co/build";
/// `reviewtron.k8s.revelry.co/commit`: the first 10 characters of the commit a build Job builds.
pub const LABEL_COMMIT: &str = "reviewtron.k8s.revelry.co/commit";
/// `app.kubernetes.io/managed-by`.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// `app.kubernetes.io/instance`: the `ReviewApp`'s name, as a label value.
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
/// `app.kubernetes.io/name`: the app name (`test-review-app-678`).
pub const LABEL_NAME: &str = "app.kubernetes.io/name";
/// `app.kubernetes.io/component`: see [`Component`].
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
/// Value of [`LABEL_MANAGED_BY`].
pub const MANAGED_BY: &str = "review-app-operator";
/// Pod label that selects an app's pods (Deployment selector and Service selector; kept from the original operator).
pub const POD_SELECTOR_LABEL: &str = "reviewApp";
/// Pod-template annotation naming the image the pods run.
pub const ANNOTATION_IMAGE: &str = "reviewtron.k8s.revelry.co/image";
/// Annotation on the TLS Secret copy naming its source as `<namespace>/<name>`.
pub const ANNOTATION_COPIED_FROM: &str = "reviewtron.k8s.revelry.co/copied-from";
/// Kind of the owner of every child.
pub const OWNER_KIND: &str = "ReviewApp";
/// Name of the app's container port and of its Service port (which the Ingress backend uses).
pub const PORT_NAME: &str = "http";
/// Port the app's Service (and so the Ingress backend) listens on.
pub const SERVICE_PORT: i32 = 80;

/// What part of the review app an object belongs to (`app.kubernetes.io/component`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Component {
    /// Deployment, Service, Ingress.
    App,
    /// Database object and database-copy Secret.
    Database,
    /// Copied TLS Secret.
    Tls,
    /// Build Job.
    Build,
}

impl Component {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Component::App => "app",
            Component::Database => "database",
            Component::Tls => "tls",
            Component::Build => "build",
        }
    }
}

/// `apiVersion` of the owner reference: `reviewtron.k8s.revelry.co/v1`.
pub fn owner_api_version() -> String {
    format!("{GROUP}/v1")
}

/// The labels every child carries.
pub fn labels(app: &ReviewApp, names: &AppNames, component: Component) -> BTreeMap<String, String> {
    let instance = label_value(app.metadata.name.as_deref().unwrap_or_default());
    BTreeMap::from([
        (LABEL_APP.to_string(), names.app_label.clone()),
        (LABEL_BUILD.to_string(), names.build_label.clone()),
        (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
        (LABEL_INSTANCE.to_string(), instance),
        (LABEL_NAME.to_string(), names.app.clone()),
        (LABEL_COMPONENT.to_string(), component.as_str().to_string()),
    ])
}

/// The selector of the app's pods: `{reviewApp: <app name>}`.
pub fn pod_selector(names: &AppNames) -> BTreeMap<String, String> {
    BTreeMap::from([(POD_SELECTOR_LABEL.to_string(), names.app.clone())])
}

/// One controller reference to the `ReviewApp`, or `None` when the object has no uid (a
/// `ReviewApp` read from a file, never stored by an API server, cannot own anything).
pub fn owner_references(app: &ReviewApp) -> Option<Vec<OwnerReference>> {
    let uid = app.metadata.uid.as_deref().filter(|uid| !uid.is_empty())?;
    let name = app
        .metadata
        .name
        .as_deref()
        .filter(|name| !name.is_empty())?;
    Some(vec![OwnerReference {
        api_version: owner_api_version(),
        kind: OWNER_KIND.to_string(),
        name: name.to_string(),
        uid: uid.to_string(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }])
}

/// Metadata of a child: name, namespace, the common labels and the owner reference.
pub fn object_meta(
    app: &ReviewApp,
    names: &AppNames,
    component: Component,
    namespace: &str,
    name: &str,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(namespace.to_string()),
        labels: Some(labels(app, names, component)),
        owner_references: owner_references(app),
        ..ObjectMeta::default()
    }
}
