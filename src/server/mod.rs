//! Running the service: bind, load the signing keys, serve until asked to stop.

mod connections;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::config::Valid;
use crate::http::{AppState, app};

/// A bound, not yet serving, facade. Tests bind port 0 and read `local_addr`.
pub struct Server {
    listener: TcpListener,
    state: AppState,
}

impl Server {
    /// Binds `server.listen` and makes a first attempt to load the signing keys, so that a
    /// server that is up is usually ready too.
    pub async fn bind(valid: Valid) -> Result<Self, crate::Error> {
        let addr = valid.config.server.listen;
        let state = crate::app::build(valid)?;
        let listener = listen(addr)
            .map_err(|e| crate::Error::Startup(format!("cannot listen on {addr}: {e}")))?;
        match tokio::time::timeout(Duration::from_secs(10), state.auth.keys().refresh()).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, "signing keys not loaded at start-up; retrying in the background")
            }
            Err(_) => {
                tracing::warn!("signing keys not loaded within 10 s; retrying in the background")
            }
        }
        // Connect the guard store now, so that the first starts do not race to connect.
        if let Err(error) = state.starts.guard.ping().await {
            tracing::warn!(%error, "guard store not reachable at start-up; starts fail closed until it is");
        }
        Ok(Self { listener, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener")
    }

    /// Serves until `shutdown` completes. Then: `/readyz` turns unready, the listener stops
    /// accepting, requests in flight (starts included) finish, bounded by
    /// `server.shutdown_grace_secs`, and this returns.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let refresher = self.state.auth.keys().spawn_refresher();
        let grace = Duration::from_secs(self.state.server.shutdown_grace_secs);
        let delay = Duration::from_secs(self.state.server.shutdown_delay_secs);
        tracing::info!(addr = %self.local_addr(), "syncjob-facade listening");
        let (begun, began) = tokio::sync::oneshot::channel::<()>();
        let state = self.state.clone();
        let starts = std::sync::Arc::clone(&self.state.starts);
        let grace_ends = std::sync::Arc::new(std::sync::OnceLock::<std::time::Instant>::new());
        let grace_ends_at_signal = std::sync::Arc::clone(&grace_ends);
        let signal = async move {
            shutdown.await;
            state
                .draining
                .store(true, std::sync::atomic::Ordering::SeqCst);
            tracing::info!(delay_secs = delay.as_secs(), "shutting down: unready first");
            tokio::time::sleep(delay).await;
            tracing::info!(
                grace_secs = grace.as_secs(),
                "no new connections; finishing requests in flight"
            );
            let _ = grace_ends_at_signal.set(std::time::Instant::now() + grace);
            let _ = begun.send(());
        };
        let server = &self.state.server;
        let limits = connections::Limits {
            header_read_timeout: Duration::from_secs(server.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(server.idle_timeout_secs),
            max_connections: within_descriptor_limit(server.max_connections),
            max_header_bytes: server.max_header_bytes,
        };
        let serve = connections::serve(self.listener, app(self.state), limits, signal);
        let deadline = async {
            if began.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = serve => {},
            () = deadline => {
                tracing::warn!("shutdown grace period over with requests still in flight");
            }
        }
        // Starts whose callers left are still running detached: they finish too, in the grace
        // period that is left, so that none is cut in half and each is audited.
        let tasks = &starts.tasks;
        tasks.close();
        let left = (grace_ends.get()).map_or(grace, |end| {
            end.saturating_duration_since(std::time::Instant::now())
        });
        if tokio::time::timeout(left, tasks.wait()).await.is_err() {
            tracing::warn!(
                starts = tasks.len(),
                "shutdown grace period over with starts still running"
            );
        }
        refresher.abort();
        tracing::info!("stopped");
    }
}

/// File descriptors kept free of client connections: Graph, Redis, the signing keys, logs.
const DESCRIPTORS_KEPT: usize = 128;

/// `server.max_connections`, lowered when the process may not open that many files: beyond
/// its descriptor limit accept fails and the facade could not reach Graph or Redis either.
fn within_descriptor_limit(configured: usize) -> usize {
    let Some(limit) = open_files_limit() else {
        return configured;
    };
    let usable = limit.saturating_sub(DESCRIPTORS_KEPT).max(1);
    if configured > usable {
        tracing::warn!(
            configured,
            open_files_limit = limit,
            used = usable,
            "server.max_connections is above what the open-files limit allows; raise the limit (ulimit -n) to use it"
        );
        return usable;
    }
    configured
}

/// The soft limit on open files, where the platform tells it (`/proc/self/limits`).
fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Connections beyond `server.max_connections` wait in the kernel's queue (capped by
/// `net.core.somaxconn`), so a burst of clients is queued rather than refused.
const LISTEN_BACKLOG: u32 = 4096;

fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Completes on ctrl-c or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_connections_stays_below_the_open_files_limit() {
        let Some(limit) = open_files_limit() else {
            return;
        };
        assert!(within_descriptor_limit(usize::MAX) <= limit - DESCRIPTORS_KEPT.min(limit - 1));
        assert_eq!(within_descriptor_limit(1), 1);
    }
}
