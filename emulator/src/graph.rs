//! The Microsoft Graph side of the emulator: the synchronization-job API (start, pause, get),
//! service principal owners and the `appId` alternate key, with Graph's token checks,
//! permission model, response headers and error envelope.
//!
//! One fallback handler parses the path itself: axum cannot route `servicePrincipals(appId='…')`,
//! and Graph matches its static segments case-insensitively.

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

use super::conn::ConnKill;
use super::keys::Jwt;
use super::{
    Emulator, GRAPH_AUDIENCE, Operation, RecordedCall, SeedServicePrincipal, header_str, unix_now,
};

const SYNC_READ_WRITE: &str = "Synchronization.ReadWrite.All";
const SYNC_READ: &str = "Synchronization.Read.All";
/// Global Reader may read synchronization jobs, not start them.
const GLOBAL_READER: &str = "f2ef992c-3afb-46b9-b7cf-a126ee74c451";
const OWNED_BY: &str = "Application.ReadWrite.OwnedBy";
const DIRECTORY_READERS: [&str; 5] = [
    "Application.Read.All",
    "Application.ReadWrite.All",
    OWNED_BY,
    SYNC_READ_WRITE,
    "Directory.Read.All",
];
/// Application Administrator, Cloud Application Administrator, Hybrid Identity Administrator,
/// Global Administrator: the roles a delegated caller needs to run synchronization jobs.
const SYNC_ADMIN_ROLES: [&str; 4] = [
    "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3",
    "158c047a-c907-4556-b7ef-446551a6b5f7",
    "8ac3fc64-6eca-42ea-9e69-59f4c7b60eb2",
    "62e90394-69f5-4237-9190-012177145e10",
];
/// Graph's own application id, which also appears as an access-token audience.
const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
const ODATA_JSON: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";
const DIAGNOSTIC: &str = r#"{"ServerInfo":{"DataCenter":"Emulator","Slice":"E","Ring":"0","ScaleUnit":"000","RoleInstance":"EMU0"}}"#;
const KNOWN_SEGMENTS: [&str; 7] = [
    "owners",
    "synchronization",
    "jobs",
    "start",
    "pause",
    "microsoft.graph.start",
    "microsoft.graph.pause",
];

pub(crate) struct GraphError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl GraphError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn unauthenticated(message: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            message,
        )
    }

    fn denied() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        )
    }

    fn not_found(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            format!(
                "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
            ),
        )
    }

    fn bad_segment(segment: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("Resource not found for the segment '{segment}'."),
        )
    }

    /// What Graph says when throttled or failing; used for injected faults.
    fn for_status(status: StatusCode) -> Self {
        let code = match status.as_u16() {
            400 => "BadRequest",
            401 => "InvalidAuthenticationToken",
            403 => "Authorization_RequestDenied",
            404 => "Request_ResourceNotFound",
            429 => "TooManyRequests",
            503 => "ServiceUnavailable",
            504 => "GatewayTimeout",
            _ => "UnknownError",
        };
        let message = status.canonical_reason().unwrap_or("Unknown error");
        Self::new(status, code, format!("{message}."))
    }
}

/// Per-request identifiers that every Graph answer carries.
struct Ctx {
    request_id: String,
    client_request_id: String,
}

impl Ctx {
    fn new(headers: &HeaderMap) -> Self {
        Self {
            request_id: uuid::Uuid::new_v4().to_string(),
            client_request_id: header_str(headers, "client-request-id")
                .map(str::to_owned)
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        }
    }

    fn respond(&self, status: StatusCode, body: Option<(&'static str, Value)>) -> Response {
        let mut response = match body {
            Some((content_type, body)) => (
                status,
                [(header::CONTENT_TYPE, content_type)],
                body.to_string(),
            )
                .into_response(),
            None => status.into_response(),
        };
        let headers = response.headers_mut();
        for (name, value) in [
            ("request-id", self.request_id.as_str()),
            ("client-request-id", self.client_request_id.as_str()),
            ("x-ms-ags-diagnostic", DIAGNOSTIC),
        ] {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(name, value);
            }
        }
        response
    }

    fn ok(&self, body: Value) -> Response {
        self.respond(StatusCode::OK, Some((ODATA_JSON, body)))
    }

