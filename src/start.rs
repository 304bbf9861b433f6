//! The start pipeline: authorise → resolve the target → check ownership → idempotency →
//! cooldown → single flight (preflight → forward) → audit. Every route (Graph-compatible,
//! identity, batch) runs a start through here, so every start is decided and audited the same
//! way.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use moka::future::Cache;
use serde_json::{Value, json};

use crate::admission::Admission;
use crate::audit::{self, Decision, Target};
use crate::auth::Caller;
use crate::auth::authz::{Grant, Policy};
use crate::error::ApiError;
use crate::graph::{Forwarding, GraphClient, Read, UpstreamAnswer};
use crate::guard::{Guard, IdempotencyKey, Idempotent, JobKey, Outcome, Role};
use crate::ids::{ApiVersion, AppId, JobId, ServicePrincipalId, ServicePrincipalRef};

/// The cmdlet's switches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Switches {
    pub pass_thru: bool,
    pub what_if: bool,
    pub force: bool,
}

/// One start, as asked.
#[derive(Debug, Clone)]
pub struct StartRequest {
    pub version: ApiVersion,
    pub service_principal: ServicePrincipalRef,
    pub job: JobId,
    pub switches: Switches,
    pub forwarding: Forwarding,
    /// The caller's `Idempotency-Key`, if any.
    pub idempotency_key: Option<IdempotencyKey>,
    /// The route that asked, for the audit trail.
    pub route: &'static str,
}

/// A start's answer that is not a facade error.
#[derive(Debug)]
pub enum Answer {
    /// Graph accepted the start.
    Started {
        upstream: UpstreamAnswer,
        pass_thru: bool,
    },
    /// Graph refused or failed; passed through unchanged.
    Upstream(UpstreamAnswer),
    /// The `whatIf` report.
    WhatIf(Value),
}

pub struct StartService {
    graph: GraphClient,
    policy: Policy,
    guard: Guard,
    /// Charges callers for what reaches Graph; places for starts running.
    admission: Admission,
    preflight: bool,
    /// Delegated callers' starts go to Graph as the user (on-behalf-of).
    on_behalf_of: bool,
    /// Every start in flight.
    tasks: tokio_util::task::TaskTracker,
    /// appId → service principal object id; directory ids do not change.
    app_ids: Lookups<AppId, ServicePrincipalId>,
    /// service principal → owner object ids, briefly, so bursts do not re-read them.
    owners: Lookups<ServicePrincipalId, Arc<Vec<String>>>,
}

/// How long Graph's 404 for a lookup is kept: a burst naming a missing service principal
/// costs one Graph call, and one created a moment later is found soon after.
const NOT_FOUND_TTL: Duration = Duration::from_secs(30);

/// A directory lookup cache: concurrent misses of one key share one Graph call, and its answer
/// is kept (a found value for the cache's lifetime, Graph's 404 for `NOT_FOUND_TTL`). Other
/// answers of Graph (throttling, failures) are shared by the waiters of that call, not kept.
struct Lookups<K, V> {
    cache: Cache<K, Read<V>>,
}

/// A lookup answer that is shared with concurrent waiters but not kept.
enum Unkept {
    Upstream(UpstreamAnswer),
    Failed(ApiError),
}

struct LookupExpiry {
    found: Duration,
}

impl<K, V> moka::Expiry<K, Read<V>> for LookupExpiry {
    fn expire_after_create(
        &self,
        _key: &K,
        value: &Read<V>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(match value {
            Read::Found(_) => self.found,
            Read::Upstream(_) => NOT_FOUND_TTL,
        })
    }
}

impl<K, V> Lookups<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + Clone + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn new(found: Duration) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(10_000)
                .expire_after(LookupExpiry { found })
                .build(),
        }
    }

    /// The cached answer, or `load`'s: a miss is charged to `caller` before Graph is asked.
    async fn get(
        &self,
        key: K,
        caller: &Caller,
        admission: &Admission,
        load: impl Future<Output = Result<Read<V>, ApiError>>,
    ) -> Result<Read<V>, ApiError> {
        if let Some(hit) = self.cache.get(&key).await {
            return Ok(hit);
        }
        admission.charge(caller)?;
        let loaded = self
            .cache
            .try_get_with(key, async {
                match load.await {
                    Ok(Read::Upstream(answer)) if answer.status != StatusCode::NOT_FOUND => {
                        Err(Unkept::Upstream(answer))
                    }
                    Ok(read) => Ok(read),
                    Err(error) => Err(Unkept::Failed(error)),
                }
            })
            .await;
        loaded.or_else(|unkept| match &*unkept {
            Unkept::Upstream(answer) => Ok(Read::Upstream(answer.clone())),
            Unkept::Failed(error) => Err(error.clone()),
        })
    }
}

