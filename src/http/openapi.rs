//! The OpenAPI document's parts that the handlers cannot describe themselves: the three
//! Graph-compatible start paths (served by one handler, `http::start_graph`, because axum cannot
//! route them), the shared schemas and the bearer security scheme.

#![allow(dead_code)] // the functions below exist to carry `#[utoipa::path]` documentation only

use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
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

/// The Graph version a start is forwarded to.
#[derive(Serialize, ToSchema)]
pub enum GraphVersion {
    #[serde(rename = "v1.0")]
    V1,
    #[serde(rename = "beta")]
    Beta,
}

/// IApplicationsIdentity: keys compare case-insensitively; the other identity keys are accepted
/// and ignored, any other key is a 400 naming it. `ServicePrincipalId` wins over `AppId`; one
/// of them and `SynchronizationJobId` are required.
#[derive(Serialize)]
pub struct IdentityObject;

impl utoipa::PartialSchema for IdentityObject {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{
            AdditionalProperties, AllOfBuilder, AnyOfBuilder, ObjectBuilder, Schema, SchemaFormat,
            Type,
        };
        let string = || ObjectBuilder::new().schema_type(Type::String);
        let guid = |description: &str| {
            string()
                .format(Some(SchemaFormat::Custom("uuid".into())))
                .description(Some(description))
        };
        // The other keys of IApplicationsIdentity are accepted (and ignored); nothing else is.
        let mut fields =
            ObjectBuilder::new()
                .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)));
        for key in crate::http::identity::IDENTITY_KEYS {
            let ignored = "An IApplicationsIdentity key this operation ignores.";
            fields = fields.property(key, string().description(Some(ignored)));
        }
        let fields = fields
            .property(
                "ServicePrincipalId",
                guid("The service principal's object id."),
            )
            .property(
                "AppId",
                guid("The alternate key of the service principal, used when ServicePrincipalId is absent."),
            )
            .property(
                "SynchronizationJobId",
                string().pattern(Some("^[A-Za-z0-9._-]{1,256}$")),
            )
            .required("SynchronizationJobId");
        let named_by = |key: &str| ObjectBuilder::new().required(key);
        AllOfBuilder::new()
            .item(fields)
            .item(
                AnyOfBuilder::new()
                    .item(named_by("ServicePrincipalId"))
                    .item(named_by("AppId")),
            )
            .description(Some(
                "IApplicationsIdentity: keys compare case-insensitively, as PowerShell hashtables do; the other IApplicationsIdentity keys are accepted and ignored, any other key is a 400 naming it. ServicePrincipalId wins over AppId.",
            ))
            .examples([serde_json::json!({"ServicePrincipalId": "2f8d4c6a-1b3e-4a5f-9c7d-8e0f1a2b3c4d", "SynchronizationJobId": "salesforce.8a3c9c1e6f0b4b7e9d552f1e7c0a4b13.2f8d4c6a-1b3e-4a5f-9c7d-8e0f1a2b3c4d"})])
            .into()
    }
}

impl ToSchema for IdentityObject {}

/// One IApplicationsIdentity object, or an array of 1 to 100 of them.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum IdentityInput {
    One(IdentityObject),
    Many(IdentityArray),
}

/// 1 to 100 IApplicationsIdentity objects: each is authorised, guarded and audited on its own; the answer is a BatchResponse.
#[derive(Serialize, ToSchema)]
#[schema(min_items = 1, max_items = 100)]
pub struct IdentityArray(Vec<IdentityObject>);

// The schema's maxItems takes a literal only: it is the batch's bound.
const _: () = assert!(super::batch::MAX_ITEMS == 100);

/// Graph's JSON-batching response shape: one entry per array item, in order.
#[derive(Serialize, ToSchema)]
pub struct BatchResponse {
    responses: Vec<BatchEntry>,
}

/// One item's answer, as the single-object form would have answered it.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "0", "status": 204, "headers": {"request-id": "8d1c1c0e-2f6a-4c4e-9a55-0a3b5e6f7a8b", "client-request-id": "3f0b7c1e-9a2d-4b8e-8c55-1d2e3f4a5b6c"}}))]
pub struct BatchEntry {
    /// The item's index in the array, as a string.
    id: String,
    status: u16,
    headers: std::collections::BTreeMap<String, String>,
    /// Absent for 204; `{"value": true}` with passThru, the whatIf report, or the error envelope.
    body: Option<BatchBody>,
}

#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum BatchBody {
    PassThru(PassThru),
    WhatIf(Box<WhatIfReport>),
    Error(GraphError),
}

/// A 200 from the identity route: passThru, a whatIf report, or (for an array) the batch.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum IdentityAnswer {
    PassThru(PassThru),
    WhatIf(Box<WhatIfReport>),
    Batch(BatchResponse),
}

