//! What faces the backend: where it is and how to open a session with it (a child
//! process over stdio, Streamable HTTP, legacy SSE, or a server in this process), each
//! session a [`Link`]. One [`UpstreamSpec`] can open many sessions: an HTTP listener
//! opens one per client session (for a command, one child process each), stdio opens
//! exactly one.

pub mod child;
pub mod credentials;
pub mod error_text;
pub mod fetch;
pub mod http_client;
pub mod in_process;
pub mod sse_client;

/// Reads an environment variable: the process's own in `interpose run`, a fixed table
/// in tests.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderName, HeaderValue};
use tokio::io::DuplexStream;
use url::Url;

use crate::wire::link::{ConnectContext, Link};
use child::{ChildBackend, CommandSpec};
use http_client::{HttpUpstreamConfig, HttpUpstreamError};

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

/// Which HTTP transport a URL backend speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpTransport {
    /// Legacy SSE when the URL path ends in `/sse`, otherwise Streamable HTTP (the
    /// rule FastMCP applies too).
    Auto,
    /// Streamable HTTP (2025-03-26 and later).
    StreamableHttp,
    /// The legacy HTTP+SSE transport (2024-11-05).
    Sse,
}

/// Why a backend's HTTP settings could not be used. The text is what the user sees.
#[derive(Debug, thiserror::Error)]
pub enum HttpSettingError {
    #[error("the environment variable `{0}` is not set or is empty")]
    MissingSecret(String),
    #[error("the bearer token is not a valid header value")]
    BadToken,
    #[error("invalid header name `{0}`")]
    HeaderName(String),
    #[error("invalid value for header `{0}`")]
    HeaderValue(String),
}

/// A header sent to an HTTP backend, checked.
pub fn header_pair(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), HttpSettingError> {
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| HttpSettingError::HeaderName(name.trim().to_owned()))?;
    let value = HeaderValue::from_str(value.trim())
        .map_err(|_| HttpSettingError::HeaderValue(name.to_string()))?;
    Ok((name, value))
}

/// The value of environment variable `name`, trimmed; unset or blank is an error.
pub fn secret_from_env(name: &str) -> Result<String, HttpSettingError> {
    secret_in(name, &|name| std::env::var(name).ok())
}

/// [`secret_from_env`] with `env` as the environment.
pub fn secret_in(
    name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, HttpSettingError> {
    env(name)
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
        .ok_or_else(|| HttpSettingError::MissingSecret(name.to_owned()))
}

/// Sets `Authorization: Bearer <token>`, marked sensitive so it never shows in logs.
pub fn insert_bearer(headers: &mut HeaderMap, token: &str) -> Result<(), HttpSettingError> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| HttpSettingError::BadToken)?;
    value.set_sensitive(true);
    headers.insert(AUTHORIZATION, value);
    Ok(())
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
    /// A backend at `url` (http or https), sent `headers` with every request.
    pub fn http(
        url: Url,
        transport: HttpTransport,
        headers: HeaderMap,
    ) -> Result<UpstreamSpec, HttpUpstreamError> {
        let legacy = match transport {
            HttpTransport::Sse => true,
            HttpTransport::StreamableHttp => false,
            HttpTransport::Auto => url.path().trim_end_matches('/').ends_with("/sse"),
        };
        let config = Arc::new(HttpUpstreamConfig::new(url, headers)?);
        Ok(if legacy {
            UpstreamSpec::LegacySse(config)
        } else {
            UpstreamSpec::StreamableHttp(config)
        })
    }

    /// The same HTTP backend, sent an access token from `credentials` with every
    /// request. Other backends are returned unchanged.
    pub fn with_credentials(self, credentials: Arc<credentials::ClientCredentials>) -> Self {
        let with = |config: Arc<HttpUpstreamConfig>| {
            let mut config = (*config).clone();
            config.credentials = Some(credentials.clone());
            Arc::new(config)
        };
        match self {
            UpstreamSpec::StreamableHttp(config) => UpstreamSpec::StreamableHttp(with(config)),
            UpstreamSpec::LegacySse(config) => UpstreamSpec::LegacySse(with(config)),
            other => other,
        }
    }

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
                http_client::connect(
                    config.for_session(context),
                    max_message_bytes,
                    context.backend_session.clone(),
                ),
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
