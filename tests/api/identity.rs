//! `POST /start`: the cmdlet's -InputObject form, one object or an array.

use serde_json::{Value, json};
use syncjob_emulator::Operation;

use crate::helpers::*;

#[tokio::test]
async fn one_identity_object_starts_like_the_graph_route_in_either_key_casing() {
    let app = spawn_app().await;
    let token = app.admin_token();
    let pascal =
        json!({"ServicePrincipalId": SALESFORCE_SP, "SynchronizationJobId": SALESFORCE_JOB});
    assert_eq!(app.post_json("/start", &token, &pascal).await.status(), 204);
    let camel = json!({"servicePrincipalId": SERVICENOW_SP, "synchronizationJobId": SERVICENOW_JOB, "userId": null});
    let response = app.post_json("/start?passThru=true", &token, &camel).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"value": true})
    );
    assert_eq!(app.emulator.count(Operation::Start), 2);
}

#[tokio::test]
async fn the_app_id_key_and_the_beta_version_are_honoured() {
    let app = spawn_app().await;
    let body = json!({"AppId": SALESFORCE_APP_ID, "SynchronizationJobId": SALESFORCE_JOB});
    assert_eq!(
        app.post_json("/start?apiVersion=beta", &app.admin_token(), &body)
            .await
            .status(),
        204
    );
    let start = app
        .emulator
        .calls()
        .into_iter()
        .find(|c| c.operation == Operation::Start)
        .unwrap();
    assert_eq!(
        start.path,
        format!(
            "/beta/servicePrincipals/{SALESFORCE_SP}/synchronization/jobs/{SALESFORCE_JOB}/start"
        )
    );
}

#[tokio::test]
async fn missing_ids_answer_like_the_cmdlet() {
    let app = spawn_app().await;
    let token = app.admin_token();
    let body = assert_error(
        app.post_json("/start", &token, &json!({"SynchronizationJobId": "x"}))
            .await,
        400,
        "BadRequest",
    )
    .await;
    assert_eq!(
        body["error"]["message"],
        "InputObject has null value for InputObject.ServicePrincipalId"
    );
    let body = assert_error(
        app.post_json(
            "/start",
            &token,
            &json!({"ServicePrincipalId": SALESFORCE_SP}),
        )
        .await,
        400,
        "BadRequest",
    )
    .await;
    assert_eq!(
        body["error"]["message"],
        "InputObject has null value for InputObject.SynchronizationJobId"
    );
}

#[tokio::test]
async fn a_key_outside_iapplicationsidentity_is_400_naming_it() {
    let app = spawn_app().await;
    let body = json!({"ServicePrincipalId": SALESFORCE_SP, "SynchronizationJobId": SALESFORCE_JOB, "TargetUrl": "https://evil.example"});
    let error = assert_error(
        app.post_json("/start", &app.admin_token(), &body).await,
        400,
        "BadRequest",
    )
    .await;
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("TargetUrl")
    );
    assert_eq!(app.emulator.count(Operation::Start), 0);
}

#[tokio::test]
async fn an_array_answers_in_the_batch_shape_one_entry_per_item_in_order() {
    let app = spawn_app().await;
    let body = json!([
        {"ServicePrincipalId": SALESFORCE_SP, "SynchronizationJobId": SALESFORCE_JOB},
        {"ServicePrincipalId": SERVICENOW_SP},
        {"ServicePrincipalId": SERVICENOW_SP, "SynchronizationJobId": SERVICENOW_ACTIVE_JOB},
        {"servicePrincipalId": SERVICENOW_SP, "synchronizationJobId": SERVICENOW_JOB},
    ]);
    let response = app.post_json("/start", &app.admin_token(), &body).await;
    assert_eq!(response.status(), 200);
    let batch: Value = response.json().await.unwrap();
    let entries = batch["responses"].as_array().unwrap();
    assert_eq!(entries.len(), 4);
    let ids: Vec<&str> = entries.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["0", "1", "2", "3"]);
    let statuses: Vec<u64> = entries
        .iter()
        .map(|e| e["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [204, 400, 409, 204]);
    assert_eq!(
        entries[1]["body"]["error"]["message"],
        "InputObject has null value for InputObject.SynchronizationJobId"
    );
    assert_eq!(entries[2]["body"]["error"]["code"], "SyncJobAlreadyActive");
    assert!(entries[0]["headers"]["request-id"].is_string());
    assert_eq!(app.emulator.count(Operation::Start), 2);
}

#[tokio::test]
async fn each_batch_item_is_authorised_on_its_own() {
    let app = spawn_app().await;
    let body = json!([
        {"ServicePrincipalId": SALESFORCE_SP, "SynchronizationJobId": SALESFORCE_JOB},
        {"ServicePrincipalId": SERVICENOW_SP, "SynchronizationJobId": SERVICENOW_JOB},
    ]);
    let batch: Value = app
        .post_json("/start", &app.owned_by_token(), &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(batch["responses"][0]["status"], 204);
    assert_eq!(batch["responses"][1]["status"], 403);
    assert_eq!(
        batch["responses"][1]["body"]["error"]["code"],
        "Authorization_RequestDenied"
    );
}

#[tokio::test]
async fn an_empty_or_oversized_array_is_400() {
    let app = spawn_app().await;
    let token = app.admin_token();
    assert_error(
        app.post_json("/start", &token, &json!([])).await,
        400,
        "BadRequest",
    )
    .await;
    let item = json!({"ServicePrincipalId": SALESFORCE_SP, "SynchronizationJobId": SALESFORCE_JOB});
    let many = Value::Array(vec![item; 101]);
    assert_error(
        app.post_json("/start", &token, &many).await,
        400,
        "BadRequest",
    )
    .await;
    assert_eq!(app.emulator.count(Operation::Start), 0);
}

#[tokio::test]
async fn what_if_on_the_identity_route_sends_nothing() {
    let app = spawn_app().await;
    let body = json!({"ServicePrincipalId": SALESFORCE_SP, "SynchronizationJobId": SALESFORCE_JOB});
    let response = app
        .post_json("/start?whatIf=true", &app.admin_token(), &body)
        .await;
    assert_eq!(response.status(), 200);
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["caller"]["objectId"], ADMIN_OID);
    assert_eq!(app.emulator.count(Operation::Start), 0);
}
