//! The event sources: watches of ReviewApps, build Jobs and every child kind, and the tick,
//! feeding the per-app scheduler.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::Event;
use kube::runtime::{WatchStreamExt, watcher as watch};
use reviewapp_api::{OperatorConfig, ReviewApp};
use reviewapp_effects::Effects;
use reviewapp_resources::ChildKind;
use reviewapp_state::AppEvent;

use crate::build_jobs::owner;
use crate::classify::Classified;
use crate::handler::AppHandler;
use crate::health::Readiness;
use crate::live::{LiveObjects, MANAGED_SELECTOR, watch_config, watch_kind, watch_secrets};
use crate::metrics::Metrics;
use crate::scheduler::{Backoff, Scheduler};

/// The running controller: the handler, its scheduler and the stores the watches fill.
pub(crate) struct Controller {
    pub handler: Arc<AppHandler>,
    pub scheduler: Scheduler<AppEvent>,
    live: Arc<LiveObjects>,
    jobs: Store<Job>,
}

impl Controller {
    pub fn new(
        config: Arc<OperatorConfig>,
        effects: Effects,
        metrics: Arc<Metrics>,
        concurrency: usize,
        listener: Option<crate::handler::Listener>,
    ) -> (Self, reflector::store::Writer<Job>) {
        let (jobs, writer) = reflector::store::<Job>();
        let mut live = LiveObjects::new();
        if config.tls_enabled() {
            live = live.with_tls_source(&config.tls.secret_namespace, &config.tls.secret_name);
        }
        let live = Arc::new(live);
        let handler = Arc::new(
            AppHandler::new(config, effects, metrics.clone(), jobs.clone(), live.clone())
                .with_listener(listener),
        );
        let task_handler = handler.clone();
        let scheduler = Scheduler::new(
            concurrency,
            Backoff::new(Duration::from_secs(1), 2.0, Duration::from_secs(300)).with_jitter(0.2),
            move |name: String, event: AppEvent| {
                let handler = task_handler.clone();
                async move { handler.handle(name, event).await }
            },
        )
        .with_on_error(
            move |name: &str, event: &AppEvent, error: &str, attempt: u32, retry_in: Duration| {
                metrics
                    .handle_failures
                    .get_or_create(&Metrics::event_label(*event))
                    .inc();
                tracing::warn!(
                    app = name,
                    ?event,
                    attempt,
                    retry_in_secs = retry_in.as_secs_f64(),
                    error,
                    "handling failed; will retry"
                );
            },
        )
        // A failing event must not hold back a later DELETE of the same app.
        .with_supersede(|newer: &AppEvent, failed: &AppEvent| {
            newer == failed || *newer == AppEvent::Delete
        });
        (
            Self {
                handler,
                scheduler,
                live,
                jobs,
            },
            writer,
        )
    }

