//! The HTTP edge: routes, middleware, and turning pipeline answers into responses.
//!
//! Handlers parse and authenticate (through extractors), hand a `StartRequest` to the start
//! pipeline, and render its answer; they decide nothing about permissions or Graph.

pub mod batch;
pub mod config;
pub mod context;
pub mod extract;
pub mod graph_path;
pub mod hooks;
pub mod identity;
pub mod openapi;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderName, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Authenticator;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::graph::Forwarding;
use crate::guard::IdempotencyKey;
use crate::http::openapi::BearerScheme;
use crate::ids::ApiVersion;
use crate::outcome::Outcome;
use crate::start::{Answer, StartRequest, StartService};
use context::RequestContext;
use extract::{IdempotencyHeader, JsonBody, StartQuery};

/// Shared state of the service.
#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl std::ops::Deref for AppState {
    type Target = App;

    fn deref(&self) -> &App {
        &self.0
    }
}

pub struct App {
    /// Validates callers' tokens.
    pub auth: Authenticator,
    /// Decides, guards, forwards and audits starts.
    pub starts: Arc<StartService>,
    /// Caller headers forwarded to Graph (`graph.forward_headers`).
    pub forward_headers: Vec<HeaderName>,
    /// The configured webhooks.
    pub hooks: Vec<crate::webhooks::WebhookConfig>,
    /// The `[server]` section: limits, timeouts, CORS, shutdown.
    pub server: config::ServerConfig,
    /// Set when shutdown began: `/readyz` answers 503 so that load balancers stop sending.
    pub draining: std::sync::atomic::AtomicBool,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "syncjob-facade", description = "Starts Microsoft Entra provisioning (synchronization) jobs through Microsoft Graph, for callers that present an Entra access token issued for the facade's API."),
    paths(crate::http::openapi::start_graph, crate::http::openapi::start_graph_action, crate::http::openapi::start_graph_app_id),
    components(schemas(crate::http::openapi::GraphError, crate::http::openapi::PassThru, crate::http::openapi::IdentityObject, crate::http::openapi::BatchResponse, crate::http::openapi::WhatIfReport, crate::http::openapi::HookSummary)),
    modifiers(&BearerScheme),
    security(("bearer" = [])),
)]
struct ApiDoc;

/// The routes that axum can route and utoipa documents.
fn documented_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(start_identity))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(hooks::deliver))
        .routes(routes!(metrics))
}

/// The OpenAPI document of the service.
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented_routes().split_for_parts().1
}

/// The whole service. Middleware, outermost first:
/// 1. request context: ids on every answer and the envelope on every error, so it must see the
///    responses of all layers below it;
/// 2. CORS, only when origins are configured: answers browser preflights before routing, which
///    would otherwise call them 405;
/// 2. request timeout: bounds the whole request, Graph calls included;
/// 3. body limit: applied by the extractors that read bodies.
pub fn app(state: AppState) -> Router {
    let (router, doc) = documented_routes().split_for_parts();
    let timeout = state.server.request_timeout();
    let body_limit = state.server.body_limit_bytes;
    let cors_origins = state.server.cors_allowed_origins.clone();
    router
        // The Graph-compatible paths cannot be routed by axum (see graph_path).
        .route("/{version}/{*rest}", axum::routing::any(start_graph))
        .merge(utoipa_swagger_ui::SwaggerUi::new("/docs").url("/openapi.json", doc))
        .fallback(|| async { ApiError::not_found("The resource does not exist.") })
        .with_state(state)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            timeout,
        ))
        .layer(tower::util::option_layer(cors(&cors_origins)))
        .layer(axum::middleware::from_fn(context::request_context))
}

/// CORS for browser portals: off (no headers, preflights refused) unless origins are configured.
fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let origins: Vec<axum::http::HeaderValue> =
        origins.iter().filter_map(|o| o.parse().ok()).collect();
    let header = |name: &'static str| HeaderName::from_static(name);
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::POST])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header("client-request-id"),
                header("idempotency-key"),
            ])
            .expose_headers([
                header("request-id"),
                header("client-request-id"),
                header::RETRY_AFTER,
                header("idempotent-replayed"),
            ])
            .max_age(Duration::from_secs(600)),
    )
}

