//! The dynamic APIs requests go through: one per child kind and namespace, and the
//! cluster-scoped `ReviewApp` API.

use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject};
use reviewapp_api::ReviewApp;
use reviewapp_resources::{ChildKind, ChildRef};

/// The API resource of a child kind (every child kind is namespaced).
pub(crate) fn api_resource(kind: ChildKind) -> ApiResource {
    ApiResource {
        group: kind.group().to_string(),
        version: kind.version().to_string(),
        api_version: kind.api_version(),
        kind: kind.kind().to_string(),
        plural: kind.plural().to_string(),
    }
}

/// A dynamic API for `child`'s kind in `child`'s namespace.
pub(crate) fn child_api(client: &Client, child: &ChildRef) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), &child.namespace, &api_resource(child.kind))
}

/// The cluster-scoped `ReviewApp` API, untyped (any response body with metadata is accepted).
pub(crate) fn review_apps(client: &Client) -> Api<DynamicObject> {
    Api::all_with(client.clone(), &ApiResource::erase::<ReviewApp>(&()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_resources_of_every_kind() {
        let ar = api_resource(ChildKind::Deployment);
        assert_eq!(
            (ar.api_version.as_str(), ar.plural.as_str()),
            ("apps/v1", "deployments")
        );
        assert_eq!(api_resource(ChildKind::Secret).api_version, "v1");
    }
}
