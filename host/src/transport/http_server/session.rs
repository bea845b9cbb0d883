//! One downstream HTTP session: the client side of a [`SessionRelay`], spread over many
//! HTTP requests. Messages from POSTs go into the relay; messages from the relay go to
//! the SSE stream of the client request they belong to (`Outbound.related`, or the id
//! of an answer), and everything else to the standalone stream (the GET stream, or the
//! one stream of a legacy SSE session).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use tokio::sync::mpsc;

use super::events::{EventStream, EventStyle, LiveEvents};
use crate::framing::Frame;
use crate::jsonrpc::{self, Message, RawId};
use crate::transport::{CHANNEL_CAPACITY, Inbound, Outbound, ProtocolHeaders};

/// The standalone stream's id; request streams count up from 1.
pub const STANDALONE: u64 = 0;
/// Finished request streams kept for resumption, per session.
const FINISHED_STREAMS_KEPT: usize = 32;

/// Which transport a session serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// Streamable HTTP with `Mcp-Session-Id` (2025-03-26 to 2025-11-25).
    Streamable,
    /// Streamable HTTP requests without a session (2026-07-28), from any client,
    /// sharing one backend session; request ids are renamed so they cannot collide.
    Stateless,
    /// Legacy HTTP+SSE (2024-11-05).
    LegacySse,
}

/// The session is gone: its relay has ended.
#[derive(Debug, thiserror::Error)]
#[error("the session has ended")]
pub struct SessionGone;

/// A POST reused the id of a request that is still waiting for its answer.
#[derive(Debug, thiserror::Error)]
#[error("request id {0} is already in use by a request in flight")]
pub struct DuplicateId(pub String);

pub struct Session {
    /// The secret session id (never logged).
    pub id: String,
    /// A name for logs and plugins.
    pub label: String,
    pub kind: SessionKind,
    to_relay: mpsc::Sender<Inbound>,
    routes: Mutex<Routes>,
    last_active: Mutex<Instant>,
    next_renamed_id: AtomicU64,
    ended: AtomicBool,
}

struct Routes {
    streams: HashMap<u64, EventStream>,
    next_stream: u64,
    /// Client request id (JSON text, as the relay knows it) to where its messages go.
    requests: HashMap<Box<str>, Route>,
    finished: VecDeque<u64>,
}

struct Route {
    stream: u64,
    /// For renamed (stateless) requests: the id the client used.
    original_id: Option<RawId>,
}

/// A request as it goes into the relay, and the id its client knows it by.
pub struct OpenRequest {
    pub id: RawId,
    pub original_id: Option<RawId>,
}

impl Session {
    /// A session and the receiving ends of its relay link: what the client sends, and
    /// what the relay sends to the client (for [`Session::dispatch`]).
    pub fn new(
        id: String,
        label: String,
        kind: SessionKind,
    ) -> (Arc<Session>, mpsc::Receiver<Inbound>) {
        let (to_relay, from_client) = mpsc::channel(CHANNEL_CAPACITY);
        let mut streams = HashMap::new();
        let style = match kind {
            SessionKind::LegacySse => EventStyle::Legacy,
            _ => EventStyle::Resumable,
        };
        if kind != SessionKind::Stateless {
            streams.insert(STANDALONE, EventStream::new(STANDALONE, style));
        }
        let session = Arc::new(Session {
            id,
            label,
            kind,
            to_relay,
            routes: Mutex::new(Routes {
                streams,
                next_stream: STANDALONE + 1,
                requests: HashMap::new(),
                finished: VecDeque::new(),
            }),
            last_active: Mutex::new(Instant::now()),
            next_renamed_id: AtomicU64::new(1),
            ended: AtomicBool::new(false),
        });
        (session, from_client)
    }

