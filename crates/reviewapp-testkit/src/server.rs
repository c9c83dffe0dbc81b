//! [`Emulator`]: the HTTP server on 127.0.0.1, its lifecycle, and the request plumbing
//! (latency, fault injection, request log, dispatch).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::handle::{ACTOR_HEADER, Handle, RequestRecord, Shared};
use crate::outage::GatedListener;
use crate::route::{self, Query};
use crate::status::ApiError;
use crate::store::World;
use crate::verbs::{self, Reply, Req};

/// Largest request body accepted.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// How long [`Emulator::shutdown`] waits for open connections to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Tuning of an emulator.
#[derive(Clone, Debug)]
pub struct Options {
    /// Events kept per resource for watches resuming from a resourceVersion (older ones get
    /// `410 Expired`).
    pub history_limit: usize,
    /// How often watches that asked for bookmarks get one (when the resourceVersion moved).
    pub bookmark_interval: Duration,
    /// Whether the TTL-after-finished controller deletes finished Jobs whose
    /// `spec.ttlSecondsAfterFinished` has passed.
    pub ttl_after_finished: bool,
}

impl Default for Options {
    /// 1000 events per resource, a bookmark every second, the TTL-after-finished controller on.
    fn default() -> Self {
        Self {
            history_limit: 1000,
            bookmark_interval: Duration::from_secs(1),
            ttl_after_finished: true,
        }
    }
}

/// Why an emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// Binding 127.0.0.1:0 failed.
    #[error("cannot listen on 127.0.0.1: {0}")]
    Bind(#[from] std::io::Error),
    /// The server URL did not parse (should not happen).
    #[error("invalid server URL {0}")]
    Url(String),
    /// The kube client could not be built.
    #[error("cannot build the kube client: {0}")]
    Client(#[from] kube::Error),
}

/// A running Kubernetes API emulator on `http://127.0.0.1:<port>`. Dropping it stops the
/// server (open watches end, idle connections close).
pub struct Emulator {
    addr: SocketAddr,
    handle: Handle,
    client: kube::Client,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    ticker: JoinHandle<()>,
    controllers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl Emulator {
    /// Starts an emulator with default [`Options`] on a free port of 127.0.0.1.
    pub async fn start() -> Result<Self, EmulatorError> {
        Self::start_with(Options::default()).await
    }

    /// Starts an emulator with these options on a free port of 127.0.0.1.
    pub async fn start_with(options: Options) -> Result<Self, EmulatorError> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ u64::from(addr.port());
        let mut world = World::new(options.history_limit, seed);
        let mut controllers = Vec::new();
        let mut job_changes = None;
        if options.ttl_after_finished {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            world.watch_jobs(tx);
            job_changes = Some(rx);
        }
        let shared = Arc::new(Shared::new(world));
        if let Some(rx) = job_changes {
            controllers.push(tokio::spawn(crate::ttl::run(Arc::downgrade(&shared), rx)));
        }
        let listener = GatedListener::new(listener, shared.gate.clone())?;
        let router = Router::new()
            .fallback(serve_request)
            .with_state(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(err) = axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::warn!(%err, "emulator server stopped with an error");
            }
        });
        let ticker = tokio::spawn(bookmarks(
            Arc::downgrade(&shared),
            options.bookmark_interval.max(Duration::from_millis(10)),
        ));
        let url = format!("http://{addr}");
        let uri: http::Uri = url.parse().map_err(|_| EmulatorError::Url(url.clone()))?;
        let client = kube::Client::try_from(kube::Config::new(uri))?;
        Ok(Self {
            addr,
            handle: Handle { shared },
            client,
            stop: Some(stop),
            server: Some(server),
            ticker,
            controllers,
        })
    }

    /// The base URL, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kube client for this emulator (default namespace "default", no auth, plain HTTP).
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// A handle on the emulator's state, for tests to drive the world.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// A kubeconfig pointing at this emulator (context `reviewapp-testkit`, namespace
    /// "default", no credentials), for processes that read `KUBECONFIG`.
    pub fn kubeconfig_yaml(&self) -> String {
        format!(
            "apiVersion: v1\n\
             kind: Config\n\
             clusters:\n\
             - name: reviewapp-testkit\n  cluster:\n    server: {url}\n\
             contexts:\n\
             - name: reviewapp-testkit\n  context:\n    cluster: reviewapp-testkit\n    user: reviewapp-testkit\n    namespace: default\n\
             current-context: reviewapp-testkit\n\
             users:\n\
             - name: reviewapp-testkit\n  user: {{}}\n\
             preferences: {{}}\n",
            url = self.url()
        )
    }

    /// Stops the server and waits (up to 5 s) for open connections to close.
    pub async fn shutdown(mut self) {
        self.signal_stop();
        if let Some(mut server) = self.server.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut server)
                .await
                .is_err()
        {
            server.abort();
        }
    }

    fn signal_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.handle.cut_watches();
        self.ticker.abort();
        for controller in &self.controllers {
            controller.abort();
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.signal_stop();
    }
}

