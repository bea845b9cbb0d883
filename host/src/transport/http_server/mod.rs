//! Downstream over HTTP: the Streamable HTTP endpoint (`/mcp`) and the legacy HTTP+SSE
//! endpoints (`/sse`, `/messages`), served by axum. Each client session gets its own
//! relay and its own backend session (for a command: its own process), so server
//! requests, notifications and subscriptions reach the client they belong to.

mod access;
mod events;
mod legacy;
mod reply;
mod session;
mod streamable;
mod table;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use tokio::net::TcpListener;

pub use access::AccessPolicy;

use crate::intercept::SharedInterceptor;
use crate::transport::upstream::UpstreamSpec;
use table::SessionTable;

/// The Streamable HTTP endpoint's path.
pub const MCP_PATH: &str = "/mcp";
/// The legacy SSE endpoint's path.
pub const SSE_PATH: &str = "/sse";

/// How the HTTP listener listens and whom it lets in.
#[derive(Debug, Clone)]
pub struct HttpServerConfig {
    pub addr: SocketAddr,
    /// Accept a bind address other than loopback. Off by default: a local proxy that
    /// listens on every interface hands the backend (and its credentials) to the network.
    pub allow_remote: bool,
    pub access: AccessPolicy,
    /// Sessions served at once; more get 503.
    pub max_sessions: usize,
    /// A session nobody has used for this long is ended (and its backend stopped).
    pub session_idle_timeout: Duration,
    /// Pass the client's `Authorization` header on to an HTTP backend (off: the
    /// client's credentials are for the proxy, not for whatever is behind it).
    pub pass_client_authorization: bool,
}

impl HttpServerConfig {
    /// Loopback only, no token, default limits.
    pub fn new(addr: SocketAddr) -> Self {
        HttpServerConfig {
            addr,
            allow_remote: false,
            access: AccessPolicy::default(),
            max_sessions: 64,
            session_idle_timeout: Duration::from_secs(30 * 60),
            pass_client_authorization: false,
        }
    }
}

/// What every session is made of: a backend session, a relay, its interceptor.
#[derive(Clone)]
pub struct SessionSettings {
    pub upstream: UpstreamSpec,
    /// The backend's name, shown to interceptors and in logs.
    pub server_name: String,
    pub interceptor: SharedInterceptor,
    /// Largest message (request body, event) accepted; larger bodies get 413.
    pub max_message_bytes: usize,
    /// After a session ends, how long its backend gets to finish and exit.
    pub backend_shutdown_grace: Duration,
}

/// Why the listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpServerError {
    #[error(
        "refusing to listen on {0}, which is not a loopback address: anyone who can reach it could use the backend. Pass --allow-remote (with --auth-token-env) if that is intended"
    )]
    NotLoopback(SocketAddr),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// What every handler shares.
pub struct ServerState {
    config: HttpServerConfig,
    settings: SessionSettings,
    sessions: SessionTable,
}

/// A bound listener, ready to serve.
pub struct HttpServer {
    listener: TcpListener,
    state: Arc<ServerState>,
}

impl HttpServer {
    /// Binds the listening socket, refusing a non-loopback address unless allowed.
    pub async fn bind(
        config: HttpServerConfig,
        settings: SessionSettings,
    ) -> Result<HttpServer, HttpServerError> {
        let addr = config.addr;
        if !addr.ip().is_loopback() {
            if !config.allow_remote {
                return Err(HttpServerError::NotLoopback(addr));
            }
            if config.access.token.is_none() {
                tracing::warn!(
                    "listening on {addr} without --auth-token-env: anyone who can reach this address can use the backend"
                );
            }
        }
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| HttpServerError::Bind { addr, source })?;
        let mut config = config;
        config.access.loopback_only_host = addr.ip().is_loopback();
        let state = Arc::new(ServerState {
            sessions: SessionTable::new(config.max_sessions),
            config,
            settings,
        });
        Ok(HttpServer { listener, state })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then ends every session (stopping their
    /// backends) and returns.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let state = self.state;
        let router = router(state.clone());
        let reaper = tokio::spawn(expire_idle_sessions(state.clone()));
        let stopping = state.clone();
        let grace = state.settings.backend_shutdown_grace;
        let graceful = async move {
            shutdown.await;
            // Ending the sessions ends their streams, so open connections can finish.
            stopping
                .sessions
                .end_all("the proxy is shutting down", grace + Duration::from_secs(2))
                .await;
        };
        // An answer goes out in two writes (headers, then the event); with Nagle's
        // algorithm the second waits for the client's delayed ACK: 40 ms per call.
        let listener = self.listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!("cannot set TCP_NODELAY: {e}");
            }
        });
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(graceful)
            .await;
        reaper.abort();
        state
            .sessions
            .end_all("the proxy is shutting down", grace)
            .await;
        served.map_err(Into::into)
    }
}

fn router(state: Arc<ServerState>) -> Router {
    let policy = Arc::new(state.config.access.clone());
    let limit = state.settings.max_message_bytes;
    Router::new()
        .route(
            MCP_PATH,
            post(streamable::post)
                .get(streamable::get)
                .delete(streamable::delete),
        )
        .route(SSE_PATH, get(legacy::open))
        .route(legacy::MESSAGES_PATH, post(legacy::post))
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            policy,
            access::enforce,
        ))
        .with_state(state)
}

async fn expire_idle_sessions(state: Arc<ServerState>) {
    let limit = state.config.session_idle_timeout;
    let period = (limit / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        state.sessions.expire_idle(limit);
    }
}
