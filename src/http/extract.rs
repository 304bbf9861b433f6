//! Extractors: the authenticated caller, the cmdlet's query switches, what is forwarded, and a
//! JSON body whose rejections answer in Graph's envelope.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

use super::AppState;
use super::context::RequestContext;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::graph::Forwarding;
use crate::guard::IdempotencyKey;
use crate::ids::ApiVersion;
use crate::start::Switches;

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(AUTHORIZATION) else {
            return Err(ApiError::missing_token());
        };
        let text = value
            .to_str()
            .map_err(|_| ApiError::invalid_token("The Authorization header is not readable."))?;
        let (scheme, token) = text.trim().split_once(' ').unwrap_or((text.trim(), ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ApiError::missing_token());
        }
        let token = token.trim();
        if token.is_empty() {
            return Err(ApiError::invalid_token("The bearer token is empty."));
        }
        state.auth.authenticate(token).await
    }
}

/// The cmdlet's switches and, on `/start`, `apiVersion`, from the query string. Names compare
/// case-insensitively, as PowerShell parameters do; unknown names are refused.
#[derive(Debug, Clone, Copy)]
pub struct StartQuery {
    pub switches: Switches,
    pub api_version: Option<ApiVersion>,
}

impl StartQuery {
    pub fn parse(query: Option<&str>, allow_api_version: bool) -> Result<Self, ApiError> {
        let mut parsed = Self {
            switches: Switches::default(),
            api_version: None,
        };
        for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            let flag = |value: &str| match value.to_ascii_lowercase().as_str() {
                "" | "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                _ => Err(ApiError::bad_request(format!(
                    "Invalid value for query parameter {name}: '{value}'. Use true or false."
                ))),
            };
            match name.to_ascii_lowercase().as_str() {
                "passthru" => parsed.switches.pass_thru = flag(&value)?,
                "whatif" => parsed.switches.what_if = flag(&value)?,
                "force" => parsed.switches.force = flag(&value)?,
                "apiversion" if allow_api_version => {
                    parsed.api_version = Some(ApiVersion::parse(&value).ok_or_else(|| ApiError::bad_request(format!("Invalid value for query parameter apiVersion: '{value}'. Use v1.0 or beta.")))?);
                }
                // OData system query options ($select, $count, ...) that SDKs may add mean
                // nothing to an action; Graph ignores them on it too.
                other if other.starts_with('$') => {}
                _ => {
                    let shown: String = name.chars().take(64).collect();
                    return Err(ApiError::bad_request(format!(
                        "Unknown query parameter '{shown}'. Accepted: passThru, whatIf, force{}.",
                        if allow_api_version {
                            ", apiVersion"
                        } else {
                            ""
                        }
                    )));
                }
            }
        }
        Ok(parsed)
    }
}

impl FromRequestParts<AppState> for Forwarding {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let context = parts
            .extensions
            .get::<RequestContext>()
            .cloned()
            .ok_or_else(|| ApiError::internal("request context missing"))?;
        let mut headers = HeaderMap::new();
        for name in &state.forward_headers {
            // client-request-id is always forwarded, as the context holds it.
            if name == "client-request-id" {
                continue;
            }
            for value in parts.headers.get_all(name) {
                headers.append(name.clone(), value.clone());
            }
        }
        Ok(Forwarding {
            client_request_id: context.client_request_id,
            headers,
            on_behalf_of: None,
        })
    }
}

/// The `Idempotency-Key` request header, validated.
pub struct IdempotencyHeader(pub Option<IdempotencyKey>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(Self(None));
        };
        let text = value.to_str().map_err(|_| {
            ApiError::bad_request("Invalid Idempotency-Key: it must be visible ASCII.")
        })?;
        IdempotencyKey::parse(text).map(|key| Self(Some(key)))
    }
}

/// A JSON body: 415 unless `application/json`, 413 over the limit, 400 when malformed, each in
/// the envelope.
pub struct JsonBody(pub Value);

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let is_json = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<mime_essence::Essence>().ok())
            .is_some_and(|essence| essence.is_json());
        if !is_json {
            return Err(ApiError::unsupported_media_type(
                "The request body must be application/json.",
            ));
        }
        let limit = state.config.server.body_limit_bytes;
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::payload_too_large(limit)
                } else {
                    ApiError::bad_request("The request body could not be read.")
                }
            })?;
        let value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::bad_request(format!("The request body is not valid JSON: {e}."))
        })?;
        Ok(Self(value))
    }
}

/// The essence of a media type (`type/subtype`, parameters dropped).
mod mime_essence {
    pub struct Essence(String);

    impl std::str::FromStr for Essence {
        type Err = ();

        fn from_str(text: &str) -> Result<Self, ()> {
            let essence = text
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            if essence.contains('/') {
                Ok(Self(essence))
            } else {
                Err(())
            }
        }
    }

    impl Essence {
        /// `application/json` and `application/*+json`.
        pub fn is_json(&self) -> bool {
            self.0 == "application/json"
                || (self.0.starts_with("application/") && self.0.ends_with("+json"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switches_are_case_insensitive_and_strict() {
        let parsed = StartQuery::parse(Some("PassThru=true&whatif=1&FORCE=false"), false).unwrap();
        assert_eq!(
            parsed.switches,
            Switches {
                pass_thru: true,
                what_if: true,
                force: false
            }
        );
        assert!(
            StartQuery::parse(Some("passThru=yes"), false)
                .unwrap_err()
                .message
                .contains("passThru")
        );
        assert!(StartQuery::parse(Some("apiVersion=beta"), false).is_err());
        assert_eq!(
            StartQuery::parse(Some("apiVersion=beta"), true)
                .unwrap()
                .api_version,
            Some(ApiVersion::Beta)
        );
        assert!(StartQuery::parse(Some("apiVersion=v2"), true).is_err());
        assert!(
            StartQuery::parse(Some("sneaky=1"), true)
                .unwrap_err()
                .message
                .contains("sneaky")
        );
    }
}
