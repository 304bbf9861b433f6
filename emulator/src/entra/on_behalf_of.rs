//! The on-behalf-of grant: a confidential client (authenticated as for client credentials)
//! exchanges a user's token for the facade's API for a Graph token for the same user, with
//! Entra's checks on the assertion and a Conditional Access MFA challenge for seed users that
//! require it.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::keys::Jwt;
use crate::{Emulator, FACADE_AUDIENCE, GRAPH_AUDIENCE, SeedUser, extend, unix_now};

use super::client_auth::{self, Client};
use super::{
    EntraError, GRAPH_APP_ID, Lifetime, TokenRequest, audiences, graph_issuer, is_graph,
    required_scope, unknown_resource,
};

/// The delegated permissions the emulated tenant has consented for the facade on Graph.
const GRAPH_SCOPES: [&str; 2] = ["Synchronization.ReadWrite.All", "Application.Read.All"];
/// Scopes that ask for an ID or refresh token rather than naming a resource.
const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];
/// The claims challenge of the emulated Conditional Access policy that demands MFA for Graph.
const MFA_CLAIMS_CHALLENGE: &str = r#"{"access_token":{"capolids":{"essential":true,"values":["c1f2e3d4-0000-4000-8000-000000000001"]}}}"#;
/// Graph tokens last an hour at most, and never beyond the assertion they were exchanged for.
const LIFETIME_SECS: u64 = 3600;

pub(super) fn exchange(emu: &Emulator, request: &TokenRequest) -> Result<Value, EntraError> {
    match request.param("requested_token_use") {
        None => return Err(EntraError::missing("requested_token_use")),
        Some("on_behalf_of") => {}
        Some(other) => {
            return Err(EntraError::malformed(&format!(
                "requested_token_use '{other}' is not supported; use 'on_behalf_of'."
            )));
        }
    }
    let client = client_auth::authenticate(emu, request)?;
    let assertion = request
        .param("assertion")
        .ok_or_else(|| EntraError::missing("assertion"))?;
    check_graph_scope(emu, required_scope(request)?)?;
    let assertion = Jwt::parse(assertion)
        .ok_or_else(|| EntraError::invalid_grant(50027, "JWT token is invalid or malformed."))?;
    let user = check_assertion(emu, &client, &assertion)?;
    if user.requires_mfa && !performed_mfa(&assertion.claims) {
        return Err(mfa_required());
    }
    let claims = user_graph_claims(emu, &client, user, &assertion.claims);
    let expires_in = claims["exp"]
        .as_u64()
        .unwrap_or_default()
        .saturating_sub(unix_now());
    let scope: Vec<String> = GRAPH_SCOPES
        .iter()
        .map(|scope| format!("{GRAPH_AUDIENCE}/{scope}"))
        .collect();
    Ok(json!({
        "token_type": "Bearer",
        "scope": scope.join(" "),
        "expires_in": expires_in,
        "ext_expires_in": expires_in,
        "access_token": emu.mint(&claims),
    }))
}

/// Every scope must be Graph's: `https://graph.microsoft.com/.default`, a full Graph scope, or a
/// bare permission name (Entra reads those as Graph's).
fn check_graph_scope(emu: &Emulator, scope: &str) -> Result<(), EntraError> {
    let requested: Vec<&str> = scope
        .split_whitespace()
        .filter(|item| !OIDC_SCOPES.iter().any(|o| o.eq_ignore_ascii_case(item)))
        .collect();
    if requested.is_empty() {
        return Err(EntraError::new(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            70011,
            format!(
                "The provided value for the input parameter 'scope' isn't valid. The scope '{scope}' names no resource."
            ),
        ));
    }
    for item in requested {
        if let Some((resource, _)) = item.rsplit_once('/')
            && !is_graph(resource)
        {
            return Err(unknown_resource(emu, resource));
        }
    }
    Ok(())
}

