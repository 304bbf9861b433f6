//! The operator page (`GET /ui`): a small HTML, CSS and JavaScript page embedded in the binary
//! for teams without a portal. It signs a person in with Entra (authorization code with PKCE,
//! as a single-page application), then uses the facade's own routes with that person's token:
//! the job reads, `whatIf`, the start. It holds no secret and decides nothing; every rule is
//! the API's.
//!
//! The `[ui]` section owns its settings; without it the routes do not exist (404). The page
//! learns them from `/ui/settings.json`, and is served with a Content-Security-Policy that
//! allows its own files and, beside the facade, only the authority's token endpoint.

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use crate::ids::{AppId, ServicePrincipalId};
use crate::values::{Problems, SecureUrl};

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");
const FAVICON_SVG: &str = include_str!("assets/favicon.svg");

/// Service principals listed on the page at most: each is one read per refresh.
const MAX_SERVICE_PRINCIPALS: usize = 50;
/// Scopes requested at most, and the longest one.
const MAX_SCOPES: usize = 10;
const MAX_SCOPE_LEN: usize = 256;

/// The `[ui]` section: the single-page application registration the page signs in with.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct UiConfig {
    /// The application (client) id of the page's Entra registration (a single-page application).
    pub client_id: String,
    /// `https://login.microsoftonline.com/<tenant>`; by default the first issuer's authority.
    pub authority: Option<SecureUrl>,
    /// The scopes the page asks for; by default the first audience's first start scope.
    pub scopes: Vec<String>,
    /// Service principals whose jobs the page lists on opening: `<guid>` (an object id) or
    /// `appId=<guid>` (the application's appId).
    pub service_principals: Vec<String>,
}

impl UiConfig {
    /// Checks the section and fills the defaults from the first issuer and audience.
    pub fn prepare(
        &mut self,
        first_issuer: Option<&SecureUrl>,
        first_audience: Option<&str>,
        start_scope: Option<&str>,
        problems: &mut Problems,
    ) {
        if AppId::parse(&self.client_id).is_err() {
            problems.add(
                "ui.client_id",
                format!(
                    "'{}' is not an application (client) id: a GUID is required",
                    self.client_id.escape_debug()
                ),
            );
        }
        if self.authority.is_none() {
            match first_issuer.map(authority_of) {
                Some(Ok(authority)) => self.authority = Some(authority),
                Some(Err(message)) => problems.add("ui.authority", message),
                None => problems.add(
                    "ui.authority",
                    "required when auth.issuers names no issuer to take it from",
                ),
            }
        }
        if let Some(authority) = &self.authority
            && (authority.url().query().is_some() || authority.url().fragment().is_some())
        {
            problems.add("ui.authority", "must not carry a query or a fragment");
        }
        if self.scopes.is_empty()
            && let (Some(audience), Some(scope)) = (first_audience, start_scope)
        {
            self.scopes = vec![format!("{}/{scope}", audience.trim_end_matches('/'))];
        }
        if self.scopes.is_empty() || self.scopes.len() > MAX_SCOPES {
            problems.add(
                "ui.scopes",
                format!("between 1 and {MAX_SCOPES} scopes are required"),
            );
        }
        for (i, scope) in self.scopes.iter().enumerate() {
            if scope.is_empty()
                || scope.len() > MAX_SCOPE_LEN
                || !scope.bytes().all(|b| b.is_ascii_graphic())
            {
                problems.add(
                    format!("ui.scopes[{i}]"),
                    format!("a scope is 1 to {MAX_SCOPE_LEN} visible ASCII characters"),
                );
            }
        }
        if self.service_principals.len() > MAX_SERVICE_PRINCIPALS {
            problems.add(
                "ui.service_principals",
                format!("at most {MAX_SERVICE_PRINCIPALS} service principals"),
            );
        }
        for (i, entry) in self.service_principals.iter().enumerate() {
            let valid = match entry.get(..6).filter(|p| p.eq_ignore_ascii_case("appId=")) {
                Some(_) => AppId::parse(&entry[6..]).is_ok(),
                None => ServicePrincipalId::parse(entry).is_ok(),
            };
            if !valid {
                problems.add(
                    format!("ui.service_principals[{i}]"),
                    format!(
                        "'{}' is neither an object id (<guid>) nor an appId (appId=<guid>)",
                        entry.escape_debug()
                    ),
                );
            }
        }
    }
}

/// The authority an issuer's tokens come from: Entra's v2.0 issuer without `/v2.0`; the v1.0
/// issuer (`https://sts.windows.net/<tenant>/`) signs in at `login.microsoftonline.com`.
fn authority_of(issuer: &SecureUrl) -> Result<SecureUrl, String> {
    let text = issuer.as_str().trim_end_matches('/');
    let text = text.strip_suffix("/v2.0").unwrap_or(text);
    let text = match text.strip_prefix("https://sts.windows.net/") {
        Some(tenant) => format!("https://login.microsoftonline.com/{tenant}"),
        None => text.to_owned(),
    };
    text.parse().map_err(|message| {
        format!("cannot be derived from the issuer {issuer} ({message}); set it")
    })
}

