//! The `[graph]` section: where Graph is, how the facade reaches it (proxy, timeouts, retries,
//! breaker) and with which credential. `prepare` reads what the section points at (secret
//! files, the certificate, the platform's environment) once, at start-up.

use std::path::PathBuf;
use std::time::Duration;

use axum::http::HeaderName;
use serde::{Deserialize, Serialize};

use super::credential::{Certificate, ClientAuth, Source};
use crate::values::{Problems, Secret, SecureUrl, is_loopback, secret_from};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GraphConfig {
    pub base_url: SecureUrl,
    pub on_behalf_of: bool,
    pub forward_headers: Vec<String>,
    pub timeout_secs: u64,
    pub max_retries: u32,
    /// Longest `Retry-After` from Graph that the facade waits out itself before retrying; a
    /// longer one is handed back to the caller.
    pub max_retry_after_secs: u64,
    pub credential: CredentialConfig,
    /// Outbound proxy; without it the standard `*_PROXY` environment variables apply.
    pub proxy: Option<ProxyConfig>,
    pub breaker: BreakerConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    #[serde(default)]
    pub url: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub no_proxy: Vec<String>,
}

/// The circuit breaker in front of Graph: after `failure_threshold` failed calls in a row
/// (connection failures, timeouts, 5xx after retries) starts fail fast for `open_secs`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    pub failure_threshold: u32,
    pub open_secs: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            open_secs: 30,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    ClientSecret,
    ClientCertificate,
    WorkloadIdentity,
    ManagedIdentity,
    Static,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CredentialConfig {
    pub kind: CredentialKind,
    pub authority: SecureUrl,
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    pub client_secret_file: Option<PathBuf>,
    pub certificate_file: Option<PathBuf>,
    pub federated_token_file: Option<PathBuf>,
    pub endpoint: Option<String>,
    /// `managed_identity` on App Service, Functions and Container Apps: the secret sent as
    /// `X-IDENTITY-HEADER`. Taken, with `endpoint`, from `IDENTITY_HEADER` and
    /// `IDENTITY_ENDPOINT` when those platforms set them; without it, IMDS (VMs) is asked.
    pub identity_header: Option<Secret>,
    pub token: Option<Secret>,
    pub token_file: Option<PathBuf>,
    /// The scope requested for Graph tokens.
    pub scope: String,
}

fn url(text: &str) -> SecureUrl {
    text.parse().expect("a valid built-in URL")
}

impl Default for GraphConfig {
    fn default() -> Self {
        Self {
            base_url: url("https://graph.microsoft.com"),
            on_behalf_of: false,
            forward_headers: vec!["client-request-id".into(), "Accept-Language".into()],
            timeout_secs: 30,
            max_retries: 3,
            max_retry_after_secs: 10,
            credential: CredentialConfig::default(),
            proxy: None,
            breaker: BreakerConfig::default(),
        }
    }
}

impl Default for CredentialConfig {
    fn default() -> Self {
        Self {
            kind: CredentialKind::ClientSecret,
            authority: url("https://login.microsoftonline.com"),
            tenant_id: None,
            client_id: None,
            client_secret: None,
            client_secret_file: None,
            certificate_file: None,
            federated_token_file: None,
            endpoint: None,
            identity_header: None,
            token: None,
            token_file: None,
            scope: "https://graph.microsoft.com/.default".into(),
        }
    }
}

/// IMDS, the managed identity endpoint of VMs.
const IMDS: &str = "http://169.254.169.254/metadata/identity/oauth2/token";

