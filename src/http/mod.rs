//! The HTTP surface: routes, the layers every request passes, extractors that parse and
//! authenticate, and the handlers that hand a parsed `StartRequest` to the start pipeline and
//! render its [`crate::outcome::Outcome`]. Nothing here decides permissions or talks to Graph.
//!
//! `router` assembles routes and layers, `starts` and `hooks` are the start routes,
//! `operations` the health, readiness and metrics routes, `openapi` the document's types.

pub mod batch;
pub mod config;
pub mod context;
pub mod extract;
pub mod graph_path;
pub mod hooks;
pub mod identity;
pub mod openapi;
mod operations;
mod reads;
mod router;
mod starts;

use std::sync::Arc;

use axum::http::HeaderName;

use crate::auth::Authenticator;
use crate::reads::ReadService;
use crate::start::StartService;

pub use router::{app, openapi};

/// Shared state of the service.
pub type AppState = Arc<App>;

pub struct App {
    /// Validates callers' tokens.
    pub auth: Authenticator,
    /// Decides, guards, forwards and audits starts.
    pub starts: Arc<StartService>,
    /// Job reads, with their cache and the guard's view.
    pub reads: ReadService,
    /// Caller headers forwarded to Graph (`graph.forward_headers`).
    pub forward_headers: Vec<HeaderName>,
    /// The operator page's settings, when `[ui]` is configured.
    pub ui: Option<crate::ui::UiConfig>,
    /// The configured webhooks.
    pub hooks: Vec<crate::webhooks::WebhookConfig>,
    /// The `[server]` section: limits, timeouts, CORS, shutdown.
    pub server: config::ServerConfig,
    /// Set when shutdown began: `/readyz` answers 503 so that load balancers stop sending.
    pub draining: std::sync::atomic::AtomicBool,
}
