//! What faces the clients: stdio (one client) and the HTTP server (Streamable HTTP and
//! legacy SSE, many client sessions). Each client session becomes a [`Link`] that the
//! session layer joins to a backend; the HTTP server asks for those sessions through
//! [`OpenSession`], so nothing here depends on the layer above.

pub mod admin;
pub mod auth;
pub mod http_server;
pub mod stdio;

use std::time::Duration;

use futures::future::BoxFuture;

use crate::telemetry::metrics::Transport;
use crate::wire::link::{ConnectContext, Link};

/// What a transport serving many client sessions needs from the layer above: a way
/// to open the backend side of each, and the facts about that backend it must know.
pub trait OpenSession: Send + Sync {
    /// Opens a backend session joined to `client` and returns it to run: it relays
    /// until one side ends, then closes the backend, and resolves to why the backend
    /// ended it, if it did. `label` names the session in logs and to plugins;
    /// `transport` is where the client came in (a sessionless one is shared by
    /// unrelated clients: requests without a session id).
    fn open(
        &self,
        client: Link,
        label: &str,
        transport: Transport,
        context: &ConnectContext,
    ) -> anyhow::Result<BoxFuture<'static, Option<String>>>;

    /// The largest message accepted, in bytes.
    fn max_message_bytes(&self) -> usize;

    /// Whether the backend judges each request's protocol era by itself (Streamable
    /// HTTP); any other backend is one connection whose era its first request decides.
    fn backend_judges_each_request(&self) -> bool;

    /// After a session ends, how long its backend gets to finish and exit.
    fn backend_shutdown_grace(&self) -> Duration;

    /// Whether a session can continue on another replica: every backend is reached
    /// over Streamable HTTP, so any replica can talk to the same backend sessions.
    fn sessions_can_move(&self) -> bool {
        false
    }
}
