//! The edge: per-caller rate limit, load shedding, CORS, security headers.

use syncjob_emulator::{Fault, Operation};

use crate::helpers::*;

#[tokio::test]
async fn a_caller_over_its_rate_gets_429_with_retry_after_and_others_do_not() {
    let app = spawn_app_with(|c, _| {
        c.server.rate_limit_per_minute = 6;
        c.server.rate_limit_burst = 2;
    })
    .await;
    let token = app.admin_token();
    let path = format!(
        "{}?whatIf=true",
        TestApp::start_path(SALESFORCE_SP, SALESFORCE_JOB)
    );
    assert_eq!(app.post(&path, Some(&token)).await.status(), 200);
    assert_eq!(app.post(&path, Some(&token)).await.status(), 200);
    let response = app.post(&path, Some(&token)).await;
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&retry_after), "{retry_after}");
    assert_error(response, 429, "TooManyRequests").await;
    assert_eq!(
        app.post(&path, Some(&app.app_token())).await.status(),
        200,
        "another caller has its own budget"
    );
}

#[tokio::test]
async fn starts_beyond_the_concurrency_limit_are_shed_with_503() {
    let app = spawn_app_with(|c, _| c.server.max_concurrent_starts = 1).await;
    app.emulator.inject(Fault {
        operation: Some(Operation::Start),
        delay_ms: Some(600),
        ..Fault::default()
    });
    let slow = tokio::spawn(
        app.http
            .post(format!(
                "{}{}",
                app.base,
                TestApp::start_path(SALESFORCE_SP, SALESFORCE_JOB)
            ))
            .bearer_auth(app.admin_token())
            .send(),
    );
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let shed = app
        .post(
            &TestApp::start_path(SERVICENOW_SP, SERVICENOW_JOB),
            Some(&app.admin_token()),
        )
        .await;
    assert!(shed.headers().contains_key("retry-after"));
    assert_error(shed, 503, "ServiceUnavailable").await;
    assert_eq!(slow.await.unwrap().unwrap().status(), 204);
    assert_eq!(
        app.post(
            &TestApp::start_path(SERVICENOW_SP, SERVICENOW_JOB),
            Some(&app.admin_token())
        )
        .await
        .status(),
        204,
        "a place is free again"
    );
}

#[tokio::test]
async fn cors_is_off_by_default_and_answers_preflights_for_configured_origins() {
    let preflight = |app: &TestApp| {
        app.http
            .request(reqwest::Method::OPTIONS, format!("{}/start", app.base))
            .header("origin", "https://portal.contoso.example")
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let off = spawn_app().await;
    assert!(
        preflight(&off)
            .await
            .unwrap()
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let on = spawn_app_with(|c, _| {
        c.server.cors_allowed_origins = vec!["https://portal.contoso.example".into()]
    })
    .await;
    let response = preflight(&on).await.unwrap();
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://portal.contoso.example"
    );
    let other = on
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/start", on.base))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn the_docs_are_served_with_security_headers() {
    let app = spawn_app().await;
    let response = app
        .http
        .get(format!("{}/docs/", app.base))
        .send()
        .await
        .unwrap();
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(response.headers()["x-frame-options"], "DENY");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
}

#[tokio::test]
async fn without_cors_an_options_request_is_an_ordinary_405_in_the_envelope() {
    let app = spawn_app().await;
    let response = app
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/start", app.base))
        .header("origin", "https://portal.contoso.example")
        .send()
        .await
        .unwrap();
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    assert_error(response, 405, "MethodNotAllowed").await;
}
