//! Health and readiness.

use syncjob_facade::config::Secret;

use crate::helpers::*;

#[tokio::test]
async fn healthz_and_readyz_answer_200_when_keys_and_credential_work() {
    let app = spawn_app().await;
    assert_eq!(
        app.http
            .get(format!("{}/healthz", app.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.http
            .get(format!("{}/readyz", app.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn readyz_is_503_when_the_graph_credential_is_refused() {
    let app =
        spawn_app_with(|c, _| c.graph.credential.client_secret = Some(Secret::new("wrong"))).await;
    let response = app
        .http
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    let body = assert_error(response, 503, "ServiceUnavailable").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Graph credential")
    );
    assert!(
        !body.to_string().contains("wrong"),
        "the secret is never echoed"
    );
}

#[tokio::test]
async fn readyz_is_503_while_signing_keys_cannot_be_loaded() {
    let app = spawn_app_with(|c, _| {
        c.auth.openid_config_url = Some("http://127.0.0.1:9/nothing".parse().unwrap())
    })
    .await;
    let response = app
        .http
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    let body = assert_error(response, 503, "ServiceUnavailable").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("signing keys")
    );
}
