//! The facade's own Graph credential: where its access tokens come from, and their cache.
//!
//! Kinds: a static token (development), client credentials with a secret, with a certificate
//! (a signed client assertion carrying `x5t#S256`), with a federated token file (workload
//! identity, re-read at every refresh as the kubelet rotates it), and managed identity (IMDS).
//! With on-behalf-of, a delegated caller's token is exchanged for a Graph token acting as that
//! user, cached per caller. Tokens are cached until shortly before they expire; when one is
//! needed and none is fresh, one request refreshes it while the others wait for that result.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use moka::future::Cache;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::values::Secret;

/// How long a failed refresh answers for the waiters behind it.
const FAILURE_MEMORY: Duration = Duration::from_secs(2);

const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("token endpoint unreachable: {0}")]
    Unreachable(String),
    #[error("token endpoint refused the credential: {0}")]
    Refused(String),
    /// On-behalf-of needs the user to satisfy more (MFA, consent): `claims` is Entra's challenge.
    #[error("the user must satisfy additional claims: {description}")]
    InteractionRequired {
        description: String,
        claims: Option<String>,
    },
    /// On-behalf-of refused the caller's token itself.
    #[error("the caller's token cannot be exchanged: {0}")]
    InvalidAssertion(String),
}

/// A certificate credential: the private key and the certificate's SHA-256 thumbprint.
pub struct Certificate {
    key: aws_lc_rs::rsa::KeyPair,
    thumbprint_s256: String,
}

impl Certificate {
    /// Reads a PEM file holding the certificate and its private key (PKCS#8 or PKCS#1).
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let certificate = pem_block(&text, "CERTIFICATE")
            .ok_or_else(|| format!("{} holds no CERTIFICATE block", path.display()))?;
        let der = STANDARD
            .decode(certificate)
            .map_err(|_| format!("the CERTIFICATE block of {} is not base64", path.display()))?;
        let key_block = pem_block(&text, "PRIVATE KEY")
            .or_else(|| pem_block(&text, "RSA PRIVATE KEY"))
            .ok_or_else(|| {
                format!(
                    "{} holds no PRIVATE KEY block (PKCS#8 or PKCS#1 RSA)",
                    path.display()
                )
            })?;
        let key_der = STANDARD
            .decode(key_block)
            .map_err(|_| format!("the private key block of {} is not base64", path.display()))?;
        let key = aws_lc_rs::rsa::KeyPair::from_pkcs8(&key_der)
            .or_else(|_| aws_lc_rs::rsa::KeyPair::from_der(&key_der))
            .map_err(|e| {
                format!(
                    "the private key in {} is not a usable RSA key: {e}",
                    path.display()
                )
            })?;
        Ok(Self {
            key,
            thumbprint_s256: URL_SAFE_NO_PAD.encode(Sha256::digest(&der)),
        })
    }

    /// A PS256 JWT of `claims` with the `x5t#S256` header Entra matches the certificate by, as
    /// Entra's certificate-credential page pairs them (RSA-PSS with SHA-256).
    fn sign(&self, claims: &AssertionClaims<'_>) -> Result<String, CredentialError> {
        let failed = |what: &str| {
            CredentialError::Refused(format!("cannot sign the client assertion: {what}"))
        };
        let header =
            serde_json::json!({"alg": "PS256", "typ": "JWT", "x5t#S256": self.thumbprint_s256});
        let claims = serde_json::to_vec(claims).map_err(|e| failed(&e.to_string()))?;
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &aws_lc_rs::signature::RSA_PSS_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| failed("the RSA signature failed"))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }
}

/// The base64 lines of the `-----BEGIN {label}-----` ... `-----END {label}-----` block.
fn pem_block(text: &str, label: &str) -> Option<String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)?;
    let stop = text[start..].find(&end)? + start + end.len();
    let block = &text[start..stop];
    Some(block.lines().filter(|l| !l.starts_with("-----")).collect())
}

/// How the facade proves itself to the token endpoint.
pub enum ClientAuth {
    Secret(Secret),
    Certificate(Box<Certificate>),
    FederatedTokenFile(PathBuf),
}

