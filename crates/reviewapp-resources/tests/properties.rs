//! Properties over many specs: whatever `ApplyChildren` applies, `TearDown` deletes, and a
//! pruning apply accounts for every possible child exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;

use common::*;
use proptest::prelude::*;
use reviewapp_api::spec::{CopyFrom, Database, Migrate, SecretRef, ValueSpec};
use reviewapp_api::validate;
use reviewapp_resources::{Action, ChildKind, ChildRef, all_children, render};
use reviewapp_state::{Intent, Phase, TearDown};

#[derive(Clone, Debug)]
enum Copy {
    None,
    PartsWithSecretPassword,
    PartsWithLiteralPassword,
    LiteralUrl,
    UrlSecret,
}

fn copy_from(copy: &Copy) -> Option<CopyFrom> {
    let secret = |name: &str, key: &str| {
        Some(ValueSpec {
            value: None,
            secret_ref: Some(SecretRef {
                name: name.into(),
                key: key.into(),
                ..SecretRef::default()
            }),
            ..ValueSpec::default()
        })
    };
    let parts = |password| CopyFrom {
        host: literal("db.example"),
        database: literal("shop"),
        user: literal("reader"),
        password,
        ..CopyFrom::default()
    };
    match copy {
        Copy::None => None,
        Copy::PartsWithSecretPassword => Some(parts(secret("src", "PASSWORD"))),
        Copy::PartsWithLiteralPassword => Some(parts(literal("p:w"))),
        Copy::LiteralUrl => Some(CopyFrom {
            database_url: literal("postgres://u:p@h:5433/d"),
            ..CopyFrom::default()
        }),
        Copy::UrlSecret => Some(CopyFrom {
            database_url: secret("src", "URL"),
            ..CopyFrom::default()
        }),
    }
}

fn copy_strategy() -> impl Strategy<Value = Copy> {
    prop_oneof![
        Just(Copy::None),
        Just(Copy::PartsWithSecretPassword),
        Just(Copy::PartsWithLiteralPassword),
        Just(Copy::LiteralUrl),
        Just(Copy::UrlSecret),
    ]
}

proptest! {
    #[test]
    fn teardown_covers_everything_apply_children_creates(
        repo in "[a-zA-Z0-9_ .-]{1,80}",
        pr in "[0-9]{1,12}",
        namespace in "[a-z][a-z0-9-]{0,20}[a-z0-9]",
        backend in prop_oneof![Just(None), Just(Some("kubedb")), Just(Some("cnpg"))],
        copy in copy_strategy(),
        tls in any::<bool>(),
        migrate in any::<bool>(),
        replicas in 0..=1i32,
        uid in any::<bool>(),
        phase in prop_oneof![Just(Phase::Serving), Just(Phase::Waking), Just(Phase::Sleeping)],
    ) {
        let mut app = app();
        app.spec.repo = Some(repo);
        app.spec.pr = Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(pr));
        if !uid {
            app.metadata.uid = None;
        }
        let raw = app.spec.config.as_mut().unwrap();
        raw.namespace = Some(namespace.clone());
        raw.migrate = migrate.then(|| Migrate { command: Some(vec!["migrate".into()]), ..Migrate::default() });
        raw.database = backend.map(|backend| Database {
            backend: Some(backend.into()),
            copy_from: copy_from(&copy),
            ..Database::default()
        });
        let mut config = config();
        if !tls {
            config.tls.secret_name.clear();
        }
        // Some combinations are invalid by design (a URL Secret for cnpg): those render nothing.
        let spec = validate(&app.spec, &config);
        prop_assume!(spec.is_ok());
        let spec = spec.unwrap();
        let jobs = vec![spec.names.build_job(SHA)];
        let intents = [
            Intent::StartBuild { job_name: jobs[0].clone(), commit: SHA.into(), image: IMAGE.into() },
            Intent::ApplyChildren { replicas, image: IMAGE.into(), prune: true, phase },
        ];
        let plan = render(&app, Some(&spec), &config, &intents).unwrap();
        let teardown = render(
            &app,
            None,
            &config,
            &[Intent::TearDown(TearDown { children: Some((namespace.clone(), spec.names.clone())), build_jobs: jobs })],
        )
        .unwrap();

        let applied: BTreeSet<ChildRef> = plan.applied().into_iter().collect();
        let deleted: BTreeSet<ChildRef> = teardown.deleted().into_iter().collect();
        prop_assert!(applied.is_subset(&deleted), "applied but never torn down: {:?}", applied.difference(&deleted).collect::<Vec<_>>());

        // The pruning apply accounts for every possible child exactly once.
        let pruned: BTreeSet<ChildRef> = plan.deleted().into_iter().collect();
        prop_assert!(pruned.is_disjoint(&applied));
        // (The activator route is the sleep cycle's: applied while asleep or waking, never pruned.)
        let route = ChildRef::new(ChildKind::Service, &namespace, &spec.names.activator);
        let children: BTreeSet<ChildRef> = all_children(&namespace, &spec.names)
            .into_iter()
            .filter(|child| *child != route || phase.routes_to_activator())
            .collect();
        let accounted: BTreeSet<ChildRef> = applied.iter().filter(|c| c.kind != ChildKind::Job).chain(&pruned).cloned().collect();
        prop_assert_eq!(accounted, children);

        // Every manifest is named as its ref says, and owned only when the app has a uid.
        for action in &plan.actions {
            let (Action::Apply(m) | Action::CreateJob(m) | Action::CopySecret { target: m, .. }) = action else { continue };
            prop_assert_eq!(&m.object["metadata"]["name"], &serde_json::Value::from(m.child.name.clone()));
            prop_assert_eq!(m.object["metadata"].get("ownerReferences").is_some(), uid);
        }
    }
}
