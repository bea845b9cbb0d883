//! Downstream over HTTP: the Streamable HTTP endpoint (`/mcp`) and the legacy HTTP+SSE
//! endpoints (`/sse`, `/messages`), served by axum. Each client session gets its own
//! relay and its own backend session (for a command: its own process), so server
//! requests, notifications and subscriptions reach the client they belong to.

mod access;
mod body;
mod events;
mod identity;
mod legacy;
mod replicas;
mod reply;
mod session;
mod streamable;
mod table;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

pub use access::{AccessPolicy, enforce as enforce_access};
pub use replicas::{Replicas, ReplicasConfig, ReplicasError};

use crate::downstream::OpenSession;
use crate::downstream::auth::{METADATA_PATH, Principal, ResourceServer};
use crate::wire::jsonrpc::{self, BACKEND_UNAVAILABLE, ErrorObject, Message};
use crate::wire::link::ConnectContext;
use events::ReplayBudget;
use session::SlowReaders;
use table::SessionTable;

/// The Streamable HTTP endpoint's path.
pub const MCP_PATH: &str = "/mcp";
/// The legacy SSE endpoint's path.
pub const SSE_PATH: &str = "/sse";
/// After a failed accept, how long to wait before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// At shutdown, how long open connections get to finish once the sessions have ended.
const CONNECTIONS_DRAIN: Duration = Duration::from_secs(2);

/// How the HTTP listener listens and whom it lets in.
#[derive(Debug, Clone)]
pub struct HttpServerConfig {
    pub addr: SocketAddr,
    /// Accept a bind address other than loopback. Off by default: a local proxy that
    /// listens on every interface hands the backend (and its credentials) to the network.
    pub allow_remote: bool,
    pub access: AccessPolicy,
    /// Require OAuth access tokens (`[auth]`); exclusive with `access.token`.
    pub oauth: Option<Arc<ResourceServer>>,
    /// Sessions served at once; more get 503.
    pub max_sessions: usize,
    /// A session nobody has used for this long is ended (and its backend stopped).
    pub session_idle_timeout: Duration,
    /// Pass the client's `Authorization` header on to an HTTP backend (off: the
    /// client's credentials are for the proxy, not for whatever is behind it).
    pub pass_client_authorization: bool,
    /// A connection must send a request's headers within this (slowloris); it also
    /// bounds how long an idle keep-alive connection is kept.
    pub header_read_timeout: Duration,
    /// A request's body must arrive within this; later ones get 408.
    pub body_read_timeout: Duration,
    /// Bytes of request bodies read or handled at once, all connections together;
    /// a body that would go over gets 503.
    pub body_budget_bytes: usize,
    /// Connections served at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// Bytes of SSE events held for every session together (for resumption, and for
    /// clients that read slowly); over it, events already sent are evicted first.
    pub replay_budget_bytes: usize,
    /// How long a session waits for a client that does not read its events before it
    /// replaces the answers left unread with errors.
    pub slow_reader_timeout: Duration,
    /// Several replicas behind one address (`[replicas]`): sessions that can move
    /// carry their state in a sealed id; others name this replica in theirs.
    pub replicas: Option<Arc<Replicas>>,
}

