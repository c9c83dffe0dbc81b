//! Wires the watches to the per-app scheduler. The build-Job, child and TLS source watches
//! fill the [`Index`] and reconcile the apps a change concerns; once they have listed, the
//! `ReviewApp` watch classifies its events into the index and schedules them, the tick
//! reconciles every app, and with a build cap the head of the build queue is reconciled
//! whenever a slot frees.

use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, Stream, StreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher::{self, Event};
use reviewapp_api::OperatorConfig;
use reviewapp_effects::Effects;
use reviewapp_resources::ChildKind;
use reviewapp_state::AppEvent;

use crate::backoff::Backoff;
use crate::build_jobs::owner;
use crate::classify::Classified;
use crate::handler::{AppHandler, Listener};
use crate::health::Readiness;
use crate::index::{Index, ListingWriter};
use crate::live::{LiveObjects, LiveWriters, Seen, apply_deployment_event, apply_secret_event};
use crate::metrics::Metrics;
use crate::scheduler::Scheduler;
use crate::source::SourceSecret;
use crate::wakeups::{self, Wakeups};
use crate::watch;

/// The running controller: what the watches fill, the handler and its scheduler.
pub(crate) struct Controller {
    config: Arc<OperatorConfig>,
    handler: Arc<AppHandler>,
    schedule: Schedule,
    live: Arc<LiveObjects>,
    jobs_writer: Writer<Job>,
    live_writers: LiveWriters,
}

/// Where the watch tasks send work: the index they update and the scheduler.
#[derive(Clone)]
struct Schedule {
    index: Arc<Index>,
    scheduler: Scheduler<AppEvent>,
    metrics: Arc<Metrics>,
}

impl Schedule {
    /// Schedules a RECONCILE of every app in `names`.
    fn reconcile(&self, names: impl IntoIterator<Item = String>) {
        for name in names {
            self.scheduler.submit(name, AppEvent::Reconcile);
        }
    }

    /// A RECONCILE of `names`, served before other waiting work (the build queue's head).
    fn reconcile_first(&self, names: impl IntoIterator<Item = String>) {
        for name in names {
            self.scheduler.submit_first(name, AppEvent::Reconcile);
        }
    }

    /// Sets the `apps` gauge from the index.
    fn count_apps(&self) {
        let counts = self.index.apps.lock().count_by_status();
        self.metrics.set_app_counts(counts);
    }
}

impl Controller {
    /// Empty stores, the index over them, the handler and its scheduler (started, idle until
    /// [`run`](Self::run) feeds it).
    pub fn new(
        config: Arc<OperatorConfig>,
        effects: Effects,
        metrics: Arc<Metrics>,
        concurrency: usize,
        listener: Option<Listener>,
    ) -> Self {
        let (jobs, jobs_writer) = reflector::store::<Job>();
        let tls = config.tls_enabled().then(|| {
            (
                config.tls.secret_namespace.as_str(),
                config.tls.secret_name.as_str(),
            )
        });
        let (live, live_writers) = LiveObjects::new(tls);
        let live = Arc::new(live);
        let index = Arc::new(Index::new(&config, jobs, live.clone()));
        let (wakeups, timers) = Wakeups::new();
        let handler = Arc::new(
            AppHandler::new(config.clone(), effects, metrics.clone(), index.clone())
                .with_listener(listener)
                .with_wakeups(wakeups),
        );
        let scheduler = scheduler(handler.clone(), metrics.clone(), concurrency);
        let fire = scheduler.clone();
        let gauge = metrics.lifecycle_timers.clone();
        tokio::spawn(wakeups::run(
            timers,
            move |name| fire.submit(name, AppEvent::Reconcile),
            move |armed| {
                gauge.set(i64::try_from(armed).unwrap_or(i64::MAX));
            },
        ));
        Controller {
            config,
            handler,
            schedule: Schedule {
                index,
                scheduler,
                metrics,
            },
            live,
            jobs_writer,
            live_writers,
        }
    }

    /// The scheduler, to shut down once [`run`](Self::run) is dropped.
    pub fn scheduler(&self) -> Scheduler<AppEvent> {
        self.schedule.scheduler.clone()
    }

