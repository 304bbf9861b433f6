//! The Graph client: builds upstream URLs from parsed ids, sends with the facade's credential,
//! retries what Graph says is retriable, and hands Graph's answers back unchanged.
//!
//! It does not decide whether a start should happen (that is the start pipeline) and never sees
//! a caller's token.

pub mod config;
pub mod credential;
pub mod resilience;

use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use serde::Deserialize;

use crate::error::ApiError;
use crate::ids::{ApiVersion, AppId, JobId, ServicePrincipalId};
use crate::values::Secret;
use config::GraphConfig;
use credential::{Credential, CredentialError, without_url};
use resilience::{Breaker, BreakerState, RetryBudget};

/// Graph's response headers that callers get back as sent (and `Retry-After`, in whole seconds).
const PASSED_BACK: [&str; 3] = ["request-id", "client-request-id", "x-ms-ags-diagnostic"];

/// Graph's answer, as received (the kept headers only).
#[derive(Debug, Clone)]
pub struct UpstreamAnswer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl UpstreamAnswer {
    pub fn request_id(&self) -> Option<&str> {
        self.headers.get("request-id").and_then(|v| v.to_str().ok())
    }
}

/// What a forwarded request carries from its caller.
#[derive(Debug, Clone, Default)]
pub struct Forwarding {
    pub client_request_id: String,
    /// Caller headers named in `graph.forward_headers`.
    pub headers: HeaderMap,
    /// With on-behalf-of: the delegated caller's token, exchanged for a Graph token acting as
    /// the user. None: the facade's own credential.
    pub on_behalf_of: Option<Secret>,
    /// The caller's bearer token, as it came; the pipeline makes it `on_behalf_of` when the
    /// start is to act as a delegated caller. Never logged or serialised.
    pub caller_token: Option<Secret>,
}

pub struct GraphClient {
    http: reqwest::Client,
    base_url: reqwest::Url,
    credential: Credential,
    max_retries: u32,
    max_retry_after: Duration,
    budget: RetryBudget,
    breaker: Breaker,
}

#[derive(Deserialize)]
struct JobBody {
    status: Option<JobStatusBody>,
}

#[derive(Deserialize)]
struct JobStatusBody {
    code: Option<String>,
}

#[derive(Deserialize)]
struct DirectoryObject {
    id: String,
}

#[derive(Deserialize)]
struct Collection {
    value: Vec<DirectoryObject>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
}

/// The outcome of a read that the pipeline needs parsed, or Graph's own error to pass back.
#[derive(Debug, Clone)]
pub enum Read<T> {
    Found(T),
    Upstream(UpstreamAnswer),
}

impl GraphClient {
    pub fn new(config: &GraphConfig, source: credential::Source, http: reqwest::Client) -> Self {
        let mut base_url = config.base_url.url().clone();
        if let Ok(mut segments) = base_url.path_segments_mut() {
            segments.pop_if_empty();
        }
        let timeout = Duration::from_secs(config.timeout_secs);
        Self {
            credential: Credential::new(source, http.clone(), timeout),
            http,
            base_url,
            max_retries: config.max_retries,
            max_retry_after: Duration::from_secs(config.max_retry_after_secs),
            budget: RetryBudget::default(),
            breaker: Breaker::new(
                config.breaker.failure_threshold,
                Duration::from_secs(config.breaker.open_secs),
            ),
        }
    }

