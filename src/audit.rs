//! The audit trail: one structured event per start decision on the `audit` log target.
//!
//! Holds who asked (never their token), what they asked for, what the facade decided and why,
//! and what Graph answered.

use crate::auth::Caller;
use crate::ids::{ApiVersion, JobId, ServicePrincipalRef};

/// What the facade did with a start request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Sent to Graph (whatever Graph answered).
    Forwarded,
    /// Refused before reaching Graph: permission, ownership.
    Denied,
    /// Refused by the job guard: job active, cooldown.
    Refused,
    /// `whatIf`: reported, not sent.
    WhatIf,
    /// Could not be decided: Graph or a dependency failed on the way.
    Failed,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Forwarded => "forwarded",
            Self::Denied => "denied",
            Self::Refused => "refused",
            Self::WhatIf => "whatIf",
            Self::Failed => "failed",
        }
    }
}

/// The target as resolved so far.
pub struct Target<'a> {
    pub version: ApiVersion,
    pub requested: &'a ServicePrincipalRef,
    pub service_principal_id: Option<&'a str>,
    pub job_id: &'a JobId,
}

pub struct Event<'a> {
    pub route: &'static str,
    pub caller: &'a Caller,
    pub target: Target<'a>,
    pub decision: Decision,
    pub reason: &'a str,
    pub upstream_status: Option<u16>,
    pub upstream_request_id: Option<&'a str>,
    pub client_request_id: &'a str,
}

pub fn record(event: &Event<'_>) {
    let app_id_key = match event.target.requested {
        ServicePrincipalRef::AppId(app_id) => Some(app_id.as_str()),
        ServicePrincipalRef::Id(_) => None,
    };
    tracing::info!(
        target: "audit",
        route = event.route,
        caller.kind = event.caller.kind.as_str(),
        caller.tenant_id = %event.caller.tenant_id,
        caller.object_id = %event.caller.object_id,
        caller.app_id = event.caller.app_id.as_deref().unwrap_or(""),
        caller.name = event.caller.name.as_deref().unwrap_or(""),
        target.api_version = event.target.version.as_str(),
        target.service_principal_id = event.target.service_principal_id.unwrap_or(""),
        target.app_id = app_id_key.unwrap_or(""),
        target.job_id = event.target.job_id.as_str(),
        decision = event.decision.as_str(),
        reason = event.reason,
        upstream.status = event.upstream_status.unwrap_or(0),
        upstream.request_id = event.upstream_request_id.unwrap_or(""),
        client_request_id = event.client_request_id,
        "start decision"
    );
}