    fn error(&self, error: GraphError) -> Response {
        let date = OffsetDateTime::now_utc()
            .format(format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second]"
            ))
            .unwrap_or_default();
        let body = json!({"error": {
            "code": error.code,
            "message": error.message,
            "innerError": {
                "date": date,
                "request-id": self.request_id,
                "client-request-id": self.client_request_id,
            },
        }});
        let mut response = self.respond(error.status, Some(("application/json", body)));
        if error.status == StatusCode::UNAUTHORIZED {
            let challenge = format!(
                r#"Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="{GRAPH_APP_ID}""#
            );
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, value);
            }
        }
        response
    }
}

enum Target {
    Id(String),
    AppId(String),
}

struct Route {
    op: Operation,
    version: String,
    target: Target,
    job_id: Option<String>,
    /// The `$select` query option, on reads.
    select: Option<String>,
}

impl Route {
    fn method(&self) -> Method {
        match self.op {
            Operation::Start | Operation::Pause => Method::POST,
            _ => Method::GET,
        }
    }
}

fn parse(path: &str) -> Result<Route, GraphError> {
    let segments: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(|segment| percent_decode_str(segment).decode_utf8_lossy().into_owned())
        .collect();
    let (version, rest) = segments
        .split_first()
        .expect("split yields at least one item");
    let version = version.to_ascii_lowercase();
    if version != "v1.0" && version != "beta" {
        return Err(GraphError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("Invalid version: {version}"),
        ));
    }
    let entity = rest.first().map_or("", String::as_str);
    let (target, rest) = match alternate_key(entity) {
        Some(app_id) => (Target::AppId(app_id), &rest[1..]),
        None if entity.eq_ignore_ascii_case("servicePrincipals") && rest.len() > 1 => {
            (Target::Id(rest[1].clone()), &rest[2..])
        }
        None => return Err(GraphError::bad_segment(entity)),
    };
    let lower: Vec<String> = rest.iter().map(|s| s.to_ascii_lowercase()).collect();
    let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
    let job_id = rest.get(2).cloned();
    let op = match (&target, lower.as_slice()) {
        (Target::AppId(_), []) => Operation::ResolveAppId,
        (_, ["owners"]) => Operation::Owners,
        (_, ["synchronization", "jobs"]) => Operation::ListJobs,
        (_, ["synchronization", "jobs", _]) => Operation::GetJob,
        (
            _,
            [
                "synchronization",
                "jobs",
                _,
                "start" | "microsoft.graph.start",
            ],
        ) => Operation::Start,
        (
            _,
            [
                "synchronization",
                "jobs",
                _,
                "pause" | "microsoft.graph.pause",
            ],
        ) => Operation::Pause,
        _ => return Err(GraphError::bad_segment(unknown_segment(rest, entity))),
    };
    Ok(Route {
        op,
        version,
        target,
        job_id,
        select: None,
    })
}

/// `servicePrincipals(appId='…')` → the appId.
fn alternate_key(segment: &str) -> Option<String> {
    let (entity, key) = segment.split_once('(')?;
    let (name, value) = key.strip_suffix(')')?.split_once('=')?;
    let value = value.trim().strip_prefix('\'')?.strip_suffix('\'')?;
    (entity.eq_ignore_ascii_case("servicePrincipals") && name.trim().eq_ignore_ascii_case("appId"))
        .then(|| value.to_owned())
}

/// The first segment Graph would fail to resolve; the job id position is free-form.
fn unknown_segment<'a>(rest: &'a [String], entity: &'a str) -> &'a str {
    let job_path = rest.len() > 2
        && rest[0].eq_ignore_ascii_case("synchronization")
        && rest[1].eq_ignore_ascii_case("jobs");
    let free_form = |i: usize| job_path && i == 2;
    let known = |s: &str| KNOWN_SEGMENTS.iter().any(|k| k.eq_ignore_ascii_case(s));
    rest.iter()
        .enumerate()
        .find(|(i, s)| !free_form(*i) && !known(s))
        .map(|(_, s)| s)
        .or(rest.last())
        .map_or(entity, String::as_str)
}

