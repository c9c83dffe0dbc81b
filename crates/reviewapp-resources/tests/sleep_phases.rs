//! Sleeping and waking apps: where the Ingress sends requests, the `ExternalName` Service that
//! names the activator, and the halted database.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use reviewapp_api::OperatorConfig;
use reviewapp_api::spec::Database;
use reviewapp_resources::{Action, ChildKind, ChildRef, Plan, render};
use reviewapp_state::{Intent, Phase};
use serde_json::{Value, json};

const NS: &str = "test-review-app";
const ROUTE: &str = "test-review-app-678--activator";

fn plan(phase: Phase, backend: Option<&str>) -> Plan {
    let mut app = app();
    if let Some(backend) = backend {
        app.spec.config.as_mut().unwrap().database = Some(Database {
            backend: Some(backend.into()),
            ..Database::default()
        });
    }
    let mut config = OperatorConfig {
        registry: "grossvogel".into(),
        ..OperatorConfig::default()
    };
    config.activator.namespace = "ops".into();
    config.activator.port = 8080;
    let spec = spec(&app, &config);
    render(
        &app,
        Some(&spec),
        &config,
        &[Intent::ApplyChildren {
            replicas: 0,
            image: "img:1".into(),
            prune: false,
            phase,
        }],
    )
    .unwrap()
}

fn backend_service(plan: &Plan) -> Value {
    manifest(plan, ChildKind::Ingress, "test-review-app-678").object["spec"]["rules"][0]["http"]
        ["paths"][0]["backend"]["service"]
        .clone()
}

#[test]
fn a_serving_app_routes_to_its_own_service_and_has_no_activator_route() {
    let plan = plan(Phase::Serving, None);
    assert_eq!(backend_service(&plan)["name"], "test-review-app-678");
    assert!(
        !plan
            .applied()
            .contains(&ChildRef::new(ChildKind::Service, NS, ROUTE))
    );
}

#[test]
fn sleeping_and_waking_apps_route_to_the_activator_through_an_external_name_service() {
    for phase in [Phase::Sleeping, Phase::Waking] {
        let plan = plan(phase, None);
        assert_eq!(
            backend_service(&plan),
            json!({"name": ROUTE, "port": {"number": 8080}}),
            "{phase:?}"
        );
        let route = manifest(&plan, ChildKind::Service, ROUTE);
        assert_eq!(route.object["spec"]["type"], "ExternalName");
        assert_eq!(
            route.object["spec"]["externalName"],
            "review-app-operator-activator.ops.svc.cluster.local"
        );
        assert_eq!(
            route.object["metadata"]["ownerReferences"][0]["kind"],
            "ReviewApp"
        );
        // The route exists before the Ingress names it.
        let applied = plan.applied();
        let at = |kind, name: &str| {
            applied
                .iter()
                .position(|c| c.kind == kind && c.name == name)
        };
        assert!(at(ChildKind::Service, ROUTE) < at(ChildKind::Ingress, "test-review-app-678"));
    }
}

#[test]
fn only_a_sleeping_app_halts_its_database() {
    let db = "test-review-app-678--db";
    for (phase, halted) in [
        (Phase::Sleeping, true),
        (Phase::Waking, false),
        (Phase::Serving, false),
    ] {
        let kubedb = plan(phase, Some("kubedb"));
        let postgres = &manifest(&kubedb, ChildKind::KubedbPostgres, db).object;
        assert_eq!(
            postgres["spec"]["halted"].as_bool().unwrap_or(false),
            halted,
            "{phase:?}"
        );
        let cnpg = plan(phase, Some("cnpg"));
        let cluster = &manifest(&cnpg, ChildKind::CnpgCluster, db).object;
        assert_eq!(
            cluster["metadata"]["annotations"]["cnpg.io/hibernation"] == "on",
            halted,
            "{phase:?}"
        );
    }
}

#[test]
fn the_activator_route_goes_once_the_app_is_awake_and_is_never_pruned() {
    let app = app();
    let config = OperatorConfig::default();
    let spec = spec(&app, &config);
    let plan = render(&app, Some(&spec), &config, &[Intent::RemoveActivatorRoute]).unwrap();
    assert_eq!(
        plan.actions,
        [Action::Delete(ChildRef::new(ChildKind::Service, NS, ROUTE))]
    );
    let pruned = apply_plan(&app, &config, 1, "img:1", true);
    assert!(
        !pruned
            .deleted()
            .contains(&ChildRef::new(ChildKind::Service, NS, ROUTE))
    );
}
