//! The world the end-to-end scenarios run in: a Kubernetes API (the in-process emulator, or a
//! real cluster named by `REVIEWAPP_E2E_KUBECONFIG`), the real daemon running in this process
//! (stoppable and restartable), and helpers to act and to wait for convergence.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::CustomResourceExt;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use reviewapp_api::{OperatorConfig, ReviewApp};
use reviewapp_daemon::DaemonOptions;
use reviewapp_daemon::activator::ActivatorOptions;
use reviewapp_resources::ChildKind;
use reviewapp_testkit::{Emulator, Handle};
use serde_json::{Value, json};

/// How long a scenario waits for the operator to converge before failing.
pub const CONVERGE: Duration = Duration::from_secs(20);

/// The namespace the sample app lives in, and the build namespace.
pub const APP_NS: &str = "test-review-app";
pub const BUILD_NS: &str = "review-build";

/// The operator configuration every scenario uses.
pub fn config() -> OperatorConfig {
    let mut config = OperatorConfig {
        registry: "registry.example/review".into(),
        build_namespace: BUILD_NS.into(),
        reconcile_interval_seconds: 1,
        ..OperatorConfig::default()
    };
    config.tls.secret_name = "star-review-local-tls".into();
    config.tls.secret_namespace = "default".into();
    config
}

/// Header marking the operator's requests to the emulator.
pub use reviewapp_testkit::ACTOR_HEADER;

fn operator_client(server: &Emulator) -> kube::Client {
    client_as(server, "operator")
}

/// A client of `server` whose requests the emulator logs as `actor`'s.
fn client_as(server: &Emulator, actor: &'static str) -> kube::Client {
    let mut config = kube::Config::new(server.url().parse().expect("emulator URL"));
    config.default_namespace = "default".into();
    config.headers.push((
        http::HeaderName::from_static(ACTOR_HEADER),
        http::HeaderValue::from_static(actor),
    ));
    kube::Client::try_from(config).expect("operator client")
}

/// A running daemon.
struct Daemon {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), reviewapp_daemon::DaemonError>>,
}

/// The API, the daemon and (with the emulator) its test handle.
pub struct World {
    /// The scenario's own client.
    pub client: kube::Client,
    /// The daemon's client: on the emulator it marks its requests with the header
    /// [`ACTOR_HEADER`], so that faults and write counts apply to the operator only.
    pub operator_client: kube::Client,
    pub emulator: Option<Handle>,
    _server: Option<Emulator>,
    daemon: Option<Daemon>,
    pub config: Arc<OperatorConfig>,
    /// Names of every ReviewApp the scenario created (cleaned up on a real cluster).
    created: Vec<String>,
}

impl World {
    /// A world on a fresh emulator, with the namespaces and the wildcard TLS Secret.
    pub async fn emulated() -> World {
        let server = Emulator::start().await.expect("the emulator starts");
        let world = World {
            client: server.client(),
            operator_client: operator_client(&server),
            emulator: Some(server.handle()),
            _server: Some(server),
            daemon: None,
            config: Arc::new(config()),
            created: Vec::new(),
        };
        world.prepare().await;
        world
    }

    /// A world on the real cluster named by `REVIEWAPP_E2E_KUBECONFIG`, or `None` (the caller
    /// prints that it skipped).
    pub async fn real() -> Option<World> {
        let path = std::env::var("REVIEWAPP_E2E_KUBECONFIG").ok()?;
        let kubeconfig = kube::config::Kubeconfig::read_from(&path)
            .expect("REVIEWAPP_E2E_KUBECONFIG is readable");
        let options = kube::config::KubeConfigOptions::default();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .expect("kubeconfig is usable");
        let client = kube::Client::try_from(config).expect("client");
        let world = World {
            operator_client: client.clone(),
            client,
            emulator: None,
            _server: None,
            daemon: None,
            config: Arc::new(self::config()),
            created: Vec::new(),
        };
        world.prepare().await;
        Some(world)
    }

