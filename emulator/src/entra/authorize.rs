//! The authorization code grant with PKCE, as Entra serves a single-page application: a sign-in
//! page at `/authorize` that lists the seeded users (development only: no password), one-time
//! codes bound to the client, the redirect URI, the PKCE challenge, the user, the scopes and the
//! nonce, and their redemption at the token endpoint, cross-origin (CORS) from the
//! application's registered origins.
//!
//! Errors follow Entra: a bad client or redirect URI is shown on the page (never sent to an
//! unregistered address); anything else goes back to the application as `error` and
//! `error_description`.

use std::collections::HashMap;

use aws_lc_rs::digest;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use super::{EntraError, TokenRequest, check_tenant};
use crate::{Emulator, FACADE_AUDIENCE, SeedApplication, SeedUser, extend, lock, unix_now};

/// Entra's authorization codes are short-lived; ten minutes, as its documentation says.
const CODE_LIFETIME_SECS: u64 = 600;
/// Codes not redeemed are dropped beyond this many, oldest first.
const MAX_CODES: usize = 10_000;
/// The delegated permissions the facade's API exposes, as a tenant would consent them.
const FACADE_SCOPES: [&str; 2] = ["Synchronization.ReadWrite.All", "Synchronization.Read.All"];
/// Scopes that ask for an ID token or profile rather than naming a resource.
const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// A code handed to the application, until redeemed (once) or expired.
pub(crate) struct PendingCode {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    challenge_method: String,
    user_object_id: String,
    /// The facade scopes granted, without the resource prefix.
    scopes: Vec<String>,
    nonce: Option<String>,
    expires_at: u64,
    redeemed: bool,
}

/// The codes, by value.
#[derive(Default)]
pub(crate) struct Codes(HashMap<String, PendingCode>);

/// An authorization request that names a registered client and redirect URI.
struct Checked<'a> {
    app: &'a SeedApplication,
    redirect_uri: String,
    state: Option<String>,
    fragment: bool,
}

/// Why an authorization request failed: shown on the page, or sent back to the application.
enum Refusal {
    Page(StatusCode, String),
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        fragment: bool,
        error: &'static str,
        description: String,
    },
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Page(status, message) => (
                status,
                page(
                    "Sign-in failed",
                    &format!("<p class=\"error\">{}</p>", escape(&message)),
                ),
            )
                .into_response(),
            Refusal::Redirect {
                redirect_uri,
                state,
                fragment,
                error,
                description,
            } => {
                let mut params = vec![
                    ("error", error.to_owned()),
                    ("error_description", description),
                ];
                params.extend(state.map(|state| ("state", state)));
                Redirect::to(&with_params(&redirect_uri, fragment, &params)).into_response()
            }
        }
    }
}

fn with_params(uri: &str, fragment: bool, params: &[(&str, String)]) -> String {
    let encoded: Vec<String> = params
        .iter()
        .map(|(name, value)| format!("{name}={}", utf8_percent_encode(value, NON_ALPHANUMERIC)))
        .collect();
    let separator = match (fragment, uri.contains('?')) {
        (true, _) => '#',
        (false, true) => '&',
        (false, false) => '?',
    };
    format!("{uri}{separator}{}", encoded.join("&"))
}

fn param<'a>(params: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|value| !value.is_empty())
}

impl Emulator {
    /// The redirect URIs registered for a single-page application: the seed's and those added
    /// at run time ([`Emulator::allow_redirect_uri`]).
    fn redirect_uris(&self, app: &SeedApplication) -> Vec<String> {
        let added = lock(&self.0.redirect_uris);
        app.redirect_uris
            .iter()
            .cloned()
            .chain(
                added
                    .iter()
                    .filter(|(client, _)| client.eq_ignore_ascii_case(&app.client_id))
                    .map(|(_, uri)| uri.clone()),
            )
            .collect()
    }