/// What the pipeline learned on the way, for the audit event and the report.
struct Progress<'a> {
    request: &'a StartRequest,
    caller: &'a Caller,
    resolved: Option<ServicePrincipalId>,
}

impl Progress<'_> {
    fn audit(&self, decision: Decision, reason: &str, upstream: Option<&UpstreamAnswer>) {
        self.record(
            decision,
            reason,
            upstream.map(|u| u.status.as_u16()),
            upstream.and_then(UpstreamAnswer::request_id),
        );
    }

    fn audit_outcome(&self, decision: Decision, reason: &str, outcome: &Outcome) {
        self.record(
            decision,
            reason,
            Some(outcome.status()),
            outcome.header("request-id"),
        );
    }

    fn record(
        &self,
        decision: Decision,
        reason: &str,
        upstream_status: Option<u16>,
        upstream_request_id: Option<&str>,
    ) {
        audit::record(&audit::Event {
            route: self.request.route,
            caller: self.caller,
            target: Target {
                version: self.request.version,
                requested: &self.request.service_principal,
                service_principal_id: self.resolved.as_ref().map(ServicePrincipalId::as_str),
                job_id: &self.request.job,
            },
            decision,
            reason,
            upstream_status,
            upstream_request_id,
            client_request_id: &self.request.forwarding.client_request_id,
        });
    }

    fn fail(&self, error: ApiError) -> ApiError {
        let decision = if error.status.is_server_error() {
            Decision::Failed
        } else {
            Decision::Denied
        };
        self.audit(decision, &error.message, None);
        error
    }
}

impl StartService {
    pub fn new(
        graph: GraphClient,
        policy: Policy,
        guard: Guard,
        admission: Admission,
        preflight: bool,
        on_behalf_of: bool,
    ) -> Self {
        Self {
            graph,
            policy,
            guard,
            admission,
            preflight,
            on_behalf_of,
            tasks: tokio_util::task::TaskTracker::new(),
            app_ids: Lookups::new(Duration::from_secs(600)),
            owners: Lookups::new(Duration::from_secs(60)),
        }
    }

    pub fn graph(&self) -> &GraphClient {
        &self.graph
    }

    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// The token-level permission check alone (per-target checks follow in `start`).
    pub fn authorize(&self, caller: &Caller) -> Result<Grant, ApiError> {
        self.policy.authorize(caller)
    }

    /// Runs `start` in its own task: a caller that disconnects cannot cut a start (and the
    /// flight that others wait on) in half.
    ///
    /// The task is tracked, so that shutdown waits for it (within the grace period), and runs
    /// in the request's span, so that its logs carry the request's ids.
    pub async fn start_detached(
        self: &Arc<Self>,
        caller: Caller,
        request: StartRequest,
    ) -> Result<Answer, ApiError> {
        use tracing::Instrument;
        let service = Arc::clone(self);
        let work = async move { service.start(&caller, &request).await };
        self.tasks
            .spawn(work.instrument(tracing::Span::current()))
            .await
            .map_err(ApiError::internal)?
    }

    /// Starts still running (detached from their callers), for shutdown to wait on.
    pub fn tasks(&self) -> &tokio_util::task::TaskTracker {
        &self.tasks
    }