/// A 200 from a Graph-compatible start: passThru or a whatIf report.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum StartAnswer {
    PassThru(PassThru),
    WhatIf(Box<WhatIfReport>),
}

/// The `whatIf=true` report: decided as a real start would be, nothing sent.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WhatIfReport {
    #[schema(example = true)]
    what_if: bool,
    /// False when the guard would refuse the start (see `refusal`).
    would_start: bool,
    target: WhatIfTarget,
    /// The exact upstream request a start would send.
    request: WhatIfRequest,
    caller: WhatIfCaller,
    authorization: WhatIfAuthorization,
    preflight: WhatIfPreflight,
    guard: WhatIfGuard,
    /// The refusal a start would meet, or null.
    refusal: Option<WhatIfRefusal>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WhatIfTarget {
    api_version: GraphVersion,
    #[schema(format = "uuid")]
    service_principal_id: String,
    /// The appId the request named, when it used the alternate key.
    #[schema(format = "uuid")]
    app_id: Option<String>,
    synchronization_job_id: String,
}

#[derive(Serialize, ToSchema)]
pub struct WhatIfRequest {
    #[schema(example = "POST")]
    method: String,
    #[schema(
        example = "https://graph.microsoft.com/v1.0/servicePrincipals/2f8d4c6a-1b3e-4a5f-9c7d-8e0f1a2b3c4d/synchronization/jobs/salesforce.1/start"
    )]
    url: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CallerKind {
    Delegated,
    Application,
    Webhook,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WhatIfCaller {
    kind: CallerKind,
    tenant_id: String,
    object_id: String,
    app_id: Option<String>,
    name: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WhatIfAuthorization {
    #[schema(example = "allowed")]
    decision: String,
    grant: WhatIfGrant,
    /// True when the caller's ownership of the service principal was checked (OwnedBy).
    ownership_checked: bool,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum GrantKind {
    All,
    OwnedBy,
    Hook,
}

#[derive(Serialize, ToSchema)]
pub struct WhatIfGrant {
    grant: GrantKind,
    /// The permission that allowed it (absent for a hook).
    #[schema(example = "Synchronization.ReadWrite.All")]
    permission: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct WhatIfPreflight {
    enabled: bool,
    /// The job's `status.code` when preflight read it.
    #[schema(example = "Paused")]
    status: Option<String>,
    force: bool,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    Memory,
    Redis,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WhatIfGuard {
    store: StoreKind,
    cooldown_remaining_secs: Option<u64>,
    idempotency_key: bool,
}

#[derive(Serialize, ToSchema)]
pub struct WhatIfRefusal {
    #[schema(example = 409)]
    status: u16,
    #[schema(example = "SyncJobStartCooldown")]
    code: String,
    message: String,
}

/// The answer to a webhook delivery: one entry per configured target.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"hook": "quarantine-alert", "deliveryId": "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", "results": [{"servicePrincipalId": "2f8d4c6a-1b3e-4a5f-9c7d-8e0f1a2b3c4d", "synchronizationJobId": "salesforce.1", "outcome": "started", "status": 204, "requestId": "8d1c1c0e-2f6a-4c4e-9a55-0a3b5e6f7a8b"}]}))]
pub struct HookSummary {
    hook: String,
    delivery_id: Option<String>,
    results: Vec<HookResult>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HookOutcome {
    Started,
    Suppressed,
    Failed,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HookResult {
    #[schema(format = "uuid")]
    service_principal_id: String,
    synchronization_job_id: String,
    outcome: HookOutcome,
    status: u16,
    /// Graph's request-id, when Graph answered.
    request_id: Option<String>,
    /// suppressed: the guard's code (SyncJobStartCooldown, SyncJobAlreadyActive).
    reason: Option<String>,
    message: Option<String>,
    /// failed: the error (Graph's or the facade's).
    error: Option<serde_json::Value>,
}

/// A synchronization job as Graph answers it (only the `$select`ed properties when given), with
/// the guard's view as OData instance annotations.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SynchronizationJob {
    id: Option<String>,
    template_id: Option<String>,
    /// `status.code`: NotConfigured, NotRun, Active, Paused or Quarantine; `status.quarantine`
    /// holds the reason, `status.lastExecution` the last run; as Graph answers.
    #[schema(value_type = Option<Object>)]
    status: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    schedule: Option<serde_json::Value>,
    /// When a start would no longer be refused for its cooldown (RFC 3339 UTC); null when it
    /// would not be.
    #[serde(rename = "@syncjob.startAllowedAt")]
    #[schema(format = DateTime)]
    start_allowed_at: Option<String>,
    /// The last start the facade let through, or null.
    #[serde(rename = "@syncjob.lastStart")]
    last_start: Option<LastStart>,
}

#[derive(Serialize, ToSchema)]
pub struct LastStart {
    #[schema(format = DateTime)]
    at: String,
    /// The caller's display name, or its app id.
    caller: String,
}

/// The jobs of a service principal.
#[derive(Serialize, ToSchema)]
pub struct SynchronizationJobList {
    value: Vec<SynchronizationJob>,
}

/// `GET /healthz`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    status: String,
}

/// `GET /readyz` when ready.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Ready {
    #[schema(example = "ready")]
    status: String,
    #[schema(example = "closed")]
    graph_circuit: String,
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
        components.add_security_scheme(
            "standardWebhooks",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "webhook-signature",
                "Standard Webhooks: `v1,<base64 HMAC-SHA256 of {webhook-id}.{webhook-timestamp}.{body}>` with the hook's `whsec_` secret, several space-separated; `webhook-id` and `webhook-timestamp` (within 5 minutes) are required too.",
            ))),
        );
        components.add_security_scheme(
            "githubSignature",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Hub-Signature-256",
                "GitHub: `sha256=<hex HMAC-SHA256 of the body>` with the hook's secret.",
            ))),
        );
    }
}

