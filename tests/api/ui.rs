//! The operator page's routes: served only with `[ui]`, with its security headers, and its
//! settings (public values only). What the page does is tested in a browser (tests/browser).

use serde_json::{Value, json};

use crate::helpers::{spawn_app, spawn_app_with};

const PAGE_FILES: [(&str, &str); 5] = [
    ("/ui", "text/html; charset=utf-8"),
    ("/ui/app.js", "text/javascript; charset=utf-8"),
    ("/ui/app.css", "text/css; charset=utf-8"),
    ("/ui/favicon.svg", "image/svg+xml"),
    ("/ui/settings.json", "application/json"),
];

#[tokio::test]
async fn without_a_ui_section_the_page_does_not_exist() {
    let app = spawn_app_with(|config, _| config.ui = None).await;
    for (path, _) in PAGE_FILES {
        let response = app.get(path).await;
        assert_eq!(response.status(), 404, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "NotFound", "{path}");
    }
}

#[tokio::test]
async fn every_file_of_the_page_carries_a_strict_policy_and_no_secret_reaches_it() {
    let app = spawn_app().await;
    let authority = format!("{}/{}", app.emulator.base_url(), app.emulator.tenant_id());
    let policy = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self' {}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; \
         require-trusted-types-for 'script'; trusted-types 'none'",
        app.emulator.base_url()
    );
    for (path, content_type) in PAGE_FILES {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers();
        assert_eq!(headers["content-type"], content_type, "{path}");
        assert_eq!(
            headers["content-security-policy"],
            policy.as_str(),
            "{path}"
        );
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
    }

    let html = app.get("/ui").await.text().await.unwrap();
    assert!(
        !html.contains("<script>") && !html.contains(" style="),
        "no inline script or style"
    );
    assert!(html.contains("<script type=\"module\" src=\"/ui/app.js\"></script>"));

    let settings: Value = app.get("/ui/settings.json").await.json().await.unwrap();
    let seed = app.emulator.seed();
    assert_eq!(
        settings,
        json!({
            "clientId": "e4f5a6b7-c8d9-4e0f-9a1b-3c4d5e6f7a8b",
            "authority": authority,
            "scopes": ["api://syncjob-facade/Synchronization.ReadWrite.All"],
            "servicePrincipals": seed.service_principals.iter().map(|sp| sp.id.clone()).collect::<Vec<_>>(),
        })
    );
    let facade_secret = &seed.applications[0].client_secret;
    assert!(!settings.to_string().contains(facade_secret.as_str()));

    let slash = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/ui/", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(slash.status(), 308);
    assert_eq!(slash.headers()["location"], "/ui");
}

#[tokio::test]
async fn the_ui_section_is_checked_with_every_bad_key_named() {
    let mut config = syncjob_facade::config::Config::from_toml(
        "[auth]\nissuers = [\"https://login.microsoftonline.com/8a3c9c1e-6f0b-4b7e-9d55-2f1e7c0a4b13/v2.0\"]\n\
         [ui]\nclient_id = \"operator-page\"\nservice_principals = [\"salesforce\"]\n",
    )
    .unwrap();
    config.graph.credential.client_secret = None;
    let error = config.validate().err().expect("invalid").to_string();
    assert!(
        error.contains(
            "invalid configuration: ui.client_id: 'operator-page' is not an application (client) id"
        ),
        "{error}"
    );
    assert!(
        error.contains("invalid configuration: ui.service_principals[0]: 'salesforce'"),
        "{error}"
    );
}
