//! syncjob-facade: one authenticated, authorised, audited HTTP endpoint that starts Microsoft
//! Entra provisioning jobs through Microsoft Graph.
//!
//! Data flows one way: `http` (parse, authenticate) → `auth::authz` (authorise) → `start`
//! (preflight, forward) → `graph` → answer → `audit`.

#![forbid(unsafe_code)]

pub mod admission;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod error;
pub mod graph;
pub mod guard;
pub mod http;
pub mod ids;
pub mod outcome;
pub mod server;
pub mod start;
pub mod telemetry;
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
