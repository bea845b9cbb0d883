//! What faces the backend: where it is and how to open a session with it (a child
//! process over stdio, Streamable HTTP, legacy SSE, or a server in this process), each
//! session a [`Link`]. One [`UpstreamSpec`] can open many sessions: an HTTP listener
//! opens one per client session (for a command, one child process each), stdio opens
//! exactly one.

pub mod child;
pub mod http_client;
pub mod in_process;
pub mod sse_client;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::io::DuplexStream;

use crate::wire::link::{ConnectContext, Link};
use child::{ChildBackend, CommandSpec};
use http_client::HttpUpstreamConfig;

/// Runs an MCP server over one end of an in-memory pipe.
pub type InProcessServer =
    Arc<dyn Fn(DuplexStream) -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync>;

/// A backend, as given on the command line.
#[derive(Clone)]
pub enum UpstreamSpec {
    /// A command spawned once per session, speaking MCP over stdio.
    Command(CommandSpec),
    /// A Streamable HTTP endpoint.
    StreamableHttp(Arc<HttpUpstreamConfig>),
    /// A legacy (2024-11-05) HTTP+SSE endpoint.
    LegacySse(Arc<HttpUpstreamConfig>),
    /// A server inside this process (the demo backend, tests).
    InProcess {
        name: String,
        serve: InProcessServer,
    },
}

/// Whatever must be cleaned up when a session with the backend ends.
pub enum UpstreamGuard {
    Child(ChildBackend),
    /// The link closes its own connection (HTTP sends DELETE, in-process stops).
    Nothing,
}

impl UpstreamGuard {
    /// Waits up to `grace` for the backend to end on its own, then stops it.
    pub async fn shutdown(self, grace: Duration) {
        if let UpstreamGuard::Child(child) = self {
            child.shutdown(grace).await;
        }
    }
}

impl UpstreamSpec {
    /// A short name for logs and plugin messages.
    pub fn name(&self) -> String {
        match self {
            UpstreamSpec::Command(spec) => spec.name(),
            UpstreamSpec::StreamableHttp(config) | UpstreamSpec::LegacySse(config) => {
                config.url.host_str().unwrap_or("backend").to_owned()
            }
            UpstreamSpec::InProcess { name, .. } => name.clone(),
        }
    }

    /// Whether every request reaches the backend on its own (Streamable HTTP), so the
    /// backend judges each request's protocol era by itself. Any other backend is one
    /// connection, whose era its first request decides.
    pub fn judges_each_request(&self) -> bool {
        matches!(self, UpstreamSpec::StreamableHttp(_))
    }

    /// Opens a new session with the backend.
    pub fn connect(
        &self,
        max_message_bytes: usize,
        context: &ConnectContext,
    ) -> anyhow::Result<(Link, UpstreamGuard)> {
        match self {
            UpstreamSpec::Command(spec) => {
                let (link, child) = ChildBackend::spawn(spec, max_message_bytes)?;
                Ok((link, UpstreamGuard::Child(child)))
            }
            UpstreamSpec::StreamableHttp(config) => Ok((
                http_client::connect(config.for_session(context), max_message_bytes),
                UpstreamGuard::Nothing,
            )),
            UpstreamSpec::LegacySse(config) => Ok((
                sse_client::connect(config.for_session(context), max_message_bytes),
                UpstreamGuard::Nothing,
            )),
            UpstreamSpec::InProcess { serve, .. } => {
                let serve = serve.clone();
                Ok((
                    in_process::server_link(move |io| serve(io), max_message_bytes),
                    UpstreamGuard::Nothing,
                ))
            }
        }
    }
}