/// Sends bookmarks until the emulator's state is gone.
async fn bookmarks(shared: Weak<Shared>, every: Duration) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        interval.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let mut world = shared.world();
        let rv = world.resource_version();
        world.watches.bookmark(rv);
    }
}

/// Every request: latency, fault injection, dispatch, log.
async fn serve_request(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let received = std::time::Instant::now();
    let (parts, body) = request.into_parts();
    let method = parts.method.as_str().to_string();
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or_default().to_string();
    let query = Query::parse(&raw_query);
    let header_text = |name: header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header_text(header::CONTENT_TYPE);
    let accept = header_text(header::ACCEPT).unwrap_or_default();
    let user_agent = header_text(header::USER_AGENT).unwrap_or_default();
    let watch = method == "GET" && query.flag("watch");
    let mut record = RequestRecord {
        method,
        path,
        query: raw_query,
        content_type,
        watch,
        status: 0,
        actor: parts
            .headers
            .get(ACTOR_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        received,
    };

    let latency = shared.faults().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let fault = shared.faults().check(&record);
    let reply = match fault {
        Some(code) => Reply::error(&ApiError::injected(code)),
        None => match axum::body::to_bytes(body, MAX_BODY).await {
            Ok(bytes) => {
                let req = Req {
                    method: &record.method,
                    query: &query,
                    content_type: record.content_type.as_deref().unwrap_or_default(),
                    accept: &accept,
                    user_agent: &user_agent,
                };
                dispatch(&shared, &record.path, &req, &bytes)
            }
            Err(err) => Reply::error(&ApiError::bad_request(format!(
                "cannot read the request body: {err}"
            ))),
        },
    };
    record.status = match &reply {
        Reply::Json(code, _) | Reply::Warned(code, _, _) | Reply::Text(code, _) => *code,
        Reply::Watch(_) => 200,
    };
    shared.log(record);
    render(reply)
}

/// Routes a request.
fn dispatch(shared: &Shared, path: &str, req: &Req<'_>, body: &[u8]) -> Reply {
    match path {
        "/version" => return Reply::Json(200, version()),
        "/api" => {
            return Reply::Json(
                200,
                json!({"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
            );
        }
        "/apis" => {
            return Reply::Json(
                200,
                json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}),
            );
        }
        "/healthz" | "/readyz" | "/livez" => return Reply::Json(200, json!("ok")),
        _ => {}
    }
    let Some(target) = route::parse_path(path) else {
        return Reply::error(&ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    };
    verbs::handle(shared, target, req, body).unwrap_or_else(|err| Reply::error(&err))
}

/// A `Warning` header value as the API server writes it: code 299, no agent, the text quoted
/// (`"` and `\` escaped, anything that is not printable ASCII as `\u{..}`).
fn warning_header(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                quoted.push('\\');
                quoted.push(c);
            }
            ' '..='~' => quoted.push(c),
            other => quoted.push_str(&format!("\\u{{{:x}}}", u32::from(other))),
        }
    }
    quoted.push('"');
    format!("299 - {quoted}")
}

fn version() -> Value {
    json!({
        "major": "1", "minor": "34", "gitVersion": "v1.34.0-reviewapp-testkit",
        "gitCommit": "", "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64",
    })
}

/// The HTTP response of a reply.
fn render(reply: Reply) -> Response {
    let json_type = HeaderValue::from_static("application/json");
    match reply {
        Reply::Warned(code, body, warnings) => {
            let mut response = render(Reply::Json(code, body));
            for text in warnings {
                if let Ok(value) = HeaderValue::from_str(&warning_header(&text)) {
                    response.headers_mut().append(header::WARNING, value);
                }
            }
            response
        }
        Reply::Json(code, body) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let bytes = serde_json::to_vec(&body).unwrap_or_default();
            let mut response = (status, bytes).into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, json_type);
            if code == 429 {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("0"));
            }
            response
        }
        Reply::Text(code, text) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = (status, text).into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            response
        }
        Reply::Watch(body) => {
            let mut response = Response::new(body);
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, json_type);
            response
        }
    }
}
