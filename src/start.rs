//! The start pipeline: authorise → resolve the target → check ownership → (whatIf report) →
//! idempotency → cooldown → single flight (admission → preflight → forward), then the audit,
//! written once where the pipeline returns. Every route (Graph-compatible, identity, batch,
//! webhooks) runs a start through here, so every start is decided and audited the same way,
//! and answers with one [`Outcome`].

use std::sync::Arc;

use serde_json::json;

use crate::admission::Admission;
use crate::audit::{self, Decision};
use crate::auth::Caller;
use crate::auth::authz::{Grant, Policy};
use crate::directory::Directory;
use crate::error::ApiError;
use crate::graph::{Forwarding, GraphClient, Read, UpstreamAnswer};
use crate::guard::{Flight, Guard, IdempotencyKey, Idempotent, JobKey};
use crate::ids::{ApiVersion, JobId, ServicePrincipalId, ServicePrincipalRef};
use crate::outcome::Outcome;
use crate::reads::ReadCache;

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

/// A start's answer: the outcome, and whether it is given as `passThru` (a replay keeps the
/// first answer's shape).
#[derive(Debug, Clone)]
pub struct Answer {
    pub outcome: Outcome,
    pub pass_thru: bool,
}

/// What the pipeline decided and why, for the audit written at its exit.
struct Verdict {
    outcome: Outcome,
    decision: Decision,
    reason: String,
    /// `None`: the request's own switch.
    pass_thru: Option<bool>,
}

impl Verdict {
    fn new(outcome: impl Into<Outcome>, decision: Decision, reason: impl Into<String>) -> Self {
        Self {
            outcome: outcome.into(),
            decision,
            reason: reason.into(),
            pass_thru: None,
        }
    }

    /// A refusal or failure of the facade's own: 4xx denied, 5xx failed.
    fn refused(error: ApiError) -> Self {
        let decision = if error.code == "SyncJobStartCooldown" {
            Decision::Cooldown
        } else if error.status.is_server_error() {
            Decision::Failed
        } else {
            Decision::Denied
        };
        Self::new(error.clone(), decision, error.message)
    }
}

pub struct StartService {
    pub(crate) graph: Arc<GraphClient>,
    pub(crate) policy: Policy,
    pub(crate) guard: Arc<Guard>,
    /// Charges callers for what reaches Graph; places for starts running.
    pub(crate) admission: Arc<Admission>,
    /// The cached job reads, dropped when a start is forwarded.
    pub(crate) reads: Arc<ReadCache>,
    pub(crate) preflight: bool,
    /// Delegated callers' starts go to Graph as the user (on-behalf-of).
    pub(crate) on_behalf_of: bool,
    /// Every start in flight, detached from its caller: shutdown waits for them.
    pub(crate) tasks: tokio_util::task::TaskTracker,
    /// appId resolution and owners, cached and shared with the job reads.
    pub(crate) directory: Arc<Directory>,
}

impl StartService {
    /// Runs `start` in its own task: a caller that disconnects cannot cut a start (and the
    /// flight that others wait on) in half.
    ///
    /// The task is tracked, so that shutdown waits for it (within the grace period), and runs
    /// in the request's span, so that its logs carry the request's ids.
    pub async fn start_detached(self: &Arc<Self>, caller: Caller, request: StartRequest) -> Answer {
        use tracing::Instrument;
        let service = Arc::clone(self);
        let work = async move { service.start(&caller, &request).await };
        self.tasks
            .spawn(work.instrument(tracing::Span::current()))
            .await
            .unwrap_or_else(|error| Answer {
                outcome: ApiError::internal(error).into(),
                pass_thru: false,
            })
    }

