//! CustomResourceDefinitions: rules are compiled under Kubernetes' property-name escaping
//! when the CRD is written, and then enforced on every write of the resource.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::common::{code, review_app, review_apps, start};

/// The rule the operator's CRD shipped with: `namespace` is a CEL reserved word.
pub const BROKEN_RULE: &str = "!has(oldSelf.config) || !has(oldSelf.config.namespace) || has(self.config) && has(self.config.namespace) && self.config.namespace == oldSelf.config.namespace";

/// The same rule with the property name escaped as Kubernetes requires.
pub const ESCAPED_RULE: &str = "!has(oldSelf.config) || !has(oldSelf.config.__namespace__) || has(self.config) && has(self.config.__namespace__) && self.config.__namespace__ == oldSelf.config.__namespace__";

const NAME: &str = "reviewapps.reviewtron.k8s.revelry.co";

/// A CRD shaped like the ReviewApp one: `spec.config` keeps unknown fields but declares some,
/// `spec.config.database` does not keep them, and `spec` carries three immutability rules
/// (the third one is `namespace_rule`).
pub fn review_app_crd(namespace_rule: &str) -> Value {
    let yaml = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: reviewapps.reviewtron.k8s.revelry.co
spec:
  group: reviewtron.k8s.revelry.co
  names: {kind: ReviewApp, plural: reviewapps, singular: reviewapp, shortNames: [ra]}
  scope: Cluster
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              repo: {type: string, nullable: true}
              pr: {x-kubernetes-int-or-string: true, nullable: true}
              commitHash: {type: string, nullable: true}
              config:
                type: object
                nullable: true
                x-kubernetes-preserve-unknown-fields: true
                properties:
                  namespace: {type: string, nullable: true}
                  applicationPort: {type: integer, format: int64, nullable: true}
                  database:
                    type: object
                    nullable: true
                    properties:
                      backend: {type: string, nullable: true}
                      version: {type: string, nullable: true}
            x-kubernetes-validations:
            - message: 'repo is immutable: delete and recreate the ReviewApp'
              rule: '!has(oldSelf.repo) || has(self.repo) && self.repo == oldSelf.repo'
            - message: 'pr is immutable: delete and recreate the ReviewApp'
              rule: '!has(oldSelf.pr) || has(self.pr) && self.pr == oldSelf.pr'
            - message: 'config.namespace is immutable: delete and recreate the ReviewApp'
              rule: RULE
          status:
            type: object
            nullable: true
            properties:
              appStatus: {type: string, nullable: true}
              observedGeneration: {type: integer, format: int64, nullable: true}
"#;
    let mut crd: Value = serde_yaml::from_str(yaml).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"]
        [2]["rule"] = json!(namespace_rule);
    crd
}

fn typed(crd: Value) -> CustomResourceDefinition {
    serde_json::from_value(crd).unwrap()
}

fn message(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => status.message.clone(),
        other => panic!("not an API error: {other:?}"),
    }
}

#[tokio::test]
async fn a_rule_with_an_unescaped_reserved_word_is_refused() {
    let (_emulator, client, handle) = start().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client);
    let err = crds
        .create(&PostParams::default(), &typed(review_app_crd(BROKEN_RULE)))
        .await
        .unwrap_err();
    assert_eq!(code(&err), 422);
    let text = message(&err);
    assert!(
        text.starts_with(&format!(
            "CustomResourceDefinition.apiextensions.k8s.io \"{NAME}\" is invalid: spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[2].rule: Invalid value: "
        )),
        "{text}"
    );
    assert!(
        text.contains(": compilation failed: ERROR: <input>:1:29: undefined field 'namespace'"),
        "{text}"
    );
    assert_eq!(
        code(&crds.get(NAME).await.unwrap_err()),
        404,
        "nothing stored"
    );
    assert!(!handle.is_schema_registered("reviewtron.k8s.revelry.co", "v1", "reviewapps"));

    // Server-side apply and the handle refuse it the same way.
    let err = crds
        .patch(
            NAME,
            &PatchParams::apply("kubectl"),
            &Patch::Apply(review_app_crd(BROKEN_RULE)),
        )
        .await
        .unwrap_err();
    assert_eq!(code(&err), 422);
    let err = handle.create(review_app_crd(BROKEN_RULE)).unwrap_err();
    assert_eq!(err.code, 422);
    assert!(
        err.message.contains("undefined field 'namespace'"),
        "{}",
        err.message
    );
    assert_eq!(handle.object_count(), 0);
}

