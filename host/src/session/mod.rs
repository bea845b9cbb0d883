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

use futures::FutureExt;
use futures::future::BoxFuture;

use crate::downstream::OpenSession;
use crate::upstream::{UpstreamGuard, UpstreamSpec};
use crate::wire::link::{ConnectContext, Link};
use intercept::SharedInterceptor;
use relay::{RelayConfig, RelayEnd, SessionRelay};

/// Once the relay has ended, how long an exiting backend has before SIGTERM.
const EXIT_WAIT: Duration = Duration::from_millis(200);

/// How this proxy's sessions are opened: the backend, what it is called, the
/// interceptor every message goes through, and the limits.
#[derive(Clone)]
pub struct SessionSettings {
    pub upstream: UpstreamSpec,
    /// The backend's name, shown to interceptors and in logs.
    pub server_name: String,
    pub interceptor: SharedInterceptor,
    /// Largest message accepted from either side.
    pub max_message_bytes: usize,
    /// After the client leaves, how long the backend gets to finish and exit.
    pub backend_shutdown_grace: Duration,
}

/// A session opened and not yet run: its relay and what closes its backend.
pub struct Session {
    relay: SessionRelay,
    backend: UpstreamGuard,
}

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
        let (backend_link, backend) = self.upstream.connect(self.max_message_bytes, context)?;
        let config = RelayConfig {
            session: label.to_owned(),
            shared_session: shared,
            server: self.server_name.clone(),
            interceptor: self.interceptor.clone(),
            shutdown_grace: self.backend_shutdown_grace,
        };
        Ok(Session {
            relay: SessionRelay::new(config, client, backend_link),
            backend,
        })
    }
}

impl Session {
    /// Relays until one side ends or `shutdown` completes, then closes the backend.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> RelayEnd {
        let end = self.relay.run(shutdown).await;
        self.backend.shutdown(EXIT_WAIT).await;
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
        self.upstream.judges_each_request()
    }

    fn backend_shutdown_grace(&self) -> Duration {
        self.backend_shutdown_grace
    }
}