    /// Runs every watch and the tick until one of them ends (they do not, short of a bug).
    /// Dropping the future stops them all.
    pub async fn run(self, client: kube::Client, ready: Readiness) {
        // Every task ends when this future is dropped (the set aborts them).
        let mut tasks = tokio::task::JoinSet::new();
        for (kind, writer) in self.live_writers.kinds {
            tasks.spawn(match kind {
                ChildKind::Secret => {
                    let config = self.config.clone();
                    let allowed = move |ns: &str| config.namespace_allowed(ns);
                    let stream = watch::secrets(client.clone(), allowed);
                    secrets(stream, writer, self.schedule.clone()).boxed()
                }
                ChildKind::Deployment => {
                    let stream = watch::deployments(client.clone());
                    deployments(stream, writer, self.schedule.clone()).boxed()
                }
                kind => children(watch::children(client.clone(), kind), writer, kind).boxed(),
            });
        }
        if let (Some(source), Some(writer)) = (self.live.tls_source(), self.live_writers.tls) {
            let stream = source.watch(client.clone());
            tasks.spawn(tls_source(
                stream,
                source.clone(),
                writer,
                self.schedule.clone(),
            ));
        }
        let namespace = &self.config.build_namespace;
        let jobs = watch::build_jobs(client.clone(), namespace).reflect(self.jobs_writer);
        tasks.spawn(build_jobs(jobs, self.schedule.clone()));

        // Wait for the stores the handler reads before handling anything: an app handled
        // before its Job is known would look like a vanished build.
        self.schedule.index.jobs.wait_until_ready().await;
        self.live.wait_until_ready().await;

        let apps = watch::review_apps(client);
        tasks.spawn(review_apps(
            apps,
            self.handler,
            self.schedule.clone(),
            ready,
        ));
        if self.config.build_cap().is_some() {
            tasks.spawn(build_queue(self.schedule.clone()));
        }
        let interval = Duration::from_secs(self.config.reconcile_interval_seconds);
        tasks.spawn(tick(interval, self.schedule));
        let _ = tasks.join_next().await;
    }
}

/// The per-app scheduler running `handler`, retrying failures with the default backoff.
fn scheduler(
    handler: Arc<AppHandler>,
    metrics: Arc<Metrics>,
    concurrency: usize,
) -> Scheduler<AppEvent> {
    Scheduler::new(concurrency, Backoff::default(), move |name, event| {
        let handler = handler.clone();
        async move { handler.handle(name, event).await }
    })
    .with_on_error(move |name, event: &AppEvent, error, attempt, retry_in| {
        metrics.record_handle_failure(*event);
        tracing::warn!(
            app = name,
            ?event,
            attempt,
            retry_in_secs = retry_in.as_secs_f64(),
            error,
            "handling failed; will retry"
        );
    })
    // A failing event must not hold back a later DELETE of the same app.
    .with_supersede(|newer: &AppEvent, failed: &AppEvent| {
        newer == failed || *newer == AppEvent::Delete
    })
}

/// The store of a child kind: what exists, for the effects layer.
async fn children(
    stream: impl Stream<Item = watcher::Result<Event<Seen>>>,
    mut writer: ListingWriter<Seen>,
    kind: ChildKind,
) {
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(event) => writer.apply(&event),
            // Expected while a database operator's CRD is not installed: debug only.
            Err(error) => {
                tracing::debug!(kind = kind.kind(), %error, "child watch error; retrying")
            }
        }
    }
}

/// The Deployment store: a Deployment that became available reconciles its app at once (a
/// woken app's Ingress switches back from the activator).
async fn deployments(
    stream: impl Stream<Item = watcher::Result<Event<Seen>>>,
    mut writer: ListingWriter<Seen>,
    schedule: Schedule,
) {
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(event) => {
                if let Some(app) = apply_deployment_event(&mut writer, &event) {
                    schedule.reconcile([app]);
                }
            }
            Err(error) => tracing::debug!(%error, "Deployment watch error; retrying"),
        }
    }
}

/// The Secret store, which also holds the Secrets apps load into their environment: one
/// appearing or going reconciles the apps that load it, so a MissingSecrets condition follows
/// at once.
async fn secrets(
    stream: impl Stream<Item = watcher::Result<Event<Seen>>>,
    mut writer: ListingWriter<Seen>,
    schedule: Schedule,
) {
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                tracing::debug!(%error, "Secret watch error; retrying");
                continue;
            }
        };
        for (namespace, name) in apply_secret_event(&mut writer, &event) {
            let apps = schedule.index.apps.lock().using_secret(&namespace, &name);
            schedule.reconcile(apps);
        }
    }
}

