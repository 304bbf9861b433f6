//! The managed identity endpoint in its two shapes: as the Azure Instance Metadata Service
//! serves it to VMs (`GET /metadata/identity/oauth2/token`, the `Metadata: true` header,
//! `api-version=2018-02-01`), and as App Service, Functions and Container Apps serve it
//! (`GET {IDENTITY_ENDPOINT}`, the `X-IDENTITY-HEADER` secret, `api-version=2019-08-01`, an
//! answer with `expires_on` but no `expires_in`). No client credential; their own error shape
//! and numbers sent as strings. The token is the application token client credentials would
//! give the managed identity's application.

use std::collections::HashMap;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::json;

use crate::conn::ConnKill;
use crate::{Emulator, Operation, RecordedCall, SeedApplication, header_str};

use super::client_auth::Credential;
use super::{EXPIRES_IN_SECS, EntraError, app_token_claims, form_params, json_response};

/// IMDS answers `{"error", "error_description"}` only: no AADSTS envelope of its own.
struct ImdsError {
    status: StatusCode,
    error: &'static str,
    description: String,
}

impl ImdsError {
    fn bad_request(error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error,
            description: description.into(),
        }
    }

    fn for_status(status: StatusCode) -> Self {
        let transient = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
        let (error, description) = match transient {
            true => (
                "temporarily_unavailable",
                "A transient error has occurred. Please try again.",
            ),
            false => (
                "invalid_request",
                "The request was rejected by an injected fault.",
            ),
        };
        Self {
            status,
            error,
            description: description.to_owned(),
        }
    }

    /// Entra's refusals pass through IMDS with their AADSTS text.
    fn from_entra(error: EntraError) -> Self {
        Self {
            status: error.status,
            error: error.error,
            description: format!("AADSTS{}: {}", error.code, error.description),
        }
    }

    fn respond(self) -> Response {
        json_response(
            self.status,
            json!({"error": self.error, "error_description": self.description}),
        )
    }
}

/// Which platform's endpoint is asked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Platform {
    /// VMs and scale sets.
    Imds,
    /// App Service, Azure Functions, Container Apps.
    AppService,
}

pub(crate) async fn token(
    state: State<Emulator>,
    connection: ConnectInfo<ConnKill>,
    request: Request,
) -> Response {
    serve(state, connection, request, Platform::Imds).await
}

pub(crate) async fn app_service_token(
    state: State<Emulator>,
    connection: ConnectInfo<ConnKill>,
    request: Request,
) -> Response {
    serve(state, connection, request, Platform::AppService).await
}

async fn serve(
    State(emu): State<Emulator>,
    ConnectInfo(kill): ConnectInfo<ConnKill>,
    request: Request,
    platform: Platform,
) -> Response {
    let (parts, _) = request.into_parts();
    let query = form_params(parts.uri.query().unwrap_or_default().as_bytes());
    let mut call = RecordedCall::new(Operation::Token, &parts);
    call.grant = Some(Credential::ManagedIdentity.grant().to_owned());
    call.token_app_id = identity(&emu, &query)
        .ok()
        .map(|app| app.client_id.clone())
        .or_else(|| query.get("client_id").cloned());
    let work = || answer(&emu, &parts.headers, &query, platform).unwrap_or_else(ImdsError::respond);
    emu.observe(
        call,
        kill,
        |status| ImdsError::for_status(status).respond(),
        work,
    )
    .await
}

fn answer(
    emu: &Emulator,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    platform: Platform,
) -> Result<Response, ImdsError> {
    // Each insists on its header so that a server-side request forgery cannot reach it.
    match platform {
        Platform::Imds => {
            if !header_str(headers, "metadata").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
                return Err(ImdsError::bad_request(
                    "invalid_request",
                    "Required metadata header not specified",
                ));
            }
        }
        Platform::AppService => {
            if header_str(headers, "x-identity-header") != Some(emu.identity_header().as_str()) {
                return Err(ImdsError {
                    status: StatusCode::UNAUTHORIZED,
                    error: "invalid_request",
                    description:
                        "The X-IDENTITY-HEADER header is missing or does not hold IDENTITY_HEADER."
                            .into(),
                });
            }
        }
    }
    let param = |name: &str| {
        query
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let expected_version = match platform {
        Platform::Imds => None,
        Platform::AppService => Some("2019-08-01"),
    };
    match (param("api-version"), expected_version) {
        (None, _) => {
            return Err(ImdsError::bad_request(
                "invalid_request",
                "Required query variable 'api-version' is missing",
            ));
        }
        (Some(version), Some(expected)) if version != expected => {
            return Err(ImdsError::bad_request(
                "invalid_request",
                format!("api-version '{version}' is not supported here; use {expected}"),
            ));
        }
        _ => {}
    }
    let resource = param("resource").ok_or_else(|| {
        ImdsError::bad_request(
            "invalid_resource",
            "Required audience variable 'resource' is missing",
        )
    })?;
    let app = identity(emu, query)?;
    let claims = app_token_claims(emu, app, resource, Credential::ManagedIdentity)
        .map_err(ImdsError::from_entra)?;
    let issued = claims["nbf"].as_u64().unwrap_or_default();
    if platform == Platform::AppService {
        return Ok(json_response(
            StatusCode::OK,
            json!({
                "access_token": emu.mint(&claims),
                "expires_on": (issued + EXPIRES_IN_SECS).to_string(),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": app.client_id,
            }),
        ));
    }
    let body = json!({
        "access_token": emu.mint(&claims),
        "client_id": app.client_id,
        "expires_in": EXPIRES_IN_SECS.to_string(),
        "expires_on": (issued + EXPIRES_IN_SECS).to_string(),
        "ext_expires_in": EXPIRES_IN_SECS.to_string(),
        "not_before": issued.to_string(),
        "resource": resource,
        "token_type": "Bearer",
    });
    Ok(json_response(StatusCode::OK, body))
}

/// The managed identity asked for by `client_id`, or the first one when none is named, as a VM
/// with a system-assigned identity answers.
fn identity<'a>(
    emu: &'a Emulator,
    query: &HashMap<String, String>,
) -> Result<&'a SeedApplication, ImdsError> {
    let mut identities = emu
        .seed()
        .applications
        .iter()
        .filter(|app| app.managed_identity);
    let found = match query.get("client_id").filter(|id| !id.is_empty()) {
        None => identities.next(),
        Some(id) => identities.find(|app| app.client_id.eq_ignore_ascii_case(id)),
    };
    found.ok_or_else(|| ImdsError::bad_request("invalid_request", "Identity not found"))
}
