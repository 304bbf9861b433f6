//! The `[guard]` section: where the guard keeps its state, and its rules.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::values::{Problems, first_line};

/// How to reach a Redis store beyond its URL.
#[derive(Debug, Clone, Default)]
pub struct RedisOptions {
    /// PEM certificates trusted for `rediss://` in addition to the system roots.
    pub extra_roots_pem: Option<Vec<u8>>,
    /// A file holding the password (Azure's access key), read at each new connection so that a
    /// rotated key is picked up.
    pub password_file: Option<std::path::PathBuf>,
}

/// Where the guard keeps flights, cooldowns and idempotency records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// In process: one replica.
    Memory,
    /// A `redis://` or `rediss://` URL shared by every replica.
    Redis(String),
}

impl StoreSpec {
    pub fn redis_url(&self) -> Option<&str> {
        match self {
            Self::Memory => None,
            Self::Redis(url) => Some(url),
        }
    }

    fn is_tls(&self) -> bool {
        self.redis_url()
            .is_some_and(|url| url.starts_with("rediss://"))
    }

    /// The text, with a password in the URL replaced (for `check-config`).
    pub fn redacted(&self) -> String {
        match self {
            Self::Memory => "memory".into(),
            Self::Redis(text) => match reqwest::Url::parse(text) {
                Ok(mut url) if url.password().is_some() => {
                    let _ = url.set_password(Some("[redacted]"));
                    url.to_string()
                }
                _ => text.clone(),
            },
        }
    }
}

impl From<&str> for StoreSpec {
    fn from(text: &str) -> Self {
        if text == "memory" {
            Self::Memory
        } else {
            Self::Redis(text.to_owned())
        }
    }
}

impl From<String> for StoreSpec {
    fn from(text: String) -> Self {
        Self::from(text.as_str())
    }
}

impl<'de> Deserialize<'de> for StoreSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::from)
    }
}

impl Serialize for StoreSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardConfig {
    pub store: StoreSpec,
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

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            store: StoreSpec::Memory,
            store_ca_file: None,
            store_password_file: None,
            cooldown_secs: 300,
            preflight: true,
            memory_max_entries: 100_000,
        }
    }
}

impl GuardConfig {
    pub fn cooldown(&self) -> Duration {
        Duration::from_secs(self.cooldown_secs)
    }

    /// Checks every key, and reads the CA file once.
    pub fn prepare(&self, problems: &mut Problems) -> RedisOptions {
        problems.within("guard.cooldown_secs", self.cooldown_secs, 0, 86_400);
        problems.within(
            "guard.memory_max_entries",
            self.memory_max_entries,
            100,
            100_000_000,
        );
        if let StoreSpec::Redis(url) = &self.store {
            if !url.starts_with("redis://") && !url.starts_with("rediss://") {
                problems.add(
                    "guard.store",
                    "must be \"memory\" or a redis:// or rediss:// URL",
                );
            } else if let Err(error) = redis::Client::open(url.as_str()) {
                let text = StoreSpec::Redis(error.to_string()).redacted();
                problems.add("guard.store", format!("not a usable Redis URL: {text}"));
            }
        }
        let extra_roots_pem = self.store_ca_file.as_ref().and_then(|path| {
            let key = "guard.store_ca_file";
            if !self.store.is_tls() {
                problems.add(key, "applies only to a rediss:// (TLS) store");
                return None;
            }
            let pem = problems.check(
                key,
                std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display())),
            )?;
            if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                problems.add(key, format!("{} holds no PEM certificate", path.display()));
                return None;
            }
            Some(pem)
        });
        if let Some(path) = &self.store_password_file {
            let key = "guard.store_password_file";
            match self.store.redis_url() {
                None => problems.add(key, "applies only to a Redis store"),
                Some(url) if reqwest::Url::parse(url).is_ok_and(|u| u.password().is_some()) => {
                    problems.add(
                        key,
                        "the guard.store URL holds a password already; give it in one place",
                    );
                }
                Some(_) => {
                    problems.check(key, first_line(path));
                }
            }
        }
        RedisOptions {
            extra_roots_pem,
            password_file: self.store_password_file.clone(),
        }
    }
}
