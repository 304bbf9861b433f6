//! The facade's own Graph credential.

use serde_json::json;
use syncjob_facade::config::{CredentialKind, Secret};
use syncjob_facade::emulator::{GRAPH_AUDIENCE, Operation};

use crate::helpers::*;

#[tokio::test]
async fn a_static_token_is_sent_as_is_and_no_token_is_requested() {
    let app = spawn_app_with(|c, emulator| {
        let mut claims = emulator.app_claims(FACADE_CLIENT_ID);
        claims["aud"] = json!(GRAPH_AUDIENCE);
        c.graph.credential.kind = CredentialKind::Static;
        c.graph.credential.token = Some(Secret::new(emulator.mint(&claims)));
        c.graph.credential.client_secret = None;
    })
    .await;
    let response = app
        .post(
            &TestApp::start_path(SALESFORCE_SP, SALESFORCE_JOB),
            Some(&app.admin_token()),
        )
        .await;
    assert_eq!(response.status(), 204);
    assert_eq!(app.emulator.count(Operation::Token), 0);
    let start = app
        .emulator
        .calls()
        .into_iter()
        .find(|c| c.operation == Operation::Start)
        .unwrap();
    assert_eq!(start.token_app_id.as_deref(), Some(FACADE_CLIENT_ID));
}

#[tokio::test]
async fn many_concurrent_requests_share_one_token_request() {
    let app = spawn_app().await;
    let token = app.admin_token();
    let url = format!(
        "{}{}?whatIf=true",
        app.base,
        TestApp::start_path(SALESFORCE_SP, SALESFORCE_JOB)
    );
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (http, url, token) = (app.http.clone(), url.clone(), token.clone());
            tokio::spawn(async move {
                http.post(url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    assert_eq!(app.emulator.count(Operation::GetJob), 20);
    assert_eq!(
        app.emulator.count(Operation::Token),
        1,
        "one token request for 20 concurrent callers"
    );
}

#[tokio::test]
async fn a_refused_client_secret_is_502_and_the_secret_is_not_in_the_answer() {
    let app = spawn_app_with(|c, _| {
        c.graph.credential.client_secret = Some(Secret::new("not-the-secret"))
    })
    .await;
    let response = app
        .post(
            &TestApp::start_path(SALESFORCE_SP, SALESFORCE_JOB),
            Some(&app.admin_token()),
        )
        .await;
    let body = assert_error(response, 502, "BadGateway").await;
    assert!(!body.to_string().contains("not-the-secret"));
    assert_eq!(app.emulator.count(Operation::Start), 0);
}
