//! The session layer, between the client side and the backend side: for each client
//! session, one backend session and a [`relay::SessionRelay`] carrying every message
//! across in order, through the interceptor ([`intercept`]). [`SessionSettings::open`]
//! is the one way a session is opened, for `interpose run`, the HTTP server and the demo.

pub mod gateway;
pub mod intercept;
pub mod lifecycle;
pub mod lists;
pub mod names;
pub mod pending;
pub mod relay;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::FutureExt;
use futures::future::BoxFuture;

use crate::downstream::OpenSession;
use crate::telemetry::metrics::Transport;
use crate::upstream::UpstreamSpec;
use crate::wire::link::{ConnectContext, Link};
use gateway::GatewayOptions;
use intercept::{SessionPrincipal, SharedInterceptor};
use lifecycle::{Catalog, Connector, Lifecycle, RestartPolicy};
use relay::{BackendLink, BackendStart, RelayConfig, RelayEnd, SessionRelay};

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
    /// How long its `initialize` may take before the client is answered without it.
    pub start_timeout: Duration,
    /// Whether it is started again when it dies.
    pub restart: RestartPolicy,
    /// In a gateway: started on the first request routed to it, once a session has
    /// filled its catalog.
    pub lazy: bool,
    /// What its live instances answered, for sessions that have not started it.
    pub catalog: Arc<Catalog>,
}

impl BackendSettings {
    /// A backend that may take its time, with the default start timeout, not
    /// restarted.
    pub fn new(name: impl Into<String>, upstream: UpstreamSpec) -> Self {
        BackendSettings {
            name: name.into(),
            upstream,
            timeout: None,
            chain: None,
            start_timeout: lifecycle::DEFAULT_START_TIMEOUT,
            restart: RestartPolicy::Never,
            lazy: false,
            catalog: Arc::default(),
        }
    }
}

/// A session opened and not yet run: its relay, which also closes its backends.
pub struct Session {
    relay: SessionRelay,
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
        transport: Transport,
        context: &ConnectContext,
    ) -> anyhow::Result<Session> {
        let several = self.backends.len() > 1;
        let mut links = Vec::with_capacity(self.backends.len());
        let handoff = context.handoff.as_ref();
        for backend in &self.backends {
            let connect: Connector = {
                let upstream = backend.upstream.clone();
                let (max_message_bytes, mut context) = (self.max_message_bytes, context.clone());
                context.backend_session = handoff.map(|h| h.backend(&backend.name));
                Arc::new(move || upstream.connect(max_message_bytes, &context))
            };
            // Continuing a session another replica opened: a server it had not started
            // (lazy) starts on first use, with the client's handshake replayed.
            if handoff.is_some_and(|h| h.is_resumed() && h.resumed_version(&backend.name).is_none())
            {
                links.push(BackendLink {
                    name: backend.name.clone(),
                    start: BackendStart::OnFirstUse,
                    timeout: backend.timeout,
                    chain: backend.chain.clone(),
                    lifecycle: Lifecycle {
                        start_timeout: backend.start_timeout,
                        restart: backend.restart,
                        connect: Some(connect),
                        catalog: None,
                    },
                });
                continue;
            }
            // A lazy server alone is the session: it starts with it.
            let lazy = backend.lazy && several;
            let lifecycle = Lifecycle {
                start_timeout: backend.start_timeout,
                restart: backend.restart,
                connect: Some(connect.clone()),
                catalog: lazy.then(|| backend.catalog.clone()),
            };
            // The first session starts it anyway, to fill the catalog.
            if lazy && backend.catalog.is_filled() {
                links.push(BackendLink {
                    name: backend.name.clone(),
                    start: BackendStart::OnFirstUse,
                    timeout: backend.timeout,
                    chain: backend.chain.clone(),
                    lifecycle,
                });
                continue;
            }
            let start = match connect() {
                Ok((link, guard)) => BackendStart::Open(link, guard),
                // One server is the session: it cannot serve without it, unless it
                // comes back.
                Err(e) if !several && !lifecycle.restarts() => {
                    return Err(e).with_context(|| format!("starting server `{}`", backend.name));
                }
                Err(e) => {
                    tracing::error!(server = %backend.name, "server `{}` could not start: {e:#}", backend.name);
                    BackendStart::Failed(format!("could not start: {e:#}"))
                }
            };
            links.push(BackendLink {
                name: backend.name.clone(),
                start,
                timeout: backend.timeout,
                chain: backend.chain.clone(),
                lifecycle,
            });
        }
        let server = match &self.backends[..] {
            [backend] => backend.name.clone(),
            _ => GATEWAY_NAME.to_owned(),
        };
        let config = RelayConfig {
            session: label.to_owned(),
            transport,
            server,
            interceptor: self.interceptor.clone(),
            shutdown_grace: self.backend_shutdown_grace,
            gateway: self.gateway.clone(),
            principal: context
                .principal
                .clone()
                .map(|p| Arc::new(SessionPrincipal::new(p))),
        };
        let mut relay = SessionRelay::with_backends(config, client, links);
        if let Some(handoff) = handoff {
            relay.attach_handoff(handoff.clone());
        }
        Ok(Session { relay })
    }
}

impl Session {
    /// Relays until one side ends or `shutdown` completes, then closes the backends.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> RelayEnd {
        self.relay.run(shutdown).await
    }
}

impl OpenSession for SessionSettings {
    fn open(
        &self,
        client: Link,
        label: &str,
        transport: Transport,
        context: &ConnectContext,
    ) -> anyhow::Result<BoxFuture<'static, Option<String>>> {
        let session = SessionSettings::open(self, client, label, transport, context)?;
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

    fn sessions_can_move(&self) -> bool {
        self.backends
            .iter()
            .all(|b| matches!(b.upstream, UpstreamSpec::StreamableHttp(_)))
    }
}
