//! The issuer's signing keys: OpenID discovery, the JWKS, a cache keyed by `kid`.
//!
//! Rules: an unknown `kid` triggers a refetch at once the first time,
//! then at most once per five minutes; concurrent misses share one fetch; a failed fetch keeps
//! the last good key set; a background task refreshes hourly.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use serde::Deserialize;

/// How often a refetch may be caused by an unknown `kid`.
pub const UNKNOWN_KID_REFETCH_INTERVAL: Duration = Duration::from_secs(300);
/// How often requests may cause a fetch while no key set has loaded yet.
const UNLOADED_REFETCH_INTERVAL: Duration = Duration::from_secs(5);
/// Background refresh period.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
#[error("signing keys could not be fetched: {0}")]
pub struct KeyError(String);

/// A published signing key and the algorithm it is restricted to, if the JWK names one.
#[derive(Clone)]
pub struct SigningKey {
    pub key: DecodingKey,
    pub algorithm: Option<jsonwebtoken::Algorithm>,
}

/// Where the key set comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    Jwks(String),
    Discovery(String),
}

pub struct KeyStore {
    http: reqwest::Client,
    source: KeySource,
    keys: RwLock<Option<Arc<HashMap<String, SigningKey>>>>,
    /// Held while fetching, so that concurrent misses wait for one fetch.
    fetching: tokio::sync::Mutex<()>,
    /// When an unknown `kid` last caused a refetch.
    last_miss_refetch: std::sync::Mutex<Option<Instant>>,
}

#[derive(Deserialize)]
struct OpenIdConfiguration {
    jwks_uri: String,
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<serde_json::Value>,
}

impl KeyStore {
    pub fn new(http: reqwest::Client, source: KeySource) -> Self {
        Self {
            http,
            source,
            keys: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(()),
            last_miss_refetch: std::sync::Mutex::new(None),
        }
    }

    /// True once a key set has been loaded.
    pub fn is_loaded(&self) -> bool {
        self.keys.read().expect("key lock").is_some()
    }

    /// Whether the loaded set holds `kid` (no fetch).
    pub fn holds(&self, kid: &str) -> bool {
        self.keys
            .read()
            .expect("key lock")
            .as_ref()
            .is_some_and(|keys| keys.contains_key(kid))
    }

    fn lookup(&self, kid: &str) -> Option<SigningKey> {
        self.keys
            .read()
            .expect("key lock")
            .as_ref()
            .and_then(|keys| keys.get(kid).cloned())
    }

    /// The key for `kid`, refetching the set when the rules above allow it.
    pub async fn key(&self, kid: &str) -> Option<SigningKey> {
        if let Some(key) = self.lookup(kid) {
            return Some(key);
        }
        let _fetching = self.fetching.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(key) = self.lookup(kid) {
            return Some(key);
        }
        {
            let mut last = self.last_miss_refetch.lock().expect("refetch lock");
            // Before any key set loaded, the background task is retrying already; a request
            // may still try, but not more often than every few seconds.
            let interval = if self.is_loaded() {
                UNKNOWN_KID_REFETCH_INTERVAL
            } else {
                UNLOADED_REFETCH_INTERVAL
            };
            if last.is_some_and(|at| at.elapsed() < interval) {
                return None;
            }
            *last = Some(Instant::now());
        }
        tracing::info!(
            kid = %crate::telemetry::shown(kid),
            "unknown signing key id: refetching the key set"
        );
        if let Err(error) = self.fetch_locked().await {
            tracing::warn!(%error, "key set refetch failed; keeping the last good keys");
        }
        self.lookup(kid)
    }

    /// Fetches the key set now (start-up and background refresh).
    pub async fn refresh(&self) -> Result<usize, KeyError> {
        let _fetching = self.fetching.lock().await;
        self.fetch_locked().await
    }

    async fn fetch_locked(&self) -> Result<usize, KeyError> {
        let result = self.fetch_once().await;
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!(crate::telemetry::JWKS_FETCHES, "result" => outcome).increment(1);
        result
    }

    async fn fetch_once(&self) -> Result<usize, KeyError> {
        let jwks_url = match &self.source {
            KeySource::Jwks(url) => url.clone(),
            KeySource::Discovery(url) => self.get_json::<OpenIdConfiguration>(url).await?.jwks_uri,
        };
        jwks_url
            .parse::<crate::values::SecureUrl>()
            .map_err(|e| KeyError(e.to_string()))?;
        let raw: RawJwks = self.get_json(&jwks_url).await?;
        let keys: HashMap<String, SigningKey> = raw
            .keys
            .into_iter()
            // One key of an unsupported type must not hide the others.
            .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
            // Encryption keys are not signing keys.
            .filter(|jwk| jwk.common.public_key_use != Some(PublicKeyUse::Encryption))
            .filter_map(|jwk| {
                let algorithm = (jwk.common.key_algorithm)
                    .and_then(|alg| jsonwebtoken::Algorithm::try_from(alg).ok());
                let key = DecodingKey::from_jwk(&jwk).ok()?;
                Some((jwk.common.key_id?, SigningKey { key, algorithm }))
            })
            .collect();
        if keys.is_empty() {
            return Err(KeyError(format!("{jwks_url} holds no usable signing key")));
        }
        let count = keys.len();
        *self.keys.write().expect("key lock") = Some(Arc::new(keys));
        tracing::info!(keys = count, "signing keys loaded");
        Ok(count)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, KeyError> {
        let failed = |e: &dyn std::fmt::Display| KeyError(format!("GET {url}: {e}"));
        let response = self.http.get(url).send().await.map_err(|e| failed(&e))?;
        if !response.status().is_success() {
            return Err(failed(&format_args!("HTTP {}", response.status())));
        }
        response.json::<T>().await.map_err(|e| failed(&e))
    }

    /// Loads keys until the first success (with backoff), then refreshes hourly.
    pub fn spawn_refresher(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let store = Arc::clone(self);
        tokio::spawn(async move {
            let mut backoff = Duration::from_secs(1);
            if store.is_loaded() {
                tokio::time::sleep(REFRESH_INTERVAL).await;
            }
            loop {
                match store.refresh().await {
                    Ok(_) => {
                        backoff = Duration::from_secs(1);
                        tokio::time::sleep(REFRESH_INTERVAL).await;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "signing key refresh failed; keeping the last good keys");
                        tokio::time::sleep(if store.is_loaded() {
                            REFRESH_INTERVAL / 12
                        } else {
                            backoff
                        })
                        .await;
                        backoff = (backoff * 2).min(Duration::from_secs(60));
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::Captured;

    #[tokio::test]
    async fn an_unknown_kid_is_logged_escaped_in_the_human_format() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _default = tracing::subscriber::set_default(subscriber);
        // Nothing listens on port 9: the refetch fails fast, after the line is written.
        let store = KeyStore::new(
            reqwest::Client::builder().no_proxy().build().unwrap(),
            KeySource::Jwks("http://127.0.0.1:9/keys".into()),
        );
        let forged = "x\r\n2026-12-03T00:00:00Z  INFO audit: decision=forwarded \u{1b}[31m";
        assert!(store.key(forged).await.is_none());
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let line = text
            .lines()
            .find(|l| l.contains("unknown signing key id"))
            .expect("the refetch is logged");
        assert!(line.contains(r"x\r\n2026"), "{line}");
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(!text.contains('\r'), "{text}");
        assert!(
            !text.lines().any(|l| l.starts_with("2026-12-03T00:00:00Z")),
            "{text}"
        );
    }
}
