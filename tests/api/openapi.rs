//! The OpenAPI document: committed, served, and documented for every route.

use crate::helpers::*;

#[test]
fn the_committed_openapi_document_matches_the_code() {
    let generated = syncjob_facade::cli::openapi_json();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(path, format!("{generated}\n")).unwrap();
    }
    let committed = std::fs::read_to_string(path).expect("openapi/openapi.json is committed");
    assert_eq!(
        committed.trim_end(),
        generated.trim_end(),
        "the API changed: run `UPDATE_OPENAPI=1 cargo test --test api openapi` and review the diff"
    );
}

#[test]
fn every_route_and_the_bearer_scheme_are_documented() {
    let doc: serde_json::Value =
        serde_json::from_str(&syncjob_facade::cli::openapi_json()).unwrap();
    for path in [
        "/{version}/servicePrincipals/{servicePrincipalId}/synchronization/jobs/{synchronizationJobId}/start",
        "/{version}/servicePrincipals/{servicePrincipalId}/synchronization/jobs/{synchronizationJobId}/microsoft.graph.start",
        "/{version}/servicePrincipals(appId='{appId}')/synchronization/jobs/{synchronizationJobId}/start",
        "/start",
        "/healthz",
        "/readyz",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[test]
fn the_document_describes_what_the_service_answers() {
    let doc: serde_json::Value =
        serde_json::from_str(&syncjob_facade::cli::openapi_json()).unwrap();
    let schema = |name: &str| doc["components"]["schemas"][name].clone();
    let reference = |v: &serde_json::Value| {
        v["$ref"]
            .as_str()
            .unwrap_or_default()
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned()
    };
    // /start takes one object or an array of 1 to 100.
    let start = &doc["paths"]["/start"]["post"];
    let body = reference(&start["requestBody"]["content"]["application/json"]["schema"]);
    let one_of: Vec<String> = schema(&body)["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(reference)
        .collect();
    assert_eq!(one_of, ["IdentityObject", "IdentityArray"]);
    assert_eq!(schema("IdentityArray")["maxItems"], 100);
    // Its 200 is passThru, the whatIf report, or the batch.
    let answer = reference(&start["responses"]["200"]["content"]["application/json"]["schema"]);
    let forms: Vec<String> = schema(&answer)["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(reference)
        .collect();
    assert_eq!(forms, ["PassThru", "WhatIfReport", "BatchResponse"]);
    for field in [
        "wouldStart",
        "target",
        "request",
        "caller",
        "authorization",
        "preflight",
        "guard",
        "refusal",
    ] {
        assert!(
            schema("WhatIfReport")["properties"][field].is_object(),
            "{field}"
        );
    }
    // Every Graph-compatible path: the version enum, the headers, the full list of answers.
    assert_eq!(
        schema("GraphVersion")["enum"],
        serde_json::json!(["v1.0", "beta"])
    );
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/{version}") || !path.ends_with("start") {
            continue;
        }
        let responses = &item["post"]["responses"];
        for status in [
            "200", "204", "400", "401", "403", "409", "422", "429", "502", "503", "504",
        ] {
            assert!(responses[status].is_object(), "{path} {status}");
        }
        assert!(
            responses["409"]["headers"]["Retry-After"].is_object(),
            "{path}"
        );
        assert!(
            responses["204"]["headers"]["request-id"].is_object(),
            "{path}"
        );
        assert!(
            responses["204"]["headers"]["Idempotent-Replayed"].is_object(),
            "{path}"
        );
    }
    // Job reads: the ETag and cache headers, 304, the guard's annotations.
    for path in [
        "/{version}/servicePrincipals/{servicePrincipalId}/synchronization/jobs",
        "/{version}/servicePrincipals/{servicePrincipalId}/synchronization/jobs/{synchronizationJobId}",
        "/{version}/servicePrincipals(appId='{appId}')/synchronization/jobs",
        "/{version}/servicePrincipals(appId='{appId}')/synchronization/jobs/{synchronizationJobId}",
    ] {
        let responses = &doc["paths"][path]["get"]["responses"];
        assert!(responses["200"]["headers"]["ETag"].is_object(), "{path}");
        assert!(responses["304"].is_object(), "{path}");
    }
    assert!(schema("SynchronizationJob")["properties"]["@syncjob.startAllowedAt"].is_object());
    // Hooks: the signature schemes, every answer, the 202 summary.
    let hooks = &doc["paths"]["/hooks/{name}"]["post"];
    let schemes: Vec<&str> = hooks["security"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s.as_object().unwrap().keys().map(String::as_str))
        .collect();
    assert_eq!(schemes, ["standardWebhooks", "githubSignature", "bearer"]);
    assert_eq!(
        doc["components"]["securitySchemes"]["standardWebhooks"]["name"],
        "webhook-signature"
    );
    for status in ["202", "401", "403", "404", "409", "413", "503"] {
        assert!(hooks["responses"][status].is_object(), "hooks {status}");
    }
    assert_eq!(
        reference(&hooks["responses"]["202"]["content"]["application/json"]["schema"]),
        "HookSummary"
    );
    assert_eq!(
        schema("HookOutcome")["enum"],
        serde_json::json!(["started", "suppressed", "failed"])
    );
}

#[tokio::test]
async fn the_document_and_the_swagger_ui_are_served_from_the_binary() {
    let app = spawn_app().await;
    let served: serde_json::Value = app
        .http
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(served["paths"]["/start"].is_object());
    let docs = app
        .http
        .get(format!("{}/docs/", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.unwrap().contains("swagger"));
}