    /// Whether `origin` (`scheme://host:port`) is the origin of a single-page application's
    /// redirect URI: the token endpoint answers it cross-origin.
    pub(crate) fn is_spa_origin(&self, origin: &str) -> bool {
        self.seed()
            .applications
            .iter()
            .filter(|app| app.single_page_application)
            .flat_map(|app| self.redirect_uris(app))
            .any(|uri| origin_of(&uri).is_some_and(|o| o.eq_ignore_ascii_case(origin)))
    }
}

/// `scheme://authority` of an absolute URI.
fn origin_of(uri: &str) -> Option<&str> {
    let rest = uri.find("://")? + 3;
    let end = uri[rest..].find('/').map_or(uri.len(), |i| rest + i);
    Some(&uri[..end])
}

/// Client and redirect URI first (their failures are shown, not redirected), then the rest.
fn check<'a>(
    emu: &'a Emulator,
    tenant: &str,
    params: &HashMap<String, String>,
) -> Result<(Checked<'a>, Vec<String>), Refusal> {
    if let Err(error) = check_tenant(emu, tenant, true) {
        return Err(Refusal::Page(StatusCode::BAD_REQUEST, error.description));
    }
    let client_id = param(params, "client_id").ok_or_else(|| {
        Refusal::Page(
            StatusCode::BAD_REQUEST,
            "AADSTS900144: The request body must contain the following parameter: 'client_id'."
                .into(),
        )
    })?;
    let app = emu.application(client_id).ok_or_else(|| {
        Refusal::Page(
            StatusCode::BAD_REQUEST,
            format!(
                "AADSTS700016: Application with identifier '{client_id}' was not found in the directory '{}'.",
                emu.tenant_id()
            ),
        )
    })?;
    if !app.single_page_application {
        return Err(Refusal::Page(
            StatusCode::BAD_REQUEST,
            format!(
                "AADSTS9002326: The emulator signs in single-page applications only; '{}' is not registered as one.",
                app.client_id
            ),
        ));
    }
    let redirect_uri = param(params, "redirect_uri").unwrap_or_default();
    if !emu.redirect_uris(app).iter().any(|uri| uri == redirect_uri) {
        return Err(Refusal::Page(
            StatusCode::BAD_REQUEST,
            format!(
                "AADSTS50011: The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured for the application '{}'.",
                app.client_id
            ),
        ));
    }
    let checked = Checked {
        app,
        redirect_uri: redirect_uri.to_owned(),
        state: param(params, "state").map(str::to_owned),
        fragment: param(params, "response_mode") == Some("fragment"),
    };
    let refuse = |error: &'static str, description: String| Refusal::Redirect {
        redirect_uri: checked.redirect_uri.clone(),
        state: checked.state.clone(),
        fragment: checked.fragment,
        error,
        description,
    };
    if param(params, "response_type") != Some("code") {
        return Err(refuse(
            "unsupported_response_type",
            "AADSTS700054: response_type must be 'code' for this application.".into(),
        ));
    }
    match (
        param(params, "code_challenge"),
        param(params, "code_challenge_method").unwrap_or("plain"),
    ) {
        (None, _) => {
            return Err(refuse(
                "invalid_request",
                "AADSTS9002325: Proof Key for Code Exchange is required for cross-origin authorization code redemption.".into(),
            ));
        }
        (Some(challenge), "S256" | "plain") if is_pkce_text(challenge) => {}
        (Some(_), "S256" | "plain") => {
            return Err(refuse(
                "invalid_request",
                "AADSTS501481: The code_challenge must be 43 to 128 characters of [A-Za-z0-9-._~]."
                    .into(),
            ));
        }
        (Some(_), other) => {
            return Err(refuse(
                "invalid_request",
                format!("AADSTS501491: Invalid code_challenge_method '{other}'."),
            ));
        }
    }
    let scopes = facade_scopes(param(params, "scope").unwrap_or_default())
        .map_err(|description| refuse("invalid_scope", description))?;
    Ok((checked, scopes))
}

