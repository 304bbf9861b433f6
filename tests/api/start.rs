//! Starting a job through the Graph-compatible routes.

use serde_json::Value;
use syncjob_emulator::{Fault, Operation};

use crate::helpers::*;

#[tokio::test]
async fn start_of_a_paused_job_answers_204_and_the_job_runs() {
    let app = spawn_app().await;
    let response = app.start_salesforce(&app.admin_token()).await;
    assert_eq!(response.status(), 204);
    assert!(response.headers().contains_key("request-id"));
    assert!(response.headers().contains_key("x-ms-ags-diagnostic"));
    assert!(response.bytes().await.unwrap().is_empty());
    assert_eq!(
        app.emulator
            .job_status(SALESFORCE_SP, SALESFORCE_JOB)
            .as_deref(),
        Some("Active")
    );
    assert_eq!(app.emulator.count(Operation::Start), 1);
}

#[tokio::test]
async fn graph_receives_the_facades_own_token_never_the_callers() {
    let app = spawn_app().await;
    let response = app.start_salesforce(&app.admin_token()).await;
    assert_eq!(response.status(), 204);
    let calls = app.emulator.calls();
    let start = calls
        .iter()
        .find(|c| c.operation == Operation::Start)
        .expect("a start reached Graph");
    assert_eq!(start.token_app_id.as_deref(), Some(FACADE_CLIENT_ID));
    assert_eq!(start.token_idtyp.as_deref(), Some("app"));
    assert_ne!(start.token_object_id.as_deref(), Some(ADMIN_OID));
    assert!(
        calls
            .iter()
            .all(|c| c.token_app_id.as_deref() != Some(PORTAL_CLIENT_ID))
    );
}

#[tokio::test]
async fn the_powershell_action_path_the_beta_version_and_the_app_id_key_all_start() {
    // Three starts of one job in a row: no cooldown here, that is the guard's test.
    let app = spawn_app_with(|c, _| c.guard.cooldown_secs = 0).await;
    let token = app.admin_token();
    let path = format!(
        "/beta/servicePrincipals/{SALESFORCE_SP}/synchronization/jobs/{SALESFORCE_JOB}/microsoft.graph.start"
    );
    assert_eq!(app.post(&path, Some(&token)).await.status(), 204);
    let start = app
        .emulator
        .calls()
        .into_iter()
        .find(|c| c.operation == Operation::Start)
        .unwrap();
    assert!(
        start.path.starts_with("/beta/"),
        "forwarded to the same version: {}",
        start.path
    );

    // Each start leaves the job Active; pause it again so preflight lets the next one through.
    app.emulator
        .set_job_status(SALESFORCE_SP, SALESFORCE_JOB, "Paused");
    let path = format!(
        "/v1.0/servicePrincipals(appId='{SALESFORCE_APP_ID}')/synchronization/jobs/{SALESFORCE_JOB}/start"
    );
    assert_eq!(app.post(&path, Some(&token)).await.status(), 204);
    assert_eq!(app.emulator.count(Operation::ResolveAppId), 1);
    // The resolution is cached.
    app.emulator
        .set_job_status(SALESFORCE_SP, SALESFORCE_JOB, "Paused");
    assert_eq!(app.post(&path, Some(&token)).await.status(), 204);
    assert_eq!(app.emulator.count(Operation::ResolveAppId), 1);
    assert_eq!(app.emulator.count(Operation::Start), 3);
}

#[tokio::test]
async fn pass_thru_answers_200_value_true() {
    let app = spawn_app().await;
    let path = format!(
        "{}?passThru=true",
        TestApp::start_path(SALESFORCE_SP, SALESFORCE_JOB)
    );
    let response = app.post(&path, Some(&app.admin_token())).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        serde_json::json!({"value": true})
    );
}

