//! Extractors: the authenticated caller, the cmdlet's query switches, what is forwarded, and a
//! JSON body whose rejections answer in Graph's envelope.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::Value;

use super::AppState;
use super::context::RequestContext;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::graph::Forwarding;
use crate::guard::IdempotencyKey;
use crate::ids::ApiVersion;
use crate::start::Switches;

/// The bearer token of the `Authorization` header, if it names one.
fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let text = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = text.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

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
        let mut seen: Vec<String> = Vec::new();
        for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            // A switch named twice is refused, never decided by order: a dry run added by a
            // proxy or a portal must not be turned into a start by a later value.
            let lower = name.to_ascii_lowercase();
            if !lower.starts_with('$') {
                if seen.contains(&lower) {
                    let shown: String = name.chars().take(64).collect();
                    return Err(ApiError::bad_request(format!(
                        "The query parameter {shown} is given more than once; give it once."
                    )));
                }
                seen.push(lower);
            }
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
                if value.len() > MAX_FORWARDED_VALUE {
                    return Err(ApiError::bad_request(format!(
                        "The {name} header is longer than {MAX_FORWARDED_VALUE} bytes."
                    )));
                }
                let copied = detached(value).ok_or_else(|| {
                    ApiError::bad_request(format!("The {name} header is not a valid value."))
                })?;
                headers.append(name.clone(), copied);
            }
        }
        Ok(Forwarding {
            client_request_id: context.client_request_id,
            headers,
            on_behalf_of: None,
            caller_token: bearer(&parts.headers).map(crate::values::Secret::new),
        })
    }
}

/// A copy of a caller's header value that keeps nothing of the request: hyper's values are
/// slices of the connection's read buffer, which a value kept while Graph answers would keep
/// alive. `None` for bytes that a checked header value may not hold.
pub fn detached(value: &HeaderValue) -> Option<HeaderValue> {
    HeaderValue::from_bytes(value.as_bytes()).ok()
}

/// Longest value of a caller header forwarded to Graph (`graph.forward_headers`).
pub const MAX_FORWARDED_VALUE: usize = 1024;

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
        // `application/json` and `application/*+json`, parameters (charset) aside.
        let is_json = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<mime::Mime>().ok())
            .is_some_and(|m| {
                m.type_() == mime::APPLICATION
                    && (m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON))
            });
        if !is_json {
            return Err(ApiError::unsupported_media_type(
                "The request body must be application/json.",
            ));
        }
        let limit = state.server.body_limit_bytes;
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::payload_too_large(limit)
                } else {
                    ApiError::bad_request("The request body could not be read.")
                }
            })?;
        let strict::NoDuplicateKeys(value) = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::bad_request(format!("The request body is not valid JSON: {e}."))
        })?;
        Ok(Self(value))
    }
}

/// JSON that names no key twice in one object: serde_json keeps the last of duplicate keys,
/// which would let a second value silently override the first.
mod strict {
    use serde::de::{Deserialize, Deserializer, Error, MapAccess, SeqAccess, Visitor};
    use serde_json::{Map, Value};

    pub struct NoDuplicateKeys(pub Value);

    impl<'de> Deserialize<'de> for NoDuplicateKeys {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_any(StrictVisitor).map(Self)
        }
    }

    struct StrictVisitor;

    impl<'de> Visitor<'de> for StrictVisitor {
        type Value = Value;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON value")
        }

        fn visit_bool<E: Error>(self, v: bool) -> Result<Value, E> {
            Ok(Value::Bool(v))
        }

        fn visit_i64<E: Error>(self, v: i64) -> Result<Value, E> {
            Ok(Value::from(v))
        }

        fn visit_u64<E: Error>(self, v: u64) -> Result<Value, E> {
            Ok(Value::from(v))
        }

        fn visit_f64<E: Error>(self, v: f64) -> Result<Value, E> {
            Ok(Value::from(v))
        }

        fn visit_str<E: Error>(self, v: &str) -> Result<Value, E> {
            Ok(Value::String(v.to_owned()))
        }

        fn visit_unit<E: Error>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            let mut items = Vec::new();
            while let Some(super::strict::NoDuplicateKeys(item)) = seq.next_element()? {
                items.push(item);
            }
            Ok(Value::Array(items))
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            let mut object = Map::new();
            while let Some(key) = map.next_key::<String>()? {
                let NoDuplicateKeys(value) = map.next_value()?;
                if object.contains_key(&key) {
                    let shown: String = key.chars().take(64).collect();
                    return Err(A::Error::custom(format!("the key '{shown}' appears twice")));
                }
                object.insert(key, value);
            }
            Ok(Value::Object(object))
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

    #[test]
    fn a_switch_named_twice_in_any_casing_is_refused_by_name() {
        for query in [
            "whatIf=true&whatIf=false",
            "whatIf=true&WHATIF=false",
            "whatif&whatIf=1",
        ] {
            let error = StartQuery::parse(Some(query), true).unwrap_err();
            assert!(error.message.contains("more than once"), "{query}");
            assert!(
                error.message.to_ascii_lowercase().contains("whatif"),
                "{query}"
            );
        }
        assert!(StartQuery::parse(Some("apiVersion=beta&apiversion=v1.0"), true).is_err());
        assert!(StartQuery::parse(Some("$select=id&$select=status"), true).is_ok());
    }

    #[test]
    fn json_bodies_may_not_name_a_key_twice() {
        let parse = |text: &str| serde_json::from_str::<strict::NoDuplicateKeys>(text);
        assert!(parse(r#"{"a":1,"b":[{"c":2,"d":3}]}"#).is_ok());
        let error = parse(r#"{"a":1,"a":2}"#).err().unwrap().to_string();
        assert!(error.contains("'a' appears twice"), "{error}");
        assert!(parse(r#"[{"x":{"y":1,"y":1}}]"#).is_err());
        assert_eq!(
            parse(r#"{"n":1.5,"m":-2,"t":true,"z":null,"s":"v"}"#)
                .unwrap()
                .0,
            serde_json::json!({"n":1.5,"m":-2,"t":true,"z":null,"s":"v"})
        );
    }
}