/// Where the facade's tokens come from, as the `[graph.credential]` section prepared it.
pub enum Source {
    Static(Secret),
    Confidential {
        token_url: String,
        client_id: String,
        auth: ClientAuth,
        scope: String,
    },
    ManagedIdentity {
        endpoint: String,
        client_id: Option<String>,
        resource: String,
        /// App Service, Functions, Container Apps: `X-IDENTITY-HEADER`; `None`: IMDS.
        identity_header: Option<Secret>,
    },
}

struct Cached {
    token: Secret,
    refresh_at: Instant,
}

pub struct Credential {
    http: reqwest::Client,
    source: Source,
    cached: std::sync::RwLock<Option<Cached>>,
    refreshing: tokio::sync::Mutex<()>,
    /// The last failed refresh, remembered briefly.
    last_failure: std::sync::Mutex<Option<(Instant, String)>>,
    /// On-behalf-of tokens, keyed by a hash of the caller's token.
    on_behalf_of: Cache<String, std::sync::Arc<Cached>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    /// Entra answers a number, IMDS a string.
    #[serde(default, deserialize_with = "number_or_string")]
    expires_in: Option<u64>,
    /// Unix seconds; App Service's managed identity endpoint answers only this.
    #[serde(default, deserialize_with = "number_or_string")]
    expires_on: Option<u64>,
}

impl TokenResponse {
    /// Seconds the token lives: `expires_in`, else what `expires_on` leaves of it.
    fn lifetime_secs(&self, now_unix: u64) -> Option<u64> {
        self.expires_in
            .or_else(|| self.expires_on.map(|on| on.saturating_sub(now_unix)))
    }
}

fn number_or_string<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Number(u64),
        Text(String),
    }
    Ok(match Option::<Either>::deserialize(deserializer)? {
        Some(Either::Number(n)) => Some(n),
        Some(Either::Text(t)) => t.parse().ok(),
        None => None,
    })
}

#[derive(Deserialize, Default)]
struct TokenErrorResponse {
    error: Option<String>,
    error_description: Option<String>,
    claims: Option<String>,
    suberror: Option<String>,
}

#[derive(serde::Serialize)]
struct AssertionClaims<'a> {
    aud: &'a str,
    iss: &'a str,
    sub: &'a str,
    jti: String,
    nbf: u64,
    iat: u64,
    exp: u64,
}

