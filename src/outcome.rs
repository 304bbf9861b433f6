//! A decided start: one type from the pipeline to the wire. It is what a flight's waiters share
//! (across replicas, through the guard store), what an `Idempotency-Key` replays, and what each
//! answer form renders in one place: a response, a batch entry, a hook summary entry.

use axum::body::Body as HttpBody;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Value, json};

use crate::error::ApiError;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    #[serde(with = "status_code")]
    pub status: StatusCode,
    /// Graph's kept headers, or the facade's (`Retry-After`, `WWW-Authenticate`).
    #[serde(with = "header_list")]
    pub headers: HeaderMap,
    pub body: Body,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Body {
    /// Graph accepted the start.
    Started,
    /// Graph's own answer (an error), passed through as Graph sent it.
    Graph { text: String },
    /// The facade's error, answered in Graph's envelope.
    Error { code: String, message: String },
    /// The `whatIf` report.
    Report { report: Value },
}

/// Marks a response that is Graph's answer, passed through: its body is left as Graph sent it.
#[derive(Debug, Clone, Copy)]
pub struct FromGraph;

impl From<ApiError> for Outcome {
    fn from(error: ApiError) -> Self {
        Self {
            status: error.status,
            headers: error.headers.into_iter().collect(),
            body: Body::Error {
                code: error.code.into_owned(),
                message: error.message,
            },
        }
    }
}

impl From<crate::graph::UpstreamAnswer> for Outcome {
    fn from(answer: crate::graph::UpstreamAnswer) -> Self {
        Self::from_graph(
            answer.status,
            answer.headers,
            String::from_utf8_lossy(&answer.body).into_owned(),
        )
    }
}

impl Outcome {
    /// Graph's answer to a call: accepted (2xx) or its error, passed through.
    pub fn from_graph(status: StatusCode, headers: HeaderMap, text: String) -> Self {
        let body = if status.is_success() {
            Body::Started
        } else {
            Body::Graph { text }
        };
        Self {
            status,
            headers,
            body,
        }
    }

    pub fn report(report: Value) -> Self {
        Self {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Body::Report { report },
        }
    }

    pub fn started(&self) -> bool {
        matches!(self.body, Body::Started)
    }

    /// The facade's error code, when this is one.
    pub fn error_code(&self) -> Option<&str> {
        match &self.body {
            Body::Error { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Graph's `request-id`, when Graph answered.
    pub fn request_id(&self) -> Option<&str> {
        self.headers.get("request-id").and_then(|v| v.to_str().ok())
    }

    /// Marks a replayed answer (`Idempotent-Replayed: true`).
    pub fn replayed(mut self) -> Self {
        self.headers
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
        self
    }

    /// Answers worth keeping for an idempotency key: not the ones a retry may cure (5xx,
    /// throttling) nor the guard's refusals (409), so the same key can start the job later.
    pub fn is_final(&self) -> bool {
        let code = self.status.as_u16();
        match self.body {
            Body::Started | Body::Report { .. } => true,
            Body::Graph { .. } => code < 500 && code != 429,
            Body::Error { .. } => code < 500 && !matches!(code, 409 | 429),
        }
    }

    /// The status this answer is given with: a started job is 204, or 200 with `passThru`.
    pub fn answer_status(&self, pass_thru: bool) -> StatusCode {
        match self.body {
            Body::Started if pass_thru => StatusCode::OK,
            Body::Started => StatusCode::NO_CONTENT,
            _ => self.status,
        }
    }

    /// The answer as an HTTP response.
    pub fn into_response(self, pass_thru: bool) -> Response {
        let status = self.answer_status(pass_thru);
        let mut headers = self.headers;
        headers.remove(header::CONTENT_TYPE);
        match self.body {
            Body::Started if pass_thru => {
                (status, headers, axum::Json(json!({"value": true}))).into_response()
            }
            Body::Started => (status, headers).into_response(),
            Body::Report { report } => (status, headers, axum::Json(report)).into_response(),
            Body::Graph { text } => {
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                let mut response = (status, headers, HttpBody::from(text)).into_response();
                response.extensions_mut().insert(FromGraph);
                response
            }
            Body::Error { code, message } => {
                let mut error = ApiError::new(status, code, message);
                error.headers = headers
                    .into_iter()
                    .filter_map(|(n, v)| Some((n?, v)))
                    .collect();
                error.into_response()
            }
        }
    }

    /// The answer as one entry of Graph's JSON-batching response.
    pub fn batch_entry(self, id: usize, pass_thru: bool, ids: (&str, &str)) -> Value {
        let status = self.answer_status(pass_thru).as_u16();
        let mut headers: serde_json::Map<String, Value> = self
            .headers
            .iter()
            .filter(|(name, _)| *name != header::CONTENT_TYPE)
            .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.into())))
            .collect();
        let body = match self.body {
            Body::Started if pass_thru => Some(json!({"value": true})),
            Body::Started => None,
            Body::Report { report } => Some(report),
            Body::Graph { text } => {
                Some(serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text)))
            }
            Body::Error { code, message } => {
                Some(crate::error::envelope(&code, &message, ids.0, ids.1))
            }
        };
        if body.is_some() {
            headers.insert("Content-Type".into(), "application/json".into());
        }
        let mut entry = json!({"id": id.to_string(), "status": status, "headers": headers});
        if let Some(body) = body {
            entry["body"] = body;
        }
        entry
    }
}

mod status_code {
    use super::*;

    pub fn serialize<S: Serializer>(status: &StatusCode, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u16(status.as_u16())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<StatusCode, D::Error> {
        StatusCode::from_u16(u16::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// A `HeaderMap` as a list of text pairs (values that are not text are left out).
pub(crate) mod header_list {
    use super::*;

    pub fn serialize<S: Serializer>(headers: &HeaderMap, s: S) -> Result<S::Ok, S::Error> {
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .filter_map(|(n, v)| Some((n.as_str(), v.to_str().ok()?)))
            .collect();
        pairs.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<HeaderMap, D::Error> {
        let pairs = Vec::<(String, String)>::deserialize(d)?;
        Ok(pairs
            .into_iter()
            .filter_map(|(n, v)| {
                Some((
                    HeaderName::from_bytes(n.as_bytes()).ok()?,
                    HeaderValue::from_str(&v).ok()?,
                ))
            })
            .collect())
    }
}
