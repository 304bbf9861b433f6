//! The start pipeline: authorise → resolve the target → check ownership → preflight → forward →
//! audit. Every route (Graph-compatible, identity, batch) runs a start through here, so every
//! start is decided and audited the same way.

use std::time::Duration;

use axum::http::StatusCode;
use moka::future::Cache;
use serde_json::{Value, json};

use crate::audit::{self, Decision, Target};
use crate::auth::Caller;
use crate::auth::authz::{Grant, Policy};
use crate::error::ApiError;
use crate::graph::{Forwarding, GraphClient, Read, UpstreamAnswer};
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
    preflight: bool,
    /// appId → service principal object id; directory ids do not change.
    app_ids: Cache<AppId, ServicePrincipalId>,
    /// service principal → owner object ids, briefly, so bursts do not re-read them.
    owners: Cache<ServicePrincipalId, std::sync::Arc<Vec<String>>>,
}

/// What the pipeline learned on the way, for the audit event and the report.
struct Progress<'a> {
    request: &'a StartRequest,
    caller: &'a Caller,
    resolved: Option<ServicePrincipalId>,
}

impl Progress<'_> {
    fn audit(&self, decision: Decision, reason: &str, upstream: Option<&UpstreamAnswer>) {
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
            upstream_status: upstream.map(|u| u.status.as_u16()),
            upstream_request_id: upstream.and_then(UpstreamAnswer::request_id),
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
    pub fn new(graph: GraphClient, policy: Policy, preflight: bool) -> Self {
        Self {
            graph,
            policy,
            preflight,
            app_ids: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(600))
                .build(),
            owners: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
        }
    }

    pub fn graph(&self) -> &GraphClient {
        &self.graph
    }

    pub async fn start(&self, caller: &Caller, request: &StartRequest) -> Result<Answer, ApiError> {
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
                .resolve(request.version, app_id, &request.forwarding)
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
                .owners_of(&sp, &request.forwarding)
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

        let status = if self.preflight {
            match self
                .graph
                .job_status(request.version, &sp, &request.job, &request.forwarding)
                .await
                .map_err(|e| progress.fail(e))?
            {
                Read::Found(status) => Some(status),
                Read::Upstream(answer) => {
                    progress.audit(
                        Decision::Failed,
                        "preflight read of the job failed",
                        Some(&answer),
                    );
                    return Ok(Answer::Upstream(answer));
                }
            }
        } else {
            None
        };
        let refusal = match &status {
            Some(code) if code.eq_ignore_ascii_case("Active") && !request.switches.force => {
                Some(ApiError::conflict(
                    "SyncJobAlreadyActive",
                    format!(
                        "The synchronization job {} is running (status.code = {code}). Starting a running job again can stop the provisioning service; start only a paused or quarantined job, or pass force=true.",
                        request.job
                    ),
                ))
            }
            _ => None,
        };

        if request.switches.what_if {
            let report = self.report(&progress, &sp, &grant, status.as_deref(), refusal.as_ref());
            progress.audit(
                Decision::WhatIf,
                refusal
                    .as_ref()
                    .map_or("whatIf: would start", |r| r.message.as_str()),
                None,
            );
            return Ok(Answer::WhatIf(report));
        }
        if let Some(refusal) = refusal {
            progress.audit(Decision::Refused, &refusal.message, None);
            return Err(refusal);
        }

        let upstream = self
            .graph
            .start(request.version, &sp, &request.job, &request.forwarding)
            .await
            .map_err(|e| progress.fail(e))?;
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
        Ok(if accepted {
            Answer::Started {
                upstream,
                pass_thru: request.switches.pass_thru,
            }
        } else {
            Answer::Upstream(upstream)
        })
    }

    async fn resolve(
        &self,
        version: ApiVersion,
        app_id: &AppId,
        fwd: &Forwarding,
    ) -> Result<Read<ServicePrincipalId>, ApiError> {
        if let Some(id) = self.app_ids.get(app_id).await {
            return Ok(Read::Found(id));
        }
        let read = self.graph.resolve_app_id(version, app_id, fwd).await?;
        if let Read::Found(id) = &read {
            self.app_ids.insert(app_id.clone(), id.clone()).await;
        }
        Ok(read)
    }

    async fn owners_of(
        &self,
        sp: &ServicePrincipalId,
        fwd: &Forwarding,
    ) -> Result<Read<std::sync::Arc<Vec<String>>>, ApiError> {
        if let Some(owners) = self.owners.get(sp).await {
            return Ok(Read::Found(owners));
        }
        Ok(match self.graph.owners(sp, fwd).await? {
            Read::Found(owners) => {
                let owners = std::sync::Arc::new(owners);
                self.owners.insert(sp.clone(), owners.clone()).await;
                Read::Found(owners)
            }
            Read::Upstream(answer) => Read::Upstream(answer),
        })
    }

    fn report(
        &self,
        progress: &Progress<'_>,
        sp: &ServicePrincipalId,
        grant: &Grant,
        status: Option<&str>,
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
            "refusal": refusal.map(|r| json!({"status": r.status.as_u16(), "code": r.code, "message": r.message})),
        })
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
