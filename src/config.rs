//! Configuration: one TOML file, overridden key by key by `SYNCJOB_<SECTION>__<KEY>` environment
//! variables, validated once at start-up. Invalid configuration is an error naming the key; after
//! `Config::load` succeeds the rest of the program can trust every value.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};

/// A secret value: never printed, never serialised in clear (`check-config` shows it redacted).
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("[redacted]")
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub auth: AuthConfig,
    pub graph: GraphConfig,
    pub guard: GuardConfig,
    pub webhooks: Vec<WebhookConfig>,
}

/// How a webhook sender signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WebhookScheme {
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    #[default]
    Standard,
    /// GitHub: `X-Hub-Signature-256`, `X-GitHub-Delivery`.
    Github,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub name: String,
    #[serde(default)]
    pub scheme: WebhookScheme,
    /// Any one of them verifies (rotation). Standard Webhooks secrets are `whsec_<base64>`.
    #[serde(default)]
    pub secrets: Vec<Secret>,
    /// A file with more secrets, one per line (a mounted Kubernetes Secret); read at start-up.
    #[serde(default)]
    pub secrets_file: Option<PathBuf>,
    /// True: an Entra bearer token, authorised like any caller, also works.
    #[serde(default)]
    pub allow_bearer: bool,
    #[serde(default = "default_api_version")]
    pub api_version: String,
    pub targets: Vec<WebhookTarget>,
}

fn default_api_version() -> String {
    "v1.0".into()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookTarget {
    pub service_principal_id: String,
    pub synchronization_job_id: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: String,
    pub body_limit_bytes: usize,
    pub request_timeout_secs: u64,
    /// On SIGTERM / ctrl-c: how long `/readyz` answers 503 while new requests are still
    /// served, so that load balancers stop routing here first.
    pub shutdown_delay_secs: u64,
    /// Then: how long in-flight requests may take before the process exits.
    pub shutdown_grace_secs: u64,
    /// Start requests handled at once; more are shed with 503. 0: no limit.
    pub max_concurrent_starts: usize,
    /// Start requests per caller (tenant + object id) per minute; 0: no limit.
    pub rate_limit_per_minute: u32,
    /// Requests a caller may send at once above the steady rate.
    pub rate_limit_burst: u32,
    /// Origins allowed by CORS (portals in a browser); empty: CORS off.
    pub cors_allowed_origins: Vec<String>,
    /// A request head must arrive within this time of its first byte (of the connection's
    /// opening, for the first request).
    pub header_read_timeout_secs: u64,
    /// A connection with no request in flight is closed after this time.
    pub idle_timeout_secs: u64,
    /// Connections open at once; beyond it new ones wait in the listen backlog.
    pub max_connections: usize,
    /// Largest request head (request line and headers) in bytes; larger ones are refused.
    pub max_header_bytes: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub issuers: Vec<String>,
    pub audiences: Vec<String>,
    pub jwks_url: Option<String>,
    pub openid_config_url: Option<String>,
    pub algorithms: Vec<String>,
    pub leeway_secs: u64,
    pub allowed_tenants: Vec<String>,
    pub require_directory_role: bool,
    pub delegated_scopes: Vec<String>,
    pub application_roles: Vec<String>,
    pub owned_by_roles: Vec<String>,
    /// Directory role template ids that let a delegated caller start a job when the facade
    /// forwards with its own credential.
    pub directory_roles: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GraphConfig {
    pub base_url: String,
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
    pub authority: String,
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

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardConfig {
    pub store: String,
    /// `rediss://`: PEM certificates trusted in addition to the system roots.
    pub store_ca_file: Option<PathBuf>,
    /// The Redis password when it is not in the URL (Azure's access key); read at each new
    /// connection, so a rotated key is picked up.
    pub store_password_file: Option<PathBuf>,
    pub cooldown_secs: u64,
    pub preflight: bool,
    /// Bound of each in-memory table (flights and cooldowns; idempotency records).
    pub memory_max_entries: u64,
}

/// Role template ids of Application Administrator, Cloud Application Administrator, Hybrid
/// Identity Administrator and Global Administrator.
pub const DEFAULT_DIRECTORY_ROLES: [&str; 4] = [
    "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3",
    "158c047a-c907-4556-b7ef-446551a6b5f7",
    "8ac3fc64-6eca-42ea-9e69-59f4c7b60eb2",
    "62e90394-69f5-4237-9190-012177145e10",
];

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            body_limit_bytes: 65536,
            request_timeout_secs: 30,
            shutdown_delay_secs: 0,
            shutdown_grace_secs: 30,
            max_concurrent_starts: 256,
            rate_limit_per_minute: 60,
            rate_limit_burst: 20,
            cors_allowed_origins: Vec::new(),
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
            max_connections: 10_000,
            max_header_bytes: 32 * 1024,
        }
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            issuers: Vec::new(),
            audiences: strings(&["api://syncjob-facade"]),
            jwks_url: None,
            openid_config_url: None,
            algorithms: strings(&["RS256"]),
            leeway_secs: 60,
            allowed_tenants: Vec::new(),
            require_directory_role: true,
            delegated_scopes: strings(&["Synchronization.ReadWrite.All"]),
            application_roles: strings(&["Synchronization.ReadWrite.All"]),
            owned_by_roles: strings(&["Application.ReadWrite.OwnedBy"]),
            directory_roles: strings(&DEFAULT_DIRECTORY_ROLES),
        }
    }
}