    pub fn credential(&self) -> &Credential {
        &self.credential
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    fn url(&self, segments: &[&str]) -> reqwest::Url {
        let mut url = self.base_url.clone();
        url.path_segments_mut()
            .expect("base URL is hierarchical")
            .extend(segments);
        url
    }

    /// `{version}/servicePrincipals/{sp}/synchronization/jobs`, then `rest`.
    fn jobs_url(
        &self,
        version: ApiVersion,
        sp: &ServicePrincipalId,
        rest: &[&str],
    ) -> reqwest::Url {
        let jobs = [
            version.as_str(),
            "servicePrincipals",
            sp.as_str(),
            "synchronization",
            "jobs",
        ];
        self.url(&[&jobs[..], rest].concat())
    }

    /// The exact upstream URL of a start.
    pub fn start_url(
        &self,
        version: ApiVersion,
        sp: &ServicePrincipalId,
        job: &JobId,
    ) -> reqwest::Url {
        self.jobs_url(version, sp, &[job.as_str(), "start"])
    }

    pub async fn start(
        &self,
        version: ApiVersion,
        sp: &ServicePrincipalId,
        job: &JobId,
        fwd: &Forwarding,
    ) -> Result<UpstreamAnswer, ApiError> {
        self.send(Method::POST, self.start_url(version, sp, job), fwd)
            .await
    }

    /// A job (`job`), or the jobs of a service principal, as Graph answers, with `$select`
    /// passed on.
    pub async fn read_jobs(
        &self,
        version: ApiVersion,
        sp: &ServicePrincipalId,
        job: Option<&JobId>,
        select: Option<&str>,
        fwd: &Forwarding,
    ) -> Result<UpstreamAnswer, ApiError> {
        let mut url = self.jobs_url(version, sp, job.map(JobId::as_str).as_slice());
        if let Some(select) = select {
            url.query_pairs_mut().append_pair("$select", select);
        }
        self.send(Method::GET, url, fwd).await
    }

    /// The job's `status.code`.
    pub async fn job_status(
        &self,
        version: ApiVersion,
        sp: &ServicePrincipalId,
        job: &JobId,
        fwd: &Forwarding,
    ) -> Result<Read<String>, ApiError> {
        let url = self.jobs_url(version, sp, &[job.as_str()]);
        let answer = self.send(Method::GET, url, fwd).await?;
        if !answer.status.is_success() {
            return Ok(Read::Upstream(answer));
        }
        let body: JobBody = serde_json::from_slice(&answer.body).map_err(|e| {
            ApiError::bad_gateway(format!(
                "Graph answered an unreadable synchronizationJob: {e}"
            ))
        })?;
        Ok(Read::Found(
            body.status
                .and_then(|s| s.code)
                .unwrap_or_else(|| "Unknown".into()),
        ))
    }

    /// The object ids of the service principal's owners (all pages).
    pub async fn owners(
        &self,
        sp: &ServicePrincipalId,
        fwd: &Forwarding,
    ) -> Result<Read<Vec<String>>, ApiError> {
        let mut url = self.url(&["v1.0", "servicePrincipals", sp.as_str(), "owners"]);
        url.set_query(Some("$select=id"));
        let mut owners = Vec::new();
        for _page in 0..50 {
            let answer = self.send(Method::GET, url.clone(), fwd).await?;
            if !answer.status.is_success() {
                return Ok(Read::Upstream(answer));
            }
            let page: Collection = serde_json::from_slice(&answer.body).map_err(|e| {
                ApiError::bad_gateway(format!("Graph answered an unreadable owners list: {e}"))
            })?;
            owners.extend(page.value.into_iter().map(|o| o.id.to_ascii_lowercase()));
            match page.next_link.map(|link| self.same_host_link(&link)) {
                Some(Some(next)) => url = next,
                Some(None) => {
                    return Err(ApiError::bad_gateway(
                        "Graph answered a nextLink to another host.",
                    ));
                }
                None => return Ok(Read::Found(owners)),
            }
        }
        Err(ApiError::bad_gateway(
            "Graph's owners list did not end after 50 pages.",
        ))
    }

    /// The object id of the service principal with this appId.
    pub async fn resolve_app_id(
        &self,
        version: ApiVersion,
        app_id: &AppId,
        fwd: &Forwarding,
    ) -> Result<Read<ServicePrincipalId>, ApiError> {
        let mut url = self.url(&[
            version.as_str(),
            &format!("servicePrincipals(appId='{app_id}')"),
        ]);
        url.set_query(Some("$select=id"));
        let answer = self.send(Method::GET, url, fwd).await?;
        if !answer.status.is_success() {
            return Ok(Read::Upstream(answer));
        }
        let object: DirectoryObject = serde_json::from_slice(&answer.body).map_err(|e| {
            ApiError::bad_gateway(format!(
                "Graph answered an unreadable servicePrincipal: {e}"
            ))
        })?;
        let id = ServicePrincipalId::parse(&object.id).map_err(|_| {
            ApiError::bad_gateway("Graph answered a servicePrincipal whose id is not a GUID.")
        })?;
        Ok(Read::Found(id))
    }

    /// A nextLink is followed only to the configured Graph host, so the token never leaves it.
    fn same_host_link(&self, link: &str) -> Option<reqwest::Url> {
        let url = reqwest::Url::parse(link).ok()?;
        (url.origin() == self.base_url.origin()).then_some(url)
    }

    /// Sends through the breaker; counts connection failures, timeouts and 5xx answers (after
    /// retries) as failures, and anything else Graph answers as health.
    async fn send(
        &self,
        method: Method,
        url: reqwest::Url,
        fwd: &Forwarding,
    ) -> Result<UpstreamAnswer, ApiError> {
        let token = match &fwd.on_behalf_of {
            Some(user) => self
                .credential
                .on_behalf_of(user)
                .await
                .map_err(on_behalf_of_error)?,
            None => self
                .credential
                .token()
                .await
                .map_err(own_credential_error)?,
        };
        if let Err(wait) = self.breaker.admit() {
            let secs = whole_seconds(wait).max(1);
            return Err(ApiError::service_unavailable(
                format!(
                    "Microsoft Graph has been failing; calls fail fast for {secs} more seconds (circuit open)."
                ),
                secs,
            ));
        }
        let mut result = self
            .send_with_retries(method.clone(), url.clone(), fwd, &token)
            .await;
        // Graph refusing the facade's own token (revoked, rotated) is not the caller's fault:
        // fetch a new one and try once more (Graph refused before acting), else say so as 502.
        if fwd.on_behalf_of.is_none()
            && matches!(&result, Ok(answer) if answer.status == StatusCode::UNAUTHORIZED)
        {
            self.credential.invalidate(&token);
            let token = self
                .credential
                .token()
                .await
                .map_err(own_credential_error)?;
            result = self.send_with_retries(method, url, fwd, &token).await;
            if matches!(&result, Ok(answer) if answer.status == StatusCode::UNAUTHORIZED) {
                tracing::error!("Graph refused the facade's own access token twice");
                result = Err(ApiError::bad_gateway(
                    "Microsoft Graph refused the facade's own credential.",
                ));
            }
        }
        self.breaker.record(match &result {
            Ok(answer) => !matches!(answer.status.as_u16(), 502..=504),
            Err(error) => !matches!(error.status.as_u16(), 502 | 504),
        });
        result
    }

    /// Retries a refused connection, Graph's 429 and 503 (and 504 on reads), at most `max_retries` times and
    /// within the retry budget; a timeout or a connection lost after sending is never retried,
    /// because the start may have reached Graph.
    async fn send_with_retries(
        &self,
        method: Method,
        url: reqwest::Url,
        fwd: &Forwarding,
        token: &Secret,
    ) -> Result<UpstreamAnswer, ApiError> {
        self.budget.deposit();
        let mut attempt = 0;
        loop {
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(token.expose())
                .header("client-request-id", &fwd.client_request_id)
                .header(header::ACCEPT, "application/json");
            for (name, value) in &fwd.headers {
                request = request.header(name, value);
            }
            if method == Method::POST {
                request = request.header(header::CONTENT_LENGTH, "0");
            }
            let started = std::time::Instant::now();
            let result = request.send().await;
            let elapsed_ms = started.elapsed().as_millis() as u64;
            let operation = operation_of(&url);
            metrics::histogram!(crate::telemetry::GRAPH_DURATION, "operation" => operation)
                .record(started.elapsed().as_secs_f64());
            let outcome: std::borrow::Cow<'static, str> = match &result {
                Ok(response) => response.status().as_u16().to_string().into(),
                Err(error) if error.is_timeout() => "timeout".into(),
                Err(_) => "unreachable".into(),
            };
            metrics::counter!(crate::telemetry::GRAPH_REQUESTS, "operation" => operation, "status" => outcome).increment(1);
            let may_retry = |attempt: u32| attempt < self.max_retries && self.budget.withdraw();
            let response = match result {
                Ok(response) => response,
                Err(error) if error.is_timeout() => {
                    tracing::warn!(%method, path = url.path(), elapsed_ms, "Graph timed out");
                    return Err(ApiError::gateway_timeout(
                        "Microsoft Graph did not answer in time.",
                    ));
                }
                Err(error) if error.is_connect() && may_retry(attempt) => {
                    tracing::warn!(%method, path = url.path(), attempt, error = %without_url(&error), "Graph connection refused; retrying");
                    attempt += 1;
                    tokio::time::sleep(backoff(attempt)).await;
                    continue;
                }
                Err(error) => {
                    tracing::warn!(%method, path = url.path(), error = %without_url(&error), "Graph unreachable");
                    return Err(ApiError::bad_gateway(
                        "Microsoft Graph could not be reached.",
                    ));
                }
            };
            let status = response.status();
            let headers = kept_headers(response.headers());
            let wait = retry_after(response.headers());
            let body = response.bytes().await.map_err(|error| {
                if error.is_timeout() {
                    ApiError::gateway_timeout("Microsoft Graph did not finish its answer in time.")
                } else {
                    ApiError::bad_gateway("Microsoft Graph dropped the connection while answering.")
                }
            })?;
            let answer = UpstreamAnswer {
                status,
                headers,
                body,
            };
            // The audit line and the metrics carry every answer; the log adds the ones to look at.
            let request_id = answer.request_id().unwrap_or("");
            if status.is_success() && attempt == 0 {
                tracing::debug!(%method, path = url.path(), status = status.as_u16(), request_id, elapsed_ms, attempt, "Graph answered");
            } else {
                tracing::info!(%method, path = url.path(), status = status.as_u16(), request_id, elapsed_ms, attempt, "Graph answered");
            }
            // A 504 on the start may come after Graph acted: only reads retry it.
            let retriable = matches!(status.as_u16(), 429 | 503)
                || (status == StatusCode::GATEWAY_TIMEOUT && method == Method::GET);
            if retriable {
                let wait = wait.unwrap_or_else(|| backoff(attempt + 1));
                if wait <= self.max_retry_after && may_retry(attempt) {
                    attempt += 1;
                    tokio::time::sleep(wait).await;
                    continue;
                }
            }
            return Ok(answer);
        }
    }
}

