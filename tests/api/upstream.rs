//! Reaching Graph: retries that respect Graph, the circuit breaker, the outbound proxy.

use syncjob_emulator::{Fault, Operation};
use syncjob_facade::config::{ProxyConfig, Secret};

use crate::helpers::*;
use crate::proxy::ForwardProxy;

#[tokio::test]
async fn a_503_storm_is_retried_a_bounded_number_of_times_then_the_circuit_opens() {
    let app = spawn_app_with(|c, _| {
        c.graph.max_retries = 2;
        c.graph.breaker.failure_threshold = 2;
        c.graph.breaker.open_secs = 30;
        c.guard.preflight = false;
        c.guard.cooldown_secs = 0;
    })
    .await;
    app.emulator.inject(Fault {
        operation: Some(Operation::Start),
        status: Some(503),
        retry_after: Some("0".into()),
        times: Some(100),
        ..Fault::default()
    });
    let token = app.admin_token();
    for round in 1..=2 {
        let response = app.start_salesforce(&token).await;
        assert_eq!(response.status(), 503, "Graph's 503 passed through");
        assert_eq!(
            app.emulator.count(Operation::Start),
            3 * round,
            "one attempt and two retries each"
        );
    }
    let started = std::time::Instant::now();
    let response = app.start_salesforce(&token).await;
    assert!(
        response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    let body = assert_error(response, 503, "ServiceUnavailable").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("circuit open")
    );
    assert_eq!(
        app.emulator.count(Operation::Start),
        6,
        "the open circuit sends nothing"
    );
    println!(
        "circuit-open answer in {} ms",
        started.elapsed().as_millis()
    );
    let ready: serde_json::Value = app
        .http
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        ready["graphCircuit"], "open",
        "Graph failing does not make the facade unready, but it is reported"
    );
}

#[tokio::test]
async fn the_circuit_lets_a_trial_through_after_the_open_period_and_closes_on_success() {
    let app = spawn_app_with(|c, _| {
        c.graph.max_retries = 0;
        c.graph.breaker.failure_threshold = 1;
        c.graph.breaker.open_secs = 1;
        c.guard.preflight = false;
        c.guard.cooldown_secs = 0;
    })
    .await;
    app.emulator.inject(Fault {
        operation: Some(Operation::Start),
        status: Some(502),
        ..Fault::default()
    });
    let token = app.admin_token();
    assert_eq!(app.start_salesforce(&token).await.status(), 502);
    assert_error(
        app.start_salesforce(&token).await,
        503,
        "ServiceUnavailable",
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        app.start_salesforce(&token).await.status(),
        204,
        "the trial succeeds"
    );
    assert_eq!(
        app.start_salesforce(&token).await.status(),
        204,
        "closed again"
    );
    assert_eq!(app.emulator.count(Operation::Start), 3);
}

#[tokio::test]
async fn retry_after_one_second_is_waited_out_between_the_two_attempts() {
    let app = spawn_app_with(|c, _| c.guard.preflight = false).await;
    app.emulator.inject(Fault {
        operation: Some(Operation::Start),
        status: Some(429),
        retry_after: Some("1".into()),
        ..Fault::default()
    });
    let started = std::time::Instant::now();
    assert_eq!(app.start_salesforce(&app.admin_token()).await.status(), 204);
    let elapsed = started.elapsed();
    assert_eq!(app.emulator.count(Operation::Start), 2);
    assert!(
        elapsed >= std::time::Duration::from_millis(1000),
        "{elapsed:?}"
    );
    println!(
        "429 Retry-After: 1 then 204: two attempts, {} ms in all",
        elapsed.as_millis()
    );
}

#[tokio::test]
async fn graph_calls_go_through_the_configured_proxy_with_its_credentials() {
    let proxy = ForwardProxy::spawn("svc-syncjob", "proxy-pass").await;
    let password_file = std::env::temp_dir().join(format!("syncjob-proxy-{}", std::process::id()));
    std::fs::write(&password_file, "proxy-pass\n").unwrap();
    let url = proxy.url.clone();
    let app = spawn_app_with(move |c, _| {
        c.graph.proxy = Some(ProxyConfig {
            url,
            username: Some("svc-syncjob".into()),
            password: None,
            password_file: Some(password_file),
            no_proxy: vec![],
        });
    })
    .await;
    assert_eq!(app.start_salesforce(&app.admin_token()).await.status(), 204);
    let forwarded = proxy.forwarded();
    assert!(
        forwarded
            .iter()
            .any(|l| l.starts_with("POST ") && l.ends_with("/start")),
        "{forwarded:?}"
    );
    assert!(
        forwarded.iter().any(|l| l.contains("/oauth2/v2.0/token")),
        "token requests too: {forwarded:?}"
    );
    assert_eq!(
        *proxy.refused.lock().unwrap(),
        0,
        "every request carried the proxy credentials"
    );
}

#[tokio::test]
async fn no_proxy_hosts_bypass_the_proxy() {
    let proxy = ForwardProxy::spawn("u", "p").await;
    let url = proxy.url.clone();
    let app = spawn_app_with(move |c, _| {
        c.graph.proxy = Some(ProxyConfig {
            url,
            username: Some("u".into()),
            password: Some(Secret::new("p")),
            password_file: None,
            no_proxy: vec!["127.0.0.1".into()],
        });
    })
    .await;
    assert_eq!(app.start_salesforce(&app.admin_token()).await.status(), 204);
    assert!(proxy.forwarded().is_empty());
}
