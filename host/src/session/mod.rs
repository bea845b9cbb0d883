//! The session layer, between the client side and the backend side: for each client
//! session, one backend session and a [`relay::SessionRelay`] carrying every message
//! across in order, through the interceptor ([`intercept`]). [`SessionSettings::open`]
//! is the one way a session is opened, for `interpose run`, the HTTP server and the demo.

pub mod gateway;
pub mod intercept;
pub mod lists;
pub mod names;
pub mod pending;
pub mod relay;

use std::time::Duration;

use anyhow::Context;
use futures::FutureExt;
use futures::future::BoxFuture;

use crate::downstream::OpenSession;
use crate::upstream::{UpstreamGuard, UpstreamSpec};
use crate::wire::link::{ConnectContext, Link};
use gateway::GatewayOptions;
use intercept::SharedInterceptor;
use relay::{BackendLink, RelayConfig, RelayEnd, SessionRelay};

/// Once the relay has ended, how long an exiting backend has before SIGTERM.
const EXIT_WAIT: Duration = Duration::from_millis(200);

/// How this proxy's sessions are opened: the backends, by name, the interceptor
/// every message goes through (the global chain; a backend may add its own), and the
/// limits.
#[derive(Clone)]
pub struct SessionSettings {
    /// The backends in configuration order: one for `interpose run -- BACKEND`,
    /// several for a gateway.
    pub backends: Vec<BackendSettings>,
    pub interceptor: SharedInterceptor,
    /// Largest message accepted from either side.
    pub max_message_bytes: usize,
    /// After the client leaves, how long the backend gets to finish and exit.
    pub backend_shutdown_grace: Duration,
    /// How a gateway (several backends) shows itself and their names.
    pub gateway: GatewayOptions,
}

/// One backend of every session.
#[derive(Clone)]
pub struct BackendSettings {
    /// Its name, shown to interceptors and in logs (and, in a gateway, its prefix).
    pub name: String,
    pub upstream: UpstreamSpec,
    /// How long it may take to answer a request; then the request fails and the
    /// backend is told to cancel it. `None`: as long as it likes.
    pub timeout: Option<Duration>,
    /// Its own plugin chain, between the gateway and it (its own names); `None`: only
    /// the global chain.
    pub chain: Option<SharedInterceptor>,
}

impl BackendSettings {
    /// A backend that may take its time.
    pub fn new(name: impl Into<String>, upstream: UpstreamSpec) -> Self {
        BackendSettings {
            name: name.into(),
            upstream,
            timeout: None,
            chain: None,
        }
    }
}

/// A session opened and not yet run: its relay and what closes its backends.
pub struct Session {
    relay: SessionRelay,
    backends: Vec<UpstreamGuard>,
}

/// What plugins and logs call the session's server: the backend's name, or the
/// gateway's when there are several.
pub const GATEWAY_NAME: &str = "gateway";

impl SessionSettings {
    /// Opens a backend session for `client`. `label` names the session in logs and
    /// to plugins; `shared` says unrelated clients send on it (requests without a
    /// session id), which turns off what is kept per client (the plugin breaker).
    pub fn open(
        &self,
        client: Link,
        label: &str,
        shared: bool,
        context: &ConnectContext,
    ) -> anyhow::Result<Session> {
        let mut links = Vec::with_capacity(self.backends.len());
        let mut guards = Vec::with_capacity(self.backends.len());
        for backend in &self.backends {
            let (link, guard) = backend
                .upstream
                .connect(self.max_message_bytes, context)
                .with_context(|| format!("starting server `{}`", backend.name))?;
            links.push(BackendLink {
                name: backend.name.clone(),
                link,
                timeout: backend.timeout,
                chain: backend.chain.clone(),
            });
            guards.push(guard);
        }
        let server = match &self.backends[..] {
            [backend] => backend.name.clone(),
            _ => GATEWAY_NAME.to_owned(),
        };
        let config = RelayConfig {
            session: label.to_owned(),
            shared_session: shared,
            server,
            interceptor: self.interceptor.clone(),
            shutdown_grace: self.backend_shutdown_grace,
            gateway: self.gateway.clone(),
        };
        Ok(Session {
            relay: SessionRelay::with_backends(config, client, links),
            backends: guards,
        })
    }
}

impl Session {
    /// Relays until one side ends or `shutdown` completes, then closes the backend.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> RelayEnd {
        let end = self.relay.run(shutdown).await;
        let stopping = self.backends.into_iter().map(|b| b.shutdown(EXIT_WAIT));
        futures::future::join_all(stopping).await;
        end
    }
}

impl OpenSession for SessionSettings {
    fn open(
        &self,
        client: Link,
        label: &str,
        shared: bool,
        context: &ConnectContext,
    ) -> anyhow::Result<BoxFuture<'static, Option<String>>> {
        let session = SessionSettings::open(self, client, label, shared, context)?;
        Ok(async move {
            match session.run(std::future::pending()).await {
                RelayEnd::BackendClosed(why) => Some(why),
                RelayEnd::ClientClosed | RelayEnd::Shutdown => None,
            }
        }
        .boxed())
    }

    fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    fn backend_judges_each_request(&self) -> bool {
        self.backends
            .iter()
            .all(|b| b.upstream.judges_each_request())
    }

    fn backend_shutdown_grace(&self) -> Duration {
        self.backend_shutdown_grace
    }
}