/// The documentation of one Graph-compatible start path; the three differ only in the path and
/// in how the service principal is named.
macro_rules! graph_start {
    ($name:ident, $path:literal, $summary:literal, ($sp_name:literal, $sp_description:literal)) => {
        #[doc = $summary]
        #[utoipa::path(
            post,
            path = $path,
            tag = "graph",
            params(
                ("version" = GraphVersion, Path, description = "The Graph version forwarded to"),
                ($sp_name = String, Path, format = "uuid", description = $sp_description),
                ("synchronizationJobId" = String, Path, pattern = "^[A-Za-z0-9._-]{1,256}$"),
                ("whatIf" = Option<bool>, Query, description = "Report what would happen; the start is not sent (a preflight read may be). Named once."),
                ("passThru" = Option<bool>, Query, description = "Answer 200 {\"value\": true} instead of 204. Named once."),
                ("force" = Option<bool>, Query, description = "Start even when preflight finds the job Active (still authorised, guarded by the cooldown, audited). Named once."),
                ("client-request-id" = Option<String>, Header, description = "Forwarded to Graph and echoed; a new GUID when absent or not 1-128 visible ASCII characters."),
                ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "1-255 visible ASCII characters. Same key, same caller, within 24 h: the first answer is replayed (with Idempotent-Replayed: true) and nothing is sent."),
            ),
            responses(
                (status = 204, description = "Started: Graph accepted the start", headers(
                    ("request-id" = String, description = "Graph's request id"),
                    ("client-request-id" = String, description = "The caller's, or the one made for it"),
                    ("x-ms-ags-diagnostic" = String, description = "Graph's diagnostic header, when sent"),
                    ("Idempotent-Replayed" = String, description = "true when this is a replayed answer"),
                )),
                (status = 200, description = "passThru=true (`{\"value\": true}`) or the whatIf report", body = StartAnswer, headers(
                    ("request-id" = String), ("client-request-id" = String),
                    ("Idempotent-Replayed" = String, description = "true when this is a replayed answer"),
                )),
                (status = 400, description = "BadRequest: a bad id, query parameter or header (named in the message)", body = GraphError),
                (status = 401, description = "InvalidAuthenticationToken: no or invalid bearer token (WWW-Authenticate)", body = GraphError, headers(("WWW-Authenticate" = String))),
                (status = 403, description = "Authorization_RequestDenied: permission, directory role or ownership missing; personal accounts", body = GraphError, headers(("WWW-Authenticate" = String))),
                (status = 404, description = "Graph's 404 (no such service principal or job), passed through", body = GraphError),
                (status = 409, description = "SyncJobAlreadyActive (preflight) or SyncJobStartCooldown", body = GraphError, headers(("Retry-After" = u64, description = "Whole seconds until the cooldown ends (SyncJobStartCooldown)"))),
                (status = 422, description = "IdempotencyKeyReused: the key was used for another job", body = GraphError),
                (status = 429, description = "TooManyRequests: the caller is over its rate, or Graph throttled", body = GraphError, headers(("Retry-After" = u64, description = "Whole seconds"))),
                (status = 502, description = "BadGateway: Graph unreachable, or the facade's credential failed", body = GraphError),
                (status = 503, description = "ServiceUnavailable: guard store unreachable, circuit open, or load shed", body = GraphError, headers(("Retry-After" = u64, description = "Whole seconds"))),
                (status = 504, description = "GatewayTimeout: Graph or the request timed out", body = GraphError),
            ),
        )]
        pub fn $name() {}
    };
}

