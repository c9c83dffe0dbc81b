//! The verbs on a resource path: get, list, watch, create, replace, patch (apply, merge,
//! strategic-as-merge, JSON), delete and deletecollection.

use std::time::Duration;

use axum::body::Body;
use serde_json::{Value, json};

use crate::admission::FieldValidation;
use crate::apply::{self, ApplyParams};
use crate::fields::Scope;
use crate::handle::Shared;
use crate::meta;
use crate::pages;
use crate::patch::{self, JsonPatchError};
use crate::route::{Query, Target};
use crate::selector::Filter;
use crate::status::{self, ApiError};
use crate::store::{Create, Deleted, Ownership, Preconditions, Propagation, Write, Written};
use crate::watch::{self, Render, WatchSpec};

/// A watch without `timeoutSeconds` ends after this long.
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

/// Longest `timeoutSeconds` honoured (a day).
const MAX_WATCH_TIMEOUT_SECS: u64 = 86_400;

/// The parts of a request the verbs read.
pub(crate) struct Req<'a> {
    pub method: &'a str,
    pub query: &'a Query,
    pub content_type: &'a str,
    pub accept: &'a str,
    pub user_agent: &'a str,
}

impl Req<'_> {
    /// `fieldManager`, or the user agent's product name as the real server derives it.
    fn manager(&self) -> String {
        match self.query.get("fieldManager") {
            Some(m) if !m.is_empty() => m.to_string(),
            _ => match self.user_agent.split('/').next() {
                Some(agent) if !agent.trim().is_empty() => agent.trim().to_string(),
                _ => "unknown".to_string(),
            },
        }
    }

    fn meta_only(&self) -> bool {
        self.accept.contains("as=PartialObjectMetadata")
    }

    fn dry_run(&self) -> bool {
        self.query.get("dryRun") == Some("All")
    }

    /// `fieldValidation` (absent: `Warn`).
    fn validation(&self) -> Result<FieldValidation, ApiError> {
        FieldValidation::parse(self.query.get("fieldValidation"))
    }

    /// The media type without parameters.
    fn media_type(&self) -> &str {
        self.content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
    }
}

/// What a verb answers: a status code and a JSON body, or a watch stream.
pub(crate) enum Reply {
    Json(u16, Value),
    /// A JSON answer with `Warning` headers (one per text).
    Warned(u16, Value, Vec<String>),
    /// A `text/plain` answer (a pod's log).
    Text(u16, String),
    Watch(Body),
}

impl Reply {
    /// A `Status` error answer.
    pub(crate) fn error(err: &ApiError) -> Self {
        Reply::Json(err.code, err.to_status())
    }

    /// The answer to a write: the object as asked for, with the write's warnings.
    fn written(code: u16, written: &Written, meta_only: bool) -> Self {
        let body = present(&written.object, meta_only);
        if written.warnings.is_empty() {
            Reply::Json(code, body)
        } else {
            Reply::Warned(code, body, written.warnings.clone())
        }
    }
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
}

/// An apply body: JSON, or YAML.
fn parse_apply(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).or_else(|_| {
        serde_yaml::from_slice::<Value>(body)
            .map_err(|e| ApiError::bad_request(format!("the apply body is not YAML or JSON: {e}")))
    })
}

fn not_found_path() -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