impl Credential {
    pub fn new(source: Source, http: reqwest::Client, timeout: Duration) -> Self {
        // IMDS is a link-local endpoint: never through a proxy, as Azure's SDKs do.
        let http = match &source {
            Source::ManagedIdentity { .. } => reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(timeout)
                .build()
                .unwrap_or(http),
            _ => http,
        };
        Self {
            http,
            source,
            cached: std::sync::RwLock::new(None),
            refreshing: tokio::sync::Mutex::new(()),
            last_failure: std::sync::Mutex::new(None),
            on_behalf_of: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(3600))
                .build(),
        }
    }

    fn fresh(&self) -> Option<Secret> {
        let cached = self.cached.read().expect("token cache lock");
        cached
            .as_ref()
            .filter(|c| Instant::now() < c.refresh_at)
            .map(|c| c.token.clone())
    }

    /// Forgets the cached token if it is still the one Graph refused (another request may
    /// have replaced it already).
    pub fn invalidate(&self, refused: &Secret) {
        let mut cached = self.cached.write().expect("token cache lock");
        if cached
            .as_ref()
            .is_some_and(|c| c.token.expose() == refused.expose())
        {
            *cached = None;
        }
    }

    /// A Graph access token for the facade itself.
    pub async fn token(&self) -> Result<Secret, CredentialError> {
        if let Source::Static(token) = &self.source {
            return Ok(token.clone());
        }
        if let Some(token) = self.fresh() {
            metrics::counter!(crate::telemetry::GRAPH_TOKEN_CACHE, "result" => "hit").increment(1);
            return Ok(token);
        }
        metrics::counter!(crate::telemetry::GRAPH_TOKEN_CACHE, "result" => "miss").increment(1);
        let _refreshing = self.refreshing.lock().await;
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        // A refresh that just failed is not repeated by every waiter: each would wait its turn
        // for the same failure from an Entra that is down.
        if let Some((at, message)) = self.last_failure.lock().expect("failure lock").as_ref()
            && at.elapsed() < FAILURE_MEMORY
        {
            return Err(CredentialError::Refused(message.clone()));
        }
        let fetched = self.fetch().await;
        *self.last_failure.lock().expect("failure lock") = fetched
            .as_ref()
            .err()
            .map(|e| (Instant::now(), e.to_string()));
        let cached = fetched?;
        let token = cached.token.clone();
        *self.cached.write().expect("token cache lock") = Some(cached);
        Ok(token)
    }

    /// Asks the token endpoint (or IMDS) for the facade's token.
    async fn fetch(&self) -> Result<Cached, CredentialError> {
        Ok(match &self.source {
            Source::Static(_) => unreachable!("returned above"),
            Source::Confidential { .. } => {
                self.grant(vec![("grant_type", "client_credentials".into())], "app")
                    .await?
            }
            Source::ManagedIdentity {
                endpoint,
                client_id,
                resource,
                identity_header,
            } => {
                // IMDS (VMs) and the platform endpoint of App Service, Functions and Container
                // Apps differ in version and in the header that proves the caller is local.
                let version = match identity_header {
                    Some(_) => "2019-08-01",
                    None => "2018-02-01",
                };
                let mut query = vec![("api-version", version), ("resource", resource.as_str())];
                if let Some(client_id) = client_id {
                    query.push(("client_id", client_id.as_str()));
                }
                let request = self.http.get(endpoint).query(&query);
                let request = match identity_header {
                    Some(secret) => request.header("X-IDENTITY-HEADER", secret.expose()),
                    None => request.header("Metadata", "true"),
                };
                self.request(request, endpoint, "app").await?
            }
        })
    }

    /// A Graph token acting as the user whose (already validated) token is `assertion`.
    pub async fn on_behalf_of(&self, assertion: &Secret) -> Result<Secret, CredentialError> {
        let key = URL_SAFE_NO_PAD.encode(Sha256::digest(assertion.expose().as_bytes()));
        if let Some(cached) = self.on_behalf_of.get(&key).await
            && Instant::now() < cached.refresh_at
        {
            return Ok(cached.token.clone());
        }
        let form = vec![
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:jwt-bearer".into(),
            ),
            ("requested_token_use", "on_behalf_of".into()),
            ("assertion", assertion.expose().to_owned()),
        ];
        let cached = self.grant(form, "on_behalf_of").await?;
        let token = cached.token.clone();
        self.on_behalf_of
            .insert(key, std::sync::Arc::new(cached))
            .await;
        Ok(token)
    }

    /// Asks the token endpoint for `form`'s grant as the confidential client (its id, scope and
    /// authentication added).
    async fn grant(
        &self,
        mut form: Vec<(&'static str, String)>,
        kind: &'static str,
    ) -> Result<Cached, CredentialError> {
        let Source::Confidential {
            token_url,
            client_id,
            auth,
            scope,
        } = &self.source
        else {
            // `fetch` asks only with a confidential source: this is on-behalf-of's refusal.
            return Err(CredentialError::Refused(
                "on-behalf-of needs a confidential client credential".into(),
            ));
        };
        form.extend([("client_id", client_id.clone()), ("scope", scope.clone())]);
        let (name, value) = match auth {
            ClientAuth::Secret(secret) => ("client_secret", secret.expose().to_owned()),
            ClientAuth::Certificate(certificate) => {
                let now = jsonwebtoken::get_current_timestamp();
                let claims = AssertionClaims {
                    aud: token_url,
                    iss: client_id,
                    sub: client_id,
                    jti: uuid::Uuid::new_v4().to_string(),
                    nbf: now,
                    iat: now,
                    exp: now + 600,
                };
                ("client_assertion", certificate.sign(&claims)?)
            }
            // Re-read every time: the kubelet rotates the projected token.
            ClientAuth::FederatedTokenFile(path) => {
                let assertion = tokio::fs::read_to_string(path).await.map_err(|e| {
                    CredentialError::Refused(format!(
                        "cannot read the federated token file {}: {e}",
                        path.display()
                    ))
                })?;
                ("client_assertion", assertion.trim().to_owned())
            }
        };
        if name == "client_assertion" {
            form.push(("client_assertion_type", CLIENT_ASSERTION_TYPE.to_owned()));
        }
        form.push((name, value));
        self.request(self.http.post(token_url).form(&form), token_url, kind)
            .await
    }

    async fn request(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
        kind: &'static str,
    ) -> Result<Cached, CredentialError> {
        let result = self.request_once(request, url).await;
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!(crate::telemetry::GRAPH_TOKEN_REFRESHES, "kind" => kind, "result" => outcome).increment(1);
        result
    }

    async fn request_once(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<Cached, CredentialError> {
        let response = request
            .send()
            .await
            .map_err(|e| CredentialError::Unreachable(format!("{url}: {}", without_url(&e))))?;
        let status = response.status();
        if !status.is_success() {
            let detail: TokenErrorResponse = response.json().await.unwrap_or_default();
            let error = detail.error.unwrap_or_default();
            let description = detail.error_description.unwrap_or_default();
            // Entra's description starts with the AADSTS code and says what to do; it holds no secret.
            let first_line = description.lines().next().unwrap_or_default().to_owned();
            if error == "interaction_required"
                || detail.claims.is_some()
                || detail.suberror.is_some()
            {
                return Err(CredentialError::InteractionRequired {
                    description: first_line,
                    claims: detail.claims,
                });
            }
            if error == "invalid_grant" {
                return Err(CredentialError::InvalidAssertion(first_line));
            }
            return Err(CredentialError::Refused(format!(
                "HTTP {status} {error}: {first_line}"
            )));
        }
        let body: TokenResponse = response.json().await.map_err(|e| {
            CredentialError::Refused(format!("unreadable token response: {}", without_url(&e)))
        })?;
        let lifetime = Duration::from_secs(
            body.lifetime_secs(jsonwebtoken::get_current_timestamp())
                .unwrap_or(3600)
                .clamp(60, 86_400),
        );
        tracing::info!(
            lifetime_secs = lifetime.as_secs(),
            "obtained a Graph access token"
        );
        // Refresh five minutes early, or at half-life for short-lived tokens.
        let margin = Duration::from_secs(300).min(lifetime / 2);
        Ok(Cached {
            token: Secret::new(body.access_token),
            refresh_at: Instant::now() + lifetime - margin,
        })
    }
}

/// A reqwest error without its URL (which is known, and logged separately where useful).
pub fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(&format!(" for url ({url})"), "");
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_fixture_loads_with_its_sha256_thumbprint() {
        let root = env!("CARGO_MANIFEST_DIR");
        let certificate = Certificate::load(Path::new(&format!(
            "{root}/tests/fixtures/graph-credential.pem"
        )))
        .unwrap();
        let expected =
            std::fs::read_to_string(format!("{root}/tests/fixtures/thumbprint-s256.txt")).unwrap();
        assert_eq!(certificate.thumbprint_s256, expected.trim());
    }

    #[test]
    fn a_pem_without_a_key_is_refused_with_the_reason() {
        let root = env!("CARGO_MANIFEST_DIR");
        let error = Certificate::load(Path::new(&format!("{root}/tests/fixtures/public-key.pem")))
            .err()
            .unwrap();
        assert!(error.contains("CERTIFICATE"), "{error}");
    }

    #[test]
    fn imds_expires_in_may_be_a_string() {
        let body: TokenResponse =
            serde_json::from_str(r#"{"access_token":"x","expires_in":"3599"}"#).unwrap();
        assert_eq!(body.expires_in, Some(3599));
        let body: TokenResponse =
            serde_json::from_str(r#"{"access_token":"x","expires_in":3599}"#).unwrap();
        assert_eq!(body.expires_in, Some(3599));
    }

    #[test]
    fn app_services_expires_on_gives_the_lifetime_when_expires_in_is_absent() {
        let body: TokenResponse =
            serde_json::from_str(r#"{"access_token":"x","expires_on":"1000600"}"#).unwrap();
        assert_eq!(body.lifetime_secs(1_000_000), Some(600));
        assert_eq!(body.lifetime_secs(2_000_000), Some(0));
    }
}
