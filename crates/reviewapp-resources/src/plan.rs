//! The plan: what the effects layer executes, in order, and [`render`], which makes it from
//! the intents of a transition.

use reviewapp_api::names::AppNames;
use reviewapp_api::{OperatorConfig, ReviewApp, ValidatedSpec};
use reviewapp_state::{EventNote, Intent, Phase, TearDown};
use serde::Serialize;
use serde_json::Value;

use crate::child::{ChildKind, ChildRef};
use crate::database::{self, DatabaseObject};
use crate::{activator_route, build_job, db_copy, deployment, ingress, service, tls_secret};

/// A rendered object, ready for server-side apply (`apiVersion`, `kind` and `metadata` set).
#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    /// Which object it is.
    pub child: ChildRef,
    /// The full object.
    pub object: Value,
}

/// One step of a plan.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Add the operator's finalizer to the `ReviewApp`.
    AddFinalizer,
    /// Server-side apply this object.
    Apply(Manifest),
    /// Create this build Job unless one of that name exists (a Job's pod template is immutable,
    /// so an existing one is adopted, never re-applied).
    CreateJob(Manifest),
    /// Read the Secret `source` (namespace, name), copy its `type` and `data` into `target`, and
    /// server-side apply the result.
    CopySecret {
        /// Namespace and name of the source Secret.
        source: (String, String),
        /// The Secret to apply, with metadata and without data.
        target: Manifest,
    },
    /// Delete this object (Background propagation; absent counts as done).
    Delete(ChildRef),
    /// Remove the operator's build-outcome finalizer from this build Job (absent Job or
    /// finalizer counts as done). A Job being deleted goes with it.
    ReleaseJob(ChildRef),
    /// Remove the operator's finalizer from the `ReviewApp`.
    RemoveFinalizer,
    /// Record a Kubernetes Event on the `ReviewApp`.
    Event(EventNote),
}

/// Everything to do for one transition, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// The steps.
    pub actions: Vec<Action>,
}

/// An intent that cannot be rendered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    /// The intent needs a validated spec and none was given (a bug in the caller).
    #[error("intent {0} needs a validated spec")]
    NeedsSpec(&'static str),
    /// An object (`kind` `name`) could not be turned into JSON (not expected for these types).
    #[error("cannot serialise {kind} {name}: {message}")]
    #[allow(missing_docs)] // the object's kind and name, and the serialiser's message
    Serialize {
        kind: &'static str,
        name: String,
        message: String,
    },
}

impl Manifest {
    /// Serialises `object` (which carries its own `apiVersion`, `kind` and `metadata`) as the
    /// manifest of `child`.
    pub fn new<T: Serialize>(child: ChildRef, object: &T) -> Result<Self, RenderError> {
        let object = serde_json::to_value(object).map_err(|e| RenderError::Serialize {
            kind: child.kind.kind(),
            name: child.name.clone(),
            message: e.to_string(),
        })?;
        Ok(Self { child, object })
    }
}

impl Action {
    /// The object this action creates or applies, if any.
    pub fn applied(&self) -> Option<&ChildRef> {
        match self {
            Action::Apply(manifest) | Action::CreateJob(manifest) => Some(&manifest.child),
            Action::CopySecret { target, .. } => Some(&target.child),
            _ => None,
        }
    }

    /// The object this action deletes, if any.
    pub fn deleted(&self) -> Option<&ChildRef> {
        match self {
            Action::Delete(child) => Some(child),
            _ => None,
        }
    }

    /// One line for people: `apply Deployment test-review-app/test-review-app-678`.
    pub fn describe(&self) -> String {
        let at = |c: &ChildRef| format!("{} {}/{}", c.kind.kind(), c.namespace, c.name);
        match self {
            Action::AddFinalizer => "add finalizer".to_string(),
            Action::RemoveFinalizer => "remove finalizer".to_string(),
            Action::Apply(m) => format!("apply {}", at(&m.child)),
            Action::CreateJob(m) => format!("create {}", at(&m.child)),
            Action::CopySecret {
                source: (ns, name),
                target,
            } => {
                format!("copy Secret {ns}/{name} to {}", at(&target.child))
            }
            Action::Delete(child) => format!("delete {}", at(child)),
            Action::ReleaseJob(child) => format!("release {}", at(child)),
            Action::Event(note) => format!("event {:?} {}", note.kind, note.reason),
        }
    }
}

impl Plan {
    /// Every object the plan creates or applies, in order.
    pub fn applied(&self) -> Vec<ChildRef> {
        self.actions
            .iter()
            .filter_map(Action::applied)
            .cloned()
            .collect()
    }

