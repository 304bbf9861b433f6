//! `POST /hooks/{name}`: signed (or bearer) deliveries that start a hook's configured targets.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use crate::auth::{Caller, CallerKind};
use crate::error::ApiError;
use crate::graph::Forwarding;
use crate::ids::ServicePrincipalRef;
use crate::start::{StartRequest, Switches};
use crate::webhooks::{self, WebhookConfig};

/// The caller a verified signature stands for: the hook itself, named in the audit trail by its
/// name and the delivery id.
fn hook_caller(hook: &WebhookConfig, delivery_id: &str) -> Caller {
    Caller {
        kind: CallerKind::Webhook,
        tenant_id: String::new(),
        object_id: format!("webhook:{}", hook.name),
        app_id: Some(delivery_id.to_owned()),
        name: Some(hook.name.clone()),
        scopes: Vec::new(),
        roles: Vec::new(),
        directory_roles: Vec::new(),
    }
}

/// Starts every target of a hook.
///
/// `202 Accepted` with a per-target summary once the starts are decided; a repeated delivery
/// id returns the first summary and starts nothing.
#[utoipa::path(
    post,
    path = "/hooks/{name}",
    tag = "webhooks",
    security(("standardWebhooks" = []), ("githubSignature" = []), ("bearer" = [])),
    params(
        ("name" = String, Path, description = "The hook's configured name"),
        ("webhook-id" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "Standard Webhooks delivery id (1-255 visible ASCII characters); a bearer sender's is scoped to it"),
        ("webhook-timestamp" = Option<String>, Header, description = "Standard Webhooks Unix timestamp, within 5 minutes of now"),
        ("webhook-signature" = Option<String>, Header, description = "Standard Webhooks signatures: v1,<base64> ..."),
        ("X-Hub-Signature-256" = Option<String>, Header, description = "GitHub: sha256=<hex>"),
        ("X-GitHub-Delivery" = Option<String>, Header, description = "GitHub delivery id"),
    ),
    request_body(content = serde_json::Value, description = "Any payload (JSON or not); it is verified over its raw bytes, never used to choose a target", content_type = "application/json"),
    responses(
        (status = 202, description = "The starts are decided: one entry per configured target (started, suppressed by the guard, or failed). A repeated delivery id answers the first summary again", body = crate::http::openapi::HookSummary, headers(("Idempotent-Replayed" = String, description = "true for a repeated delivery"))),
        (status = 400, description = "BadRequest: a bearer sender's webhook-id out of bounds", body = crate::http::openapi::GraphError),
        (status = 401, description = "InvalidWebhookSignature (missing or bad signature, stale timestamp) or InvalidAuthenticationToken", body = crate::http::openapi::GraphError),
        (status = 403, description = "Authorization_RequestDenied: a bearer sender without the permission", body = crate::http::openapi::GraphError),
        (status = 404, description = "NotFound: no hook with this name", body = crate::http::openapi::GraphError),
        (status = 409, description = "DeliveryInProgress: the same delivery is being processed", body = crate::http::openapi::GraphError, headers(("Retry-After" = u64))),
        (status = 413, description = "RequestEntityTooLarge", body = crate::http::openapi::GraphError),
        (status = 503, description = "ServiceUnavailable: a start failed for a reason a retry may cure; redeliver later (targets that started are not started again)", body = crate::http::openapi::GraphError, headers(("Retry-After" = u64))),
    ),
)]
pub async fn deliver(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    caller: Result<Caller, ApiError>,
    forwarding: Forwarding,
    axum::Extension(context): axum::Extension<super::context::RequestContext>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let Some(hook) = state.hooks.iter().find(|h| h.name == name) else {
        return Err(ApiError::not_found(
            "No webhook with this name is configured.",
        ));
    };
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::payload_too_large(state.server.body_limit_bytes)
        } else {
            ApiError::bad_request("The request body could not be read.")
        }
    })?;
    // Who sent it, the delivery id it names, and the key its replays are known by.
    let (caller, delivery_id, replay_key) =
        if hook.allow_bearer && headers.contains_key(header::AUTHORIZATION) {
            // An Entra-token sender (Azure Monitor secure webhooks), authorised like any caller,
            // before anything else: a caller without the permission gets 403, and cannot claim a
            // delivery id. Its (unsigned) ids are its own, apart from the signed ones.
            let caller = caller?;
            // The token-level check alone; the per-target ones follow in the pipeline.
            state.starts.policy.authorize(&caller)?;
            let id = webhooks::bearer_delivery_id(&headers)?;
            let key = id
                .as_ref()
                .map(|id| format!("bearer:{}/{}:{id}", caller.tenant_id, caller.object_id));
            (caller, id, key)
        } else if hook.secrets.is_empty() {
            return Err(ApiError::missing_token());
        } else {
            let verified =
                webhooks::verify(hook, &headers, &body, jsonwebtoken::get_current_timestamp())?;
            (
                hook_caller(hook, &verified.delivery_id),
                Some(verified.delivery_id),
                Some(verified.replay_key),
            )
        };
    let guard = &state.starts.guard;
    if let Some(key) = &replay_key
        && let Some(first) = guard.begin_delivery(&hook.name, key).await?
    {
        metrics::counter!(crate::telemetry::WEBHOOK_DELIVERIES, "result" => "replayed")
            .increment(1);
        let replayed = [("idempotent-replayed", "true")];
        return Ok((StatusCode::ACCEPTED, replayed, axum::Json(first)).into_response());
    }
    // The targets start together (each through the guard on its own), so that a hook with
    // several targets answers within the request timeout.
    let mut runs = Vec::with_capacity(hook.targets.len());
    for target in &hook.targets {
        let request = StartRequest {
            version: hook.api_version,
            service_principal: ServicePrincipalRef::Id(target.service_principal_id.clone()),
            job: target.synchronization_job_id.clone(),
            switches: Switches::default(),
            forwarding: forwarding.clone(),
            idempotency_key: None,
            route: "webhook",
        };
        let (starts, caller) = (std::sync::Arc::clone(&state.starts), caller.clone());
        runs.push(async move { starts.start_detached(caller, request).await });
    }
    let deadline = super::batch::deadline(context.received, state.server.request_timeout());
    let answers = super::batch::run(runs, deadline).await;
    let mut results = Vec::with_capacity(answers.len());
    let mut retriable = false;
    for (target, answer) in hook.targets.iter().zip(answers) {
        let (entry, again) = webhooks::summary_entry(
            target.service_principal_id.as_str(),
            target.synchronization_job_id.as_str(),
            &answer.outcome,
        );
        retriable |= again;
        results.push(entry);
    }
    let summary = json!({ "hook": hook.name, "deliveryId": delivery_id, "results": results });
    // Senders redeliver on 5xx, not on 2xx: a start that failed for a reason a retry may cure
    // forgets the delivery and asks for a redelivery. Targets that did start are then held back
    // by the guard.
    if let Some(key) = &replay_key {
        let answer = (!retriable).then_some(&summary);
        guard.finish_delivery(&hook.name, key, answer).await;
    }
    if retriable {
        tracing::warn!(hook = %hook.name, %summary, "webhook delivery: a start failed; asking for a redelivery");
        metrics::counter!(crate::telemetry::WEBHOOK_DELIVERIES, "result" => "retry").increment(1);
        return Err(ApiError::service_unavailable(
            "A start of this delivery failed for a reason a retry may cure (Graph unavailable or throttling); redeliver later. Targets that started are not started again.",
            30,
        ));
    }
    metrics::counter!(crate::telemetry::WEBHOOK_DELIVERIES, "result" => "accepted").increment(1);
    Ok((StatusCode::ACCEPTED, axum::Json(summary)).into_response())
}