/// Handles a request on a resource path.
pub(crate) fn handle(
    shared: &Shared,
    target: Target,
    req: &Req<'_>,
    body: &[u8],
) -> Result<Reply, ApiError> {
    let scope = match target.subresource.as_deref() {
        None => Scope::Main,
        Some("status") => Scope::Status,
        Some("log") if target.res == crate::pods::pods() && req.method == "GET" => {
            let world = shared.world();
            return crate::pods::read_log(&world, &target, req.query)
                .map(|text| Reply::Text(200, text));
        }
        Some(_) => return Err(not_found_path()),
    };
    if !shared.world().is_available(&target.res) {
        return Err(not_found_path());
    }
    let ns = target.namespace.clone().unwrap_or_default();
    match (req.method, target.name.as_deref(), scope) {
        ("GET", None, Scope::Main) if req.query.flag("watch") => watch(shared, target, req),
        ("GET", None, Scope::Main) => list(shared, &target, req),
        ("GET", Some(name), _) => {
            let world = shared.world();
            let object = world
                .get(&target.res, &ns, name)
                .ok_or_else(|| ApiError::not_found(&target.res, name))?;
            Ok(Reply::Json(200, present(object, req.meta_only())))
        }
        ("POST", None, Scope::Main) => {
            let validation = req.validation()?;
            let object = parse_json(body)?;
            let created = shared.world().create(
                &target.res,
                &ns,
                object,
                Create {
                    ownership: Ownership::Update(&req.manager()),
                    keep_status: false,
                    dry_run: req.dry_run(),
                    validation,
                },
            )?;
            Ok(Reply::written(201, &created, req.meta_only()))
        }
        ("PUT", Some(name), _) => {
            let validation = req.validation()?;
            let object = parse_json(body)?;
            let updated = shared.world().update(
                &target.res,
                &ns,
                name,
                object,
                Write {
                    scope,
                    ownership: Ownership::Update(&req.manager()),
                    dry_run: req.dry_run(),
                    validation,
                },
            )?;
            Ok(Reply::written(200, &updated, req.meta_only()))
        }
        ("PATCH", Some(name), _) => patch(shared, &target, &ns, name, scope, req, body),
        ("DELETE", Some(name), Scope::Main) => delete(shared, &target, &ns, name, req, body),
        ("DELETE", None, Scope::Main) => delete_collection(shared, &target, req),
        (method, _, _) => Err(ApiError::method_not_allowed(format!(
            "{method} is not supported on {}",
            target.res
        ))),
    }
}

/// The object as answered: whole, or as `PartialObjectMetadata`.
fn present(object: &Value, meta_only: bool) -> Value {
    if meta_only {
        watch::partial_metadata(object)
    } else {
        object.clone()
    }
}

fn filter(req: &Req<'_>) -> Result<Filter, ApiError> {
    Filter::parse(
        req.query.get("labelSelector"),
        req.query.get("fieldSelector"),
    )
}

fn list(shared: &Shared, target: &Target, req: &Req<'_>) -> Result<Reply, ApiError> {
    let filter = filter(req)?;
    let limit = pages::parse_limit(req.query.get("limit"));
    let mut world = shared.world();
    let page = match req.query.get("continue").filter(|t| !t.is_empty()) {
        Some(token) => world
            .pages
            .next(&target.res, target.namespace.as_deref(), token, limit)?,
        None => {
            let items = world.list(&target.res, target.namespace.as_deref(), &filter);
            let rv = world.resource_version();
            world
                .pages
                .first(&target.res, target.namespace.as_deref(), items, rv, limit)
        }
    };
    let mut metadata = json!({"resourceVersion": page.resource_version.to_string()});
    if let Some(token) = page.continue_token {
        metadata["continue"] = json!(token);
        metadata["remainingItemCount"] = json!(page.remaining);
    }
    let body = if req.meta_only() {
        json!({
            "apiVersion": "meta.k8s.io/v1",
            "kind": "PartialObjectMetadataList",
            "metadata": metadata,
            "items": page.items.iter().map(watch::partial_metadata).collect::<Vec<_>>(),
        })
    } else {
        json!({
            "apiVersion": target.res.api_version(),
            "kind": format!("{}List", world.kind_of(&target.res)),
            "metadata": metadata,
            "items": page.items,
        })
    };
    Ok(Reply::Json(200, body))
}

fn watch(shared: &Shared, target: Target, req: &Req<'_>) -> Result<Reply, ApiError> {
    let filter = filter(req)?;
    let timeout = req
        .query
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map_or(DEFAULT_WATCH_TIMEOUT, |s| {
            Duration::from_secs(s.min(MAX_WATCH_TIMEOUT_SECS))
        });
    let mut world = shared.world();
    let render = Render {
        meta_only: req.meta_only(),
        api_version: target.res.api_version(),
        kind: world.kind_of(&target.res),
    };
    let spec = WatchSpec {
        res: target.res,
        namespace: target.namespace,
        filter,
        bookmarks: req.query.flag("allowWatchBookmarks"),
    };
    let rx = world.watch(
        spec,
        req.query.get("resourceVersion").unwrap_or_default(),
        req.query.flag("sendInitialEvents"),
    )?;
    Ok(Reply::Watch(watch::body(rx, timeout, render)))
}

