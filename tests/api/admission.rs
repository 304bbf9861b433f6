//! Admission: the rate limit is charged for what reaches Graph (forwarded starts, each array
//! item, lookups no cache answers), never for a flight's followers, idempotent replays or guard
//! refusals; followers hold no place among the starts in flight.

use serde_json::{Value, json};
use syncjob_emulator::{Fault, Operation};

use crate::helpers::*;

async fn concurrent(app: &TestApp, path: &str, token: &str, n: usize) -> Vec<u16> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let request = app
                .http
                .post(format!("{}{path}", app.base))
                .bearer_auth(token)
                .send();
            tokio::spawn(async move { request.await.unwrap().status().as_u16() })
        })
        .collect();
    let mut statuses = Vec::with_capacity(n);
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    statuses
}

fn salesforce() -> String {
    TestApp::start_path(SALESFORCE_SP, SALESFORCE_JOB)
}

#[tokio::test]
async fn thirty_concurrent_starts_of_one_job_by_one_caller_under_two_a_minute_share_the_204_and_later_ones_get_409_never_429()
 {
    let app = spawn_app_with(|c, _| {
        c.server.rate_limit_per_minute = 2;
        c.server.rate_limit_burst = 2;
    })
    .await;
    app.emulator.inject(Fault {
        operation: Some(Operation::Start),
        delay_ms: Some(1000),
        ..Fault::default()
    });
    let token = app.admin_token();
    let statuses = concurrent(&app, &salesforce(), &token, 30).await;
    assert!(statuses.iter().all(|s| *s == 204), "{statuses:?}");
    assert_eq!(app.emulator.count(Operation::Start), 1);
    for _ in 0..5 {
        assert_error(
            app.start_salesforce(&token).await,
            409,
            "SyncJobStartCooldown",
        )
        .await;
    }
    assert_eq!(app.emulator.count(Operation::Start), 1);
}

#[tokio::test]
async fn a_caller_past_its_burst_gets_429_for_new_starts_while_another_caller_does_not() {
    let app = spawn_app_with(|c, _| {
        c.server.rate_limit_per_minute = 1;
        c.server.rate_limit_burst = 2;
        c.guard.cooldown_secs = 0;
        c.guard.preflight = false;
    })
    .await;
    let admin = app.admin_token();
    assert_eq!(app.start_salesforce(&admin).await.status(), 204);
    assert_eq!(app.start_salesforce(&admin).await.status(), 204);
    let refused = app.start_salesforce(&admin).await;
    assert!(refused.headers().contains_key("retry-after"));
    assert_error(refused, 429, "TooManyRequests").await;
    assert_eq!(
        app.emulator.count(Operation::Start),
        2,
        "a refused start is not sent"
    );
    assert_eq!(app.start_salesforce(&app.app_token()).await.status(), 204);
}

