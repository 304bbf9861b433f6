//! `GET /{ver}/servicePrincipals/.../synchronization/jobs[/{id}]`: a job or the list, as Graph
//! answers it, with the guard's view, `Cache-Control`, `Age`, a strong `ETag`, and `304` for an
//! `If-None-Match` that names the current one.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use super::AppState;
use super::graph_path::StartPath;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::graph::Forwarding;
use crate::reads::{JobsRead, ReadAnswer, ReadRequest};

/// Longest `$select` passed on to Graph.
const MAX_SELECT: usize = 256;

/// A read, with what it takes from the request line and headers copied out of them: a bad
/// `$select` is reported after the path's ids are checked.
pub async fn read(
    state: &AppState,
    path: StartPath,
    select: Result<Option<String>, ApiError>,
    if_none_match: Option<HeaderValue>,
    caller: Caller,
    forwarding: Forwarding,
) -> Result<Response, ApiError> {
    let request = ReadRequest {
        version: path.version,
        service_principal: path.service_principal?,
        job: path.job.transpose()?,
        select: select?,
        forwarding,
    };
    Ok(match state.reads.read(&caller, &request).await? {
        ReadAnswer::Graph(outcome) => outcome.into_response(false),
        ReadAnswer::Jobs(read) => render(read, if_none_match.as_ref()),
    })
}

/// `$select` (once, bounded, property names only); other OData options are ignored, as on the
/// start routes, and anything else is refused by name.
pub(super) fn select(query: Option<&str>) -> Result<Option<String>, ApiError> {
    let mut select = None;
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if name.eq_ignore_ascii_case("$select") {
            let valid = !value.is_empty()
                && value.len() <= MAX_SELECT
                && value.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b',' | b'_' | b'/' | b'.' | b' ')
                });
            if select.is_some() || !valid {
                return Err(ApiError::bad_request(format!(
                    "Invalid $select: give it once, 1 to {MAX_SELECT} characters of property names separated by commas."
                )));
            }
            select = Some(value.into_owned());
        } else if !name.starts_with('$') {
            let shown: String = name.chars().take(64).collect();
            return Err(ApiError::bad_request(format!(
                "Unknown query parameter '{shown}'. Accepted: $select."
            )));
        }
    }
    Ok(select)
}

fn render(read: JobsRead, if_none_match: Option<&HeaderValue>) -> Response {
    let body = serde_json::to_vec(&read.body).unwrap_or_default();
    let etag = format!("\"{}\"", URL_SAFE_NO_PAD.encode(Sha256::digest(&body)));
    let mut headers = read.headers;
    headers.remove(header::CONTENT_TYPE);
    let value = |text: String| HeaderValue::from_str(&text).expect("ASCII header value");
    headers.insert(header::ETAG, value(etag.clone()));
    headers.insert(
        header::CACHE_CONTROL,
        value(format!("private, max-age={}", read.max_age)),
    );
    headers.insert(header::AGE, HeaderValue::from(read.age));
    // A strong comparison: the tag as given, or `*`.
    let matches = if_none_match
        .and_then(|v| v.to_str().ok())
        .is_some_and(|list| {
            list.split(',')
                .map(str::trim)
                .any(|tag| tag == etag || tag == "*")
        });
    if matches {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    (StatusCode::OK, headers, body).into_response()
}
