//! The facade's own Graph credential.

use serde_json::json;
use syncjob_emulator::{GRAPH_AUDIENCE, Operation};
use syncjob_facade::config::{CredentialKind, Secret};

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
    let response = app.start_salesforce(&app.admin_token()).await;
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
    let response = app.start_salesforce(&app.admin_token()).await;
    let body = assert_error(response, 502, "BadGateway").await;
    assert!(!body.to_string().contains("not-the-secret"));
    assert_eq!(app.emulator.count(Operation::Start), 0);
}

const CERTIFICATE_CLIENT_ID: &str = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d";
const WORKLOAD_CLIENT_ID: &str = "b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e";
const MANAGED_IDENTITY_CLIENT_ID: &str = "c3d4e5f6-a7b8-4c9d-8e0f-2a3b4c5d6e7f";
const MFA_OID: &str = "d3e4f5a6-b7c8-4d9e-8f0a-1b2c3d4e5f6a";

fn grants(app: &TestApp) -> Vec<String> {
    app.emulator
        .calls()
        .into_iter()
        .filter(|c| c.operation == Operation::Token)
        .filter_map(|c| c.grant)
        .collect()
}

/// A start answered 204, the one token request used `grant`, and Graph saw `client_id`'s token.
async fn assert_started_with(app: &TestApp, grant: &str, client_id: &str) {
    assert_eq!(app.start_salesforce(&app.admin_token()).await.status(), 204);
    assert_eq!(grants(app), [grant]);
    assert_eq!(start_call(app).token_app_id.as_deref(), Some(client_id));
}

fn start_call(app: &TestApp) -> syncjob_emulator::RecordedCall {
    app.emulator
        .calls()
        .into_iter()
        .find(|c| c.operation == Operation::Start)
        .expect("a start reached Graph")
}

#[tokio::test]
async fn a_certificate_credential_signs_a_client_assertion_that_entra_accepts() {
    let app = spawn_app_with(|c, _| {
        c.graph.credential.kind = CredentialKind::ClientCertificate;
        c.graph.credential.client_id = Some(CERTIFICATE_CLIENT_ID.into());
        c.graph.credential.client_secret = None;
        c.graph.credential.certificate_file = Some(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/graph-credential.pem"
            )
            .into(),
        );
    })
    .await;
    assert_started_with(&app, "client_certificate", CERTIFICATE_CLIENT_ID).await;
}

#[tokio::test]
async fn workload_identity_reads_the_federated_token_file_when_it_needs_a_token() {
    let file = std::env::temp_dir().join(format!("syncjob-federated-{}", std::process::id()));
    let _ = std::fs::remove_file(&file);
    let path = file.clone();
    let app = spawn_app_with(move |c, _| {
        c.graph.credential.kind = CredentialKind::WorkloadIdentity;
        c.graph.credential.client_id = Some(WORKLOAD_CLIENT_ID.into());
        c.graph.credential.client_secret = None;
        c.graph.credential.federated_token_file = Some(path);
    })
    .await;
    // Written after start-up, as the kubelet projects it: read at refresh, not at start.
    std::fs::write(
        &file,
        app.emulator
            .federated_token("system:serviceaccount:identity:syncjob-facade", 3600),
    )
    .unwrap();
    assert_started_with(&app, "workload_identity", WORKLOAD_CLIENT_ID).await;
}

#[tokio::test]
async fn managed_identity_gets_its_token_from_the_metadata_endpoint() {
    let app = spawn_app_with(|c, emulator| {
        c.graph.credential.kind = CredentialKind::ManagedIdentity;
        c.graph.credential.client_id = None;
        c.graph.credential.client_secret = None;
        c.graph.credential.endpoint = Some(format!(
            "{}/metadata/identity/oauth2/token",
            emulator.base_url()
        ));
    })
    .await;
    assert_started_with(&app, "managed_identity", MANAGED_IDENTITY_CLIENT_ID).await;
}