#[tokio::test]
async fn what_if_reports_the_exact_upstream_request_and_sends_no_start() {
    let app = spawn_app().await;
    let path = format!(
        "{}?whatIf=true",
        TestApp::start_path(SERVICENOW_SP, SERVICENOW_JOB)
    );
    let response = app.post(&path, Some(&app.app_token())).await;
    assert_eq!(response.status(), 200);
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["request"]["method"], "POST");
    assert_eq!(
        report["request"]["url"],
        format!(
            "{}/v1.0/servicePrincipals/{SERVICENOW_SP}/synchronization/jobs/{SERVICENOW_JOB}/start",
            app.emulator.base_url()
        )
    );
    assert_eq!(report["caller"]["kind"], "application");
    assert_eq!(report["caller"]["appId"], PORTAL_CLIENT_ID);
    assert_eq!(report["authorization"]["decision"], "allowed");
    assert_eq!(report["preflight"]["status"], "Quarantine");
    assert_eq!(report["wouldStart"], true);
    assert_eq!(app.emulator.count(Operation::Start), 0);
    assert_eq!(
        app.emulator
            .job_status(SERVICENOW_SP, SERVICENOW_JOB)
            .as_deref(),
        Some("Quarantine")
    );
}

#[tokio::test]
async fn what_if_still_requires_authorisation() {
    let app = spawn_app().await;
    let path = format!(
        "{}?whatIf=true",
        TestApp::start_path(SERVICENOW_SP, SERVICENOW_JOB)
    );
    assert_error(
        app.post(&path, None).await,
        401,
        "InvalidAuthenticationToken",
    )
    .await;
    let reader = app
        .emulator
        .mint(&app.emulator.delegated_claims(READER_OID));
    assert_error(
        app.post(&path, Some(&reader)).await,
        403,
        "Authorization_RequestDenied",
    )
    .await;
}

#[tokio::test]
async fn an_active_job_is_refused_with_409_unless_forced() {
    let app = spawn_app().await;
    let token = app.admin_token();
    let path = TestApp::start_path(SERVICENOW_SP, SERVICENOW_ACTIVE_JOB);
    let body = assert_error(
        app.post(&path, Some(&token)).await,
        409,
        "SyncJobAlreadyActive",
    )
    .await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Active")
    );
    assert_eq!(app.emulator.count(Operation::Start), 0);
    assert_eq!(
        app.post(&format!("{path}?force=true"), Some(&token))
            .await
            .status(),
        204
    );
    assert_eq!(app.emulator.count(Operation::Start), 1);
}

#[tokio::test]
async fn what_if_on_an_active_job_reports_the_refusal() {
    let app = spawn_app().await;
    let path = format!(
        "{}?whatIf=true",
        TestApp::start_path(SERVICENOW_SP, SERVICENOW_ACTIVE_JOB)
    );
    let report: Value = app
        .post(&path, Some(&app.admin_token()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(report["wouldStart"], false);
    assert_eq!(report["refusal"]["code"], "SyncJobAlreadyActive");
}

#[tokio::test]
async fn without_preflight_the_job_is_not_read_first() {
    let app = spawn_app_with(|c, _| c.guard.preflight = false).await;
    let response = app
        .post(
            &TestApp::start_path(SERVICENOW_SP, SERVICENOW_ACTIVE_JOB),
            Some(&app.admin_token()),
        )
        .await;
    assert_eq!(response.status(), 204);
    assert_eq!(app.emulator.count(Operation::GetJob), 0);
}

#[tokio::test]
async fn client_request_id_is_forwarded_and_echoed_or_made_when_absent() {
    let app = spawn_app().await;
    let id = "6b1f3c4e-0000-4000-8000-00000000abcd";
    let response = app
        .http
        .post(format!(
            "{}{}",
            app.base,
            TestApp::start_path(SALESFORCE_SP, SALESFORCE_JOB)
        ))
        .bearer_auth(app.admin_token())
        .header("client-request-id", id)
        .header("Accept-Language", "fr-FR")
        .header("X-Not-Forwarded", "secret-ish")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(response.headers()["client-request-id"], id);
    let start = app
        .emulator
        .calls()
        .into_iter()
        .find(|c| c.operation == Operation::Start)
        .unwrap();
    assert_eq!(start.client_request_id.as_deref(), Some(id));
    assert!(
        start
            .headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("accept-language") && v == "fr-FR")
    );
    assert!(
        !start
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("x-not-forwarded"))
    );

    let response = app.start_salesforce(&app.admin_token()).await;
    let made = response.headers()["client-request-id"].to_str().unwrap();
    assert_eq!(made.len(), 36, "a new GUID: {made}");
}

