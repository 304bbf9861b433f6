//! The Entra side of the emulator: OpenID discovery, the JWKS, the OAuth2 token endpoint
//! (client credentials, on-behalf-of, authorization code), the sign-in page and the managed
//! identity (IMDS) endpoint, answering errors in Entra's `AADSTS` shape.
//!
//! Submodules own one concern each: [`client_auth`] (how a client proves who it is: secret,
//! certificate assertion, federated assertion), [`on_behalf_of`] (exchanging a user's token),
//! [`authorize`] (a single-page application's sign-in with PKCE) and [`imds`] (the managed
//! identity endpoint, which speaks IMDS rather than OAuth2).

pub(crate) mod authorize;
mod client_auth;
mod imds;
mod on_behalf_of;

use std::collections::HashMap;

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use percent_encoding::percent_decode_str;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

use super::conn::ConnKill;
use super::{
    Emulator, FACADE_AUDIENCE, GRAPH_AUDIENCE, Operation, RecordedCall, SeedApplication, extend,
    header_str,
};
use client_auth::Credential;

pub(crate) use imds::app_service_token;
pub(crate) use imds::token as imds_token;

/// Token requests are small; anything bigger is not a token request.
const MAX_FORM_BYTES: usize = 64 * 1024;
/// The grant type of on-behalf-of requests (RFC 7523 JWT bearer grant).
const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Graph's application id, which Entra accepts as Graph's resource name too.
const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
/// What Entra's access tokens say they last, a second short of the token's own lifetime.
const EXPIRES_IN_SECS: u64 = 3599;
/// Entra tolerates five minutes of clock skew on `nbf`.
const CLOCK_SKEW_SECS: u64 = 300;

pub(crate) struct EntraError {
    status: StatusCode,
    error: &'static str,
    code: u32,
    description: String,
    /// Members added to the body, such as a claims challenge's `suberror` and `claims`.
    extra: Option<Value>,
}

impl EntraError {
    fn new(
        status: StatusCode,
        error: &'static str,
        code: u32,
        description: impl Into<String>,
    ) -> Self {
        Self {
            status,
            error,
            code,
            description: description.into(),
            extra: None,
        }
    }

    /// A failed client authentication: always 401 `invalid_client`, as Entra answers.
    fn invalid_client(code: u32, description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            code,
            description,
        )
    }

    /// A grant (here: the user's assertion) Entra will not redeem.
    fn invalid_grant(code: u32, description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", code, description)
    }

    fn missing(parameter: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            format!("The request body must contain the following parameter: '{parameter}'."),
        )
    }

    fn malformed(detail: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            9002313,
            format!("Invalid request. Request is malformed or invalid. {detail}"),
        )
    }

    fn with_fields(mut self, extra: Value) -> Self {
        self.extra = Some(extra);
        self
    }

    fn for_status(status: StatusCode) -> Self {
        let transient = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
        let (error, code, description) = match transient {
            true => (
                "temporarily_unavailable",
                90033,
                "A transient error has occurred. Please try again.",
            ),
            false => (
                "invalid_request",
                90100,
                "The request was rejected by an injected fault.",
            ),
        };
        Self::new(status, error, code, description)
    }

    fn respond(self, headers: &HeaderMap) -> Response {
        let now = OffsetDateTime::now_utc();
        let timestamp = now
            .format(format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second]Z"
            ))
            .unwrap_or_default();
        let trace_id = uuid::Uuid::new_v4().to_string();
        // Entra reuses the caller's client-request-id as the correlation id.
        let correlation_id = header_str(headers, "client-request-id")
            .map(str::to_owned)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let description = format!(
            "AADSTS{}: {} Trace ID: {trace_id} Correlation ID: {correlation_id} Timestamp: {timestamp}",
            self.code, self.description
        );
        let mut body = json!({
            "error": self.error,
            "error_description": description,
            "error_codes": [self.code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": format!("https://login.microsoftonline.com/error?code={}", self.code),
        });
        if let Some(extra) = self.extra {
            extend(&mut body, extra);
        }
        json_response(self.status, body)
    }
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store, no-cache"),
        ],
        body.to_string(),
    )
        .into_response()
}

fn check_tenant(emu: &Emulator, tenant: &str, also_common: bool) -> Result<(), EntraError> {
    let common = also_common
        && ["common", "organizations"]
            .iter()
            .any(|t| t.eq_ignore_ascii_case(tenant));
    if common || tenant.eq_ignore_ascii_case(emu.tenant_id()) {
        return Ok(());
    }
    Err(EntraError::new(
        StatusCode::BAD_REQUEST,
        "invalid_tenant",
        90002,
        format!(
            "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
        ),
    ))
}