    /// Runs every watch and the tick until one of them ends (they do not, short of a bug).
    /// Dropping the future stops them all.
    pub async fn run(
        &self,
        client: kube::Client,
        jobs_writer: reflector::store::Writer<Job>,
        ready: Readiness,
    ) {
        let config = Arc::new(self.handler.config().clone());
        // Every task ends when this future is dropped (the set aborts them).
        let mut tasks = tokio::task::JoinSet::new();
        // Child caches (what exists), for the effects layer. The Secret cache also holds the
        // Secrets apps load into their environment: one appearing or going reconciles the apps
        // that load it, so a MissingSecrets condition follows at once.
        for kind in ChildKind::ALL {
            let cache = self.live.cache(kind);
            let handler = self.handler.clone();
            let scheduler = self.scheduler.clone();
            let stream = if kind == ChildKind::Secret {
                let allowed = config.clone();
                watch_secrets(client.clone(), move |ns| allowed.namespace_allowed(ns)).boxed()
            } else {
                watch_kind(client.clone(), kind).boxed()
            };
            tasks.spawn(async move {
                futures::pin_mut!(stream);
                while let Some(event) = stream.next().await {
                    for (namespace, name) in cache.apply(event) {
                        for app in handler.apps_using_secret(&namespace, &name) {
                            scheduler.submit(app, AppEvent::Reconcile);
                        }
                    }
                }
            });
        }

        // The TLS source Secret: a renewal reconciles every app, which copies it again.
        if let Some(tls) = self.live.tls_source() {
            let stream = tls.watch(client.clone());
            let handler = self.handler.clone();
            let scheduler = self.scheduler.clone();
            tasks.spawn(async move {
                futures::pin_mut!(stream);
                while let Some(event) = stream.next().await {
                    if tls.apply(event) {
                        tracing::info!("the TLS source Secret changed; reconciling every app");
                        for name in handler.names() {
                            scheduler.submit(name, AppEvent::Reconcile);
                        }
                    }
                }
            });
        }

        // Build Jobs: the store the handler observes; a change reconciles the owner at once.
        let jobs_api: Api<Job> = Api::namespaced(client.clone(), &config.build_namespace);
        let jobs_stream = watch(jobs_api, watch_config().labels(MANAGED_SELECTOR))
            .default_backoff()
            .modify(|job: &mut Job| {
                // Keep what observe_job and job_state read (status, completions, backoffLimit,
                // owner, finalizers, deletionTimestamp): the pod template and managed fields are
                // most of a Job's size.
                job.metadata.managed_fields = None;
                job.metadata.annotations = None;
                if let Some(spec) = job.spec.as_mut() {
                    spec.template = Default::default();
                }
            })
            .reflect(jobs_writer);
        let jobs_scheduler = self.scheduler.clone();
        let jobs_handler = self.handler.clone();
        tasks.spawn(async move {
            futures::pin_mut!(jobs_stream);
            while let Some(event) = jobs_stream.next().await {
                match event {
                    Ok(event @ (Event::Apply(_) | Event::Delete(_))) => {
                        let (Event::Apply(job) | Event::Delete(job)) = &event else {
                            continue;
                        };
                        if matches!(event, Event::Delete(_)) {
                            jobs_handler.job_gone(&job.metadata.name.clone().unwrap_or_default());
                        } else {
                            jobs_handler.job_changed(job);
                        }
                        if let Some(app) = owner(job) {
                            jobs_scheduler.submit(app, AppEvent::Reconcile);
                        }
                    }
                    // Listed: remembered (a Job being deleted and held), handled once the apps
                    // are listed too.
                    Ok(Event::InitApply(job)) => jobs_handler.job_changed(&job),
                    Ok(_) => {}
                    Err(err) => tracing::warn!(error = %err, "build Job watch error; retrying"),
                }
            }
        });

        // Wait for the caches the handler reads before handling anything: an app handled before
        // its Job is known would look like a vanished build.
        let _ = self.jobs.wait_until_ready().await;
        while !self.live.core_synced() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        // ReviewApps: classified into ADD / MODIFY / DELETE.
        let apps: Api<DeserializeGuard<ReviewApp>> = Api::all(client.clone());
        let app_stream = watch(apps, watch_config())
            .default_backoff()
            // Managed fields are never read and are a large share of each object.
            .modify(|guard: &mut DeserializeGuard<ReviewApp>| {
                if let Ok(app) = guard.0.as_mut() {
                    app.metadata.managed_fields = None;
                }
            });
        let handler = self.handler.clone();
        let scheduler = self.scheduler.clone();
        let apps_ready = ready.clone();
        tasks.spawn(async move {
            futures::pin_mut!(app_stream);
            while let Some(event) = app_stream.next().await {
                let event = match event {
                    Ok(event) => event,
                    Err(err) => {
                        tracing::warn!(error = %err, "ReviewApp watch error; retrying");
                        continue;
                    }
                };
                let synced = matches!(event, Event::InitDone);
                for item in handler.observe_all(event) {
                    match item {
                        Classified::App { name, event, .. } => scheduler.submit(name, event),
                        Classified::Malformed { name, error } => {
                            handler.report_malformed(&name, &error).await
                        }
                    }
                }
                if synced {
                    apps_ready.set(true);
                    handler.count_apps();
                    // Build Jobs being deleted and held: their apps (or, for an app that is
                    // gone, its name) release the ones nobody waits for.
                    for app in handler.apps_listed() {
                        scheduler.submit(app, AppEvent::Reconcile);
                    }
                }
            }
        });

        // The tick: RECONCILE every app.
        let handler = self.handler.clone();
        let scheduler = self.scheduler.clone();
        let interval = Duration::from_secs(config.reconcile_interval_seconds);
        tasks.spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await; // the first tick fires at once; the initial list already covers it
            loop {
                ticker.tick().await;
                for name in handler.names() {
                    scheduler.submit(name, AppEvent::Reconcile);
                }
                handler.count_apps();
            }
        });

        let _ = tasks.join_next().await;
    }
}
