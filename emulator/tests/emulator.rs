//! The Graph + Entra emulator over real loopback HTTP: tokens and keys (client secret,
//! certificate and federated client assertions, on-behalf-of, managed identity), the job API,
//! Graph's envelope and headers, fault injection and the control API.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeyPair;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RSA_PSS_SHA256};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};
use syncjob_emulator::{
    Emulator, FACADE_AUDIENCE, FEDERATED_ISSUER, Fault, GRAPH_AUDIENCE, Operation, RecordedCall,
    Seed,
};

const FACADE_APP: &str = "5d1c6b8a-3f2e-4c7d-9a10-7e6f5d4c3b2a";
const FACADE_SECRET: &str = "emulator-facade-secret";
const PORTAL_APP: &str = "0c9e8d7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f";
const HR_APP: &str = "6f7a8b9c-0d1e-4f2a-8b3c-4d5e6f7a8b9c";
const HR_SECRET: &str = "emulator-hr-secret";
const HR_OBJECT_ID: &str = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d";
const ADA: &str = "b1c2d3e4-f5a6-4b7c-8d9e-0f1a2b3c4d5e";
const MIA: &str = "d3e4f5a6-b7c8-4d9e-8f0a-1b2c3d4e5f6a";
const APPLICATION_ADMINISTRATOR: &str = "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3";
const CERTIFICATE_APP: &str = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d";
const WORKLOAD_APP: &str = "b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e";
const WORKLOAD_SUBJECT: &str = "system:serviceaccount:identity:syncjob-facade";
const MANAGED_APP: &str = "c3d4e5f6-a7b8-4c9d-8e0f-2a3b4c5d6e7f";
const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const GRAPH_DEFAULT_SCOPE: &str = "https://graph.microsoft.com/.default";
/// The certificate (first) and its PKCS#8 private key, as the facade's `certificate_file`.
const CREDENTIAL_PEM: &str = include_str!("../../tests/fixtures/graph-credential.pem");
const THUMBPRINT_S256: &str = include_str!("../../tests/fixtures/thumbprint-s256.txt");
/// Base64url SHA-1 of the fixture certificate's DER: the `x5t` of an RS256 assertion.
const THUMBPRINT_SHA1: &str = "vGjqtx3AGkxTBPIzvHdCZoVWmhg";
const SALESFORCE_SP: &str = "2f8d4c6a-1b3e-4a5f-9c7d-8e0f1a2b3c4d";
const SALESFORCE_APP_ID: &str = "7c6b5a49-3827-4165-9e0d-c1b2a3f4e5d6";
const SALESFORCE_JOB: &str =
    "salesforce.8a3c9c1e6f0b4b7e9d552f1e7c0a4b13.2f8d4c6a-1b3e-4a5f-9c7d-8e0f1a2b3c4d";
const SERVICENOW_SP: &str = "4a1b2c3d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
const SERVICENOW_JOB: &str =
    "ServiceNowOutDelta.8a3c9c1e6f0b4b7e9d552f1e7c0a4b13.4a1b2c3d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
const AD2AAD_SP: &str = "6c5d4e3f-2a1b-4c0d-9e8f-7a6b5c4d3e2f";
const NOT_CONFIGURED_JOB: &str = "AD2AADPasswordHash.fd1c9b9e8077402c8bc03a7186c8f976";

async fn emulator() -> Emulator {
    Emulator::spawn(Seed::default_seed(), "127.0.0.1:0".parse().unwrap())
        .await
        .expect("emulator starts")
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

async fn token_response(
    emu: &Emulator,
    client_id: &str,
    secret: &str,
    scope: &str,
) -> reqwest::Response {
    http()
        .post(emu.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret),
            ("scope", scope),
        ])
        .send()
        .await
        .unwrap()
}