    pub async fn start(&self, caller: &Caller, request: &StartRequest) -> Result<Answer, ApiError> {
        // With on-behalf-of, every Graph call of a delegated caller's start acts as the user, so
        // Entra's audit shows the user and Graph enforces the user's directory roles.
        let acting_as_user;
        let request = if self.on_behalf_of && caller.kind == crate::auth::CallerKind::Delegated {
            let mut as_user = request.clone();
            as_user.forwarding.on_behalf_of = Some(caller.token.clone());
            acting_as_user = as_user;
            &acting_as_user
        } else {
            request
        };
        let mut progress = Progress {
            request,
            caller,
            resolved: None,
        };
        let grant = self
            .policy
            .authorize(caller)
            .map_err(|e| progress.fail(e))?;

        let sp = match &request.service_principal {
            ServicePrincipalRef::Id(id) => id.clone(),
            ServicePrincipalRef::AppId(app_id) => match self
                .resolve(caller, request.version, app_id, &request.forwarding)
                .await
                .map_err(|e| progress.fail(e))?
            {
                Read::Found(id) => id,
                Read::Upstream(answer) => {
                    progress.audit(
                        Decision::Failed,
                        "appId could not be resolved",
                        Some(&answer),
                    );
                    return Ok(Answer::Upstream(answer));
                }
            },
        };
        progress.resolved = Some(sp.clone());

        if let Grant::OwnedBy { permission } = &grant {
            match self
                .owners_of(caller, &sp, &request.forwarding)
                .await
                .map_err(|e| progress.fail(e))?
            {
                Read::Found(owners) if owners.contains(&caller.object_id) => {}
                Read::Found(_) => {
                    return Err(progress.fail(ApiError::forbidden(format!(
                        "Insufficient privileges: with {permission} an application may start jobs only of service principals it owns; {} is not an owner of service principal {sp}.",
                        caller.object_id
                    ))));
                }
                Read::Upstream(answer) => {
                    progress.audit(Decision::Failed, "owners could not be read", Some(&answer));
                    return Ok(Answer::Upstream(answer));
                }
            }
        }

        let job = JobKey::new(&sp, &request.job);
        if request.switches.what_if {
            return self.what_if(&progress, &sp, &job, &grant).await;
        }
        let scope = format!("{}/{}", caller.tenant_id, caller.object_id);
        if let Some(key) = &request.idempotency_key
            && let Idempotent::Replay(outcome, pass_thru) = self
                .guard
                .begin_idempotent(&scope, key, &job)
                .await
                .map_err(|e| progress.fail(e))?
        {
            progress.audit_outcome(
                Decision::Replayed,
                "Idempotency-Key replay: nothing sent",
                &outcome,
            );
            return outcome_answer(outcome, pass_thru, true);
        }
        let outcome = self.guarded(&progress, &sp, &job).await;
        if let Some(key) = &request.idempotency_key {
            self.guard
                .finish_idempotent(&scope, key, &job, &outcome, request.switches.pass_thru)
                .await;
        }
        outcome_answer(outcome, request.switches.pass_thru, false)
    }

    /// Cooldown, then one flight for all concurrent starts of the job.
    async fn guarded(
        &self,
        progress: &Progress<'_>,
        sp: &ServicePrincipalId,
        job: &JobKey,
    ) -> Outcome {
        let request = progress.request;
        match self.guard.cooldown_remaining(job).await {
            Err(error) => return Outcome::from_error(&progress.fail(error)),
            Ok(Some(remaining)) => {
                let error = self.guard.cooldown_error(&request.job, remaining);
                progress.audit(Decision::Cooldown, &error.message, None);
                return Outcome::from_error(&error);
            }
            Ok(None) => {}
        }
        let mut flight = self
            .guard
            .single_flight(job, &request.job, self.forward(progress, sp))
            .await;
        // A forced start that joined a non-forced flight refused as Active runs its own flight.
        if request.switches.force
            && let Ok((Outcome::Error { code, .. }, Role::Coalesced)) = &flight
            && code == "SyncJobAlreadyActive"
        {
            flight = self
                .guard
                .single_flight(job, &request.job, self.forward(progress, sp))
                .await;
        }
        match flight {
            Ok((outcome, Role::Leader)) => outcome,
            Ok((outcome, Role::Coalesced)) => {
                progress.audit_outcome(
                    Decision::Coalesced,
                    "shared the outcome of a concurrent start of the same job",
                    &outcome,
                );
                outcome
            }
            Err(error) => {
                // The cooldown, this caller's rate limit (declined before anything was sent),
                // or a failure of the guard store or of another replica's flight.
                let decision = if error.code == "SyncJobStartCooldown" {
                    Decision::Cooldown
                } else if error.status.is_client_error() {
                    Decision::Denied
                } else {
                    Decision::Failed
                };
                progress.audit(decision, &error.message, None);
                Outcome::from_error(&error)
            }
        }
    }

