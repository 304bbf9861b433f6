//! Signed webhooks: Standard Webhooks and GitHub signatures, redelivery, bad input.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use syncjob_emulator::Operation;
use syncjob_facade::config::{Secret, WebhookConfig, WebhookScheme, WebhookTarget};
use syncjob_facade::ids::{ApiVersion, JobId, ServicePrincipalId};

use crate::helpers::*;

const KEY: &[u8] = b"a 32-byte key for the test hook!";
const GITHUB_SECRET: &str = "github hook secret";

fn whsec() -> String {
    format!("whsec_{}", STANDARD.encode(KEY))
}

fn target(sp: &str, job: &str) -> WebhookTarget {
    WebhookTarget {
        service_principal_id: ServicePrincipalId::parse(sp).unwrap(),
        synchronization_job_id: JobId::parse(job).unwrap(),
    }
}

fn hook(
    name: &str,
    scheme: WebhookScheme,
    secrets: Vec<String>,
    allow_bearer: bool,
    targets: Vec<WebhookTarget>,
) -> WebhookConfig {
    WebhookConfig {
        name: name.into(),
        scheme,
        secrets: secrets.into_iter().map(Secret::new).collect(),
        secrets_file: None,
        allow_bearer,
        api_version: ApiVersion::V1,
        targets,
    }
}