async fn graph_token(emu: &Emulator, client_id: &str, secret: &str) -> String {
    let response = token_response(
        emu,
        client_id,
        secret,
        "https://graph.microsoft.com/.default",
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

fn job_url(emu: &Emulator, sp: &str, job: &str) -> String {
    format!(
        "{}/v1.0/servicePrincipals/{sp}/synchronization/jobs/{job}",
        emu.base_url()
    )
}

async fn start(emu: &Emulator, token: Option<&str>, sp: &str, job: &str) -> reqwest::Response {
    let mut request = http().post(format!("{}/start", job_url(emu, sp, job)));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

async fn jwks(emu: &Emulator) -> Value {
    http()
        .get(emu.jwks_url())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// Validates as a relying party would: the key chosen by kid from the served JWKS, RS256 only.
fn validate(token: &str, jwks: &Value, audience: &str, issuer: &str) -> Value {
    let kid = jsonwebtoken::decode_header(token)
        .unwrap()
        .kid
        .expect("token has a kid");
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .expect("kid is published");
    assert_eq!(jwk["kty"], "RSA");
    assert_eq!(jwk["alg"], "RS256");
    let key =
        DecodingKey::from_rsa_components(jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap())
            .unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[issuer]);
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .expect("token validates")
        .claims
}

async fn error_body(response: reqwest::Response) -> Value {
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.unwrap()
}

#[tokio::test]
async fn the_token_endpoint_issues_a_graph_token_that_validates_against_the_served_jwks() {
    let emu = emulator().await;
    let token = graph_token(&emu, FACADE_APP, FACADE_SECRET).await;
    let issuer = format!("https://sts.windows.net/{}/", emu.tenant_id());
    let claims = validate(&token, &jwks(&emu).await, GRAPH_AUDIENCE, &issuer);
    assert_eq!(claims["aud"], GRAPH_AUDIENCE);
    assert_eq!(claims["tid"], emu.tenant_id());
    assert_eq!(claims["appid"], FACADE_APP);
    assert_eq!(claims["azp"], FACADE_APP);
    assert_eq!(claims["idtyp"], "app");
    assert_eq!(claims["sub"], claims["oid"]);
    assert!(
        uuid::Uuid::parse_str(claims["oid"].as_str().unwrap()).is_ok(),
        "a derived oid is a GUID"
    );
    assert_eq!(
        claims["roles"],
        json!(["Synchronization.ReadWrite.All", "Application.Read.All"])
    );
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert_eq!(exp - iat, 3600);
    assert_eq!(emu.count(Operation::Token), 1);
    assert_eq!(emu.calls()[0].token_app_id.as_deref(), Some(FACADE_APP));
}

#[tokio::test]
async fn the_token_endpoint_answers_with_the_documented_shape_and_accepts_basic_client_auth() {
    let emu = emulator().await;
    let response = http()
        .post(emu.token_url())
        .basic_auth(HR_APP, Some(HR_SECRET))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["ext_expires_in"], 3599);
    let claims = validate(
        body["access_token"].as_str().unwrap(),
        &jwks(&emu).await,
        GRAPH_AUDIENCE,
        &format!("https://sts.windows.net/{}/", emu.tenant_id()),
    );
    assert_eq!(claims["oid"], HR_OBJECT_ID);
}

#[tokio::test]
async fn a_bad_client_secret_is_rejected_with_invalid_client() {
    let emu = emulator().await;
    let response = token_response(
        &emu,
        FACADE_APP,
        "wrong",
        "https://graph.microsoft.com/.default",
    )
    .await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(body["error_codes"], json!([7000215]));
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS7000215: Invalid client secret provided.")
    );
    assert!(uuid::Uuid::parse_str(body["trace_id"].as_str().unwrap()).is_ok());
    assert!(uuid::Uuid::parse_str(body["correlation_id"].as_str().unwrap()).is_ok());
}

#[tokio::test]
async fn malformed_token_requests_get_entra_errors() {
    let emu = emulator().await;
    let unknown_client = token_response(
        &emu,
        "11111111-1111-4111-8111-111111111111",
        "x",
        "https://graph.microsoft.com/.default",
    )
    .await;
    assert_eq!(unknown_client.status(), 400);
    assert_eq!(
        unknown_client.json::<Value>().await.unwrap()["error"],
        "unauthorized_client"
    );
    let bad_scope = token_response(
        &emu,
        FACADE_APP,
        FACADE_SECRET,
        "https://graph.microsoft.com/User.Read",
    )
    .await;
    assert_eq!(bad_scope.status(), 400);
    assert_eq!(
        bad_scope.json::<Value>().await.unwrap()["error"],
        "invalid_scope"
    );
    let grant = http()
        .post(emu.token_url())
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(grant.status(), 400);
    assert_eq!(
        grant.json::<Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );
    let nothing = http()
        .post(emu.token_url())
        .form(&[("scope", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        nothing.json::<Value>().await.unwrap()["error_codes"],
        json!([900144])
    );
}

#[tokio::test]
async fn discovery_points_at_the_emulators_own_endpoints() {
    let emu = emulator().await;
    let config: Value = http()
        .get(emu.openid_config_url())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["issuer"], emu.issuer());
    assert_eq!(config["jwks_uri"], emu.jwks_url());
    assert_eq!(config["token_endpoint"], emu.token_url());
    assert_eq!(
        config["id_token_signing_alg_values_supported"],
        json!(["RS256"])
    );
    let common: Value = http()
        .get(format!("{}/common/discovery/v2.0/keys", emu.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(kids(&common), vec![emu.current_kid()]);
    assert_eq!(emu.count(Operation::Discovery), 1);
    assert_eq!(emu.count(Operation::Jwks), 1);
}

#[tokio::test]
async fn starting_the_paused_seed_job_makes_it_active_and_is_recorded() {
    let emu = emulator().await;
    let token = graph_token(&emu, FACADE_APP, FACADE_SECRET).await;
    assert_eq!(
        emu.job_status(SALESFORCE_SP, SALESFORCE_JOB).as_deref(),
        Some("Paused")
    );
    let response = http()
        .post(format!(
            "{}/start",
            job_url(&emu, SALESFORCE_SP, SALESFORCE_JOB)
        ))
        .bearer_auth(&token)
        .header("client-request-id", "7d0c0a3e-0000-4000-8000-000000000001")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(
        response.headers()["client-request-id"],
        "7d0c0a3e-0000-4000-8000-000000000001"
    );
    assert!(response.headers().contains_key("request-id"));
    assert!(response.headers().contains_key("x-ms-ags-diagnostic"));
    assert!(response.headers().contains_key("date"));
    assert!(response.bytes().await.unwrap().is_empty());
    assert_eq!(
        emu.job_status(SALESFORCE_SP, SALESFORCE_JOB).as_deref(),
        Some("Active")
    );
    assert_eq!(emu.count(Operation::Start), 1);
    let call = emu
        .calls()
        .into_iter()
        .find(|c| c.operation == Operation::Start)
        .unwrap();
    assert_eq!(call.token_app_id.as_deref(), Some(FACADE_APP));
    assert_eq!(call.token_idtyp.as_deref(), Some("app"));
    assert_eq!(call.method, "POST");
    assert_eq!(call.status, 204);
    assert_eq!(
        call.client_request_id.as_deref(),
        Some("7d0c0a3e-0000-4000-8000-000000000001")
    );
    assert!(call.headers.iter().all(|(name, _)| name != "authorization"));
}

#[tokio::test]
async fn the_powershell_action_name_and_mixed_case_segments_start_the_job_too() {
    let emu = emulator().await;
    let token = graph_token(&emu, FACADE_APP, FACADE_SECRET).await;
    let url = format!(
        "{}/beta/SERVICEPRINCIPALS/{SERVICENOW_SP}/Synchronization/Jobs/{SERVICENOW_JOB}/microsoft.graph.start",
        emu.base_url()
    );
    let response = http().post(url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(
        emu.job_status(SERVICENOW_SP, SERVICENOW_JOB).as_deref(),
        Some("Active")
    );
}

#[tokio::test]
async fn pausing_a_job_makes_it_paused_and_get_job_reports_graphs_shape() {
    let emu = emulator().await;
    let token = graph_token(&emu, FACADE_APP, FACADE_SECRET).await;
    let quarantined: Value = http()
        .get(job_url(&emu, SERVICENOW_SP, SERVICENOW_JOB))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(quarantined["id"], SERVICENOW_JOB);
    assert_eq!(quarantined["templateId"], "ServiceNowOutDelta");
    assert_eq!(quarantined["status"]["code"], "Quarantine");
    assert!(quarantined["status"]["quarantine"].is_object());
    assert_eq!(
        quarantined["status"]["steadyStateFirstAchievedTime"],
        "0001-01-01T00:00:00Z"
    );
    assert_eq!(quarantined["schedule"]["interval"], "PT40M");
    let paused = http()
        .post(format!(
            "{}/pause",
            job_url(&emu, SERVICENOW_SP, SERVICENOW_JOB)
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(paused.status(), 204);
    let job: Value = http()
        .get(job_url(&emu, SERVICENOW_SP, SERVICENOW_JOB))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(job["status"]["code"], "Paused");
    assert!(job["status"]["quarantine"].is_null());
    assert_eq!(emu.count(Operation::Pause), 1);
    assert_eq!(emu.count(Operation::GetJob), 2);
}

#[tokio::test]
async fn starting_a_not_configured_job_is_a_bad_request() {
    let emu = emulator().await;
    let token = graph_token(&emu, FACADE_APP, FACADE_SECRET).await;
    let response = start(&emu, Some(&token), AD2AAD_SP, NOT_CONFIGURED_JOB).await;
    assert_eq!(response.status(), 400);
    assert_eq!(error_body(response).await["error"]["code"], "BadRequest");
    assert_eq!(
        emu.job_status(AD2AAD_SP, NOT_CONFIGURED_JOB).as_deref(),
        Some("NotConfigured")
    );
}

#[tokio::test]
async fn a_start_without_a_token_gets_the_graph_401_envelope() {
    let emu = emulator().await;
    let response = http()
        .post(format!(
            "{}/start",
            job_url(&emu, SALESFORCE_SP, SALESFORCE_JOB)
        ))
        .header("client-request-id", "caller-chosen-id")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let request_id = response.headers()["request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = error_body(response).await;
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
    assert_eq!(body["error"]["message"], "Access token is empty.");
    assert_eq!(
        body["error"]["innerError"]["request-id"],
        request_id.as_str()
    );
    assert_eq!(
        body["error"]["innerError"]["client-request-id"],
        "caller-chosen-id"
    );
    assert_eq!(
        body["error"]["innerError"]["date"].as_str().unwrap().len(),
        "2026-12-01T21:30:00".len()
    );
    assert_eq!(emu.count(Operation::Start), 1, "rejected calls are counted");
    assert_eq!(
        emu.job_status(SALESFORCE_SP, SALESFORCE_JOB).as_deref(),
        Some("Paused")
    );
}

#[tokio::test]
async fn graph_refuses_a_token_for_another_audience_and_a_token_it_did_not_sign() {
    let emu = emulator().await;
    let facade_token = emu.mint(&emu.app_claims(PORTAL_APP));
    let response = start(&emu, Some(&facade_token), SALESFORCE_SP, SALESFORCE_JOB).await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        error_body(response).await["error"]["message"],
        "Access token validation failure. Invalid audience."
    );

    let graph = graph_token(&emu, FACADE_APP, FACADE_SECRET).await;
    let (signed, _) = graph.rsplit_once('.').unwrap();
    let forged = format!("{signed}.AAAA");
    let response = start(&emu, Some(&forged), SALESFORCE_SP, SALESFORCE_JOB).await;
    assert_eq!(response.status(), 401);

    let mut expired = emu.app_claims(FACADE_APP);
    expired["aud"] = json!(GRAPH_AUDIENCE);
    expired["exp"] = json!(1_000_000);
    let response = start(
        &emu,
        Some(&emu.mint(&expired)),
        SALESFORCE_SP,
        SALESFORCE_JOB,
    )
    .await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        emu.job_status(SALESFORCE_SP, SALESFORCE_JOB).as_deref(),
        Some("Paused")
    );
}

#[tokio::test]
async fn an_owned_by_app_may_start_jobs_only_on_service_principals_it_owns() {
    let emu = emulator().await;
    let token = graph_token(&emu, HR_APP, HR_SECRET).await;
    let denied = start(&emu, Some(&token), SERVICENOW_SP, SERVICENOW_JOB).await;
    assert_eq!(denied.status(), 403);
    let body = error_body(denied).await;
    assert_eq!(body["error"]["code"], "Authorization_RequestDenied");
    assert_eq!(
        body["error"]["message"],
        "Insufficient privileges to complete the operation."
    );
    assert_eq!(
        emu.job_status(SERVICENOW_SP, SERVICENOW_JOB).as_deref(),
        Some("Quarantine")
    );

    let owned = start(&emu, Some(&token), SALESFORCE_SP, SALESFORCE_JOB).await;
    assert_eq!(owned.status(), 204);
}

#[tokio::test]
async fn a_throttling_fault_answers_429_with_retry_after_and_the_envelope() {
    let emu = emulator().await;
    let token = graph_token(&emu, FACADE_APP, FACADE_SECRET).await;
    emu.inject(Fault {
        operation: Some(Operation::Start),
        status: Some(429),
        retry_after: Some("1.5".into()),
        ..Fault::default()
    });
    let response = start(&emu, Some(&token), SALESFORCE_SP, SALESFORCE_JOB).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1.5");
    assert!(response.headers().contains_key("request-id"));
    assert_eq!(
        error_body(response).await["error"]["code"],
        "TooManyRequests"
    );
    assert_eq!(
        emu.job_status(SALESFORCE_SP, SALESFORCE_JOB).as_deref(),
        Some("Paused"),
        "a faulted start changes nothing"
    );

    let retried = start(&emu, Some(&token), SALESFORCE_SP, SALESFORCE_JOB).await;
    assert_eq!(retried.status(), 204, "the fault applied once");
    assert_eq!(emu.count(Operation::Start), 2);
    let statuses: Vec<u16> = emu
        .calls()
        .iter()
        .filter(|c| c.operation == Operation::Start)
        .map(|c| c.status)
        .collect();
    assert_eq!(statuses, vec![429, 204]);
}

#[tokio::test]
async fn a_fault_for_several_times_on_any_operation_leaves_the_job_status_unchanged() {
    let emu = emulator().await;
    let token = graph_token(&emu, FACADE_APP, FACADE_SECRET).await;
    emu.inject(Fault {
        status: Some(503),
        times: Some(2),
        ..Fault::default()
    });
    for _ in 0..2 {
        let response = start(&emu, Some(&token), SALESFORCE_SP, SALESFORCE_JOB).await;
        assert_eq!(response.status(), 503);
        assert_eq!(
            error_body(response).await["error"]["code"],
            "ServiceUnavailable"
        );
    }
    assert_eq!(
        emu.job_status(SALESFORCE_SP, SALESFORCE_JOB).as_deref(),
        Some("Paused")
    );
    assert_eq!(
        start(&emu, Some(&token), SALESFORCE_SP, SALESFORCE_JOB)
            .await
            .status(),
        204
    );
}

#[tokio::test]
async fn a_drop_connection_fault_gives_the_client_a_connection_error_not_a_response() {
    let emu = emulator().await;
    let token = graph_token(&emu, FACADE_APP, FACADE_SECRET).await;
    emu.inject(Fault {
        operation: Some(Operation::Start),
        drop_connection: true,
        ..Fault::default()
    });
    let client = http();
    let outcome = client
        .post(format!(
            "{}/start",
            job_url(&emu, SALESFORCE_SP, SALESFORCE_JOB)
        ))
        .bearer_auth(&token)
        .send()
        .await;
    let error = outcome.expect_err("the connection is dropped without an answer");
    assert!(!error.is_status() && !error.is_timeout(), "{error:?}");
    assert_eq!(emu.count(Operation::Start), 1);
    assert_eq!(emu.calls().last().unwrap().status, 0);
    assert_eq!(
        emu.job_status(SALESFORCE_SP, SALESFORCE_JOB).as_deref(),
        Some("Paused")
    );

    let next = client
        .post(format!(
            "{}/start",
            job_url(&emu, SALESFORCE_SP, SALESFORCE_JOB)
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(next.status(), 204, "only the faulted connection is cut");
}

#[tokio::test]
async fn a_delay_fault_slows_the_answer_and_counts_the_call_on_arrival() {
    let emu = emulator().await;
    let token = graph_token(&emu, FACADE_APP, FACADE_SECRET).await;
    emu.inject(Fault {
        operation: Some(Operation::Start),
        delay_ms: Some(2_000),
        ..Fault::default()
    });
    let begun = Instant::now();
    let outcome = http()
        .post(format!(
            "{}/start",
            job_url(&emu, SALESFORCE_SP, SALESFORCE_JOB)
        ))
        .bearer_auth(&token)
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(outcome.unwrap_err().is_timeout());
    assert_eq!(
        emu.count(Operation::Start),
        1,
        "a call the client gave up on was still received"
    );

    emu.inject(Fault {
        operation: Some(Operation::Start),
        delay_ms: Some(300),
        ..Fault::default()
    });
    let begun_again = Instant::now();
    let response = start(&emu, Some(&token), SALESFORCE_SP, SALESFORCE_JOB).await;
    assert!(begun_again.elapsed() >= Duration::from_millis(300));
    assert_eq!(
        response.status(),
        204,
        "after the delay the answer is normal"
    );
    assert!(begun.elapsed() >= Duration::from_millis(600));
}

#[tokio::test]
async fn the_app_id_alternate_key_resolves_the_service_principal() {
    let emu = emulator().await;
    let token = graph_token(&emu, FACADE_APP, FACADE_SECRET).await;
    for path in [
        format!("/v1.0/servicePrincipals(appId='{SALESFORCE_APP_ID}')?$select=id"),
        format!("/v1.0/serviceprincipals(appId=%27{SALESFORCE_APP_ID}%27)"),
    ] {
        let response = http()
            .get(format!("{}{path}", emu.base_url()))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["id"], SALESFORCE_SP);
        assert_eq!(body["appId"], SALESFORCE_APP_ID);
        assert_eq!(body["displayName"], "Salesforce");
        assert!(
            body["@odata.context"]
                .as_str()
                .unwrap()
                .contains("$metadata#servicePrincipals")
        );
    }
    assert_eq!(emu.count(Operation::ResolveAppId), 2);
    let unknown = http()
        .get(format!(
            "{}/v1.0/servicePrincipals(appId='00000000-0000-4000-8000-000000000000')",
            emu.base_url()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn owners_lists_the_owning_service_principal() {
    let emu = emulator().await;
    let token = graph_token(&emu, FACADE_APP, FACADE_SECRET).await;
    let response = http()
        .get(format!(
            "{}/v1.0/servicePrincipals/{SALESFORCE_SP}/owners",
            emu.base_url()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert!(body["@odata.context"].is_string());
    let owners = body["value"].as_array().unwrap();
    assert_eq!(owners.len(), 1);
    assert_eq!(
        owners[0]["@odata.type"],
        "#microsoft.graph.servicePrincipal"
    );
    assert_eq!(owners[0]["id"], HR_OBJECT_ID);
    assert_eq!(emu.count(Operation::Owners), 1);
}

#[tokio::test]
async fn rotating_keys_publishes_the_new_kid_and_keeps_the_old_one_unless_retired() {
    let emu = emulator().await;
    let first = emu.current_kid();
    let second = emu.rotate_keys(false);
    assert_ne!(first, second);
    assert_eq!(emu.current_kid(), second);
    assert_eq!(kids(&jwks(&emu).await), vec![first.clone(), second.clone()]);
    let token = emu.mint(&emu.app_claims(PORTAL_APP));
    assert_eq!(
        jsonwebtoken::decode_header(&token).unwrap().kid.as_deref(),
        Some(second.as_str())
    );
    validate(&token, &jwks(&emu).await, FACADE_AUDIENCE, &emu.issuer());

    let third = emu.rotate_keys(true);
    assert_eq!(kids(&jwks(&emu).await), vec![third]);
}

#[tokio::test]
async fn minted_caller_tokens_validate_and_carry_the_documented_claims() {
    let emu = emulator().await;
    let delegated = emu.delegated_claims(ADA);
    let claims = validate(
        &emu.mint(&delegated),
        &jwks(&emu).await,
        FACADE_AUDIENCE,
        &emu.issuer(),
    );
    assert_eq!(claims, delegated, "claims are signed exactly as given");
    assert_eq!(claims["oid"], ADA);
    assert_eq!(claims["tid"], emu.tenant_id());
    assert_eq!(claims["name"], "Ada Admin");
    assert_eq!(claims["preferred_username"], "ada@contoso.example");
    assert_eq!(claims["scp"], "Synchronization.ReadWrite.All");
    assert_eq!(
        claims["wids"],
        json!(["9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3"])
    );
    assert_eq!(claims["azp"], PORTAL_APP);
    assert_eq!(claims["appid"], PORTAL_APP);
    assert_eq!(claims["idtyp"], "user");
    assert_eq!(claims["ver"], "2.0");

    let app = emu.app_claims(HR_APP);
    assert_eq!(app["oid"], HR_OBJECT_ID);
    assert_eq!(app["roles"], json!(["Application.ReadWrite.OwnedBy"]));
    assert_eq!(app["idtyp"], "app");

    let header = json!({"alg": "HS256", "typ": "JWT", "kid": emu.current_kid()});
    let crafted = emu.mint_with_header(&header, &app);
    assert_eq!(
        jsonwebtoken::decode_header(&crafted).unwrap().alg,
        Algorithm::HS256
    );
    assert!(
        emu.public_key_pem()
            .starts_with("-----BEGIN PUBLIC KEY-----\n")
    );
}

#[tokio::test]
async fn an_unknown_service_principal_gets_a_404_envelope_with_a_request_id() {
    let emu = emulator().await;
    let token = graph_token(&emu, FACADE_APP, FACADE_SECRET).await;
    let missing = "00000000-0000-4000-8000-0000000000aa";
    let response = start(&emu, Some(&token), missing, SALESFORCE_JOB).await;
    assert_eq!(response.status(), 404);
    let request_id = response.headers()["request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(uuid::Uuid::parse_str(&request_id).is_ok());
    let body = error_body(response).await;
    assert_eq!(body["error"]["code"], "Request_ResourceNotFound");
    assert_eq!(
        body["error"]["message"],
        format!(
            "Resource '{missing}' does not exist or one of its queried reference-property objects are not present."
        )
    );
    assert_eq!(
        body["error"]["innerError"]["request-id"],
        request_id.as_str()
    );

    let unknown_job = start(&emu, Some(&token), SALESFORCE_SP, "NoSuchJob.1").await;
    assert_eq!(unknown_job.status(), 404);
}

#[tokio::test]
async fn unknown_segments_and_wrong_methods_get_graph_errors() {
    let emu = emulator().await;
    let segment = http()
        .get(format!(
            "{}/v1.0/servicePrincipals/{SALESFORCE_SP}/frobnicate",
            emu.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(segment.status(), 400);
    assert_eq!(
        error_body(segment).await["error"]["message"],
        "Resource not found for the segment 'frobnicate'."
    );
    let method = http()
        .get(format!(
            "{}/start",
            job_url(&emu, SALESFORCE_SP, SALESFORCE_JOB)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(method.status(), 405);
    assert_eq!(method.headers()["allow"], "POST");
    assert_eq!(emu.count(Operation::Start), 0);
}

#[tokio::test]
async fn the_control_api_drives_faults_calls_tokens_keys_and_jobs() {
    let emu = emulator().await;
    let control = |path: &str| format!("{}/_emulator{path}", emu.base_url());
    let fault = json!({"operation": "token", "status": 503, "retryAfter": "2"});
    assert_eq!(
        http()
            .post(control("/faults"))
            .json(&fault)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let throttled = token_response(
        &emu,
        FACADE_APP,
        FACADE_SECRET,
        "https://graph.microsoft.com/.default",
    )
    .await;
    assert_eq!(throttled.status(), 503);
    assert_eq!(throttled.headers()["retry-after"], "2");

    let calls: Value = http()
        .get(control("/calls"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(calls["counts"]["token"], 1);
    assert_eq!(calls["counts"]["start"], 0);
    assert_eq!(calls["calls"][0]["operation"], "token");
    assert_eq!(calls["calls"][0]["status"], 503);
    assert_eq!(
        http()
            .delete(control("/calls"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(emu.count(Operation::Token), 0);

    let order = json!({"kind": "delegated", "userObjectId": ADA, "claims": {"scp": "User.Read"}});
    let minted: Value = http()
        .post(control("/tokens"))
        .json(&order)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let claims = validate(
        minted["access_token"].as_str().unwrap(),
        &jwks(&emu).await,
        FACADE_AUDIENCE,
        &emu.issuer(),
    );
    assert_eq!(claims["scp"], "User.Read");
    let app_order = json!({"kind": "app", "clientId": HR_APP});
    let minted: Value = http()
        .post(control("/tokens"))
        .json(&app_order)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(minted["access_token"].is_string());

    let rotated: Value = http()
        .post(control("/keys/rotate?retireOld=true"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rotated["kid"], emu.current_kid().as_str());

    let job_path = control(&format!("/jobs/{SALESFORCE_SP}/{SALESFORCE_JOB}"));
    let set = http()
        .put(&job_path)
        .json(&json!({"status": "Quarantine"}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    let read: Value = http()
        .get(&job_path)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read["status"], "Quarantine");
    assert_eq!(
        emu.job_status(SALESFORCE_SP, SALESFORCE_JOB).as_deref(),
        Some("Quarantine")
    );
}

#[tokio::test]
async fn after_shutdown_the_emulator_is_unreachable() {
    let emu = emulator().await;
    assert_eq!(
        http().get(emu.jwks_url()).send().await.unwrap().status(),
        200
    );
    emu.shutdown().await;
    let error = http()
        .get(emu.jwks_url())
        .send()
        .await
        .expect_err("nothing listens any more");
    assert!(error.is_connect(), "{error:?}");
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn sts_issuer(emu: &Emulator) -> String {
    format!("https://sts.windows.net/{}/", emu.tenant_id())
}

/// The DER of the first `label` block of a PEM text.
fn pem_der(pem: &str, label: &str) -> Vec<u8> {
    let body = pem
        .split_once(&format!("-----BEGIN {label}-----"))
        .and_then(|(_, rest)| rest.split_once(&format!("-----END {label}-----")))
        .map(|(body, _)| body)
        .unwrap_or_else(|| panic!("no {label} block"));
    let base64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD.decode(base64).unwrap()
}

fn b64_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// Signs with the fixture certificate's private key, RS256 or PS256 as `header.alg` says.
/// (aws-lc-rs rather than jsonwebtoken: the crate builds jsonwebtoken without `use_pem`, so
/// `EncodingKey::from_rsa_pem` does not exist, and its DER form wants PKCS#1, not PKCS#8.)
fn sign_with_certificate(header: &Value, claims: &Value) -> String {
    let key = KeyPair::from_pkcs8(&pem_der(CREDENTIAL_PEM, "PRIVATE KEY")).unwrap();
    let input = format!("{}.{}", b64_json(header), b64_json(claims));
    let padding = if header["alg"] == "PS256" {
        &RSA_PSS_SHA256
    } else {
        &RSA_PKCS1_SHA256
    };
    let mut signature = vec![0; key.public_modulus_len()];
    key.sign(
        padding,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut signature,
    )
    .unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// The header Entra pairs with each algorithm: `x5t#S256` with PS256, a SHA-1 `x5t` with RS256.
fn certificate_header(alg: &str) -> Value {
    if alg == "RS256" {
        json!({"alg": alg, "typ": "JWT", "x5t": THUMBPRINT_SHA1})
    } else {
        json!({"alg": alg, "typ": "JWT", "x5t#S256": THUMBPRINT_S256.trim()})
    }
}

/// The claims Entra requires of a certificate client assertion (RFC 7523).
fn certificate_claims(emu: &Emulator) -> Value {
    let now = unix_now();
    json!({
        "aud": emu.token_url(),
        "iss": CERTIFICATE_APP,
        "sub": CERTIFICATE_APP,
        "jti": uuid::Uuid::new_v4().to_string(),
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    })
}

fn certificate_assertion(emu: &Emulator) -> String {
    sign_with_certificate(&certificate_header("PS256"), &certificate_claims(emu))
}

async fn assertion_token_response(
    emu: &Emulator,
    client_id: &str,
    assertion: &str,
) -> reqwest::Response {
    http()
        .post(emu.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_assertion_type", CLIENT_ASSERTION_TYPE),
            ("client_assertion", assertion),
            ("scope", GRAPH_DEFAULT_SCOPE),
        ])
        .send()
        .await
        .unwrap()
}

/// An on-behalf-of request from the facade's Graph credential app, authenticated by secret.
async fn on_behalf_of(emu: &Emulator, user_token: &str) -> reqwest::Response {
    http()
        .post(emu.token_url())
        .form(&[
            ("grant_type", JWT_BEARER),
            ("requested_token_use", "on_behalf_of"),
            ("client_id", FACADE_APP),
            ("client_secret", FACADE_SECRET),
            ("assertion", user_token),
            ("scope", GRAPH_DEFAULT_SCOPE),
        ])
        .send()
        .await
        .unwrap()
}

async fn on_behalf_of_token(emu: &Emulator, user_token: &str) -> String {
    let response = on_behalf_of(emu, user_token).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

async fn imds(emu: &Emulator, query: &str, metadata: bool) -> reqwest::Response {
    let mut request = http().get(format!(
        "{}/metadata/identity/oauth2/token?{query}",
        emu.base_url()
    ));
    if metadata {
        request = request.header("Metadata", "true");
    }
    request.send().await.unwrap()
}

fn last_token_call(emu: &Emulator) -> RecordedCall {
    emu.calls()
        .into_iter()
        .rev()
        .find(|c| c.operation == Operation::Token)
        .expect("a token call was recorded")
}

fn last_token_grant(emu: &Emulator) -> Option<String> {
    last_token_call(emu).grant
}

fn description(body: &Value) -> &str {
    body["error_description"].as_str().unwrap()
}

#[tokio::test]
async fn a_certificate_assertion_signed_by_the_registered_key_gets_a_graph_token() {
    let emu = emulator().await;
    let certificate = pem_der(CREDENTIAL_PEM, "CERTIFICATE");
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &certificate);
    assert_eq!(
        URL_SAFE_NO_PAD.encode(digest),
        THUMBPRINT_S256.trim(),
        "x5t#S256 is the base64url SHA-256 of the certificate's DER"
    );

    let response =
        assertion_token_response(&emu, CERTIFICATE_APP, &certificate_assertion(&emu)).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    let claims = validate(
        body["access_token"].as_str().unwrap(),
        &jwks(&emu).await,
        GRAPH_AUDIENCE,
        &sts_issuer(&emu),
    );
    assert_eq!(claims["appid"], CERTIFICATE_APP);
    assert_eq!(claims["idtyp"], "app");
    assert_eq!(claims["appidacr"], "2", "a key-based credential");
    assert_eq!(
        claims["roles"],
        json!(["Synchronization.ReadWrite.All", "Application.Read.All"])
    );
    assert_eq!(emu.count(Operation::Token), 1);
    let call = last_token_call(&emu);
    assert_eq!(call.grant.as_deref(), Some("client_certificate"));
    assert_eq!(call.token_app_id.as_deref(), Some(CERTIFICATE_APP));
}

#[tokio::test]
async fn an_rs256_assertion_is_accepted_with_a_sha1_x5t_and_refused_with_x5t_s256() {
    let emu = emulator().await;
    let certificate = pem_der(CREDENTIAL_PEM, "CERTIFICATE");
    let digest =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &certificate);
    assert_eq!(URL_SAFE_NO_PAD.encode(digest), THUMBPRINT_SHA1);
    let legacy = sign_with_certificate(&certificate_header("RS256"), &certificate_claims(&emu));
    assert_eq!(
        assertion_token_response(&emu, CERTIFICATE_APP, &legacy)
            .await
            .status(),
        200
    );
    let mismatched = sign_with_certificate(
        &json!({"alg": "RS256", "typ": "JWT", "x5t#S256": THUMBPRINT_S256.trim()}),
        &certificate_claims(&emu),
    );
    let response = assertion_token_response(&emu, CERTIFICATE_APP, &mismatched).await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    assert!(description(&body).contains("PS256"), "{body}");
    let ps256_without_s256 = sign_with_certificate(
        &json!({"alg": "PS256", "typ": "JWT", "x5t": THUMBPRINT_SHA1}),
        &certificate_claims(&emu),
    );
    assert_eq!(
        assertion_token_response(&emu, CERTIFICATE_APP, &ps256_without_s256)
            .await
            .status(),
        401
    );
    // iss must be the client id too: another issuer is not this app's certificate assertion.
    let mut other_issuer = certificate_claims(&emu);
    other_issuer["iss"] = json!(FACADE_APP);
    let assertion = sign_with_certificate(&certificate_header("PS256"), &other_issuer);
    let response = assertion_token_response(&emu, CERTIFICATE_APP, &assertion).await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
}

#[tokio::test]
async fn a_ps256_certificate_assertion_with_the_issuer_as_audience_is_accepted_too() {
    let emu = emulator().await;
    let mut claims = certificate_claims(&emu);
    claims["aud"] = json!(emu.issuer());
    let assertion = sign_with_certificate(&certificate_header("PS256"), &claims);
    let response = assertion_token_response(&emu, CERTIFICATE_APP, &assertion).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_certificate_assertion_with_another_thumbprint_is_rejected_with_invalid_client() {
    let emu = emulator().await;
    let mut header = certificate_header("PS256");
    header["x5t#S256"] = json!(URL_SAFE_NO_PAD.encode([7u8; 32]));
    let assertion = sign_with_certificate(&header, &certificate_claims(&emu));
    let response = assertion_token_response(&emu, CERTIFICATE_APP, &assertion).await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(body["error_codes"], json!([700027]));
    assert!(description(&body).starts_with(
        "AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application."
    ));
    assert_eq!(
        last_token_grant(&emu).as_deref(),
        Some("client_certificate")
    );

    let mut no_thumbprint = certificate_header("PS256");
    no_thumbprint["x5t#S256"] = Value::Null;
    let assertion = sign_with_certificate(&no_thumbprint, &certificate_claims(&emu));
    let response = assertion_token_response(&emu, CERTIFICATE_APP, &assertion).await;
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn a_certificate_assertion_for_another_audience_is_rejected_with_invalid_client() {
    let emu = emulator().await;
    let mut claims = certificate_claims(&emu);
    claims["aud"] = json!("https://login.microsoftonline.com/common/oauth2/v2.0/token");
    let assertion = sign_with_certificate(&certificate_header("PS256"), &claims);
    let response = assertion_token_response(&emu, CERTIFICATE_APP, &assertion).await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(body["error_codes"], json!([700023]));
}

#[tokio::test]
async fn an_expired_unsigned_or_incomplete_certificate_assertion_is_rejected_with_invalid_client() {
    let emu = emulator().await;
    let codes = |body: &Value| body["error_codes"].clone();

    let mut expired = certificate_claims(&emu);
    expired["exp"] = json!(unix_now() - 60);
    let assertion = sign_with_certificate(&certificate_header("PS256"), &expired);
    let response = assertion_token_response(&emu, CERTIFICATE_APP, &assertion).await;
    assert_eq!(response.status(), 401);
    assert_eq!(codes(&response.json().await.unwrap()), json!([700024]));

    // Right thumbprint, wrong key: the emulator's own signing key.
    let forged = emu.mint_with_header(&certificate_header("PS256"), &certificate_claims(&emu));
    let response = assertion_token_response(&emu, CERTIFICATE_APP, &forged).await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(codes(&body), json!([700027]));
    assert!(description(&body).contains("failed signature validation"));

    let mut no_jti = certificate_claims(&emu);
    no_jti["jti"] = Value::Null;
    let assertion = sign_with_certificate(&certificate_header("PS256"), &no_jti);
    let response = assertion_token_response(&emu, CERTIFICATE_APP, &assertion).await;
    assert_eq!(response.status(), 401);

    let mut other_subject = certificate_claims(&emu);
    other_subject["sub"] = json!(FACADE_APP);
    let assertion = sign_with_certificate(&certificate_header("PS256"), &other_subject);
    let response = assertion_token_response(&emu, CERTIFICATE_APP, &assertion).await;
    assert_eq!(response.status(), 401);
    assert_eq!(codes(&response.json().await.unwrap()), json!([700021]));

    let response = assertion_token_response(&emu, FACADE_APP, &certificate_assertion(&emu)).await;
    assert_eq!(
        response.status(),
        401,
        "an assertion for one app does not authenticate another"
    );
}

#[tokio::test]
async fn a_federated_token_for_the_registered_subject_gets_a_graph_token() {
    let emu = emulator().await;
    let federated = emu.federated_token(WORKLOAD_SUBJECT, 3600);
    let header = jsonwebtoken::decode_header(&federated).unwrap();
    assert_eq!(header.kid.as_deref(), Some(emu.current_kid().as_str()));

    let response = assertion_token_response(&emu, WORKLOAD_APP, &federated).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let claims = validate(
        body["access_token"].as_str().unwrap(),
        &jwks(&emu).await,
        GRAPH_AUDIENCE,
        &sts_issuer(&emu),
    );
    assert_eq!(claims["appid"], WORKLOAD_APP);
    assert_eq!(claims["idtyp"], "app");
    assert_eq!(last_token_grant(&emu).as_deref(), Some("workload_identity"));
}

#[tokio::test]
async fn a_federated_token_for_another_subject_or_issuer_finds_no_federated_identity_record() {
    let emu = emulator().await;
    let wrong_subject = emu.federated_token("system:serviceaccount:default:intruder", 3600);
    let response = assertion_token_response(&emu, WORKLOAD_APP, &wrong_subject).await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(body["error_codes"], json!([700213]));
    assert!(description(&body).starts_with(
        "AADSTS700213: No matching federated identity record found for presented assertion subject 'system:serviceaccount:default:intruder'."
    ));

    let now = unix_now();
    let other_issuer = emu.mint(&json!({
        "iss": "https://token.actions.githubusercontent.com",
        "sub": WORKLOAD_SUBJECT,
        "aud": "api://AzureADTokenExchange",
        "iat": now,
        "exp": now + 600,
    }));
    let response = assertion_token_response(&emu, WORKLOAD_APP, &other_issuer).await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error_codes"], json!([700211]));
    assert!(description(&body).contains("No matching federated identity record found"));

    let mut other_audience = json!({
        "iss": FEDERATED_ISSUER,
        "sub": WORKLOAD_SUBJECT,
        "aud": "api://something-else",
        "iat": now,
        "exp": now + 600,
    });
    let response = assertion_token_response(&emu, WORKLOAD_APP, &emu.mint(&other_audience)).await;
    assert_eq!(
        response.json::<Value>().await.unwrap()["error_codes"],
        json!([700212])
    );

    other_audience["aud"] = json!("api://AzureADTokenExchange");
    other_audience["exp"] = json!(now - 1);
    let response = assertion_token_response(&emu, WORKLOAD_APP, &emu.mint(&other_audience)).await;
    assert_eq!(
        response.json::<Value>().await.unwrap()["error_codes"],
        json!([700024]),
        "an expired federated token"
    );

    let federated = emu.federated_token(WORKLOAD_SUBJECT, 3600);
    let response = assertion_token_response(&emu, CERTIFICATE_APP, &federated).await;
    assert_eq!(
        response.status(),
        401,
        "an app without the federated credential"
    );
}

#[tokio::test]
async fn on_behalf_of_ada_gives_a_graph_token_for_her() {
    let emu = emulator().await;
    let user_token = emu.mint(&emu.delegated_claims(ADA));
    let response = on_behalf_of(&emu, &user_token).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_u64().unwrap() <= 3600);
    let claims = validate(
        body["access_token"].as_str().unwrap(),
        &jwks(&emu).await,
        GRAPH_AUDIENCE,
        &sts_issuer(&emu),
    );
    assert_eq!(claims["oid"], ADA);
    assert_eq!(claims["sub"], ADA);
    assert_eq!(claims["tid"], emu.tenant_id());
    assert_eq!(claims["idtyp"], "user");
    assert_eq!(claims["name"], "Ada Admin");
    assert_eq!(claims["upn"], "ada@contoso.example");
    assert_eq!(claims["preferred_username"], "ada@contoso.example");
    assert_eq!(
        claims["scp"],
        "Synchronization.ReadWrite.All Application.Read.All"
    );
    assert_eq!(claims["wids"], json!([APPLICATION_ADMINISTRATOR]));
    assert_eq!(claims["appid"], FACADE_APP);
    assert_eq!(last_token_grant(&emu).as_deref(), Some("on_behalf_of"));

    let mut short_lived = emu.delegated_claims(ADA);
    let soon = unix_now() + 120;
    short_lived["exp"] = json!(soon);
    let token = on_behalf_of_token(&emu, &emu.mint(&short_lived)).await;
    let claims = validate(&token, &jwks(&emu).await, GRAPH_AUDIENCE, &sts_issuer(&emu));
    assert_eq!(
        claims["exp"], soon,
        "never outlives the assertion it was exchanged for"
    );
}

#[tokio::test]
async fn on_behalf_of_accepts_a_certificate_assertion_as_the_clients_credential() {
    let emu = emulator().await;
    let user_token = emu.mint(&emu.delegated_claims(ADA));
    let client_assertion = certificate_assertion(&emu);
    let response = http()
        .post(emu.token_url())
        .form(&[
            ("grant_type", JWT_BEARER),
            ("requested_token_use", "on_behalf_of"),
            ("client_id", CERTIFICATE_APP),
            ("client_assertion_type", CLIENT_ASSERTION_TYPE),
            ("client_assertion", client_assertion.as_str()),
            ("assertion", user_token.as_str()),
            (
                "scope",
                "https://graph.microsoft.com/Synchronization.ReadWrite.All",
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let claims = validate(
        body["access_token"].as_str().unwrap(),
        &jwks(&emu).await,
        GRAPH_AUDIENCE,
        &sts_issuer(&emu),
    );
    assert_eq!(claims["appid"], CERTIFICATE_APP);
    assert_eq!(claims["appidacr"], "2");
    assert_eq!(claims["oid"], ADA);
}

#[tokio::test]
async fn on_behalf_of_mia_is_refused_with_an_mfa_claims_challenge() {
    let emu = emulator().await;
    let response = on_behalf_of(&emu, &emu.mint(&emu.delegated_claims(MIA))).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "interaction_required");
    assert_eq!(body["error_codes"], json!([50076]));
    assert_eq!(body["suberror"], "basic_action");
    assert!(description(&body).starts_with(
        "AADSTS50076: Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '00000003-0000-0000-c000-000000000000'."
    ));
    let challenge: Value = serde_json::from_str(body["claims"].as_str().unwrap()).unwrap();
    assert_eq!(
        challenge,
        json!({"access_token": {"capolids": {"essential": true, "values": ["c1f2e3d4-0000-4000-8000-000000000001"]}}})
    );
    for field in ["timestamp", "trace_id", "correlation_id"] {
        assert!(body[field].is_string(), "{field}");
    }

    let mut stepped_up = emu.delegated_claims(MIA);
    stepped_up["amr"] = json!(["pwd", "mfa"]);
    let token = on_behalf_of_token(&emu, &emu.mint(&stepped_up)).await;
    let claims = validate(&token, &jwks(&emu).await, GRAPH_AUDIENCE, &sts_issuer(&emu));
    assert_eq!(
        claims["oid"], MIA,
        "a token that shows MFA satisfies the policy"
    );
}

#[tokio::test]
async fn on_behalf_of_with_an_app_token_a_graph_token_or_an_expired_token_is_an_invalid_grant() {
    let emu = emulator().await;
    let app_token = emu.mint(&emu.app_claims(PORTAL_APP));
    let response = on_behalf_of(&emu, &app_token).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_codes"], json!([7000114]));

    let mut graph_token = emu.delegated_claims(ADA);
    graph_token["aud"] = json!(GRAPH_AUDIENCE);
    let response = on_behalf_of(&emu, &emu.mint(&graph_token)).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_codes"], json!([50013]));

    let mut expired = emu.delegated_claims(ADA);
    expired["exp"] = json!(unix_now() - 1);
    let response = on_behalf_of(&emu, &emu.mint(&expired)).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_codes"], json!([500133]));

    let user_token = emu.mint(&emu.delegated_claims(ADA));
    let (signed, _) = user_token.rsplit_once('.').unwrap();
    let response = on_behalf_of(&emu, &format!("{signed}.AAAA")).await;
    assert_eq!(
        response.json::<Value>().await.unwrap()["error_codes"],
        json!([50013])
    );
}

#[tokio::test]
async fn the_graph_start_with_an_on_behalf_of_token_for_ada_succeeds_and_is_recorded_with_her_oid()
{
    let emu = emulator().await;
    let token = on_behalf_of_token(&emu, &emu.mint(&emu.delegated_claims(ADA))).await;
    let response = start(&emu, Some(&token), SALESFORCE_SP, SALESFORCE_JOB).await;
    assert_eq!(response.status(), 204);
    assert_eq!(
        emu.job_status(SALESFORCE_SP, SALESFORCE_JOB).as_deref(),
        Some("Active")
    );
    let call = emu
        .calls()
        .into_iter()
        .find(|c| c.operation == Operation::Start)
        .unwrap();
    assert_eq!(call.token_object_id.as_deref(), Some(ADA));
    assert_eq!(call.token_idtyp.as_deref(), Some("user"));
    assert_eq!(call.token_app_id.as_deref(), Some(FACADE_APP));
    assert_eq!(call.grant, None, "grant is for token calls only");
}

#[tokio::test]
async fn imds_issues_a_graph_token_for_the_managed_identity_as_imds_answers() {
    let emu = emulator().await;
    let response = imds(
        &emu,
        "api-version=2018-02-01&resource=https://graph.microsoft.com",
        true,
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["client_id"], MANAGED_APP);
    assert_eq!(body["expires_in"], "3599");
    assert_eq!(body["ext_expires_in"], "3599");
    assert_eq!(body["resource"], "https://graph.microsoft.com");
    assert_eq!(body["token_type"], "Bearer");
    let not_before: u64 = body["not_before"].as_str().unwrap().parse().unwrap();
    let expires_on: u64 = body["expires_on"].as_str().unwrap().parse().unwrap();
    assert_eq!(expires_on - not_before, 3599);
    assert!(not_before.abs_diff(unix_now()) < 60);
    let claims = validate(
        body["access_token"].as_str().unwrap(),
        &jwks(&emu).await,
        GRAPH_AUDIENCE,
        &sts_issuer(&emu),
    );
    assert_eq!(claims["appid"], MANAGED_APP);
    assert_eq!(claims["idtyp"], "app");
    assert_eq!(
        claims["roles"],
        json!(["Synchronization.ReadWrite.All", "Application.Read.All"])
    );
    assert_eq!(emu.count(Operation::Token), 1);
    let call = last_token_call(&emu);
    assert_eq!(call.grant.as_deref(), Some("managed_identity"));
    assert_eq!(call.token_app_id.as_deref(), Some(MANAGED_APP));
    assert_eq!(call.path, "/metadata/identity/oauth2/token");

    let named = imds(
        &emu,
        &format!(
            "api-version=2018-02-01&resource=https%3A%2F%2Fgraph.microsoft.com%2F&client_id={MANAGED_APP}"
        ),
        true,
    )
    .await;
    assert_eq!(named.status(), 200);
    let body: Value = named.json().await.unwrap();
    assert_eq!(body["client_id"], MANAGED_APP);
    assert_eq!(body["resource"], "https://graph.microsoft.com/");
}

#[tokio::test]
async fn imds_refuses_a_request_without_the_metadata_header_a_resource_or_a_known_identity() {
    let emu = emulator().await;
    let query = "api-version=2018-02-01&resource=https://graph.microsoft.com";
    let response = imds(&emu, query, false).await;
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"error": "invalid_request", "error_description": "Required metadata header not specified"})
    );

    let response = imds(&emu, "api-version=2018-02-01", true).await;
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "invalid_resource"
    );

    for not_managed in [FACADE_APP, "00000000-0000-4000-8000-000000000000"] {
        let response = imds(&emu, &format!("{query}&client_id={not_managed}"), true).await;
        assert_eq!(response.status(), 400);
        assert_eq!(
            response.json::<Value>().await.unwrap(),
            json!({"error": "invalid_request", "error_description": "Identity not found"})
        );
    }
    assert_eq!(emu.count(Operation::Token), 4, "refused calls are counted");
}

#[tokio::test]
async fn a_token_fault_applies_to_imds_too() {
    let emu = emulator().await;
    emu.inject(Fault {
        operation: Some(Operation::Token),
        status: Some(429),
        retry_after: Some("3".into()),
        ..Fault::default()
    });
    let query = "api-version=2018-02-01&resource=https://graph.microsoft.com";
    let throttled = imds(&emu, query, true).await;
    assert_eq!(throttled.status(), 429);
    assert_eq!(throttled.headers()["retry-after"], "3");
    assert!(throttled.json::<Value>().await.unwrap()["error"].is_string());
    assert_eq!(imds(&emu, query, true).await.status(), 200);
}

#[tokio::test]
async fn recorded_token_calls_name_their_flow_in_the_control_api() {
    let emu = emulator().await;
    let control = |path: &str| format!("{}/_emulator{path}", emu.base_url());
    graph_token(&emu, FACADE_APP, FACADE_SECRET).await;
    let order = json!({"kind": "federated", "subject": WORKLOAD_SUBJECT});
    let minted: Value = http()
        .post(control("/tokens"))
        .json(&order)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let federated = minted["access_token"].as_str().unwrap();
    let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(federated)
        .unwrap()
        .claims;
    assert_eq!(claims["iss"], FEDERATED_ISSUER);
    assert_eq!(claims["sub"], WORKLOAD_SUBJECT);
    assert_eq!(claims["aud"], json!(["api://AzureADTokenExchange"]));
    let response = assertion_token_response(&emu, WORKLOAD_APP, federated).await;
    assert_eq!(response.status(), 200);

    let calls: Value = http()
        .get(control("/calls"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let grants: Vec<&Value> = calls["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|call| &call["grant"])
        .collect();
    assert_eq!(
        grants,
        [&json!("client_secret"), &json!("workload_identity")]
    );
}

#[tokio::test]
async fn the_app_service_identity_endpoint_answers_with_expires_on_for_the_identity_header() {
    let emu = emulator().await;
    let ask = |query: &str, header: Option<String>| {
        let mut request = http().get(format!("{}?{query}", emu.identity_endpoint()));
        if let Some(header) = header {
            request = request.header("X-IDENTITY-HEADER", header);
        }
        request.send()
    };
    let query = "api-version=2019-08-01&resource=https://graph.microsoft.com";
    let response = ask(query, Some(emu.identity_header())).await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["client_id"], MANAGED_APP);
    assert_eq!(body["token_type"], "Bearer");
    assert!(body.get("expires_in").is_none(), "{body}");
    let expires_on: u64 = body["expires_on"].as_str().unwrap().parse().unwrap();
    assert!(expires_on > unix_now());
    let claims = validate(
        body["access_token"].as_str().unwrap(),
        &jwks(&emu).await,
        GRAPH_AUDIENCE,
        &sts_issuer(&emu),
    );
    assert_eq!(claims["appid"], MANAGED_APP);
    assert_eq!(last_token_call(&emu).path, "/msi/token");

    assert_eq!(ask(query, None).await.unwrap().status(), 401);
    assert_eq!(
        ask(query, Some("guess".into())).await.unwrap().status(),
        401
    );
    assert_eq!(
        ask(
            "api-version=2018-02-01&resource=https://graph.microsoft.com",
            Some(emu.identity_header())
        )
        .await
        .unwrap()
        .status(),
        400
    );
}

#[tokio::test]
async fn the_jobs_of_a_service_principal_are_listed_and_select_keeps_the_named_properties() {
    let emu = emulator().await;
    let token = graph_token(&emu, FACADE_APP, FACADE_SECRET).await;
    let list_url = format!(
        "{}/v1.0/servicePrincipals/{SERVICENOW_SP}/synchronization/jobs",
        emu.base_url()
    );
    let list: Value = http()
        .get(&list_url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let codes: Vec<&str> = list["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| job["status"]["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["Quarantine", "Active"]);
    assert!(
        list["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("/synchronization/jobs")
    );
    let selected: Value = http()
        .get(format!(
            "{}?$select=id,status",
            job_url(&emu, SERVICENOW_SP, SERVICENOW_JOB)
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(selected["id"], SERVICENOW_JOB);
    assert_eq!(
        selected["status"]["quarantine"]["reason"],
        "EncounteredQuarantineException"
    );
    assert!(
        selected.get("templateId").is_none() && selected.get("schedule").is_none(),
        "{selected}"
    );
    assert!(selected["@odata.context"].is_string());
    assert_eq!(emu.count(Operation::ListJobs), 1);
    // A start leaves its last execution on the job.
    let started = http()
        .post(format!(
            "{}/start",
            job_url(&emu, SERVICENOW_SP, SERVICENOW_JOB)
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 204);
    let job: Value = http()
        .get(job_url(&emu, SERVICENOW_SP, SERVICENOW_JOB))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(job["status"]["code"], "Active");
    assert!(
        job["status"]["lastExecution"]["timeBegan"].is_string(),
        "{job}"
    );
}

// The authorization code grant with PKCE, as the operator page signs in.

const OPERATOR_PAGE_APP: &str = "e4f5a6b7-c8d9-4e0f-9a1b-3c4d5e6f7a8b";
const OPERATOR_PAGE_URI: &str = "http://127.0.0.1:8080/ui";
const OPERATOR_PAGE_ORIGIN: &str = "http://127.0.0.1:8080";
const RITA: &str = "c2d3e4f5-a6b7-4c8d-9e0f-1a2b3c4d5e6f";
/// RFC 7636's appendix B pair.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn authorize_params(redirect_uri: &str) -> Vec<(&'static str, String)> {
    vec![
        ("client_id", OPERATOR_PAGE_APP.to_owned()),
        ("response_type", "code".to_owned()),
        ("redirect_uri", redirect_uri.to_owned()),
        (
            "scope",
            format!(
                "openid profile {}/Synchronization.ReadWrite.All",
                FACADE_AUDIENCE
            ),
        ),
        ("state", "the state".to_owned()),
        ("nonce", "the nonce".to_owned()),
        ("code_challenge", CHALLENGE.to_owned()),
        ("code_challenge_method", "S256".to_owned()),
    ]
}

fn authorize_url(emu: &Emulator) -> String {
    format!("{}/oauth2/v2.0/authorize", emu.authority())
}

/// An Entra error answered with `status`, whose description begins with Entra's `code`.
async fn assert_entra_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status(), status);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error_description"]
            .as_str()
            .unwrap()
            .starts_with(code),
        "{error}"
    );
    error
}

/// A 400 `invalid_grant` whose description begins with Entra's `code`.
async fn assert_invalid_grant(response: reqwest::Response, code: &str) {
    let error = assert_entra_error(response, 400, code).await;
    assert_eq!(error["error"], "invalid_grant");
}

/// Asks for the sign-in page, without following a redirect.
async fn get_authorize(emu: &Emulator, params: &[(&str, String)]) -> reqwest::Response {
    no_redirects()
        .get(authorize_url(emu))
        .query(params)
        .send()
        .await
        .unwrap()
}

/// Posts the sign-in page's form; where it redirects back to, and that address's query
/// parameters.
async fn post_authorize(
    emu: &Emulator,
    form: &[(&str, String)],
) -> (String, Vec<(String, String)>) {
    let response = no_redirects()
        .post(authorize_url(emu))
        .form(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303, "a redirect back to the application");
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let url = reqwest::Url::parse(&location).unwrap();
    let pairs = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    (location, pairs)
}

/// Signs in as `user` on the sign-in page's form; the redirect's query parameters.
async fn sign_in(
    emu: &Emulator,
    params: &[(&str, String)],
    user: &str,
) -> (String, Vec<(String, String)>) {
    let mut form: Vec<(&str, String)> = params.to_vec();
    form.push(("user", user.to_owned()));
    post_authorize(emu, &form).await
}

fn pair<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The page's code redemption at the token endpoint, from `origin`, with `extra` parameters.
async fn redeem_from(
    emu: &Emulator,
    origin: Option<&str>,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("client_id", OPERATOR_PAGE_APP),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier),
    ];
    form.extend_from_slice(extra);
    let mut request = http().post(emu.token_url()).form(&form);
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    request.send().await.unwrap()
}

async fn redeem(
    emu: &Emulator,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> reqwest::Response {
    redeem_from(
        emu,
        Some(OPERATOR_PAGE_ORIGIN),
        code,
        redirect_uri,
        verifier,
        &[],
    )
    .await
}

#[tokio::test]
async fn the_sign_in_page_lists_the_seeded_users_and_its_code_redeems_once_for_a_facade_token() {
    let emu = emulator().await;
    let params = authorize_params(OPERATOR_PAGE_URI);
    let page = get_authorize(&emu, &params).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    for name in [
        "Ada Admin",
        "Rita Reader",
        "Mia Mfa",
        "Gail Global Reader",
        "syncjob-facade operator page",
        "provisioning-portal (caller, full)",
        "hr-automation (caller, owned-by only)",
        "Application Administrator",
        "Global Reader</small>",
        "no directory role",
    ] {
        assert!(html.contains(name), "{name} on the page: {html}");
    }

    let (location, pairs) = sign_in(&emu, &params, ADA).await;
    assert!(
        location.starts_with(&format!("{OPERATOR_PAGE_URI}?")),
        "{location}"
    );
    assert_eq!(pair(&pairs, "state"), Some("the state"));
    let code = pair(&pairs, "code").expect("a code").to_owned();

    let response = redeem(&emu, &code, OPERATOR_PAGE_URI, VERIFIER).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        OPERATOR_PAGE_ORIGIN,
        "the page redeems its code cross-origin"
    );
    let body: Value = response.json().await.unwrap();
    let keys = jwks(&emu).await;
    let access = validate(
        body["access_token"].as_str().unwrap(),
        &keys,
        FACADE_AUDIENCE,
        &emu.issuer(),
    );
    assert_eq!(access["oid"], ADA);
    assert_eq!(access["scp"], "Synchronization.ReadWrite.All");
    assert_eq!(access["azp"], OPERATOR_PAGE_APP);
    assert_eq!(access["idtyp"], "user");
    assert_eq!(access["wids"], json!([APPLICATION_ADMINISTRATOR]));
    let id = validate(
        body["id_token"].as_str().unwrap(),
        &keys,
        OPERATOR_PAGE_APP,
        &emu.issuer(),
    );
    assert_eq!(id["nonce"], "the nonce");
    assert_eq!(id["name"], "Ada Admin");

    let again = redeem(&emu, &code, OPERATOR_PAGE_URI, VERIFIER).await;
    assert_invalid_grant(again, "AADSTS54005").await;
}

#[tokio::test]
async fn a_wrong_verifier_or_redirect_uri_is_refused_and_spends_the_code() {
    let emu = emulator().await;
    let params = authorize_params(OPERATOR_PAGE_URI);
    for (redirect_uri, verifier, code) in [
        (OPERATOR_PAGE_URI, "x".repeat(43), "AADSTS50148"),
        (OPERATOR_PAGE_URI, VERIFIER.to_owned() + "a", "AADSTS50148"),
        (
            "http://localhost:8080/ui",
            VERIFIER.to_owned(),
            "AADSTS500112",
        ),
    ] {
        let (_, pairs) = sign_in(&emu, &params, RITA).await;
        let issued = pair(&pairs, "code").unwrap().to_owned();
        let refused = redeem(&emu, &issued, redirect_uri, &verifier).await;
        assert_invalid_grant(refused, code).await;
        let retried = redeem(&emu, &issued, OPERATOR_PAGE_URI, VERIFIER).await;
        assert_eq!(retried.status(), 400, "a refused attempt spends the code");
    }
    let unknown = redeem(&emu, "no-such-code", OPERATOR_PAGE_URI, VERIFIER).await;
    let error: Value = unknown.json().await.unwrap();
    assert!(
        error["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS70000"),
        "{error}"
    );
}

#[tokio::test]
async fn an_unregistered_redirect_uri_is_shown_on_the_page_and_never_redirected_to() {
    let emu = emulator().await;
    let evil = "http://127.0.0.1:9/steal";
    let params = authorize_params(evil);
    for response in [
        get_authorize(&emu, &params).await,
        no_redirects()
            .post(authorize_url(&emu))
            .form(&[params.clone(), vec![("user", ADA.to_owned())]].concat())
            .send()
            .await
            .unwrap(),
    ] {
        assert_eq!(response.status(), 400);
        assert!(response.headers().get("location").is_none());
        let html = response.text().await.unwrap();
        assert!(html.contains("AADSTS50011"), "{html}");
    }

    // Registered at run time, as `dev` registers the page's own address.
    emu.allow_redirect_uri(OPERATOR_PAGE_APP, evil);
    let (location, _) = sign_in(&emu, &params, ADA).await;
    assert!(location.starts_with(evil), "{location}");
}

#[tokio::test]
async fn a_request_without_pkce_or_with_a_foreign_scope_goes_back_as_an_error_and_cancel_is_access_denied()
 {
    let emu = emulator().await;
    let without_pkce: Vec<_> = authorize_params(OPERATOR_PAGE_URI)
        .into_iter()
        .filter(|(k, _)| !k.starts_with("code_challenge"))
        .collect();
    let mut foreign_scope = authorize_params(OPERATOR_PAGE_URI);
    foreign_scope[3].1 = "https://graph.microsoft.com/User.Read".to_owned();
    let mut cancelled = authorize_params(OPERATOR_PAGE_URI);
    cancelled.push(("cancel", "1".to_owned()));
    for (params, error, description) in [
        (without_pkce, "invalid_request", "AADSTS9002325"),
        (foreign_scope, "invalid_scope", "AADSTS65005"),
        (cancelled, "access_denied", "AADSTS65004"),
    ] {
        let (location, pairs) = post_authorize(&emu, &params).await;
        assert_eq!(pair(&pairs, "error"), Some(error), "{location}");
        assert!(
            pair(&pairs, "error_description")
                .unwrap()
                .starts_with(description),
            "{location}"
        );
        assert_eq!(pair(&pairs, "state"), Some("the state"));
        assert_eq!(pair(&pairs, "code"), None);
    }
}

async fn redeem_with(
    emu: &Emulator,
    origin: Option<&str>,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let (_, pairs) = sign_in(emu, &authorize_params(OPERATOR_PAGE_URI), ADA).await;
    let code = pair(&pairs, "code").unwrap();
    redeem_from(emu, origin, code, OPERATOR_PAGE_URI, VERIFIER, extra).await
}

#[tokio::test]
async fn a_secret_on_the_public_client_or_a_redemption_without_an_origin_is_refused() {
    let emu = emulator().await;
    for (origin, extra, status, code) in [
        (
            Some(OPERATOR_PAGE_ORIGIN),
            &[("client_secret", "anything")][..],
            401,
            "AADSTS700025",
        ),
        (None, &[][..], 400, "AADSTS9002327"),
    ] {
        assert_entra_error(redeem_with(&emu, origin, extra).await, status, code).await;
    }
}

#[tokio::test]
async fn a_foreign_origin_gets_no_cors_header_so_its_page_cannot_read_the_answer() {
    let emu = emulator().await;
    let response = redeem_with(&emu, Some("http://127.0.0.1:9"), &[]).await;
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let registered = redeem_with(&emu, Some(OPERATOR_PAGE_ORIGIN), &[]).await;
    assert_eq!(
        registered.headers()["access-control-allow-origin"],
        OPERATOR_PAGE_ORIGIN
    );
}

#[tokio::test]
async fn a_malformed_challenge_or_a_client_that_is_no_single_page_application_gets_no_code() {
    let emu = emulator().await;
    let mut short = authorize_params(OPERATOR_PAGE_URI);
    short[6].1 = "x".to_owned();
    let (location, pairs) = post_authorize(&emu, &short).await;
    assert_eq!(pair(&pairs, "error"), Some("invalid_request"), "{location}");
    assert_eq!(pair(&pairs, "code"), None, "{location}");

    emu.allow_redirect_uri(PORTAL_APP, OPERATOR_PAGE_URI);
    let mut confidential = authorize_params(OPERATOR_PAGE_URI);
    confidential[0].1 = PORTAL_APP.to_owned();
    let response = get_authorize(&emu, &confidential).await;
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("AADSTS9002326"));
}

#[tokio::test]
async fn the_sign_in_lifetime_can_be_shortened_for_tests_of_expiry() {
    let emu = emulator().await;
    let shortened = http()
        .put(format!("{}/_emulator/sign-in-lifetime", emu.base_url()))
        .json(&json!({"seconds": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(shortened.status(), 204);
    let (_, pairs) = sign_in(&emu, &authorize_params(OPERATOR_PAGE_URI), ADA).await;
    let body: Value = redeem(
        &emu,
        pair(&pairs, "code").unwrap(),
        OPERATOR_PAGE_URI,
        VERIFIER,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["expires_in"], 5);
    let claims = validate(
        body["access_token"].as_str().unwrap(),
        &jwks(&emu).await,
        FACADE_AUDIENCE,
        &emu.issuer(),
    );
    let exp = claims["exp"].as_u64().unwrap();
    assert!((unix_now() + 3..=unix_now() + 5).contains(&exp), "{exp}");
}