/// `POST /{ver}/servicePrincipals/...`: the Graph-compatible start.
async fn start_graph(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    caller: Result<Caller, ApiError>,
    forwarding: Forwarding,
    idempotency: Result<IdempotencyHeader, ApiError>,
) -> Result<Response, ApiError> {
    let Some(path) = graph_path::parse(uri.path()) else {
        return Err(ApiError::not_found(format!(
            "Resource not found for the segment '{}'.",
            uri.path().rsplit('/').next().unwrap_or_default()
        )));
    };
    if method != Method::POST {
        return Err(ApiError::method_not_allowed("POST"));
    }
    let caller = caller?;
    let query = StartQuery::parse(uri.query(), false)?;
    let request = StartRequest {
        version: path.version,
        service_principal: path.service_principal?,
        job: path.job?,
        switches: query.switches,
        forwarding,
        idempotency_key: idempotency?.0,
        route: "graph",
    };
    let answer = state.starts.start_detached(caller, request).await;
    Ok(answer.outcome.into_response(answer.pass_thru))
}

/// Starts synchronization jobs named by IApplicationsIdentity objects (the cmdlet's `-InputObject`).
///
/// One object answers exactly as the Graph-compatible route; an array (at most 100) answers
/// `200` in Graph's JSON-batching shape, one entry per item in order.
#[utoipa::path(
    post,
    path = "/start",
    tag = "start",
    params(
        ("whatIf" = Option<bool>, Query, description = "Report what would happen; the start is not sent (a preflight read may be). Named once."),
        ("passThru" = Option<bool>, Query, description = "Answer 200 {\"value\": true} instead of 204. Named once."),
        ("force" = Option<bool>, Query, description = "Start even when preflight finds the job Active. Named once."),
        ("apiVersion" = Option<crate::http::openapi::GraphVersion>, Query, description = "Graph version to forward to (default v1.0)."),
        ("client-request-id" = Option<String>, Header, description = "Forwarded to Graph and echoed; a new GUID when absent."),
        ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "1-255 visible ASCII characters. Same key, same caller, within 24 h: the first answer is replayed (per item in an array) and nothing is sent."),
    ),
    request_body(content = crate::http::openapi::IdentityInput, description = "An IApplicationsIdentity object (answered as the Graph-compatible route answers), or an array of 1 to 100 (answered 200 with a BatchResponse)", content_type = "application/json"),
    responses(
        (status = 204, description = "One object: started", headers(
            ("request-id" = String, description = "Graph's request id"),
            ("client-request-id" = String),
            ("Idempotent-Replayed" = String, description = "true when this is a replayed answer"),
        )),
        (status = 200, description = "One object with passThru or whatIf; or an array: one entry per item, in order", body = crate::http::openapi::IdentityAnswer, headers(
            ("request-id" = String), ("client-request-id" = String),
            ("Idempotent-Replayed" = String, description = "true when this is a replayed answer"),
        )),
        (status = 400, description = "BadRequest: bad id, bad body, unknown key, a key or switch named twice (named in the message)", body = crate::http::openapi::GraphError),
        (status = 401, description = "InvalidAuthenticationToken: no or invalid bearer token", body = crate::http::openapi::GraphError, headers(("WWW-Authenticate" = String))),
        (status = 403, description = "Authorization_RequestDenied: permission, directory role or ownership missing", body = crate::http::openapi::GraphError, headers(("WWW-Authenticate" = String))),
        (status = 404, description = "Graph's 404 for one object, passed through", body = crate::http::openapi::GraphError),
        (status = 409, description = "One object: SyncJobAlreadyActive (preflight) or SyncJobStartCooldown", body = crate::http::openapi::GraphError, headers(("Retry-After" = u64, description = "Whole seconds until the cooldown ends"))),
        (status = 413, description = "RequestEntityTooLarge", body = crate::http::openapi::GraphError),
        (status = 415, description = "UnsupportedMediaType: the body is not application/json", body = crate::http::openapi::GraphError),
        (status = 422, description = "IdempotencyKeyReused", body = crate::http::openapi::GraphError),
        (status = 429, description = "TooManyRequests: the caller is over its rate, or Graph throttled", body = crate::http::openapi::GraphError, headers(("Retry-After" = u64, description = "Whole seconds"))),
        (status = 502, description = "BadGateway: Graph unreachable", body = crate::http::openapi::GraphError),
        (status = 503, description = "ServiceUnavailable: guard store unreachable, circuit open, or load shed", body = crate::http::openapi::GraphError, headers(("Retry-After" = u64, description = "Whole seconds"))),
        (status = 504, description = "GatewayTimeout", body = crate::http::openapi::GraphError),
    ),
)]
async fn start_identity(
    State(state): State<AppState>,
    uri: Uri,
    caller: Caller,
    forwarding: Forwarding,
    IdempotencyHeader(idempotency_key): IdempotencyHeader,
    axum::Extension(context): axum::Extension<RequestContext>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let query = StartQuery::parse(uri.query(), true)?;
    let version = query.api_version.unwrap_or(ApiVersion::V1);
    let build =
        |identity: identity::Identity, idempotency_key: Option<IdempotencyKey>| StartRequest {
            version,
            service_principal: identity.service_principal,
            job: identity.job,
            switches: query.switches,
            forwarding: forwarding.clone(),
            idempotency_key,
            route: "identity",
        };
    let Value::Array(items) = &body else {
        let request = build(identity::parse(&body)?, idempotency_key);
        let answer = state.starts.start_detached(caller, request).await;
        return Ok(answer.outcome.into_response(answer.pass_thru));
    };
    if items.is_empty() || items.len() > batch::MAX_ITEMS {
        return Err(ApiError::bad_request(format!(
            "The array must hold 1 to {} IApplicationsIdentity objects; it holds {}.",
            batch::MAX_ITEMS,
            items.len()
        )));
    }
    // Items naming the same target share the first one's answer (one start, not a start and
    // then a cooldown refusal). Distinct targets run a few at a time, in order, so that a batch
    // answers within the request timeout. A batch's Idempotency-Key is scoped per item.
    let parsed: Vec<Result<identity::Identity, ApiError>> =
        items.iter().map(identity::parse).collect();
    // For each item, the index of the first item naming the same target.
    let firsts: Vec<usize> = parsed
        .iter()
        .enumerate()
        .map(|(index, item)| {
            item.as_ref()
                .ok()
                .and_then(|identity| {
                    parsed
                        .iter()
                        .position(|p| p.as_ref().ok() == Some(identity))
                })
                .unwrap_or(index)
        })
        .collect();
    let requests: Vec<(usize, StartRequest)> = parsed
        .iter()
        .enumerate()
        .filter(|(index, _)| firsts[*index] == *index)
        .filter_map(|(index, item)| {
            let identity = item.as_ref().ok()?.clone();
            Some((
                index,
                build(
                    identity,
                    idempotency_key.as_ref().map(|key| key.for_item(index)),
                ),
            ))
        })
        .collect();
    let (indexes, runs): (Vec<usize>, Vec<_>) = requests
        .into_iter()
        .map(|(index, request)| {
            let (starts, caller) = (Arc::clone(&state.starts), caller.clone());
            (index, async move {
                starts.start_detached(caller, request).await
            })
        })
        .unzip();
    let deadline = batch::deadline(context.received, state.server.request_timeout());
    let finished = indexes.into_iter().zip(batch::run(runs, deadline).await);
    let ids = (
        context.request_id.as_str(),
        context.client_request_id.as_str(),
    );
    let answers: std::collections::HashMap<usize, Answer> = finished.collect();
    let responses: Vec<Value> = parsed
        .into_iter()
        .enumerate()
        .map(|(index, item)| match item {
            Err(error) => Outcome::from(error).batch_entry(index, false, ids),
            Ok(_) => {
                let first = &answers[&firsts[index]];
                first
                    .outcome
                    .clone()
                    .batch_entry(index, first.pass_thru, ids)
            }
        })
        .collect();
    Ok((
        StatusCode::OK,
        axum::Json(json!({ "responses": responses })),
    )
        .into_response())
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(()), responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain; version=0.0.4")))]
async fn metrics() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::telemetry::render(),
    )
}