    /// The flight leader's work: a place and the caller's charge, preflight, then the start.
    /// Declines (`Err`) when this caller may not send it now: that refusal is its own, not the
    /// flight's.
    async fn forward(
        &self,
        progress: &Progress<'_>,
        sp: &ServicePrincipalId,
    ) -> Result<Outcome, ApiError> {
        let _place = self.admission.admit_start(progress.caller)?;
        Ok(self.preflight_and_start(progress, sp).await)
    }

    async fn preflight_and_start(
        &self,
        progress: &Progress<'_>,
        sp: &ServicePrincipalId,
    ) -> Outcome {
        let request = progress.request;
        match self.preflight_status(request, sp).await {
            Err(error) => return Outcome::from_error(&progress.fail(error)),
            Ok(Err(answer)) => {
                progress.audit(
                    Decision::Failed,
                    "preflight read of the job failed",
                    Some(&answer),
                );
                return upstream_outcome(answer);
            }
            Ok(Ok(status)) => {
                if let Some(refusal) = active_refusal(request, status.as_deref()) {
                    progress.audit(Decision::Active, &refusal.message, None);
                    return Outcome::from_error(&refusal);
                }
            }
        }
        match self
            .graph
            .start(request.version, sp, &request.job, &request.forwarding)
            .await
        {
            Err(error) => Outcome::from_error(&progress.fail(error)),
            Ok(upstream) => {
                let accepted = upstream.status.is_success();
                progress.audit(
                    Decision::Forwarded,
                    if accepted {
                        "started"
                    } else {
                        "Graph refused the start"
                    },
                    Some(&upstream),
                );
                upstream_outcome(upstream)
            }
        }
    }

    /// The job's status when preflight is on; Graph's answer when the read failed.
    async fn preflight_status(
        &self,
        request: &StartRequest,
        sp: &ServicePrincipalId,
    ) -> Result<Result<Option<String>, UpstreamAnswer>, ApiError> {
        if !self.preflight {
            return Ok(Ok(None));
        }
        Ok(
            match self
                .graph
                .job_status(request.version, sp, &request.job, &request.forwarding)
                .await?
            {
                Read::Found(status) => Ok(Some(status)),
                Read::Upstream(answer) => Err(answer),
            },
        )
    }

    /// The `whatIf` report: decided as a real start would be, nothing sent.
    async fn what_if(
        &self,
        progress: &Progress<'_>,
        sp: &ServicePrincipalId,
        job: &JobKey,
        grant: &Grant,
    ) -> Result<Answer, ApiError> {
        let request = progress.request;
        if self.preflight {
            // The preflight read reaches Graph.
            self.admission
                .charge(progress.caller)
                .map_err(|e| progress.fail(e))?;
        }
        let status = match self
            .preflight_status(request, sp)
            .await
            .map_err(|e| progress.fail(e))?
        {
            Ok(status) => status,
            Err(answer) => {
                progress.audit(
                    Decision::Failed,
                    "preflight read of the job failed",
                    Some(&answer),
                );
                return Ok(Answer::Upstream(answer));
            }
        };
        let cooldown = self
            .guard
            .cooldown_remaining(job)
            .await
            .map_err(|e| progress.fail(e))?;
        let refusal = cooldown
            .map(|left| self.guard.cooldown_error(&request.job, left))
            .or_else(|| active_refusal(request, status.as_deref()));
        let report = self.report(
            progress,
            sp,
            grant,
            status.as_deref(),
            cooldown,
            refusal.as_ref(),
        );
        progress.audit(
            Decision::WhatIf,
            refusal
                .as_ref()
                .map_or("whatIf: would start", |r| r.message.as_str()),
            None,
        );
        Ok(Answer::WhatIf(report))
    }

    async fn resolve(
        &self,
        caller: &Caller,
        version: ApiVersion,
        app_id: &AppId,
        fwd: &Forwarding,
    ) -> Result<Read<ServicePrincipalId>, ApiError> {
        self.app_ids
            .get(
                app_id.clone(),
                caller,
                &self.admission,
                self.graph.resolve_app_id(version, app_id, fwd),
            )
            .await
    }

    async fn owners_of(
        &self,
        caller: &Caller,
        sp: &ServicePrincipalId,
        fwd: &Forwarding,
    ) -> Result<Read<Arc<Vec<String>>>, ApiError> {
        let load = async {
            Ok(match self.graph.owners(sp, fwd).await? {
                Read::Found(owners) => Read::Found(Arc::new(owners)),
                Read::Upstream(answer) => Read::Upstream(answer),
            })
        };
        self.owners
            .get(sp.clone(), caller, &self.admission, load)
            .await
    }

