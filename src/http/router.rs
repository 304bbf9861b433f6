//! The router: every route, and the layers every request passes, in order.

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Method, StatusCode, header};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::{self, BearerScheme};
use super::{AppState, context, hooks, operations, starts};
use crate::error::ApiError;

#[derive(OpenApi)]
#[openapi(
    info(title = "syncjob-facade", description = "Starts Microsoft Entra provisioning (synchronization) jobs through Microsoft Graph, for callers that present an Entra access token issued for the facade's API."),
    paths(openapi::start_graph, openapi::start_graph_action, openapi::start_graph_app_id, openapi::read_job, openapi::list_jobs, openapi::read_job_app_id, openapi::list_jobs_app_id),
    modifiers(&BearerScheme),
    security(("bearer" = [])),
)]
struct ApiDoc;

/// The routes that axum can route and utoipa documents.
fn documented_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(starts::start_identity))
        .routes(routes!(operations::healthz))
        .routes(routes!(operations::readyz))
        .routes(routes!(hooks::deliver))
        .routes(routes!(operations::metrics))
}

/// The OpenAPI document of the service.
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented_routes().split_for_parts().1
}

/// The whole service: the routes, then the layers every request passes. A layer added later
/// wraps the ones before it, so the list below reads from the innermost to the outermost.
pub fn app(state: AppState) -> Router {
    let (router, doc) = documented_routes().split_for_parts();
    let timeout = state.server.request_timeout();
    let body_limit = state.server.body_limit_bytes;
    let cors_origins = state.server.cors_allowed_origins.clone();
    router
        // The Graph-compatible paths cannot be routed by axum (see graph_path).
        .route(
            "/{version}/{*rest}",
            axum::routing::any(starts::graph_route),
        )
        .merge(utoipa_swagger_ui::SwaggerUi::new("/docs").url("/openapi.json", doc))
        // The operator page, only when `[ui]` is configured (404 otherwise).
        .merge(state.ui.as_ref().map(crate::ui::routes).unwrap_or_default())
        .fallback(|| async { ApiError::not_found("The resource does not exist.") })
        .with_state(state)
        // Innermost: the largest body an extractor will read (413 beyond it).
        .layer(DefaultBodyLimit::max(body_limit))
        // Bounds the whole request, Graph calls included; outside the routes so that no
        // handler can run past it, inside the context so that its 504 gets the envelope.
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            timeout,
        ))
        // Only when origins are configured: answers browser preflights before routing, which
        // would otherwise call them 405.
        .layer(tower::util::option_layer(cors(&cors_origins)))
        // Outermost: ids on every answer, the envelope on every error and the access log and
        // metrics, so it sees the responses of every layer inside it.
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
            .allow_methods([Method::POST, Method::GET])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header("client-request-id"),
                header("idempotency-key"),
                header::IF_NONE_MATCH,
            ])
            .expose_headers([
                header("request-id"),
                header("client-request-id"),
                header::RETRY_AFTER,
                header("idempotent-replayed"),
                header::ETAG,
                header::AGE,
            ])
            .max_age(Duration::from_secs(600)),
    )
}