    /// Decides one start and writes its audit event.
    pub async fn start(&self, caller: &Caller, request: &StartRequest) -> Answer {
        // With on-behalf-of, every Graph call of a delegated caller's start acts as the user, so
        // Entra's audit shows the user and Graph enforces the user's directory roles.
        let mut request = std::borrow::Cow::Borrowed(request);
        if self.on_behalf_of && caller.kind == crate::auth::CallerKind::Delegated {
            let forwarding = &mut request.to_mut().forwarding;
            forwarding.on_behalf_of = forwarding.caller_token.clone();
        }
        let mut resolved = None;
        let verdict = self.decide(caller, &request, &mut resolved).await;
        let from_graph = !matches!(
            verdict.outcome.body,
            crate::outcome::Body::Error { .. } | crate::outcome::Body::Report { .. }
        );
        audit::record(&audit::Event {
            route: request.route,
            caller,
            version: request.version,
            requested: &request.service_principal,
            service_principal_id: resolved.as_ref().map(ServicePrincipalId::as_str),
            job_id: &request.job,
            decision: verdict.decision,
            reason: &verdict.reason,
            upstream_status: from_graph.then_some(verdict.outcome.status.as_u16()),
            upstream_request_id: verdict.outcome.request_id(),
            client_request_id: &request.forwarding.client_request_id,
        });
        Answer {
            pass_thru: verdict.pass_thru.unwrap_or(request.switches.pass_thru),
            outcome: verdict.outcome,
        }
    }

    async fn decide(
        &self,
        caller: &Caller,
        request: &StartRequest,
        resolved: &mut Option<ServicePrincipalId>,
    ) -> Verdict {
        let grant = match self.policy.authorize(caller) {
            Ok(grant) => grant,
            Err(error) => return Verdict::refused(error),
        };
        let fwd = &request.forwarding;
        let sp = match &request.service_principal {
            ServicePrincipalRef::Id(id) => id.clone(),
            ServicePrincipalRef::AppId(app_id) => {
                // Boxed, as the other branches taken by few starts: a future is as large as the
                // largest thing it may await, and every start in flight holds one.
                match Box::pin(self.directory.resolve(caller, request.version, app_id, fwd)).await {
                    Err(error) => return Verdict::refused(error),
                    Ok(Read::Upstream(answer)) => {
                        return Verdict::new(
                            answer,
                            Decision::Failed,
                            "appId could not be resolved",
                        );
                    }
                    Ok(Read::Found(id)) => id,
                }
            }
        };
        *resolved = Some(sp.clone());
        if let Grant::OwnedBy { permission } = &grant {
            match Box::pin(self.directory.owners_of(caller, &sp, fwd)).await {
                Err(error) => return Verdict::refused(error),
                Ok(Read::Upstream(answer)) => {
                    return Verdict::new(answer, Decision::Failed, "owners could not be read");
                }
                Ok(Read::Found(owners)) if owners.contains(&caller.object_id) => {}
                Ok(Read::Found(_)) => {
                    return Verdict::refused(ApiError::forbidden(format!(
                        "Insufficient privileges: with {permission} an application may start jobs only of service principals it owns; {} is not an owner of service principal {sp}.",
                        caller.object_id
                    )));
                }
            }
        }
        let job = JobKey::new(&sp, &request.job);
        if request.switches.what_if {
            return Box::pin(self.what_if(caller, request, &sp, &job, &grant)).await;
        }
        let scope = format!("{}/{}", caller.tenant_id, caller.object_id);
        let Some(key) = &request.idempotency_key else {
            return self.guarded(caller, request, &sp, &job).await;
        };
        match self.guard.begin_idempotent(&scope, key, &job).await {
            Err(error) => Verdict::refused(error),
            Ok(Idempotent::Replay(outcome, pass_thru)) => Verdict {
                pass_thru: Some(pass_thru),
                ..Verdict::new(
                    outcome.replayed(),
                    Decision::Replayed,
                    "Idempotency-Key replay: nothing sent",
                )
            },
            Ok(Idempotent::Fresh) => {
                let verdict = self.guarded(caller, request, &sp, &job).await;
                self.guard
                    .finish_idempotent(
                        &scope,
                        key,
                        &job,
                        &verdict.outcome,
                        request.switches.pass_thru,
                    )
                    .await;
                verdict
            }
        }
    }