/// The TLS source Secret: a renewal reconciles every app, which copies it again.
async fn tls_source(
    stream: impl Stream<Item = watcher::Result<Event<Secret>>>,
    source: SourceSecret,
    mut writer: ListingWriter<Secret>,
    schedule: Schedule,
) {
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(event) if source.apply(&mut writer, &event) => {
                tracing::info!("the TLS source Secret changed; reconciling every app");
                let names = schedule.index.apps.lock().names();
                schedule.reconcile(names);
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "TLS source Secret watch error; retrying"),
        }
    }
}

/// Build Jobs (already in their store): a change reconciles the owner at once; a listed Job is
/// remembered (one being deleted and held is handled once the apps are listed too).
async fn build_jobs(stream: impl Stream<Item = watcher::Result<Event<Job>>>, schedule: Schedule) {
    let mut stream = std::pin::pin!(stream);
    let jobs = &schedule.index.jobs;
    while let Some(event) = stream.next().await {
        let changed = match event {
            Ok(Event::Apply(job)) => {
                jobs.apply(&job);
                job
            }
            Ok(Event::Delete(job)) => {
                jobs.delete(&job);
                job
            }
            Ok(Event::InitApply(job)) => {
                jobs.apply(&job);
                continue;
            }
            Ok(Event::InitDone) => {
                schedule.index.slots.job_changed();
                continue;
            }
            Ok(Event::Init) => continue,
            Err(error) => {
                tracing::warn!(%error, "build Job watch error; retrying");
                continue;
            }
        };
        schedule.index.slots.job_changed();
        schedule.reconcile(owner(&changed));
    }
}

/// `ReviewApp`s: classified into ADD / MODIFY / DELETE and scheduled; a malformed one is
/// reported. Once listed, the operator is ready, and the apps that own a build Job being
/// deleted and held (or, for an app that is gone, its name) release the ones nobody waits for.
async fn review_apps(
    stream: impl Stream<
        Item = watcher::Result<Event<kube::core::DeserializeGuard<reviewapp_api::ReviewApp>>>,
    >,
    handler: Arc<AppHandler>,
    schedule: Schedule,
    ready: Readiness,
) {
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                tracing::warn!(%error, "ReviewApp watch error; retrying");
                continue;
            }
        };
        let listed = matches!(event, Event::InitDone);
        let classified = schedule.index.apps.lock().apply(event);
        for item in classified {
            match item {
                Classified::App { name, event, .. } => schedule.scheduler.submit(name, event),
                Classified::Malformed { name, error } => {
                    handler.report_malformed(&name, &error).await;
                }
            }
        }
        if listed {
            let waiting = schedule.index.apps.lock().queued_builds();
            schedule.index.slots.listed(waiting);
            ready.set(true);
            schedule.count_apps();
            schedule.reconcile(schedule.index.jobs.owners_holding());
        }
    }
}

/// The build cap's queue: whenever a slot may have freed (a build Job finished or went, a
/// reservation was given up, the apps were listed), the head of the queue is reconciled at once,
/// before other waiting work, as many apps as slots are free; each takes its slot in its handler.
async fn build_queue(schedule: Schedule) {
    let (slots, jobs) = (&schedule.index.slots, &schedule.index.jobs);
    loop {
        slots.changed().await;
        let heads = slots.heads(jobs);
        let (waiting, used) = slots.lengths(jobs);
        schedule.metrics.set_build_queue(waiting, used);
        if !heads.is_empty() {
            tracing::debug!(apps = ?heads, "build slots free: starting the head of the queue");
        }
        schedule.reconcile_first(heads);
    }
}

/// The tick: a RECONCILE of every app each `interval` (the first is the initial list).
async fn tick(interval: Duration, schedule: Schedule) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await; // the first tick fires at once; the initial list already covers it
    loop {
        ticker.tick().await;
        let names = schedule.index.apps.lock().names();
        schedule.reconcile(names);
        schedule.count_apps();
    }
}