impl HttpServerConfig {
    /// Loopback only, no token, default limits.
    pub fn new(addr: SocketAddr) -> Self {
        HttpServerConfig {
            addr,
            allow_remote: false,
            access: AccessPolicy::default(),
            oauth: None,
            max_sessions: 64,
            session_idle_timeout: Duration::from_secs(30 * 60),
            pass_client_authorization: false,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            body_budget_bytes: 256 * 1024 * 1024,
            max_connections: 512,
            replay_budget_bytes: 256 * 1024 * 1024,
            slow_reader_timeout: Duration::from_secs(60),
            replicas: None,
        }
    }
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
    /// Opens the backend side of each client session (a request's body larger than
    /// its `max_message_bytes` gets 413 with a JSON-RPC error).
    backend: Arc<dyn OpenSession>,
    sessions: SessionTable,
    readers: SlowReaders,
    body_budget: Arc<Semaphore>,
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
        backend: Arc<dyn OpenSession>,
    ) -> Result<HttpServer, HttpServerError> {
        let addr = config.addr;
        if !addr.ip().is_loopback() {
            if !config.allow_remote {
                return Err(HttpServerError::NotLoopback(addr));
            }
            if config.access.token.is_none() && config.oauth.is_none() {
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
        if let Some(oauth) = &config.oauth {
            oauth.start();
        }
        let state = Arc::new(ServerState {
            sessions: SessionTable::new(config.max_sessions),
            body_budget: Arc::new(Semaphore::new(
                config.body_budget_bytes.min(Semaphore::MAX_PERMITS),
            )),
            readers: SlowReaders {
                budget: ReplayBudget::new(config.replay_budget_bytes),
                patience: config.slow_reader_timeout,
            },
            config,
            backend,
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
        let service = TowerToHyperService::new(router(state.clone()));
        let reaper = tokio::spawn(expire_idle_sessions(state.clone()));
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(state.config.header_read_timeout);
        let max_connections = state.config.max_connections;
        let connections = Arc::new(Semaphore::new(max_connections));
        let graceful = GracefulShutdown::new();
        let mut refusing = false;
        tokio::pin!(shutdown);
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors, most likely: let some close.
                        tracing::warn!("cannot accept a connection: {e}");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let Ok(permit) = connections.clone().try_acquire_owned() else {
                if !refusing {
                    tracing::warn!(
                        "{max_connections} connections are open (see --max-connections); refusing more"
                    );
                }
                refusing = true;
                refuse_connection(&tcp, max_connections);
                continue;
            };
            refusing = false;
            // An answer goes out in two writes (headers, then the event); with Nagle's
            // algorithm the second waits for the client's delayed ACK: 40 ms per call.
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!("cannot set TCP_NODELAY: {e}");
            }
            let connection =
                graceful.watch(http.serve_connection(TokioIo::new(tcp), service.clone()));
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!("connection from {peer} ended: {e}");
                }
                drop(permit);
            });
        }
        drop(self.listener);
        let grace = state.backend.backend_shutdown_grace();
        // Ending the sessions ends their streams, so open connections can finish.
        state
            .sessions
            .end_all("the proxy is shutting down", grace + Duration::from_secs(2))
            .await;
        if tokio::time::timeout(CONNECTIONS_DRAIN, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::debug!("some connections were still open after {CONNECTIONS_DRAIN:?}");
        }
        reaper.abort();
        Ok(())
    }
}

/// Answers a connection over the cap with 503 and closes it. One non-blocking write:
/// a client that cannot take it at once just sees the connection close.
fn refuse_connection(tcp: &TcpStream, limit: usize) {
    let error = ErrorObject::new(
        BACKEND_UNAVAILABLE,
        format!("the proxy already serves {limit} connections; try again later"),
    );
    let body = Message::error_response(jsonrpc::null_id(), &error).to_json();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.try_write(response.as_bytes()).ok();
}

fn router(state: Arc<ServerState>) -> Router {
    let policy = Arc::new(state.config.access.clone());
    let mcp = Router::new()
        .route(
            MCP_PATH,
            post(streamable::post)
                .get(streamable::get)
                .delete(streamable::delete),
        )
        .route(SSE_PATH, get(legacy::open))
        .route(legacy::MESSAGES_PATH, post(legacy::post))
        // Behind the same checks as `/mcp`: the counts describe the traffic.
        .route(
            crate::telemetry::METRICS_PATH,
            get(crate::telemetry::serve_metrics),
        )
        // Runs after the Origin and Host checks (layers run outermost first).
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            identity::authenticate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            policy,
            access::enforce,
        ));
    // Probes carry no token and no Origin; they learn nothing but that we serve.
    let mut router = mcp
        .route(HEALTH_PATH, get(serving))
        .route(READY_PATH, get(serving));
    // Where clients learn how to get a token: open to all, as RFC 9728 intends.
    if let Some(oauth) = &state.config.oauth {
        router = router.route(METADATA_PATH, get(identity::metadata));
        let own_path = oauth.metadata_path();
        if own_path != METADATA_PATH {
            router = router.route(&own_path, get(identity::metadata));
        }
    }
    router.with_state(state)
}

/// What a session being opened knows of its client: its principal (`[auth]`), and its
/// own `Authorization` when the operator passes it on.
fn connect_context(
    state: &ServerState,
    headers: &http::HeaderMap,
    principal: Option<Arc<Principal>>,
) -> ConnectContext {
    ConnectContext {
        client_authorization: state
            .config
            .pass_client_authorization
            .then(|| headers.get(http::header::AUTHORIZATION).cloned())
            .flatten(),
        principal,
        ..ConnectContext::default()
    }
}

/// Liveness: the process serves HTTP.
pub const HEALTH_PATH: &str = "/healthz";
/// Readiness: sessions can be opened (the plugins are loaded before the listener
/// binds; each session starts its own backends).
pub const READY_PATH: &str = "/readyz";

async fn serving() -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(http::header::CONTENT_TYPE, "application/json")],
        r#"{"status":"ok"}"#,
    )
        .into_response()
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