/// Shared path of the two read-only documents: record, fault, then answer.
async fn document(
    emu: Emulator,
    kill: ConnKill,
    op: Operation,
    request: Request,
    body: impl FnOnce() -> Result<Value, EntraError> + Send,
) -> Response {
    let (parts, _) = request.into_parts();
    let call = RecordedCall::new(op, &parts);
    let headers = &parts.headers;
    let work = || match body() {
        Ok(body) => json_response(StatusCode::OK, body),
        Err(error) => error.respond(headers),
    };
    emu.observe(
        call,
        kill,
        |status| EntraError::for_status(status).respond(headers),
        work,
    )
    .await
}

pub(crate) async fn discovery(
    State(emu): State<Emulator>,
    ConnectInfo(kill): ConnectInfo<ConnKill>,
    Path(tenant): Path<String>,
    request: Request,
) -> Response {
    let body = || {
        check_tenant(&emu, &tenant, false)?;
        Ok(json!({
            "issuer": emu.issuer(),
            "jwks_uri": emu.jwks_url(),
            "token_endpoint": emu.token_url(),
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        }))
    };
    document(emu.clone(), kill, Operation::Discovery, request, body).await
}

pub(crate) async fn jwks(
    State(emu): State<Emulator>,
    ConnectInfo(kill): ConnectInfo<ConnKill>,
    Path(tenant): Path<String>,
    request: Request,
) -> Response {
    let body = || {
        check_tenant(&emu, &tenant, true)?;
        Ok(emu.keys().jwks())
    };
    document(emu.clone(), kill, Operation::Jwks, request, body).await
}

/// `application/x-www-form-urlencoded` (a token request body, an IMDS query) → name → value.
fn form_params(text: &[u8]) -> HashMap<String, String> {
    String::from_utf8_lossy(text)
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (form_decode(name), form_decode(value))
        })
        .collect()
}

/// A parsed token request: form parameters plus HTTP Basic client credentials, if any.
struct TokenRequest {
    params: HashMap<String, String>,
    basic: Option<(String, String)>,
    /// The browser's `Origin`: a single-page application redeems its code cross-origin.
    origin: Option<String>,
}

impl TokenRequest {
    fn parse(headers: &HeaderMap, body: &[u8]) -> Self {
        let basic = header_str(headers, "authorization")
            .and_then(|value| value.strip_prefix("Basic "))
            .and_then(|encoded| STANDARD.decode(encoded.trim()).ok())
            .and_then(|decoded| {
                let decoded = String::from_utf8(decoded).ok()?;
                let (id, secret) = decoded.split_once(':')?;
                Some((form_decode(id), form_decode(secret)))
            });
        Self {
            params: form_params(body),
            basic,
            origin: header_str(headers, "origin").map(str::to_owned),
        }
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .get(name)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    }

    fn client_id(&self) -> Option<&str> {
        self.param("client_id")
            .or(self.basic.as_ref().map(|(id, _)| id.as_str()))
    }

    fn client_secret(&self) -> Option<&str> {
        self.param("client_secret")
            .or(self.basic.as_ref().map(|(_, secret)| secret.as_str()))
            .filter(|secret| !secret.is_empty())
    }

    /// The flow the request asks for, for the call log; read before anything is verified so
    /// that rejected requests are recorded with it too.
    fn flow(&self) -> Option<&'static str> {
        match self.param("grant_type")? {
            "client_credentials" => client_auth::presented(self).map(Credential::grant),
            JWT_BEARER_GRANT if self.param("requested_token_use") == Some("on_behalf_of") => {
                Some("on_behalf_of")
            }
            "authorization_code" => Some("authorization_code"),
            _ => None,
        }
    }
}

fn form_decode(text: &str) -> String {
    percent_decode_str(&text.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

pub(crate) async fn token(
    State(emu): State<Emulator>,
    ConnectInfo(kill): ConnectInfo<ConnKill>,
    Path(tenant): Path<String>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .unwrap_or_default();
    let token_request = TokenRequest::parse(&parts.headers, &body);
    let mut call = RecordedCall::new(Operation::Token, &parts);
    call.token_app_id = token_request.client_id().map(str::to_owned);
    call.grant = token_request.flow().map(str::to_owned);
    let headers = &parts.headers;
    let work = || match issue(&emu, &tenant, &token_request) {
        Ok(body) => json_response(StatusCode::OK, body),
        Err(error) => error.respond(headers),
    };
    let mut response = emu
        .observe(
            call,
            kill,
            |status| EntraError::for_status(status).respond(headers),
            work,
        )
        .await;
    authorize::allow_spa_origin(&emu, headers, &mut response);
    response
}

/// One arm per grant type.
fn issue(emu: &Emulator, tenant: &str, request: &TokenRequest) -> Result<Value, EntraError> {
    check_tenant(emu, tenant, false)?;
    match request.param("grant_type") {
        None => Err(EntraError::missing("grant_type")),
        Some("client_credentials") => client_credentials(emu, request),
        Some(JWT_BEARER_GRANT) => on_behalf_of::exchange(emu, request),
        Some("authorization_code") => authorize::redeem(emu, request),
        Some(other) => Err(EntraError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{other}'."),
        )),
    }
}

fn client_credentials(emu: &Emulator, request: &TokenRequest) -> Result<Value, EntraError> {
    let client = client_auth::authenticate(emu, request)?;
    let scope = required_scope(request)?;
    let resource = scope.trim().strip_suffix("/.default").ok_or_else(|| {
        EntraError::new(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            format!("The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."),
        )
    })?;
    let claims = app_token_claims(emu, client.app, resource, client.credential)?;
    Ok(json!({
        "token_type": "Bearer",
        "expires_in": EXPIRES_IN_SECS,
        "ext_expires_in": EXPIRES_IN_SECS,
        "access_token": emu.mint(&claims),
    }))
}

fn required_scope(request: &TokenRequest) -> Result<&str, EntraError> {
    request.param("scope").ok_or_else(|| {
        EntraError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90014,
            "The required field 'scope' is missing from the credential. Ensure that you have all the necessary parameters for the login request.",
        )
    })
}