/// The facade scopes a `scope` parameter asks for (at least one); OpenID scopes are allowed
/// beside them, anything else is refused.
fn facade_scopes(scope: &str) -> Result<Vec<String>, String> {
    let mut granted = Vec::new();
    for item in scope.split_whitespace() {
        if OIDC_SCOPES.iter().any(|o| o.eq_ignore_ascii_case(item)) {
            continue;
        }
        let name = item
            .strip_prefix(FACADE_AUDIENCE)
            .and_then(|rest| rest.strip_prefix('/'))
            .and_then(|name| FACADE_SCOPES.iter().find(|s| s.eq_ignore_ascii_case(name)));
        match name {
            Some(name) => granted.push((*name).to_owned()),
            None => {
                return Err(format!(
                    "AADSTS65005: The application asked for scope '{item}', which {FACADE_AUDIENCE} does not expose."
                ));
            }
        }
    }
    if granted.is_empty() {
        return Err(format!(
            "AADSTS70011: The provided value for the input parameter 'scope' isn't valid: it names no scope of {FACADE_AUDIENCE}."
        ));
    }
    Ok(granted)
}

/// `GET /{tenant}/oauth2/v2.0/authorize`: the sign-in page.
pub(crate) async fn sign_in_page(
    State(emu): State<Emulator>,
    Path(tenant): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let (checked, scopes) = match check(&emu, &tenant, &params) {
        Ok(checked) => checked,
        Err(refusal) => return refusal.into_response(),
    };
    let mut hidden = String::new();
    let mut names: Vec<&String> = params.keys().collect();
    names.sort();
    for name in names {
        hidden.push_str(&format!(
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            escape(name),
            escape(&params[name])
        ));
    }
    let users: String = emu
        .seed()
        .users
        .iter()
        .map(|user| {
            let roles = if user.wids.is_empty() {
                "no directory role".to_owned()
            } else {
                let names: Vec<&str> = user.wids.iter().map(|id| role_name(id)).collect();
                names.join(", ")
            };
            format!(
                "<li><button type=\"submit\" name=\"user\" value=\"{}\"><strong>{}</strong> <span>{}</span> <small>{}</small></button></li>",
                escape(&user.object_id),
                escape(&user.name),
                escape(&user.preferred_username),
                escape(&roles)
            )
        })
        .collect();
    // Applications do not sign in interactively; listed so that a developer sees the tenant.
    let apps: String = emu
        .seed()
        .applications
        .iter()
        .map(|app| {
            let roles = if app.roles.is_empty() {
                String::new()
            } else {
                format!(": {}", app.roles.join(", "))
            };
            format!(
                "<li>{} <small>{}{}</small></li>",
                escape(&app.display_name),
                escape(&app.client_id),
                escape(&roles)
            )
        })
        .collect();
    let body = format!(
        "<p><strong>{app}</strong> asks to sign you in with access to {audience}: {scopes}.</p>\
         <p>This is the emulator's Entra, for development: pick a seeded user (no password).</p>\
         <form method=\"post\">{hidden}<ul>{users}</ul>\
         <button type=\"submit\" name=\"cancel\" value=\"1\" class=\"cancel\">Cancel</button></form>\
         <details><summary>Applications in this tenant (they use client credentials, not this page)</summary>\
         <ul class=\"apps\">{apps}</ul></details>",
        app = escape(&checked.app.display_name),
        audience = FACADE_AUDIENCE,
        scopes = escape(&scopes.join(", ")),
    );
    page("Sign in", &body).into_response()
}

