//! The job guard: one behavioural suite run against both stores, then what only a shared store
//! can do (several replicas).

use std::time::Duration;

use serde_json::{Value, json};
use syncjob_emulator::{Fault, Operation};

use crate::helpers::*;
use crate::redis::RedisServer;

/// A store for the facade under test; a Redis backend keeps its server alive while it lives.
pub struct Backend {
    pub store: String,
    _redis: Option<RedisServer>,
}

impl Backend {
    fn memory() -> Option<Self> {
        Some(Self {
            store: "memory".into(),
            _redis: None,
        })
    }

    fn redis() -> Option<Self> {
        let server = RedisServer::start()?;
        Some(Self {
            store: server.url(),
            _redis: Some(server),
        })
    }

    async fn app(&self, cooldown_secs: u64) -> TestApp {
        let store = self.store.clone();
        spawn_app_with(move |c, _| {
            c.guard.store = store.into();
            c.guard.cooldown_secs = cooldown_secs;
        })
        .await
    }
}

fn salesforce() -> String {
    TestApp::start_path(SALESFORCE_SP, SALESFORCE_JOB)
}

async fn concurrent_posts(targets: Vec<(String, String)>, token: &str) -> Vec<u16> {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let tasks: Vec<_> = targets
        .into_iter()
        .map(|(base, path)| {
            let (http, token) = (http.clone(), token.to_owned());
            tokio::spawn(async move {
                http.post(format!("{base}{path}"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    statuses
}

macro_rules! guard_suite {
    ($module:ident, $backend:expr) => {
        mod $module {
            use super::*;

            #[tokio::test]
            async fn concurrent_starts_of_one_job_share_one_upstream_call() {
                let Some(backend) = $backend else { return };
                let app = backend.app(300).await;
                // A slow Graph keeps the first start in flight while the others arrive.
                app.emulator.inject(Fault { operation: Some(Operation::Start), delay_ms: Some(1000), ..Fault::default() });
                let statuses = concurrent_posts(vec![(app.base.clone(), salesforce()); 50], &app.admin_token()).await;
                assert_eq!(app.emulator.count(Operation::Start), 1, "exactly one upstream start");
                // All arrive within the one-second flight: all share its 204.
                assert!(statuses.iter().all(|s| *s == 204), "concurrent callers shared the outcome: {statuses:?}");
            }

            #[tokio::test]
            async fn a_start_within_the_cooldown_is_409_with_retry_after_and_allowed_after_it() {
                let Some(backend) = $backend else { return };
                let app = backend.app(2).await;
                let token = app.admin_token();
                assert_eq!(app.start_salesforce(&token).await.status(), 204);
                app.emulator.set_job_status(SALESFORCE_SP, SALESFORCE_JOB, "Paused");
                let response = app.start_salesforce(&token).await;
                let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
                assert!((1..=2).contains(&retry_after), "{retry_after}");
                assert_error(response, 409, "SyncJobStartCooldown").await;
                // The same job by another route, version and caller is still the same job.
                let beta = format!("/beta/servicePrincipals/{}/synchronization/jobs/{SALESFORCE_JOB}/start", SALESFORCE_SP.to_uppercase());
                assert_error(app.post(&beta, Some(&app.app_token())).await, 409, "SyncJobStartCooldown").await;
                assert_eq!(app.emulator.count(Operation::Start), 1);
                tokio::time::sleep(Duration::from_millis(2100)).await;
                assert_eq!(app.start_salesforce(&token).await.status(), 204);
                assert_eq!(app.emulator.count(Operation::Start), 2);
            }

            #[tokio::test]
            async fn a_failed_start_does_not_lock_the_job_out() {
                let Some(backend) = $backend else { return };
                let app = backend.app(300).await;
                app.emulator.inject(Fault { operation: Some(Operation::Start), status: Some(500), ..Fault::default() });
                let token = app.admin_token();
                assert_eq!(app.start_salesforce(&token).await.status(), 500);
                assert_eq!(app.start_salesforce(&token).await.status(), 204);
                assert_eq!(app.emulator.count(Operation::Start), 2);
            }

            #[tokio::test]
            async fn what_if_shows_the_cooldown() {
                let Some(backend) = $backend else { return };
                let app = backend.app(300).await;
                let token = app.admin_token();
                assert_eq!(app.start_salesforce(&token).await.status(), 204);
                app.emulator.set_job_status(SALESFORCE_SP, SALESFORCE_JOB, "Paused");
                let report: Value = app.post(&format!("{}?whatIf=true", salesforce()), Some(&token)).await.json().await.unwrap();
                assert_eq!(report["wouldStart"], false);
                assert_eq!(report["refusal"]["code"], "SyncJobStartCooldown");
                assert!(report["guard"]["cooldownRemainingSecs"].as_u64().unwrap() > 0);
            }

            #[tokio::test]
            async fn an_idempotency_key_replays_the_first_answer_and_sends_nothing() {
                let Some(backend) = $backend else { return };
                let app = backend.app(300).await;
                let post = |token: String, path: String, key: &'static str| {
                    app.http.post(format!("{}{path}", app.base)).bearer_auth(token).header("Idempotency-Key", key).send()
                };
                let first = post(app.admin_token(), format!("{}?passThru=true", salesforce()), "order-42").await.unwrap();
                assert_eq!(first.status(), 200);
                let again = post(app.admin_token(), format!("{}?passThru=true", salesforce()), "order-42").await.unwrap();
                assert_eq!(again.status(), 200);
                assert_eq!(again.headers()["idempotent-replayed"], "true");
                assert_eq!(again.json::<Value>().await.unwrap(), json!({"value": true}));
                assert_eq!(app.emulator.count(Operation::Start), 1);
                // Another target under the same key.
                let other = post(app.admin_token(), TestApp::start_path(SERVICENOW_SP, SERVICENOW_JOB), "order-42").await.unwrap();
                assert_error(other, 422, "IdempotencyKeyReused").await;
                // Another caller's key space: not a replay (and the job is cooling down).
                let stranger = post(app.app_token(), salesforce(), "order-42").await.unwrap();
                assert!(stranger.headers().get("idempotent-replayed").is_none());
                assert_error(stranger, 409, "SyncJobStartCooldown").await;
                assert_eq!(app.emulator.count(Operation::Start), 1);
            }

            #[tokio::test]
            async fn duplicates_inside_one_batch_coalesce() {
                let Some(backend) = $backend else { return };
                let app = backend.app(300).await;
                let item = json!({"ServicePrincipalId": SALESFORCE_SP, "SynchronizationJobId": SALESFORCE_JOB});
                let batch: Value = app.post_json("/start", &app.admin_token(), &json!([item, item, item])).await.json().await.unwrap();
                let statuses: Vec<u64> = batch["responses"].as_array().unwrap().iter().map(|e| e["status"].as_u64().unwrap()).collect();
                assert_eq!(statuses, [204, 204, 204]);
                assert_eq!(batch["responses"][2]["id"], "2");
                assert_eq!(app.emulator.count(Operation::Start), 1);
            }
        }
    };
}

guard_suite!(memory, Backend::memory());
guard_suite!(redis, Backend::redis());

#[tokio::test]
async fn an_invalid_idempotency_key_is_400() {
    let app = spawn_app().await;
    let response = app
        .http
        .post(format!("{}{}", app.base, salesforce()))
        .bearer_auth(app.admin_token())
        .header("Idempotency-Key", "x".repeat(300))
        .send()
        .await
        .unwrap();
    let body = assert_error(response, 400, "BadRequest").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Idempotency-Key")
    );
    assert_eq!(app.emulator.count(Operation::Start), 0);
}

/// Two replicas sharing one Redis and one Graph.
async fn two_replicas(redis: &RedisServer, cooldown_secs: u64) -> (TestApp, TestApp) {
    let first = spawn_app_with(|c, _| {
        c.guard.store = redis.url().into();
        c.guard.cooldown_secs = cooldown_secs;
    })
    .await;
    let second = spawn_facade(&first.emulator, |c, _| {
        c.guard.store = redis.url().into();
        c.guard.cooldown_secs = cooldown_secs;
    })
    .await;
    (first, second)
}

#[tokio::test]
async fn two_replicas_sharing_redis_send_one_upstream_start_for_100_concurrent_requests() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (a, b) = two_replicas(&redis, 300).await;
    a.emulator.inject(Fault {
        operation: Some(Operation::Start),
        delay_ms: Some(1000),
        ..Fault::default()
    });
    let targets = (0..100)
        .map(|i| {
            (
                if i % 2 == 0 {
                    a.base.clone()
                } else {
                    b.base.clone()
                },
                salesforce(),
            )
        })
        .collect();
    let statuses = concurrent_posts(targets, &a.admin_token()).await;
    assert_eq!(
        a.emulator.count(Operation::Start),
        1,
        "exactly one upstream start across replicas"
    );
    assert!(statuses.iter().all(|s| *s == 204), "{statuses:?}");
    println!(
        "100 concurrent starts over 2 replicas: upstream starts = {}, 204 = {}, 409 = {}",
        a.emulator.count(Operation::Start),
        statuses.iter().filter(|s| **s == 204).count(),
        statuses.iter().filter(|s| **s == 409).count()
    );
}

#[tokio::test]
async fn the_cooldown_and_idempotent_replays_hold_across_replicas() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (a, b) = two_replicas(&redis, 300).await;
    let token = a.admin_token();
    let keyed = |app: &TestApp, key: &str| {
        app.http
            .post(format!("{}{}", app.base, salesforce()))
            .bearer_auth(&token)
            .header("Idempotency-Key", key.to_owned())
            .send()
    };
    assert_eq!(keyed(&a, "k-1").await.unwrap().status(), 204);
    let replay = keyed(&b, "k-1").await.unwrap();
    assert_eq!(replay.status(), 204);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    a.emulator
        .set_job_status(SALESFORCE_SP, SALESFORCE_JOB, "Paused");
    assert_error(
        b.start_salesforce(&token).await,
        409,
        "SyncJobStartCooldown",
    )
    .await;
    assert_eq!(a.emulator.count(Operation::Start), 1);
}

#[tokio::test]
async fn starts_fail_closed_while_redis_is_down_and_recover_when_it_is_back() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let (a, _b) = two_replicas(&redis, 300).await;
    let token = a.admin_token();
    assert_eq!(
        a.http
            .get(format!("{}/readyz", a.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    redis.stop();
    let response = a.start_salesforce(&token).await;
    assert!(response.headers().contains_key("retry-after"));
    assert_error(response, 503, "ServiceUnavailable").await;
    assert_eq!(
        a.emulator.count(Operation::Start),
        0,
        "nothing starts without the guard"
    );
    let ready = a
        .http
        .get(format!("{}/readyz", a.base))
        .send()
        .await
        .unwrap();
    let body = assert_error(ready, 503, "ServiceUnavailable").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("guard store")
    );
    redis.restart();
    let mut status = 0;
    for _ in 0..50 {
        status = a.start_salesforce(&token).await.status().as_u16();
        if status == 204 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 204, "starts work again once Redis is back");
    assert_eq!(a.emulator.count(Operation::Start), 1);
}