    /// Every object the plan deletes, in order.
    pub fn deleted(&self) -> Vec<ChildRef> {
        self.actions
            .iter()
            .filter_map(Action::deleted)
            .cloned()
            .collect()
    }
}

/// Every child an app in `namespace` named by `names` can have (build Jobs excepted), in the
/// order they are created: the database-copy Secret, the TLS Secret copy, the database of each
/// backend, the Service, the Deployment, the `ExternalName` Service naming the activator (while
/// the app sleeps or wakes) and the Ingress. Teardown deletes all of them.
pub fn all_children(namespace: &str, names: &AppNames) -> Vec<ChildRef> {
    vec![
        ChildRef::new(ChildKind::Secret, namespace, &names.db_copy_secret),
        ChildRef::new(ChildKind::Secret, namespace, &names.tls_secret),
        ChildRef::new(ChildKind::KubedbPostgres, namespace, &names.database),
        ChildRef::new(ChildKind::CnpgCluster, namespace, &names.database),
        ChildRef::new(ChildKind::Service, namespace, &names.app),
        ChildRef::new(ChildKind::Deployment, namespace, &names.app),
        ChildRef::new(ChildKind::Service, namespace, &names.activator),
        ChildRef::new(ChildKind::Ingress, namespace, &names.app),
    ]
}

/// The build Job `name` in the build namespace.
pub fn build_job_ref(config: &OperatorConfig, name: &str) -> ChildRef {
    ChildRef::new(ChildKind::Job, &config.build_namespace, name)
}

/// `StartBuild`: create the build Job (an existing Job of that name is adopted by the effects
/// layer: a Job's pod template is immutable, so it is never re-applied).
pub fn start_build(
    app: &ReviewApp,
    spec: &ValidatedSpec,
    config: &OperatorConfig,
    job_name: &str,
    commit: &str,
    image: &str,
) -> Result<Action, RenderError> {
    let job = build_job::build_job(app, spec, config, job_name, commit, image);
    Ok(Action::CreateJob(Manifest::new(
        build_job_ref(config, job_name),
        &job,
    )?))
}

/// `ApplyChildren`: every child the spec wants, in an order where nothing refers to an object
/// not yet applied (the original created the database before its init Secret): database-copy Secret, TLS Secret copy, database,
/// Service, Deployment (at `replicas`, running `image`), Ingress.
pub fn apply_children(
    app: &ReviewApp,
    spec: &ValidatedSpec,
    config: &OperatorConfig,
    replicas: i32,
    image: &str,
) -> Result<Vec<Action>, RenderError> {
    apply_children_in(app, spec, config, replicas, image, Phase::Serving)
}

/// [`apply_children`] in `phase`: while the app sleeps or wakes, the `ExternalName` Service
/// naming the activator is applied before the Ingress, which sends requests to it; while it
/// sleeps, its database is halted too ([`activator_route`]).
pub fn apply_children_in(
    app: &ReviewApp,
    spec: &ValidatedSpec,
    config: &OperatorConfig,
    replicas: i32,
    image: &str,
    phase: Phase,
) -> Result<Vec<Action>, RenderError> {
    let names = &spec.names;
    let ns = spec.namespace.as_str();
    let mut actions = Vec::new();
    if let Some(secret) = db_copy::db_copy_secret(app, spec) {
        let child = ChildRef::new(ChildKind::Secret, ns, &names.db_copy_secret);
        actions.push(Action::Apply(Manifest::new(child, &secret)?));
    }
    if let (Some(source), Some(secret)) = (
        tls_secret::tls_source(config),
        tls_secret::tls_secret(app, spec, config),
    ) {
        let child = ChildRef::new(ChildKind::Secret, ns, &names.tls_secret);
        actions.push(Action::CopySecret {
            source,
            target: Manifest::new(child, &secret)?,
        });
    }
    if let Some(db) = database::database(app, spec, config) {
        let child = ChildRef::new(db.kind(), ns, &names.database);
        let mut manifest = match &db {
            DatabaseObject::Kubedb(postgres) => Manifest::new(child, postgres)?,
            DatabaseObject::Cnpg(cluster) => Manifest::new(child, cluster)?,
        };
        if phase.database_halted() {
            activator_route::halt_database(db.kind(), &mut manifest.object);
        }
        actions.push(Action::Apply(manifest));
    }
    let service = service::service(app, spec);
    actions.push(Action::Apply(Manifest::new(
        ChildRef::new(ChildKind::Service, ns, &names.app),
        &service,
    )?));
    let deployment = deployment::deployment(app, spec, config, replicas, image);
    actions.push(Action::Apply(Manifest::new(
        ChildRef::new(ChildKind::Deployment, ns, &names.app),
        &deployment,
    )?));
    let ingress = ingress::ingress(app, spec, config);
    let mut ingress = Manifest::new(ChildRef::new(ChildKind::Ingress, ns, &names.app), &ingress)?;
    if phase.routes_to_activator() {
        let route = activator_route::activator_service(app, spec, config);
        actions.push(Action::Apply(Manifest::new(
            ChildRef::new(ChildKind::Service, ns, &names.activator),
            &route,
        )?));
        activator_route::route_to_activator(&mut ingress.object, spec, config);
    }
    actions.push(Action::Apply(ingress));
    Ok(actions)
}

