//! The admin listener (`--admin HOST:PORT`): `/metrics`, `/healthz` and `/readyz` on
//! their own port, for stdio mode (where there is no HTTP listener) and beside the
//! HTTP listener when an operator wants them apart from `/mcp`. Loopback only unless
//! `--allow-remote`; `/metrics` takes the same bearer token as `/mcp`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::StatusCode;
use tokio::net::TcpListener;

use super::http_server::{AccessPolicy, HEALTH_PATH, READY_PATH, enforce_access};
use crate::telemetry::{METRICS_PATH, serve_metrics};

/// Whether the proxy is ready: its plugins are loaded and its backends started.
/// `/readyz` answers 503 until [`Readiness::set_ready`].
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set_ready(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Why the admin listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(
        "refusing to serve the admin listener on {0}, which is not a loopback address. Pass --allow-remote (with --auth-token-env) if that is intended"
    )]
    NotLoopback(SocketAddr),
    #[error("cannot listen on {addr} (--admin): {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Where the admin listener listens and whom it lets in.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub addr: SocketAddr,
    pub allow_remote: bool,
    /// Applied to `/metrics` (the probes carry no token, as on the HTTP listener).
    pub access: AccessPolicy,
}

/// A bound admin listener.
pub struct AdminServer {
    listener: TcpListener,
    router: Router,
}

impl AdminServer {
    /// Binds the socket, refusing a non-loopback address unless allowed.
    pub async fn bind(config: AdminConfig, readiness: Readiness) -> Result<Self, AdminError> {
        let addr = config.addr;
        if !addr.ip().is_loopback() {
            if !config.allow_remote {
                return Err(AdminError::NotLoopback(addr));
            }
            if config.access.token.is_none() {
                tracing::warn!(
                    "admin listener on {addr} without --auth-token-env: anyone who can reach it can read the metrics"
                );
            }
        }
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| AdminError::Bind { addr, source })?;
        let mut access = config.access;
        access.loopback_only_host = addr.ip().is_loopback();
        Ok(AdminServer {
            listener,
            router: router(access, readiness),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
    }

    /// Binds, says where on stderr (as the HTTP listener does), and serves in the
    /// background for the life of the process.
    pub async fn start(config: AdminConfig, readiness: Readiness) -> anyhow::Result<()> {
        let server = Self::bind(config, readiness).await?;
        let addr = server.local_addr()?;
        crate::log_output::flush_stderr();
        eprintln!(
            "interpose: admin listening on http://{addr} ({METRICS_PATH}, {HEALTH_PATH}, {READY_PATH})"
        );
        tokio::spawn(async move {
            if let Err(e) = server.serve(std::future::pending()).await {
                tracing::error!("the admin listener stopped: {e}");
            }
        });
        Ok(())
    }
}

fn router(access: AccessPolicy, readiness: Readiness) -> Router {
    let metrics = Router::new().route(METRICS_PATH, get(serve_metrics)).layer(
        axum::middleware::from_fn_with_state(Arc::new(access), enforce_access),
    );
    metrics
        .route(HEALTH_PATH, get(|| status(StatusCode::OK)))
        .route(READY_PATH, get(ready))
        .with_state(readiness)
}

async fn ready(State(readiness): State<Readiness>) -> Response {
    if readiness.is_ready() {
        status(StatusCode::OK).await
    } else {
        status(StatusCode::SERVICE_UNAVAILABLE).await
    }
}

async fn status(code: StatusCode) -> Response {
    let body = if code.is_success() {
        r#"{"status":"ok"}"#
    } else {
        r#"{"status":"starting"}"#
    };
    (
        code,
        [(http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}