    fn report(
        &self,
        progress: &Progress<'_>,
        sp: &ServicePrincipalId,
        grant: &Grant,
        status: Option<&str>,
        cooldown: Option<Duration>,
        refusal: Option<&ApiError>,
    ) -> Value {
        let request = progress.request;
        let app_id = match &request.service_principal {
            ServicePrincipalRef::AppId(app_id) => Some(app_id.as_str()),
            ServicePrincipalRef::Id(_) => None,
        };
        json!({
            "whatIf": true,
            "wouldStart": refusal.is_none(),
            "target": {
                "apiVersion": request.version,
                "servicePrincipalId": sp,
                "appId": app_id,
                "synchronizationJobId": request.job,
            },
            "request": {
                "method": "POST",
                "url": self.graph.start_url(request.version, sp, &request.job).as_str(),
            },
            "caller": progress.caller,
            "authorization": {
                "decision": "allowed",
                "grant": grant,
                "ownershipChecked": matches!(grant, Grant::OwnedBy { .. }),
            },
            "preflight": {
                "enabled": self.preflight,
                "status": status,
                "force": request.switches.force,
            },
            "guard": {
                "store": self.guard.store_kind(),
                "cooldownRemainingSecs": cooldown.map(crate::graph::whole_seconds),
                "idempotencyKey": request.idempotency_key.is_some(),
            },
            "refusal": refusal.map(|r| json!({"status": r.status.as_u16(), "code": r.code, "message": r.message})),
        })
    }
}

/// The preflight refusal of a running job, unless forced.
fn active_refusal(request: &StartRequest, status: Option<&str>) -> Option<ApiError> {
    let code =
        status.filter(|code| code.eq_ignore_ascii_case("Active") && !request.switches.force)?;
    Some(ApiError::conflict(
        "SyncJobAlreadyActive",
        format!(
            "The synchronization job {} is running (status.code = {code}). Starting a running job again can stop the provisioning service; start only a paused or quarantined job, or pass force=true.",
            request.job
        ),
    ))
}

fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect()
}

fn header_map(pairs: &[(String, String)]) -> HeaderMap {
    pairs
        .iter()
        .filter_map(|(n, v)| {
            Some((
                HeaderName::from_bytes(n.as_bytes()).ok()?,
                HeaderValue::from_str(v).ok()?,
            ))
        })
        .collect()
}

fn upstream_outcome(upstream: UpstreamAnswer) -> Outcome {
    let headers = header_pairs(&upstream.headers);
    if upstream.status.is_success() {
        Outcome::Started {
            status: upstream.status.as_u16(),
            headers,
        }
    } else {
        Outcome::Upstream {
            status: upstream.status.as_u16(),
            headers,
            body: String::from_utf8_lossy(&upstream.body).into_owned(),
        }
    }
}

/// An outcome as this request's answer; a replayed one says so in `Idempotent-Replayed`.
fn outcome_answer(outcome: Outcome, pass_thru: bool, replayed: bool) -> Result<Answer, ApiError> {
    let replay_header = |mut headers: HeaderMap| {
        if replayed {
            headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
        headers
    };
    let status = |code: u16| StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
    match outcome {
        Outcome::Started {
            status: code,
            headers,
        } => Ok(Answer::Started {
            upstream: UpstreamAnswer {
                status: status(code),
                headers: replay_header(header_map(&headers)),
                body: Bytes::new(),
            },
            pass_thru,
        }),
        Outcome::Upstream {
            status: code,
            headers,
            body,
        } => Ok(Answer::Upstream(UpstreamAnswer {
            status: status(code),
            headers: replay_header(header_map(&headers)),
            body: Bytes::from(body),
        })),
        Outcome::Error {
            status: code,
            code: error_code,
            message,
            headers,
        } => {
            let mut error = ApiError::new(status(code), error_code, message);
            for (name, value) in replay_header(header_map(&headers)).iter() {
                error = error.with_header(name.clone(), value.clone());
            }
            Err(error)
        }
    }
}

impl Answer {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Started {
                pass_thru: true, ..
            }
            | Self::WhatIf(_) => StatusCode::OK,
            Self::Started { .. } => StatusCode::NO_CONTENT,
            Self::Upstream(upstream) => upstream.status,
        }
    }
}