graph_start!(
    start_graph,
    "/{version}/servicePrincipals/{servicePrincipalId}/synchronization/jobs/{synchronizationJobId}/start",
    "Starts a synchronization job, as Graph's `POST .../jobs/{id}/start`.",
    ("servicePrincipalId", "The service principal's object id")
);

graph_start!(
    start_graph_action,
    "/{version}/servicePrincipals/{servicePrincipalId}/synchronization/jobs/{synchronizationJobId}/microsoft.graph.start",
    "The PowerShell SDK's form of the start: `.../jobs/{id}/microsoft.graph.start`.",
    ("servicePrincipalId", "The service principal's object id")
);

graph_start!(
    start_graph_app_id,
    "/{version}/servicePrincipals(appId='{appId}')/synchronization/jobs/{synchronizationJobId}/start",
    "The start with the service principal named by its appId (Graph's alternate key).",
    (
        "appId",
        "The application (client) id of the service principal"
    )
);

/// The documentation of one job-read path.
macro_rules! graph_read {
    ($name:ident, $path:literal, $summary:literal, ($sp_name:literal, $sp_description:literal), $body:ty $(, $job:literal)?) => {
        #[doc = $summary]
        #[utoipa::path(
            get,
            path = $path,
            tag = "graph",
            params(
                ("version" = GraphVersion, Path, description = "The Graph version read from"),
                ($sp_name = String, Path, format = "uuid", description = $sp_description),
                $(($job = String, Path, pattern = "^[A-Za-z0-9._-]{1,256}$"),)?
                ("$select" = Option<String>, Query, pattern = "^[A-Za-z0-9,_/. ]{1,256}$", description = "Passed on to Graph; other OData options are ignored. Named once."),
                ("If-None-Match" = Option<String>, Header, description = "The ETag of an earlier answer: 304 while it is still current."),
                ("client-request-id" = Option<String>, Header, description = "Forwarded to Graph and echoed."),
            ),
            responses(
                (status = 200, description = "Graph's answer with the guard's view; identical reads within reads.cache_secs share one Graph GET", body = $body, headers(
                    ("ETag" = String, description = "Strong; changes when the job or the guard's view does"),
                    ("Cache-Control" = String, description = "private, max-age=<seconds left>"),
                    ("Age" = u64, description = "Seconds since Graph answered"),
                    ("request-id" = String, description = "Graph's request id"),
                    ("client-request-id" = String),
                )),
                (status = 304, description = "Not modified: If-None-Match names the current ETag", headers(("ETag" = String), ("Cache-Control" = String), ("Age" = u64))),
                (status = 400, description = "BadRequest: a bad id or query", body = GraphError),
                (status = 401, description = "InvalidAuthenticationToken", body = GraphError, headers(("WWW-Authenticate" = String))),
                (status = 403, description = "Authorization_RequestDenied: read permission, directory role or ownership missing", body = GraphError, headers(("WWW-Authenticate" = String))),
                (status = 404, description = "Graph's 404, passed through", body = GraphError),
                (status = 429, description = "TooManyRequests: the caller is over its rate (a read the cache cannot answer is charged), or Graph throttled", body = GraphError, headers(("Retry-After" = u64))),
                (status = 502, description = "BadGateway", body = GraphError),
                (status = 503, description = "ServiceUnavailable", body = GraphError, headers(("Retry-After" = u64))),
                (status = 504, description = "GatewayTimeout", body = GraphError),
            ),
        )]
        pub fn $name() {}
    };
}

graph_read!(
    read_job,
    "/{version}/servicePrincipals/{servicePrincipalId}/synchronization/jobs/{synchronizationJobId}",
    "Reads a synchronization job, as Graph's `GET .../jobs/{id}`.",
    ("servicePrincipalId", "The service principal's object id"),
    SynchronizationJob,
    "synchronizationJobId"
);

graph_read!(
    list_jobs,
    "/{version}/servicePrincipals/{servicePrincipalId}/synchronization/jobs",
    "Lists the synchronization jobs of a service principal, as Graph's `GET .../jobs`.",
    ("servicePrincipalId", "The service principal's object id"),
    SynchronizationJobList
);

graph_read!(
    read_job_app_id,
    "/{version}/servicePrincipals(appId='{appId}')/synchronization/jobs/{synchronizationJobId}",
    "Reads a synchronization job of the service principal named by its appId.",
    (
        "appId",
        "The application (client) id of the service principal"
    ),
    SynchronizationJob,
    "synchronizationJobId"
);

graph_read!(
    list_jobs_app_id,
    "/{version}/servicePrincipals(appId='{appId}')/synchronization/jobs",
    "Lists the synchronization jobs of the service principal named by its appId.",
    (
        "appId",
        "The application (client) id of the service principal"
    ),
    SynchronizationJobList
);