/// `POST /{tenant}/oauth2/v2.0/authorize`: the chosen user (or cancel) back to the application.
pub(crate) async fn sign_in(
    State(emu): State<Emulator>,
    Path(tenant): Path<String>,
    Form(params): Form<HashMap<String, String>>,
) -> Response {
    let (checked, scopes) = match check(&emu, &tenant, &params) {
        Ok(checked) => checked,
        Err(refusal) => return refusal.into_response(),
    };
    let back = |error: &'static str, description: &str| Refusal::Redirect {
        redirect_uri: checked.redirect_uri.clone(),
        state: checked.state.clone(),
        fragment: checked.fragment,
        error,
        description: description.to_owned(),
    };
    if param(&params, "cancel").is_some() {
        return back(
            "access_denied",
            "AADSTS65004: User declined to consent to access the app.",
        )
        .into_response();
    }
    let Some(user) = param(&params, "user").and_then(|oid| emu.user(oid)) else {
        return back(
            "access_denied",
            "AADSTS50034: The user account does not exist.",
        )
        .into_response();
    };
    let code = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let pending = PendingCode {
        client_id: checked.app.client_id.clone(),
        redirect_uri: checked.redirect_uri.clone(),
        challenge: param(&params, "code_challenge")
            .unwrap_or_default()
            .to_owned(),
        challenge_method: param(&params, "code_challenge_method")
            .unwrap_or("plain")
            .to_owned(),
        user_object_id: user.object_id.clone(),
        scopes,
        nonce: param(&params, "nonce").map(str::to_owned),
        expires_at: unix_now() + CODE_LIFETIME_SECS,
        redeemed: false,
    };
    {
        let mut codes = lock(&emu.0.codes);
        let now = unix_now();
        codes.0.retain(|_, pending| pending.expires_at > now);
        if codes.0.len() >= MAX_CODES
            && let Some(oldest) = codes
                .0
                .iter()
                .min_by_key(|(_, pending)| pending.expires_at)
                .map(|(code, _)| code.clone())
        {
            codes.0.remove(&oldest);
        }
        codes.0.insert(code.clone(), pending);
    }
    let mut params = vec![("code", code)];
    params.extend(checked.state.map(|state| ("state", state)));
    Redirect::to(&with_params(
        &checked.redirect_uri,
        checked.fragment,
        &params,
    ))
    .into_response()
}

/// The `authorization_code` grant: a public client (no secret) redeems its code once, with the
/// redirect URI and the PKCE verifier of its authorization request.
pub(super) fn redeem(emu: &Emulator, request: &TokenRequest) -> Result<Value, EntraError> {
    let client_id = request
        .client_id()
        .ok_or_else(|| EntraError::missing("client_id"))?;
    let code = request
        .param("code")
        .ok_or_else(|| EntraError::missing("code"))?;
    let redirect_uri = request
        .param("redirect_uri")
        .ok_or_else(|| EntraError::missing("redirect_uri"))?;
    let app = emu.application(client_id).ok_or_else(|| {
        EntraError::new(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            format!(
                "Application with identifier '{client_id}' was not found in the directory '{}'.",
                emu.tenant_id()
            ),
        )
    })?;
    if request.client_secret().is_some() {
        return Err(EntraError::invalid_client(
            700025,
            "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.",
        ));
    }
    if request.origin.is_none() {
        return Err(EntraError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            9002327,
            "Tokens issued for the 'Single-Page Application' client-type may only be redeemed via cross-origin requests.",
        ));
    }
    let invalid_code = || {
        EntraError::invalid_grant(
            70000,
            "The provided value for the 'code' parameter is not valid.",
        )
    };
    let granted = {
        let mut codes = lock(&emu.0.codes);
        let pending = codes.0.get_mut(code).ok_or_else(invalid_code)?;
        if !pending.client_id.eq_ignore_ascii_case(&app.client_id) {
            return Err(invalid_code());
        }
        if pending.redeemed {
            return Err(EntraError::invalid_grant(
                54005,
                "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
            ));
        }
        // Any attempt consumes the code: a wrong verifier cannot be retried against it.
        pending.redeemed = true;
        if pending.expires_at <= unix_now() {
            return Err(EntraError::invalid_grant(
                70008,
                "The provided authorization code or refresh token has expired due to inactivity.",
            ));
        }
        if pending.redirect_uri != redirect_uri {
            return Err(EntraError::invalid_grant(
                500112,
                format!(
                    "The reply address '{redirect_uri}' does not match the reply address '{}' provided when requesting Authorization code.",
                    pending.redirect_uri
                ),
            ));
        }
        let verifier = request
            .param("code_verifier")
            .ok_or_else(|| EntraError::missing("code_verifier"))?;
        if !verifier_matches(verifier, &pending.challenge, &pending.challenge_method) {
            return Err(EntraError::invalid_grant(
                50148,
                "The code_verifier does not match the code_challenge supplied in the authorization request for PKCE.",
            ));
        }
        (
            pending.user_object_id.clone(),
            pending.scopes.clone(),
            pending.nonce.clone(),
        )
    };
    let (user_object_id, scopes, nonce) = granted;
    let user = emu.user(&user_object_id).ok_or_else(invalid_code)?;
    let mut access = user_access_claims(emu, app, user, &scopes);
    let mut id_token = id_token_claims(emu, app, user, nonce.as_deref());
    let lifetime = match emu
        .0
        .sign_in_lifetime_secs
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        0 => super::EXPIRES_IN_SECS,
        secs => {
            let exp = unix_now() + secs;
            access["exp"] = exp.into();
            id_token["exp"] = exp.into();
            secs
        }
    };
    let scope: Vec<String> = scopes
        .iter()
        .map(|scope| format!("{FACADE_AUDIENCE}/{scope}"))
        .collect();
    Ok(json!({
        "token_type": "Bearer",
        "scope": scope.join(" "),
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": emu.mint(&access),
        "id_token": emu.mint(&id_token),
    }))
}

