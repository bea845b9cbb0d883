//! A message as plugins see it: the host side of the WIT `message` resource.
//!
//! The relay's [`Intercepted`] borrows from the message being forwarded, but a
//! resource lives in an instance's table and must own its data. A walk along the
//! chain copies the message's small parts (method, id, session, server) once, on
//! entering the first plugin, and shares its payloads with the message (see
//! [`Payload`]); each plugin gets a cheap clone, and only the parts a plugin asks
//! for are then copied into its memory.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use serde_json::value::RawValue;

use interpose_core::subject;

use crate::session::intercept::{Direction, Intercepted, SessionPrincipal};
use crate::wire::jsonrpc::{ErrorObject, Kind, Payload};

/// What stays the same along a walk.
struct Fixed {
    direction: Direction,
    /// The text parts, one after the other (one allocation for all of them): see
    /// [`Part`].
    text: Box<str>,
    /// Where each [`Part`] ends in `text`.
    ends: [usize; Part::COUNT],
    has_id: bool,
    /// An answer's request params, shared with the relay's pending request.
    request_payload: Option<Payload>,
    elapsed_us: Option<u64>,
    /// The subject of the message as it arrived (an answer's: of its request), read
    /// from the params once, however many plugins ask.
    subject: OnceLock<Option<String>>,
    /// The session's, shared: lending it to a walk copies nothing.
    principal: Option<Arc<SessionPrincipal>>,
}

/// The text parts of [`Fixed::text`], in order.
#[derive(Clone, Copy)]
enum Part {
    Method,
    Id,
    Session,
    Server,
}

impl Part {
    const COUNT: usize = 4;
}

impl Fixed {
    fn part(&self, part: Part) -> &str {
        let i = part as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[start..self.ends[i]]
    }
}

/// One message lent to one plugin call.
#[derive(Clone)]
pub struct MessageView {
    fixed: Arc<Fixed>,
    kind: Kind,
    payload: Option<Payload>,
    /// The error of an error answer: as it arrived, or as an earlier plugin's
    /// `reject` replaced the answer.
    error: Option<Arc<ErrorObject>>,
    /// Whether an earlier plugin rewrote the payload (then a request's subject is
    /// read from the new one).
    rewritten: bool,
    /// Whether this plugin's manifest asked for the request's payload.
    with_request: bool,
}

impl MessageView {
    pub fn new(msg: &Intercepted<'_>) -> Self {
        let parts = [
            msg.method,
            msg.id.map_or("", RawValue::get),
            msg.session,
            msg.server,
        ];
        let mut text = String::with_capacity(parts.iter().map(|p| p.len()).sum());
        let mut ends = [0; Part::COUNT];
        for (end, part) in ends.iter_mut().zip(parts) {
            text.push_str(part);
            *end = text.len();
        }
        MessageView {
            fixed: Arc::new(Fixed {
                direction: msg.direction,
                text: text.into_boxed_str(),
                ends,
                has_id: msg.id.is_some(),
                request_payload: msg.request_payload.cloned(),
                elapsed_us: msg
                    .elapsed
                    .map(|e| u64::try_from(e.as_micros()).unwrap_or(u64::MAX)),
                subject: OnceLock::new(),
                principal: msg.principal.cloned(),
            }),
            kind: msg.kind,
            payload: msg.payload.cloned(),
            error: msg.error.map(|e| Arc::new(e.clone())),
            rewritten: false,
            with_request: false,
        }
    }

    /// After a rewrite by an earlier plugin: the new payload; an error rewritten
    /// into a result is a response from then on.
    pub fn rewritten(&mut self, payload: &Payload) {
        self.payload = Some(payload.clone());
        self.rewritten = true;
        if self.kind == Kind::Error {
            self.kind = Kind::Response;
        }
    }

    /// After an earlier plugin rejected an answer: it is this error from then on.
    pub fn rejected(&mut self, error: &ErrorObject) {
        self.payload = None;
        self.error = Some(Arc::new(error.clone()));
        self.kind = Kind::Error;
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
        self.fixed.part(Part::Method)
    }

    pub fn id(&self) -> Option<&str> {
        self.fixed.has_id.then(|| self.fixed.part(Part::Id))
    }

    pub fn payload(&self) -> Option<&str> {
        self.payload.as_deref().map(RawValue::get)
    }

    /// The payload's size in bytes; 0 when there is none.
    pub fn payload_size(&self) -> u64 {
        self.payload().map_or(0, |p| p.len() as u64)
    }

