//! Caller authentication and authorisation.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use syncjob_emulator::Operation;

use crate::helpers::*;

fn start() -> String {
    TestApp::start_path(SALESFORCE_SP, SALESFORCE_JOB)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn no_token_is_401_with_a_bare_bearer_challenge() {
    let app = spawn_app().await;
    let response = app.post(&start(), None).await;
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer realm="syncjob-facade""#
    );
    assert_error(response, 401, "InvalidAuthenticationToken").await;
    assert_eq!(app.emulator.count(Operation::Start), 0);
}

#[tokio::test]
async fn a_malformed_token_is_401_invalid_token() {
    let app = spawn_app().await;
    let response = app.post(&start(), Some("not-a-jwt")).await;
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.starts_with(
            r#"Bearer realm="syncjob-facade", error="invalid_token", error_description=""#
        ),
        "{challenge}"
    );
    assert_error(response, 401, "InvalidAuthenticationToken").await;
}

#[tokio::test]
async fn expired_not_yet_valid_wrong_audience_and_wrong_issuer_tokens_are_refused() {
    let app = spawn_app().await;
    type Edit = Box<dyn Fn(&mut Value)>;
    let edits: Vec<(&str, Edit)> = vec![
        (
            "expired",
            Box::new(|c: &mut Value| c["exp"] = json!(now() - 3600)),
        ),
        (
            "nbf in the future",
            Box::new(|c: &mut Value| c["nbf"] = json!(now() + 3600)),
        ),
        (
            "audience",
            Box::new(|c: &mut Value| c["aud"] = json!("https://graph.microsoft.com")),
        ),
        (
            "issuer",
            Box::new(|c: &mut Value| {
                c["iss"] = json!(
                    "https://login.microsoftonline.com/00000000-0000-4000-8000-000000000001/v2.0"
                )
            }),
        ),
        (
            "no exp",
            Box::new(|c: &mut Value| {
                c.as_object_mut().unwrap().remove("exp");
            }),
        ),
        (
            "no nbf",
            Box::new(|c: &mut Value| {
                c.as_object_mut().unwrap().remove("nbf");
            }),
        ),
    ];
    for (what, edit) in edits {
        let token = app.admin_token_with(|c| edit(c));
        let response = app.start_salesforce(&token).await;
        assert_eq!(response.status(), 401, "{what}");
        assert!(
            response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("invalid_token"),
            "{what}"
        );
    }
    assert_eq!(app.emulator.count(Operation::Start), 0);
}

#[tokio::test]
async fn leeway_accepts_a_token_that_expired_seconds_ago() {
    let app = spawn_app().await;
    let token = app.admin_token_with(|c| c["exp"] = json!(now() - 10));
    assert_eq!(app.start_salesforce(&token).await.status(), 204);
}

#[tokio::test]
async fn a_tampered_signature_is_refused() {
    let app = spawn_app().await;
    let token = app.admin_token();
    let (head, _) = token.rsplit_once('.').unwrap();
    let other = app.app_token();
    let forged = format!("{head}.{}", other.rsplit('.').next().unwrap());
    assert_error(
        app.start_salesforce(&forged).await,
        401,
        "InvalidAuthenticationToken",
    )
    .await;
}

#[tokio::test]
async fn alg_none_is_refused() {
    let app = spawn_app().await;
    let header = URL_SAFE_NO_PAD.encode(
        json!({"alg": "none", "typ": "JWT", "kid": app.emulator.current_kid()}).to_string(),
    );
    let claims = URL_SAFE_NO_PAD.encode(app.emulator.delegated_claims(ADMIN_OID).to_string());
    for token in [format!("{header}.{claims}."), format!("{header}.{claims}")] {
        assert_error(
            app.start_salesforce(&token).await,
            401,
            "InvalidAuthenticationToken",
        )
        .await;
    }
    assert_eq!(app.emulator.count(Operation::Start), 0);
}