#[tokio::test]
async fn graph_errors_pass_through_with_graphs_status_and_body() {
    let app = spawn_app().await;
    let unknown = "00000000-0000-4000-8000-000000000000";
    let response = app
        .post(
            &TestApp::start_path(unknown, "job"),
            Some(&app.admin_token()),
        )
        .await;
    assert_eq!(response.status(), 404);
    let request_id = response.headers()["request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "Request_ResourceNotFound");
    assert_eq!(
        body["error"]["innerError"]["request-id"],
        request_id.as_str(),
        "Graph's own request-id"
    );
}

#[tokio::test]
async fn throttling_is_retried_after_retry_after() {
    let app = spawn_app().await;
    app.emulator.inject(Fault {
        operation: Some(Operation::Start),
        status: Some(429),
        retry_after: Some("1".into()),
        ..Fault::default()
    });
    let started = std::time::Instant::now();
    let response = app.start_salesforce(&app.admin_token()).await;
    assert_eq!(response.status(), 204);
    assert_eq!(app.emulator.count(Operation::Start), 2);
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(900),
        "waited for Retry-After"
    );
}

#[tokio::test]
async fn throttling_beyond_the_retries_is_passed_back_with_whole_second_retry_after() {
    let app = spawn_app_with(|c, _| c.graph.max_retries = 1).await;
    app.emulator.inject(Fault {
        operation: Some(Operation::Start),
        status: Some(429),
        retry_after: Some("0.2".into()),
        times: Some(5),
        ..Fault::default()
    });
    let response = app.start_salesforce(&app.admin_token()).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(
        app.emulator.count(Operation::Start),
        2,
        "one attempt and max_retries = 1 retry"
    );
}

#[tokio::test]
async fn a_timed_out_start_is_504_and_never_retried() {
    let app = spawn_app_with(|c, _| c.graph.timeout_secs = 1).await;
    app.emulator.inject(Fault {
        operation: Some(Operation::Start),
        delay_ms: Some(3000),
        ..Fault::default()
    });
    let response = app.start_salesforce(&app.admin_token()).await;
    assert_error(response, 504, "GatewayTimeout").await;
    assert_eq!(app.emulator.count(Operation::Start), 1);
}

#[tokio::test]
async fn a_dropped_connection_after_sending_is_502_and_never_retried() {
    let app = spawn_app().await;
    app.emulator.inject(Fault {
        operation: Some(Operation::Start),
        drop_connection: true,
        ..Fault::default()
    });
    let response = app.start_salesforce(&app.admin_token()).await;
    assert_error(response, 502, "BadGateway").await;
    assert_eq!(app.emulator.count(Operation::Start), 1);
}

#[tokio::test]
async fn graph_unreachable_is_502() {
    let app = spawn_app().await;
    let token = app.admin_token();
    // Obtain the Graph token first, then take Graph away.
    assert_eq!(app.start_salesforce(&token).await.status(), 204);
    app.emulator.shutdown().await;
    let response = app
        .post(
            &TestApp::start_path(SERVICENOW_SP, SERVICENOW_JOB),
            Some(&token),
        )
        .await;
    assert_error(response, 502, "BadGateway").await;
}