impl Default for GraphConfig {
    fn default() -> Self {
        Self {
            base_url: "https://graph.microsoft.com".into(),
            on_behalf_of: false,
            forward_headers: strings(&["client-request-id", "Accept-Language"]),
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
            authority: "https://login.microsoftonline.com".into(),
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

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            store: "memory".into(),
            store_ca_file: None,
            store_password_file: None,
            cooldown_secs: 300,
            preflight: true,
            memory_max_entries: 100_000,
        }
    }
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.to_owned(),
        message: message.into(),
    }
}

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

impl Config {
    /// The defaults overridden by a configuration text (no environment, not validated): how
    /// `dev` and the tests configure a facade for an emulator.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(text))
            .extract()
            .map_err(|error| invalid(&error.path.join("."), error.kind.to_string()))
    }

    /// Loads the file (when given), then the `SYNCJOB_` environment, then validates.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(invalid(
                    "--config",
                    format!("file {} does not exist", path.display()),
                ));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        // Only SYNCJOB_<SECTION>__<KEY> are keys: SYNCJOB_CONFIG names the file, and other
        // SYNCJOB_* variables (SYNCJOB_PORT from a Kubernetes Service named syncjob, test
        // switches) are not configuration.
        const SECTIONS: [&str; 5] = ["server__", "auth__", "graph__", "guard__", "webhooks__"];
        figment = figment.merge(
            Env::prefixed("SYNCJOB_")
                .filter(|key| {
                    SECTIONS
                        .iter()
                        .any(|section| key.as_str().to_ascii_lowercase().starts_with(section))
                })
                .split("__"),
        );
        let config: Config = figment.extract().map_err(|error| {
            let key = error.path.join(".");
            invalid(
                if key.is_empty() { "(file)" } else { &key },
                error.kind.to_string(),
            )
        })?;
        let mut config = config;
        // `[graph.proxy]` with every key commented out (as in the documented sample) is no proxy.
        if config.graph.proxy.as_ref().is_some_and(|p| {
            p.url.is_empty()
                && p.username.is_none()
                && p.password.is_none()
                && p.password_file.is_none()
                && p.no_proxy.is_empty()
        }) {
            config.graph.proxy = None;
        }
        config.read_webhook_secret_files()?;
        config.apply_platform_identity(|name| std::env::var(name).ok());
        config.validate()?;
        Ok(config)
    }

    /// Settings that validate but are likely not what the operator meant, in words.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let is_guid = |text: &str| crate::ids::AppId::parse(text).is_ok();
        let v2_issuers: Vec<&String> = self
            .auth
            .issuers
            .iter()
            .filter(|issuer| issuer.trim_end_matches('/').ends_with("/v2.0"))
            .collect();
        if !v2_issuers.is_empty() && !self.auth.audiences.iter().any(|aud| is_guid(aud)) {
            warnings.push(format!(
                "auth.audiences holds no client id, but {} issues v2.0 tokens, whose aud is the API's application (client) id, not its App ID URI: such tokens will be refused. Add the API's client id to auth.audiences, or use the v1 issuer https://sts.windows.net/<tenant>/ if the API issues v1 tokens (the default).",
                v2_issuers[0]
            ));
        }
        warnings
    }

    /// A managed identity on App Service, Functions or Container Apps: those platforms set
    /// `IDENTITY_ENDPOINT` and `IDENTITY_HEADER`, and the identity is asked there rather than at
    /// IMDS, unless the configuration names an endpoint itself.
    pub fn apply_platform_identity(&mut self, env: impl Fn(&str) -> Option<String>) {
        let credential = &mut self.graph.credential;
        if credential.kind != CredentialKind::ManagedIdentity
            || credential.endpoint.is_some()
            || credential.identity_header.is_some()
        {
            return;
        }
        let present = |name: &str| env(name).filter(|v| !v.is_empty());
        if let (Some(endpoint), Some(header)) =
            (present("IDENTITY_ENDPOINT"), present("IDENTITY_HEADER"))
        {
            credential.endpoint = Some(endpoint);
            credential.identity_header = Some(Secret::new(header));
        }
    }

    /// Adds each hook's `secrets_file` lines to its secrets.
    fn read_webhook_secret_files(&mut self) -> Result<(), ConfigError> {
        for (i, hook) in self.webhooks.iter_mut().enumerate() {
            let Some(path) = hook.secrets_file.take() else {
                continue;
            };
            let key = format!("webhooks[{i}].secrets_file");
            let text = std::fs::read_to_string(&path)
                .map_err(|e| invalid(&key, format!("cannot read {}: {e}", path.display())))?;
            let before = hook.secrets.len();
            hook.secrets.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(Secret::new),
            );
            if hook.secrets.len() == before {
                return Err(invalid(&key, format!("{} holds no secret", path.display())));
            }
            // Shown again by check-config, so that the source stays visible.
            hook.secrets_file = Some(path);
        }
        Ok(())
    }

    /// Checks every value; reads `*_file` secrets so a missing file stops start-up.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        if self.server.body_limit_bytes == 0 {
            return Err(invalid("server.body_limit_bytes", "must be greater than 0"));
        }
        if self.server.request_timeout_secs == 0 {
            return Err(invalid(
                "server.request_timeout_secs",
                "must be greater than 0",
            ));
        }
        for (key, value) in [
            (
                "server.header_read_timeout_secs",
                self.server.header_read_timeout_secs,
            ),
            ("server.idle_timeout_secs", self.server.idle_timeout_secs),
            ("server.max_connections", self.server.max_connections as u64),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be greater than 0"));
            }
        }
        if self.server.max_header_bytes < 8192 {
            return Err(invalid("server.max_header_bytes", "must be at least 8192"));
        }
        let auth = &self.auth;
        if auth.issuers.is_empty() {
            return Err(invalid("auth.issuers", "at least one issuer is required"));
        }
        for (i, issuer) in auth.issuers.iter().enumerate() {
            check_url(&format!("auth.issuers[{i}]"), issuer)?;
        }
        if auth.audiences.is_empty() || auth.audiences.iter().any(|a| a.trim().is_empty()) {
            return Err(invalid(
                "auth.audiences",
                "at least one non-empty audience is required",
            ));
        }
        if let Some(url) = &auth.jwks_url {
            check_url("auth.jwks_url", url)?;
        }
        if let Some(url) = &auth.openid_config_url {
            check_url("auth.openid_config_url", url)?;
        }
        self.algorithms()?;
        if auth.leeway_secs > 600 {
            return Err(invalid("auth.leeway_secs", "must be at most 600 seconds"));
        }
        if auth.allowed_tenants.is_empty()
            && !auth
                .issuers
                .iter()
                .any(|issuer| crate::auth::tenant_of_issuer(issuer).is_some())
        {
            return Err(invalid(
                "auth.allowed_tenants",
                "no issuer names a tenant id: list the allowed tenant ids",
            ));
        }
        for (i, tenant) in auth.allowed_tenants.iter().enumerate() {
            if crate::ids::ServicePrincipalId::parse(tenant).is_err() {
                return Err(invalid(
                    &format!("auth.allowed_tenants[{i}]"),
                    "must be a tenant id (GUID)",
                ));
            }
        }
        for (key, list) in [
            ("auth.delegated_scopes", &auth.delegated_scopes),
            ("auth.application_roles", &auth.application_roles),
        ] {
            if list.is_empty() || list.iter().any(|s| s.trim().is_empty()) {
                return Err(invalid(
                    key,
                    "at least one non-empty permission name is required",
                ));
            }
        }
        let graph = &self.graph;
        check_url("graph.base_url", &graph.base_url)?;
        if graph.timeout_secs == 0 {
            return Err(invalid("graph.timeout_secs", "must be greater than 0"));
        }
        if graph.max_retries > 10 {
            return Err(invalid("graph.max_retries", "must be at most 10"));
        }
        for (i, name) in graph.forward_headers.iter().enumerate() {
            let key = format!("graph.forward_headers[{i}]");
            if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(invalid(
                    &key,
                    format!("'{name}' is not a valid header name"),
                ));
            }
            if NEVER_FORWARDED.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(invalid(
                    &key,
                    format!("'{name}' is never forwarded to Graph"),
                ));
            }
        }
        self.validate_credential()?;
        for (i, origin) in self.server.cors_allowed_origins.iter().enumerate() {
            let parsed = reqwest::Url::parse(origin).ok().filter(|u| {
                matches!(u.scheme(), "http" | "https") && u.path() == "/" && u.query().is_none()
            });
            if parsed.is_none() || origin.ends_with('/') {
                return Err(invalid(
                    &format!("server.cors_allowed_origins[{i}]"),
                    format!("'{origin}' is not an origin (scheme://host[:port])"),
                ));
            }
        }
        if self.server.rate_limit_per_minute > 0 && self.server.rate_limit_burst == 0 {
            return Err(invalid(
                "server.rate_limit_burst",
                "must be at least 1 when rate_limit_per_minute is set",
            ));
        }
        self.validate_bounds()?;
        self.validate_webhooks()?;
        self.validate_store()?;
        if self.guard.cooldown_secs > 86_400 {
            return Err(invalid("guard.cooldown_secs", "must be at most 86400"));
        }
        if self.guard.memory_max_entries < 100 {
            return Err(invalid("guard.memory_max_entries", "must be at least 100"));
        }
        Ok(())
    }

    fn validate_store(&self) -> Result<(), ConfigError> {
        let guard = &self.guard;
        let store = guard.store.as_str();
        let tls = store.starts_with("rediss://");
        if store != "memory" {
            if !tls && !store.starts_with("redis://") {
                return Err(invalid(
                    "guard.store",
                    "must be \"memory\" or a redis:// or rediss:// URL",
                ));
            }
            if let Err(error) = redis::Client::open(store) {
                return Err(invalid(
                    "guard.store",
                    format!(
                        "not a usable Redis URL: {}",
                        redact_url_password(&error.to_string())
                    ),
                ));
            }
        }
        if let Some(path) = &guard.store_ca_file {
            if !tls {
                return Err(invalid(
                    "guard.store_ca_file",
                    "applies only to a rediss:// (TLS) store",
                ));
            }
            self.store_ca_pem(path)?;
        }
        if let Some(path) = &guard.store_password_file {
            if store == "memory" {
                return Err(invalid(
                    "guard.store_password_file",
                    "applies only to a Redis store",
                ));
            }
            if reqwest::Url::parse(store).is_ok_and(|url| url.password().is_some()) {
                return Err(invalid(
                    "guard.store_password_file",
                    "the guard.store URL holds a password already; give it in one place",
                ));
            }
            crate::guard::store::read_password_file(path)
                .map_err(|e| invalid("guard.store_password_file", e))?;
        }
        Ok(())
    }

    /// The extra roots of a `rediss://` store: a readable PEM file with at least one certificate.
    pub fn store_ca_pem(&self, path: &Path) -> Result<Vec<u8>, ConfigError> {
        let key = "guard.store_ca_file";
        let pem = std::fs::read(path)
            .map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))?;
        let text = String::from_utf8_lossy(&pem);
        if !text.contains("-----BEGIN CERTIFICATE-----") {
            return Err(invalid(
                key,
                format!("{} holds no PEM certificate", path.display()),
            ));
        }
        Ok(pem)
    }

    fn validate_credential(&self) -> Result<(), ConfigError> {
        let credential = &self.graph.credential;
        let confidential = matches!(
            credential.kind,
            CredentialKind::ClientSecret
                | CredentialKind::ClientCertificate
                | CredentialKind::WorkloadIdentity
        );
        if confidential {
            check_url("graph.credential.authority", &credential.authority)?;
            let tenant = self.tenant_id().unwrap_or_default();
            if tenant.is_empty()
                || !tenant
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'))
            {
                return Err(invalid(
                    "graph.credential.tenant_id",
                    "a tenant id or domain is required",
                ));
            }
            if self
                .client_id()
                .is_none_or(|c| crate::ids::AppId::parse(&c).is_err())
            {
                return Err(invalid(
                    "graph.credential.client_id",
                    "the facade's application (client) id, a GUID, is required",
                ));
            }
        }
        match credential.kind {
            CredentialKind::Static => {
                self.static_token()?;
            }
            CredentialKind::ClientSecret => {
                self.client_secret()?;
            }
            CredentialKind::ClientCertificate => {
                let path = credential.certificate_file.as_deref().ok_or_else(|| {
                    invalid(
                        "graph.credential.certificate_file",
                        "a PEM file holding the certificate and its private key is required",
                    )
                })?;
                crate::graph::credential::Certificate::load(path)
                    .map_err(|e| invalid("graph.credential.certificate_file", e))?;
            }
            CredentialKind::WorkloadIdentity => {
                let path = self.federated_token_file().ok_or_else(|| {
                    invalid(
                        "graph.credential.federated_token_file",
                        "required (or the AZURE_FEDERATED_TOKEN_FILE environment variable)",
                    )
                })?;
                if path.as_os_str().is_empty() {
                    return Err(invalid(
                        "graph.credential.federated_token_file",
                        "must not be empty",
                    ));
                }
            }
            CredentialKind::ManagedIdentity => {
                let endpoint = self.managed_identity_endpoint();
                check_managed_identity_endpoint(&endpoint)?;
                if let Some(client_id) = &credential.client_id
                    && crate::ids::AppId::parse(client_id).is_err()
                {
                    return Err(invalid(
                        "graph.credential.client_id",
                        "a user-assigned identity's client id must be a GUID",
                    ));
                }
            }
        }
        if self.graph.on_behalf_of && !confidential {
            return Err(invalid(
                "graph.on_behalf_of",
                "on-behalf-of needs a confidential client credential (client_secret, client_certificate or workload_identity)",
            ));
        }
        if let Some(proxy) = &self.graph.proxy {
            self.validate_proxy(proxy)?;
        }
        if self.graph.breaker.failure_threshold == 0 {
            return Err(invalid(
                "graph.breaker.failure_threshold",
                "must be at least 1",
            ));
        }
        if self.graph.breaker.open_secs == 0 {
            return Err(invalid("graph.breaker.open_secs", "must be at least 1"));
        }
        Ok(())
    }

    /// Upper bounds, so that no number that validates can overflow or panic later.
    fn validate_bounds(&self) -> Result<(), ConfigError> {
        let server = &self.server;
        let graph = &self.graph;
        let bounds: [(&str, u64, u64); 17] = [
            (
                "server.header_read_timeout_secs",
                server.header_read_timeout_secs,
                600,
            ),
            ("server.idle_timeout_secs", server.idle_timeout_secs, 3600),
            (
                "server.max_connections",
                server.max_connections as u64,
                1_000_000,
            ),
            (
                "server.max_header_bytes",
                server.max_header_bytes as u64,
                1024 * 1024,
            ),
            (
                "server.body_limit_bytes",
                server.body_limit_bytes as u64,
                16 * 1024 * 1024,
            ),
            (
                "server.request_timeout_secs",
                server.request_timeout_secs,
                3600,
            ),
            (
                "server.shutdown_delay_secs",
                server.shutdown_delay_secs,
                600,
            ),
            (
                "server.shutdown_grace_secs",
                server.shutdown_grace_secs,
                3600,
            ),
            (
                "server.max_concurrent_starts",
                server.max_concurrent_starts as u64,
                100_000,
            ),
            (
                "server.rate_limit_per_minute",
                u64::from(server.rate_limit_per_minute),
                1_000_000,
            ),
            (
                "server.rate_limit_burst",
                u64::from(server.rate_limit_burst),
                100_000,
            ),
            ("graph.timeout_secs", graph.timeout_secs, 600),
            (
                "graph.max_retry_after_secs",
                graph.max_retry_after_secs,
                600,
            ),
            (
                "graph.breaker.failure_threshold",
                u64::from(graph.breaker.failure_threshold),
                1000,
            ),
            ("graph.breaker.open_secs", graph.breaker.open_secs, 3600),
            ("guard.cooldown_secs", self.guard.cooldown_secs, 86_400),
            (
                "guard.memory_max_entries",
                self.guard.memory_max_entries,
                100_000_000,
            ),
        ];
        for (key, value, most) in bounds {
            if value > most {
                return Err(invalid(key, format!("must be at most {most}")));
            }
        }
        Ok(())
    }

    fn validate_webhooks(&self) -> Result<(), ConfigError> {
        let mut names = std::collections::HashSet::new();
        for (i, hook) in self.webhooks.iter().enumerate() {
            let key = |field: &str| format!("webhooks[{i}].{field}");
            let name_ok = !hook.name.is_empty()
                && hook.name.len() <= 64
                && hook
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
            if !name_ok {
                return Err(invalid(
                    &key("name"),
                    "1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '-'",
                ));
            }
            if !names.insert(hook.name.as_str()) {
                return Err(invalid(
                    &key("name"),
                    format!("'{}' is configured twice", hook.name),
                ));
            }
            if hook.secrets.is_empty() && !hook.allow_bearer {
                return Err(invalid(
                    &key("secrets"),
                    "at least one secret is required unless allow_bearer = true",
                ));
            }
            for (j, secret) in hook.secrets.iter().enumerate() {
                let secret_key = format!("webhooks[{i}].secrets[{j}]");
                match hook.scheme {
                    WebhookScheme::Standard => {
                        crate::webhooks::standard_secret(secret.expose())
                            .map_err(|e| invalid(&secret_key, e))?;
                    }
                    WebhookScheme::Github if secret.expose().is_empty() => {
                        return Err(invalid(&secret_key, "must not be empty"));
                    }
                    WebhookScheme::Github => {}
                }
            }
            if crate::ids::ApiVersion::parse(&hook.api_version).is_none() {
                return Err(invalid(&key("api_version"), "v1.0 or beta"));
            }
            if hook.targets.is_empty() || hook.targets.len() > 20 {
                return Err(invalid(&key("targets"), "1 to 20 targets"));
            }
            for (j, target) in hook.targets.iter().enumerate() {
                crate::ids::ServicePrincipalId::parse(&target.service_principal_id).map_err(
                    |e| {
                        invalid(
                            &format!("webhooks[{i}].targets[{j}].service_principal_id"),
                            e.message,
                        )
                    },
                )?;
                crate::ids::JobId::parse(&target.synchronization_job_id).map_err(|e| {
                    invalid(
                        &format!("webhooks[{i}].targets[{j}].synchronization_job_id"),
                        e.message,
                    )
                })?;
            }
        }
        Ok(())
    }

    fn validate_proxy(&self, proxy: &ProxyConfig) -> Result<(), ConfigError> {
        if proxy.url.is_empty() {
            return Err(invalid(
                "graph.proxy.url",
                "required when [graph.proxy] sets other keys",
            ));
        }
        let url = reqwest::Url::parse(&proxy.url).map_err(|e| {
            invalid(
                "graph.proxy.url",
                format!("'{}' is not a URL: {e}", proxy.url),
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(invalid(
                "graph.proxy.url",
                "must be an http:// or https:// proxy URL",
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                "graph.proxy.url",
                "give credentials as graph.proxy.username and password, not in the URL",
            ));
        }
        match (&proxy.username, self.proxy_password()?) {
            (Some(_), None) => Err(invalid(
                "graph.proxy.password",
                "graph.proxy.password or password_file is required with a username",
            )),
            (None, Some(_)) => Err(invalid("graph.proxy.username", "required with a password")),
            _ => Ok(()),
        }
    }

    /// The proxy password, inline or from `password_file`.
    pub fn proxy_password(&self) -> Result<Option<Secret>, ConfigError> {
        let Some(proxy) = &self.graph.proxy else {
            return Ok(None);
        };
        if proxy.password.is_none() && proxy.password_file.is_none() {
            return Ok(None);
        }
        secret_from(
            "graph.proxy.password",
            proxy.password.as_ref(),
            proxy.password_file.as_deref(),
        )
        .map(Some)
    }

    /// `graph.credential.tenant_id`, else `AZURE_TENANT_ID` (set by the workload identity webhook).
    pub fn tenant_id(&self) -> Option<String> {
        self.graph
            .credential
            .tenant_id
            .clone()
            .or_else(|| self.azure_env("AZURE_TENANT_ID"))
    }

    /// `graph.credential.client_id`, else `AZURE_CLIENT_ID` for workload identity.
    pub fn client_id(&self) -> Option<String> {
        self.graph
            .credential
            .client_id
            .clone()
            .or_else(|| self.azure_env("AZURE_CLIENT_ID"))
    }

    pub fn federated_token_file(&self) -> Option<PathBuf> {
        self.graph
            .credential
            .federated_token_file
            .clone()
            .or_else(|| {
                self.azure_env("AZURE_FEDERATED_TOKEN_FILE")
                    .map(PathBuf::from)
            })
    }

    pub fn managed_identity_endpoint(&self) -> String {
        self.graph
            .credential
            .endpoint
            .clone()
            .unwrap_or_else(|| "http://169.254.169.254/metadata/identity/oauth2/token".into())
    }

    /// The Azure SDK's environment variables apply to workload identity only.
    fn azure_env(&self, name: &str) -> Option<String> {
        (self.graph.credential.kind == CredentialKind::WorkloadIdentity)
            .then(|| std::env::var(name).ok())
            .flatten()
            .filter(|v| !v.is_empty())
    }

    /// The longest a start can take upstream: every attempt timing out and every retry
    /// waiting its longest, plus the preflight read. Waits on another request's start are
    /// bounded by it.
    pub fn flight_bound(&self) -> std::time::Duration {
        let graph = &self.graph;
        let attempts = u64::from(graph.max_retries) + 1;
        let one_call = graph.timeout_secs * attempts
            + graph.max_retry_after_secs * u64::from(graph.max_retries);
        std::time::Duration::from_secs(2 * one_call + 5)
    }

    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.server.listen.parse().map_err(|_| {
            invalid(
                "server.listen",
                format!("'{}' is not an address:port", self.server.listen),
            )
        })
    }

    pub fn algorithms(&self) -> Result<Vec<jsonwebtoken::Algorithm>, ConfigError> {
        use jsonwebtoken::Algorithm::*;
        if self.auth.algorithms.is_empty() {
            return Err(invalid(
                "auth.algorithms",
                "at least one algorithm is required",
            ));
        }
        self.auth
            .algorithms
            .iter()
            .map(|name| match name.parse::<jsonwebtoken::Algorithm>() {
                // Symmetric algorithms would let anyone holding the public key forge tokens.
                Ok(alg @ (RS256 | RS384 | RS512 | PS256 | PS384 | PS512 | ES256 | ES384)) => Ok(alg),
                _ => Err(invalid("auth.algorithms", format!("'{name}' is not an accepted asymmetric algorithm (RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384)"))),
            })
            .collect()
    }

    /// The static Graph token (credential kind `static`).
    pub fn static_token(&self) -> Result<Secret, ConfigError> {
        let credential = &self.graph.credential;
        secret_from(
            "graph.credential.token",
            credential.token.as_ref(),
            credential.token_file.as_deref(),
        )
    }

    pub fn client_secret(&self) -> Result<Secret, ConfigError> {
        let credential = &self.graph.credential;
        secret_from(
            "graph.credential.client_secret",
            credential.client_secret.as_ref(),
            credential.client_secret_file.as_deref(),
        )
    }

    /// The effective configuration as TOML, secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        let mut shown = self.clone();
        shown.guard.store = redact_url_password(&shown.guard.store);
        // A secret read from a file is shown as redacted too, beside the file it came from.
        let credential = &mut shown.graph.credential;
        for (inline, file) in [
            (
                &mut credential.client_secret,
                &credential.client_secret_file,
            ),
            (&mut credential.token, &credential.token_file),
        ] {
            if file.is_some() {
                *inline = Some(Secret::new("from file"));
            }
        }
        if let Some(proxy) = shown.graph.proxy.as_mut()
            && proxy.password_file.is_some()
        {
            proxy.password = Some(Secret::new("from file"));
        }
        toml_text(&shown)
    }
}