/// The operation a Graph URL performs, as a bounded metric label.
fn operation_of(url: &reqwest::Url) -> &'static str {
    let path = url.path();
    if path.ends_with("/start") {
        "start"
    } else if path.ends_with("/owners") {
        "owners"
    } else if path.contains("(appId=") {
        "resolve_app_id"
    } else if path.ends_with("/jobs") {
        "list_jobs"
    } else {
        "get_job"
    }
}

/// The facade's own credential failing is never the caller's fault: 502, detail logged.
fn own_credential_error(error: CredentialError) -> ApiError {
    tracing::error!(%error, "no Graph token");
    ApiError::bad_gateway("The facade could not obtain its Graph access token.")
}

/// An on-behalf-of exchange failing, as the caller's answer. A user who must satisfy more
/// claims (MFA, Conditional Access) gets the claims challenge, as Graph would send it, to pass
/// back to Entra.
fn on_behalf_of_error(error: CredentialError) -> ApiError {
    match error {
        CredentialError::InteractionRequired {
            description,
            claims,
        } => {
            let claims = claims
                .map(|c| {
                    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, c.as_bytes())
                })
                .unwrap_or_default();
            let challenge = format!(
                r#"Bearer realm="syncjob-facade", error="insufficient_claims", claims="{claims}""#
            );
            ApiError::new(StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", format!("The signed-in user must satisfy additional requirements (interaction_required): {description}"))
                .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_str(&challenge).unwrap_or_else(|_| HeaderValue::from_static(r#"Bearer realm="syncjob-facade", error="insufficient_claims""#)))
        }
        CredentialError::InvalidAssertion(description) => ApiError::invalid_token(format!(
            "The token cannot be exchanged on behalf of the user: {description}"
        )),
        other => own_credential_error(other),
    }
}

/// Exponential backoff with jitter: 200 ms, 400 ms, 800 ms, ... (±25 %), capped at 5 s.
fn backoff(attempt: u32) -> Duration {
    let base = 200u64
        .saturating_mul(1 << attempt.min(5).saturating_sub(1))
        .min(5_000);
    let jitter = fastrand::u64(0..=base / 2);
    Duration::from_millis(base - base / 4 + jitter)
}

/// Graph's `Retry-After`: seconds (possibly fractional) or an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = text.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::from_secs_f64(secs.min(86_400.0)));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// Whole seconds, rounded up, never zero: what callers get as `Retry-After`.
pub fn whole_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

fn kept_headers(upstream: &reqwest::header::HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for name in PASSED_BACK {
        if let Some(value) = upstream.get(name) {
            headers.insert(HeaderName::from_static(name), value.clone());
        }
    }
    if let Some(wait) = retry_after(upstream) {
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from(whole_seconds(wait).max(1)),
        );
    }
    if let Some(content_type) = upstream.get(header::CONTENT_TYPE) {
        headers.insert(header::CONTENT_TYPE, content_type.clone());
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_graph_operation_label_is_catalogued() {
        let base = "https://graph.microsoft.com/v1.0/servicePrincipals";
        let urls = [
            format!("{base}/sp/synchronization/jobs/j/start"),
            format!("{base}/sp/synchronization/jobs/j"),
            format!("{base}/sp/owners"),
            format!("{base}(appId='a')"),
            format!("{base}/sp/synchronization/jobs"),
        ];
        let labels: Vec<&str> = urls
            .iter()
            .map(|url| operation_of(&reqwest::Url::parse(url).unwrap()))
            .collect();
        assert_eq!(labels, crate::telemetry::GRAPH_OPERATIONS);
    }

    #[test]
    fn retry_after_is_read_as_fractional_seconds_and_sent_on_as_whole_seconds() {
        let mut headers = HeaderMap::new();
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1.5"));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(1500)));
        assert_eq!(kept_headers(&headers)[header::RETRY_AFTER], "2");
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("0"));
        assert_eq!(kept_headers(&headers)[header::RETRY_AFTER], "1");
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("soon"));
        assert!(kept_headers(&headers).get(header::RETRY_AFTER).is_none());
    }

    #[test]
    fn backoff_grows_and_stays_bounded() {
        assert!(backoff(1) <= Duration::from_millis(250));
        assert!(backoff(3) >= Duration::from_millis(600));
        assert!(backoff(30) <= Duration::from_millis(6_250));
    }
}
