//! The facade's own Graph credential: where its access tokens come from, and their cache.
//!
//! Tokens are cached until shortly before they expire; when one is needed and none is fresh,
//! one request refreshes it while the others wait for that result.

use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::config::{Config, CredentialKind, Secret};

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("token endpoint unreachable: {0}")]
    Unreachable(String),
    #[error("token endpoint refused the credential: {0}")]
    Refused(String),
}

enum Source {
    Static(Secret),
    ClientSecret {
        token_url: String,
        client_id: String,
        secret: Secret,
        scope: String,
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
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct TokenErrorResponse {
    error: Option<String>,
    error_description: Option<String>,
}

impl Credential {
    pub fn new(config: &Config, http: reqwest::Client) -> Self {
        let credential = &config.graph.credential;
        let source = match credential.kind {
            CredentialKind::Static => {
                Source::Static(config.static_token().expect("validated configuration"))
            }
            _ => Source::ClientSecret {
                token_url: format!(
                    "{}/{}/oauth2/v2.0/token",
                    credential.authority.trim_end_matches('/'),
                    credential.tenant_id.as_deref().unwrap_or_default()
                ),
                client_id: credential.client_id.clone().unwrap_or_default(),
                secret: config.client_secret().expect("validated configuration"),
                scope: credential.scope.clone(),
            },
        };
        Self {
            http,
            source,
            cached: std::sync::RwLock::new(None),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    fn fresh(&self) -> Option<Secret> {
        let cached = self.cached.read().expect("token cache lock");
        cached
            .as_ref()
            .filter(|c| Instant::now() < c.refresh_at)
            .map(|c| c.token.clone())
    }

    /// A Graph access token.
    pub async fn token(&self) -> Result<Secret, CredentialError> {
        if let Source::Static(token) = &self.source {
            return Ok(token.clone());
        }
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        let _refreshing = self.refreshing.lock().await;
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        let (token, lifetime) = self.request().await?;
        // Refresh five minutes early, or at half-life for short-lived tokens.
        let margin = Duration::from_secs(300).min(lifetime / 2);
        *self.cached.write().expect("token cache lock") = Some(Cached {
            token: token.clone(),
            refresh_at: Instant::now() + lifetime - margin,
        });
        Ok(token)
    }

    async fn request(&self) -> Result<(Secret, Duration), CredentialError> {
        let Source::ClientSecret {
            token_url,
            client_id,
            secret,
            scope,
        } = &self.source
        else {
            unreachable!("static tokens are never requested")
        };
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", client_id.as_str()),
            ("client_secret", secret.expose()),
            ("scope", scope.as_str()),
        ];
        let response = self
            .http
            .post(token_url)
            .form(&form)
            .send()
            .await
            .map_err(|e| {
                CredentialError::Unreachable(format!("POST {token_url}: {}", without_url(&e)))
            })?;
        let status = response.status();
        if !status.is_success() {
            let detail = response.json::<TokenErrorResponse>().await.ok();
            let (error, description) = detail
                .map(|d| {
                    (
                        d.error.unwrap_or_default(),
                        d.error_description.unwrap_or_default(),
                    )
                })
                .unwrap_or_default();
            return Err(CredentialError::Refused(format!(
                "HTTP {status} {error}: {description}"
            )));
        }
        let body: TokenResponse = response.json().await.map_err(|e| {
            CredentialError::Refused(format!("unreadable token response: {}", without_url(&e)))
        })?;
        let lifetime = Duration::from_secs(body.expires_in.unwrap_or(3600).clamp(60, 86_400));
        tracing::info!(
            lifetime_secs = lifetime.as_secs(),
            "obtained a Graph access token"
        );
        Ok((Secret::new(body.access_token), lifetime))
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
