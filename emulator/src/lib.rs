//! A Microsoft Graph + Entra emulator for syncjob-facade: used by `syncjob-facade dev`,
//! `syncjob-facade emulator` (and this crate's own `syncjob-emulator` binary) and the integration
//! tests. Seed data, the shared state (directory, signing keys, faults, call log), the server's
//! lifecycle and the token helpers for callers.
//!
//! It knows the facade only from the outside: the audience of its API and the settings a
//! facade needs to be pointed here ([`Emulator::facade_config_toml`]), never its code.
//!
//! Submodules own one surface each: [`entra`] (discovery, JWKS, the token endpoint with its
//! client credentials and on-behalf-of grants, the managed identity endpoint), [`graph`]
//! (the synchronization-job API), [`control`] (`/_emulator/...` for tests and demos), [`keys`]
//! (RSA keys and JWTs) and [`conn`] (connections that a fault can cut).

mod conn;
mod control;
mod entra;
mod graph;
mod keys;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::http::{HeaderValue, StatusCode, request::Parts};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use conn::{ConnKill, KillableListener};
use keys::KeySet;

/// The audience of caller tokens minted for the facade's own API.
pub const FACADE_AUDIENCE: &str = "api://syncjob-facade";
/// The audience of the Graph access tokens the token endpoint issues.
pub const GRAPH_AUDIENCE: &str = "https://graph.microsoft.com";
/// The issuer of the emulator's federated (workload identity) tokens, as a Kubernetes cluster's
/// service account issuer would be. It signs with the emulator's own keys; see
/// [`Emulator::federated_token`].
pub const FEDERATED_ISSUER: &str = "https://oidc.emulator.invalid/cluster";
/// The audience Entra expects on federated tokens exchanged for its own.
pub const FEDERATED_AUDIENCE: &str = "api://AzureADTokenExchange";

/// Lifetime of every token the emulator mints, as Entra's default.
const TOKEN_LIFETIME_SECS: u64 = 3600;
/// Keeps a long-running `dev` emulator from growing without bound; counts are kept separately.
const MAX_RECORDED_CALLS: usize = 10_000;

