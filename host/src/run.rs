//! `interpose run`: one client on stdio, one backend, the relay between them.

use std::time::Duration;

use anyhow::Context;

use crate::intercept::SharedInterceptor;
use crate::relay::{RelayConfig, RelayEnd, SessionRelay};
use crate::transport::child::{ChildBackend, CommandSpec};
use crate::transport::stdio;

/// How long a stdio backend gets to exit on its own once its stdin is closed. Shorter
/// than the 3 s rmcp clients give us before they send SIGTERM, so we finish first.
pub const BACKEND_SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Once the relay has ended, how long an exiting backend has before SIGTERM.
const EXIT_WAIT: Duration = Duration::from_millis(200);

/// Everything `interpose run` needs.
pub struct RunOptions {
    pub backend: CommandSpec,
    /// The backend's name for logs and plugins; defaults to the program's file name.
    pub name: Option<String>,
    pub max_message_bytes: usize,
    pub interceptor: SharedInterceptor,
}

/// Relays between this process's stdio and the backend until one side ends.
/// Returns an error (and so a non-zero exit) when the backend ended first.
pub async fn run(options: RunOptions) -> anyhow::Result<()> {
    let (backend, child) = ChildBackend::spawn(&options.backend, options.max_message_bytes)?;
    let client = stdio::client_link(options.max_message_bytes);
    let config = RelayConfig {
        session: "stdio".into(),
        server: options.name.unwrap_or_else(|| options.backend.name()),
        interceptor: options.interceptor,
        shutdown_grace: BACKEND_SHUTDOWN_GRACE,
    };
    let end = SessionRelay::new(config, client, backend)
        .run(shutdown_signal())
        .await;
    match end {
        RelayEnd::ClientClosed | RelayEnd::Shutdown => {
            child.shutdown(EXIT_WAIT).await;
            Ok(())
        }
        RelayEnd::BackendClosed(why) => {
            child.shutdown(EXIT_WAIT).await;
            Err(anyhow::anyhow!(why)).context("the backend ended the session")
        }
    }
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
