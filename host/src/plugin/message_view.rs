//! A message as plugins see it: the host side of the WIT `message` resource.
//!
//! The relay's [`Intercepted`] borrows from the message being forwarded, but a
//! resource lives in an instance's table and must own its data. A walk along the
//! chain copies the message once, on entering the first plugin, and each plugin
//! gets a cheap clone; only the parts a plugin asks for are then copied into its
//! memory.

use std::sync::Arc;

use serde_json::value::RawValue;

use crate::intercept::{Direction, Intercepted};
use crate::jsonrpc::{ErrorObject, Kind};

/// What stays the same along a walk.
struct Fixed {
    direction: Direction,
    method: Box<str>,
    id: Option<Box<str>>,
    error: Option<ErrorObject>,
    request_payload: Option<Box<str>>,
    elapsed_us: Option<u64>,
    session: Box<str>,
    server: Box<str>,
}

/// One message lent to one plugin call.
#[derive(Clone)]
pub struct MessageView {
    fixed: Arc<Fixed>,
    kind: Kind,
    payload: Option<Arc<str>>,
    /// Whether this plugin's manifest asked for the request's payload.
    with_request: bool,
}

impl MessageView {
    pub fn new(msg: &Intercepted<'_>) -> Self {
        let text = |raw: &RawValue| Box::<str>::from(raw.get());
        MessageView {
            fixed: Arc::new(Fixed {
                direction: msg.direction,
                method: msg.method.into(),
                id: msg.id.map(text),
                error: msg.error.cloned(),
                request_payload: msg.request_payload.map(text),
                elapsed_us: msg
                    .elapsed
                    .map(|e| u64::try_from(e.as_micros()).unwrap_or(u64::MAX)),
                session: msg.session.into(),
                server: msg.server.into(),
            }),
            kind: msg.kind,
            payload: msg.payload.map(|p| Arc::from(p.get())),
            with_request: false,
        }
    }

    /// After a rewrite by an earlier plugin: the new payload; an error rewritten
    /// into a result is a response from then on.
    pub fn rewritten(&mut self, payload: &RawValue) {
        self.payload = Some(Arc::from(payload.get()));
        if self.kind == Kind::Error {
            self.kind = Kind::Response;
        }
    }

    /// The view for one plugin, which sees the request's payload only when its
    /// manifest asked for it.
    pub fn for_plugin(&self, wants_request: bool) -> Self {
        MessageView {
            with_request: wants_request,
            ..self.clone()
        }
    }

    pub fn direction(&self) -> Direction {
        self.fixed.direction
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn method(&self) -> &str {
        &self.fixed.method
    }

    pub fn id(&self) -> Option<&str> {
        self.fixed.id.as_deref()
    }

    pub fn payload(&self) -> Option<&str> {
        self.payload.as_deref()
    }

    /// The error, while the message is still an error.
    pub fn error(&self) -> Option<&ErrorObject> {
        match self.kind {
            Kind::Error => self.fixed.error.as_ref(),
            _ => None,
        }
    }

    pub fn request_payload(&self) -> Option<&str> {
        self.fixed
            .request_payload
            .as_deref()
            .filter(|_| self.with_request)
    }

    pub fn elapsed_us(&self) -> Option<u64> {
        self.fixed.elapsed_us
    }

    pub fn session(&self) -> &str {
        &self.fixed.session
    }

    pub fn server(&self) -> &str {
        &self.fixed.server
    }
}

/// The host side of the WIT `message` resource: an instance's lending slot, which
/// holds the message of the call in progress and nothing between calls.
pub struct LentMessage(pub(super) Option<MessageView>);