    fn routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn touch(&self) {
        *self.last_active.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// How long since a client last used the session; zero while a request is in
    /// flight or a client listens on a stream (a long tool call or an open GET is use).
    pub fn idle_for(&self) -> std::time::Duration {
        let routes = self.routes();
        let busy =
            !routes.requests.is_empty() || routes.streams.values().any(EventStream::has_listener);
        drop(routes);
        if busy {
            return std::time::Duration::ZERO;
        }
        self.last_active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed()
    }

    pub fn is_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// A fresh id for a request of a stateless client, unique in this session.
    pub fn rename(&self) -> RawId {
        let n = self.next_renamed_id.fetch_add(1, Ordering::Relaxed);
        jsonrpc::raw(n.to_string())
    }

    /// Passes a client message into the relay.
    pub async fn send(
        &self,
        message: Message,
        headers: Option<ProtocolHeaders>,
    ) -> Result<(), SessionGone> {
        let inbound = Inbound::Frame {
            frame: Frame::Message(message),
            related: None,
            headers,
        };
        self.to_relay.send(inbound).await.map_err(|_| SessionGone)
    }

    /// Ends the session: the relay closes the backend session and stops.
    pub fn end(&self, why: &str) {
        if self.ended.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::info!(session = %self.label, "{why}");
        let closed = Inbound::Closed(why.to_owned());
        if let Err(mpsc::error::TrySendError::Full(closed)) = self.to_relay.try_send(closed) {
            let to_relay = self.to_relay.clone();
            tokio::spawn(async move { to_relay.send(closed).await.ok() });
        }
    }

    /// Opens the response stream of a POST carrying `requests`.
    pub fn open_request_stream(
        self: &Arc<Self>,
        requests: &[OpenRequest],
    ) -> Result<Listener, DuplicateId> {
        let mut routes = self.routes();
        if let Some(taken) = requests
            .iter()
            .find(|r| routes.requests.contains_key(r.id.get()))
        {
            let shown = taken.original_id.as_ref().unwrap_or(&taken.id).get();
            return Err(DuplicateId(shown.to_owned()));
        }
        let stream_id = routes.next_stream;
        routes.next_stream += 1;
        let style = match self.kind {
            SessionKind::Stateless => EventStyle::Plain,
            _ => EventStyle::Resumable,
        };
        let mut stream = EventStream::new(stream_id, style);
        stream.open_requests = requests.len();
        let live = stream.attach(None);
        routes.streams.insert(stream_id, stream);
        for request in requests {
            let route = Route {
                stream: stream_id,
                original_id: request.original_id.clone(),
            };
            routes.requests.insert(request.id.get().into(), route);
        }
        Ok(self.listener(stream_id, live))
    }

    /// Connects a listener to the standalone stream (a GET, or the legacy SSE stream).
    pub fn listen(self: &Arc<Self>) -> Option<Listener> {
        let live = self.routes().streams.get_mut(&STANDALONE)?.attach(None);
        Some(self.listener(STANDALONE, live))
    }

    /// Resumes stream `stream` after event `seq`; `None` when it is not known (any more).
    pub fn resume(self: &Arc<Self>, stream: u64, seq: u64) -> Option<Listener> {
        let live = self.routes().streams.get_mut(&stream)?.attach(Some(seq));
        Some(self.listener(stream, live))
    }

    fn listener(self: &Arc<Self>, stream: u64, live: LiveEvents) -> Listener {
        Listener {
            live,
            _guard: ListenerGuard {
                session: Arc::downgrade(self),
                stream,
            },
        }
    }

    /// Routes what the relay sends to the client, until the relay ends.
    pub async fn dispatch(self: Arc<Self>, mut from_relay: mpsc::Receiver<Outbound>) {
        while let Some(outbound) = from_relay.recv().await {
            self.deliver(outbound);
        }
        self.ended.store(true, Ordering::Release);
        for stream in self.routes().streams.values_mut() {
            stream.finish();
        }
    }

    fn deliver(
        &self,
        Outbound {
            mut message,
            related,
            ..
        }: Outbound,
    ) {
        let mut routes = self.routes();
        // An answer belongs to the request it answers, whatever tagged it.
        let is_answer = matches!(message, Message::Response { .. } | Message::Error { .. });
        let key = if is_answer {
            message.id()
        } else {
            related.as_deref()
        };
        let route = match self.kind {
            SessionKind::LegacySse => None,
            _ => key.and_then(|key| routes.requests.get(key.get())),
        };
        let stream_id = route.map_or(STANDALONE, |route| route.stream);
        if is_answer && let Some(route) = key.and_then(|key| routes.requests.remove(key.get())) {
            if let Some(original) = route.original_id {
                message = rename_answer(message, original);
            }
            self.write(&mut routes, stream_id, &message);
            let stream = routes.streams.get_mut(&stream_id);
            if let Some(stream) = stream {
                stream.open_requests = stream.open_requests.saturating_sub(1);
                if stream.open_requests == 0 {
                    stream.finish();
                    retire(&mut routes, stream_id);
                }
            }
            return;
        }
        self.write(&mut routes, stream_id, &message);
    }

    fn write(&self, routes: &mut Routes, stream_id: u64, message: &Message) {
        match routes.streams.get_mut(&stream_id) {
            Some(stream) => stream.push(&message.to_json()),
            None => tracing::debug!(
                session = %self.label,
                method = message.method().unwrap_or("-"),
                "no stream to carry a message that belongs to no request; dropped"
            ),
        }
    }

    /// A client connection to `stream` went away.
    fn listener_gone(&self, stream: u64) {
        match self.kind {
            SessionKind::LegacySse if stream == STANDALONE => {
                self.end("the client closed its SSE stream");
            }
            // Without a session, closing the response stream cancels its requests.
            SessionKind::Stateless => self.cancel_stream(stream),
            _ => {}
        }
    }

    fn cancel_stream(&self, stream: u64) {
        let mut routes = self.routes();
        if routes
            .streams
            .get(&stream)
            .is_none_or(EventStream::is_finished)
        {
            routes.streams.remove(&stream);
            return;
        }
        let cancelled: Vec<Box<str>> = routes
            .requests
            .iter()
            .filter(|(_, route)| route.stream == stream)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &cancelled {
            routes.requests.remove(id);
        }
        routes.streams.remove(&stream);
        drop(routes);
        for id in cancelled {
            let params =
                format!(r#"{{"requestId":{id},"reason":"the client closed the response stream"}}"#);
            let message = Message::Notification {
                method: "notifications/cancelled".into(),
                params: Some(jsonrpc::raw(params)),
            };
            let inbound = Inbound::Frame {
                frame: Frame::Message(message),
                related: None,
                headers: None,
            };
            let to_relay = self.to_relay.clone();
            tokio::spawn(async move { to_relay.send(inbound).await.ok() });
        }
    }
}

/// Keeps finished request streams for resumption, the most recent few.
fn retire(routes: &mut Routes, stream_id: u64) {
    routes.finished.push_back(stream_id);
    while routes.finished.len() > FINISHED_STREAMS_KEPT {
        if let Some(old) = routes.finished.pop_front() {
            routes.streams.remove(&old);
        }
    }
}

fn rename_answer(message: Message, original: RawId) -> Message {
    match message {
        Message::Response { result, .. } => Message::Response {
            id: original,
            result,
        },
        Message::Error { error, .. } => Message::Error {
            id: original,
            error,
        },
        other => other,
    }
}

/// The events of one stream for one HTTP response body.
pub struct Listener {
    pub live: LiveEvents,
    _guard: ListenerGuard,
}

/// Tells the session when the response body reading a stream is dropped.
struct ListenerGuard {
    session: Weak<Session>,
    stream: u64,
}

impl Drop for ListenerGuard {
    fn drop(&mut self) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        if let Some(session) = self.session.upgrade() {
            session.listener_gone(self.stream);
        }
    }
}