    async fn prepare(&self) {
        // The CRD as the operator generates it: the emulator compiles its CEL rules (a rule that
        // does not compile is refused, as a real API server refuses it) and from then on prunes,
        // validates and enforces them on every ReviewApp write; a cluster gets the current one.
        self.apply(serde_json::to_value(ReviewApp::crd()).expect("the CRD serialises"))
            .await;
        for ns in [APP_NS, BUILD_NS] {
            self.apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
                .await;
        }
        // The sample's env Secrets (`env.secrets`), as the app's owners would create them.
        for name in ["secret-one", "secret-two"] {
            self.apply(json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": name, "namespace": APP_NS},
                "stringData": {"SAMPLE": name}
            }))
            .await;
        }
        self.apply(json!({
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": "star-review-local-tls", "namespace": "default"},
            "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}
        }))
        .await;
    }

    /// Server-side applies `object` as the scenario's own field manager.
    pub async fn apply(&self, object: Value) {
        let api = self.api_for(&object);
        let name = object["metadata"]["name"]
            .as_str()
            .expect("named")
            .to_string();
        api.patch(
            &name,
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(&object),
        )
        .await
        .unwrap_or_else(|e| panic!("applying {name}: {e}"));
    }

    fn api_for(&self, object: &Value) -> Api<DynamicObject> {
        let api_version = object["apiVersion"].as_str().expect("apiVersion");
        let kind = object["kind"].as_str().expect("kind");
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let plural = match kind {
            "Namespace" => "namespaces".to_string(),
            "ReviewApp" => "reviewapps".to_string(),
            other => format!("{}s", other.to_lowercase()),
        };
        let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
        let resource = kube::api::ApiResource::from_gvk_with_plural(&gvk, &plural);
        match object["metadata"]["namespace"].as_str() {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &resource),
            None => Api::all_with(self.client.clone(), &resource),
        }
    }

    /// Starts the daemon (in this process, against this world's API).
    pub async fn start(&mut self) {
        self.start_with(None);
    }

    /// Starts the daemon with its activator on a free loopback port, and returns that port's
    /// address once it listens.
    pub async fn start_with_activator(&mut self) -> std::net::SocketAddr {
        let activator = ActivatorOptions::new("127.0.0.1:0".parse().expect("address"));
        let bound = activator.bound.clone();
        self.start_with(Some(activator));
        let deadline = tokio::time::Instant::now() + CONVERGE;
        loop {
            if let Some(addr) = bound.get() {
                return *addr;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the activator did not listen within {CONVERGE:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn start_with(&mut self, activator: Option<ActivatorOptions>) {
        assert!(self.daemon.is_none(), "the daemon is already running");
        let options = DaemonOptions {
            concurrency: 4,
            listen: "127.0.0.1:0".parse().expect("address"),
            leader: None,
            shutdown_grace: Duration::from_secs(5),
            controller_name: "review-app-operator".into(),
            instance: Some("e2e".into()),
            listener: None,
            activator,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(reviewapp_daemon::run(
            self.operator_client.clone(),
            self.config.clone(),
            options,
            async move {
                let _ = stopped.await;
            },
            |_| {},
        ));
        self.daemon = Some(Daemon { stop, task });
    }

    /// On the emulator, a client whose requests are logged as `actor`'s (one per replica when
    /// several daemons run).
    pub fn client_as(&self, actor: &'static str) -> Option<kube::Client> {
        self._server.as_ref().map(|server| client_as(server, actor))
    }

    /// Stops the daemon gracefully and waits for it.
    pub async fn stop(&mut self) {
        let daemon = self.daemon.take().expect("the daemon is running");
        let _ = daemon.stop.send(());
        let result = tokio::time::timeout(Duration::from_secs(10), daemon.task)
            .await
            .expect("the daemon stops");
        result
            .expect("the daemon task did not panic")
            .expect("the daemon stopped cleanly");
    }

    /// Stops and starts the daemon.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.start().await;
    }

    /// Creates or updates a ReviewApp as `kubectl apply` does: with strict field validation, so
    /// a field the CRD does not declare is refused instead of pruned.
    pub async fn apply_app_strictly(&mut self, app: Value) -> Result<(), kube::Error> {
        let name = app["metadata"]["name"].as_str().expect("named").to_string();
        if !self.created.contains(&name) {
            self.created.push(name.clone());
        }
        let params = PatchParams::apply("kubectl-client-side-apply")
            .force()
            .validation(kube::api::ValidationDirective::Strict);
        self.apps()
            .patch(&name, &params, &Patch::Apply(&app))
            .await
            .map(|_| ())
    }

    /// Creates or updates a ReviewApp.
    pub async fn apply_app(&mut self, app: Value) {
        let name = app["metadata"]["name"].as_str().expect("named").to_string();
        if !self.created.contains(&name) {
            self.created.push(name);
        }
        self.apply(app).await;
    }

    pub fn apps(&self) -> Api<ReviewApp> {
        Api::all(self.client.clone())
    }

    pub async fn app(&self, name: &str) -> Option<ReviewApp> {
        self.apps().get_opt(name).await.expect("get ReviewApp")
    }

    pub async fn delete_app(&self, name: &str) {
        let _ = self.apps().delete(name, &DeleteParams::default()).await;
    }

    /// A new commit, as the component that creates ReviewApps would push it.
    pub async fn push(&self, name: &str, commit: &str) {
        self.apps()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"commitHash": commit}})),
            )
            .await
            .expect("patch commitHash");
    }

    pub fn jobs(&self) -> Api<Job> {
        Api::namespaced(self.client.clone(), BUILD_NS)
    }

    /// Reports a build Job's outcome through the status subresource (a test cluster may have no
    /// nodes, and the emulator runs no Job controller), stamped with the current time as the Job
    /// controller would: the TTL-after-finished controller counts `ttlSecondsAfterFinished` from
    /// it (a time in the past would have the Job deleted at once).
    pub async fn finish_job(&self, name: &str, success: bool) {
        let now = k8s_openapi::jiff::Timestamp::now()
            .round(k8s_openapi::jiff::Unit::Second)
            .expect("a whole second")
            .to_string();
        let status = if success {
            json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True",
                   "lastTransitionTime": now}]})
        } else {
            json!({"failed": 2, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                   "message": "Job has reached the specified backoff limit", "lastTransitionTime": now}]})
        };
        self.jobs()
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await
            .unwrap_or_else(|e| panic!("setting the status of Job {name}: {e}"));
    }

    /// Every object of every child kind labelled as the app's (`app.kubernetes.io/instance`), as
    /// `Kind namespace/name`, sorted. Kinds the cluster does not serve are skipped.
    pub async fn children(&self, app: &str) -> Vec<String> {
        let selector = format!(
            "app.kubernetes.io/instance={app},app.kubernetes.io/managed-by=review-app-operator"
        );
        let mut out = Vec::new();
        for kind in ChildKind::ALL {
            let gvk = kube::api::GroupVersionKind::gvk(kind.group(), kind.version(), kind.kind());
            let resource = kube::api::ApiResource::from_gvk_with_plural(&gvk, kind.plural());
            let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &resource);
            if let Ok(list) = api
                .list(&kube::api::ListParams::default().labels(&selector))
                .await
            {
                for item in list {
                    out.push(format!(
                        "{} {}/{}",
                        kind.kind(),
                        item.metadata.namespace.unwrap_or_default(),
                        item.metadata.name.unwrap_or_default()
                    ));
                }
            }
        }
        out.sort();
        out
    }

    pub async fn deployment(&self, name: &str) -> Option<Value> {
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            APP_NS,
            &kube::api::ApiResource::from_gvk_with_plural(
                &kube::api::GroupVersionKind::gvk("apps", "v1", "Deployment"),
                "deployments",
            ),
        );
        api.get_opt(name)
            .await
            .ok()
            .flatten()
            .map(|d| serde_json::to_value(d).expect("json"))
    }

    /// Removes every ReviewApp this scenario created (real clusters only need it) and stops the
    /// daemon if it runs.
    pub async fn cleanup(mut self) {
        if self.daemon.is_some() && self.emulator.is_none() {
            for name in self.created.clone() {
                self.delete_app(&name).await;
            }
            for name in self.created.clone() {
                let _ = eventually(&format!("{name} is deleted"), || async {
                    self.app(&name).await.is_none()
                })
                .await;
            }
        }
        if self.daemon.is_some() {
            self.stop().await;
        }
    }
}