#[tokio::test]
async fn managed_identity_on_app_service_and_container_apps_uses_identity_endpoint_and_header() {
    let app = spawn_app_with(|c, emulator| {
        c.graph.credential.kind = CredentialKind::ManagedIdentity;
        c.graph.credential.client_id = None;
        c.graph.credential.client_secret = None;
        // What those platforms put in the environment, picked up as `serve` does.
        let (endpoint, header) = (emulator.identity_endpoint(), emulator.identity_header());
        c.graph.credential.apply_platform(&|name| match name {
            "IDENTITY_ENDPOINT" => Some(endpoint.clone()),
            "IDENTITY_HEADER" => Some(header.clone()),
            _ => None,
        });
    })
    .await;
    assert_started_with(&app, "managed_identity", MANAGED_IDENTITY_CLIENT_ID).await;
    let token_call = app
        .emulator
        .calls()
        .into_iter()
        .find(|c| c.operation == Operation::Token)
        .unwrap();
    assert!(
        token_call.path.starts_with("/msi/token"),
        "{}",
        token_call.path
    );
}

#[tokio::test]
async fn a_wrong_identity_header_gets_no_token_and_the_start_fails_as_502() {
    let app = spawn_app_with(|c, emulator| {
        c.graph.credential.kind = CredentialKind::ManagedIdentity;
        c.graph.credential.client_id = None;
        c.graph.credential.client_secret = None;
        c.graph.credential.endpoint = Some(emulator.identity_endpoint());
        c.graph.credential.identity_header = Some(Secret::new("not-the-header"));
    })
    .await;
    assert_error(
        app.start_salesforce(&app.admin_token()).await,
        502,
        "BadGateway",
    )
    .await;
    assert_eq!(app.emulator.count(Operation::Start), 0);
}

#[tokio::test]
async fn on_behalf_of_starts_as_the_user_and_caches_the_exchanged_token() {
    let app = spawn_app_with(|c, _| {
        c.graph.on_behalf_of = true;
        c.guard.cooldown_secs = 0;
    })
    .await;
    let token = app.admin_token();
    assert_eq!(app.start_salesforce(&token).await.status(), 204);
    let start = start_call(&app);
    assert_eq!(
        start.token_object_id.as_deref(),
        Some(ADMIN_OID),
        "Graph saw the user"
    );
    assert_eq!(start.token_idtyp.as_deref(), Some("user"));
    assert_eq!(
        app.post(
            &TestApp::start_path(SERVICENOW_SP, SERVICENOW_JOB),
            Some(&token)
        )
        .await
        .status(),
        204
    );
    assert_eq!(
        grants(&app).iter().filter(|g| *g == "on_behalf_of").count(),
        1,
        "one exchange per caller token"
    );
}

#[tokio::test]
async fn on_behalf_of_leaves_application_callers_on_the_facades_credential() {
    let app = spawn_app_with(|c, _| c.graph.on_behalf_of = true).await;
    assert_eq!(app.start_salesforce(&app.app_token()).await.status(), 204);
    let start = start_call(&app);
    assert_eq!(start.token_app_id.as_deref(), Some(FACADE_CLIENT_ID));
    assert_eq!(start.token_idtyp.as_deref(), Some("app"));
    assert!(!grants(&app).iter().any(|g| g == "on_behalf_of"));
}

#[tokio::test]
async fn on_behalf_of_returns_the_claims_challenge_when_the_user_needs_mfa() {
    use base64::Engine;
    let app = spawn_app_with(|c, _| c.graph.on_behalf_of = true).await;
    let token = app.emulator.mint(&app.emulator.delegated_claims(MFA_OID));
    let response = app.start_salesforce(&token).await;
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains(r#"error="insufficient_claims""#),
        "{challenge}"
    );
    let claims = challenge
        .split("claims=\"")
        .nth(1)
        .unwrap()
        .trim_end_matches('"');
    let decoded = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(claims)
            .unwrap(),
    )
    .unwrap();
    assert!(decoded.contains("capolids"), "{decoded}");
    assert_error(response, 401, "InvalidAuthenticationToken").await;
    assert_eq!(app.emulator.count(Operation::Start), 0);
}

#[tokio::test]
async fn with_on_behalf_of_graph_enforces_the_directory_role() {
    let app = spawn_app_with(|c, _| c.graph.on_behalf_of = true).await;
    let reader = app
        .emulator
        .mint(&app.emulator.delegated_claims(READER_OID));
    let response = app.start_salesforce(&reader).await;
    assert_eq!(response.status(), 403, "Graph's refusal, passed through");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "Authorization_RequestDenied");
    let get = app
        .emulator
        .calls()
        .into_iter()
        .find(|c| c.operation == Operation::GetJob)
        .expect("the facade forwarded as the user");
    assert_eq!(get.token_object_id.as_deref(), Some(READER_OID));
}
