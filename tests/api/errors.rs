//! The error table: every facade error in Graph's envelope, and ids that never reach Graph.

use serde_json::json;
use syncjob_emulator::Operation;

use crate::helpers::*;

#[tokio::test]
async fn ids_that_could_escape_their_path_segment_are_400_and_never_reach_graph() {
    let app = spawn_app().await;
    let token = app.admin_token();
    let long = "a".repeat(257);
    let paths = [
        format!("/v1.0/servicePrincipals/{SALESFORCE_SP}/synchronization/jobs/../../users/start"),
        format!("/v1.0/servicePrincipals/{SALESFORCE_SP}/synchronization/jobs/a/b/start"),
        format!("/v1.0/servicePrincipals/{SALESFORCE_SP}/synchronization/jobs/%2e%2e/start"),
        format!("/v1.0/servicePrincipals/{SALESFORCE_SP}/synchronization/jobs/%2E%2E/start"),
        format!("/v1.0/servicePrincipals/{SALESFORCE_SP}/synchronization/jobs/a%2Fb/start"),
        format!("/v1.0/servicePrincipals/{SALESFORCE_SP}/synchronization/jobs/./start"),
        format!("/v1.0/servicePrincipals/{SALESFORCE_SP}/synchronization/jobs/{long}/start"),
        "/v1.0/servicePrincipals/../../users/synchronization/jobs/x/start".to_owned(),
        "/v1.0/servicePrincipals/not-a-guid/synchronization/jobs/x/start".to_owned(),
        "/v1.0/servicePrincipals(appId='nope')/synchronization/jobs/x/start".to_owned(),
    ];
    for path in &paths {
        let (status, body) = app.raw_post(path, &token).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"]["code"], "BadRequest", "{path}");
    }
    let sent: usize = [
        Operation::Start,
        Operation::GetJob,
        Operation::ResolveAppId,
        Operation::Owners,
    ]
    .into_iter()
    .map(|op| app.emulator.count(op))
    .sum();
    assert_eq!(sent, 0);
}

#[tokio::test]
async fn an_identity_body_with_a_traversal_id_is_400() {
    let app = spawn_app().await;
    let token = app.admin_token();
    for job in ["../../users", "a/b", "..", "%2e%2e"] {
        let body = json!({"ServicePrincipalId": SALESFORCE_SP, "SynchronizationJobId": job});
        let error = assert_error(
            app.post_json("/start", &token, &body).await,
            400,
            "BadRequest",
        )
        .await;
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains("synchronizationJobId"),
            "{job}"
        );
    }
    assert_eq!(
        app.emulator.count(Operation::Start) + app.emulator.count(Operation::GetJob),
        0
    );
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405_in_the_envelope() {
    let app = spawn_app().await;
    assert_error(
        app.http
            .get(format!("{}/nowhere", app.base))
            .send()
            .await
            .unwrap(),
        404,
        "NotFound",
    )
    .await;
    assert_error(
        app.post("/v1.0/users/x/start", Some(&app.admin_token()))
            .await,
        404,
        "NotFound",
    )
    .await;
    assert_error(
        app.post(
            "/v2.0/servicePrincipals/x/synchronization/jobs/y/start",
            None,
        )
        .await,
        404,
        "NotFound",
    )
    .await;
    let response = app
        .http
        .get(format!(
            "{}{}",
            app.base,
            TestApp::start_path(SALESFORCE_SP, SALESFORCE_JOB)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["allow"], "POST");
    assert_error(response, 405, "MethodNotAllowed").await;
    assert_error(
        app.http
            .delete(format!("{}/start", app.base))
            .send()
            .await
            .unwrap(),
        405,
        "MethodNotAllowed",
    )
    .await;
}

#[tokio::test]
async fn wrong_media_type_is_415_malformed_json_400_and_a_large_body_413() {
    let app = spawn_app_with(|c, _| c.server.body_limit_bytes = 1024).await;
    let token = app.admin_token();
    let url = format!("{}/start", app.base);
    let response = app
        .http
        .post(&url)
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_error(response, 415, "UnsupportedMediaType").await;
    let response = app
        .http
        .post(&url)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_error(response, 400, "BadRequest").await;
    let big = format!("{{\"ServicePrincipalId\":\"{}\"}}", "x".repeat(4096));
    let response = app
        .http
        .post(&url)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_error(response, 413, "RequestEntityTooLarge").await;
}

#[tokio::test]
async fn a_bad_query_switch_is_400_naming_it() {
    let app = spawn_app().await;
    let path = format!(
        "{}?passThru=maybe",
        TestApp::start_path(SALESFORCE_SP, SALESFORCE_JOB)
    );
    let body = assert_error(
        app.post(&path, Some(&app.admin_token())).await,
        400,
        "BadRequest",
    )
    .await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("passThru")
    );
    assert_eq!(app.emulator.count(Operation::Start), 0);
}

#[tokio::test]
async fn the_callers_client_request_id_appears_in_inner_error() {
    let app = spawn_app().await;
    let response = app
        .http
        .post(format!("{}/start", app.base))
        .header("client-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["client-request-id"], "trace-me-123");
    let body = assert_error(response, 401, "InvalidAuthenticationToken").await;
    assert_eq!(
        body["error"]["innerError"]["client-request-id"],
        "trace-me-123"
    );
    assert_eq!(
        body["error"]["innerError"]["request-id"]
            .as_str()
            .unwrap()
            .len(),
        36
    );
}
