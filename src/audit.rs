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
    /// Refused by the job guard: the job is in its cooldown.
    Cooldown,
    /// Refused by the job guard: preflight found the job running.
    Active,
    /// `whatIf`: reported, not sent.
    WhatIf,
    /// Could not be decided: Graph or a dependency failed on the way.
    Failed,
    /// Shared the outcome of a concurrent start of the same job (single flight).
    Coalesced,
    /// An `Idempotency-Key` replay of an earlier answer.
    Replayed,
}

impl Decision {
    pub const ALL: [Decision; 8] = [
        Self::Forwarded,
        Self::Denied,
        Self::Cooldown,
        Self::Active,
        Self::WhatIf,
        Self::Failed,
        Self::Coalesced,
        Self::Replayed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Forwarded => "forwarded",
            Self::Denied => "denied",
            Self::Cooldown => "cooldown",
            Self::Active => "active",
            Self::WhatIf => "whatIf",
            Self::Failed => "failed",
            Self::Coalesced => "coalesced",
            Self::Replayed => "replayed",
        }
    }
}

pub struct Event<'a> {
    pub route: &'static str,
    pub caller: &'a Caller,
    /// The target as resolved so far.
    pub version: ApiVersion,
    pub requested: &'a ServicePrincipalRef,
    pub service_principal_id: Option<&'a str>,
    pub job_id: &'a JobId,
    pub decision: Decision,
    pub reason: &'a str,
    pub upstream_status: Option<u16>,
    pub upstream_request_id: Option<&'a str>,
    pub client_request_id: &'a str,
}

pub fn record(event: &Event<'_>) {
    metrics::counter!(crate::telemetry::START_DECISIONS, "decision" => event.decision.as_str())
        .increment(1);
    let app_id_key = match event.requested {
        ServicePrincipalRef::AppId(app_id) => Some(app_id.as_str()),
        ServicePrincipalRef::Id(_) => None,
    };
    tracing::info!(
        target: "audit",
        route = event.route,
        caller.kind = event.caller.kind.as_str(),
        caller.tenant_id = %event.caller.tenant_id,
        caller.object_id = %event.caller.object_id,
        caller.app_id = %crate::telemetry::shown(event.caller.app_id.as_deref().unwrap_or("")),
        caller.name = %crate::telemetry::shown(event.caller.name.as_deref().unwrap_or("")),
        target.api_version = event.version.as_str(),
        target.service_principal_id = event.service_principal_id.unwrap_or(""),
        target.app_id = app_id_key.unwrap_or(""),
        target.job_id = event.job_id.as_str(),
        decision = event.decision.as_str(),
        reason = event.reason,
        upstream.status = event.upstream_status.unwrap_or(0),
        upstream.request_id = event.upstream_request_id.unwrap_or(""),
        client_request_id = event.client_request_id,
        "start decision"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::CallerKind;
    use crate::ids::ServicePrincipalId;
    use crate::telemetry::Captured;

    #[test]
    fn a_decision_is_one_json_line_on_the_audit_target() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_writer(move || writer.clone())
            .finish();
        let caller = Caller {
            kind: CallerKind::Delegated,
            tenant_id: "tid".into(),
            object_id: "b1c2d3e4-f5a6-4b7c-8d9e-0f1a2b3c4d5e".into(),
            app_id: Some("app".into()),
            name: Some("Ada Admin".into()),
            scopes: vec!["Synchronization.ReadWrite.All".into()],
            roles: vec![],
            directory_roles: vec![],
        };
        let sp = ServicePrincipalId::parse("2f8d4c6a-1b3e-4a5f-9c7d-8e0f1a2b3c4d").unwrap();
        let job = JobId::parse("salesforce.1").unwrap();
        let requested = ServicePrincipalRef::Id(sp.clone());
        tracing::subscriber::with_default(subscriber, || {
            record(&Event {
                route: "graph",
                caller: &caller,
                version: ApiVersion::V1,
                requested: &requested,
                service_principal_id: Some(sp.as_str()),
                job_id: &job,
                decision: Decision::Forwarded,
                reason: "started",
                upstream_status: Some(204),
                upstream_request_id: Some("graph-request-id"),
                client_request_id: "client-id",
            });
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        let line: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(line["target"], "audit");
        assert_eq!(line["target.job_id"], "salesforce.1");
        assert_eq!(
            line["caller.object_id"],
            "b1c2d3e4-f5a6-4b7c-8d9e-0f1a2b3c4d5e"
        );
        assert_eq!(line["decision"], "forwarded");
        assert_eq!(line["upstream.request_id"], "graph-request-id");
        assert_eq!(line["upstream.status"], 204);
    }
}