/// Process alive.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()), responses((status = 200, description = "Alive", body = crate::http::openapi::Health)))]
async fn healthz() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

/// Ready: signing keys loaded, the Graph credential can obtain a token, the guard store answers.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()), responses((status = 200, description = "Ready", body = crate::http::openapi::Ready), (status = 503, description = "Not ready, with the reasons", body = crate::http::openapi::GraphError, headers(("Retry-After" = u64)))))]
async fn readyz(State(state): State<AppState>) -> Response {
    let mut problems = Vec::new();
    if state.draining.load(std::sync::atomic::Ordering::SeqCst) {
        problems.push("shutting down".to_owned());
    }
    if !state.auth.keys().is_loaded() {
        problems.push("signing keys are not loaded".to_owned());
    }
    // The reasons are named, their details (Entra's and Redis's messages) only logged: this
    // route answers anyone.
    if let Err(error) = state.starts.graph().credential().token().await {
        tracing::warn!(%error, "not ready: no Graph token");
        problems.push("the Graph credential cannot obtain a token".to_owned());
    }
    if let Err(error) = state.starts.guard().ping().await {
        tracing::warn!(%error, "not ready: guard store unreachable");
        problems.push("the guard store is unreachable".to_owned());
    }
    if problems.is_empty() {
        // Graph itself failing does not make the facade unready (each start answers 502/503);
        // the breaker's state is reported for operators.
        let breaker = state.starts.graph().breaker_state().as_str();
        axum::Json(json!({"status": "ready", "graphCircuit": breaker})).into_response()
    } else {
        ApiError::service_unavailable(format!("Not ready: {}.", problems.join("; ")), 5)
            .into_response()
    }
}
