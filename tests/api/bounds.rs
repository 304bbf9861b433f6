//! Values a caller chooses are bounded, and none can override another: switches named twice,
//! duplicate JSON keys, idempotency keys of single requests and batch items, token claims,
//! forwarded headers, and a batch that runs out of time.

use serde_json::{Value, json};
use syncjob_emulator::{Fault, Operation};

use crate::helpers::*;

#[tokio::test]
async fn a_switch_named_twice_is_400_and_nothing_is_sent() {
    let app = spawn_app().await;
    let token = app.admin_token();
    let graph = TestApp::start_path(SALESFORCE_SP, SALESFORCE_JOB);
    for query in [
        "whatIf=true&whatIf=false",
        "whatIf=true&WhatIf=false",
        "passThru=true&PASSTHRU=true",
    ] {
        let body = assert_error(
            app.post(&format!("{graph}?{query}"), Some(&token)).await,
            400,
            "BadRequest",
        )
        .await;
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("more than once"),
            "{body}"
        );
        let identity = app
            .post_json(
                &format!("/start?{query}"),
                &token,
                &json!({"ServicePrincipalId": SALESFORCE_SP, "SynchronizationJobId": SALESFORCE_JOB}),
            )
            .await;
        assert_error(identity, 400, "BadRequest").await;
    }
    assert_eq!(app.emulator.count(Operation::Start), 0);
    assert_eq!(app.emulator.count(Operation::GetJob), 0);
}

#[tokio::test]
async fn a_json_key_named_twice_is_400() {
    let app = spawn_app().await;
    let body = format!(
        r#"{{"ServicePrincipalId":"{SALESFORCE_SP}","SynchronizationJobId":"{SERVICENOW_ACTIVE_JOB}","SynchronizationJobId":"{SALESFORCE_JOB}"}}"#
    );
    let response = app
        .http
        .post(format!("{}/start", app.base))
        .bearer_auth(app.admin_token())
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let error = assert_error(response, 400, "BadRequest").await;
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'SynchronizationJobId' appears twice"),
        "{error}"
    );
    assert_eq!(app.emulator.count(Operation::Start), 0);
}

#[tokio::test]
async fn a_single_requests_idempotency_key_never_meets_a_batch_items_key() {
    let app = spawn_app().await;
    let token = app.admin_token();
    let batch = app
        .http
        .post(format!("{}/start", app.base))
        .bearer_auth(&token)
        .header("Idempotency-Key", "B2")
        .json(
            &json!([{"ServicePrincipalId": SALESFORCE_SP, "SynchronizationJobId": SALESFORCE_JOB}]),
        )
        .send()
        .await
        .unwrap();
    let batch: Value = batch.json().await.unwrap();
    assert_eq!(batch["responses"][0]["status"], 204, "{batch}");
    // "B2#0" was how item 0 of key "B2" used to be kept: another target, a fresh key.
    let single = app
        .http
        .post(format!(
            "{}{}",
            app.base,
            TestApp::start_path(SERVICENOW_SP, SERVICENOW_JOB)
        ))
        .bearer_auth(&token)
        .header("Idempotency-Key", "B2#0")
        .send()
        .await
        .unwrap();
    assert_eq!(single.status(), 204);
    assert!(!single.headers().contains_key("idempotent-replayed"));
    assert_eq!(app.emulator.count(Operation::Start), 2);
}

#[tokio::test]
async fn a_token_whose_oid_is_not_a_guid_is_refused() {
    let app = spawn_app().await;
    let token = app.admin_token_with(|claims| claims["oid"] = json!("not-a-guid\r\nx"));
    let body = assert_error(
        app.start_salesforce(&token).await,
        401,
        "InvalidAuthenticationToken",
    )
    .await;
    assert!(
        body["error"]["message"].as_str().unwrap().contains("oid"),
        "{body}"
    );
    assert_eq!(app.emulator.count(Operation::Start), 0);
}

#[tokio::test]
async fn idtyp_user_keeps_a_token_with_roles_and_no_scp_delegated() {
    let app = spawn_app().await;
    // Roles that an application would start with, but the token says it is a user's: a
    // delegated caller needs the scope, and it has none.
    let token = app.admin_token_with(|claims| {
        claims.as_object_mut().unwrap().remove("scp");
        claims["idtyp"] = json!("user");
        claims["roles"] = json!(["Synchronization.ReadWrite.All"]);
    });
    assert_error(
        app.start_salesforce(&token).await,
        403,
        "Authorization_RequestDenied",
    )
    .await;
    let odd = app.admin_token_with(|claims| claims["idtyp"] = json!("device"));
    assert_error(
        app.start_salesforce(&odd).await,
        401,
        "InvalidAuthenticationToken",
    )
    .await;
    assert_eq!(app.emulator.count(Operation::Start), 0);
}

#[tokio::test]
async fn a_forwarded_header_over_its_length_is_400_and_nothing_is_sent() {
    let app = spawn_app().await;
    let response = app
        .http
        .post(format!(
            "{}{}",
            app.base,
            TestApp::start_path(SALESFORCE_SP, SALESFORCE_JOB)
        ))
        .bearer_auth(app.admin_token())
        .header("Accept-Language", "en-".repeat(400))
        .send()
        .await
        .unwrap();
    let body = assert_error(response, 400, "BadRequest").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("accept-language"),
        "{body}"
    );
    assert_eq!(app.emulator.count(Operation::Start), 0);
    let fine = app
        .http
        .post(format!(
            "{}{}",
            app.base,
            TestApp::start_path(SALESFORCE_SP, SALESFORCE_JOB)
        ))
        .bearer_auth(app.admin_token())
        .header("Accept-Language", "en-GB,en;q=0.9")
        .send()
        .await
        .unwrap();
    assert_eq!(fine.status(), 204);
}

#[tokio::test]
async fn a_batch_answers_within_the_request_timeout_with_a_504_for_each_unfinished_item() {
    let app = spawn_app_with(|c, _| {
        c.server.request_timeout_secs = 2;
        c.guard.preflight = false;
    })
    .await;
    app.emulator.inject(Fault {
        operation: Some(Operation::Start),
        delay_ms: Some(4000),
        times: Some(1),
        ..Fault::default()
    });
    let items = json!([
        {"ServicePrincipalId": SALESFORCE_SP, "SynchronizationJobId": SALESFORCE_JOB},
        {"ServicePrincipalId": SERVICENOW_SP, "SynchronizationJobId": SERVICENOW_JOB},
        {"ServicePrincipalId": SERVICENOW_SP, "SynchronizationJobId": SERVICENOW_ACTIVE_JOB},
    ]);
    let response = app.post_json("/start", &app.admin_token(), &items).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let entries = body["responses"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    let timed_out: Vec<&Value> = entries.iter().filter(|e| e["status"] == 504).collect();
    assert_eq!(timed_out.len(), 1, "{body}");
    assert_eq!(timed_out[0]["body"]["error"]["code"], "GatewayTimeout");
    assert!(
        timed_out[0]["body"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("may still complete"),
        "{body}"
    );
    assert_eq!(
        entries.iter().filter(|e| e["status"] == 204).count(),
        2,
        "{body}"
    );
}