    /// Cooldown, then one flight for all concurrent starts of the job.
    async fn guarded(
        &self,
        caller: &Caller,
        request: &StartRequest,
        sp: &ServicePrincipalId,
        job: &JobKey,
    ) -> Verdict {
        match self.guard.cooldown_remaining(job).await {
            Err(error) => return Verdict::refused(error),
            Ok(Some(remaining)) => {
                return Verdict::refused(self.guard.cooldown_error(&request.job, remaining));
            }
            Ok(None) => {}
        }
        // The leader's work is boxed: the flight's future would otherwise carry it twice.
        let fly = || {
            self.guard.single_flight(
                job,
                &request.job,
                Box::pin(self.forward(caller, request, sp)),
            )
        };
        let mut flight = fly().await;
        // A forced start that joined a non-forced flight refused as Active runs its own flight.
        if request.switches.force
            && let Ok(Flight::Joined(outcome)) = &flight
            && outcome.error_code() == Some("SyncJobAlreadyActive")
        {
            flight = fly().await;
        }
        match flight {
            Ok(Flight::Led(outcome, (decision, reason))) => Verdict::new(outcome, decision, reason),
            Ok(Flight::Joined(outcome)) => Verdict::new(
                outcome,
                Decision::Coalesced,
                "shared the outcome of a concurrent start of the same job",
            ),
            // The cooldown (another replica's start), this caller's rate limit (declined
            // before anything was sent), or a failure of the guard store.
            Err(error) => Verdict::refused(error),
        }
    }

    /// The flight leader's work: a place and the caller's charge, preflight, then the start.
    /// Declines (`Err`) when this caller may not send it now: that refusal is its own, not the
    /// flight's.
    async fn forward(
        &self,
        caller: &Caller,
        request: &StartRequest,
        sp: &ServicePrincipalId,
    ) -> Result<(Outcome, (Decision, String)), ApiError> {
        let _place = self.admission.admit_start(caller)?;
        let refused = |error: ApiError| {
            let verdict = Verdict::refused(error);
            (verdict.outcome, (verdict.decision, verdict.reason))
        };
        match self.preflight_status(request, sp).await {
            Err(error) => return Ok(refused(error)),
            Ok(Err(answer)) => {
                return Ok((
                    answer.into(),
                    (Decision::Failed, "preflight read of the job failed".into()),
                ));
            }
            Ok(Ok(status)) => {
                if let Some(refusal) = active_refusal(request, status.as_deref()) {
                    let reason = refusal.message.clone();
                    return Ok((refusal.into(), (Decision::Active, reason)));
                }
            }
        }
        Ok(
            match self
                .graph
                .start(request.version, sp, &request.job, &request.forwarding)
                .await
            {
                Err(error) => refused(error),
                Ok(upstream) => {
                    // The job's cached reads no longer say what Graph would.
                    self.reads.invalidate(sp).await;
                    let reason = if upstream.status.is_success() {
                        let who = caller
                            .name
                            .as_deref()
                            .or(caller.app_id.as_deref())
                            .unwrap_or(&caller.object_id);
                        self.guard
                            .record_last_start(&JobKey::new(sp, &request.job), who)
                            .await;
                        "started"
                    } else {
                        "Graph refused the start"
                    };
                    (upstream.into(), (Decision::Forwarded, reason.into()))
                }
            },
        )
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
        caller: &Caller,
        request: &StartRequest,
        sp: &ServicePrincipalId,
        job: &JobKey,
        grant: &Grant,
    ) -> Verdict {
        // The preflight read reaches Graph.
        if self.preflight
            && let Err(error) = self.admission.charge(caller)
        {
            return Verdict::refused(error);
        }
        let status = match self.preflight_status(request, sp).await {
            Err(error) => return Verdict::refused(error),
            Ok(Err(answer)) => {
                return Verdict::new(answer, Decision::Failed, "preflight read of the job failed");
            }
            Ok(Ok(status)) => status,
        };
        let cooldown = match self.guard.cooldown_remaining(job).await {
            Err(error) => return Verdict::refused(error),
            Ok(cooldown) => cooldown,
        };
        let refusal = cooldown
            .map(|left| self.guard.cooldown_error(&request.job, left))
            .or_else(|| active_refusal(request, status.as_deref()));
        let reason = refusal
            .as_ref()
            .map_or("whatIf: would start".to_owned(), |r| r.message.clone());
        let app_id = match &request.service_principal {
            ServicePrincipalRef::AppId(app_id) => Some(app_id.as_str()),
            ServicePrincipalRef::Id(_) => None,
        };
        let report = json!({
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
            "caller": caller,
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
        });
        Verdict::new(Outcome::report(report), Decision::WhatIf, reason)
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
