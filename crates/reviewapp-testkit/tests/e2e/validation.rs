//! Writes to a resource served by a registered CRD: pruning with `fieldValidation`
//! (`Strict`, `Warn`, `Ignore`), OpenAPI type checks, and the status subresource.

use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams, ValidationDirective};
use serde_json::{Value, json};

use crate::common::{code, review_app, review_apps, start};
use crate::crd::{ESCAPED_RULE, review_app_crd};

const COLLECTION: &str = "/apis/reviewtron.k8s.revelry.co/v1/reviewapps";

/// POSTs `body` to the ReviewApp collection with `query`; the status code and every
/// `Warning` header.
async fn post(client: &kube::Client, query: &str, body: &Value) -> (u16, Vec<String>) {
    let request = http::Request::post(format!("{COLLECTION}{query}"))
        .header("content-type", "application/json")
        .body(kube::client::Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap();
    let response = client.send(request).await.unwrap();
    let warnings = response
        .headers()
        .get_all(http::header::WARNING)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    (response.status().as_u16(), warnings)
}

/// A ReviewApp with unknown fields under non-preserving nodes (`spec`, `spec.config.database`)
/// and under the preserving `spec.config`.
fn with_unknown_fields(name: &str) -> Value {
    review_app(
        name,
        json!({"spec": {"bogus": 1, "config": {
            "namespace": "ns", "baseApp": "base", "envSecret": "s",
            "database": {"backend": "cnpg", "extra": true},
        }}}),
    )
}

fn stored(handle: &reviewapp_testkit::Handle, name: &str) -> Option<Value> {
    handle.get(&format!("{COLLECTION}/{name}"))
}

#[tokio::test]
async fn strict_refuses_unknown_fields_naming_every_one() {
    let (_emulator, client, handle) = start().await;
    handle.create(review_app_crd(ESCAPED_RULE)).unwrap();
    let apps: Api<DynamicObject> = Api::all_with(client.clone(), &review_apps());

    let (status, _) = post(
        &client,
        "?fieldValidation=Strict",
        &with_unknown_fields("a"),
    )
    .await;
    assert_eq!(status, 400);
    assert!(stored(&handle, "a").is_none(), "nothing stored");
    let err = apps
        .patch(
            "a",
            &PatchParams::apply("kubectl").validation_strict(),
            &Patch::Apply(with_unknown_fields("a")),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = &err else {
        panic!("not an API error: {err:?}")
    };
    assert_eq!(status.code, 400);
    assert_eq!(status.reason, "BadRequest");
    assert_eq!(
        status.message,
        "strict decoding error: unknown field \"spec.bogus\", unknown field \"spec.config.database.extra\""
    );
    assert!(stored(&handle, "a").is_none(), "nothing stored");

    // Unknown fields in a merge patch of an existing object, too.
    apps.create(
        &PostParams::default(),
        &serde_json::from_value(review_app("b", json!({}))).unwrap(),
    )
    .await
    .unwrap();
    let err = apps
        .patch(
            "b",
            &PatchParams::default().validation(ValidationDirective::Strict),
            &Patch::Merge(json!({"spec": {"branch": "main", "commitHash": "x"}})),
        )
        .await
        .unwrap_err();
    assert_eq!(code(&err), 400);
    assert_eq!(stored(&handle, "b").unwrap()["spec"]["commitHash"], "abc");
}

#[tokio::test]
async fn warn_prunes_with_a_warning_per_field_and_ignore_prunes_silently() {
    let (_emulator, client, handle) = start().await;
    handle.create(review_app_crd(ESCAPED_RULE)).unwrap();

    // `Warn` is the default.
    let (status, warnings) = post(&client, "", &with_unknown_fields("warned")).await;
    assert_eq!(status, 201);
    assert_eq!(
        warnings,
        vec![
            r#"299 - "unknown field \"spec.bogus\"""#,
            r#"299 - "unknown field \"spec.config.database.extra\"""#,
        ]
    );
    let (status, explicit) =
        post(&client, "?fieldValidation=Warn", &with_unknown_fields("w2")).await;
    assert_eq!((status, explicit.len()), (201, 2));

    let (status, warnings) = post(
        &client,
        "?fieldValidation=Ignore",
        &with_unknown_fields("quiet"),
    )
    .await;
    assert_eq!(status, 201);
    assert!(warnings.is_empty(), "{warnings:?}");

    for name in ["warned", "quiet"] {
        let spec = &stored(&handle, name).unwrap()["spec"];
        assert!(spec.get("bogus").is_none(), "{name}: {spec}");
        assert_eq!(
            spec["config"]["database"],
            json!({"backend": "cnpg"}),
            "{name}"
        );
        // Unknown fields under the preserving `spec.config` are kept.
        assert_eq!(spec["config"]["baseApp"], "base", "{name}");
        assert_eq!(spec["config"]["envSecret"], "s", "{name}");
    }

    // Only preserved unknown fields: no warning at all.
    let (status, warnings) = post(
        &client,
        "",
        &review_app(
            "kept",
            json!({"spec": {"config": {"baseApp": "b", "anything": {"deep": [1]}}}}),
        ),
    )
    .await;
    assert_eq!(status, 201);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(
        stored(&handle, "kept").unwrap()["spec"]["config"]["anything"],
        json!({"deep": [1]})
    );

    let (status, _) = post(
        &client,
        "?fieldValidation=Loose",
        &review_app("bad", json!({})),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn values_of_the_wrong_type_answer_422_naming_the_field() {
    let (_emulator, client, handle) = start().await;
    handle.create(review_app_crd(ESCAPED_RULE)).unwrap();
    let apps: Api<DynamicObject> = Api::all_with(client, &review_apps());
    let create = |body: Value| {
        let apps = apps.clone();
        async move {
            apps.create(
                &PostParams::default(),
                &serde_json::from_value(body).unwrap(),
            )
            .await
        }
    };

    let err = create(review_app(
        "port",
        json!({"spec": {"config": {"applicationPort": "8080"}}}),
    ))
    .await
    .unwrap_err();
    let kube::Error::Api(status) = &err else {
        panic!("not an API error: {err:?}")
    };
    assert_eq!(status.code, 422);
    assert!(
        status.message.contains(
            "spec.config.applicationPort: Invalid value: \"string\": spec.config.applicationPort in body must be of type integer: \"string\""
        ),
        "{}",
        status.message
    );
    let cause = &status.details.as_ref().unwrap().causes[0];
    assert_eq!(cause.field, "spec.config.applicationPort");
    assert_eq!(cause.reason, "FieldValueTypeInvalid");
    assert!(stored(&handle, "port").is_none());

    for (name, spec, field) in [
        ("pr", json!({"pr": true}), "spec.pr"),
        ("repo", json!({"repo": 7}), "spec.repo"),
        (
            "db",
            json!({"config": {"database": "cnpg"}}),
            "spec.config.database",
        ),
    ] {
        let err = create(review_app(name, json!({ "spec": spec })))
            .await
            .unwrap_err();
        assert_eq!(code(&err), 422, "{name}");
        let kube::Error::Api(status) = &err else {
            panic!("not an API error")
        };
        assert!(
            status.message.contains(&format!("{field}: Invalid value")),
            "{}",
            status.message
        );
    }
    // `null` for a nullable field is fine; the right types pass.
    create(review_app("ok", json!({"spec": {"commitHash": null, "config": {"applicationPort": 8080, "namespace": null}}})))
        .await
        .unwrap();
    assert_eq!(
        stored(&handle, "ok").unwrap()["spec"]["config"]["applicationPort"],
        8080
    );
}

#[tokio::test]
async fn the_status_subresource_validates_the_status() {
    let (_emulator, client, handle) = start().await;
    handle.create(review_app_crd(ESCAPED_RULE)).unwrap();
    let apps: Api<DynamicObject> = Api::all_with(client, &review_apps());
    apps.create(
        &PostParams::default(),
        &serde_json::from_value(review_app("app", json!({}))).unwrap(),
    )
    .await
    .unwrap();
    let status = |body: Value| Patch::Merge(json!({ "status": body }));
    let err = apps
        .patch_status(
            "app",
            &PatchParams::default(),
            &status(json!({"observedGeneration": "one"})),
        )
        .await
        .unwrap_err();
    assert_eq!(code(&err), 422);
    let written = apps
        .patch_status(
            "app",
            &PatchParams::default(),
            &status(json!({"appStatus": "building", "observedGeneration": 1, "invented": 1})),
        )
        .await
        .unwrap();
    assert_eq!(
        written.data["status"],
        json!({"appStatus": "building", "observedGeneration": 1})
    );

    // The handle validates too, strictly: a test cannot seed what the server would not store.
    let err = handle
        .set_status(&format!("{COLLECTION}/app"), json!({"invented": 1}))
        .unwrap_err();
    assert_eq!(err.code, 400);
    let err = handle
        .create(review_app(
            "seeded",
            json!({"status": {"observedGeneration": "x"}}),
        ))
        .unwrap_err();
    assert_eq!(err.code, 422);
}

#[tokio::test]
async fn resources_without_a_crd_store_what_they_are_sent() {
    let (_emulator, client, handle) = start().await;
    handle.create(review_app_crd(ESCAPED_RULE)).unwrap();
    // Another version of the group has no schema: nothing is checked there.
    let request =
        http::Request::post("/apis/reviewtron.k8s.revelry.co/v2/reviewapps?fieldValidation=Strict")
            .header("content-type", "application/json")
            .body(kube::client::Body::from(
                serde_json::to_vec(
                    &json!({"apiVersion": "reviewtron.k8s.revelry.co/v2", "kind": "ReviewApp",
                "metadata": {"name": "loose"}, "spec": {"anything": {"goes": 1}}}),
                )
                .unwrap(),
            ))
            .unwrap();
    let response = client.send(request).await.unwrap();
    assert_eq!(response.status().as_u16(), 201);
    assert!(response.headers().get(http::header::WARNING).is_none());
    assert_eq!(
        handle
            .get("/apis/reviewtron.k8s.revelry.co/v2/reviewapps/loose")
            .unwrap()["spec"]["anything"]["goes"],
        1
    );
}