/// A token this emulator signed, for the facade's API, current, and issued to a user the
/// directory knows.
fn check_assertion<'a>(
    emu: &'a Emulator,
    client: &Client<'_>,
    assertion: &Jwt,
) -> Result<&'a SeedUser, EntraError> {
    if !emu.keys().verifies(assertion) {
        return Err(EntraError::invalid_grant(
            50013,
            "Assertion failed signature validation. [Reason - The key was not found.]",
        ));
    }
    let presented = audiences(&assertion.claims);
    if !presented.contains(&FACADE_AUDIENCE) {
        return Err(EntraError::invalid_grant(
            50013,
            format!(
                "Assertion audience does not match the Client app presenting the assertion. The audience in the assertion was '{}' and the expected audience is '{FACADE_AUDIENCE}' or one of the Application Uris of this application with App ID '{}'.",
                presented.join(", "),
                client.app.client_id
            ),
        ));
    }
    if let Err(lifetime) = Lifetime::check(&assertion.claims, unix_now()) {
        return Err(EntraError::invalid_grant(
            500133,
            format!(
                "Assertion is not within its valid time range. Ensure that the access token is not expired before using it for user assertion, or request a new token. Current time: {}, expiry time of assertion {}.",
                Lifetime::describe(Some(lifetime.now)),
                Lifetime::describe(lifetime.exp),
            ),
        ));
    }
    // An app-only token names no user to act for: Entra calls that "application OBO".
    let delegated = assertion.claim_str("idtyp") != Some("app")
        && assertion
            .claim_str("scp")
            .is_some_and(|scp| !scp.trim().is_empty());
    if !delegated {
        return Err(EntraError::invalid_grant(
            7000114,
            format!(
                "Application '{}' is not allowed to make application on-behalf-of calls. The assertion is an app-only token; on-behalf-of needs a user's token (one with 'scp').",
                client.app.client_id
            ),
        ));
    }
    let oid = assertion.claim_str("oid").unwrap_or_default();
    emu.user(oid).ok_or_else(|| {
        EntraError::invalid_grant(
            50034,
            format!(
                "The user account {{EUII Hidden}} does not exist in the {} directory. To sign into this application, the account must be added to the directory.",
                emu.tenant_id()
            ),
        )
    })
}

fn performed_mfa(claims: &Value) -> bool {
    claims
        .get("amr")
        .and_then(Value::as_array)
        .is_some_and(|methods| methods.iter().any(|m| m.as_str() == Some("mfa")))
}

fn mfa_required() -> EntraError {
    EntraError::new(
        StatusCode::BAD_REQUEST,
        "interaction_required",
        50076,
        format!(
            "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '{GRAPH_APP_ID}'."
        ),
    )
    .with_fields(json!({"suberror": "basic_action", "claims": MFA_CLAIMS_CHALLENGE}))
}

/// A v1.0 delegated Graph access token for `user`, as Entra issues for on-behalf-of.
fn user_graph_claims(
    emu: &Emulator,
    client: &Client<'_>,
    user: &SeedUser,
    assertion: &Value,
) -> Value {
    let issuer = graph_issuer(emu);
    let mut claims = emu.base_claims(GRAPH_AUDIENCE, &issuer);
    let now = unix_now();
    let exp = assertion
        .get("exp")
        .and_then(Value::as_u64)
        .map_or(now + LIFETIME_SECS, |exp| exp.min(now + LIFETIME_SECS));
    let amr = assertion.get("amr").cloned().unwrap_or(json!(["pwd"]));
    let wids = assertion.get("wids").cloned().unwrap_or(json!([]));
    extend(
        &mut claims,
        json!({
            "exp": exp,
            "acr": "1",
            "amr": amr,
            "app_displayname": client.app.display_name,
            "appid": client.app.client_id,
            "appidacr": client.credential.appidacr(),
            "idtyp": "user",
            "name": user.name,
            "oid": user.object_id,
            "sub": user.object_id,
            "preferred_username": user.preferred_username,
            "upn": user.preferred_username,
            "unique_name": user.preferred_username,
            "scp": GRAPH_SCOPES.join(" "),
            "wids": wids,
            "uti": uuid::Uuid::new_v4().simple().to_string(),
            "ver": "1.0",
        }),
    );
    claims
}
