//! One downstream HTTP session: the client side of a [`SessionRelay`], spread over many
//! HTTP requests. Messages from POSTs go into the relay; messages from the relay go to
//! the SSE stream of the client request they belong to (`Outbound.related`, or the id
//! of an answer), and everything else to the standalone stream (the GET stream, or the
//! one stream of a legacy SSE session).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use tokio::sync::mpsc;

use super::events::{EventStream, EventStyle, LiveEvents, ReplayBudget, STANDALONE};
use crate::downstream::auth::Principal;
use crate::wire::framing::Frame;
use crate::wire::handoff::Handoff;
use crate::wire::jsonrpc::{self, Message, ParamsMeta, Payload, RawId};
use crate::wire::link::{CHANNEL_CAPACITY, Inbound, Outbound, Sessionless};
use crate::wire::mcp_http;

const PROGRESS: &str = "notifications/progress";
/// Unread events a session may hold before it waits for its client to read.
const SESSION_UNREAD_BYTES: usize = 32 * 1024 * 1024;
/// While waiting for a slow reader, how often to look again.
const ROOM_POLL: Duration = Duration::from_millis(20);
/// Finished request streams kept for resumption, per session.
const FINISHED_STREAMS_KEPT: usize = 32;

/// Which transport a session serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// Streamable HTTP with `Mcp-Session-Id` (2025-03-26 to 2025-11-25).
    Streamable,
    /// Streamable HTTP requests without a session (2026-07-28), from any client,
    /// sharing one backend session; request ids and progress tokens are renamed per
    /// request so that clients cannot collide or see each other's messages.
    Stateless,
    /// Legacy HTTP+SSE (2024-11-05).
    LegacySse,
}

/// The session is gone: its relay has ended.
#[derive(Debug, thiserror::Error)]
#[error("the session has ended")]
pub struct SessionGone;

/// A POST reused a request id: its answers could not be told apart.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DuplicateId {
    #[error("request id {0} is already in use by a request in flight")]
    InFlight(String),
    #[error("request id {0} appears more than once in the batch; each request needs its own id")]
    InBatch(String),
}

pub struct Session {
    /// The secret session id (never logged).
    pub id: String,
    /// A name for logs and plugins.
    pub label: String,
    pub kind: SessionKind,
    /// Who opened it (`[auth]`): only the same party may use it.
    pub principal: Option<Arc<Principal>>,
    /// With `[replicas]`, for a session that can move: what another replica needs.
    pub handoff: Option<Arc<Handoff>>,
    /// The id the client knows it by, when not `id`: a portable session's sealed id,
    /// given once the handshake is answered.
    sealed_id: OnceLock<String>,
    to_relay: mpsc::Sender<Inbound>,
    routes: Mutex<Routes>,
    last_active: Mutex<Instant>,
    next_renamed_id: AtomicU64,
    ended: AtomicBool,
    readers: SlowReaders,
    /// Per tool, the `Mcp-Param-*` headers its arguments must be mirrored in
    /// (`x-mcp-header` in the `tools/list` results that passed by).
    param_headers: Mutex<mcp_http::ParamHeaders>,
}

/// How the listener deals with clients that read their streams slowly.
#[derive(Clone)]
pub struct SlowReaders {
    /// Every stream's buffered events count against it.
    pub budget: Arc<ReplayBudget>,
    /// How long a session waits for its client to read before the answers it did not
    /// read are replaced by errors.
    pub patience: Duration,
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
    progress: Option<RenamedToken>,
}

/// A request as it goes into the relay, and what its client knows it by.
pub struct OpenRequest {
    pub id: RawId,
    pub original_id: Option<RawId>,
    pub progress: Option<RenamedToken>,
}

/// A stateless request's `progressToken`: the one the backend sees, and the client's.
#[derive(Clone)]
pub struct RenamedToken {
    renamed: RawId,
    original: RawId,
}

/// A stateless request's `_meta.progressToken` could not be renamed.
#[derive(Debug, thiserror::Error)]
#[error("the progressToken of request {0} could not be read")]
pub struct UnreadableToken(pub String);

