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
