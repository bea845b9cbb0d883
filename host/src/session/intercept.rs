//! The seam between the session relay and whatever inspects messages on their way
//! through (the Wasm plugin chain, the demo's printer). The relay asks an [`Interceptor`]
//! about every message and carries out the [`Verdict`].

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use serde_json::value::RawValue;

use crate::wire::jsonrpc::{ErrorObject, Kind, Payload};
use crate::wire::link::Principal;

pub use crate::wire::jsonrpc::Direction;

/// The principal of a session, as interceptors get it: made once per session and
/// shared by every message, its claims turned into JSON text only when a plugin
/// first asks, and then once for the whole session.
#[derive(Debug)]
pub struct SessionPrincipal {
    principal: Arc<Principal>,
    claims_json: OnceLock<Box<str>>,
}

impl SessionPrincipal {
    pub fn new(principal: Arc<Principal>) -> Self {
        SessionPrincipal {
            principal,
            claims_json: OnceLock::new(),
        }
    }

    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The token's claims as a JSON object's text.
    pub fn claims_json(&self) -> &str {
        self.claims_json.get_or_init(|| {
            // A map of JSON values always serialises; the fallback is never taken.
            serde_json::to_string(&self.principal.claims)
                .unwrap_or_else(|_| "{}".to_owned())
                .into_boxed_str()
        })
    }
}

/// A message as an interceptor sees it.
#[derive(Debug, Clone, Copy)]
pub struct Intercepted<'a> {
    pub direction: Direction,
    pub kind: Kind,
    /// The method; for responses and errors, the method of the request they answer.
    pub method: &'a str,
    /// The JSON-RPC id as the sender wrote it (requests, responses, errors).
    pub id: Option<&'a RawValue>,
    /// `params` of requests and notifications, `result` of responses: shared, so
    /// an interceptor that keeps it clones the reference, not the text.
    pub payload: Option<&'a Payload>,
    /// The error of an error response.
    pub error: Option<&'a ErrorObject>,
    /// For responses and errors: the `params` of the request they answer, when the
    /// interceptor asked for it with [`Interceptor::wants_request_payload`].
    pub request_payload: Option<&'a Payload>,
    /// For responses and errors: the time from forwarding the request they answer to
    /// receiving them.
    pub elapsed: Option<Duration>,
    /// The downstream session this message belongs to.
    pub session: &'a str,
    /// Whether unrelated clients share `session` (2026-07-28 requests sent without a
    /// session all go through one): nothing that holds a session to account, such as
    /// a plugin's breaker, may act on it, or one client would act for all of them.
    pub shared_session: bool,
    /// The name of the backend.
    pub server: &'a str,
    /// Who the client session is authenticated as (`[auth]`); none for stdio, the
    /// static token, and sessions shared by unrelated clients.
    pub principal: Option<&'a Arc<SessionPrincipal>>,
    /// When traces are exported: the span of the client request this message belongs
    /// to, the parent of each plugin call's span.
    pub trace: Option<&'a crate::telemetry::trace::SpanContext>,
}

/// What to do with a message: the host's one verdict type. A plugin's verdict (the
/// WIT variant) becomes one in `plugin::bindings`, once its text is checked.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Forward it unchanged.
    Pass,
    /// Forward it with this payload (`params` or `result`) instead.
    Rewrite(Payload),
    /// Requests: answer with this `result` and do not forward. Any other kind is
    /// never answered: this is a `Rewrite` with that payload (the WIT's rule).
    Respond(Payload),
    /// Requests: answer with this error. Responses and errors: turn into this
    /// error. Notifications: drop.
    Reject(ErrorObject),
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The verdict on one message, decided at once or after waiting. Deciding at once
/// (no plugin wants the message, the common case) allocates nothing; only what
/// waits, a walk through plugins, is boxed.
pub enum VerdictFuture<'a> {
    /// Decided already.
    Ready(std::future::Ready<Verdict>),
    /// Decided once this completes.
    Boxed(BoxFuture<'a, Verdict>),
}

impl<'a> VerdictFuture<'a> {
    /// A verdict decided at once.
    pub fn ready(verdict: Verdict) -> Self {
        VerdictFuture::Ready(std::future::ready(verdict))
    }

    /// A verdict that `future` decides.
    pub fn boxed(future: impl Future<Output = Verdict> + Send + 'a) -> Self {
        VerdictFuture::Boxed(Box::pin(future))
    }
}

impl Future for VerdictFuture<'_> {
    type Output = Verdict;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Verdict> {
        // Both variants are `Unpin`.
        match self.get_mut() {
            VerdictFuture::Ready(ready) => Pin::new(ready).poll(cx),
            VerdictFuture::Boxed(future) => future.as_mut().poll(cx),
        }
    }
}

/// Inspects messages passing through a session and decides what happens to them.
pub trait Interceptor: Send + Sync {
    /// Decides what happens to `msg`. Return [`VerdictFuture::ready`] when that needs
    /// no waiting: the relay asks about every message.
    fn intercept<'a>(&'a self, msg: Intercepted<'a>) -> VerdictFuture<'a>;

    /// Whether responses need the `params` of their request (kept with the request
    /// until its answer: shared, not copied).
    fn wants_request_payload(&self) -> bool {
        false
    }

    /// Called with every message the interceptor saw and the verdict it gave, as soon
    /// as the verdict is given and before the relay acts on it (forwards, answers or
    /// drops the message). The demo prints its trace from here. Not after: `msg`
    /// borrows the message that acting on the verdict moves on, so calling this
    /// later would cost a copy of every message for the sake of an observer.
    fn observe(&self, _msg: &Intercepted<'_>, _verdict: &Verdict) {}
}

/// Lets every message through untouched; what a proxy with no plugins does.
#[derive(Debug, Default, Clone, Copy)]
pub struct PassAll;

impl Interceptor for PassAll {
    fn intercept<'a>(&'a self, _msg: Intercepted<'a>) -> VerdictFuture<'a> {
        VerdictFuture::ready(Verdict::Pass)
    }
}

/// A shared interceptor, as the relay holds it.
pub type SharedInterceptor = Arc<dyn Interceptor>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::jsonrpc::raw;

    #[tokio::test]
    async fn pass_all_decides_at_once() {
        let id = raw("1");
        let msg = Intercepted {
            direction: Direction::ToServer,
            kind: Kind::Request,
            method: "tools/call",
            id: Some(&id),
            payload: None,
            error: None,
            request_payload: None,
            elapsed: None,
            session: "s",
            shared_session: false,
            server: "b",
            trace: None,
            principal: None,
        };
        let verdict = PassAll.intercept(msg);
        assert!(matches!(verdict, VerdictFuture::Ready(_)));
        assert!(matches!(verdict.await, Verdict::Pass));
        let boxed = VerdictFuture::boxed(async { Verdict::Reject(ErrorObject::new(1, "no")) });
        assert!(matches!(boxed.await, Verdict::Reject(e) if e.message == "no"));
    }
}