impl Session {
    /// A session and the receiving ends of its relay link: what the client sends, and
    /// what the relay sends to the client (for [`Session::dispatch`]).
    pub fn new(
        id: String,
        label: String,
        kind: SessionKind,
        readers: SlowReaders,
        principal: Option<Arc<Principal>>,
        handoff: Option<Arc<Handoff>>,
    ) -> (Arc<Session>, mpsc::Receiver<Inbound>) {
        let (to_relay, from_client) = mpsc::channel(CHANNEL_CAPACITY);
        let mut streams = HashMap::new();
        let style = match kind {
            SessionKind::LegacySse => EventStyle::Legacy,
            _ => EventStyle::Resumable,
        };
        if kind != SessionKind::Stateless {
            let standalone = EventStream::new(STANDALONE, style, &readers.budget);
            streams.insert(STANDALONE, standalone);
        }
        let session = Arc::new(Session {
            id,
            label,
            kind,
            principal,
            handoff,
            sealed_id: OnceLock::new(),
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
            readers,
            param_headers: Mutex::default(),
        });
        (session, from_client)
    }

    /// The id the client uses: the sealed one once given, else `id`.
    pub fn client_id(&self) -> &str {
        self.sealed_id.get().unwrap_or(&self.id)
    }

    /// The sealed id, when the session has one.
    pub fn sealed_id(&self) -> Option<&str> {
        self.sealed_id.get().map(String::as_str)
    }

