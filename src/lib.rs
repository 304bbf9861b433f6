//! syncjob-facade: one authenticated, authorised, audited HTTP endpoint that starts Microsoft
//! Entra provisioning jobs through Microsoft Graph.
//!
//! A request flows one way: `server` accepts the connection; `http` parses the route, the
//! switches and the ids and authenticates the caller (`auth`); the `start` pipeline authorises
//! (`auth::authz`), resolves the target, asks the `guard` (idempotency, cooldown, single
//! flight), takes `admission` (rate limit, places) when it leads a flight, reads and starts the
//! job through `graph`, and returns one `outcome`, which it has recorded in the `audit`; `http`
//! renders it. `config` and `app` build all of it once at start-up. ARCHITECTURE.md is the map.

#![forbid(unsafe_code)]

pub mod admission;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod directory;
pub mod error;
pub mod graph;
pub mod guard;
pub mod http;
pub mod ids;
pub mod outcome;
pub mod reads;
pub mod server;
pub mod start;
pub mod telemetry;
pub mod ui;
pub mod values;
pub mod webhooks;

/// Errors that stop the program.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("{0}")]
    Startup(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}