/// Headers a caller can never have forwarded to Graph.
const NEVER_FORWARDED: [&str; 12] = [
    "authorization",
    "host",
    "content-length",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// What the section points at, read and built once.
pub struct Prepared {
    pub credential: Source,
    pub proxy: Option<reqwest::Proxy>,
    pub forward_headers: Vec<HeaderName>,
}

impl GraphConfig {
    /// The longest a start can take upstream: every attempt timing out and every retry
    /// waiting its longest, plus the preflight read. Waits on another request's start are
    /// bounded by it.
    pub fn flight_bound(&self) -> Duration {
        let attempts = u64::from(self.max_retries) + 1;
        let one_call =
            self.timeout_secs * attempts + self.max_retry_after_secs * u64::from(self.max_retries);
        Duration::from_secs(2 * one_call + 5)
    }

    /// Takes what the platform provides (Azure's workload identity and App Service variables)
    /// where the section leaves it open, checks every key, and reads the files it names.
    pub fn prepare(
        &mut self,
        env: &dyn Fn(&str) -> Option<String>,
        problems: &mut Problems,
    ) -> Option<Prepared> {
        self.credential.apply_platform(env);
        problems.within("graph.timeout_secs", self.timeout_secs, 1, 600);
        problems.within("graph.max_retries", u64::from(self.max_retries), 0, 10);
        problems.within(
            "graph.max_retry_after_secs",
            self.max_retry_after_secs,
            0,
            600,
        );
        problems.within(
            "graph.breaker.failure_threshold",
            u64::from(self.breaker.failure_threshold),
            1,
            1000,
        );
        problems.within("graph.breaker.open_secs", self.breaker.open_secs, 1, 3600);
        let mut forward_headers = Vec::new();
        for (i, name) in self.forward_headers.iter().enumerate() {
            let key = format!("graph.forward_headers[{i}]");
            match HeaderName::from_bytes(name.as_bytes()) {
                Err(_) => problems.add(key, format!("'{name}' is not a valid header name")),
                Ok(header) if NEVER_FORWARDED.contains(&header.as_str()) => {
                    problems.add(key, format!("'{name}' is never forwarded to Graph"));
                }
                Ok(header) => forward_headers.push(header),
            }
        }
        let credential = self.credential.source(problems);
        if self.on_behalf_of && !self.credential.is_confidential() {
            problems.add(
                "graph.on_behalf_of",
                "on-behalf-of needs a confidential client credential (client_secret, client_certificate or workload_identity)",
            );
        }
        let proxy = match &self.proxy {
            Some(proxy) => Some(proxy.build(problems)?),
            None => None,
        };
        Some(Prepared {
            credential: credential?,
            proxy,
            forward_headers,
        })
    }
}

impl CredentialConfig {
    fn is_confidential(&self) -> bool {
        matches!(
            self.kind,
            CredentialKind::ClientSecret
                | CredentialKind::ClientCertificate
                | CredentialKind::WorkloadIdentity
        )
    }

    /// The workload identity webhook sets `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and
    /// `AZURE_FEDERATED_TOKEN_FILE`; App Service, Functions and Container Apps set
    /// `IDENTITY_ENDPOINT` and `IDENTITY_HEADER`. Each fills only what the section leaves open.
    pub fn apply_platform(&mut self, env: &dyn Fn(&str) -> Option<String>) {
        let present = |name: &str| env(name).filter(|v| !v.is_empty());
        match self.kind {
            CredentialKind::WorkloadIdentity => {
                self.tenant_id = self.tenant_id.take().or_else(|| present("AZURE_TENANT_ID"));
                self.client_id = self.client_id.take().or_else(|| present("AZURE_CLIENT_ID"));
                self.federated_token_file = self
                    .federated_token_file
                    .take()
                    .or_else(|| present("AZURE_FEDERATED_TOKEN_FILE").map(PathBuf::from));
            }
            CredentialKind::ManagedIdentity
                if self.endpoint.is_none() && self.identity_header.is_none() =>
            {
                if let (Some(endpoint), Some(header)) =
                    (present("IDENTITY_ENDPOINT"), present("IDENTITY_HEADER"))
                {
                    self.endpoint = Some(endpoint);
                    self.identity_header = Some(Secret::new(header));
                }
            }
            _ => {}
        }
    }

    /// Where the facade's tokens come from, with every file it names read now.
    fn source(&self, problems: &mut Problems) -> Option<Source> {
        let key = |field: &str| format!("graph.credential.{field}");
        match self.kind {
            CredentialKind::Static => problems
                .check(
                    &key("token"),
                    secret_from(
                        &key("token"),
                        self.token.as_ref(),
                        self.token_file.as_deref(),
                    ),
                )
                .map(Source::Static),
            CredentialKind::ManagedIdentity => {
                let endpoint = self.endpoint.clone().unwrap_or_else(|| IMDS.into());
                problems.check(&key("endpoint"), check_local_endpoint(&endpoint));
                if let Some(client_id) = &self.client_id
                    && crate::ids::AppId::parse(client_id).is_err()
                {
                    problems.add(
                        key("client_id"),
                        "a user-assigned identity's client id must be a GUID",
                    );
                }
                Some(Source::ManagedIdentity {
                    endpoint,
                    client_id: self.client_id.clone(),
                    resource: self.scope.trim_end_matches("/.default").to_owned(),
                    identity_header: self.identity_header.clone(),
                })
            }
            CredentialKind::ClientSecret
            | CredentialKind::ClientCertificate
            | CredentialKind::WorkloadIdentity => {
                let tenant = self
                    .tenant_id
                    .clone()
                    .filter(|t| {
                        !t.is_empty()
                            && t.bytes()
                                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'))
                    })
                    .or_else(|| {
                        problems.add(key("tenant_id"), "a tenant id or domain is required");
                        None
                    });
                let client_id = self
                    .client_id
                    .clone()
                    .filter(|c| crate::ids::AppId::parse(c).is_ok())
                    .or_else(|| {
                        problems.add(
                            key("client_id"),
                            "the facade's application (client) id, a GUID, is required",
                        );
                        None
                    });
                let auth = match self.kind {
                    CredentialKind::ClientSecret => problems
                        .check(
                            &key("client_secret"),
                            secret_from(
                                &key("client_secret"),
                                self.client_secret.as_ref(),
                                self.client_secret_file.as_deref(),
                            ),
                        )
                        .map(ClientAuth::Secret),
                    CredentialKind::ClientCertificate => {
                        let loaded = match self.certificate_file.as_deref() {
                            None => Err("a PEM file holding the certificate and its private key is required".to_owned()),
                            Some(path) => Certificate::load(path),
                        };
                        problems
                            .check(&key("certificate_file"), loaded)
                            .map(|c| ClientAuth::Certificate(Box::new(c)))
                    }
                    _ => match &self.federated_token_file {
                        Some(path) if !path.as_os_str().is_empty() => {
                            Some(ClientAuth::FederatedTokenFile(path.clone()))
                        }
                        _ => {
                            problems.add(
                                key("federated_token_file"),
                                "required (or the AZURE_FEDERATED_TOKEN_FILE environment variable)",
                            );
                            None
                        }
                    },
                };
                Some(Source::Confidential {
                    token_url: format!(
                        "{}/{}/oauth2/v2.0/token",
                        self.authority.as_str().trim_end_matches('/'),
                        tenant?
                    ),
                    client_id: client_id?,
                    auth: auth?,
                    scope: self.scope.clone(),
                })
            }
        }
    }
}

impl ProxyConfig {
    /// The proxy, with its password read; `None` (and problems) when it cannot be.
    fn build(&self, problems: &mut Problems) -> Option<reqwest::Proxy> {
        const NOT_A_PROXY: &str = "must be an http:// or https:// proxy URL";
        let url = match reqwest::Url::parse(&self.url) {
            _ if self.url.is_empty() => Err("required when [graph.proxy] sets other keys"),
            Ok(url) if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() => {
                Err(NOT_A_PROXY)
            }
            Ok(url) if !url.username().is_empty() || url.password().is_some() => {
                Err("give credentials as graph.proxy.username and password, not in the URL")
            }
            Ok(url) => Ok(url),
            Err(_) => Err(NOT_A_PROXY),
        };
        let url = problems.check("graph.proxy.url", url.map_err(str::to_owned))?;
        let password = match (&self.password, &self.password_file) {
            (None, None) => None,
            (inline, file) => problems.check(
                "graph.proxy.password",
                secret_from("graph.proxy.password", inline.as_ref(), file.as_deref()),
            ),
        };
        let mut proxy = reqwest::Proxy::all(url.as_str()).ok()?;
        match (&self.username, password) {
            (Some(username), Some(password)) => {
                proxy = proxy.basic_auth(username, password.expose());
            }
            (Some(_), None) => {
                problems.add(
                    "graph.proxy.password",
                    "graph.proxy.password or password_file is required with a username",
                );
            }
            (None, Some(_)) => problems.add("graph.proxy.username", "required with a password"),
            (None, None) => {}
        }
        Some(proxy.no_proxy(reqwest::NoProxy::from_string(&self.no_proxy.join(","))))
    }
}

/// The managed-identity endpoint is plain HTTP by design, on a link-local (IMDS) or loopback
/// address; anything else must be https.
fn check_local_endpoint(text: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(text).map_err(|e| format!("'{text}' is not a URL: {e}"))?;
    let local =
        is_loopback(&url) || matches!(url.host(), Some(url::Host::Ipv4(ip)) if ip.is_link_local());
    match url.scheme() {
        "https" => Ok(()),
        "http" if local => Ok(()),
        _ => Err(format!(
            "'{text}' must be https://, or http:// on a link-local or loopback address"
        )),
    }
}
