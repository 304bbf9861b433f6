//! Operations routes: process alive, ready, and the metrics.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use crate::error::ApiError;

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(()), responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain; version=0.0.4")))]
pub async fn metrics() -> impl IntoResponse {
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
pub async fn healthz() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

/// Ready: signing keys loaded, the Graph credential can obtain a token, the guard store answers.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()), responses((status = 200, description = "Ready", body = crate::http::openapi::Ready), (status = 503, description = "Not ready, with the reasons", body = crate::http::openapi::GraphError, headers(("Retry-After" = u64)))))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let mut problems = Vec::new();
    if state.draining.load(std::sync::atomic::Ordering::SeqCst) {
        problems.push("shutting down".to_owned());
    }
    if !state.auth.keys().is_loaded() {
        problems.push("signing keys are not loaded".to_owned());
    }
    // The reasons are named, their details (Entra's and Redis's messages) only logged: this
    // route answers anyone.
    if let Err(error) = state.starts.graph.credential().token().await {
        tracing::warn!(%error, "not ready: no Graph token");
        problems.push("the Graph credential cannot obtain a token".to_owned());
    }
    if let Err(error) = state.starts.guard.ping().await {
        tracing::warn!(%error, "not ready: guard store unreachable");
        problems.push("the guard store is unreachable".to_owned());
    }
    if problems.is_empty() {
        // Graph itself failing does not make the facade unready (each start answers 502/503);
        // the breaker's state is reported for operators.
        let breaker = state.starts.graph.breaker_state().as_str();
        axum::Json(json!({"status": "ready", "graphCircuit": breaker})).into_response()
    } else {
        ApiError::service_unavailable(format!("Not ready: {}.", problems.join("; ")), 5)
            .into_response()
    }
}
