//! Behaviour pinned down after review: each test fails on the defect it is named after.

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use syncjob_emulator::{Fault, GRAPH_AUDIENCE, Operation};
use syncjob_facade::config::{CredentialKind, Secret};

use crate::helpers::*;

fn salesforce() -> String {
    TestApp::start_path(SALESFORCE_SP, SALESFORCE_JOB)
}

#[tokio::test]
async fn mixed_algorithm_families_still_accept_a_valid_rs256_token() {
    let app =
        spawn_app_with(|c, _| c.auth.algorithms = vec![Algorithm::RS256, Algorithm::ES256]).await;
    assert_eq!(app.start_salesforce(&app.admin_token()).await.status(), 204);
}

#[tokio::test]
async fn a_ps256_header_over_an_rs256_signature_is_refused_when_both_are_accepted() {
    let app =
        spawn_app_with(|c, _| c.auth.algorithms = vec![Algorithm::RS256, Algorithm::PS256]).await;
    let header = json!({"alg": "PS256", "typ": "JWT", "kid": app.emulator.current_kid()});
    let token = app
        .emulator
        .mint_with_header(&header, &app.emulator.delegated_claims(ADMIN_OID));
    assert_error(
        app.start_salesforce(&token).await,
        401,
        "InvalidAuthenticationToken",
    )
    .await;
    assert_eq!(app.emulator.count(Operation::Start), 0);
}

#[tokio::test]
async fn a_token_without_oid_is_refused_even_with_a_sub() {
    let app = spawn_app().await;
    let token = app.admin_token_with(|c| {
        c.as_object_mut().unwrap().remove("oid");
        c["sub"] = json!("anything-at-all");
    });
    assert_error(
        app.start_salesforce(&token).await,
        401,
        "InvalidAuthenticationToken",
    )
    .await;
}

#[tokio::test]
async fn a_tid_that_differs_from_the_issuers_tenant_is_refused() {
    let app = spawn_app_with(|c, _| {
        c.auth.allowed_tenants = vec![
            "8a3c9c1e-6f0b-4b7e-9d55-2f1e7c0a4b13".into(),
            "00000000-0000-4000-8000-00000000000a".into(),
        ]
    })
    .await;
    let token = app.admin_token_with(|c| c["tid"] = json!("00000000-0000-4000-8000-00000000000a"));
    assert_error(
        app.start_salesforce(&token).await,
        401,
        "InvalidAuthenticationToken",
    )
    .await;
}

#[tokio::test]
async fn an_idempotency_key_does_not_keep_a_cooldown_refusal() {
    let app = spawn_app_with(|c, _| c.guard.cooldown_secs = 1).await;
    let keyed = |key: &'static str| {
        app.http
            .post(format!("{}{}", app.base, salesforce()))
            .bearer_auth(app.admin_token())
            .header("Idempotency-Key", key)
            .send()
    };
    assert_eq!(keyed("first").await.unwrap().status(), 204);
    app.emulator
        .set_job_status(SALESFORCE_SP, SALESFORCE_JOB, "Paused");
    assert_eq!(keyed("second").await.unwrap().status(), 409, "cooling down");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let retried = keyed("second").await.unwrap();
    assert_eq!(
        retried.status(),
        204,
        "the refusal was not kept under the key"
    );
    assert!(retried.headers().get("idempotent-replayed").is_none());
}

#[tokio::test]
async fn a_replay_has_the_shape_of_the_first_answer() {
    let app = spawn_app().await;
    let keyed = |path: String| {
        app.http
            .post(format!("{}{path}", app.base))
            .bearer_auth(app.admin_token())
            .header("Idempotency-Key", "shape")
            .send()
    };
    assert_eq!(keyed(salesforce()).await.unwrap().status(), 204);
    let replay = keyed(format!("{}?passThru=true", salesforce()))
        .await
        .unwrap();
    assert_eq!(replay.status(), 204, "the first answer was 204");
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
}

#[tokio::test]
async fn cooldowns_survive_a_flood_of_other_jobs_in_a_small_memory_store() {
    let app = spawn_app_with(|c, _| {
        c.guard.memory_max_entries = 100;
        c.guard.preflight = false;
    })
    .await;
    let token = app.admin_token();
    assert_eq!(app.start_salesforce(&token).await.status(), 204);
    for i in 0..400 {
        app.post(
            &TestApp::start_path(SALESFORCE_SP, &format!("bogus-{i}")),
            Some(&token),
        )
        .await;
    }
    assert_error(
        app.start_salesforce(&token).await,
        409,
        "SyncJobStartCooldown",
    )
    .await;
    let starts = app
        .emulator
        .calls()
        .into_iter()
        .filter(|c| {
            c.operation == Operation::Start && c.path.ends_with(&format!("{SALESFORCE_JOB}/start"))
        })
        .count();
    assert_eq!(starts, 1);
}