    /// Gives the session its sealed id (once).
    pub fn set_sealed_id(&self, id: String) {
        self.sealed_id.set(id).ok();
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

    /// Gives a stateless client's request a fresh id, unique in this session, and a
    /// fresh progress token if it carries one: clients share one backend session, so a
    /// client reusing another's id or token must not receive the other's answer or
    /// progress. Other messages pass unchanged.
    pub fn isolate(&self, message: &mut Message) -> Result<Option<OpenRequest>, UnreadableToken> {
        let Message::Request { id, params, .. } = message else {
            return Ok(None);
        };
        if self.kind != SessionKind::Stateless {
            return Ok(Some(OpenRequest {
                id: id.clone(),
                original_id: None,
                progress: None,
            }));
        }
        let n = self.next_renamed_id.fetch_add(1, Ordering::Relaxed);
        let renamed_id = jsonrpc::raw(n.to_string());
        let mut progress = None;
        if let Some(original) = ParamsMeta::progress_token(params.as_deref()) {
            // The renamed id is unique in the session, so it serves as the token too.
            let token = RenamedToken {
                renamed: renamed_id.clone(),
                original,
            };
            *params = params
                .as_deref()
                .and_then(|p| with_progress_token(p, token.renamed.clone()))
                .map(|p| Some(p.into()))
                .ok_or_else(|| UnreadableToken(id.get().to_owned()))?;
            progress = Some(token);
        }
        let original_id = std::mem::replace(id, renamed_id);
        Ok(Some(OpenRequest {
            id: id.clone(),
            original_id: Some(original_id),
            progress,
        }))
    }

    /// Passes a client message into the relay; `sessionless`, what a sessionless
    /// client's request brings besides itself.
    pub async fn send(
        &self,
        message: Message,
        sessionless: Option<Sessionless>,
    ) -> Result<(), SessionGone> {
        let inbound = Inbound::Frame {
            frame: Frame::Message(message),
            related: None,
            sessionless,
            head: None,
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
        let mut in_batch = HashSet::new();
        for request in requests {
            let shown = request.original_id.as_ref().unwrap_or(&request.id).get();
            if !in_batch.insert(shown) {
                return Err(DuplicateId::InBatch(shown.to_owned()));
            }
            if routes.requests.contains_key(request.id.get()) {
                return Err(DuplicateId::InFlight(shown.to_owned()));
            }
        }
        let stream_id = routes.next_stream;
        routes.next_stream += 1;
        let style = match self.kind {
            SessionKind::Stateless => EventStyle::Plain,
            _ => EventStyle::Resumable,
        };
        let mut stream = EventStream::new(stream_id, style, &self.readers.budget);
        stream.open_requests = requests.len();
        let live = stream.attach(None);
        routes.streams.insert(stream_id, stream);
        for request in requests {
            let route = Route {
                stream: stream_id,
                original_id: request.original_id.clone(),
                progress: request.progress.clone(),
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
            self.make_room().await;
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
            head,
            ..
        }: Outbound,
    ) {
        let mut routes = self.routes();
        let routed = self.kind != SessionKind::LegacySse;
        if let Message::Response { result, .. } = &message {
            mcp_http::record_param_headers(
                &mut self.param_headers.lock().unwrap_or_else(|e| e.into_inner()),
                result,
            );
        }
        // An answer belongs to the request it answers, whatever tagged it.
        if matches!(message, Message::Response { .. } | Message::Error { .. }) {
            let route = message
                .id()
                .filter(|_| routed)
                .and_then(|id| routes.requests.remove(id.get()));
            let Some(route) = route else {
                return self.write(&mut routes, STANDALONE, &message);
            };
            if let Some(original) = route.original_id {
                message = rename_answer(message, original);
            }
            if let (Some(head), Some(stream)) = (head, routes.streams.get_mut(&route.stream)) {
                stream.set_answer_head(head);
            }
            self.write(&mut routes, route.stream, &message);
            if let Some(stream) = routes.streams.get_mut(&route.stream) {
                stream.open_requests = stream.open_requests.saturating_sub(1);
                if stream.open_requests == 0 {
                    stream.finish();
                    retire(&mut routes, route.stream);
                }
            }
            return;
        }
        let route = related
            .as_deref()
            .filter(|_| routed)
            .and_then(|id| routes.requests.get(id.get()));
        let stream_id = route.map_or(STANDALONE, |route| route.stream);
        if let Some(token) = route.and_then(|route| route.progress.clone()) {
            message = restore_progress_token(message, &token);
        }
        if let (Some(renamed), Some(original)) = (
            related.as_deref(),
            route.and_then(|r| r.original_id.clone()),
        ) {
            message = restore_subscription_id(message, renamed, original);
        }
        self.write(&mut routes, stream_id, &message);
    }

    /// Backpressure: while the client has more unread events than it may (or the
    /// listener's replay budget is spent and it has some), the session waits for it to
    /// read, so the relay stops taking the backend's output. A client that does not
    /// read within the patience gets errors in place of the answers it left unread.
    async fn make_room(&self) {
        let started = Instant::now();
        let budget = &self.readers.budget;
        // Once the session has ended nobody can resume its streams: nothing to wait for.
        while !self.is_ended() {
            if budget.is_over() {
                budget.evict_taken();
            }
            let unread = self.unread_bytes();
            if unread <= SESSION_UNREAD_BYTES && (unread == 0 || !budget.is_over()) {
                return;
            }
            let patience = self.readers.patience;
            if started.elapsed() >= patience {
                let why = format!(
                    "the client did not read its event stream for {patience:?} while {unread} bytes waited for it (the proxy holds {} of at most {} bytes of events)",
                    budget.used(),
                    budget.limit()
                );
                let (answers, others) = self.fail_unread(&why);
                tracing::warn!(
                    session = %self.label,
                    "{why}: {answers} answers replaced by errors, {others} other messages dropped"
                );
                return;
            }
            tokio::time::sleep(ROOM_POLL).await;
        }
    }

    fn unread_bytes(&self) -> usize {
        self.routes()
            .streams
            .values()
            .map(EventStream::unread_bytes)
            .sum()
    }

    fn fail_unread(&self, why: &str) -> (usize, usize) {
        self.routes()
            .streams
            .values_mut()
            .map(|stream| stream.fail_unread(why))
            .fold((0, 0), |(a, o), (a2, o2)| (a + a2, o + o2))
    }

    fn write(&self, routes: &mut Routes, stream_id: u64, message: &Message) {
        let answers = match message {
            Message::Response { id, .. } | Message::Error { id, .. } => Some(&**id),
            _ => None,
        };
        match routes.streams.get_mut(&stream_id) {
            Some(stream) => stream.push(&message.to_json(), answers),
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
                params: Some(jsonrpc::raw(params).into()),
            };
            let inbound = Inbound::Frame {
                frame: Frame::Message(message),
                related: None,
                sessionless: None,
                head: None,
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

/// `params` with `_meta.progressToken` set to `token`, other members kept in order.
fn with_progress_token(params: &RawValue, token: RawId) -> Option<Box<RawValue>> {
    jsonrpc::replace_meta_member(params, "progressToken", token)
}

/// A progress notification for a renamed token gets the client's token back.
fn restore_progress_token(message: Message, token: &RenamedToken) -> Message {
    match message {
        Message::Notification {
            method,
            params: Some(params),
        } if method == PROGRESS
            && jsonrpc::notification_progress_token(Some(&params))
                .is_some_and(|t| t.get() == token.renamed.get()) =>
        {
            let params = jsonrpc::replace_member(&params, "progressToken", token.original.clone())
                .map_or(params, Payload::from);
            Message::Notification {
                method,
                params: Some(params),
            }
        }
        other => other,
    }
}

/// A notification of a renamed `subscriptions/listen` request names the subscription by
/// the client's id of that request, as the client sent it.
fn restore_subscription_id(message: Message, renamed: &RawValue, original: RawId) -> Message {
    match message {
        Message::Notification {
            method,
            params: Some(params),
        } if ParamsMeta::subscription_id(Some(&params))
            .is_some_and(|id| id.get() == renamed.get()) =>
        {
            let params = jsonrpc::replace_meta_member(&params, jsonrpc::SUBSCRIPTION_ID, original)
                .map_or(params, Payload::from);
            Message::Notification {
                method,
                params: Some(params),
            }
        }
        other => other,
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

impl Session {
    /// Checks the `Mcp-Param-*` headers of a `tools/call` against the tool's
    /// `x-mcp-header` declarations seen so far; why not, if they do not match.
    pub fn check_param_headers(
        &self,
        headers: &http::HeaderMap,
        method: &str,
        params: Option<&RawValue>,
    ) -> Result<(), String> {
        let declared = self.param_headers.lock().unwrap_or_else(|e| e.into_inner());
        mcp_http::check_param_headers(&declared, headers, method, params)
    }
}

impl Listener {
    /// The id of the stream this listener reads.
    pub fn stream(&self) -> u64 {
        self._guard.stream
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn request(id: &str, params: &str) -> Message {
        Message::Request {
            id: jsonrpc::raw(id),
            method: "tools/call".into(),
            params: Some(jsonrpc::raw(params).into()),
        }
    }

    fn progress(token: &str) -> Outbound {
        let params = format!(r#"{{"progressToken":{token},"progress":1}}"#);
        Outbound {
            related: Some(jsonrpc::raw(token)),
            ..Outbound::new(Message::Notification {
                method: PROGRESS.into(),
                params: Some(jsonrpc::raw(params).into()),
            })
        }
    }

    fn received(listener: &mut Listener) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(Some(event)) = listener.live.next_now() {
            out.push(String::from_utf8_lossy(&event).into_owned());
        }
        out
    }

    fn readers() -> SlowReaders {
        SlowReaders {
            budget: ReplayBudget::new(usize::MAX),
            patience: Duration::from_secs(1),
        }
    }

    #[test]
    fn stateless_clients_reusing_a_progress_token_get_only_their_own_progress() {
        let (session, _to_relay) = Session::new(
            "s".into(),
            "test".into(),
            SessionKind::Stateless,
            readers(),
            None,
            None,
        );
        let mut streams = Vec::new();
        let mut backend_tokens = Vec::new();
        for _ in 0..2 {
            let mut message = request(
                "1",
                r#"{"name":"t","_meta":{"progressToken":"same","x":1}}"#,
            );
            let open = session.isolate(&mut message).unwrap().unwrap();
            let Message::Request { params, .. } = &message else {
                unreachable!()
            };
            let token = ParamsMeta::progress_token(params.as_deref()).unwrap();
            assert_ne!(token.get(), r#""same""#, "the backend sees a renamed token");
            assert!(params.as_deref().unwrap().get().contains(r#""x":1"#));
            backend_tokens.push(token.get().to_owned());
            streams.push(session.open_request_stream(&[open]).unwrap());
        }
        assert_ne!(backend_tokens[0], backend_tokens[1]);
        session.deliver(progress(&backend_tokens[0]));
        let first = received(&mut streams[0]);
        assert_eq!(first.len(), 1);
        assert!(first[0].contains(r#""progressToken":"same""#), "{first:?}");
        assert!(
            received(&mut streams[1]).is_empty(),
            "no progress of the other client"
        );
    }

    #[test]
    fn a_batch_reusing_an_id_is_refused() {
        let (session, _to_relay) = Session::new(
            "s".into(),
            "test".into(),
            SessionKind::Streamable,
            readers(),
            None,
            None,
        );
        let mut batch = [request("7", "{}"), request("7", "{}")];
        let open: Vec<OpenRequest> = batch
            .iter_mut()
            .map(|m| session.isolate(m).unwrap().unwrap())
            .collect();
        assert_eq!(
            session.open_request_stream(&open).err(),
            Some(DuplicateId::InBatch("7".into()))
        );
    }
}