/// A URL with its password (Redis credentials live in `guard.store`) replaced.
fn redact_url_password(text: &str) -> String {
    match reqwest::Url::parse(text) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("[redacted]"));
            url.to_string()
        }
        _ => text.to_owned(),
    }
}

fn toml_text(config: &Config) -> String {
    toml::to_string_pretty(config)
        .unwrap_or_else(|e| format!("# cannot render configuration: {e}\n"))
}

/// A secret given inline (`key`) or by file (`key_file`); exactly one of them.
fn secret_from(
    key: &str,
    inline: Option<&Secret>,
    file: Option<&Path>,
) -> Result<Secret, ConfigError> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(invalid(
            key,
            format!("give either {key} or {key}_file, not both"),
        )),
        (Some(secret), None) if !secret.expose().is_empty() => Ok(secret.clone()),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                invalid(
                    &format!("{key}_file"),
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            let text = text.trim();
            if text.is_empty() {
                return Err(invalid(
                    &format!("{key}_file"),
                    format!("{} is empty", path.display()),
                ));
            }
            Ok(Secret::new(text))
        }
        _ => Err(invalid(key, format!("{key} or {key}_file is required"))),
    }
}

/// `https://` everywhere; `http://` only to a loopback host (development and tests).
pub fn check_url(key: &str, text: &str) -> Result<reqwest::Url, ConfigError> {
    let url = reqwest::Url::parse(text)
        .map_err(|e| invalid(key, format!("'{text}' is not a URL: {e}")))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(invalid(
                key,
                format!("'{text}' must use https:// (http:// is accepted only for loopback hosts)"),
            ));
        }
        other => return Err(invalid(key, format!("scheme '{other}' is not supported"))),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(key, format!("'{text}' has no host")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(key, "credentials in the URL are not accepted"));
    }
    Ok(url)
}

/// The managed-identity endpoint is plain HTTP by design, on a link-local (IMDS) or loopback
/// address; anything else must be https.
fn check_managed_identity_endpoint(text: &str) -> Result<(), ConfigError> {
    let key = "graph.credential.endpoint";
    let url = reqwest::Url::parse(text)
        .map_err(|e| invalid(key, format!("'{text}' is not a URL: {e}")))?;
    let local = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_link_local() || ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if local => Ok(()),
        _ => Err(invalid(
            key,
            format!("'{text}' must be https://, or http:// on a link-local or loopback address"),
        )),
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}
