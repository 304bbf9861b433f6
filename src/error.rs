//! The one error type of the facade and Graph's error envelope.
//!
//! Every error the facade answers, whatever route produced it, leaves as
//! `{"error":{"code","message","innerError":{"date","request-id","client-request-id"}}}` so that a
//! Graph SDK pointed at the facade raises its usual error type. Errors that Graph itself returned
//! are not this type: they are passed through untouched (see `graph::UpstreamAnswer`).

use std::borrow::Cow;

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// An error answered by the facade itself.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: Cow<'static, str>,
    pub message: String,
    /// Extra response headers (`WWW-Authenticate`, `Retry-After`, `Allow`); a list keeps the
    /// error small enough to pass around by value.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
            headers: Vec::new(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", message)
    }

    pub fn method_not_allowed(allow: &'static str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("The HTTP method is not allowed on this resource; allowed: {allow}."),
        )
        .with_header(header::ALLOW, HeaderValue::from_static(allow))
    }

    /// 401 for a request that carried no bearer token at all (RFC 6750 §3.1: no error code).
    pub fn missing_token() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token is empty.",
        )
        .with_header(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Bearer realm="syncjob-facade""#),
        )
    }

    /// 401 for a token that was given and rejected.
    pub fn invalid_token(description: impl Into<String>) -> Self {
        let description = description.into();
        let challenge = format!(
            r#"Bearer realm="syncjob-facade", error="invalid_token", error_description="{}""#,
            quoted_string_safe(&description)
        );
        Self::new(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            format!("Access token validation failure. {description}"),
        )
        .with_header(header::WWW_AUTHENTICATE, header_value(&challenge))
    }

    /// 403 for a valid token that lacks the permission; `needed` goes into the challenge's `scope`.
    pub fn insufficient_scope(needed: &[String], message: impl Into<String>) -> Self {
        let challenge = format!(
            r#"Bearer realm="syncjob-facade", error="insufficient_scope", scope="{}""#,
            quoted_string_safe(&needed.join(" "))
        );
        Self::forbidden(message).with_header(header::WWW_AUTHENTICATE, header_value(&challenge))
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            message,
        )
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            format!("The request body exceeds the limit of {limit} bytes."),
        )
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            message,
        )
    }

    pub fn bad_gateway(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "BadGateway", message)
    }

    pub fn gateway_timeout(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GATEWAY_TIMEOUT, "GatewayTimeout", message)
    }

    pub fn service_unavailable(message: impl Into<String>, retry_after_secs: u64) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            message,
        )
        .with_retry_after(retry_after_secs)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// An internal failure: the detail goes to the log, the caller gets a generic message.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "The facade failed to process the request.",
        )
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.retain(|(existing, _)| *existing != name);
        self.headers.push((name, value));
        self
    }

    pub fn header(&self, name: &str) -> Option<&HeaderValue> {
        self.headers
            .iter()
            .find(|(n, _)| n.as_str().eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    pub fn with_retry_after(self, secs: u64) -> Self {
        self.with_header(header::RETRY_AFTER, HeaderValue::from(secs.max(1)))
    }

    /// The envelope with the given request ids.
    pub fn body(&self, request_id: &str, client_request_id: &str) -> Value {
        envelope(&self.code, &self.message, request_id, client_request_id)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(mut self) -> Response {
        // The ids are filled in by the request-context middleware; a response built outside it
        // (unit tests) still carries a complete envelope.
        let body = self.body("", "");
        let mut response = (self.status, axum::Json(body)).into_response();
        for (name, value) in std::mem::take(&mut self.headers) {
            response.headers_mut().insert(name, value);
        }
        // Marks a facade error envelope, so that the request-context middleware can fill in
        // `request-id` and `client-request-id` once they are known.
        response.extensions_mut().insert(self);
        response
    }
}

/// Graph's error envelope.
pub fn envelope(code: &str, message: &str, request_id: &str, client_request_id: &str) -> Value {
    json!({
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": graph_date(),
                "request-id": request_id,
                "client-request-id": client_request_id,
            }
        }
    })
}

/// The `innerError.date` format Graph uses: UTC, seconds, no offset.
pub fn graph_date() -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    time::OffsetDateTime::now_utc()
        .format(&format)
        .unwrap_or_default()
}

/// Keeps a challenge parameter inside its quoted-string: no quotes, backslashes or controls.
fn quoted_string_safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c == '"' || c == '\\' || c.is_control() {
                '\''
            } else {
                c
            }
        })
        .collect()
}

fn header_value(text: &str) -> HeaderValue {
    let visible: String = text
        .chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control())
        .collect();
    HeaderValue::from_str(&visible)
        .unwrap_or_else(|_| HeaderValue::from_static(r#"Bearer realm="syncjob-facade""#))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_token_challenge_keeps_the_description_inside_its_quotes() {
        let error = ApiError::invalid_token(r#"bad "kid" \ here"#);
        let challenge = error.header("www-authenticate").unwrap().to_str().unwrap();
        assert_eq!(
            challenge,
            r#"Bearer realm="syncjob-facade", error="invalid_token", error_description="bad 'kid' ' here""#
        );
    }

    #[test]
    fn envelope_has_graph_shape() {
        let body = ApiError::bad_request("nope").body("r", "c");
        assert_eq!(body["error"]["code"], "BadRequest");
        assert_eq!(body["error"]["innerError"]["request-id"], "r");
        assert_eq!(body["error"]["innerError"]["client-request-id"], "c");
        assert_eq!(
            body["error"]["innerError"]["date"].as_str().unwrap().len(),
            19
        );
    }
}
