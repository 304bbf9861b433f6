//! The `[server]` section: where the service listens, how connections and requests are
//! bounded, how callers are admitted, how it shuts down.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::values::Problems;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub body_limit_bytes: usize,
    pub request_timeout_secs: u64,
    /// On SIGTERM / ctrl-c: how long `/readyz` answers 503 while new requests are still
    /// served, so that load balancers stop routing here first.
    pub shutdown_delay_secs: u64,
    /// Then: how long in-flight requests may take before the process exits.
    pub shutdown_grace_secs: u64,
    /// Starts sent to Graph at once; more are shed with 503. 0: no limit.
    pub max_concurrent_starts: usize,
    /// Calls to Graph per caller (tenant + object id) per minute; 0: no limit.
    pub rate_limit_per_minute: u32,
    /// Calls a caller may make at once above the steady rate.
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

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
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

impl ServerConfig {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    pub fn check(&self, problems: &mut Problems) {
        let bounds: [(&str, u64, u64, u64); 11] = [
            (
                "body_limit_bytes",
                self.body_limit_bytes as u64,
                1,
                16 << 20,
            ),
            ("request_timeout_secs", self.request_timeout_secs, 1, 3600),
            ("shutdown_delay_secs", self.shutdown_delay_secs, 0, 600),
            ("shutdown_grace_secs", self.shutdown_grace_secs, 0, 3600),
            (
                "max_concurrent_starts",
                self.max_concurrent_starts as u64,
                0,
                100_000,
            ),
            (
                "rate_limit_per_minute",
                u64::from(self.rate_limit_per_minute),
                0,
                1_000_000,
            ),
            (
                "rate_limit_burst",
                u64::from(self.rate_limit_burst),
                0,
                100_000,
            ),
            (
                "header_read_timeout_secs",
                self.header_read_timeout_secs,
                1,
                600,
            ),
            ("idle_timeout_secs", self.idle_timeout_secs, 1, 3600),
            ("max_connections", self.max_connections as u64, 1, 1_000_000),
            (
                "max_header_bytes",
                self.max_header_bytes as u64,
                8192,
                1 << 20,
            ),
        ];
        for (key, value, least, most) in bounds {
            problems.within(&format!("server.{key}"), value, least, most);
        }
        if self.rate_limit_per_minute > 0 && self.rate_limit_burst == 0 {
            problems.add(
                "server.rate_limit_burst",
                "must be at least 1 when rate_limit_per_minute is set",
            );
        }
        for (i, origin) in self.cors_allowed_origins.iter().enumerate() {
            let parsed = reqwest::Url::parse(origin).ok().filter(|u| {
                matches!(u.scheme(), "http" | "https") && u.path() == "/" && u.query().is_none()
            });
            if parsed.is_none() || origin.ends_with('/') {
                problems.add(
                    format!("server.cors_allowed_origins[{i}]"),
                    format!("'{origin}' is not an origin (scheme://host[:port])"),
                );
            }
        }
    }
}