/// Deletes of every child of the app that `applied` (the children the current spec wants) does
/// not contain: the other backend's database, the database-copy Secret when nothing is copied,
/// the TLS Secret when TLS is off. Latest-created first. The `ExternalName` Service naming the
/// activator is not the spec's to want: it goes when the app is awake again
/// ([`Intent::RemoveActivatorRoute`]).
pub fn prune(spec: &ValidatedSpec, applied: &[ChildRef]) -> Vec<Action> {
    all_children(&spec.namespace, &spec.names)
        .into_iter()
        .rev()
        .filter(|child| !applied.contains(child))
        .filter(|child| !(child.kind == ChildKind::Service && child.name == spec.names.activator))
        .map(Action::Delete)
        .collect()
}

/// `TearDown`: delete and release each build Job, then delete every possible child,
/// latest-created first. Needs nothing but the teardown's own names and the build namespace;
/// deleting an object (or a kind) that does not exist counts as done.
pub fn tear_down(teardown: &TearDown, config: &OperatorConfig) -> Vec<Action> {
    let mut actions: Vec<Action> = Vec::new();
    for job in &teardown.build_jobs {
        let job = build_job_ref(config, job);
        let delete = Action::Delete(job.clone());
        if !actions.contains(&delete) {
            actions.push(delete);
            actions.push(Action::ReleaseJob(job));
        }
    }
    if let Some((namespace, names)) = &teardown.children {
        actions.extend(
            all_children(namespace, names)
                .into_iter()
                .rev()
                .map(Action::Delete),
        );
    }
    actions
}

/// Renders `intents` for `app` into a plan. `spec` is the validated spec (absent only for an app
/// that failed validation, whose only renderable intents are teardown, finalizers and events).
pub fn render(
    app: &ReviewApp,
    spec: Option<&ValidatedSpec>,
    config: &OperatorConfig,
    intents: &[Intent],
) -> Result<Plan, RenderError> {
    let mut actions = Vec::new();
    for intent in intents {
        match intent {
            Intent::AddFinalizer => actions.push(Action::AddFinalizer),
            Intent::RemoveFinalizer => actions.push(Action::RemoveFinalizer),
            Intent::Event(note) => actions.push(Action::Event(note.clone())),
            Intent::DeleteBuildJob { name } => {
                actions.push(Action::Delete(build_job_ref(config, name)))
            }
            Intent::ReleaseBuildJob { name } => {
                actions.push(Action::ReleaseJob(build_job_ref(config, name)))
            }
            Intent::StartBuild {
                job_name,
                commit,
                image,
            } => {
                let spec = spec.ok_or(RenderError::NeedsSpec("StartBuild"))?;
                actions.push(start_build(app, spec, config, job_name, commit, image)?);
            }
            Intent::ApplyChildren {
                replicas,
                image,
                prune: prune_unwanted,
                phase,
            } => {
                let spec = spec.ok_or(RenderError::NeedsSpec("ApplyChildren"))?;
                let children = apply_children_in(app, spec, config, *replicas, image, *phase)?;
                let applied: Vec<ChildRef> = children
                    .iter()
                    .filter_map(Action::applied)
                    .cloned()
                    .collect();
                actions.extend(children);
                if *prune_unwanted {
                    actions.extend(prune(spec, &applied));
                }
            }
            Intent::TearDown(teardown) => actions.extend(tear_down(teardown, config)),
            Intent::RemoveActivatorRoute => {
                let spec = spec.ok_or(RenderError::NeedsSpec("RemoveActivatorRoute"))?;
                actions.push(Action::Delete(ChildRef::new(
                    ChildKind::Service,
                    &spec.namespace,
                    &spec.names.activator,
                )));
            }
        }
    }
    Ok(Plan { actions })
}