#[allow(
    clippy::too_many_lines,
    reason = "each immutable field, refused and accepted in turn"
)]
#[tokio::test]
async fn the_escaped_rule_installs_and_guards_immutable_fields() {
    let (_emulator, client, handle) = start().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let installed = crds
        .create(&PostParams::default(), &typed(review_app_crd(ESCAPED_RULE)))
        .await
        .unwrap();
    let conditions = installed.status.unwrap().conditions.unwrap();
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True"),
        "{conditions:?}"
    );
    assert!(handle.is_schema_registered("reviewtron.k8s.revelry.co", "v1", "reviewapps"));

    // Replacing it with the broken rule is refused too, and the installed schema stays.
    let mut broken = typed(review_app_crd(BROKEN_RULE));
    broken.metadata.resource_version = installed.metadata.resource_version.clone();
    let err = crds
        .replace(NAME, &PostParams::default(), &broken)
        .await
        .unwrap_err();
    assert_eq!(code(&err), 422);
    assert!(
        message(&err).contains("undefined field 'namespace'"),
        "{}",
        message(&err)
    );
    assert_eq!(
        crds.get(NAME).await.unwrap().metadata.resource_version,
        installed.metadata.resource_version
    );

    let apps: Api<DynamicObject> = Api::all_with(client, &review_apps());
    let body = review_app("app", json!({"spec": {"config": {"namespace": "ns1"}}}));
    // A create passes: transition rules do not run without an old object.
    apps.create(
        &PostParams::default(),
        &serde_json::from_value(body).unwrap(),
    )
    .await
    .unwrap();

    let patch = |spec: Value| Patch::Merge(json!({ "spec": spec }));
    let err = apps
        .patch(
            "app",
            &PatchParams::default(),
            &patch(json!({"config": {"namespace": "ns2"}})),
        )
        .await
        .unwrap_err();
    assert_eq!(code(&err), 422);
    let kube::Error::Api(status) = &err else {
        panic!("not an API error")
    };
    assert_eq!(
        status.message,
        "ReviewApp.reviewtron.k8s.revelry.co \"app\" is invalid: spec: Invalid value: \"object\": config.namespace is immutable: delete and recreate the ReviewApp"
    );
    assert_eq!(status.reason, "Invalid");
    let details = status.details.as_ref().unwrap();
    assert_eq!(details.kind, "ReviewApp");
    let cause = &details.causes[0];
    assert_eq!(cause.reason, "FieldValueInvalid");
    assert_eq!(cause.field, "spec");
    assert_eq!(
        cause.message,
        "Invalid value: \"object\": config.namespace is immutable: delete and recreate the ReviewApp"
    );
    assert_eq!(
        handle
            .get("/apis/reviewtron.k8s.revelry.co/v1/reviewapps/app")
            .unwrap()["spec"]["config"]["namespace"],
        "ns1",
        "nothing changed"
    );

    // Other fields change freely; the other two rules hold `repo` and `pr` (int or string).
    let changed = apps
        .patch(
            "app",
            &PatchParams::default(),
            &patch(json!({"commitHash": "def"})),
        )
        .await
        .unwrap();
    assert_eq!(changed.data["spec"]["commitHash"], "def");
    for (spec, rule) in [
        (json!({"repo": "other"}), "repo is immutable"),
        (json!({"pr": 2}), "pr is immutable"),
        (json!({"pr": "1"}), "pr is immutable"),
    ] {
        let err = apps
            .patch("app", &PatchParams::default(), &patch(spec.clone()))
            .await
            .unwrap_err();
        assert_eq!(code(&err), 422, "{spec}");
        assert!(message(&err).contains(rule), "{spec}: {}", message(&err));
    }
    // Server-side apply is held to the same rules.
    let err = apps
        .patch(
            "app",
            &PatchParams::apply("someone").force(),
            &Patch::Apply(review_app(
                "app",
                json!({"spec": {"config": {"namespace": "ns3"}}}),
            )),
        )
        .await
        .unwrap_err();
    assert_eq!(code(&err), 422);

    // An app created without config may get one later (`!has(oldSelf.config)`).
    handle.create(review_app("later", json!({}))).unwrap();
    apps.patch(
        "later",
        &PatchParams::default(),
        &patch(json!({"config": {"namespace": "ns"}})),
    )
    .await
    .unwrap();

    // Deleting the CRD unregisters its schema: writes are no longer checked.
    crds.delete(NAME, &DeleteParams::default()).await.unwrap();
    assert!(!handle.is_schema_registered("reviewtron.k8s.revelry.co", "v1", "reviewapps"));
    apps.patch(
        "app",
        &PatchParams::default(),
        &patch(json!({"config": {"namespace": "ns2"}})),
    )
    .await
    .unwrap();
}
