//! The Entra side of the emulator: OpenID discovery, the JWKS and the OAuth2 token endpoint,
//! answering errors in Entra's `AADSTS` shape.

use std::collections::HashMap;

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use percent_encoding::percent_decode_str;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::format_description;

use super::conn::ConnKill;
use super::{
    Emulator, FACADE_AUDIENCE, GRAPH_AUDIENCE, Operation, RecordedCall, SeedApplication, extend,
    header_str,
};

/// Token requests are small; anything bigger is not a token request.
const MAX_FORM_BYTES: usize = 64 * 1024;

pub(crate) struct EntraError {
    status: StatusCode,
    error: &'static str,
    code: u32,
    description: String,
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
        }
    }

    fn missing(parameter: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            format!("The request body must contain the following parameter: '{parameter}'."),
        )
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
        let body = json!({
            "error": self.error,
            "error_description": description,
            "error_codes": [self.code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": format!("https://login.microsoftonline.com/error?code={}", self.code),
        });
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

/// A parsed token request: form parameters plus HTTP Basic client credentials, if any.
struct TokenRequest {
    params: HashMap<String, String>,
    basic: Option<(String, String)>,
}

impl TokenRequest {
    fn parse(headers: &HeaderMap, body: &[u8]) -> Self {
        let params = String::from_utf8_lossy(body)
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (form_decode(name), form_decode(value))
            })
            .collect();
        let basic = header_str(headers, "authorization")
            .and_then(|value| value.strip_prefix("Basic "))
            .and_then(|encoded| STANDARD.decode(encoded.trim()).ok())
            .and_then(|decoded| {
                let decoded = String::from_utf8(decoded).ok()?;
                let (id, secret) = decoded.split_once(':')?;
                Some((form_decode(id), form_decode(secret)))
            });
        Self { params, basic }
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
    let headers = &parts.headers;
    let work = || match issue(&emu, &tenant, &token_request) {
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

/// One arm per grant type; on-behalf-of and client assertions slot in here.
fn issue(emu: &Emulator, tenant: &str, request: &TokenRequest) -> Result<Value, EntraError> {
    check_tenant(emu, tenant, false)?;
    match request.param("grant_type") {
        None => Err(EntraError::missing("grant_type")),
        Some("client_credentials") => client_credentials(emu, request),
        Some(other) => Err(EntraError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{other}'."),
        )),
    }
}

fn client_credentials(emu: &Emulator, request: &TokenRequest) -> Result<Value, EntraError> {
    let app = authenticate_client(emu, request)?;
    let scope = request.param("scope").ok_or_else(|| {
        EntraError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90014,
            "The required field 'scope' is missing from the credential. Ensure that you have all the necessary parameters for the login request.",
        )
    })?;
    let resource = scope.trim().strip_suffix("/.default").ok_or_else(|| {
        EntraError::new(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            format!("The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."),
        )
    })?;
    let claims = match resource.trim_end_matches('/') {
        GRAPH_AUDIENCE | "00000003-0000-0000-c000-000000000000" => graph_claims(emu, app),
        FACADE_AUDIENCE => emu.app_claims(&app.client_id),
        other => {
            return Err(EntraError::new(
                StatusCode::BAD_REQUEST,
                "invalid_resource",
                500011,
                format!(
                    "The resource principal named {other} was not found in the tenant named {}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.",
                    emu.tenant_id()
                ),
            ));
        }
    };
    Ok(json!({
        "token_type": "Bearer",
        "expires_in": 3599,
        "ext_expires_in": 3599,
        "access_token": emu.mint(&claims),
    }))
}

fn authenticate_client<'a>(
    emu: &'a Emulator,
    request: &TokenRequest,
) -> Result<&'a SeedApplication, EntraError> {
    let client_id = request
        .client_id()
        .ok_or_else(|| EntraError::missing("client_id"))?;
    let app = emu.application(client_id).ok_or_else(|| {
        EntraError::new(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            format!("Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", emu.tenant_id()),
        )
    })?;
    let secret = request.client_secret().ok_or_else(|| {
        EntraError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )
    })?;
    if secret != app.client_secret {
        return Err(EntraError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
                app.client_id
            ),
        ));
    }
    Ok(app)
}

/// A v1.0 Graph access token, as Entra issues for client credentials.
fn graph_claims(emu: &Emulator, app: &SeedApplication) -> Value {
    let issuer = format!("https://sts.windows.net/{}/", emu.tenant_id());
    let oid = emu.app_object_id(&app.client_id).unwrap_or_default();
    let mut claims = emu.base_claims(GRAPH_AUDIENCE, &issuer);
    extend(
        &mut claims,
        json!({
            "app_displayname": app.display_name,
            "appid": app.client_id,
            "azp": app.client_id,
            "appidacr": "1",
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
