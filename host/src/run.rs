//! `interpose run`: clients on stdio or HTTP, one backend (a command or a URL), a relay
//! between each client session and its own backend session.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::cli::Listen;
use crate::downstream::admin::{AdminConfig, AdminServer, Readiness};
use crate::downstream::http_server::{HttpServer, HttpServerConfig};
use crate::downstream::stdio;
use crate::session::gateway::GatewayOptions;
use crate::session::intercept::SharedInterceptor;
use crate::session::relay::RelayEnd;
use crate::session::{BackendSettings, SessionSettings};
use crate::telemetry::metrics::Transport;
use crate::wire::link::ConnectContext;

/// How long a stdio backend gets to exit on its own once its stdin is closed. Shorter
/// than the 3 s rmcp clients give us before they send SIGTERM, so we finish first.
pub const BACKEND_SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Everything `interpose run` needs.
pub struct RunOptions {
    /// The backends: one for a plain proxy, several for a gateway.
    pub backends: Vec<BackendSettings>,
    /// Where clients connect.
    pub listen: Listen,
    /// Where `/metrics`, `/healthz` and `/readyz` are served besides, if anywhere.
    pub admin: Option<AdminConfig>,
    pub max_message_bytes: usize,
    pub interceptor: SharedInterceptor,
    pub gateway: GatewayOptions,
}

/// Serves clients until they leave (stdio) or the proxy is stopped (HTTP).
pub async fn run(options: RunOptions) -> anyhow::Result<()> {
    let settings = SessionSettings {
        backends: options.backends,
        interceptor: options.interceptor,
        max_message_bytes: options.max_message_bytes,
        backend_shutdown_grace: BACKEND_SHUTDOWN_GRACE,
        gateway: options.gateway,
    };
    // The plugins are loaded by now; the backends start with the first session.
    let readiness = Readiness::default();
    if let Some(admin) = options.admin {
        AdminServer::start(admin, readiness.clone()).await?;
    }
    match options.listen {
        Listen::Stdio => run_stdio(&settings, &readiness).await,
        Listen::Http(config) => {
            // Each HTTP session starts its own backends: ready to open them.
            readiness.set_ready();
            serve_http(config, settings).await
        }
    }
}

/// Relays between this process's stdio and the backend until one side ends.
/// Returns an error (and so a non-zero exit) when the backend ended first.
async fn run_stdio(settings: &SessionSettings, readiness: &Readiness) -> anyhow::Result<()> {
    let client = stdio::client_link(settings.max_message_bytes);
    let session = settings.open(
        client,
        "stdio",
        Transport::Stdio,
        &ConnectContext::default(),
    )?;
    let _open = crate::telemetry::metrics().session_opened(Transport::Stdio);
    readiness.set_ready();
    match session.run(shutdown_signal()).await {
        RelayEnd::ClientClosed | RelayEnd::Shutdown => Ok(()),
        RelayEnd::BackendClosed(why) => {
            Err(anyhow::anyhow!(why)).context("the backend ended the session")
        }
    }
}

/// Serves MCP over HTTP (Streamable HTTP at /mcp, legacy SSE at /sse) until SIGINT or
/// SIGTERM. Prints where clients connect on stderr once the socket is bound.
pub async fn serve_http(config: HttpServerConfig, settings: SessionSettings) -> anyhow::Result<()> {
    let server = HttpServer::bind(config, Arc::new(settings)).await?;
    let addr = server.local_addr()?;
    crate::log_output::flush_stderr();
    eprintln!(
        "interpose: listening on http://{addr}/mcp (Streamable HTTP) and http://{addr}/sse (legacy SSE)"
    );
    server.serve(shutdown_signal()).await
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            tracing::warn!("cannot listen for SIGTERM: {e}");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; shutting down"),
        _ = term.recv() => tracing::info!("terminated; shutting down"),
    }
}
