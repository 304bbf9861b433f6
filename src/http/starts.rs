//! The start routes: the Graph-compatible paths and `POST /start` (one object or an array).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{Method, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::context::RequestContext;
use super::extract::{IdempotencyHeader, JsonBody, StartQuery, detached};
use super::{AppState, batch, graph_path, identity};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::graph::Forwarding;
use crate::guard::IdempotencyKey;
use crate::ids::ApiVersion;
use crate::outcome::Outcome;
use crate::start::{Answer, StartRequest};

/// `/{ver}/servicePrincipals/...`: the Graph-compatible paths, a start (POST) or a job read
/// (GET, see `reads`).
pub async fn graph_route(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: axum::http::HeaderMap,
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
    // The request line and headers are slices of the connection's read buffer: each branch
    // takes what it needs from them and drops them before anything is awaited, so that a start
    // waiting on Graph does not keep that buffer (8 to 16 KB) alive.
    match (path.start, method) {
        (true, Method::POST) => {}
        (false, Method::GET) => {
            let select = super::reads::select(uri.query());
            let if_none_match = headers.get(header::IF_NONE_MATCH).and_then(detached);
            drop((uri, headers));
            // Boxed: a read's future (cache, single flight, Graph call) is about 15 KB, and
            // inline it would make every start's future that large too.
            let read = super::reads::read(&state, path, select, if_none_match, caller?, forwarding);
            return Box::pin(read).await;
        }
        (true, _) => return Err(ApiError::method_not_allowed("POST")),
        (false, _) => return Err(ApiError::method_not_allowed("GET")),
    }
    let caller = caller?;
    let query = StartQuery::parse(uri.query(), false)?;
    drop((uri, headers));
    let request = StartRequest {
        version: path.version,
        service_principal: path.service_principal?,
        job: path
            .job
            .ok_or_else(|| ApiError::method_not_allowed("GET"))??,
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
pub async fn start_identity(
    State(state): State<AppState>,
    uri: Uri,
    caller: Caller,
    forwarding: Forwarding,
    IdempotencyHeader(idempotency_key): IdempotencyHeader,
    axum::Extension(context): axum::Extension<RequestContext>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let query = StartQuery::parse(uri.query(), true)?;
    // Not kept while the starts run (see `graph_route`).
    drop(uri);
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
    // Each target once: its first item runs, the items naming it again share that answer.
    let (mut indexes, mut runs) = (Vec::new(), Vec::new());
    for (index, item) in parsed.iter().enumerate() {
        if let Ok(identity) = item
            && firsts[index] == index
        {
            let key = idempotency_key.as_ref().map(|key| key.for_item(index));
            let request = build(identity.clone(), key);
            let (starts, caller) = (Arc::clone(&state.starts), caller.clone());
            indexes.push(index);
            runs.push(async move { starts.start_detached(caller, request).await });
        }
    }
    let deadline = batch::deadline(context.received, state.server.request_timeout());
    let answers: std::collections::HashMap<usize, Answer> = indexes
        .into_iter()
        .zip(batch::run(runs, deadline).await)
        .collect();
    let ids = (
        context.request_id.as_str(),
        context.client_request_id.as_str(),
    );
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
    Ok(axum::Json(json!({ "responses": responses })).into_response())
}