    /// The bytes this plugin may copy out of the message: its payload, the request's
    /// payload when the plugin sees it, and an error's message and data. What the
    /// plugin's input limit is checked against.
    pub fn input_len(&self) -> usize {
        let payload = self.payload().map_or(0, str::len);
        let request = self.request_payload().map_or(0, str::len);
        let error = self.error().map_or(0, |e| {
            e.message.len() + e.data.as_ref().map_or(0, |d| d.get().len())
        });
        payload + request + error
    }

    /// The error, while the message is still an error.
    pub fn error(&self) -> Option<&ErrorObject> {
        match self.kind {
            Kind::Error => self.error.as_deref(),
            _ => None,
        }
    }

    pub fn request_payload(&self) -> Option<&str> {
        self.with_request
            .then(|| self.raw_request_payload())
            .flatten()
    }

    /// The request's payload, whether or not this plugin may see it.
    fn raw_request_payload(&self) -> Option<&str> {
        self.fixed.request_payload.as_deref().map(RawValue::get)
    }

    /// What the message acts on (see [`interpose_core::subject`]): read from the payload of
    /// a request or notification, as rewritten so far, and from the request's
    /// payload for an answer, so only when this plugin sees that.
    pub fn subject(&self) -> Option<Cow<'_, str>> {
        let read = |params: Option<&str>| params.and_then(|p| subject(self.method(), p));
        let as_arrived = |params: Option<&str>| {
            self.fixed
                .subject
                .get_or_init(|| read(params))
                .as_deref()
                .map(Cow::Borrowed)
        };
        match self.kind {
            Kind::Request | Kind::Notification if self.rewritten => {
                read(self.payload()).map(Cow::Owned)
            }
            Kind::Request | Kind::Notification => as_arrived(self.payload()),
            Kind::Response | Kind::Error if self.with_request => {
                as_arrived(self.raw_request_payload())
            }
            Kind::Response | Kind::Error => None,
        }
    }

    pub fn elapsed_us(&self) -> Option<u64> {
        self.fixed.elapsed_us
    }

    pub fn session(&self) -> &str {
        self.fixed.part(Part::Session)
    }

    pub fn server(&self) -> &str {
        self.fixed.part(Part::Server)
    }

    /// Who the client session is authenticated as, if anyone.
    pub fn principal(&self) -> Option<&SessionPrincipal> {
        self.fixed.principal.as_deref()
    }
}