fn is_graph(resource: &str) -> bool {
    matches!(
        resource.trim_end_matches('/'),
        GRAPH_AUDIENCE | GRAPH_APP_ID
    )
}

/// The claims of an application token for `resource` (Graph or the facade's own API), shared by
/// client credentials and managed identity.
fn app_token_claims(
    emu: &Emulator,
    app: &SeedApplication,
    resource: &str,
    credential: Credential,
) -> Result<Value, EntraError> {
    match resource.trim_end_matches('/') {
        GRAPH_AUDIENCE | GRAPH_APP_ID => Ok(graph_claims(emu, app, credential)),
        FACADE_AUDIENCE => Ok(emu.app_claims(&app.client_id)),
        other => Err(unknown_resource(emu, other)),
    }
}

fn unknown_resource(emu: &Emulator, resource: &str) -> EntraError {
    EntraError::new(
        StatusCode::BAD_REQUEST,
        "invalid_resource",
        500011,
        format!(
            "The resource principal named {resource} was not found in the tenant named {}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.",
            emu.tenant_id()
        ),
    )
}

/// The v1.0 issuer Graph access tokens carry.
fn graph_issuer(emu: &Emulator) -> String {
    format!("https://sts.windows.net/{}/", emu.tenant_id())
}

/// A v1.0 Graph access token, as Entra issues for client credentials.
/// The claims of the Graph token client credentials give `app` with its secret.
pub(crate) fn graph_claims_with_secret(emu: &Emulator, app: &SeedApplication) -> Value {
    graph_claims(emu, app, Credential::Secret)
}

fn graph_claims(emu: &Emulator, app: &SeedApplication, credential: Credential) -> Value {
    let issuer = graph_issuer(emu);
    let oid = emu.app_object_id(&app.client_id).unwrap_or_default();
    let mut claims = emu.base_claims(GRAPH_AUDIENCE, &issuer);
    extend(
        &mut claims,
        json!({
            "app_displayname": app.display_name,
            "appid": app.client_id,
            "azp": app.client_id,
            "appidacr": credential.appidacr(),
            "idp": issuer,
            "idtyp": "app",
            "oid": oid,
            "sub": oid,
            "roles": app.roles,
            "uti": uuid::Uuid::new_v4().simple().to_string(),
            "ver": "1.0",
        }),
    );
    claims
}

/// `aud` as a list: a JWT may carry one audience as a string or several as an array.
fn audiences(claims: &Value) -> Vec<&str> {
    match claims.get("aud") {
        Some(Value::String(aud)) => vec![aud.as_str()],
        Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The times an assertion is valid between, when it is not valid now; Entra's messages quote
/// them.
struct Lifetime {
    now: u64,
    nbf: Option<u64>,
    exp: Option<u64>,
}

impl Lifetime {
    /// `Err` with the times when `exp` is missing or past, or `nbf` is beyond the skew.
    fn check(claims: &Value, now: u64) -> Result<(), Lifetime> {
        let time = |name: &str| claims.get(name).and_then(Value::as_u64);
        let (nbf, exp) = (time("nbf"), time("exp"));
        let expired = exp.is_none_or(|exp| exp <= now);
        let early = nbf.is_some_and(|nbf| nbf > now + CLOCK_SKEW_SECS);
        match expired || early {
            true => Err(Lifetime { now, nbf, exp }),
            false => Ok(()),
        }
    }

    fn describe(secs: Option<u64>) -> String {
        secs.and_then(|secs| i64::try_from(secs).ok())
            .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok())
            .and_then(|at| at.format(&Rfc3339).ok())
            .unwrap_or_else(|| "(none)".to_owned())
    }
}
