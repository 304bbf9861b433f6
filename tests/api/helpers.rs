//! `spawn_app`: an emulator and a facade wired to it, and typed request helpers.

use std::net::{Ipv4Addr, SocketAddr};

use serde_json::Value;
use syncjob_emulator::{Emulator, Seed};
use syncjob_facade::config::Config;
use syncjob_facade::server::Server;

pub const SALESFORCE_SP: &str = "2f8d4c6a-1b3e-4a5f-9c7d-8e0f1a2b3c4d";
pub const SALESFORCE_APP_ID: &str = "7c6b5a49-3827-4165-9e0d-c1b2a3f4e5d6";
/// Paused in the seed.
pub const SALESFORCE_JOB: &str =
    "salesforce.8a3c9c1e6f0b4b7e9d552f1e7c0a4b13.2f8d4c6a-1b3e-4a5f-9c7d-8e0f1a2b3c4d";
pub const SERVICENOW_SP: &str = "4a1b2c3d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
/// Quarantined in the seed.
pub const SERVICENOW_JOB: &str =
    "ServiceNowOutDelta.8a3c9c1e6f0b4b7e9d552f1e7c0a4b13.4a1b2c3d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
/// Active in the seed.
pub const SERVICENOW_ACTIVE_JOB: &str = "ServiceNowRunning.1";
pub const ADMIN_OID: &str = "b1c2d3e4-f5a6-4b7c-8d9e-0f1a2b3c4d5e";
pub const READER_OID: &str = "c2d3e4f5-a6b7-4c8d-9e0f-1a2b3c4d5e6f";
pub const FACADE_CLIENT_ID: &str = "5d1c6b8a-3f2e-4c7d-9a10-7e6f5d4c3b2a";
pub const PORTAL_CLIENT_ID: &str = "0c9e8d7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f";
pub const OWNED_BY_CLIENT_ID: &str = "6f7a8b9c-0d1e-4f2a-8b3c-4d5e6f7a8b9c";

pub struct TestApp {
    pub emulator: Emulator,
    pub base: String,
    pub http: reqwest::Client,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_, _| {}).await
}

/// Starts an emulator and a facade configured for it, then `customize`d.
pub async fn spawn_app_with(customize: impl FnOnce(&mut Config, &Emulator)) -> TestApp {
    let emulator = Emulator::spawn(
        Seed::default_seed(),
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
    )
    .await
    .expect("emulator");
    spawn_facade(&emulator, customize).await
}

/// A facade for an existing emulator (several facades may share one, as replicas share Graph).
pub async fn spawn_facade(
    emulator: &Emulator,
    customize: impl FnOnce(&mut Config, &Emulator),
) -> TestApp {
    let emulator = emulator.clone();
    let mut config =
        Config::from_toml(&emulator.facade_config_toml()).expect("the emulator's settings");
    config.server.listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    // Tests send bursts from one caller on purpose; the rate limit has its own test.
    config.server.rate_limit_per_minute = 0;
    customize(&mut config, &emulator);
    let valid = config.validate().expect("test configuration is valid");
    let server = Server::bind(valid).await.expect("facade binds");
    let base = format!("http://{}", server.local_addr());
    tokio::spawn(server.run(std::future::pending()));
    // Loopback only; no proxy from the environment may intercept test traffic.
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    TestApp {
        emulator,
        base,
        http,
    }
}

impl TestApp {
    pub fn admin_token(&self) -> String {
        self.emulator
            .mint(&self.emulator.delegated_claims(ADMIN_OID))
    }

    pub fn app_token(&self) -> String {
        self.emulator
            .mint(&self.emulator.app_claims(PORTAL_CLIENT_ID))
    }

    pub fn owned_by_token(&self) -> String {
        self.emulator
            .mint(&self.emulator.app_claims(OWNED_BY_CLIENT_ID))
    }

    /// Admin claims with `edit` applied, signed.
    pub fn admin_token_with(&self, edit: impl FnOnce(&mut Value)) -> String {
        let mut claims = self.emulator.delegated_claims(ADMIN_OID);
        edit(&mut claims);
        self.emulator.mint(&claims)
    }

    pub fn start_path(sp: &str, job: &str) -> String {
        format!("/v1.0/servicePrincipals/{sp}/synchronization/jobs/{job}/start")
    }

    /// POSTs the start of the seed's paused Salesforce job, the job most tests start.
    pub async fn start_salesforce(&self, token: &str) -> reqwest::Response {
        self.post(
            &Self::start_path(SALESFORCE_SP, SALESFORCE_JOB),
            Some(token),
        )
        .await
    }

    /// A GET without a token.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("facade answers")
    }

    pub async fn post(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = self.http.post(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("facade answers")
    }

    pub async fn post_json(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("facade answers")
    }

    /// `raw_post`'s GET.
    pub async fn raw_get(&self, path: &str, token: &str) -> (u16, Value) {
        self.raw("GET", path, token).await
    }

    /// Sends a request line exactly as given (no client-side path normalisation), over a raw
    /// TCP connection, and returns the status and body.
    pub async fn raw_post(&self, path: &str, token: &str) -> (u16, Value) {
        self.raw("POST", path, token).await
    }

    async fn raw(&self, method: &str, path: &str, token: &str) -> (u16, Value) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self.base.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.expect("read");
        let text = String::from_utf8_lossy(&answer);
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status line");
        let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
        // The body may be chunked; the JSON object sits between the first '{' and the last '}'.
        let json = match (body.find('{'), body.rfind('}')) {
            (Some(start), Some(end)) => {
                serde_json::from_str(&body[start..=end]).unwrap_or(Value::Null)
            }
            _ => Value::Null,
        };
        (status, json)
    }
}

/// Asserts Graph's error envelope with `code`, and returns the body.
pub async fn assert_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    assert!(
        response.headers().contains_key("request-id"),
        "request-id header"
    );
    let body: Value = response.json().await.expect("JSON error body");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(body["error"]["innerError"]["date"].is_string(), "{body}");
    assert!(
        body["error"]["innerError"]["request-id"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body
}
