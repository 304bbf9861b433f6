//! The OpenAPI document's parts that the handlers cannot describe themselves: the three
//! Graph-compatible start paths (served by one handler, `http::start_graph`, because axum cannot
//! route them), the shared schemas and the bearer security scheme.

#![allow(dead_code)] // the functions below exist to carry `#[utoipa::path]` documentation only

use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, ToSchema};

/// Graph's error envelope, used by every error answer.
#[derive(Serialize, ToSchema)]
pub struct GraphError {
    error: GraphErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct GraphErrorDetail {
    #[schema(example = "Authorization_RequestDenied")]
    code: String,
    message: String,
    #[serde(rename = "innerError")]
    inner_error: InnerError,
}

#[derive(Serialize, ToSchema)]
pub struct InnerError {
    #[schema(example = "2026-12-01T21:30:00")]
    date: String,
    #[serde(rename = "request-id")]
    request_id: String,
    #[serde(rename = "client-request-id")]
    client_request_id: String,
}

/// The `passThru=true` answer.
#[derive(Serialize, ToSchema)]
pub struct PassThru {
    #[schema(example = true)]
    value: bool,
}

/// IApplicationsIdentity: keys compare case-insensitively; the other identity keys are accepted
/// and ignored.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct IdentityObject {
    #[schema(format = "uuid")]
    service_principal_id: Option<String>,
    #[schema(format = "uuid")]
    app_id: Option<String>,
    #[schema(pattern = "^[A-Za-z0-9._-]{1,256}$")]
    synchronization_job_id: String,
}

/// Graph's JSON-batching response shape.
#[derive(Serialize, ToSchema)]
pub struct BatchResponse {
    responses: Vec<BatchEntry>,
}

#[derive(Serialize, ToSchema)]
pub struct BatchEntry {
    id: String,
    status: u16,
    headers: std::collections::BTreeMap<String, String>,
    body: Option<serde_json::Value>,
}

pub struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An Entra access token issued for the facade's API (not a Graph token).",
                    ))
                    .build(),
            ),
        );
    }
}

/// Starts a synchronization job, as Graph's `POST .../jobs/{id}/start`.
#[utoipa::path(
    post,
    path = "/{version}/servicePrincipals/{servicePrincipalId}/synchronization/jobs/{synchronizationJobId}/start",
    tag = "graph",
    params(
        ("version" = String, Path, description = "v1.0 or beta"),
        ("servicePrincipalId" = String, Path, format = "uuid"),
        ("synchronizationJobId" = String, Path, pattern = "^[A-Za-z0-9._-]{1,256}$"),
        ("whatIf" = Option<bool>, Query, description = "Report what would happen; the start is not sent."),
        ("passThru" = Option<bool>, Query, description = "Answer 200 {\"value\": true} instead of 204."),
        ("force" = Option<bool>, Query, description = "Start even when preflight finds the job Active."),
        ("client-request-id" = Option<String>, Header, description = "Forwarded to Graph and echoed; a new GUID when absent."),
        ("Idempotency-Key" = Option<String>, Header, description = "Same key, same caller, within 24 h: the first answer is replayed and nothing is sent."),
    ),
    responses(
        (status = 204, description = "Started"),
        (status = 200, description = "passThru or whatIf", body = PassThru),
        (status = 400, description = "Bad id or query", body = GraphError),
        (status = 401, description = "No or invalid bearer token", body = GraphError),
        (status = 403, description = "Permission missing", body = GraphError),
        (status = 409, description = "SyncJobAlreadyActive (preflight) or SyncJobStartCooldown (with Retry-After)", body = GraphError),
        (status = 422, description = "IdempotencyKeyReused: the key was used for another job", body = GraphError),
        (status = 429, description = "TooManyRequests: the caller is over its rate (Retry-After), or Graph throttled", body = GraphError),
        (status = 502, description = "Graph unreachable", body = GraphError),
        (status = 503, description = "ServiceUnavailable: guard store unreachable, circuit open, or load shed (Retry-After)", body = GraphError),
        (status = 504, description = "Graph timed out", body = GraphError),
    ),
)]
pub fn start_graph() {}

/// The PowerShell SDK's form of the start: `.../jobs/{id}/microsoft.graph.start`.
#[utoipa::path(
    post,
    path = "/{version}/servicePrincipals/{servicePrincipalId}/synchronization/jobs/{synchronizationJobId}/microsoft.graph.start",
    tag = "graph",
    params(
        ("version" = String, Path, description = "v1.0 or beta"),
        ("servicePrincipalId" = String, Path, format = "uuid"),
        ("synchronizationJobId" = String, Path, pattern = "^[A-Za-z0-9._-]{1,256}$"),
        ("whatIf" = Option<bool>, Query), ("passThru" = Option<bool>, Query), ("force" = Option<bool>, Query),
    ),
    responses((status = 204, description = "Started"), (status = 200, description = "passThru or whatIf", body = PassThru), (status = "4XX", description = "Refused", body = GraphError), (status = "5XX", description = "Graph failed", body = GraphError)),
)]
pub fn start_graph_action() {}

/// The start with the service principal named by its appId (Graph's alternate key).
#[utoipa::path(
    post,
    path = "/{version}/servicePrincipals(appId='{appId}')/synchronization/jobs/{synchronizationJobId}/start",
    tag = "graph",
    params(
        ("version" = String, Path, description = "v1.0 or beta"),
        ("appId" = String, Path, format = "uuid"),
        ("synchronizationJobId" = String, Path, pattern = "^[A-Za-z0-9._-]{1,256}$"),
        ("whatIf" = Option<bool>, Query), ("passThru" = Option<bool>, Query), ("force" = Option<bool>, Query),
    ),
    responses((status = 204, description = "Started"), (status = 200, description = "passThru or whatIf", body = PassThru), (status = "4XX", description = "Refused", body = GraphError), (status = "5XX", description = "Graph failed", body = GraphError)),
)]
pub fn start_graph_app_id() {}
