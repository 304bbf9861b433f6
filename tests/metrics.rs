//! `/metrics`: each metric family, driven by the behaviour it counts. Metrics are global to a
//! process, so these run in a test binary of their own, one scenario after another: nothing
//! else moves the counters while a scenario compares before and after.

use syncjob_emulator::{Fault, Operation};

#[allow(dead_code)]
#[path = "api/helpers.rs"]
mod helpers;

use helpers::*;

/// The sum of the samples of `name` whose labels include every `labels` pair.
async fn metric(app: &TestApp, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| line.split(['{', ' ']).next() == Some(name))
        .filter(|line| {
            labels
                .iter()
                .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The values of several families, read in one order.
async fn samples(app: &TestApp, families: &[(&str, &[(&str, &str)])]) -> Vec<f64> {
    let mut values = Vec::with_capacity(families.len());
    for (name, labels) in families {
        values.push(metric(app, name, labels).await);
    }
    values
}

async fn a_start_is_counted_in_requests_decisions_graph_calls_and_the_token_cache() {
    let app = spawn_app().await;
    // The first family counts exactly this request; for the others at least one more is enough.
    let families: [(&str, &[(&str, &str)]); 7] = [
        (
            "syncjob_http_requests_total",
            &[("route", "/{version}/{*rest}"), ("status", "204")],
        ),
        (
            "syncjob_start_decisions_total",
            &[("decision", "forwarded")],
        ),
        (
            "syncjob_graph_requests_total",
            &[("operation", "start"), ("status", "204")],
        ),
        (
            "syncjob_graph_request_duration_seconds_count",
            &[("operation", "start")],
        ),
        // The preflight read fetched the token (a refresh), the start reused it (a hit).
        ("syncjob_graph_token_cache_total", &[("result", "hit")]),
        (
            "syncjob_graph_token_refreshes_total",
            &[("kind", "app"), ("result", "ok")],
        ),
        (
            "syncjob_http_request_duration_seconds_count",
            &[("route", "/{version}/{*rest}")],
        ),
    ];
    let before = samples(&app, &families).await;
    assert_eq!(app.start_salesforce(&app.admin_token()).await.status(), 204);
    let after = samples(&app, &families).await;
    assert!(after[0] == before[0] + 1.0, "{}", families[0].0);
    for (i, (name, _)) in families.iter().enumerate().skip(1) {
        assert!(after[i] >= before[i] + 1.0, "{name}");
    }
    assert!(
        metric(&app, "syncjob_jwks_fetches_total", &[("result", "ok")]).await >= 1.0,
        "keys were fetched at start-up"
    );
}

async fn a_failed_key_fetch_is_counted() {
    let before = {
        let probe = spawn_app().await;
        metric(&probe, "syncjob_jwks_fetches_total", &[("result", "error")]).await
    };
    let app = spawn_app_with(|c, _| {
        c.auth.openid_config_url = Some("http://127.0.0.1:9/nothing".parse().unwrap())
    })
    .await;
    // Start-up tries once and the background refresher retries: at least one error.
    assert!(
        metric(&app, "syncjob_jwks_fetches_total", &[("result", "error")]).await >= before + 1.0
    );
}

async fn refusals_are_counted_by_decision() {
    let app = spawn_app().await;
    let decision = |d: &'static str| [("decision", d)];
    let (denied, cooldown, active, what_if) = (
        metric(&app, "syncjob_start_decisions_total", &decision("denied")).await,
        metric(&app, "syncjob_start_decisions_total", &decision("cooldown")).await,
        metric(&app, "syncjob_start_decisions_total", &decision("active")).await,
        metric(&app, "syncjob_start_decisions_total", &decision("whatIf")).await,
    );
    let token = app.admin_token();
    let reader = app
        .emulator
        .mint(&app.emulator.delegated_claims(READER_OID));
    app.start_salesforce(&reader).await;
    app.start_salesforce(&token).await;
    app.emulator
        .set_job_status(SALESFORCE_SP, SALESFORCE_JOB, "Paused");
    app.start_salesforce(&token).await;
    app.post(
        &TestApp::start_path(SERVICENOW_SP, SERVICENOW_ACTIVE_JOB),
        Some(&token),
    )
    .await;
    app.post(
        &format!(
            "{}?whatIf=true",
            TestApp::start_path(SERVICENOW_SP, SERVICENOW_JOB)
        ),
        Some(&token),
    )
    .await;
    assert!(
        metric(&app, "syncjob_start_decisions_total", &decision("denied")).await == denied + 1.0
    );
    assert!(
        metric(&app, "syncjob_start_decisions_total", &decision("cooldown")).await
            >= cooldown + 1.0
    );
    assert!(
        metric(&app, "syncjob_start_decisions_total", &decision("active")).await == active + 1.0
    );
    assert!(
        metric(&app, "syncjob_start_decisions_total", &decision("whatIf")).await == what_if + 1.0
    );
}

async fn concurrent_starts_count_as_coalesced() {
    let app = spawn_app().await;
    let before = metric(
        &app,
        "syncjob_start_decisions_total",
        &[("decision", "coalesced")],
    )
    .await;
    app.emulator.inject(Fault {
        operation: Some(Operation::Start),
        delay_ms: Some(300),
        ..Fault::default()
    });
    let token = app.admin_token();
    let url = format!(
        "{}{}",
        app.base,
        TestApp::start_path(SALESFORCE_SP, SALESFORCE_JOB)
    );
    let tasks: Vec<_> = (0..5)
        .map(|_| tokio::spawn(app.http.post(url.clone()).bearer_auth(token.clone()).send()))
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert!(
        metric(
            &app,
            "syncjob_start_decisions_total",
            &[("decision", "coalesced")]
        )
        .await
            >= before + 1.0
    );
}

async fn guard_store_errors_and_the_circuit_breaker_are_counted() {
    let app = spawn_app_with(|c, _| {
        c.graph.max_retries = 0;
        c.graph.breaker.failure_threshold = 1;
        c.guard.preflight = false;
    })
    .await;
    let opened = metric(&app, "syncjob_graph_circuit_opened_total", &[]).await;
    app.emulator.inject(Fault {
        operation: Some(Operation::Start),
        status: Some(502),
        ..Fault::default()
    });
    assert_eq!(app.start_salesforce(&app.admin_token()).await.status(), 502);
    assert!(metric(&app, "syncjob_graph_circuit_opened_total", &[]).await == opened + 1.0);
    assert!(
        app.http
            .get(format!("{}/metrics", app.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .contains("syncjob_graph_circuit_state")
    );

    let unreachable = spawn_app_with(|c, _| c.guard.store = "redis://127.0.0.1:9".into()).await;
    let errors = metric(&unreachable, "syncjob_guard_store_errors_total", &[]).await;
    assert_eq!(
        unreachable
            .start_salesforce(&unreachable.admin_token())
            .await
            .status(),
        503
    );
    assert!(metric(&unreachable, "syncjob_guard_store_errors_total", &[]).await == errors + 1.0);
}

async fn label_values_are_route_templates_never_ids() {
    let app = spawn_app().await;
    app.start_salesforce(&app.admin_token()).await;
    let text = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !text.contains(SALESFORCE_SP) && !text.contains(SALESFORCE_JOB),
        "no ids in labels"
    );
    assert!(text.contains("# TYPE syncjob_http_requests_total counter"));
}

async fn connections_are_gauged_and_their_closures_counted_by_reason() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app_with(|c, _| {
        c.server.header_read_timeout_secs = 1;
        c.server.idle_timeout_secs = 1;
    })
    .await;
    // Reads on connections of their own that the client closes: they count as neither.
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let read = |labels: &'static [(&'static str, &'static str)], name: &'static str| {
        let (http, url) = (http.clone(), format!("{}/metrics", app.base));
        async move {
            let text = http.get(url).send().await.unwrap().text().await.unwrap();
            text.lines()
                .filter(|l| l.split(['{', ' ']).next() == Some(name))
                .filter(|l| {
                    labels
                        .iter()
                        .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>()
        }
    };
    let closed = "syncjob_http_connections_closed_total";
    let slow = read(&[("reason", "header_timeout")], closed).await;
    let idle = read(&[("reason", "idle")], closed).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut kept = tokio::net::TcpStream::connect(&addr).await.unwrap();
    kept.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    assert!(read(&[], "syncjob_http_connections_open").await >= 3.0);
    let mut buf = [0u8; 1024];
    while silent.read(&mut buf).await.unwrap_or(0) > 0 {}
    while kept.read(&mut buf).await.unwrap_or(0) > 0 {}
    assert_eq!(
        read(&[("reason", "header_timeout")], closed).await,
        slow + 1.0
    );
    assert_eq!(read(&[("reason", "idle")], closed).await, idle + 1.0);
}

#[tokio::test]
async fn every_metric_family_is_driven_and_read_back() {
    a_start_is_counted_in_requests_decisions_graph_calls_and_the_token_cache().await;
    a_failed_key_fetch_is_counted().await;
    refusals_are_counted_by_decision().await;
    concurrent_starts_count_as_coalesced().await;
    guard_store_errors_and_the_circuit_breaker_are_counted().await;
    label_values_are_route_templates_never_ids().await;
    connections_are_gauged_and_their_closures_counted_by_reason().await;
}
