//! The request context: ids that every answer carries, and the envelope for errors that the
//! router itself produces.
//!
//! Runs outermost among the application layers so that every response, an error from any layer
//! below included, leaves with `request-id`, `client-request-id` and, for errors, Graph's envelope
//! holding both.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use crate::error::ApiError;
use crate::outcome::FromGraph;

/// Ids of one request.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The facade's own id for this request.
    pub request_id: String,
    /// The caller's `client-request-id`, or a new GUID.
    pub client_request_id: String,
    /// When the request arrived: the request timeout counts from here.
    pub received: std::time::Instant,
}

/// A caller's `client-request-id` is used when it is a reasonable header value; anything else is
/// replaced, as when it is absent.
fn client_request_id(request: &Request) -> String {
    request
        .headers()
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

pub async fn request_context(mut request: Request, next: Next) -> Response {
    let context = RequestContext {
        request_id: uuid::Uuid::new_v4().to_string(),
        client_request_id: client_request_id(&request),
        received: std::time::Instant::now(),
    };
    request.extensions_mut().insert(context.clone());
    // The method is one of a bounded set; the path is the caller's, so it is cut and escaped.
    let span = tracing::info_span!(
        "request",
        method = method_label(request.method()),
        path = %crate::telemetry::shown(request.uri().path()),
        request_id = %context.request_id,
        client_request_id = %context.client_request_id,
    );
    // The route template, not the path: a bounded label.
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = method_label(request.method());
    let is_docs = request.uri().path().starts_with("/docs");
    let started = std::time::Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    metrics::histogram!(crate::telemetry::HTTP_DURATION, "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(crate::telemetry::HTTP_REQUESTS, "route" => route, "method" => method, "status" => response.status().as_u16().to_string()).increment(1);
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "request done"
        )
    });

    let bare = response.extensions().get::<ApiError>().is_none()
        && response.extensions().get::<FromGraph>().is_none();
    if let Some(error) = error_for_bare_status(&response).filter(|_| bare) {
        let allow = response.headers().get(header::ALLOW).cloned();
        response = error.into_response();
        if let Some(allow) = allow {
            response.headers_mut().insert(header::ALLOW, allow);
        }
    }
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if is_docs {
        // Swagger UI is served from the binary: nothing else may be loaded, framed or referred.
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; frame-ancestors 'none'"));
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
    if !headers.contains_key("request-id") {
        headers.insert(
            "request-id",
            HeaderValue::from_str(&context.request_id).expect("uuid"),
        );
    }
    headers.insert(
        "client-request-id",
        HeaderValue::from_str(&context.client_request_id).expect("checked header value"),
    );
    // Taken, not copied: nothing outside this layer reads the marker.
    if let Some(error) = response.extensions_mut().remove::<ApiError>() {
        let request_id = response
            .headers()
            .get("request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = error.body(&request_id, &context.client_request_id);
        let bytes = serde_json::to_vec(&body).expect("json");
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
        *response.body_mut() = Body::from(bytes);
    }
    response
}

/// Standard verbs only: any other method name would be a new label value or a caller-chosen
/// string in the log.
fn method_label(method: &axum::http::Method) -> &'static str {
    ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
        .into_iter()
        .find(|verb| *verb == method.as_str())
        .unwrap_or("other")
}

/// Errors that axum or tower answer with a bare status: given the envelope here.
fn error_for_bare_status(response: &Response) -> Option<ApiError> {
    match response.status() {
        StatusCode::METHOD_NOT_ALLOWED => Some(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "The HTTP method is not allowed on this resource.",
        )),
        StatusCode::NOT_FOUND => Some(ApiError::not_found("The resource does not exist.")),
        StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => Some(
            ApiError::gateway_timeout("The request did not complete in time."),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => Some(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            "The request body is too large.",
        )),
        _ => None,
    }
}