#[tokio::test]
async fn an_hs256_token_signed_with_the_public_key_is_refused() {
    use hmac::{Hmac, Mac};
    let app = spawn_app().await;
    let header = URL_SAFE_NO_PAD.encode(
        json!({"alg": "HS256", "typ": "JWT", "kid": app.emulator.current_kid()}).to_string(),
    );
    let claims = URL_SAFE_NO_PAD.encode(app.emulator.delegated_claims(ADMIN_OID).to_string());
    let signing_input = format!("{header}.{claims}");
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(app.emulator.public_key_pem().as_bytes()).unwrap();
    mac.update(signing_input.as_bytes());
    let token = format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    );
    assert_error(
        app.start_salesforce(&token).await,
        401,
        "InvalidAuthenticationToken",
    )
    .await;
    assert_eq!(app.emulator.count(Operation::Start), 0);
}

#[tokio::test]
async fn an_rs256_header_on_a_token_signed_for_another_alg_is_refused() {
    let app = spawn_app().await;
    let token = app.emulator.mint_with_header(
        &json!({"alg": "RS512", "typ": "JWT", "kid": app.emulator.current_kid()}),
        &app.emulator.delegated_claims(ADMIN_OID),
    );
    assert_error(
        app.start_salesforce(&token).await,
        401,
        "InvalidAuthenticationToken",
    )
    .await;
}

#[tokio::test]
async fn a_rotated_in_key_is_accepted_at_once() {
    let app = spawn_app().await;
    let fetched = app.emulator.count(Operation::Jwks);
    app.emulator.rotate_keys(true);
    let token = app.admin_token();
    assert_eq!(app.start_salesforce(&token).await.status(), 204);
    assert_eq!(app.emulator.count(Operation::Jwks), fetched + 1);
}

#[tokio::test]
async fn a_token_already_accepted_is_refused_once_its_key_is_no_longer_published() {
    let app = spawn_app().await;
    let old = app.admin_token();
    let read = format!(
        "{}/v1.0/servicePrincipals/{SALESFORCE_SP}/synchronization/jobs",
        app.base
    );
    let get = |token: String| {
        let request = app.http.get(&read).bearer_auth(token);
        async move { request.send().await.unwrap() }
    };
    assert_eq!(get(old.clone()).await.status(), 200, "validated and kept");
    // The issuer retires the key; a token signed with the new one makes the facade fetch the
    // key set again, without the old key.
    app.emulator.rotate_keys(true);
    assert_eq!(get(app.admin_token()).await.status(), 200);
    assert_error(get(old).await, 401, "InvalidAuthenticationToken").await;
}

