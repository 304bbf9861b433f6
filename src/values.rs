//! Value types the configuration sections share: secrets that never print, URLs that keep the
//! https rule, and the list of problems a section's check collects. Each module owns its own
//! section; this file is all they have in common.

use std::path::Path;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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

/// A secret given inline (`key`) or by file (`key_file`): exactly one of them. The file is read
/// here, once.
pub fn secret_from(
    key: &str,
    inline: Option<&Secret>,
    file: Option<&Path>,
) -> Result<Secret, String> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(format!("give either {key} or {key}_file, not both")),
        (Some(secret), None) if !secret.expose().is_empty() => Ok(secret.clone()),
        (None, Some(path)) => first_line(path).map(Secret::new),
        _ => Err(format!("{key} or {key}_file is required")),
    }
}

/// The first line of a secret file, trimmed; an unreadable or empty file is an error.
pub fn first_line(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let line = text.lines().next().unwrap_or_default().trim();
    if line.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(line.to_owned())
}

/// A URL the facade sends tokens to or trusts keys from: `https://`, or `http://` to a loopback
/// host (development and tests); no credentials in it. Kept as written, since issuers are
/// compared as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecureUrl {
    text: String,
    url: reqwest::Url,
}

impl SecureUrl {
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn url(&self) -> &reqwest::Url {
        &self.url
    }
}

impl std::fmt::Display for SecureUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for SecureUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let url = reqwest::Url::parse(text).map_err(|e| format!("'{text}' is not a URL: {e}"))?;
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&url) => {}
            "http" => {
                return Err(format!(
                    "'{text}' must use https:// (http:// is accepted only for loopback hosts)"
                ));
            }
            other => return Err(format!("scheme '{other}' is not supported")),
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("'{text}' has no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("credentials in the URL are not accepted".into());
        }
        Ok(Self {
            text: text.to_owned(),
            url,
        })
    }
}

impl<'de> Deserialize<'de> for SecureUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for SecureUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

pub fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// What is wrong with a configuration, each problem with the key it concerns. Sections add to
/// it; start-up stops with all of them at once.
#[derive(Debug, Default)]
pub struct Problems(Vec<(String, String)>);

impl Problems {
    pub fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push((key.into(), message.into()));
    }

    /// Adds `result`'s error, if any, under `key`; the value when there is one.
    pub fn check<T>(&mut self, key: &str, result: Result<T, String>) -> Option<T> {
        result.map_err(|message| self.add(key, message)).ok()
    }

    /// A number within `least..=most`.
    pub fn within(&mut self, key: &str, value: u64, least: u64, most: u64) {
        if value < least {
            self.add(key, format!("must be at least {least}"));
        } else if value > most {
            self.add(key, format!("must be at most {most}"));
        }
    }

    /// A list of names that must not be empty, nor hold an empty name.
    pub fn names(&mut self, key: &str, names: &[String]) {
        if names.is_empty() || names.iter().any(|n| n.trim().is_empty()) {
            self.add(key, "at least one non-empty name is required");
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_vec(self) -> Vec<(String, String)> {
        self.0
    }
}
