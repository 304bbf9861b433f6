//! The guard's shared store over TLS, as Azure Cache for Redis requires: a real `redis-server`
//! that speaks TLS only, with a certificate from a private CA made for the test and a password
//! read from a file.

use std::time::{Duration, Instant};

use syncjob_emulator::{Fault, Operation};
use syncjob_facade::config::Config;

use crate::helpers::*;
use crate::redis::RedisServer;

fn over_tls(c: &mut Config, redis: &RedisServer) {
    c.guard.store = redis.url().into();
    c.guard.store_ca_file = Some(redis.tls().ca_file());
    c.guard.store_password_file = Some(redis.tls().password_file());
}

async fn concurrent(targets: Vec<String>, token: &str) -> Vec<u16> {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let path = TestApp::start_path(SALESFORCE_SP, SALESFORCE_JOB);
    let tasks: Vec<_> = targets
        .into_iter()
        .map(|base| {
            let request = http.post(format!("{base}{path}")).bearer_auth(token).send();
            tokio::spawn(async move { request.await.unwrap().status().as_u16() })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    statuses
}

#[tokio::test]
async fn two_replicas_share_single_flight_and_cooldown_through_tls_redis() {
    let Some(redis) = RedisServer::start_tls() else {
        return;
    };
    let a = spawn_app_with(|c, _| over_tls(c, &redis)).await;
    let b = spawn_facade(&a.emulator, |c, _| over_tls(c, &redis)).await;
    a.emulator.inject(Fault {
        operation: Some(Operation::Start),
        delay_ms: Some(1000),
        ..Fault::default()
    });
    let targets = (0..40)
        .map(|i| {
            if i % 2 == 0 {
                a.base.clone()
            } else {
                b.base.clone()
            }
        })
        .collect();
    let statuses = concurrent(targets, &a.admin_token()).await;
    assert!(statuses.iter().all(|s| *s == 204), "{statuses:?}");
    assert_eq!(a.emulator.count(Operation::Start), 1);
    assert_error(
        b.start_salesforce(&b.admin_token()).await,
        409,
        "SyncJobStartCooldown",
    )
    .await;
    let ready = b
        .http
        .get(format!("{}/readyz", b.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn a_store_whose_certificate_is_not_trusted_fails_closed() {
    let Some(redis) = RedisServer::start_tls() else {
        return;
    };
    // The private CA is not given: the system roots do not trust the server's certificate.
    let app = spawn_app_with(|c, _| {
        c.guard.store = redis.url().into();
        c.guard.store_password_file = Some(redis.tls().password_file());
    })
    .await;
    let refused = app.start_salesforce(&app.admin_token()).await;
    assert!(refused.headers().contains_key("retry-after"));
    assert_error(refused, 503, "ServiceUnavailable").await;
    assert_eq!(app.emulator.count(Operation::Start), 0);
    let ready = app
        .http
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
}

#[tokio::test]
async fn a_rotated_password_is_read_again_from_its_file_on_reconnect() {
    let Some(redis) = RedisServer::start_tls() else {
        return;
    };
    let app = spawn_app_with(|c, _| {
        over_tls(c, &redis);
        c.guard.cooldown_secs = 0;
    })
    .await;
    let token = app.admin_token();
    assert_eq!(app.start_salesforce(&token).await.status(), 204);
    // The key is rotated: Redis takes the new password, the file is rewritten, and the
    // facade's connections are dropped, as a failover would.
    let rotated = "rotated-key-2";
    let mut admin = redis.admin(&redis.tls().password);
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(rotated)
        .exec(&mut admin)
        .unwrap();
    std::fs::write(redis.tls().password_file(), format!("{rotated}\n")).unwrap();
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .arg("SKIPME")
        .arg("yes")
        .exec(&mut admin)
        .unwrap();
    app.emulator
        .set_job_status(SALESFORCE_SP, SALESFORCE_JOB, "Paused");
    // Starts fail closed (503) until the facade reconnects with the new password, then pass.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut statuses = Vec::new();
    loop {
        let status = app.start_salesforce(&token).await.status().as_u16();
        statuses.push(status);
        if status == 204 {
            break;
        }
        assert_eq!(status, 503, "{statuses:?}");
        assert!(Instant::now() < deadline, "never reconnected: {statuses:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(app.emulator.count(Operation::Start), 2, "{statuses:?}");
}

#[test]
fn store_settings_that_cannot_work_are_refused_naming_the_key() {
    let dir = std::env::temp_dir().join(format!("syncjob-store-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let not_pem = dir.join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let password = dir.join("password");
    std::fs::write(&password, "secret\n").unwrap();
    let check = |edit: &dyn Fn(&mut Config)| {
        let mut config = Config::default();
        config.auth.issuers = vec![
            "https://login.microsoftonline.com/8a3c9c1e-6f0b-4b7e-9d55-2f1e7c0a4b13/v2.0"
                .parse()
                .unwrap(),
        ];
        config.graph.credential.kind = syncjob_facade::config::CredentialKind::Static;
        config.graph.credential.token = Some(syncjob_facade::config::Secret::new("t"));
        edit(&mut config);
        config.validate().err().map(|e| e.to_string())
    };
    let error = check(&|c| {
        c.guard.store = "redis://127.0.0.1:6379".into();
        c.guard.store_ca_file = Some(not_pem.clone());
    })
    .unwrap();
    assert!(
        error.contains("guard.store_ca_file") && error.contains("rediss://"),
        "{error}"
    );
    let error = check(&|c| {
        c.guard.store = "rediss://127.0.0.1:6380".into();
        c.guard.store_ca_file = Some(not_pem.clone());
    })
    .unwrap();
    assert!(
        error.contains("guard.store_ca_file") && error.contains("no PEM"),
        "{error}"
    );
    let error = check(&|c| {
        c.guard.store = "rediss://:inline@127.0.0.1:6380".into();
        c.guard.store_password_file = Some(password.clone());
    })
    .unwrap();
    assert!(error.contains("guard.store_password_file"), "{error}");
    assert!(!error.contains("inline"), "{error}");
    let error = check(&|c| {
        c.guard.store = "rediss://127.0.0.1:6380".into();
        c.guard.store_password_file = Some(dir.join("missing"));
    })
    .unwrap();
    assert!(error.contains("guard.store_password_file"), "{error}");
    assert!(
        check(&|c| {
            c.guard.store = "rediss://cache.redis.cache.windows.net:6380".into();
            c.guard.store_password_file = Some(password.clone());
        })
        .is_none()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