pub(crate) async fn dispatch(
    State(emu): State<Emulator>,
    ConnectInfo(kill): ConnectInfo<ConnKill>,
    request: Request,
) -> Response {
    let (parts, _body) = request.into_parts();
    let ctx = Ctx::new(&parts.headers);
    let mut route = match parse(parts.uri.path()) {
        Ok(route) => route,
        Err(error) => return ctx.error(error),
    };
    route.select = parts.uri.query().and_then(|query| {
        query.split('&').find_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            (percent_decode_str(name).decode_utf8_lossy() == "$select")
                .then(|| percent_decode_str(value).decode_utf8_lossy().into_owned())
        })
    });
    if parts.method != route.method() {
        let mut response = ctx.error(GraphError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "Request_BadRequest",
            "Specified HTTP method is not allowed for the request uri.",
        ));
        response.headers_mut().insert(
            header::ALLOW,
            HeaderValue::from_str(route.method().as_str())
                .expect("method names are valid header values"),
        );
        return response;
    }
    let token = bearer(&parts.headers).and_then(Jwt::parse);
    let mut call = RecordedCall::new(route.op, &parts);
    if let Some(token) = &token {
        call.token_app_id = token
            .claim_str("appid")
            .or(token.claim_str("azp"))
            .map(str::to_owned);
        call.token_object_id = token.claim_str("oid").map(str::to_owned);
        call.token_idtyp = token.claim_str("idtyp").map(str::to_owned);
    }
    let work =
        || answer(&emu, &ctx, &route, &parts.headers, token).unwrap_or_else(|e| ctx.error(e));
    emu.observe(
        call,
        kill,
        |status| ctx.error(GraphError::for_status(status)),
        work,
    )
    .await
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = header_str(headers, "authorization")?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn answer(
    emu: &Emulator,
    ctx: &Ctx,
    route: &Route,
    headers: &HeaderMap,
    token: Option<Jwt>,
) -> Result<Response, GraphError> {
    let claims = authenticate(emu, headers, token)?;
    let sp = match &route.target {
        Target::Id(id) => {
            if uuid::Uuid::parse_str(id).is_err() {
                return Err(GraphError::new(
                    StatusCode::BAD_REQUEST,
                    "Request_BadRequest",
                    format!("Invalid object identifier '{id}'."),
                ));
            }
            emu.service_principal(id)
                .ok_or_else(|| GraphError::not_found(id))?
        }
        Target::AppId(app_id) => emu
            .seed()
            .service_principals
            .iter()
            .find(|sp| sp.app_id.eq_ignore_ascii_case(app_id))
            .ok_or_else(|| GraphError::not_found(app_id))?,
    };
    authorize(route.op, &claims, sp)?;
    let context =
        |fragment: &str| format!("{}/{}/$metadata#{fragment}", emu.base_url(), route.version);
    match route.op {
        Operation::ResolveAppId => Ok(ctx.ok(json!({
            "@odata.context": context("servicePrincipals/$entity"),
            "id": sp.id,
            "appId": sp.app_id,
            "displayName": sp.display_name,
        }))),
        Operation::Owners => {
            let owners: Vec<Value> = sp.owners.iter().map(|id| owner_json(emu, id)).collect();
            Ok(ctx.ok(json!({"@odata.context": context("directoryObjects"), "value": owners})))
        }
        Operation::ListJobs => {
            let jobs: Vec<Value> = sp
                .jobs
                .iter()
                .map(|job| {
                    let status = emu.job_status(&sp.id, &job.id).unwrap_or_default();
                    let mut value = job_json(
                        None,
                        &job.id,
                        &job.template_id,
                        &status,
                        emu.last_start(&sp.id, &job.id),
                    );
                    select(&mut value, route.select.as_deref());
                    value
                })
                .collect();
            let fragment = format!("servicePrincipals('{}')/synchronization/jobs", sp.id);
            Ok(ctx.ok(json!({"@odata.context": context(&fragment), "value": jobs})))
        }
        Operation::GetJob | Operation::Start | Operation::Pause => {
            let job_id = route.job_id.as_deref().unwrap_or_default();
            let status = emu.job_status(&sp.id, job_id).ok_or_else(|| {
                GraphError::new(
                    StatusCode::NOT_FOUND,
                    "ResourceNotFound",
                    format!("The synchronization job '{job_id}' was not found for service principal '{}'.", sp.id),
                )
            })?;
            job_action(emu, ctx, route, sp, job_id, &status, context)
        }
        Operation::Token | Operation::Jwks | Operation::Discovery => {
            unreachable!("Graph routes never parse to Entra operations")
        }
    }
}

