//! Job reads: Graph's read permissions, the shared read cache (hits, concurrent misses, ETags,
//! invalidation by a start, on one replica and across two sharing Redis) and the guard's view.

use serde_json::{Value, json};
use syncjob_emulator::{Fault, Operation};

use crate::helpers::*;
use crate::redis::RedisServer;

const GLOBAL_READER: &str = "f2ef992c-3afb-46b9-b7cf-a126ee74c451";

fn job_path(sp: &str, job: &str) -> String {
    format!("/v1.0/servicePrincipals/{sp}/synchronization/jobs/{job}")
}

fn salesforce_job() -> String {
    job_path(SALESFORCE_SP, SALESFORCE_JOB)
}

async fn get(app: &TestApp, path: &str, token: &str) -> reqwest::Response {
    app.http
        .get(format!("{}{path}", app.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

fn reads(app: &TestApp) -> usize {
    app.emulator.count(Operation::GetJob) + app.emulator.count(Operation::ListJobs)
}

/// A delegated token that may only read: Synchronization.Read.All and Global Reader.
fn global_reader(app: &TestApp) -> String {
    app.admin_token_with(|claims| {
        claims["scp"] = json!("Synchronization.Read.All");
        claims["wids"] = json!([GLOBAL_READER]);
    })
}

fn app_token_with_roles(app: &TestApp, roles: Value) -> String {
    let mut claims = app.emulator.app_claims(PORTAL_CLIENT_ID);
    claims["roles"] = roles;
    app.emulator.mint(&claims)
}

#[tokio::test]
async fn graphs_read_permissions_allow_reads_and_never_a_start() {
    let app = spawn_app().await;
    let allowed = [
        ("delegated Read.All with Global Reader", global_reader(&app)),
        (
            "delegated ReadWrite.All with Application Administrator",
            app.admin_token(),
        ),
        (
            "application Read.All",
            app_token_with_roles(&app, json!(["Synchronization.Read.All"])),
        ),
        ("application ReadWrite.All", app.app_token()),
        (
            "OwnedBy, owner of the service principal",
            app.owned_by_token(),
        ),
    ];
    for (who, token) in &allowed {
        let response = get(&app, &salesforce_job(), token).await;
        assert_eq!(response.status(), 200, "{who}");
        let job: Value = response.json().await.unwrap();
        assert_eq!(job["status"]["code"], "Paused", "{who}");
    }
    // A read permission never allows a start.
    assert_error(
        app.start_salesforce(&global_reader(&app)).await,
        403,
        "Authorization_RequestDenied",
    )
    .await;
    let read_only_app = app_token_with_roles(&app, json!(["Synchronization.Read.All"]));
    assert_error(
        app.start_salesforce(&read_only_app).await,
        403,
        "Authorization_RequestDenied",
    )
    .await;
    assert_eq!(app.emulator.count(Operation::Start), 0);
}

#[tokio::test]
async fn reads_without_the_permission_are_refused_with_no_graph_call() {
    let app = spawn_app().await;
    let before = reads(&app);
    let refused = [
        (
            "delegated Read.All without a directory role",
            app.admin_token_with(|c| {
                c["scp"] = json!("Synchronization.Read.All");
                c["wids"] = json!([]);
            }),
        ),
        (
            "delegated without a read scope",
            app.admin_token_with(|c| c["scp"] = json!("User.Read")),
        ),
        (
            "application without a role",
            app_token_with_roles(&app, json!(["User.Read.All"])),
        ),
    ];
    for (who, token) in &refused {
        let response = get(&app, &salesforce_job(), token).await;
        assert_eq!(response.status(), 403, "{who}");
        assert_error(response, 403, "Authorization_RequestDenied").await;
    }
    // OwnedBy, but not an owner of ServiceNow: refused after the owners lookup, no job read.
    let response = get(
        &app,
        &job_path(SERVICENOW_SP, SERVICENOW_JOB),
        &app.owned_by_token(),
    )
    .await;
    assert_error(response, 403, "Authorization_RequestDenied").await;
    assert_error(
        get(&app, &salesforce_job(), "not-a-token").await,
        401,
        "InvalidAuthenticationToken",
    )
    .await;
    assert_eq!(reads(&app), before);
}

#[tokio::test]
async fn thirty_concurrent_identical_reads_from_three_callers_make_one_graph_get() {
    let app = spawn_app().await;
    app.emulator.inject(Fault {
        operation: Some(Operation::GetJob),
        delay_ms: Some(400),
        ..Fault::default()
    });
    let tokens = [app.admin_token(), app.app_token(), global_reader(&app)];
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let request = app
                .http
                .get(format!("{}{}", app.base, salesforce_job()))
                .bearer_auth(&tokens[i % 3])
                .send();
            tokio::spawn(async move {
                let response = request.await.unwrap();
                (
                    response.status().as_u16(),
                    response.headers()["etag"].to_str().unwrap().to_owned(),
                )
            })
        })
        .collect();
    let mut etags = std::collections::HashSet::new();
    for task in tasks {
        let (status, etag) = task.await.unwrap();
        assert_eq!(status, 200);
        etags.insert(etag);
    }
    assert_eq!(
        app.emulator.count(Operation::GetJob),
        1,
        "one upstream GET for 30 reads"
    );
    assert_eq!(etags.len(), 1, "{etags:?}");
    println!(
        "30 concurrent reads by 3 callers: Graph GETs = {}",
        app.emulator.count(Operation::GetJob)
    );
}

#[tokio::test]
async fn a_read_carries_cache_headers_and_its_etag_answers_304() {
    let app = spawn_app().await;
    let token = app.admin_token();
    let first = get(&app, &salesforce_job(), &token).await;
    assert_eq!(first.status(), 200);
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    assert!(
        etag.starts_with('"') && !etag.starts_with("W/"),
        "a strong ETag: {etag}"
    );
    let cache_control = first.headers()["cache-control"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cache_control.starts_with("private, max-age="),
        "{cache_control}"
    );
    assert!(first.headers().contains_key("age"));
    assert!(first.headers().contains_key("request-id"));
    let again = app
        .http
        .get(format!("{}{}", app.base, salesforce_job()))
        .bearer_auth(&token)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"], etag.as_str());
    assert!(again.bytes().await.unwrap().is_empty());
    let other = app
        .http
        .get(format!("{}{}", app.base, salesforce_job()))
        .bearer_auth(&token)
        .header("If-None-Match", "\"something-else\"")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    assert_eq!(
        app.emulator.count(Operation::GetJob),
        1,
        "all three answered from one GET"
    );
    // Another $select is another read.
    let selected = get(
        &app,
        &format!("{}?$select=status", salesforce_job()),
        &token,
    )
    .await;
    let body: Value = selected.json().await.unwrap();
    assert!(body.get("templateId").is_none(), "{body}");
    assert_eq!(body["status"]["code"], "Paused");
    assert_eq!(app.emulator.count(Operation::GetJob), 2);
    let call = app
        .emulator
        .calls()
        .into_iter()
        .rev()
        .find(|c| c.operation == Operation::GetJob)
        .unwrap();
    let query = call.query.unwrap_or_default();
    assert!(
        query == "%24select=status" || query == "$select=status",
        "$select is passed on: {query}"
    );
}

#[tokio::test]
async fn a_start_drops_the_cached_job_and_list_and_the_annotations_show_the_guard() {
    let app = spawn_app().await;
    let token = app.admin_token();
    let list_path = format!("/v1.0/servicePrincipals/{SALESFORCE_SP}/synchronization/jobs");
    let before: Value = get(&app, &salesforce_job(), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(before["status"]["code"], "Paused");
    assert_eq!(before["@syncjob.startAllowedAt"], Value::Null);
    assert_eq!(before["@syncjob.lastStart"], Value::Null);
    let list: Value = get(&app, &list_path, &token).await.json().await.unwrap();
    assert_eq!(list["value"][0]["@syncjob.startAllowedAt"], Value::Null);
    assert_eq!(app.start_salesforce(&token).await.status(), 204);
    let after: Value = get(&app, &salesforce_job(), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        after["status"]["code"], "Active",
        "the next read shows the new status"
    );
    let allowed_at = after["@syncjob.startAllowedAt"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        allowed_at.ends_with('Z') && allowed_at.contains('T'),
        "{allowed_at}"
    );
    assert_eq!(after["@syncjob.lastStart"]["caller"], "Ada Admin");
    assert!(after["@syncjob.lastStart"]["at"].is_string());
    let list: Value = get(&app, &list_path, &token).await.json().await.unwrap();
    assert_eq!(list["value"][0]["status"]["code"], "Active");
    assert_eq!(
        list["value"][0]["@syncjob.startAllowedAt"],
        allowed_at.as_str()
    );
}

#[tokio::test]
async fn two_replicas_sharing_redis_share_the_read_cache_and_its_invalidation() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let a = spawn_app_with(|c, _| c.guard.store = redis.url().into()).await;
    let b = spawn_facade(&a.emulator, |c, _| c.guard.store = redis.url().into()).await;
    let token = a.admin_token();
    assert_eq!(get(&a, &salesforce_job(), &token).await.status(), 200);
    let from_b: Value = get(&b, &salesforce_job(), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(from_b["status"]["code"], "Paused");
    assert_eq!(
        a.emulator.count(Operation::GetJob),
        1,
        "replica b answered from the shared cache"
    );
    assert_eq!(b.start_salesforce(&token).await.status(), 204);
    let gets = a.emulator.count(Operation::GetJob);
    let from_a: Value = get(&a, &salesforce_job(), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        from_a["status"]["code"], "Active",
        "replica a saw b's start drop the cache"
    );
    assert_eq!(a.emulator.count(Operation::GetJob), gets + 1);
}

#[tokio::test]
async fn bad_ids_and_queries_on_reads_are_400_with_no_graph_call() {
    let app = spawn_app().await;
    let token = app.admin_token();
    for path in [
        "/v1.0/servicePrincipals/not-a-guid/synchronization/jobs".to_owned(),
        format!("/v1.0/servicePrincipals/{SALESFORCE_SP}/synchronization/jobs/%2e%2e"),
        "/v1.0/servicePrincipals(appId='nope')/synchronization/jobs".to_owned(),
        format!("{}?$select=status&$select=id", salesforce_job()),
        format!("{}?sneaky=1", salesforce_job()),
        format!("{}?$select=status;drop", salesforce_job()),
    ] {
        let (status, body) = app.raw_get(&path, &token).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"]["code"], "BadRequest", "{path}");
    }
    let posted = app
        .post(&job_path(SALESFORCE_SP, SALESFORCE_JOB), Some(&token))
        .await;
    assert_eq!(posted.headers()["allow"], "GET");
    assert_error(posted, 405, "MethodNotAllowed").await;
    assert_eq!(reads(&app), 0);
}

/// The order of a read's checks: the token, then the path's ids, then the query.
#[tokio::test]
async fn a_read_names_the_token_then_the_id_then_the_query() {
    let app = spawn_app().await;
    let bad_select = "?$select=status&$select=id";
    let unauthenticated = app.get(&format!("{}{bad_select}", salesforce_job())).await;
    assert_error(unauthenticated, 401, "InvalidAuthenticationToken").await;
    let token = app.admin_token();
    let (status, body) = app
        .raw_get(
            &format!("/v1.0/servicePrincipals/not-a-guid/synchronization/jobs{bad_select}"),
            &token,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("not-a-guid"), "the id is named: {message}");
    let (status, body) = app
        .raw_get(&format!("{}{bad_select}", salesforce_job()), &token)
        .await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("$select"), "the query is named: {message}");
    assert_eq!(reads(&app), 0);
}

#[tokio::test]
async fn the_app_id_key_reads_the_same_job() {
    let app = spawn_app().await;
    let path = format!(
        "/v1.0/servicePrincipals(appId='{SALESFORCE_APP_ID}')/synchronization/jobs/{SALESFORCE_JOB}"
    );
    let job: Value = get(&app, &path, &app.admin_token())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(job["id"], SALESFORCE_JOB);
    assert_eq!(job["status"]["code"], "Paused");
}

#[tokio::test]
async fn with_the_cache_off_every_read_asks_graph() {
    let app = spawn_app_with(|c, _| c.reads.cache_secs = 0).await;
    let token = app.admin_token();
    for _ in 0..3 {
        let response = get(&app, &salesforce_job(), &token).await;
        assert_eq!(response.headers()["cache-control"], "private, max-age=0");
        assert_eq!(response.status(), 200);
    }
    assert_eq!(app.emulator.count(Operation::GetJob), 3);
}

#[tokio::test]
async fn reads_the_cache_answers_are_not_charged_and_misses_are() {
    let app = spawn_app_with(|c, _| {
        c.server.rate_limit_per_minute = 1;
        c.server.rate_limit_burst = 1;
    })
    .await;
    let token = app.admin_token();
    for _ in 0..10 {
        assert_eq!(get(&app, &salesforce_job(), &token).await.status(), 200);
    }
    assert_error(
        get(&app, &job_path(SERVICENOW_SP, SERVICENOW_JOB), &token).await,
        429,
        "TooManyRequests",
    )
    .await;
    assert_eq!(app.emulator.count(Operation::GetJob), 1);
}