/// The page's routes, with what they need computed once.
pub fn routes<S: Clone + Send + Sync + 'static>(config: &UiConfig) -> Router<S> {
    let Some(authority) = &config.authority else {
        return Router::new();
    };
    let settings = serde_json::json!({
        "clientId": config.client_id,
        "authority": authority.as_str().trim_end_matches('/'),
        "scopes": config.scopes,
        "servicePrincipals": config.service_principals,
    })
    .to_string();
    let csp = content_security_policy(authority);
    // Bodies are `Bytes`: a request clones a reference, not the file.
    let file = |content_type: &'static str, body: Bytes| {
        let csp = csp.clone();
        get(move || std::future::ready(respond(content_type, csp.clone(), body.clone())))
    };
    Router::new()
        .route("/ui", file("text/html; charset=utf-8", INDEX_HTML.into()))
        .route("/ui/", get(|| async { Redirect::permanent("/ui") }))
        .route(
            "/ui/app.js",
            file("text/javascript; charset=utf-8", APP_JS.into()),
        )
        .route(
            "/ui/app.css",
            file("text/css; charset=utf-8", APP_CSS.into()),
        )
        .route("/ui/favicon.svg", file("image/svg+xml", FAVICON_SVG.into()))
        .route(
            "/ui/settings.json",
            file("application/json", settings.into()),
        )
}

/// No inline script or style, nothing framed, nothing sent anywhere but the facade and the
/// authority (the token endpoint; sign-in itself is a top-level navigation), and no script may
/// write HTML (the page sets text only: Trusted Types with no policy).
fn content_security_policy(authority: &SecureUrl) -> HeaderValue {
    let origin = authority.url().origin().ascii_serialization();
    let policy = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self' {origin}; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'"
    );
    HeaderValue::from_str(&policy).expect("an origin is visible ASCII")
}

/// A file of the page, with the headers every one of them carries.
fn respond(content_type: &'static str, csp: HeaderValue, body: Bytes) -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CONTENT_SECURITY_POLICY, csp),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
    ];
    (headers, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepared(config: &str, issuer: &str) -> (UiConfig, Vec<(String, String)>) {
        let mut ui: UiConfig = toml::from_str(config).unwrap();
        let issuer: SecureUrl = issuer.parse().unwrap();
        let mut problems = Problems::default();
        ui.prepare(
            Some(&issuer),
            Some("api://syncjob-facade"),
            Some("Synchronization.ReadWrite.All"),
            &mut problems,
        );
        (ui, problems.into_vec())
    }

    const CLIENT: &str = "client_id = \"e4f5a6b7-c8d9-4e0f-9a1b-3c4d5e6f7a8b\"\n";

    #[test]
    fn the_authority_and_scope_default_from_the_first_issuer_and_audience() {
        for (issuer, authority) in [
            (
                "https://login.microsoftonline.com/8a3c9c1e-6f0b-4b7e-9d55-2f1e7c0a4b13/v2.0",
                "https://login.microsoftonline.com/8a3c9c1e-6f0b-4b7e-9d55-2f1e7c0a4b13",
            ),
            (
                "https://sts.windows.net/8a3c9c1e-6f0b-4b7e-9d55-2f1e7c0a4b13/",
                "https://login.microsoftonline.com/8a3c9c1e-6f0b-4b7e-9d55-2f1e7c0a4b13",
            ),
            (
                "http://127.0.0.1:9/tenant/v2.0/",
                "http://127.0.0.1:9/tenant",
            ),
        ] {
            let (ui, problems) = prepared(CLIENT, issuer);
            assert!(problems.is_empty(), "{problems:?}");
            assert_eq!(ui.authority.unwrap().as_str(), authority);
            assert_eq!(
                ui.scopes,
                ["api://syncjob-facade/Synchronization.ReadWrite.All"]
            );
        }
    }

    #[test]
    fn every_bad_key_is_named() {
        let (_, problems) = prepared(
            "client_id = \"portal\"\nscopes = [\"a b\"]\nservice_principals = [\"x\", \"2f8d4c6a-1b3e-4a5f-9c7d-8e0f1a2b3c4d\"]\n",
            "https://login.microsoftonline.com/t/v2.0",
        );
        let keys: Vec<&str> = problems.iter().map(|(key, _)| key.as_str()).collect();
        assert_eq!(
            keys,
            ["ui.client_id", "ui.scopes[0]", "ui.service_principals[0]"],
            "{problems:?}"
        );
        let http: Result<UiConfig, _> = toml::from_str("authority = \"http://login.example/t\"");
        assert!(http.is_err(), "an authority must be https or loopback");
    }

    #[test]
    fn a_service_principal_is_an_object_id_or_an_app_id_so_marked() {
        let (_, problems) = prepared(
            &format!(
                "{CLIENT}service_principals = [\"appId=7c6b5a49-3827-4165-9e0d-c1b2a3f4e5d6\", \
                 \"APPID=7c6b5a49-3827-4165-9e0d-c1b2a3f4e5d6\", \"appId=salesforce\", \
                 \"appId:7c6b5a49-3827-4165-9e0d-c1b2a3f4e5d6\", \"2f8d4c6a-1b3e-4a5f-9c7d-8e0f1a2b3c4d\"]\n"
            ),
            "https://login.microsoftonline.com/t/v2.0",
        );
        let keys: Vec<&str> = problems.iter().map(|(key, _)| key.as_str()).collect();
        assert_eq!(
            keys,
            ["ui.service_principals[2]", "ui.service_principals[3]"],
            "{problems:?}"
        );
    }
}
