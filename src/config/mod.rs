//! The configuration file: one TOML file, overridden key by key by `SYNCJOB_<SECTION>__<KEY>`
//! environment variables, checked once at start-up with every problem reported at once.
//!
//! Each module owns its section (`[server]`: http, `[auth]`, `[graph]`, `[guard]`, `[reads]`,
//! `[[webhooks]]`, `[ui]`): its typed fields, its defaults and its checks. This file only composes them,
//! loads them, and renders them for `check-config`. After `validate` nothing re-parses or
//! re-reads the configuration: what the sections point at (secret files, the certificate,
//! the platform's environment) has been read into [`Valid`].

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

pub use crate::auth::config::AuthConfig;
pub use crate::graph::config::{CredentialKind, GraphConfig, ProxyConfig};
pub use crate::guard::config::GuardConfig;
pub use crate::http::config::ServerConfig;
pub use crate::reads::ReadsConfig;
pub use crate::ui::UiConfig;
pub use crate::values::{Problems, Secret};
pub use crate::webhooks::{WebhookConfig, WebhookScheme, WebhookTarget};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub auth: AuthConfig,
    pub graph: GraphConfig,
    pub guard: GuardConfig,
    pub reads: ReadsConfig,
    pub webhooks: Vec<WebhookConfig>,
    /// The operator page; `None`: no `/ui`.
    pub ui: Option<UiConfig>,
}

/// Everything wrong with a configuration, each problem naming its key.
#[derive(Debug, thiserror::Error)]
#[error("{}", .problems.iter().map(|(key, message)| format!("invalid configuration: {key}: {message}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    pub problems: Vec<(String, String)>,
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        problems: vec![(key.to_owned(), message.into())],
    }
}

/// A configuration that passed every check, with what its sections point at read once.
pub struct Valid {
    pub config: Config,
    /// The Graph credential, proxy and forwarded header names.
    pub graph: crate::graph::config::Prepared,
    /// How to reach a Redis guard store beyond its URL.
    pub redis: crate::guard::store::RedisOptions,
}

impl Config {
    /// The defaults overridden by a configuration text (no environment, not checked): how
    /// `dev` and the tests configure a facade for an emulator.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(text))
            .extract()
            .map_err(|error| invalid(&error.path.join("."), error.kind.to_string()))
    }

    /// Loads the file (when given), then the `SYNCJOB_` environment, then checks.
    pub fn load(file: Option<&Path>) -> Result<Valid, ConfigError> {
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
        const SECTIONS: [&str; 7] = [
            "server", "auth", "graph", "guard", "reads", "webhooks", "ui",
        ];
        let is_key = |key: &figment::value::UncasedStr| {
            key.as_str().split_once("__").is_some_and(|(section, _)| {
                SECTIONS.iter().any(|s| section.eq_ignore_ascii_case(s))
            })
        };
        figment = figment.merge(Env::prefixed("SYNCJOB_").filter(is_key).split("__"));
        let mut config: Config = figment.extract().map_err(|error| {
            let key = error.path.join(".");
            invalid(
                if key.is_empty() { "(file)" } else { &key },
                error.kind.to_string(),
            )
        })?;
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
        config.validate()
    }

    /// Checks every section and reads what they point at (the platform's identity variables
    /// from the process's environment); every problem at once.
    pub fn validate(mut self) -> Result<Valid, ConfigError> {
        let mut problems = Problems::default();
        self.server.check(&mut problems);
        self.auth.check(&mut problems);
        let graph = self
            .graph
            .prepare(&|name| std::env::var(name).ok(), &mut problems);
        let redis = self.guard.prepare(&mut problems);
        self.reads.check(&mut problems);
        crate::webhooks::prepare(&mut self.webhooks, &mut problems);
        if let Some(ui) = self.ui.as_mut() {
            ui.prepare(
                self.auth.issuers.first(),
                self.auth.audiences.first().map(String::as_str),
                self.auth.delegated_scopes.first().map(String::as_str),
                &mut problems,
            );
        }
        match graph {
            Some(graph) if problems.is_empty() => Ok(Valid {
                config: self,
                graph,
                redis,
            }),
            _ => Err(ConfigError {
                problems: problems.into_vec(),
            }),
        }
    }

    /// Settings that validate but are likely not what the operator meant, in words.
    pub fn warnings(&self) -> Vec<String> {
        self.auth.warnings()
    }

    /// The effective configuration as TOML, secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        let mut shown = self.clone();
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
        toml::to_string_pretty(&shown)
            .unwrap_or_else(|e| format!("# cannot render configuration: {e}\n"))
    }
}