fn job_action(
    emu: &Emulator,
    ctx: &Ctx,
    route: &Route,
    sp: &SeedServicePrincipal,
    job_id: &str,
    status: &str,
    context: impl Fn(&str) -> String,
) -> Result<Response, GraphError> {
    let op = route.op;
    if op == Operation::GetJob {
        let template_id = sp
            .jobs
            .iter()
            .find(|job| job.id == job_id)
            .map_or("", |job| job.template_id.as_str());
        let fragment = format!(
            "servicePrincipals('{}')/synchronization/jobs/$entity",
            sp.id
        );
        let mut job = job_json(
            Some(&context(&fragment)),
            job_id,
            template_id,
            status,
            emu.last_start(&sp.id, job_id),
        );
        select(&mut job, route.select.as_deref());
        return Ok(ctx.ok(job));
    }
    if status == "NotConfigured" {
        return Err(GraphError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("Job '{job_id}' is not configured: it has no synchronization schema."),
        ));
    }
    let next = if op == Operation::Start {
        "Active"
    } else {
        "Paused"
    };
    let delay = emu.start_delay();
    if op == Operation::Start && !delay.is_zero() {
        // As Entra does: the start is accepted at once, the job begins to run a little later.
        let (emu, sp, job) = (emu.clone(), sp.id.clone(), job_id.to_owned());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            emu.try_set_job_status(&sp, &job, next);
            emu.record_start(&sp, &job);
        });
    } else {
        emu.try_set_job_status(&sp.id, job_id, next);
        if op == Operation::Start {
            emu.record_start(&sp.id, job_id);
        }
    }
    Ok(ctx.respond(StatusCode::NO_CONTENT, None))
}

fn authenticate(
    emu: &Emulator,
    headers: &HeaderMap,
    token: Option<Jwt>,
) -> Result<Value, GraphError> {
    if bearer(headers).is_none_or(str::is_empty) {
        return Err(GraphError::unauthenticated("Access token is empty."));
    }
    let token = token.ok_or_else(|| {
        GraphError::unauthenticated("CompactToken parsing failed with error code: 80049217")
    })?;
    if !emu.keys().verifies(&token) {
        return Err(GraphError::unauthenticated(
            "Access token validation failure.",
        ));
    }
    let audience = token
        .claim_str("aud")
        .unwrap_or_default()
        .trim_end_matches('/');
    if audience != GRAPH_AUDIENCE && audience != GRAPH_APP_ID {
        return Err(GraphError::unauthenticated(
            "Access token validation failure. Invalid audience.",
        ));
    }
    let now = unix_now();
    let time_claim = |name: &str| token.claims.get(name).and_then(Value::as_u64);
    if time_claim("exp").is_none_or(|exp| exp <= now) {
        return Err(GraphError::unauthenticated(
            "Lifetime validation failed, the token is expired.",
        ));
    }
    // Entra allows five minutes of clock skew on nbf.
    if time_claim("nbf").is_some_and(|nbf| nbf > now + 300) {
        return Err(GraphError::unauthenticated(
            "Lifetime validation failed, the token is not yet valid.",
        ));
    }
    Ok(token.claims)
}

