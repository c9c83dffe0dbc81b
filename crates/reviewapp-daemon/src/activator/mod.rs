//! The activator: an HTTP server on every replica (leader or not) that a sleeping app's
//! Ingress sends its requests to. A request whose `Host` is a sleeping app's host gets the
//! waking page and asks the operator to wake the app, by writing the
//! [`WAKE_REQUESTED_AT`](reviewapp_api::annotations::WAKE_REQUESTED_AT) annotation (one merge
//! patch, at most once per host per 5 s); what waking means is the transition's business. Any
//! other review app's host gets the waking page without a write (it is awake and its Ingress
//! has not switched back yet), any other host `404`. It answers from its own light view of the
//! `ReviewApp`s ([`view`]), so it keeps answering while the API server is unreachable.
//!
//! Its write does not go through the leader's write fence: it is not the operator's reconcile
//! but a request to it (the same a person makes with `kubectl annotate`), a single idempotent
//! patch of one annotation that any replica may send; a standby must be able to send it, since
//! the Service spreads requests over every replica. See `docs/operations.md` (the activator).

pub mod host;
pub mod limiter;
pub mod metrics;
pub mod page;
pub mod server;
pub mod view;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

pub use metrics::ActivatorMetrics;
pub use server::{Activator, FIELD_MANAGER, Outcome};
pub use view::View;

use crate::Metrics;

/// Where the activator listens.
#[derive(Clone, Debug)]
pub struct ActivatorOptions {
    /// Address to bind (`--activator-listen`).
    pub listen: SocketAddr,
    /// Set to the bound address once listening (useful with port 0).
    pub bound: Arc<OnceLock<SocketAddr>>,
}

impl ActivatorOptions {
    /// Listens on `listen`.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            bound: Arc::default(),
        }
    }
}

/// Starts the view and the server; both run until `shutdown` completes. Returns the bound
/// address and the task.
pub async fn start(
    options: &ActivatorOptions,
    client: kube::Client,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let (view, reflect) = View::start(client.clone());
    let activator = Activator::new(view, client, metrics);
    let (stop_view, view_stopped) = tokio::sync::oneshot::channel::<()>();
    let (addr, server) = server::serve(options.listen, activator, async move {
        shutdown.await;
        let _ = stop_view.send(());
    })
    .await?;
    let _ = options.bound.set(addr);
    tokio::spawn(async move {
        tokio::select! {
            () = reflect => {}
            _ = view_stopped => {}
        }
    });
    Ok((addr, server))
}