fn patch(
    shared: &Shared,
    target: &Target,
    ns: &str,
    name: &str,
    scope: Scope,
    req: &Req<'_>,
    body: &[u8],
) -> Result<Reply, ApiError> {
    let res = &target.res;
    let dry_run = req.dry_run();
    let meta_only = req.meta_only();
    let validation = req.validation()?;
    match req.media_type() {
        "application/apply-patch+yaml" => {
            let manager = match req.query.get("fieldManager") {
                Some(m) if !m.is_empty() => m.to_string(),
                _ => {
                    return Err(ApiError::bad_request(
                        "PATCH with apply requires a fieldManager",
                    ));
                }
            };
            let config = parse_apply(body)?;
            let params = ApplyParams {
                manager: &manager,
                force: req.query.flag("force"),
                scope,
                validation,
            };
            let (written, created) = apply::server_side_apply(
                &mut shared.world(),
                res,
                ns,
                name,
                &config,
                &params,
                dry_run,
            )?;
            Ok(Reply::written(
                if created { 201 } else { 200 },
                &written,
                meta_only,
            ))
        }
        media @ ("application/merge-patch+json"
        | "application/strategic-merge-patch+json"
        | "application/json-patch+json") => {
            let patch_body = parse_json(body)?;
            let mut world = shared.world();
            let mut candidate = world
                .get(res, ns, name)
                .cloned()
                .ok_or_else(|| ApiError::not_found(res, name))?;
            if media == "application/json-patch+json" {
                patch::json_patch(&mut candidate, &patch_body).map_err(|e| match e {
                    JsonPatchError::Malformed(m) => ApiError::bad_request(m),
                    JsonPatchError::Failed(m) => ApiError::invalid(res, name, m),
                })?;
            } else {
                patch::merge_patch(&mut candidate, &patch_body);
            }
            let updated = world.update(
                res,
                ns,
                name,
                candidate,
                Write {
                    scope,
                    ownership: Ownership::Update(&req.manager()),
                    dry_run,
                    validation,
                },
            )?;
            Ok(Reply::written(200, &updated, meta_only))
        }
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

/// `DeleteOptions` from the body, with `propagationPolicy` also read from the query.
fn delete_options(
    req: &Req<'_>,
    body: &[u8],
) -> Result<(Propagation, Preconditions, bool), ApiError> {
    let options = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        parse_json(body)?
    };
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let mut propagation = Propagation::parse(
        options
            .get("propagationPolicy")
            .and_then(Value::as_str)
            .or_else(|| req.query.get("propagationPolicy")),
    );
    let orphan = options
        .get("orphanDependents")
        .and_then(Value::as_bool)
        .or_else(|| req.query.get("orphanDependents").map(|v| v == "true"));
    if orphan == Some(true) {
        propagation = Propagation::Orphan;
    }
    let preconditions = options
        .get("preconditions")
        .map(|p| Preconditions {
            uid: text(p, "uid"),
            resource_version: text(p, "resourceVersion"),
        })
        .unwrap_or_default();
    let dry_run = req.dry_run()
        || options
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|d| d.iter().any(|v| v == "All"));
    Ok((propagation, preconditions, dry_run))
}

fn delete(
    shared: &Shared,
    target: &Target,
    ns: &str,
    name: &str,
    req: &Req<'_>,
    body: &[u8],
) -> Result<Reply, ApiError> {
    let (propagation, preconditions, dry_run) = delete_options(req, body)?;
    let outcome =
        shared
            .world()
            .delete(&target.res, ns, name, propagation, &preconditions, dry_run)?;
    Ok(match outcome {
        Deleted::Gone(object) => {
            Reply::Json(200, status::deleted(&target.res, name, meta::uid(&object)))
        }
        Deleted::Pending(object) => Reply::Json(200, present(&object, req.meta_only())),
    })
}

fn delete_collection(shared: &Shared, target: &Target, req: &Req<'_>) -> Result<Reply, ApiError> {
    let filter = filter(req)?;
    let propagation = Propagation::parse(req.query.get("propagationPolicy"));
    let mut world = shared.world();
    let objects = world.list(&target.res, target.namespace.as_deref(), &filter);
    let mut items = Vec::with_capacity(objects.len());
    for object in &objects {
        let ns = meta::namespace(object).to_string();
        let name = meta::name(object).to_string();
        match world.begin_delete(&target.res, &ns, &name, propagation) {
            Some(Deleted::Gone(o) | Deleted::Pending(o)) => items.push(o),
            None => {}
        }
    }
    Ok(Reply::Json(
        200,
        json!({
            "apiVersion": target.res.api_version(),
            "kind": format!("{}List", world.kind_of(&target.res)),
            "metadata": {"resourceVersion": world.resource_version().to_string()},
            "items": items,
        }),
    ))
}