/// Seed data, deserialised from `emulator/seed.json` (camelCase fields as in the file).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Seed {
    pub tenant_id: String,
    #[serde(default)]
    pub applications: Vec<SeedApplication>,
    #[serde(default)]
    pub users: Vec<SeedUser>,
    #[serde(default)]
    pub service_principals: Vec<SeedServicePrincipal>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedApplication {
    pub display_name: String,
    pub client_id: String,
    #[serde(default)]
    pub object_id: Option<String>,
    /// Empty (or absent from the seed) means the application has no secret, as a managed
    /// identity or a certificate-only application: no secret then authenticates it.
    #[serde(default)]
    pub client_secret: String,
    #[serde(default)]
    pub roles: Vec<String>,
    /// A certificate credential: client assertions signed by its key authenticate the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<SeedCertificate>,
    /// Federated identity credentials: tokens from these issuers for these subjects
    /// authenticate the app (workload identity).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub federated_credentials: Vec<SeedFederatedCredential>,
    /// The app is a managed identity, answered by the IMDS-style token endpoint.
    #[serde(default, skip_serializing_if = "is_false")]
    pub managed_identity: bool,
    /// A single-page application (a public client): it signs users in with the authorization
    /// code grant and PKCE, and redeems codes cross-origin from its redirect URIs' origins.
    #[serde(default, skip_serializing_if = "is_false")]
    pub single_page_application: bool,
    /// Where the authorize endpoint may send a code back to (exact match, as Entra compares).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirect_uris: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedCertificate {
    /// SPKI PEM (`-----BEGIN PUBLIC KEY-----`) of the certificate's key.
    pub public_key_pem: String,
    /// Base64url SHA-256 of the certificate's DER: the `x5t#S256` that PS256 assertions carry.
    pub thumbprint_s256: String,
    /// Base64url SHA-1 of the certificate's DER: the `x5t` of the older RS256 assertions.
    #[serde(default)]
    pub thumbprint_sha1: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedFederatedCredential {
    pub issuer: String,
    pub subject: String,
    #[serde(default = "default_federated_audiences")]
    pub audiences: Vec<String>,
}

fn default_federated_audiences() -> Vec<String> {
    vec![FEDERATED_AUDIENCE.to_owned()]
}

fn is_false(value: &bool) -> bool {
    !*value
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedUser {
    pub object_id: String,
    pub name: String,
    pub preferred_username: String,
    #[serde(default)]
    pub wids: Vec<String>,
    /// A Conditional Access policy demands MFA for Graph: on-behalf-of answers
    /// `interaction_required` unless the user's token shows MFA (`amr` holds `mfa`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub requires_mfa: bool,
}

impl SeedUser {
    /// Who the user is, as every token issued for them says it.
    pub(crate) fn identity_claims(&self) -> Value {
        json!({
            "oid": self.object_id,
            "sub": self.object_id,
            "name": self.name,
            "preferred_username": self.preferred_username,
        })
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedServicePrincipal {
    pub id: String,
    pub app_id: String,
    pub display_name: String,
    #[serde(default)]
    pub owners: Vec<String>,
    #[serde(default)]
    pub jobs: Vec<SeedJob>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedJob {
    pub id: String,
    pub template_id: String,
    pub status: String,
}

/// Runs the emulator from `seed_file` (the built-in seed when `None`) on `addr`, prints its
/// banner, and serves until ctrl-c or SIGTERM.
pub async fn run(seed_file: Option<&Path>, addr: SocketAddr) -> Result<(), String> {
    let seed = match seed_file {
        Some(path) => Seed::from_file(path).map_err(|e| format!("seed {}: {e}", path.display()))?,
        None => Seed::default_seed(),
    };
    let emulator = Emulator::spawn(seed, addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    println!("{}", emulator.banner());
    stopped().await;
    emulator.shutdown().await;
    Ok(())
}

/// Completes on ctrl-c or SIGTERM.
async fn stopped() {
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let terminated = async {
            match terminate.as_mut() {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = terminated => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("cannot read the seed file: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("not a valid seed: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
}

impl Seed {
    /// The seed shipped with the crate (`emulator/seed.json`).
    pub fn default_seed() -> Seed {
        serde_json::from_str(include_str!("../seed.json")).expect("emulator/seed.json is valid")
    }

    pub fn from_file(path: &Path) -> Result<Seed, SeedError> {
        let text = std::fs::read_to_string(path).map_err(|source| SeedError::Read {
            path: path.to_owned(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| SeedError::Parse {
            path: path.to_owned(),
            source,
        })
    }
}

/// The calls the emulator counts, records and can fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Operation {
    Start,
    Pause,
    GetJob,
    ListJobs,
    Owners,
    ResolveAppId,
    Token,
    Jwks,
    Discovery,
}

impl Operation {
    const ALL: [Operation; 9] = [
        Operation::Start,
        Operation::Pause,
        Operation::GetJob,
        Operation::ListJobs,
        Operation::Owners,
        Operation::ResolveAppId,
        Operation::Token,
        Operation::Jwks,
        Operation::Discovery,
    ];
}

/// A fault for the next matching request(s); see [`Emulator::inject`].
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Fault {
    /// `None` matches any operation.
    pub operation: Option<Operation>,
    pub status: Option<u16>,
    pub retry_after: Option<String>,
    pub delay_ms: Option<u64>,
    pub drop_connection: bool,
    /// How many matching requests it applies to; `None` means one.
    pub times: Option<u32>,
}

/// One request the emulator received on a counted operation.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedCall {
    pub operation: Operation,
    pub method: String,
    /// The request path as sent, still percent-encoded, without the query.
    pub path: String,
    /// The query string as sent, if any.
    pub query: Option<String>,
    pub client_request_id: Option<String>,
    /// `appid` (or `azp`) of the bearer token, unverified; for `Token` calls the client id
    /// that asked for a token (for managed identity, the identity that answered).
    pub token_app_id: Option<String>,
    pub token_object_id: Option<String>,
    pub token_idtyp: Option<String>,
    /// All request headers except `authorization`.
    pub headers: Vec<(String, String)>,
    /// The status answered; 0 while the answer is pending or when the connection was dropped.
    pub status: u16,
    /// For `Token` calls, the flow the request used: `client_secret`, `client_certificate`,
    /// `workload_identity`, `on_behalf_of` or `managed_identity`; `None` when the request names
    /// no flow the emulator knows, and for every other operation.
    pub grant: Option<String>,
}

impl RecordedCall {
    fn new(operation: Operation, parts: &Parts) -> Self {
        let headers = parts
            .headers
            .iter()
            .filter(|(name, _)| *name != axum::http::header::AUTHORIZATION)
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .collect();
        RecordedCall {
            operation,
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            client_request_id: header_str(&parts.headers, "client-request-id").map(str::to_owned),
            token_app_id: None,
            token_object_id: None,
            token_idtyp: None,
            headers,
            status: 0,
            grant: None,
        }
    }
}

/// A handle on a running emulator; clones share the same server and state.
#[derive(Clone)]
pub struct Emulator(Arc<Inner>);

struct Inner {
    seed: Seed,
    addr: SocketAddr,
    base_url: String,
    /// Client id (lower-case) → object id, derived for applications the seed gives none.
    app_object_ids: HashMap<String, String>,
    keys: Mutex<KeySet>,
    /// (service principal id lower-case, job id) → status code.
    jobs: Mutex<HashMap<(String, String), String>>,
    /// (service principal id lower-case, job id) → when it was last started (RFC 3339).
    last_starts: Mutex<HashMap<(String, String), String>>,
    faults: Mutex<Vec<(Fault, u32)>>,
    /// Authorization codes handed out by the sign-in page, until redeemed or expired.
    codes: Mutex<entra::authorize::Codes>,
    /// (client id, redirect URI) registered at run time, beside the seed's.
    redirect_uris: Mutex<Vec<(String, String)>>,
    /// Lifetime of the tokens a redeemed code gives, in seconds (0: Entra's hour).
    sign_in_lifetime_secs: std::sync::atomic::AtomicU64,
    /// How long after an accepted start the job turns `Active`, in milliseconds (0: at once).
    start_delay_ms: std::sync::atomic::AtomicU64,
    log: Mutex<CallLog>,
    server: Mutex<Option<Server>>,
}

#[derive(Default)]
struct CallLog {
    next_seq: u64,
    counts: HashMap<Operation, usize>,
    calls: VecDeque<(u64, RecordedCall)>,
}

struct Server {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// A poisoned lock only means a test panicked mid-update; the data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Emulator {
    /// Binds `addr` (tests pass 127.0.0.1:0) and serves in a background tokio task until the
    /// process ends or [`Emulator::shutdown`] is called.
    pub async fn spawn(seed: Seed, addr: SocketAddr) -> std::io::Result<Emulator> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let host = match addr.ip() {
            ip if ip.is_unspecified() => {
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
            }
            _ => addr,
        };
        let keys = tokio::task::spawn_blocking(KeySet::generate)
            .await
            .map_err(std::io::Error::other)?;
        let emulator = Emulator(Arc::new(Inner {
            app_object_ids: derive_app_object_ids(&seed),
            jobs: Mutex::new(seed_jobs(&seed)),
            last_starts: Mutex::new(HashMap::new()),
            base_url: format!("http://{host}"),
            seed,
            addr,
            keys: Mutex::new(keys),
            faults: Mutex::default(),
            codes: Mutex::default(),
            redirect_uris: Mutex::default(),
            sign_in_lifetime_secs: std::sync::atomic::AtomicU64::new(0),
            start_delay_ms: std::sync::atomic::AtomicU64::new(0),
            log: Mutex::default(),
            server: Mutex::default(),
        }));
        let app = router(emulator.clone()).into_make_service_with_connect_info::<ConnKill>();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(KillableListener(listener), app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(error) = served {
                tracing::warn!(%error, "emulator server stopped");
            }
        });
        *lock(&emulator.0.server) = Some(Server { stop, task });
        tracing::info!(base_url = %emulator.base_url(), "Graph + Entra emulator listening");
        Ok(emulator)
    }

    pub fn addr(&self) -> SocketAddr {
        self.0.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        self.0.base_url.clone()
    }

    /// The seed the emulator started from; live job statuses are in [`Emulator::job_status`].
    pub fn seed(&self) -> &Seed {
        &self.0.seed
    }

    pub fn tenant_id(&self) -> &str {
        &self.0.seed.tenant_id
    }

    /// The v2.0 issuer of caller tokens: `{base}/{tenant}/v2.0`.
    pub fn issuer(&self) -> String {
        format!("{}/{}/v2.0", self.0.base_url, self.tenant_id())
    }

    pub fn openid_config_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer())
    }

    pub fn jwks_url(&self) -> String {
        format!(
            "{}/{}/discovery/v2.0/keys",
            self.0.base_url,
            self.tenant_id()
        )
    }

    /// The managed identity endpoint as App Service, Functions and Container Apps expose it
    /// (`IDENTITY_ENDPOINT`).
    pub fn identity_endpoint(&self) -> String {
        format!("{}/msi/token", self.base_url())
    }

    /// The secret those platforms put in `IDENTITY_HEADER`, which callers send back as
    /// `X-IDENTITY-HEADER`.
    pub fn identity_header(&self) -> String {
        format!("emulator-identity-header-{}", self.tenant_id())
    }

    pub fn token_url(&self) -> String {
        format!("{}/{}/oauth2/v2.0/token", self.0.base_url, self.tenant_id())
    }

    /// The authority of the tenant (`{base}/{tenant}`): `/oauth2/v2.0/authorize` and
    /// `/oauth2/v2.0/token` below it, as on `login.microsoftonline.com`.
    pub fn authority(&self) -> String {
        format!("{}/{}", self.0.base_url, self.tenant_id())
    }

    /// The seed's single-page application (the facade's operator page), if it has one.
    pub fn single_page_application(&self) -> Option<&SeedApplication> {
        self.seed()
            .applications
            .iter()
            .find(|app| app.single_page_application)
    }

    /// Tokens from a sign-in (the authorization code grant) expire after `secs` from now on, so
    /// that a test sees a page's sign-in expire; 0 restores Entra's hour.
    pub fn set_sign_in_lifetime(&self, secs: u64) {
        self.0
            .sign_in_lifetime_secs
            .store(secs, std::sync::atomic::Ordering::Relaxed);
    }

    /// An accepted start turns the job `Active` (and records its execution) only `delay` later,
    /// as a real job begins to run a little after Graph accepts its start; zero: at once.
    pub fn set_start_delay(&self, delay: std::time::Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.0
            .start_delay_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn start_delay(&self) -> std::time::Duration {
        std::time::Duration::from_millis(
            self.0
                .start_delay_ms
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// Registers one more redirect URI for `client_id`, as adding it to the application's
    /// registration in Entra: `dev` registers its operator page on whatever port it listens.
    pub fn allow_redirect_uri(&self, client_id: &str, uri: &str) {
        let mut uris = lock(&self.0.redirect_uris);
        if !uris
            .iter()
            .any(|(c, u)| c.eq_ignore_ascii_case(client_id) && u == uri)
        {
            uris.push((client_id.to_owned(), uri.to_owned()));
        }
    }

    /// The configuration a facade needs to be pointed here, as the TOML of its configuration
    /// file: its issuer and audience, discovery, Graph, the seeded Graph credential and the operator
    /// page ([ui]) signing in with the seed's single-page application.
    pub fn facade_config_toml(&self) -> String {
        let facade = &self.seed().applications[0];
        format!(
            r#"[auth]
issuers = ["{issuer}"]
audiences = ["{audience}"]
openid_config_url = "{discovery}"

[graph]
base_url = "{base}"

[graph.credential]
kind = "client_secret"
authority = "{base}"
tenant_id = "{tenant}"
client_id = "{client_id}"
client_secret = "{client_secret}"
{ui}"#,
            issuer = self.issuer(),
            audience = FACADE_AUDIENCE,
            discovery = self.openid_config_url(),
            base = self.base_url(),
            tenant = self.tenant_id(),
            client_id = facade.client_id,
            client_secret = facade.client_secret,
            ui = self.ui_config_toml(),
        )
    }

    /// The `[ui]` section for the seed's single-page application (empty without one): the
    /// operator page signs in here and lists every seeded service principal.
    fn ui_config_toml(&self) -> String {
        let Some(page) = self.single_page_application() else {
            return String::new();
        };
        let ids: Vec<String> = self
            .seed()
            .service_principals
            .iter()
            .map(|sp| format!("\"{}\"", sp.id))
            .collect();
        format!(
            "\n[ui]\nclient_id = \"{}\"\nservice_principals = [{}]\n",
            page.client_id,
            ids.join(", ")
        )
    }

    /// What a person needs to use the emulator by hand: where it is, the seeded credentials,
    /// tokens valid for 12 hours, and curl lines that work as printed.
    pub fn banner(&self) -> String {
        let seed = self.seed();
        let base = self.base_url();
        let facade_app = &seed.applications[0];
        let long_lived = |mut claims: Value| {
            claims["exp"] = (unix_now() + 12 * 3600).into();
            self.mint(&claims)
        };
        let graph_token = self
            .graph_claims(&facade_app.client_id)
            .map(&long_lived)
            .unwrap_or_default();
        let admin = long_lived(self.delegated_claims(&seed.users[0].object_id));
        let app = long_lived(self.app_claims(&seed.applications[1].client_id));
        let paused = &seed.service_principals[0];
        format!(
            r#"Graph + Entra emulator on {base}
  issuer        {issuer}
  discovery     {discovery}
  token         {token_url}
  sign-in       {authority}/oauth2/v2.0/authorize   (the seeded users; a facade's /ui signs in here)
  tenant        {tenant}
  calls/faults  {base}/_emulator/calls, {base}/_emulator/faults

Client credentials (the seeded Graph credential of a facade, {facade_name}):
  client id     {client_id}
  client secret {client_secret}
  curl -s {token_url} -d grant_type=client_credentials -d client_id={client_id} -d client_secret={client_secret} -d scope=https://graph.microsoft.com/.default

Tokens (valid 12 hours; the emulator's, worthless elsewhere):
  export GRAPH_TOKEN='{graph_token}'   # Graph token of {facade_name}
  export ADMIN_TOKEN='{admin}'   # caller token for a facade (aud {audience}): {admin_name}
  export APP_TOKEN='{app}'   # caller token for a facade (aud {audience}): {app_name}

Graph routes, as Graph answers them:
  curl -s -H "Authorization: Bearer $GRAPH_TOKEN" {base}/v1.0/servicePrincipals/{sp}/synchronization/jobs/{job}
  curl -i -X POST -H "Authorization: Bearer $GRAPH_TOKEN" {base}/v1.0/servicePrincipals/{sp}/synchronization/jobs/{job}/start

A facade pointed here (its configuration file):
{facade_config}"#,
            issuer = self.issuer(),
            discovery = self.openid_config_url(),
            token_url = self.token_url(),
            authority = self.authority(),
            tenant = self.tenant_id(),
            facade_name = facade_app.display_name,
            client_id = facade_app.client_id,
            client_secret = facade_app.client_secret,
            audience = FACADE_AUDIENCE,
            admin_name = seed.users[0].name,
            app_name = seed.applications[1].display_name,
            sp = paused.id,
            job = paused.jobs[0].id,
            facade_config = self.facade_config_toml(),
        )
    }

    /// Stops serving: no new connections, in-flight requests get a few seconds to finish.
    pub async fn shutdown(&self) {
        let Some(Server { stop, mut task }) = lock(&self.0.server).take() else {
            return;
        };
        let _ = stop.send(());
        if tokio::time::timeout(Duration::from_secs(5), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }

    /// A valid delegated user token's claims for [`FACADE_AUDIENCE`], as the seed's
    /// provisioning-portal application would receive it. Panics on an unknown user.
    pub fn delegated_claims(&self, user_object_id: &str) -> Value {
        self.try_delegated_claims(user_object_id)
            .unwrap_or_else(|| panic!("no seed user with objectId {user_object_id}"))
    }

    /// A valid application token's claims for [`FACADE_AUDIENCE`]. Panics on an unknown client id.
    pub fn app_claims(&self, client_id: &str) -> Value {
        self.try_app_claims(client_id)
            .unwrap_or_else(|| panic!("no seed application with clientId {client_id}"))
    }

    /// A token from [`FEDERATED_ISSUER`] for `subject`, valid for `lifetime_secs` from now, as
    /// a Kubernetes service account token projected for workload identity: a client assertion
    /// for an application whose federated credential names this issuer and subject.
    pub fn federated_token(&self, subject: &str, lifetime_secs: u64) -> String {
        self.mint(&self.federated_claims(subject, lifetime_secs))
    }

    /// The claims of the Graph access token client credentials with its secret give a seed
    /// application (`None` for an unknown client id).
    pub fn graph_claims(&self, client_id: &str) -> Option<Value> {
        let app = self
            .seed()
            .applications
            .iter()
            .find(|app| app.client_id.eq_ignore_ascii_case(client_id))?;
        Some(entra::graph_claims_with_secret(self, app))
    }

    /// RS256 with the current key; the claims are signed exactly as given.
    pub fn mint(&self, claims: &Value) -> String {
        lock(&self.0.keys).mint(claims)
    }

    /// Signs with the current RSA key whatever `header.alg` says, so tests can craft mismatches.
    pub fn mint_with_header(&self, header: &Value, claims: &Value) -> String {
        lock(&self.0.keys).mint_with_header(header, claims)
    }

    /// SPKI PEM of the current public key.
    pub fn public_key_pem(&self) -> String {
        lock(&self.0.keys).public_key_pem()
    }

    pub fn current_kid(&self) -> String {
        lock(&self.0.keys).current_kid()
    }

    /// A new RSA key becomes current and is published; older keys stay published unless
    /// `retire_old`. Returns the new kid.
    pub fn rotate_keys(&self, retire_old: bool) -> String {
        lock(&self.0.keys).rotate(retire_old)
    }

    pub fn job_status(&self, service_principal_id: &str, job_id: &str) -> Option<String> {
        lock(&self.0.jobs)
            .get(&job_key(service_principal_id, job_id))
            .cloned()
    }

    /// Panics when the seed has no such job.
    /// When the job was last started through this emulator (RFC 3339), if it was.
    pub fn last_start(&self, service_principal_id: &str, job_id: &str) -> Option<String> {
        lock(&self.0.last_starts)
            .get(&(service_principal_id.to_ascii_lowercase(), job_id.to_owned()))
            .cloned()
    }

    pub(crate) fn record_start(&self, service_principal_id: &str, job_id: &str) {
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        lock(&self.0.last_starts).insert(
            (service_principal_id.to_ascii_lowercase(), job_id.to_owned()),
            now,
        );
    }

    pub fn set_job_status(&self, service_principal_id: &str, job_id: &str, code: &str) {
        assert!(
            self.try_set_job_status(service_principal_id, job_id, code),
            "no seed job {job_id} on service principal {service_principal_id}"
        );
    }

    pub fn inject(&self, fault: Fault) {
        let times = fault.times.unwrap_or(1);
        if times > 0 {
            lock(&self.0.faults).push((fault, times));
        }
    }

    pub fn clear_faults(&self) {
        lock(&self.0.faults).clear();
    }

    /// Requests received for `op` since start or the last [`Emulator::reset_calls`], faulted
    /// ones included.
    pub fn count(&self, op: Operation) -> usize {
        lock(&self.0.log).counts.get(&op).copied().unwrap_or(0)
    }

    pub fn calls(&self) -> Vec<RecordedCall> {
        lock(&self.0.log)
            .calls
            .iter()
            .map(|(_, call)| call.clone())
            .collect()
    }

    pub fn reset_calls(&self) {
        let mut log = lock(&self.0.log);
        log.counts.clear();
        log.calls.clear();
    }
}

// Crate-internal helpers the surfaces share.
impl Emulator {
    fn try_delegated_claims(&self, user_object_id: &str) -> Option<Value> {
        let seed = self.seed();
        let user = self.user(user_object_id)?;
        let portal = seed
            .applications
            .iter()
            .find(|app| app.display_name.starts_with("provisioning-portal"))
            .or(seed.applications.first())?;
        let mut claims = self.base_claims(FACADE_AUDIENCE, &self.issuer());
        extend(&mut claims, user.identity_claims());
        extend(
            &mut claims,
            json!({
                "scp": "Synchronization.ReadWrite.All",
                "wids": user.wids,
                "azp": portal.client_id,
                "appid": portal.client_id,
                "idtyp": "user",
                "ver": "2.0",
            }),
        );
        Some(claims)
    }

    fn try_app_claims(&self, client_id: &str) -> Option<Value> {
        let app = self.application(client_id)?;
        let oid = self.app_object_id(client_id)?;
        let mut claims = self.base_claims(FACADE_AUDIENCE, &self.issuer());
        extend(
            &mut claims,
            json!({
                "oid": oid,
                "sub": oid,
                "azp": app.client_id,
                "appid": app.client_id,
                "roles": app.roles,
                "idtyp": "app",
                "ver": "2.0",
            }),
        );
        Some(claims)
    }

    fn federated_claims(&self, subject: &str, lifetime_secs: u64) -> Value {
        let now = unix_now();
        // The audience is a list, as in the tokens Kubernetes projects into pods.
        json!({
            "iss": FEDERATED_ISSUER,
            "sub": subject,
            "aud": [FEDERATED_AUDIENCE],
            "iat": now,
            "nbf": now,
            "exp": now.saturating_add(lifetime_secs),
            "jti": uuid::Uuid::new_v4().to_string(),
        })
    }

    fn user(&self, object_id: &str) -> Option<&SeedUser> {
        self.seed()
            .users
            .iter()
            .find(|user| user.object_id.eq_ignore_ascii_case(object_id))
    }

    fn base_claims(&self, audience: &str, issuer: &str) -> Value {
        let now = unix_now();
        json!({
            "aud": audience,
            "iss": issuer,
            "tid": self.tenant_id(),
            "iat": now,
            "nbf": now,
            "exp": now + TOKEN_LIFETIME_SECS,
        })
    }

    fn application(&self, client_id: &str) -> Option<&SeedApplication> {
        self.seed()
            .applications
            .iter()
            .find(|app| app.client_id.eq_ignore_ascii_case(client_id))
    }

    fn app_object_id(&self, client_id: &str) -> Option<String> {
        self.0
            .app_object_ids
            .get(&client_id.to_ascii_lowercase())
            .cloned()
    }

    fn service_principal(&self, id: &str) -> Option<&SeedServicePrincipal> {
        self.seed()
            .service_principals
            .iter()
            .find(|sp| sp.id.eq_ignore_ascii_case(id))
    }

    fn keys(&self) -> MutexGuard<'_, KeySet> {
        lock(&self.0.keys)
    }

    fn try_set_job_status(&self, service_principal_id: &str, job_id: &str, code: &str) -> bool {
        let mut jobs = lock(&self.0.jobs);
        match jobs.get_mut(&job_key(service_principal_id, job_id)) {
            Some(status) => {
                *status = code.to_owned();
                true
            }
            None => false,
        }
    }

    fn take_fault(&self, op: Operation) -> Option<Fault> {
        let mut faults = lock(&self.0.faults);
        let index = faults
            .iter()
            .position(|(fault, _)| fault.operation.is_none_or(|wanted| wanted == op))?;
        let remaining = &mut faults[index].1;
        *remaining -= 1;
        if *remaining == 0 {
            Some(faults.remove(index).0)
        } else {
            Some(faults[index].0.clone())
        }
    }

    /// Counts and records the call, applies any pending fault, otherwise answers with `work`.
    /// The call is recorded on arrival so that a client that gives up during a delay still
    /// finds it counted; its status is filled in once the answer is known.
    fn observe(
        &self,
        call: RecordedCall,
        kill: ConnKill,
        on_fault: impl FnOnce(StatusCode) -> Response + Send,
        work: impl FnOnce() -> Response + Send,
    ) -> impl Future<Output = Response> + Send {
        let op = call.operation;
        let seq = self.record(call);
        let fault = self.take_fault(op);
        async move {
            let fault = fault.unwrap_or_default();
            if let Some(ms) = fault.delay_ms {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            if fault.drop_connection {
                kill.kill();
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
            let response = match fault
                .status
                .and_then(|code| StatusCode::from_u16(code).ok())
            {
                Some(status) => with_retry_after(on_fault(status), fault.retry_after.as_deref()),
                None => work(),
            };
            self.finish(seq, response.status().as_u16());
            response
        }
    }

    fn record(&self, call: RecordedCall) -> u64 {
        let mut log = lock(&self.0.log);
        let seq = log.next_seq;
        log.next_seq += 1;
        *log.counts.entry(call.operation).or_default() += 1;
        if log.calls.len() == MAX_RECORDED_CALLS {
            log.calls.pop_front();
        }
        log.calls.push_back((seq, call));
        seq
    }

    fn finish(&self, seq: u64, status: u16) {
        let mut log = lock(&self.0.log);
        if let Some((_, call)) = log.calls.iter_mut().rev().find(|(s, _)| *s == seq) {
            call.status = status;
        }
    }

    fn counts_json(&self) -> Value {
        let counts: HashMap<Operation, usize> = Operation::ALL
            .iter()
            .map(|op| (*op, self.count(*op)))
            .collect();
        json!(counts)
    }
}

fn router(emulator: Emulator) -> Router {
    Router::new()
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(entra::discovery),
        )
        .route("/{tenant}/discovery/v2.0/keys", get(entra::jwks))
        .route("/{tenant}/oauth2/v2.0/token", post(entra::token))
        .route(
            "/{tenant}/oauth2/v2.0/authorize",
            get(entra::authorize::sign_in_page).post(entra::authorize::sign_in),
        )
        .route("/metadata/identity/oauth2/token", get(entra::imds_token))
        .route("/msi/token", get(entra::app_service_token))
        .nest("/_emulator", control::routes())
        .fallback(graph::dispatch)
        .with_state(emulator)
}

fn with_retry_after(mut response: Response, retry_after: Option<&str>) -> Response {
    if let Some(value) = retry_after.and_then(|v| HeaderValue::from_str(v).ok()) {
        response.headers_mut().insert("retry-after", value);
    }
    response
}

fn header_str<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// Merges the members of `extra` (an object) into `target`; a `null` member removes the claim.
fn extend(target: &mut Value, extra: Value) {
    let (Some(target), Value::Object(extra)) = (target.as_object_mut(), extra) else {
        return;
    };
    for (name, value) in extra {
        if value.is_null() {
            target.remove(&name);
        } else {
            target.insert(name, value);
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

fn job_key(service_principal_id: &str, job_id: &str) -> (String, String) {
    (service_principal_id.to_ascii_lowercase(), job_id.to_owned())
}

fn seed_jobs(seed: &Seed) -> HashMap<(String, String), String> {
    seed.service_principals
        .iter()
        .flat_map(|sp| {
            sp.jobs
                .iter()
                .map(|job| (job_key(&sp.id, &job.id), job.status.clone()))
        })
        .collect()
}

/// Applications without an objectId get one derived from their client id, so that tokens for
/// them are stable across runs.
fn derive_app_object_ids(seed: &Seed) -> HashMap<String, String> {
    seed.applications
        .iter()
        .map(|app| {
            let oid = app.object_id.clone().unwrap_or_else(|| {
                let input = format!("syncjob-facade-emulator/oid/{}", app.client_id);
                let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, input.as_bytes());
                let mut bytes = [0u8; 16];
                bytes.copy_from_slice(&hash.as_ref()[..16]);
                uuid::Builder::from_random_bytes(bytes)
                    .into_uuid()
                    .to_string()
            });
            (app.client_id.to_ascii_lowercase(), oid)
        })
        .collect()
}