/// The type of the WIT `message` resource on the host side. It holds nothing: the
/// message a call lends is in the instance's store data (see
/// `bindings::LendsMessages`), as an instance has one call at a time.
pub struct LentMessage;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::wire::jsonrpc::raw;

    #[test]
    fn every_part_reads_back_and_absent_parts_are_none() {
        let (id, payload, request) = (
            raw("7"),
            Payload::from(raw(r#"{"a":1}"#)),
            Payload::from(raw(r#"{"q":"é"}"#)),
        );
        let msg = Intercepted {
            direction: Direction::ToClient,
            kind: Kind::Response,
            method: "tools/call",
            id: Some(&id),
            payload: Some(&payload),
            error: None,
            request_payload: Some(&request),
            elapsed: Some(Duration::from_micros(1500)),
            session: "s-1",
            shared_session: false,
            server: "backend",
            trace: None,
            principal: None,
        };
        let view = MessageView::new(&msg).for_plugin(true);
        assert_eq!(view.method(), "tools/call");
        assert_eq!(view.id(), Some("7"));
        assert_eq!(view.payload(), Some(r#"{"a":1}"#));
        assert_eq!(view.payload_size(), 7);
        assert_eq!(view.request_payload(), Some(r#"{"q":"é"}"#));
        // Borrowed from the message, not copied into the view.
        let same =
            |lent: Option<&str>, of: &Payload| lent.is_some_and(|t| std::ptr::eq(t, of.get()));
        assert!(same(view.payload(), &payload) && same(view.request_payload(), &request));
        assert_eq!((view.session(), view.server()), ("s-1", "backend"));
        assert_eq!(view.elapsed_us(), Some(1500));
        assert_eq!(view.for_plugin(false).request_payload(), None);
        assert_eq!(view.input_len(), 7 + 10, "payload and request");
        assert_eq!(view.for_plugin(false).input_len(), 7);
        assert_eq!(view.subject(), None, "the request has no `name`");

        let bare = Intercepted {
            kind: Kind::Notification,
            id: None,
            payload: None,
            request_payload: None,
            elapsed: None,
            ..msg
        };
        let view = MessageView::new(&bare).for_plugin(true);
        assert_eq!(
            (view.id(), view.payload(), view.request_payload()),
            (None, None, None)
        );
        assert_eq!((view.method(), view.session()), ("tools/call", "s-1"));
        assert!(view.principal().is_none(), "no principal was given");
    }

    #[test]
    fn the_principal_is_the_sessions_own_and_its_claims_are_serialised_once() {
        let claims = serde_json::json!({"sub": "alice", "scope": "admin", "n": 1});
        let principal = Arc::new(crate::wire::link::Principal {
            issuer: "https://idp.test".into(),
            subject: "alice".into(),
            scopes: vec!["admin".into()],
            claims: claims.as_object().cloned().unwrap_or_default(),
        });
        let session = Arc::new(SessionPrincipal::new(principal.clone()));
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
            principal: Some(&session),
        };
        let (first, second) = (MessageView::new(&msg), MessageView::new(&msg));
        let lent = first.principal().expect("lent");
        assert!(std::ptr::eq(lent, &*session), "shared, not copied");
        assert!(
            std::ptr::eq(lent.principal(), &*principal),
            "the session's own"
        );
        assert_eq!(lent.principal().subject, "alice");
        let text = lent.claims_json();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(text).ok(),
            Some(claims)
        );
        let other_plugin = second.for_plugin(true);
        let again = other_plugin.principal().expect("lent").claims_json();
        assert!(std::ptr::eq(text, again), "serialised once for the session");
    }

    #[test]
    fn a_rejected_answer_reads_as_the_error_and_a_rewrite_recovers_it() {
        let (id, result) = (raw("3"), Payload::from(raw(r#"{"content":[]}"#)));
        let answer = Intercepted {
            direction: Direction::ToClient,
            kind: Kind::Response,
            method: "tools/call",
            id: Some(&id),
            payload: Some(&result),
            error: None,
            request_payload: None,
            elapsed: None,
            session: "s",
            shared_session: false,
            server: "b",
            trace: None,
            principal: None,
        };
        let mut view = MessageView::new(&answer);
        view.rejected(&ErrorObject::new(-32001, "withheld"));
        assert_eq!(view.kind(), Kind::Error);
        assert_eq!(view.payload(), None);
        assert_eq!(view.error().map(|e| e.message.as_str()), Some("withheld"));
        assert_eq!(view.input_len(), "withheld".len());
        let rewrite = Payload::from(raw(r#"{"ok":true}"#));
        view.rewritten(&rewrite);
        let lent = view.payload().map(str::as_ptr);
        assert_eq!(
            lent,
            Some(rewrite.get().as_ptr()),
            "shared with the rewrite"
        );
        assert_eq!(view.kind(), Kind::Response);
        assert_eq!(view.error().map(|e| e.code), None);
        assert_eq!(view.payload(), Some(r#"{"ok":true}"#));
    }

    #[test]
    fn the_subject_follows_rewrites_and_answers_read_their_request() {
        let (id, params, rewritten) = (
            raw("1"),
            Payload::from(raw(r#"{"name":"search"}"#)),
            Payload::from(raw(r#"{"name":"web_search"}"#)),
        );
        let request = Intercepted {
            direction: Direction::ToServer,
            kind: Kind::Request,
            method: "tools/call",
            id: Some(&id),
            payload: Some(&params),
            error: None,
            request_payload: None,
            elapsed: None,
            session: "s",
            shared_session: false,
            server: "b",
            trace: None,
            principal: None,
        };
        let mut view = MessageView::new(&request);
        assert_eq!(view.subject().as_deref(), Some("search"));
        view.rewritten(&rewritten);
        assert_eq!(view.subject().as_deref(), Some("web_search"));

        let result = Payload::from(raw(r#"{"content":[]}"#));
        let answer = Intercepted {
            direction: Direction::ToClient,
            kind: Kind::Response,
            payload: Some(&result),
            request_payload: Some(&rewritten),
            ..request
        };
        let view = MessageView::new(&answer);
        assert_eq!(view.for_plugin(false).subject(), None);
        assert_eq!(
            view.for_plugin(true).subject().as_deref(),
            Some("web_search")
        );
        assert_eq!(
            view.for_plugin(false).subject(),
            None,
            "read for one plugin, still not lent to another"
        );
    }
}