async fn app_with_hooks() -> TestApp {
    spawn_app_with(|c, _| {
        c.server.body_limit_bytes = 4096;
        c.webhooks = vec![
            hook(
                "quarantine-alert",
                WebhookScheme::Standard,
                vec!["whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(), whsec()],
                false,
                vec![
                    target(SERVICENOW_SP, SERVICENOW_JOB),
                    target(SALESFORCE_SP, SALESFORCE_JOB),
                ],
            ),
            hook(
                "github",
                WebhookScheme::Github,
                vec![GITHUB_SECRET.into()],
                false,
                vec![target(SALESFORCE_SP, SALESFORCE_JOB)],
            ),
            hook(
                "azure-monitor",
                WebhookScheme::Standard,
                vec![],
                true,
                vec![target(SALESFORCE_SP, SALESFORCE_JOB)],
            ),
        ];
    })
    .await
}

/// GitHub's `X-Hub-Signature-256` for `body`, computed here independently of the facade.
fn github_signature(body: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(GITHUB_SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Standard Webhooks signature, computed here independently of the facade.
fn sign(id: &str, timestamp: u64, body: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(KEY).unwrap();
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

async fn deliver(
    app: &TestApp,
    name: &str,
    headers: &[(&str, String)],
    body: &str,
) -> reqwest::Response {
    let mut request = app
        .http
        .post(format!("{}/hooks/{name}", app.base))
        .header("content-type", "application/json")
        .body(body.to_owned());
    for (header, value) in headers {
        request = request.header(*header, value);
    }
    request.send().await.unwrap()
}

fn signed(id: &str, body: &str) -> Vec<(&'static str, String)> {
    let timestamp = now();
    vec![
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", sign(id, timestamp, body)),
    ]
}

#[tokio::test]
async fn a_signed_delivery_starts_the_hooks_targets_and_answers_202_with_a_summary() {
    let app = app_with_hooks().await;
    // The payload names another job: it is verified, never used to choose a target.
    let body = json!({"alert": "quarantined", "servicePrincipalId": "00000000-0000-4000-8000-000000000000"}).to_string();
    let response = deliver(&app, "quarantine-alert", &signed("msg_1", &body), &body).await;
    assert_eq!(response.status(), 202);
    let summary: Value = response.json().await.unwrap();
    assert_eq!(summary["deliveryId"], "msg_1");
    let outcomes: Vec<&str> = summary["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["started", "started"]);
    assert_eq!(app.emulator.count(Operation::Start), 2);
    assert_eq!(
        app.emulator
            .job_status(SERVICENOW_SP, SERVICENOW_JOB)
            .as_deref(),
        Some("Active")
    );
}

#[tokio::test]
async fn a_redelivery_returns_the_first_answer_and_starts_nothing() {
    let app = app_with_hooks().await;
    let body = r#"{"n":1}"#;
    let first: Value = deliver(&app, "quarantine-alert", &signed("msg_2", body), body)
        .await
        .json()
        .await
        .unwrap();
    let again = deliver(&app, "quarantine-alert", &signed("msg_2", body), body).await;
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    assert_eq!(app.emulator.count(Operation::Start), 2);
}

#[tokio::test]
async fn a_start_held_back_by_the_guard_is_reported_suppressed_and_still_202() {
    let app = app_with_hooks().await;
    let body = "{}";
    assert_eq!(
        deliver(&app, "quarantine-alert", &signed("msg_3", body), body)
            .await
            .status(),
        202
    );
    let response = deliver(&app, "quarantine-alert", &signed("msg_4", body), body).await;
    assert_eq!(response.status(), 202);
    let summary: Value = response.json().await.unwrap();
    for result in summary["results"].as_array().unwrap() {
        assert_eq!(result["outcome"], "suppressed", "{result}");
        assert_eq!(result["reason"], "SyncJobStartCooldown");
    }
    assert_eq!(app.emulator.count(Operation::Start), 2);
}

#[tokio::test]
async fn bad_signatures_stale_timestamps_and_unknown_hooks_start_nothing() {
    let app = app_with_hooks().await;
    let body = r#"{"n":1}"#;
    let ts = now().to_string();
    let good = sign("msg_5", now(), body);
    type Headers = Vec<(&'static str, String)>;
    let cases: Vec<(&str, Headers, u16)> = vec![
        (
            "wrong signature",
            vec![
                ("webhook-id", "msg_5".into()),
                ("webhook-timestamp", ts.clone()),
                ("webhook-signature", sign("msg_5", now(), "other body")),
            ],
            401,
        ),
        ("no headers", vec![], 401),
        (
            "no signature",
            vec![
                ("webhook-id", "msg_5".into()),
                ("webhook-timestamp", ts.clone()),
            ],
            401,
        ),
        (
            "malformed list",
            vec![
                ("webhook-id", "msg_5".into()),
                ("webhook-timestamp", ts.clone()),
                ("webhook-signature", "v1 garbage,,".into()),
            ],
            401,
        ),
        (
            "non-numeric timestamp",
            vec![
                ("webhook-id", "msg_5".into()),
                ("webhook-timestamp", "yesterday".into()),
                ("webhook-signature", good.clone()),
            ],
            401,
        ),
        (
            "stale timestamp",
            vec![
                ("webhook-id", "msg_5".into()),
                ("webhook-timestamp", (now() - 330).to_string()),
                ("webhook-signature", sign("msg_5", now() - 330, body)),
            ],
            401,
        ),
        (
            "future timestamp",
            vec![
                ("webhook-id", "msg_5".into()),
                ("webhook-timestamp", (now() + 330).to_string()),
                ("webhook-signature", sign("msg_5", now() + 330, body)),
            ],
            401,
        ),
    ];
    for (what, headers, status) in cases {
        let response = deliver(&app, "quarantine-alert", &headers, body).await;
        assert_eq!(response.status().as_u16(), status, "{what}");
        let envelope: Value = response.json().await.unwrap();
        assert_eq!(
            envelope["error"]["code"], "InvalidWebhookSignature",
            "{what}: {envelope}"
        );
    }
    assert_error(
        deliver(&app, "no-such-hook", &signed("msg_6", body), body).await,
        404,
        "NotFound",
    )
    .await;
    let big = "x".repeat(5000);
    assert_error(
        deliver(&app, "quarantine-alert", &signed("msg_7", &big), &big).await,
        413,
        "RequestEntityTooLarge",
    )
    .await;
    assert_eq!(
        app.emulator.count(Operation::Start) + app.emulator.count(Operation::GetJob),
        0
    );
}

#[tokio::test]
async fn a_github_signed_delivery_starts_and_a_redelivery_replays() {
    let app = app_with_hooks().await;
    let body = r#"{"action":"completed"}"#;
    let signature = github_signature(body);
    let headers = vec![
        (
            "X-GitHub-Delivery",
            "72d3162e-cc78-11e3-81ab-4c9367dc0958".to_owned(),
        ),
        ("X-Hub-Signature-256", signature),
    ];
    let first = deliver(&app, "github", &headers, body).await;
    assert_eq!(first.status(), 202);
    let again = deliver(&app, "github", &headers, body).await;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(app.emulator.count(Operation::Start), 1);
    let forged = vec![
        ("X-GitHub-Delivery", "another".to_owned()),
        ("X-Hub-Signature-256", format!("sha256={}", "0".repeat(64))),
    ];
    assert_eq!(deliver(&app, "github", &forged, body).await.status(), 401);
}

#[tokio::test]
async fn a_bearer_hook_authorises_the_token_like_any_caller() {
    let app = app_with_hooks().await;
    let url = format!("{}/hooks/azure-monitor", app.base);
    assert_error(
        app.http.post(&url).body("{}").send().await.unwrap(),
        401,
        "InvalidAuthenticationToken",
    )
    .await;
    let reader = app
        .emulator
        .mint(&app.emulator.delegated_claims(READER_OID));
    // Refused before anything else: 403, and the (unsigned) delivery id it named is not claimed.
    let refused = app
        .http
        .post(&url)
        .bearer_auth(reader)
        .header("webhook-id", "msg_42")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_error(refused, 403, "Authorization_RequestDenied").await;
    assert_eq!(app.emulator.count(Operation::Start), 0);
    let response = app
        .http
        .post(&url)
        .bearer_auth(app.app_token())
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let summary: Value = response.json().await.unwrap();
    assert_eq!(summary["results"][0]["outcome"], "started");
    assert_eq!(app.emulator.count(Operation::Start), 1);
}

#[tokio::test]
async fn an_unauthorised_bearer_sender_cannot_block_a_signed_delivery_id() {
    let app = spawn_app_with(|c, _| {
        c.webhooks = vec![hook(
            "both",
            WebhookScheme::Standard,
            vec![whsec()],
            true,
            vec![target(SALESFORCE_SP, SALESFORCE_JOB)],
        )];
    })
    .await;
    let reader = app
        .emulator
        .mint(&app.emulator.delegated_claims(READER_OID));
    let url = format!("{}/hooks/both", app.base);
    app.http
        .post(&url)
        .bearer_auth(reader)
        .header("webhook-id", "msg_9")
        .body("{}")
        .send()
        .await
        .unwrap();
    let body = "{}";
    let signed_delivery = deliver(&app, "both", &signed("msg_9", body), body).await;
    assert_eq!(signed_delivery.status(), 202);
    assert!(
        signed_delivery
            .headers()
            .get("idempotent-replayed")
            .is_none()
    );
    assert_eq!(app.emulator.count(Operation::Start), 1);
}

#[tokio::test]
async fn a_captured_github_delivery_sent_again_under_a_new_id_starts_nothing() {
    let app = app_with_hooks().await;
    let body = r#"{"action":"completed"}"#;
    let signature = github_signature(body);
    for id in ["a1", "a2", "a3"] {
        let response = deliver(
            &app,
            "github",
            &[
                ("X-GitHub-Delivery", id.to_owned()),
                ("X-Hub-Signature-256", signature.clone()),
            ],
            body,
        )
        .await;
        assert_eq!(response.status(), 202);
    }
    assert_eq!(app.emulator.count(Operation::Start), 1);
}

#[tokio::test]
async fn a_start_that_failed_for_a_retriable_reason_asks_for_a_redelivery() {
    use syncjob_emulator::Fault;
    let app = spawn_app_with(|c, _| {
        c.graph.max_retries = 0;
        c.webhooks = vec![hook(
            "one",
            WebhookScheme::Standard,
            vec![whsec()],
            false,
            vec![target(SALESFORCE_SP, SALESFORCE_JOB)],
        )];
    })
    .await;
    app.emulator.inject(Fault {
        operation: Some(Operation::Start),
        status: Some(503),
        ..Fault::default()
    });
    let body = "{}";
    let first = deliver(&app, "one", &signed("msg_r", body), body).await;
    assert!(first.headers().contains_key("retry-after"));
    assert_error(first, 503, "ServiceUnavailable").await;
    let redelivered = deliver(&app, "one", &signed("msg_r", body), body).await;
    assert_eq!(redelivered.status(), 202);
    let summary: Value = redelivered.json().await.unwrap();
    assert_eq!(summary["results"][0]["outcome"], "started");
    assert_eq!(app.emulator.count(Operation::Start), 2);
}

#[tokio::test]
async fn a_bearer_senders_webhook_id_is_held_to_the_signed_ids_bounds() {
    let app = app_with_hooks().await;
    let url = format!("{}/hooks/azure-monitor", app.base);
    for id in ["a".repeat(5000), "a".repeat(256), "has space".into()] {
        let refused = app
            .http
            .post(&url)
            .bearer_auth(app.app_token())
            .header("webhook-id", id.as_str())
            .body("{}")
            .send()
            .await
            .unwrap();
        let body = assert_error(refused, 400, "BadRequest").await;
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("1 to 255 visible ASCII"),
            "{body}"
        );
    }
    assert_eq!(app.emulator.count(Operation::Start), 0);
    let accepted = app
        .http
        .post(&url)
        .bearer_auth(app.app_token())
        .header("webhook-id", "a".repeat(255))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 202);
}