#[tokio::test]
async fn an_array_of_100_starts_is_charged_100() {
    let app = spawn_app_with(|c, _| {
        c.server.rate_limit_per_minute = 1;
        c.server.rate_limit_burst = 101;
        c.guard.preflight = false;
    })
    .await;
    let token = app.admin_token();
    let items: Vec<Value> = (0..100)
        .map(|i| json!({"ServicePrincipalId": SALESFORCE_SP, "SynchronizationJobId": format!("job-{i}")}))
        .collect();
    let response = app.post_json("/start", &token, &Value::Array(items)).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let statuses: Vec<u64> = body["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses.len(), 100);
    assert!(
        statuses.iter().all(|s| *s == 404),
        "unknown jobs, each sent: {statuses:?}"
    );
    assert_eq!(app.emulator.count(Operation::Start), 100);
    // 100 of the burst of 101 are spent: one more start passes, the next is refused.
    assert_eq!(app.start_salesforce(&token).await.status(), 204);
    assert_error(
        app.post(
            &TestApp::start_path(SERVICENOW_SP, SERVICENOW_JOB),
            Some(&token),
        )
        .await,
        429,
        "TooManyRequests",
    )
    .await;
}

#[tokio::test]
async fn idempotent_replays_and_cooldown_refusals_are_free() {
    let app = spawn_app_with(|c, _| {
        c.server.rate_limit_per_minute = 1;
        c.server.rate_limit_burst = 1;
    })
    .await;
    let token = app.admin_token();
    let keyed = || {
        app.http
            .post(format!("{}{}", app.base, salesforce()))
            .bearer_auth(&token)
            .header("Idempotency-Key", "replay-me")
            .send()
    };
    assert_eq!(keyed().await.unwrap().status(), 204);
    for _ in 0..3 {
        let replay = keyed().await.unwrap();
        assert_eq!(replay.status(), 204);
        assert_eq!(replay.headers()["idempotent-replayed"], "true");
        assert_error(
            app.start_salesforce(&token).await,
            409,
            "SyncJobStartCooldown",
        )
        .await;
    }
    assert_error(
        app.post(
            &TestApp::start_path(SERVICENOW_SP, SERVICENOW_JOB),
            Some(&token),
        )
        .await,
        429,
        "TooManyRequests",
    )
    .await;
    assert_eq!(app.emulator.count(Operation::Start), 1);
}

#[tokio::test]
async fn a_thousand_concurrent_starts_of_one_job_are_never_shed() {
    let app = spawn_app_with(|c, _| c.server.max_concurrent_starts = 2).await;
    app.emulator.inject(Fault {
        operation: Some(Operation::Start),
        delay_ms: Some(1500),
        ..Fault::default()
    });
    let statuses = concurrent(&app, &salesforce(), &app.admin_token(), 1000).await;
    let shed = statuses.iter().filter(|s| **s == 503).count();
    assert_eq!(shed, 0, "followers hold no place");
    assert!(statuses.iter().all(|s| *s == 204), "{statuses:?}");
    assert_eq!(app.emulator.count(Operation::Start), 1);
}

#[tokio::test]
async fn a_declined_leader_does_not_decide_for_the_callers_waiting_on_its_job() {
    // The admin is over its rate; the app caller is not. Whoever leads the flight, the app
    // caller's start is sent and answered 204, the admin's refused on its own.
    let app = spawn_app_with(|c, _| {
        c.server.rate_limit_per_minute = 1;
        c.server.rate_limit_burst = 1;
        c.guard.preflight = false;
    })
    .await;
    let admin = app.admin_token();
    assert_eq!(
        app.post(
            &TestApp::start_path(SERVICENOW_SP, SERVICENOW_JOB),
            Some(&admin)
        )
        .await
        .status(),
        204
    );
    let app_token = app.app_token();
    let (admin_answer, app_answer) = tokio::join!(
        app.start_salesforce(&admin),
        app.start_salesforce(&app_token)
    );
    let statuses = [admin_answer.status().as_u16(), app_answer.status().as_u16()];
    assert_eq!(statuses[1], 204, "{statuses:?}");
    assert!(
        [429, 204].contains(&statuses[0]),
        "the admin either shared the app caller's start or was refused alone: {statuses:?}"
    );
    assert_eq!(app.emulator.count(Operation::Start), 2);
}

#[tokio::test]
async fn concurrent_lookups_of_one_app_id_share_one_graph_call() {
    let app = spawn_app().await;
    app.emulator.inject(Fault {
        operation: Some(Operation::ResolveAppId),
        delay_ms: Some(500),
        ..Fault::default()
    });
    let path = format!(
        "/v1.0/servicePrincipals(appId='{SALESFORCE_APP_ID}')/synchronization/jobs/{SALESFORCE_JOB}/start?whatIf=true"
    );
    let statuses = concurrent(&app, &path, &app.admin_token(), 200).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(app.emulator.count(Operation::ResolveAppId), 1);
}

#[tokio::test]
async fn a_missing_service_principal_costs_one_owners_lookup_for_a_burst() {
    let app = spawn_app().await;
    let missing = "0f0e0d0c-0b0a-4909-8807-060504030201";
    let path = TestApp::start_path(missing, "job");
    let token = app.owned_by_token();
    let statuses = concurrent(&app, &path, &token, 50).await;
    assert!(statuses.iter().all(|s| *s == 404), "{statuses:?}");
    for _ in 0..20 {
        assert_eq!(app.post(&path, Some(&token)).await.status(), 404);
    }
    assert_eq!(app.emulator.count(Operation::Owners), 1);
    assert_eq!(app.emulator.count(Operation::Start), 0);
}

#[tokio::test]
async fn owners_lookups_that_no_cache_answers_are_charged() {
    let app = spawn_app_with(|c, _| {
        c.server.rate_limit_per_minute = 1;
        c.server.rate_limit_burst = 5;
    })
    .await;
    let token = app.owned_by_token();
    let mut statuses = Vec::new();
    for i in 0..8 {
        let sp = format!("0f0e0d0c-0b0a-4909-8807-0605040302{i:02}");
        statuses.push(
            app.post(&TestApp::start_path(&sp, "job"), Some(&token))
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses[..5], [404; 5], "{statuses:?}");
    assert_eq!(statuses[5..], [429; 3], "{statuses:?}");
    assert_eq!(app.emulator.count(Operation::Owners), 5);
}