#[tokio::test]
async fn a_flood_of_unknown_kids_fetches_the_key_set_a_bounded_number_of_times() {
    let app = spawn_app().await;
    let fetched = app.emulator.count(Operation::Jwks);
    let claims = app.emulator.delegated_claims(ADMIN_OID);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let token = app.emulator.mint_with_header(
            &json!({"alg": "RS256", "typ": "JWT", "kid": format!("unknown-{i}")}),
            &claims,
        );
        let http = app.http.clone();
        let url = format!("{}{}", app.base, start());
        tasks.push(tokio::spawn(async move {
            http.post(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 401);
    }
    assert!(
        app.emulator.count(Operation::Jwks) <= fetched + 1,
        "at most one refetch: {} after {fetched}",
        app.emulator.count(Operation::Jwks)
    );
    // Known keys keep working during the flood's cool-down.
    assert_eq!(app.start_salesforce(&app.admin_token()).await.status(), 204);
}

#[tokio::test]
async fn a_personal_microsoft_account_is_403() {
    let app = spawn_app().await;
    let token = app.admin_token_with(|c| c["tid"] = json!("9188040d-6c67-4c5b-b112-36a304b66dad"));
    let body = assert_error(
        app.start_salesforce(&token).await,
        403,
        "Authorization_RequestDenied",
    )
    .await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Personal Microsoft accounts")
    );
}

#[tokio::test]
async fn a_tenant_outside_the_allow_list_is_refused() {
    let app = spawn_app().await;
    let token = app.admin_token_with(|c| c["tid"] = json!("00000000-0000-4000-8000-000000000009"));
    assert_error(
        app.start_salesforce(&token).await,
        401,
        "InvalidAuthenticationToken",
    )
    .await;
}

#[tokio::test]
async fn a_delegated_token_without_the_scope_is_403_insufficient_scope() {
    let app = spawn_app().await;
    let token = app.admin_token_with(|c| c["scp"] = json!("User.Read Directory.Read.All"));
    let response = app.start_salesforce(&token).await;
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains(r#"error="insufficient_scope""#)
            && challenge.contains(r#"scope="Synchronization.ReadWrite.All""#),
        "{challenge}"
    );
    let body = assert_error(response, 403, "Authorization_RequestDenied").await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("Synchronization.ReadWrite.All") && message.contains("User.Read"),
        "{message}"
    );
}

#[tokio::test]
async fn a_delegated_caller_without_a_directory_role_is_403_unless_the_check_is_off() {
    let app = spawn_app().await;
    let reader = app
        .emulator
        .mint(&app.emulator.delegated_claims(READER_OID));
    assert_error(
        app.start_salesforce(&reader).await,
        403,
        "Authorization_RequestDenied",
    )
    .await;
    assert_eq!(app.emulator.count(Operation::Start), 0);

    let relaxed = spawn_app_with(|c, _| c.auth.require_directory_role = false).await;
    let reader = relaxed
        .emulator
        .mint(&relaxed.emulator.delegated_claims(READER_OID));
    assert_eq!(relaxed.start_salesforce(&reader).await.status(), 204);
}

#[tokio::test]
async fn an_application_without_a_role_is_403() {
    let app = spawn_app().await;
    let mut claims = app.emulator.app_claims(PORTAL_CLIENT_ID);
    claims["roles"] = json!(["User.Read.All"]);
    let response = app.post(&start(), Some(&app.emulator.mint(&claims))).await;
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("Application.ReadWrite.OwnedBy")
    );
    assert_error(response, 403, "Authorization_RequestDenied").await;
}

#[tokio::test]
async fn an_owned_by_application_starts_only_jobs_of_service_principals_it_owns() {
    let app = spawn_app().await;
    let token = app.owned_by_token();
    assert_eq!(
        app.start_salesforce(&token).await.status(),
        204,
        "owner of Salesforce"
    );
    let body = assert_error(
        app.post(
            &TestApp::start_path(SERVICENOW_SP, SERVICENOW_JOB),
            Some(&token),
        )
        .await,
        403,
        "Authorization_RequestDenied",
    )
    .await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not an owner")
    );
    assert_eq!(app.emulator.count(Operation::Start), 1);
    assert_eq!(
        app.emulator
            .job_status(SERVICENOW_SP, SERVICENOW_JOB)
            .as_deref(),
        Some("Quarantine")
    );
}

#[tokio::test]
async fn a_validated_token_is_remembered_but_never_accepted_past_its_exp() {
    let app = spawn_app_with(|c, _| {
        c.auth.leeway_secs = 0;
        c.guard.cooldown_secs = 0;
        c.guard.preflight = false;
    })
    .await;
    let exp = jsonwebtoken::get_current_timestamp() + 2;
    let token = app.admin_token_with(|claims| claims["exp"] = serde_json::json!(exp));
    assert_eq!(app.start_salesforce(&token).await.status(), 204);
    assert_eq!(app.start_salesforce(&token).await.status(), 204);
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    assert_error(
        app.start_salesforce(&token).await,
        401,
        "InvalidAuthenticationToken",
    )
    .await;
}
