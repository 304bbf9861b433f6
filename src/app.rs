//! The composition root: every service of the facade built from a checked configuration, once.
//!
//! Nothing below this file sees the configuration as a whole: each part gets its own section
//! (or the few values it needs), already parsed and with its files read.

use std::sync::Arc;
use std::time::Duration;

use crate::admission::Admission;
use crate::auth::Authenticator;
use crate::auth::authz::Policy;
use crate::config::Valid;
use crate::directory::Directory;
use crate::graph::GraphClient;
use crate::guard::Guard;
use crate::guard::store::Store;
use crate::http::{App, AppState};
use crate::reads::{ReadCache, ReadService};
use crate::start::StartService;

/// Builds the service's state from a checked configuration.
pub fn build(valid: Valid) -> Result<AppState, crate::Error> {
    // Installed before anything records, so that no early metric is lost.
    crate::telemetry::prometheus();
    let Valid {
        config,
        graph,
        redis,
    } = valid;
    let http = outbound_client(config.graph.timeout_secs, graph.proxy)?;
    let auth = Authenticator::new(&config.auth, http.clone());
    let policy = || Policy::new(&config.auth, config.graph.on_behalf_of);
    let (guard, read_store) = build_guard(&config, redis)?;
    let guard = Arc::new(guard);
    let server = &config.server;
    let graph_client = Arc::new(GraphClient::new(&config.graph, graph.credential, http));
    let admission = Arc::new(Admission::new(
        server.rate_limit_per_minute,
        server.rate_limit_burst,
        server.max_concurrent_starts,
    ));
    let directory = Arc::new(Directory::new(
        Arc::clone(&graph_client),
        Arc::clone(&admission),
    ));
    let read_cache = Arc::new(ReadCache::new(
        read_store,
        Duration::from_secs(config.reads.cache_secs),
    ));
    let reads = ReadService {
        graph: Arc::clone(&graph_client),
        policy: policy(),
        directory: Arc::clone(&directory),
        guard: Arc::clone(&guard),
        admission: Arc::clone(&admission),
        cache: Arc::clone(&read_cache),
    };
    let starts = Arc::new(StartService {
        graph: graph_client,
        policy: policy(),
        guard,
        admission,
        directory,
        reads: read_cache,
        preflight: config.guard.preflight,
        on_behalf_of: config.graph.on_behalf_of,
        tasks: tokio_util::task::TaskTracker::new(),
    });
    Ok(Arc::new(App {
        auth,
        starts,
        reads,
        forward_headers: graph.forward_headers,
        ui: config.ui,
        hooks: config.webhooks,
        server: config.server,
        draining: std::sync::atomic::AtomicBool::new(false),
    }))
}

/// The guard and its store, and the store of the job-read cache. With Redis, flights, cooldowns,
/// idempotency records and cached reads are shared by every replica; in memory, idempotency
/// records and cached reads get bounded tables of their own so that a flood of keys cannot evict
/// cooldowns.
fn build_guard(
    config: &crate::config::Config,
    redis: crate::guard::store::RedisOptions,
) -> Result<(Guard, Store), crate::Error> {
    let open = || {
        Store::open_with(
            &config.guard.store,
            config.guard.memory_max_entries,
            redis.clone(),
        )
        .map_err(|e| crate::Error::Startup(e.to_string()))
    };
    let state = open()?;
    let (cooldowns, replies, reads) = match state {
        Store::Memory(_) => (open()?, open()?, open()?),
        Store::Redis(_) => (state.clone(), state.clone(), state.clone()),
    };
    let guard = Guard::new(
        state,
        cooldowns,
        replies,
        config.guard.cooldown(),
        config.graph.flight_bound(),
        config.server.request_timeout(),
    );
    Ok((guard, reads))
}

/// The one HTTP client for Entra and Graph. Redirects are not followed: a bearer token must
/// only ever go to the configured hosts. A configured proxy replaces the `*_PROXY` environment
/// variables (reqwest's default).
fn outbound_client(
    timeout_secs: u64,
    proxy: Option<reqwest::Proxy>,
) -> Result<reqwest::Client, crate::Error> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("syncjob-facade/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(timeout_secs));
    if let Some(proxy) = proxy {
        builder = builder.proxy(proxy);
    }
    builder
        .build()
        .map_err(|e| crate::Error::Startup(format!("cannot build the HTTP client: {e}")))
}