fn authorize(op: Operation, claims: &Value, sp: &SeedServicePrincipal) -> Result<(), GraphError> {
    let list = |name: &str| -> Vec<String> {
        match claims.get(name) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            Some(Value::String(text)) => text.split_whitespace().map(str::to_owned).collect(),
            _ => Vec::new(),
        }
    };
    let is_app =
        claims.get("idtyp").and_then(Value::as_str) == Some("app") || claims.get("scp").is_none();
    let granted = if is_app { list("roles") } else { list("scp") };
    let has = |name: &str| granted.iter().any(|g| g.eq_ignore_ascii_case(name));
    let oid = claims
        .get("oid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let owner = || has(OWNED_BY) && sp.owners.iter().any(|o| o.eq_ignore_ascii_case(oid));
    let wids = list("wids");
    let has_role = |roles: &[&str]| {
        wids.iter()
            .any(|w| roles.contains(&w.to_ascii_lowercase().as_str()))
    };
    let allowed = match op {
        // Reads: Graph's Synchronization.Read.All or ReadWrite.All; a delegated reader needs a
        // start role or Global Reader.
        Operation::GetJob | Operation::ListJobs if is_app => {
            has(SYNC_READ) || has(SYNC_READ_WRITE) || owner()
        }
        Operation::GetJob | Operation::ListJobs => {
            (has(SYNC_READ) || has(SYNC_READ_WRITE))
                && (has_role(&SYNC_ADMIN_ROLES) || has_role(&[GLOBAL_READER]))
        }
        Operation::Start | Operation::Pause if is_app => has(SYNC_READ_WRITE) || owner(),
        Operation::Start | Operation::Pause => has(SYNC_READ_WRITE) && has_role(&SYNC_ADMIN_ROLES),
        _ => DIRECTORY_READERS.iter().any(|name| has(name)),
    };
    if allowed {
        Ok(())
    } else {
        Err(GraphError::denied())
    }
}

fn owner_json(emu: &Emulator, id: &str) -> Value {
    if let Some(user) = emu
        .seed()
        .users
        .iter()
        .find(|u| u.object_id.eq_ignore_ascii_case(id))
    {
        return json!({
            "@odata.type": "#microsoft.graph.user",
            "id": user.object_id,
            "displayName": user.name,
            "userPrincipalName": user.preferred_username,
        });
    }
    json!({"@odata.type": "#microsoft.graph.servicePrincipal", "id": id})
}

/// Keeps only the `$select`ed properties (and the OData annotations), as Graph answers.
fn select(job: &mut Value, selected: Option<&str>) {
    let Some(selected) = selected else { return };
    let keep: Vec<String> = selected
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    if let Value::Object(map) = job {
        map.retain(|key, _| key.starts_with('@') || keep.contains(&key.to_ascii_lowercase()));
    }
}

fn job_json(
    context: Option<&str>,
    job_id: &str,
    template_id: &str,
    status: &str,
    last_start: Option<String>,
) -> Value {
    const NEVER: &str = "0001-01-01T00:00:00Z";
    // Times relative to when the emulator started, so that a job reads the same until it changes.
    static STARTED: std::sync::OnceLock<OffsetDateTime> = std::sync::OnceLock::new();
    let now = *STARTED.get_or_init(|| {
        OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    });
    let stamp = |offset: time::Duration| (now + offset).format(&Rfc3339).unwrap_or_default();
    let quarantine = (status == "Quarantine").then(|| {
        json!({
            "currentBegan": stamp(time::Duration::hours(-1)),
            "nextAttempt": stamp(time::Duration::hours(11)),
            "reason": "EncounteredQuarantineException",
            "seriesBegan": stamp(time::Duration::hours(-1)),
            "seriesCount": 1,
            "error": {
                "code": "QuarantinedDueToCredentialFailure",
                "message": "The job was quarantined because the target system rejected its credentials.",
                "tenantActionable": true,
            },
        })
    });
    let last_execution = last_start.map(|began| {
        json!({
            "activityIdentifier": null,
            "countEntitled": 0,
            "countEntitledForProvisioning": 0,
            "countEscrowed": 0,
            "countEscrowedRaw": 0,
            "countExported": 0,
            "countExports": 0,
            "countImported": 0,
            "countImportedDeltas": 0,
            "countImportedReferenceDeltas": 0,
            "error": null,
            "state": "Succeeded",
            "timeBegan": began,
            "timeEnded": began,
        })
    });
    let mut job = json!({
        "id": job_id,
        "templateId": template_id,
        "schedule": {"expiration": null, "interval": "PT40M", "state": "Active"},
        "status": {
            "code": status,
            "countSuccessiveCompleteFailures": 0,
            "escrowsPruned": false,
            "lastExecution": last_execution,
            "lastSuccessfulExecution": null,
            "lastSuccessfulExecutionWithExports": null,
            "quarantine": quarantine,
            "steadyStateFirstAchievedTime": NEVER,
            "steadyStateLastAchievedTime": NEVER,
            "troubleshootingUrl": null,
        },
        "synchronizationJobSettings": [],
    });
    if let Some(context) = context {
        job["@odata.context"] = context.into();
    }
    job
}