/// RFC 7636: `S256` compares BASE64URL(SHA-256(verifier)); `plain` compares the text. The
/// verifier is 43 to 128 unreserved characters.
pub(crate) fn verifier_matches(verifier: &str, challenge: &str, method: &str) -> bool {
    if !is_pkce_text(verifier) || challenge.is_empty() {
        return false;
    }
    let computed = match method {
        "S256" => URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes())),
        _ => verifier.to_owned(),
    };
    aws_lc_rs::constant_time::verify_slices_are_equal(computed.as_bytes(), challenge.as_bytes())
        .is_ok()
}

/// The name of a directory role template the seed uses, or its id.
fn role_name(id: &str) -> &str {
    match id {
        "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3" => "Application Administrator",
        "158c047a-c907-4556-b7ef-446551a6b5f7" => "Cloud Application Administrator",
        "8ac3fc64-6eca-42ea-9e69-59f4c7b60eb2" => "Hybrid Identity Administrator",
        "62e90394-69f5-4237-9190-012177145e10" => "Global Administrator",
        "f2ef992c-3afb-46b9-b7cf-a126ee74c451" => "Global Reader",
        other => other,
    }
}

/// RFC 7636's alphabet and length for verifiers (and so for challenges).
fn is_pkce_text(text: &str) -> bool {
    (43..=128).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The user's access token for the facade's API, through the single-page application.
fn user_access_claims(
    emu: &Emulator,
    app: &SeedApplication,
    user: &SeedUser,
    scopes: &[String],
) -> Value {
    let mut claims = emu.delegated_claims(&user.object_id);
    let mut amr = vec!["pwd"];
    if user.requires_mfa {
        amr.push("mfa");
    }
    extend(
        &mut claims,
        json!({
            "scp": scopes.join(" "),
            "azp": app.client_id,
            "appid": app.client_id,
            "azpacr": "0",
            "amr": amr,
        }),
    );
    claims
}

/// The ID token the application checks its nonce in.
fn id_token_claims(
    emu: &Emulator,
    app: &SeedApplication,
    user: &SeedUser,
    nonce: Option<&str>,
) -> Value {
    let mut claims = emu.base_claims(&app.client_id, &emu.issuer());
    extend(&mut claims, user.identity_claims());
    extend(
        &mut claims,
        json!({
            "nonce": nonce,
            "ver": "2.0",
        }),
    );
    claims
}

/// `Access-Control-Allow-Origin` on the token endpoint's answer for a single-page application's
/// origin, as Entra answers an SPA redemption.
pub(crate) fn allow_spa_origin(emu: &Emulator, headers: &HeaderMap, response: &mut Response) {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return;
    };
    if emu.is_spa_origin(origin)
        && let Ok(value) = HeaderValue::from_str(origin)
    {
        response
            .headers_mut()
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        response
            .headers_mut()
            .insert(header::VARY, HeaderValue::from_static("Origin"));
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"icon\" href=\"data:,\">\
         <title>{title} — Graph + Entra emulator</title><style>{STYLE}</style></head>\
         <body><main><h1>{title}</h1>{body}</main></body></html>"
    ))
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;background:#f3f4f6;color:#111}\
main{max-width:32rem;margin:2rem auto;padding:1.5rem;background:#fff;border-radius:8px}\
ul{list-style:none;padding:0}li{margin:.5rem 0}\
button{width:100%;text-align:left;padding:.75rem;border:1px solid #9ca3af;border-radius:6px;background:#fff;font:inherit;cursor:pointer}\
button:focus,button:hover{border-color:#1d4ed8;outline:2px solid #1d4ed8}\
button span,button small{display:block;color:#374151}.cancel{text-align:center}.error{color:#b91c1c}\
details{margin-top:1rem;color:#374151}.apps li{margin:.25rem 0}.apps small{display:block;color:#6b7280}";

#[cfg(test)]
mod tests {
    use super::*;

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    /// RFC 7636 appendix B's example pair.
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn the_rfc_7636_example_verifies_and_anything_else_does_not() {
        assert!(verifier_matches(VERIFIER, CHALLENGE, "S256"));
        let mut other = VERIFIER.to_owned();
        other.replace_range(0..1, "e");
        assert!(!verifier_matches(&other, CHALLENGE, "S256"));
        assert!(!verifier_matches(VERIFIER, VERIFIER, "S256"));
        assert!(verifier_matches(VERIFIER, VERIFIER, "plain"));
        assert!(
            !verifier_matches("short", "short", "plain"),
            "under 43 characters"
        );
        let bad_char = format!("{}+", &VERIFIER[..43]);
        assert!(!verifier_matches(&bad_char, &bad_char, "plain"));
        assert!(!verifier_matches(VERIFIER, "", "S256"));
    }

    #[test]
    fn scopes_must_name_the_facade_and_nothing_unknown() {
        assert_eq!(
            facade_scopes("openid profile api://syncjob-facade/Synchronization.ReadWrite.All")
                .unwrap(),
            vec!["Synchronization.ReadWrite.All"]
        );
        assert!(facade_scopes("openid profile").is_err());
        assert!(facade_scopes("api://syncjob-facade/Directory.ReadWrite.All").is_err());
        assert!(facade_scopes("https://graph.microsoft.com/User.Read").is_err());
    }

    #[test]
    fn origins_are_scheme_and_authority() {
        assert_eq!(
            origin_of("http://127.0.0.1:8080/ui"),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(
            origin_of("https://ops.example"),
            Some("https://ops.example")
        );
        assert_eq!(origin_of("not a uri"), None);
    }

    #[test]
    fn parameters_are_encoded_in_the_query_or_the_fragment() {
        let params = [("code", "a b".to_owned()), ("state", "x&y".to_owned())];
        assert_eq!(
            with_params("http://h/ui", false, &params),
            "http://h/ui?code=a%20b&state=x%26y"
        );
        assert_eq!(
            with_params("http://h/ui?x=1", false, &params[..1]),
            "http://h/ui?x=1&code=a%20b"
        );
        assert_eq!(
            with_params("http://h/ui", true, &params[..1]),
            "http://h/ui#code=a%20b"
        );
    }
}