#[tokio::test]
async fn the_same_job_id_in_another_casing_is_the_same_job() {
    let app = spawn_app_with(|c, _| c.guard.preflight = false).await;
    let token = app.admin_token();
    assert_eq!(app.start_salesforce(&token).await.status(), 204);
    let shouted = TestApp::start_path(SALESFORCE_SP, &SALESFORCE_JOB.to_uppercase());
    assert_error(
        app.post(&shouted, Some(&token)).await,
        409,
        "SyncJobStartCooldown",
    )
    .await;
}

#[tokio::test]
async fn a_revoked_facade_token_is_replaced_once_and_otherwise_is_a_502_not_the_callers_401() {
    let app = spawn_app_with(|c, emulator| {
        let mut claims = emulator.app_claims(FACADE_CLIENT_ID);
        claims["aud"] = json!(GRAPH_AUDIENCE);
        claims["exp"] = json!(1);
        c.graph.credential.kind = CredentialKind::Static;
        c.graph.credential.token = Some(Secret::new(emulator.mint(&claims)));
        c.graph.credential.client_secret = None;
    })
    .await;
    let response = app.start_salesforce(&app.admin_token()).await;
    assert_error(response, 502, "BadGateway").await;
    assert_eq!(
        app.emulator.count(Operation::GetJob),
        2,
        "one refresh and one more try"
    );
}

#[tokio::test]
async fn a_graph_504_on_the_start_is_not_retried() {
    let app = spawn_app().await;
    app.emulator.inject(Fault {
        operation: Some(Operation::Start),
        status: Some(504),
        ..Fault::default()
    });
    assert_eq!(app.start_salesforce(&app.admin_token()).await.status(), 504);
    assert_eq!(app.emulator.count(Operation::Start), 1);
}

#[tokio::test]
async fn odata_options_and_a_trailing_slash_are_tolerated() {
    let app = spawn_app().await;
    let path = format!("{}/?$select=id", salesforce());
    assert_eq!(
        app.post(&path, Some(&app.admin_token())).await.status(),
        204
    );
}

#[tokio::test]
async fn a_forced_start_that_joins_a_refused_flight_runs_its_own() {
    let app = spawn_app().await;
    app.emulator
        .set_job_status(SALESFORCE_SP, SALESFORCE_JOB, "Active");
    app.emulator.inject(Fault {
        operation: Some(Operation::GetJob),
        delay_ms: Some(400),
        ..Fault::default()
    });
    let token = app.admin_token();
    let plain = tokio::spawn(
        app.http
            .post(format!("{}{}", app.base, salesforce()))
            .bearer_auth(token.clone())
            .send(),
    );
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let forced = app
        .post(&format!("{}?force=true", salesforce()), Some(&token))
        .await;
    assert_eq!(plain.await.unwrap().unwrap().status(), 409);
    assert_eq!(
        forced.status(),
        204,
        "force is not lost by joining another flight"
    );
    assert_eq!(app.emulator.count(Operation::Start), 1);
}

#[tokio::test]
async fn batch_errors_carry_the_request_id_in_inner_error() {
    let app = spawn_app().await;
    let response = app
        .post_json(
            "/start",
            &app.admin_token(),
            &json!([{"ServicePrincipalId": SALESFORCE_SP}]),
        )
        .await;
    let request_id = response.headers()["request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let batch: Value = response.json().await.unwrap();
    assert_eq!(
        batch["responses"][0]["body"]["error"]["innerError"]["request-id"],
        request_id.as_str()
    );
}

#[tokio::test]
async fn a_graph_401_for_the_facades_token_fetches_a_new_one_and_retries_once() {
    let app = spawn_app().await;
    app.emulator.inject(Fault {
        operation: Some(Operation::GetJob),
        status: Some(401),
        ..Fault::default()
    });
    assert_eq!(app.start_salesforce(&app.admin_token()).await.status(), 204);
    assert_eq!(
        app.emulator.count(Operation::Token),
        2,
        "the refused token was replaced"
    );
    assert_eq!(app.emulator.count(Operation::GetJob), 2);
}