/// Polls `check` until it holds, up to [`CONVERGE`]; panics naming `what` otherwise.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        if check().await {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("did not converge within {CONVERGE:?}: {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

impl World {
    /// Whether apps get a KubeDB database: always on the emulator; on a real cluster only with
    /// `REVIEWAPP_E2E_DATABASE=kubedb` (a test cluster usually has no KubeDB).
    pub fn with_database(&self) -> bool {
        self.emulator.is_some()
            || std::env::var("REVIEWAPP_E2E_DATABASE").is_ok_and(|v| v == "kubedb")
    }

    /// The sample ReviewApp (`dev/samples/reviewapp.yaml`) named `name`, for PR `pr`, at `commit`.
    pub fn sample(&self, name: &str, pr: &str, commit: &str) -> Value {
        let mut app: Value =
            serde_yaml::from_str(include_str!("../../../../dev/samples/reviewapp.yaml"))
                .expect("the sample parses");
        app["metadata"] = json!({"name": name});
        app["spec"]["pr"] = json!(pr);
        app["spec"]["commitHash"] = json!(commit);
        app.as_object_mut().expect("object").remove("status");
        if !self.with_database() {
            app["spec"]["config"]
                .as_object_mut()
                .expect("config")
                .remove("database");
        }
        app
    }
}
