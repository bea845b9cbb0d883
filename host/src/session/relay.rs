//! The session relay: one client session on one side, one backend session on the other,
//! and every message between them carried across in order, through the plugin chains:
//! the global one and, in a gateway, each server's own (`Chain` says in which order).
//!
//! It owns the id remapping (see [`super::pending`]), answers what it must answer itself
//! (malformed input, requests whose backend went away), rewrites the `requestId` of
//! `notifications/cancelled`, and tags messages with the request they belong to so a
//! transport with several streams can route them.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tokio_util::time::DelayQueue;

use super::gateway::{Gateway, GatewayOptions, Merge, Part, Plan};
use super::lifecycle::{Backoff, Lifecycle, State};
use super::pending::{Peer, Pending, PendingTable};
use crate::session::intercept::{
    Direction, Intercepted, Interceptor, SessionPrincipal, SharedInterceptor, Verdict,
};
use crate::telemetry::metrics::{self, ErrorType, GaugeGuard, Name, Transport};
use crate::telemetry::trace::{self, ClientSpan, SpanContext};
use crate::telemetry::{Operation, Origin};
use crate::upstream::UpstreamGuard;
use crate::wire::framing::Frame;
use crate::wire::handoff::Handoff;
use crate::wire::jsonrpc::{
    self, BACKEND_UNAVAILABLE, ErrorObject, INTERNAL_ERROR, INVALID_REQUEST, Kind, Message,
    Payload, RawId,
};
use crate::wire::link::{AnswerHead, Inbound, Link, Outbound, ProtocolHeaders, Sessionless};
use crate::wire::mcp_http;
use backend_life::Timer;

const CANCELLED: &str = "notifications/cancelled";
const PROGRESS: &str = "notifications/progress";
const LISTEN: &str = "subscriptions/listen";
/// What a gateway's client hears when a server's names leave (or join) its lists.
const LIST_CHANGED: &[&str] = &[
    "notifications/tools/list_changed",
    "notifications/prompts/list_changed",
    "notifications/resources/list_changed",
];

const INITIALIZE: &str = "initialize";
const INITIALIZED: &str = "notifications/initialized";
const SET_LEVEL: &str = "logging/setLevel";

/// Once the relay has ended (or a backend has died), how long an exiting backend has
/// before SIGTERM.
pub(super) const EXIT_WAIT: Duration = Duration::from_millis(200);

/// How long to wait for the client to read what is left once the relay ends.
const CLIENT_FLUSH_LIMIT: Duration = Duration::from_secs(5);

/// Who a relay serves, and how.
#[derive(Clone)]
pub struct RelayConfig {
    /// The downstream session id, shown to interceptors and in logs.
    pub session: String,
    /// Where the client came in; a sessionless client's session is shared by
    /// unrelated clients (requests without a session id).
    pub transport: Transport,
    /// The backend's name, shown to interceptors and in logs; in a gateway, the name
    /// the global chain is shown for what concerns every server.
    pub server: String,
    /// The global chain: between the client and the gateway, it sees the client's
    /// names.
    pub interceptor: SharedInterceptor,
    /// After the client leaves, how long the backend gets to finish and exit.
    pub shutdown_grace: Duration,
    /// With several backends (or prefixes): how the gateway shows them.
    pub gateway: GatewayOptions,
    /// Who the client is authenticated as (`[auth]`), lent to plugins.
    pub principal: Option<Arc<SessionPrincipal>>,
}

impl RelayConfig {
    /// Whether unrelated clients share this session (requests without a session id).
    pub fn shares_session(&self) -> bool {
        self.transport == Transport::Sessionless
    }

    /// Where this session's requests come from, for their spans.
    fn origin(&self) -> Origin<'_> {
        Origin {
            session: (!self.shares_session()).then_some(self.session.as_str()),
            transport: self.transport,
        }
    }
}

/// Why a relay ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayEnd {
    /// The client closed its side; the backend was given its grace period.
    ClientClosed,
    /// The proxy was asked to stop (a signal).
    Shutdown,
    /// The backend went away; requests in flight were answered with errors.
    BackendClosed(String),
}

impl Peer {
    /// Which way a message from this peer goes, as the interceptor sees it.
    fn direction(self) -> Direction {
        match self {
            Peer::Client => Direction::ToServer,
            Peer::Backend(_) => Direction::ToClient,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Peer::Client => "client",
            Peer::Backend(_) => "backend",
        }
    }
}

/// Which plugin chain judges a message. Between the client and the gateway is the
/// global chain (the client's names); between the gateway and each server, that
/// server's own chain, if it has one (the server's names). A message passes the
/// chains between its sender and its receiver, in that order; an answer a chain
/// makes goes back through the chains it passed.
#[derive(Debug, Clone, Copy)]
enum Chain {
    /// The global chain; `owner` is the server the message belongs to, if one does.
    Global { owner: Option<usize> },
    /// The own chain of the backend at this place.
    Server(usize),
}

/// A message a chain is asked about, as it arrived (the relay adds what it knows of
/// the session).
struct Asked<'a> {
    direction: Direction,
    kind: Kind,
    method: &'a str,
    id: Option<&'a RawValue>,
    payload: Option<&'a Payload>,
    error: Option<&'a ErrorObject>,
    /// Its sender, when that is the request's own rather than the session's (see
    /// [`Pending::principal`]).
    principal: Option<&'a Arc<SessionPrincipal>>,
}

impl<'a> Asked<'a> {
    /// A request going `direction`; `principal`: its own sender's, when that is not
    /// the session's.
    fn request(
        direction: Direction,
        method: &'a str,
        id: &'a RawValue,
        params: Option<&'a Payload>,
        principal: Option<&'a Arc<SessionPrincipal>>,
    ) -> Self {
        Asked {
            direction,
            kind: Kind::Request,
            method,
            id: Some(id),
            payload: params,
            error: None,
            principal,
        }
    }
}

/// A request judged and on its way: where to, with which params, and what its
/// answer's chains will be shown of it.
struct Routed {
    to: Peer,
    params: Option<Payload>,
    /// Whether `params` differ from what arrived (the HTTP headers then follow).
    rewritten: bool,
    /// The params as the global chain passed them on, when it wants them back.
    kept: Option<Payload>,
    /// The params as the server's chain passed them on, when it wants them back.
    own_kept: Option<Payload>,
    /// A client's request: its metric and span.
    operation: Option<Operation>,
}

/// What the relay holds of one peer besides what it reads from it.
#[derive(Default)]
struct Side {
    /// `None` once this peer's input is closed.
    outbound: Option<mpsc::Sender<Outbound>>,
    /// Requests forwarded to this peer, waiting for its answers.
    awaiting: PendingTable,
    /// Ids (as this peer knows them) of the last cancelled requests forgotten
    /// unanswered: an answer arriving after all is dropped without alarm.
    cancelled: VecDeque<Box<str>>,
}

/// How many forgotten cancelled ids a side remembers.
const CANCELLED_MEMORY: usize = 64;
/// How long a cancelled request waits for an answer its receiver need not send.
const CANCEL_GRACE: Duration = Duration::from_secs(30);

impl Side {
    fn new(outbound: mpsc::Sender<Outbound>) -> Self {
        Side {
            outbound: Some(outbound),
            ..Side::default()
        }
    }

    fn remember_cancelled(&mut self, id: &RawValue) {
        if self.cancelled.len() == CANCELLED_MEMORY {
            self.cancelled.pop_front();
        }
        self.cancelled.push_back(id.get().into());
    }

    fn was_cancelled(&self, id: &RawValue) -> bool {
        self.cancelled.iter().any(|c| **c == *id.get())
    }
}

/// A backend given to a session: its name, its connection, how long it may take to
/// answer a request (none: as long as it likes), its own plugin chain, and how it is
/// (re)started.
pub struct BackendLink {
    pub name: String,
    pub start: BackendStart,
    pub timeout: Option<Duration>,
    /// Between the gateway and this server, it sees the server's own names; `None`
    /// when the server has no plugins of its own (its messages then cost nothing more).
    pub chain: Option<SharedInterceptor>,
    pub lifecycle: Lifecycle,
}

impl BackendLink {
    /// A backend connected by `link`, that may take its time, has no chain of its own
    /// and is not restarted.
    pub fn new(name: impl Into<String>, link: Link) -> Self {
        BackendLink {
            name: name.into(),
            start: BackendStart::Open(link, UpstreamGuard::Nothing),
            timeout: None,
            chain: None,
            lifecycle: Lifecycle::default(),
        }
    }
}

/// How a backend begins its session.
pub enum BackendStart {
    /// Connected: its link, and what stops it once the session ends.
    Open(Link, UpstreamGuard),
    /// It could not be connected: why (it is down from the start; restarted if its
    /// policy says so).
    Failed(String),
    /// Started on the first request routed to it (lazy start).
    OnFirstUse,
}

/// One of the session's backends.
struct Backend {
    /// Its name, in errors and logs.
    name: String,
    /// Its name as a metric label.
    label: Name,
    /// Counts it in `interpose_backend_up` while its connection is open.
    up: Option<GaugeGuard>,
    side: Side,
    timeout: Option<Duration>,
    /// Its own plugin chain, if it has one.
    chain: Option<SharedInterceptor>,
    /// Whether its chain wants a request's params with the answer.
    keep_request_params: bool,
    /// Its `x-mcp-header` declarations, from its `tools/list` results, to keep
    /// `Mcp-Param-*` headers true to a request a plugin rewrote.
    param_headers: mcp_http::ParamHeaders,
    lifecycle: Lifecycle,
    state: State,
    /// What stops its current connection (its process, for a command).
    guard: Option<UpstreamGuard>,
    backoff: Backoff,
    /// Bumped with each connection, so a timer set for an earlier one is ignored.
    generation: u64,
    /// While it starts: what goes to it once it is up (the handshake's end, and what
    /// was routed to it meanwhile), in order.
    queued: Vec<Outbound>,
    /// The id of the `initialize` it has not answered yet, when that answer no
    /// longer answers anyone (the relay's own, or a client's it answered late).
    handshake: Option<RawId>,
    /// The protocol version it settled on with the client; a restarted backend must
    /// settle on the same.
    protocol_version: Option<String>,
}

/// What a transport said about a message besides the message itself.
#[derive(Default)]
struct Arrival {
    /// The request (in the sender's id space) the message belongs to.
    related: Option<RawId>,
    /// A sessionless HTTP client's protocol headers, for its request.
    headers: Option<ProtocolHeaders>,
    /// A sessionless HTTP client's principal, for its request.
    principal: Option<Arc<SessionPrincipal>>,
    /// How an HTTP backend sent an answer.
    head: Option<AnswerHead>,
}

impl Arrival {
    fn of(inbound: Inbound) -> Result<(Frame, Arrival), String> {
        match inbound {
            Inbound::Frame {
                frame,
                related,
                sessionless,
                head,
            } => {
                let (headers, principal) = match sessionless {
                    Some(Sessionless { headers, principal }) => (
                        Some(headers),
                        principal.map(|p| Arc::new(SessionPrincipal::new(p))),
                    ),
                    None => (None, None),
                };
                Ok((
                    frame,
                    Arrival {
                        related,
                        headers,
                        principal,
                        head,
                    },
                ))
            }
            Inbound::Closed(why) => Err(why),
        }
    }
}

/// One session: a client and a set of backends, and the state between them. Every
/// message is handled the same way whichever peer sent it (see [`Peer`]); what differs
/// by direction (progress and subscription routing, the HTTP heads and headers) is
/// said where it happens. Today's proxy is the set of one backend; which backend a
/// client's request goes to is [`SessionRelay::route`]'s to say.
pub struct SessionRelay {
    config: RelayConfig,
    keep_request_params: bool,
    client: Side,
    client_inbound: mpsc::Receiver<Inbound>,
    client_writer: tokio::task::JoinHandle<()>,
    backends: Vec<Backend>,
    /// What each backend sends, by its place in `backends`; `None` once it has closed.
    backend_inbound: Vec<Option<mpsc::Receiver<Inbound>>>,
    /// Which backend is read first next time, so a busy one cannot starve the others.
    backend_turn: usize,
    /// Progress token (JSON text) to the client's id of the request that carries it.
    progress_routes: HashMap<Box<str>, RawId>,
    /// Where a client's request goes when there are several backends (or prefixes).
    gateway: Gateway,
    /// Client requests fanned out to several backends, waiting for their parts.
    fanouts: HashMap<u64, Fanout>,
    next_fanout: u64,
    /// Requests to backends with a timeout: which backend, the id it knows, and the
    /// time it had.
    deadlines: DelayQueue<(usize, RawId, Duration)>,
    /// Backend lifecycle timers: which backend, its generation when set, and what for.
    timers: DelayQueue<(usize, u64, Timer)>,
    /// The client's `initialize` params as the backends got them, replayed to a
    /// backend that starts later (restarted, lazy).
    client_initialize: Option<Payload>,
    /// Whether the client has sent `notifications/initialized`.
    client_initialized: bool,
    /// The params of the client's last `logging/setLevel`, replayed too.
    log_level: Option<Payload>,
    /// Numbers the relay's own requests to backends.
    next_own_request: u64,
    /// Set when the last backend is gone for good: why. The session then ends.
    over: Option<String>,
    /// With `[replicas]`: where the client's handshake is recorded for another replica.
    handoff: Option<Arc<Handoff>>,
}

/// A client request fanned out to several backends.
struct Fanout {
    /// The client's request, as the merged answer goes back to it.
    request: Pending,
    merge: Merge,
    /// A list request without a cursor: each part is a server's first page.
    first_pages: bool,
    /// Parts not answered yet.
    waiting: usize,
    parts: Vec<Part>,
    /// For `subscriptions/listen`: each server's acknowledgement, until the client
    /// has been sent the one made of them all.
    acks: Option<ListenAcks>,
}

/// The acknowledgements of a `subscriptions/listen` fanned out to several servers.
#[derive(Default)]
struct ListenAcks {
    /// Servers that acknowledged or ended their part, and so will not acknowledge.
    settled: Vec<usize>,
    acks: Vec<(usize, serde_json::Value)>,
}

impl SessionRelay {
    /// A session with one backend, named `config.server`, that may take its time.
    pub fn new(config: RelayConfig, client: Link, backend: Link) -> Self {
        let backend = BackendLink::new(config.server.clone(), backend);
        Self::with_backends(config, client, vec![backend])
    }

    /// A session with a set of named backends. Which one a client's request goes to
    /// is [`SessionRelay::route`]'s to say; what the client announces goes to all.
    pub fn with_backends(config: RelayConfig, client: Link, backends: Vec<BackendLink>) -> Self {
        let gateway = Gateway::new(
            backends.iter().map(|b| b.name.clone()).collect(),
            &config.gateway,
        );
        let mut backend_inbound = Vec::with_capacity(backends.len());
        let mut failed = Vec::new();
        let backends = backends
            .into_iter()
            .enumerate()
            .map(|(index, backend)| {
                let (inbound, outbound, guard, state) = match backend.start {
                    BackendStart::Open(link, guard) => (
                        Some(link.inbound),
                        Some(link.outbound),
                        Some(guard),
                        State::Connected,
                    ),
                    BackendStart::OnFirstUse => (None, None, None, State::Idle),
                    BackendStart::Failed(why) => {
                        failed.push((index, why));
                        (None, None, None, State::Connected)
                    }
                };
                backend_inbound.push(inbound);
                let label = Name::new(&backend.name);
                Backend {
                    up: outbound
                        .is_some()
                        .then(|| metrics::metrics().backend_connected(&label)),
                    label,
                    name: backend.name,
                    side: Side {
                        outbound,
                        ..Side::default()
                    },
                    timeout: backend.timeout,
                    keep_request_params: backend
                        .chain
                        .as_ref()
                        .is_some_and(|chain| chain.wants_request_payload()),
                    chain: backend.chain,
                    param_headers: mcp_http::ParamHeaders::new(),
                    lifecycle: backend.lifecycle,
                    state,
                    guard,
                    backoff: Backoff::default(),
                    generation: 0,
                    queued: Vec::new(),
                    handshake: None,
                    protocol_version: None,
                }
            })
            .collect();
        let mut relay = SessionRelay {
            keep_request_params: config.interceptor.wants_request_payload(),
            config,
            client: Side::new(client.outbound),
            client_inbound: client.inbound,
            client_writer: client.writer,
            backends,
            backend_inbound,
            backend_turn: 0,
            progress_routes: HashMap::new(),
            gateway,
            fanouts: HashMap::new(),
            next_fanout: 0,
            deadlines: DelayQueue::new(),
            timers: DelayQueue::new(),
            client_initialize: None,
            client_initialized: false,
            log_level: None,
            next_own_request: 0,
            over: None,
            handoff: None,
        };
        for (index, why) in failed {
            relay.went_down(index, why, true);
        }
        relay
    }

    /// Relays until the client leaves, every backend has gone, or `shutdown`
    /// completes.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> RelayEnd {
        tokio::pin!(shutdown);
        let end = loop {
            // Each side is read only when the side its messages mostly go to has room.
            // Otherwise a full queue towards a backend would stop us from draining the
            // backend's output while it is blocked writing it: a deadlock.
            let to_client = self
                .client
                .outbound
                .as_ref()
                .expect("open until the loop ends");
            let to_backends = self
                .backends
                .iter()
                .filter_map(|b| b.side.outbound.as_ref());
            tokio::select! {
                inbound = recv_when_room(&mut self.client_inbound, to_backends) => {
                    match inbound.map(Arrival::of) {
                        Some(Ok((frame, arrival))) => self.on_frame(Peer::Client, frame, arrival).await,
                        Some(Err(why)) => {
                            tracing::debug!(session = %self.config.session, "{why}");
                            break RelayEnd::ClientClosed;
                        }
                        None => break RelayEnd::ClientClosed,
                    }
                }
                (backend, inbound) = recv_from_backends(&mut self.backend_inbound, &mut self.backend_turn, Some(to_client)) => {
                    match inbound.map(Arrival::of) {
                        Some(Ok((frame, arrival))) => self.on_frame(Peer::Backend(backend), frame, arrival).await,
                        Some(Err(why)) => self.backend_gone(backend, why).await,
                        None => {
                            let why = "the backend connection closed".to_owned();
                            self.backend_gone(backend, why).await;
                        }
                    }
                }
                Some(expired) = std::future::poll_fn(|cx| self.deadlines.poll_expired(cx)), if !self.deadlines.is_empty() => {
                    let (backend, id, timeout) = expired.into_inner();
                    self.timed_out(backend, id, timeout).await;
                }
                Some(expired) = std::future::poll_fn(|cx| self.timers.poll_expired(cx)), if !self.timers.is_empty() => {
                    let (backend, generation, timer) = expired.into_inner();
                    self.on_timer(backend, generation, timer).await;
                }
                () = &mut shutdown => break RelayEnd::Shutdown,
            }
            if let Some(why) = self.over.take() {
                break RelayEnd::BackendClosed(why);
            }
        };
        match &end {
            RelayEnd::BackendClosed(_) => {}
            RelayEnd::ClientClosed => self.let_backends_finish("the client left").await,
            RelayEnd::Shutdown => self.let_backends_finish("the proxy is shutting down").await,
        }
        let guards: Vec<UpstreamGuard> = self
            .backends
            .iter_mut()
            .filter_map(|b| b.guard.take())
            .collect();
        self.close_client().await;
        futures::future::join_all(guards.into_iter().map(|g| g.shutdown(EXIT_WAIT))).await;
        end
    }

    /// Backend `index` closed its output: what it was asked fails now, and it is
    /// started again if its policy says so.
    async fn backend_gone(&mut self, index: usize, why: String) {
        // Only one that served had names in the lists (one that dies while starting
        // again had none).
        let served = matches!(self.backends[index].state, State::Up(_) | State::Connected);
        self.fail_in_flight(index, &why).await;
        self.went_down(index, why, true);
        if served && self.over.is_none() && !self.gateway.is_passthrough() {
            // Its tools, prompts and resources have left the lists: the client is told.
            self.announce_lists_changed().await;
        }
    }

    /// Starts the clock on a request forwarded to backend `index`, if it has a timeout.
    fn start_deadline(&mut self, index: usize, forwarded_id: &RawId) {
        self.start_deadline_within(index, forwarded_id, None);
    }

    /// The same, with the clock at most `most` (where the backend has no timeout too).
    fn start_deadline_within(
        &mut self,
        index: usize,
        forwarded_id: &RawId,
        most: Option<Duration>,
    ) {
        let timeout = match (self.backends[index].timeout, most) {
            (Some(own), Some(most)) => own.min(most),
            (own, most) => match own.or(most) {
                Some(timeout) => timeout,
                None => return,
            },
        };
        let key = self
            .deadlines
            .insert((index, forwarded_id.clone(), timeout), timeout);
        if let Some(pending) = self.backends[index].side.awaiting.get_mut(forwarded_id) {
            pending.deadline = Some(key);
        }
    }

    /// Takes a request forwarded to backend `index` from its table, and off the clock.
    fn take_from_backend(&mut self, index: usize, forwarded_id: &RawValue) -> Option<Pending> {
        let pending = self.backends[index].side.awaiting.take(forwarded_id)?;
        if let Some(key) = &pending.deadline {
            self.deadlines.try_remove(key);
        }
        Some(pending)
    }

    /// Backend `index` did not answer request `id` in time: it is told to stop, and
    /// the request fails.
    async fn timed_out(&mut self, index: usize, id: RawId, timeout: Duration) {
        let Some(pending) = self.backends[index].side.awaiting.take(&id) else {
            return;
        };
        if pending.cancelled {
            // No answer to a cancelled request: as the spec would have it.
            let side = &mut self.backends[index].side;
            side.remember_cancelled(&id);
            if let Some(fanout) = pending.part_of {
                self.fanouts.remove(&fanout);
            }
            self.forget_progress(&pending);
            return;
        }
        let backend = &self.backends[index];
        let problem = format!(
            "server `{}` did not answer `{}` within {timeout:?}",
            backend.name, pending.method
        );
        tracing::warn!(session = %self.config.session, "{problem}");
        // `initialize` must not be cancelled (MCP lifecycle): the server joins when it
        // answers.
        if pending.method == INITIALIZE {
            self.backends[index].handshake = Some(id.clone());
            if let State::Starting { overdue, .. } = &mut self.backends[index].state {
                *overdue = true;
            }
        } else {
            let reason = serde_json::to_string(&problem).expect("a string serializes");
            let cancel = Message::Notification {
                method: CANCELLED.into(),
                params: Some(
                    jsonrpc::raw(format!(r#"{{"requestId":{},"reason":{reason}}}"#, id.get()))
                        .into(),
                ),
            };
            self.send(Peer::Backend(index), Outbound::new(cancel)).await;
        }
        let error = ErrorObject::new(BACKEND_UNAVAILABLE, problem).with_data(serde_json::json!({
            "method": pending.method,
            "timeout_ms": u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        }));
        self.fail_backend_request(index, pending, error).await;
    }

    fn side(&mut self, peer: Peer) -> &mut Side {
        match peer {
            Peer::Client => &mut self.client,
            Peer::Backend(index) => &mut self.backends[index].side,
        }
    }

    // ---- what arrives ----

    async fn on_frame(&mut self, from: Peer, frame: Frame, arrival: Arrival) {
        match (from, frame) {
            (_, Frame::Message(message)) => self.on_message(from, message, arrival).await,
            // What the client sent may have been a request: it gets its error.
            (Peer::Client, Frame::Malformed { error, id }) => {
                tracing::warn!(session = %self.config.session, "malformed message from the client: {error}");
                let reply = ErrorObject::new(error.code(), error.to_string());
                let id = error.answer_id(id).unwrap_or_else(jsonrpc::null_id);
                self.send_client(Outbound::new(Message::error_response(id, &reply)))
                    .await;
            }
            (Peer::Client, Frame::TooLong { len, limit, id }) => {
                tracing::warn!(session = %self.config.session, "message of {len} bytes from the client exceeds the {limit}-byte limit");
                let reply = too_long_error(len, limit);
                let id = id.unwrap_or_else(jsonrpc::null_id);
                self.send_client(Outbound::new(Message::error_response(id, &reply)))
                    .await;
            }
            (Peer::Backend(index), Frame::Malformed { error, id }) => {
                let name = &self.backends[index].name;
                let problem =
                    format!("backend `{name}` sent a message that cannot be read: {error}");
                self.backend_frame_unreadable(index, problem, id).await;
            }
            (Peer::Backend(index), Frame::TooLong { len, limit, id }) => {
                let name = &self.backends[index].name;
                let problem = format!(
                    "backend `{name}` sent a message of {len} bytes, over the {limit}-byte limit"
                );
                self.backend_frame_unreadable(index, problem, id).await;
            }
        }
    }

    /// If what the backend sent was the answer to a request, that request still gets
    /// exactly one answer.
    async fn backend_frame_unreadable(&mut self, index: usize, problem: String, id: Option<RawId>) {
        match id.and_then(|id| self.take_from_backend(index, &id)) {
            Some(pending) => {
                tracing::warn!(session = %self.config.session, method = %pending.method, "{problem}; the request fails");
                let error = ErrorObject::new(INTERNAL_ERROR, problem)
                    .with_data(serde_json::json!({ "method": pending.method }));
                self.fail_backend_request(index, pending, error).await;
            }
            None => tracing::warn!(session = %self.config.session, "{problem}; dropped"),
        }
    }

    async fn on_message(&mut self, from: Peer, message: Message, arrival: Arrival) {
        let (kind, payload) = match &message {
            Message::Request { params, .. } => (Kind::Request, params.as_deref()),
            Message::Notification { params, .. } => (Kind::Notification, params.as_deref()),
            Message::Response { result, .. } => (Kind::Response, Some(&**result)),
            Message::Error { .. } => (Kind::Error, None),
        };
        let bytes = payload.map_or(0, |p| p.get().len());
        metrics::metrics().message(from.direction(), kind, bytes);
        match message {
            Message::Request { id, method, params } => {
                self.on_request(from, id, method, params, arrival).await
            }
            Message::Notification { method, params } => {
                self.on_notification(from, method, params, arrival.related)
                    .await
            }
            answer => self.on_answer(from, answer, arrival.head).await,
        }
    }

    /// A request goes to the other side under a fresh id, unless a plugin answers it.
    async fn on_request(
        &mut self,
        from: Peer,
        id: RawId,
        method: String,
        params: Option<Payload>,
        arrival: Arrival,
    ) {
        let principal = arrival.principal;
        let routed = match from {
            Peer::Client => {
                self.judge_client_request(&id, &method, params, principal.as_ref())
                    .await
            }
            Peer::Backend(index) => {
                self.judge_backend_request(index, &id, &method, params)
                    .await
            }
        };
        let Some(Routed {
            to,
            mut params,
            rewritten,
            kept,
            own_kept,
            operation,
        }) = routed
        else {
            return;
        };
        // The headers that describe a request must describe it as it goes on (rewritten
        // by a plugin, or named as its server knows it), or the backend would refuse
        // the mismatch.
        let headers = match (arrival.headers, to) {
            (Some(sent), Peer::Backend(index)) if rewritten => {
                Some(Arc::new(mcp_http::rederive_headers(
                    &sent,
                    &method,
                    params.as_deref(),
                    &self.backends[index].param_headers,
                )))
            }
            (headers, _) => headers,
        };
        let (progress_token, related) = match from {
            Peer::Client => {
                let token = jsonrpc::ParamsMeta::progress_token(params.as_deref());
                if let Some(token) = &token {
                    self.progress_routes.insert(token.get().into(), id.clone());
                }
                (token.map(|t| t.get().into()), None)
            }
            // A backend's request belongs to the client request it was made for.
            Peer::Backend(index) => (
                None,
                self.client_request_for(index, arrival.related.as_deref()),
            ),
        };
        let trace_parent = operation
            .as_ref()
            .and_then(Operation::trace_parent)
            .cloned();
        let pending = Pending {
            params: kept,
            own_params: own_kept,
            progress_token,
            operation,
            principal,
            ..Pending::new(from, id, method.clone())
        };
        let forwarded_id = self.side(to).awaiting.insert(pending);
        if let Peer::Backend(index) = to {
            self.trace_upstream(index, &forwarded_id, &method, &mut params, trace_parent);
            // `subscriptions/listen` is answered when it ends, not when its work is
            // done: no request timeout applies to it.
            if method != LISTEN {
                self.start_deadline(index, &forwarded_id);
            }
        }
        let request = Message::Request {
            id: forwarded_id,
            method,
            params,
        };
        let outbound = Outbound {
            related,
            headers,
            ..Outbound::new(request)
        };
        self.send(to, outbound).await;
    }

    /// A client's request through the global chain, then (routed to its server, under
    /// the server's names) through that server's chain. Returns where it goes on,
    /// unless a chain answered it, the gateway did, or it fanned out.
    async fn judge_client_request(
        &mut self,
        id: &RawId,
        method: &str,
        params: Option<Payload>,
        principal: Option<&Arc<SessionPrincipal>>,
    ) -> Option<Routed> {
        // Timed from here: its plugins' time counts.
        let operation = Some(Operation::start(
            method,
            id,
            params.as_deref(),
            self.config.origin(),
        ));
        let trace = operation
            .as_ref()
            .and_then(Operation::trace_parent)
            .cloned();
        self.remember_handshake(method, params.as_ref());
        let passthrough = self.gateway.is_passthrough();
        let live: Vec<bool> = if passthrough {
            Vec::new()
        } else {
            let backends = self.backends.iter();
            backends.map(|b| b.state.takes_requests()).collect()
        };
        // The global chain is shown the server the request names as the client sent it.
        let planned = (!passthrough).then(|| self.gateway.plan(method, params.as_deref(), &live));
        let owner = match &planned {
            None => Some(0),
            Some(Plan::One { backend, .. }) => Some(*backend),
            Some(_) => None,
        };
        let verdict = self
            .judge(
                Chain::Global { owner },
                Asked::request(Direction::ToServer, method, id, params.as_ref(), principal),
                None,
                trace.as_ref(),
            )
            .await;
        let (params, rewritten) = match passed_on(verdict, id, params) {
            Ok(passed) => passed,
            Err(answer) => {
                if let Some(operation) = &operation {
                    operation.answered(method, &answer);
                }
                self.send_client(Outbound::new(answer)).await;
                return None;
            }
        };
        let (backend, own, kept) = match planned {
            None => {
                if !self.backends[0].state.takes_requests() {
                    self.refuse(0, id.clone(), method, operation.as_ref()).await;
                    return None;
                }
                let kept = self.keep_request_params.then(|| params.clone()).flatten();
                (0, params, kept)
            }
            Some(planned) => {
                // A plugin may have renamed what the request acts on.
                let plan = if rewritten {
                    self.gateway.plan(method, params.as_deref(), &live)
                } else {
                    planned
                };
                let kept = self.keep_request_params.then_some(params).flatten();
                match plan {
                    Plan::One { backend, params } => {
                        let params = params.map(Payload::from);
                        if matches!(self.backends[backend].state, State::Idle) {
                            self.start(backend, true).await;
                        }
                        if !self.backends[backend].state.takes_requests() {
                            self.refuse(backend, id.clone(), method, operation.as_ref())
                                .await;
                            return None;
                        }
                        (backend, params, kept)
                    }
                    Plan::Unavailable { backend } => {
                        self.refuse(backend, id.clone(), method, operation.as_ref())
                            .await;
                        return None;
                    }
                    Plan::Fanout { parts, merge } => {
                        let request = Pending {
                            params: kept,
                            operation,
                            principal: principal.cloned(),
                            ..Pending::new(Peer::Client, id.clone(), method.to_owned())
                        };
                        let parts = parts
                            .into_iter()
                            .map(|(backend, params)| (backend, params.map(Payload::from)))
                            .collect();
                        self.fan_out(request, parts, merge).await;
                        return None;
                    }
                    Plan::Answer(answer) => {
                        let answer = match answer {
                            Ok(result) => Message::Response {
                                id: id.clone(),
                                result: result.into(),
                            },
                            Err(error) => Message::error_response(id.clone(), &error),
                        };
                        let pending = Pending {
                            params: kept,
                            operation,
                            principal: principal.cloned(),
                            ..Pending::new(Peer::Client, id.clone(), method.to_owned())
                        };
                        let (answer, _) = self
                            .judge_answer(
                                Chain::Global { owner: None },
                                Direction::ToClient,
                                answer,
                                &pending,
                            )
                            .await;
                        self.send_client(Outbound::new(answer)).await;
                        return None;
                    }
                }
            }
        };
        // In a gateway, the name the server knows is not the one the client sent.
        let rewritten = rewritten || !passthrough;
        let (own, rewritten) = if self.has_chain(backend) {
            let verdict = self
                .judge(
                    Chain::Server(backend),
                    Asked::request(Direction::ToServer, method, id, own.as_ref(), principal),
                    None,
                    trace.as_ref(),
                )
                .await;
            match passed_on(verdict, id, own) {
                Ok((own, changed)) => (own, rewritten || changed),
                Err(answer) => {
                    // Back through the global chain, as any answer of this server.
                    let pending = Pending {
                        params: kept,
                        operation,
                        principal: principal.cloned(),
                        ..Pending::new(Peer::Client, id.clone(), method.to_owned())
                    };
                    self.deliver_answer(backend, answer, pending, None).await;
                    return None;
                }
            }
        } else {
            (own, rewritten)
        };
        let own_kept = self.backends[backend]
            .keep_request_params
            .then(|| own.clone())
            .flatten();
        Some(Routed {
            to: Peer::Backend(backend),
            params: own,
            rewritten,
            kept,
            own_kept,
            operation,
        })
    }

    /// A server's request (sampling, elicitation, roots) through the server's own chain,
    /// then the global chain, towards the client. An answer the global chain makes
    /// goes back through the server's chain, as the client's answer would.
    async fn judge_backend_request(
        &mut self,
        index: usize,
        id: &RawId,
        method: &str,
        mut params: Option<Payload>,
    ) -> Option<Routed> {
        let from = Peer::Backend(index);
        if self.has_chain(index) {
            let verdict = self
                .judge(
                    Chain::Server(index),
                    Asked::request(Direction::ToClient, method, id, params.as_ref(), None),
                    None,
                    None,
                )
                .await;
            params = match passed_on(verdict, id, params) {
                Ok((params, _)) => params,
                Err(answer) => {
                    self.send(from, Outbound::new(answer)).await;
                    return None;
                }
            };
        }
        let own_kept = self.backends[index]
            .keep_request_params
            .then(|| params.clone())
            .flatten();
        let verdict = self
            .judge(
                Chain::Global { owner: Some(index) },
                Asked::request(Direction::ToClient, method, id, params.as_ref(), None),
                None,
                None,
            )
            .await;
        let (params, rewritten) = match passed_on(verdict, id, params) {
            Ok(passed) => passed,
            Err(mut answer) => {
                if self.has_chain(index) {
                    let pending = Pending {
                        own_params: own_kept,
                        ..Pending::new(from, id.clone(), method.to_owned())
                    };
                    (answer, _) = self
                        .judge_answer(Chain::Server(index), Direction::ToServer, answer, &pending)
                        .await;
                }
                self.send(from, Outbound::new(answer)).await;
                return None;
            }
        };
        let kept = self.keep_request_params.then(|| params.clone()).flatten();
        Some(Routed {
            to: Peer::Client,
            params,
            rewritten,
            kept,
            own_kept,
            operation: None,
        })
    }

    /// Sends each backend its part of a client `request`, through the backend's own
    /// chain; the answers become one when the last part is in (see
    /// [`SessionRelay::on_part`]).
    async fn fan_out(
        &mut self,
        request: Pending,
        parts: Vec<(usize, Option<Payload>)>,
        merge: Merge,
    ) {
        self.next_fanout += 1;
        let fanout = self.next_fanout;
        let (id, method) = (request.original_id.clone(), request.method.clone());
        let principal = request.principal.clone();
        let started = request.started;
        let first_pages = matches!(merge, Merge::List(_))
            && parts.iter().all(|(_, params)| {
                params
                    .as_deref()
                    .and_then(|p| serde_json::from_str::<serde_json::Value>(p.get()).ok())
                    .is_none_or(|p| p.get("cursor").is_none())
            });
        self.fanouts.insert(
            fanout,
            Fanout {
                request,
                merge,
                first_pages,
                waiting: parts.len(),
                parts: Vec::with_capacity(parts.len()),
                acks: (merge == Merge::Listen).then(ListenAcks::default),
            },
        );
        if parts.is_empty() {
            return self.finish_fanout(fanout).await;
        }
        let fanned = self.fanouts.get(&fanout);
        let operation = fanned.and_then(|f| f.request.operation.as_ref());
        let trace = operation.and_then(Operation::trace_parent).cloned();
        // Parts a server not started yet answers from its catalog, once all are out.
        let mut from_catalog = Vec::new();
        for (backend, mut params) in parts {
            if let Some(answer) = self.catalog_answer(backend, merge, first_pages) {
                from_catalog.push((backend, answer));
                continue;
            }
            if self.has_chain(backend) {
                let verdict = self
                    .judge(
                        Chain::Server(backend),
                        Asked::request(
                            Direction::ToServer,
                            &method,
                            &id,
                            params.as_ref(),
                            principal.as_ref(),
                        ),
                        None,
                        trace.as_ref(),
                    )
                    .await;
                params = match passed_on(verdict, &id, params) {
                    Ok((params, _)) => params,
                    // The server's chain answered its part for it.
                    Err(answer) => {
                        self.on_part(fanout, backend, part_of_answer(answer)).await;
                        continue;
                    }
                };
            }
            let part = Pending {
                own_params: self.backends[backend]
                    .keep_request_params
                    .then(|| params.clone())
                    .flatten(),
                started,
                part_of: Some(fanout),
                principal: principal.clone(),
                ..Pending::new(Peer::Client, id.clone(), method.clone())
            };
            if matches!(self.backends[backend].state, State::Idle) {
                self.start(backend, true).await;
            }
            let forwarded_id = self.backends[backend].side.awaiting.insert(part);
            self.trace_upstream(backend, &forwarded_id, &method, &mut params, trace.clone());
            // A slow server does not hold the others' handshake past its start time.
            let start_timeout = self.backends[backend].lifecycle.start_timeout;
            let most =
                (merge == Merge::Initialize || merge == Merge::Discover).then_some(start_timeout);
            if merge != Merge::Listen {
                // (A listen is answered when it ends: no timeout, as in `on_request`.)
                self.start_deadline_within(backend, &forwarded_id, most);
            }
            let request = Message::Request {
                id: forwarded_id,
                method: method.clone(),
                params,
            };
            self.send(Peer::Backend(backend), Outbound::new(request))
                .await;
            if merge == Merge::Initialize {
                self.backends[backend].state = State::Starting {
                    overdue: false,
                    queue: false,
                };
            }
        }
        for (backend, answer) in from_catalog {
            let answer = serde_json::value::to_raw_value(&answer)
                .map_err(|e| ErrorObject::new(INTERNAL_ERROR, e.to_string()));
            self.on_part(fanout, backend, answer).await;
        }
    }

    /// One backend's answer (or failure) for its part of fan-out `fanout`.
    async fn on_part(
        &mut self,
        fanout: u64,
        backend: usize,
        part: Result<Box<RawValue>, ErrorObject>,
    ) {
        let Some(entry) = self.fanouts.get_mut(&fanout) else {
            return;
        };
        let own = &mut self.backends[backend];
        if let (Some(catalog), Ok(result), false) = (
            &own.lifecycle.catalog,
            &part,
            matches!(own.state, State::Idle),
        ) {
            let value = || serde_json::from_str(result.get()).unwrap_or_default();
            match entry.merge {
                Merge::Initialize => catalog.record_initialize(&value()),
                Merge::List(kind) if entry.first_pages => {
                    catalog.record_first_page(kind, &value());
                }
                _ => {}
            }
        }
        match (entry.merge, &part) {
            (Merge::Initialize, Ok(result)) if !matches!(own.state, State::Idle) => {
                // In time: it is up, in the version it settled on.
                own.mark_up(protocol_version(result).as_deref());
            }
            // It refused this handshake (not late: a late one's answer is awaited): it
            // may take another.
            (Merge::Initialize, Err(_)) if own.handshake.is_none() => own.state = State::Connected,
            _ => {}
        }
        entry.parts.push((backend, part));
        entry.waiting -= 1;
        if let Some(acks) = &mut entry.acks {
            acks.settled.push(backend);
            self.send_listen_ack_when_settled(fanout).await;
        }
        if self.fanouts.get(&fanout).is_some_and(|f| f.waiting == 0) {
            self.finish_fanout(fanout).await;
        }
    }

    /// A server's acknowledgement of its part of a fanned-out `subscriptions/listen`.
    async fn on_listen_ack(&mut self, fanout: u64, backend: usize, params: Option<Payload>) {
        let Some(acks) = self.fanouts.get_mut(&fanout).and_then(|f| f.acks.as_mut()) else {
            return;
        };
        let ack = params
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or_default();
        acks.settled.push(backend);
        acks.acks.push((backend, ack));
        self.send_listen_ack_when_settled(fanout).await;
    }

    /// Once every server of a fanned-out listen has acknowledged or ended its part,
    /// the client gets one acknowledgement for all, naming its listen request.
    async fn send_listen_ack_when_settled(&mut self, fanout: u64) {
        let Some(entry) = self.fanouts.get_mut(&fanout) else {
            return;
        };
        let parts = entry.waiting + entry.parts.len();
        let Some(acks) = entry.acks.as_mut() else {
            return;
        };
        if acks.settled.len() < parts || acks.acks.is_empty() {
            return;
        }
        let received = std::mem::take(&mut acks.acks);
        entry.acks = None;
        let listen = entry.request.original_id.clone();
        let mut params = self.gateway.merge_acknowledged(&received);
        params["_meta"][jsonrpc::SUBSCRIPTION_ID] =
            serde_json::from_str(listen.get()).unwrap_or_default();
        let method = jsonrpc::SUBSCRIPTIONS_ACKNOWLEDGED;
        let params = serde_json::value::to_raw_value(&params)
            .ok()
            .map(Payload::from);
        let from = Peer::Backend(received[0].0);
        let global = Chain::Global { owner: None };
        let verdict = self
            .judge_notification(global, from, method, params.as_ref())
            .await;
        let Some(params) = notification_params(verdict, params, method) else {
            return;
        };
        let ack = Message::Notification {
            method: method.to_owned(),
            params,
        };
        let outbound = Outbound {
            related: Some(listen),
            ..Outbound::new(ack)
        };
        self.send_client(outbound).await;
    }

    /// The fan-out whose part a notification of backend `index` names as its
    /// subscription, if the notification names one.
    fn listen_fanout(&self, index: usize, params: Option<&RawValue>) -> Option<u64> {
        let backend_side_id = jsonrpc::ParamsMeta::subscription_id(params)?;
        self.backends[index]
            .side
            .awaiting
            .get(&backend_side_id)?
            .part_of
    }

    async fn finish_fanout(&mut self, fanout: u64) {
        let Some(Fanout {
            request,
            merge,
            parts,
            ..
        }) = self.fanouts.remove(&fanout)
        else {
            return;
        };
        let mut collisions = Vec::new();
        let merged = self.gateway.merge(merge, parts, &mut collisions);
        for collision in collisions {
            let left_out = self.gateway.server_name(collision.left_out);
            if collision.kept == collision.left_out {
                tracing::warn!(
                    session = %self.config.session,
                    "`{}` of server `{left_out}` is left out: another of its names is shown as that too",
                    collision.exposed,
                );
            } else {
                tracing::warn!(
                    session = %self.config.session,
                    "`{}` of server `{left_out}` is left out: server `{}` has the same name",
                    collision.exposed,
                    self.gateway.server_name(collision.kept),
                );
            }
        }
        let answer = match merged {
            Ok(result) => Message::Response {
                id: request.original_id.clone(),
                result,
            },
            Err(error) => Message::error_response(request.original_id.clone(), &error),
        };
        let (answer, _) = self
            .judge_answer(
                Chain::Global { owner: None },
                Direction::ToClient,
                answer,
                &request,
            )
            .await;
        let outbound = Outbound {
            related: Some(request.original_id),
            ..Outbound::new(answer)
        };
        self.send_client(outbound).await;
    }

    /// A server's notification passes its own chain, then (under the client's names)
    /// the global chain; the client's passes the global chain, then each receiving
    /// server's chain.
    async fn on_notification(
        &mut self,
        from: Peer,
        method: String,
        params: Option<Payload>,
        related: Option<RawId>,
    ) {
        let (owner, params) = match from {
            Peer::Backend(index) => {
                let params = if self.has_chain(index) {
                    let verdict = self
                        .judge_notification(Chain::Server(index), from, &method, params.as_ref())
                        .await;
                    match notification_params(verdict, params, &method) {
                        Some(params) => params,
                        None => return,
                    }
                } else {
                    params
                };
                (
                    Some(index),
                    self.gateway.expose_notification(index, &method, params),
                )
            }
            Peer::Client if self.gateway.is_passthrough() => (Some(0), params),
            Peer::Client if method == CANCELLED => {
                (self.cancelled_owner(params.as_deref()), params)
            }
            Peer::Client => (None, params),
        };
        // Each server acknowledges its part of a fanned-out listen; the client (and
        // the global chain) get one acknowledgement for all.
        if let (Peer::Backend(index), jsonrpc::SUBSCRIPTIONS_ACKNOWLEDGED) = (from, method.as_str())
            && let Some(fanout) = self.listen_fanout(index, params.as_deref())
        {
            return self.on_listen_ack(fanout, index, params).await;
        }
        let verdict = self
            .judge_notification(Chain::Global { owner }, from, &method, params.as_ref())
            .await;
        let Some(params) = notification_params(verdict, params, &method) else {
            return;
        };
        if method == CANCELLED {
            // The request was forwarded to the other side (to each backend it was
            // fanned out to), which knows it by our id.
            let targets = self.remap_cancelled(from, params.as_deref());
            if targets.is_empty() {
                tracing::debug!(
                    "the {} cancelled a request that is not in flight; dropped",
                    from.as_str()
                );
            }
            let route = match from {
                Peer::Backend(index) => self.client_request_for(index, related.as_deref()),
                Peer::Client => None,
            };
            for (to, forwarded_id, remapped) in targets {
                self.expect_no_answer(to, &forwarded_id);
                self.send_notification(to, method.clone(), Some(remapped.into()), route.clone())
                    .await;
            }
            return;
        }
        let Peer::Backend(index) = from else {
            self.client_initialized |= method == INITIALIZED;
            // Every backend hears what the client announces (`initialized`, changed
            // roots); the last one gets the params themselves.
            let last = self.backends.len() - 1;
            let mut params = Some(params);
            for index in 0..=last {
                let params = if index == last {
                    params.take().flatten()
                } else {
                    params.clone().flatten()
                };
                self.send_notification(Peer::Backend(index), method.clone(), params, None)
                    .await;
            }
            return;
        };
        let mut params = params;
        let mut route = self.client_request_for(index, related.as_deref());
        if method == PROGRESS {
            let token = jsonrpc::notification_progress_token(params.as_deref());
            route = token
                .and_then(|t| self.progress_routes.get(t.get()).cloned())
                .or(route);
        } else if let Some((listen, renamed)) = self.subscription_for(index, params.as_deref()) {
            // A subscription's notifications belong to its `subscriptions/listen`
            // request (on stdio nothing else ties them to it) and name it by id: the id
            // the client gave it.
            route = Some(listen);
            params = Some(renamed.into());
        }
        let notification = Message::Notification { method, params };
        let outbound = Outbound {
            related: route,
            ..Outbound::new(notification)
        };
        self.send_client(outbound).await;
    }

    /// Asks a chain about a notification from `from`.
    async fn judge_notification(
        &self,
        chain: Chain,
        from: Peer,
        method: &str,
        params: Option<&Payload>,
    ) -> Verdict {
        let asked = Asked {
            direction: from.direction(),
            kind: Kind::Notification,
            method,
            id: None,
            payload: params,
            error: None,
            principal: None,
        };
        self.judge(chain, asked, None, None).await
    }

    /// Sends a notification on, to a backend through its own chain (which may drop it).
    async fn send_notification(
        &mut self,
        to: Peer,
        method: String,
        params: Option<Payload>,
        related: Option<RawId>,
    ) {
        let params = match to {
            Peer::Backend(index) if self.has_chain(index) => {
                let verdict = self
                    .judge_notification(
                        Chain::Server(index),
                        Peer::Client,
                        &method,
                        params.as_ref(),
                    )
                    .await;
                match notification_params(verdict, params, &method) {
                    Some(params) => params,
                    None => return,
                }
            }
            _ => params,
        };
        let outbound = Outbound {
            related,
            ..Outbound::new(Message::Notification { method, params })
        };
        self.send(to, outbound).await;
    }

    /// The one server a client's `notifications/cancelled` is for, if one is.
    fn cancelled_owner(&self, params: Option<&RawValue>) -> Option<usize> {
        let original = jsonrpc::cancelled_request_id(params)?;
        let mut owners = self
            .backends
            .iter()
            .enumerate()
            .filter(|(_, b)| {
                b.side
                    .awaiting
                    .forwarded_id(Peer::Client, &original)
                    .is_some()
            })
            .map(|(index, _)| index);
        let owner = owners.next()?;
        owners.next().is_none().then_some(owner)
    }

    /// `notifications/cancelled` from `from`, for each peer its request went to (one,
    /// or each backend of a fan-out): that peer, and the params with `requestId`
    /// swapped for the id it knows. Empty when the request is not in flight.
    fn remap_cancelled(
        &self,
        from: Peer,
        params: Option<&RawValue>,
    ) -> Vec<(Peer, RawId, Box<RawValue>)> {
        let (Some(params), Some(original)) = (params, jsonrpc::cancelled_request_id(params)) else {
            return Vec::new();
        };
        let forwarded: Vec<(Peer, RawId)> = match from {
            Peer::Client => self
                .backends
                .iter()
                .enumerate()
                .filter_map(|(index, b)| {
                    let id = b.side.awaiting.forwarded_id(from, &original)?;
                    Some((Peer::Backend(index), id))
                })
                .collect(),
            Peer::Backend(_) => self
                .client
                .awaiting
                .forwarded_id(from, &original)
                .map(|id| (Peer::Client, id))
                .into_iter()
                .collect(),
        };
        forwarded
            .into_iter()
            .filter_map(|(to, id)| {
                let remapped = jsonrpc::replace_member(params, "requestId", id.clone())?;
                Some((to, id, remapped))
            })
            .collect()
    }

    /// A request forwarded to backend `to` as `forwarded_id` was cancelled by the
    /// client. The backend should not answer it: unless it does within
    /// [`CANCEL_GRACE`], the request is forgotten (see [`SessionRelay::timed_out`]),
    /// or every cancellation would leave an entry behind. (A late answer within the
    /// grace still goes to the client, which ignores it, and closes its stream.)
    fn expect_no_answer(&mut self, to: Peer, forwarded_id: &RawId) {
        let Peer::Backend(index) = to else {
            return;
        };
        let awaiting = &mut self.backends[index].side.awaiting;
        let Some(pending) = awaiting.get_mut(forwarded_id) else {
            return;
        };
        pending.cancelled = true;
        if let Some(key) = pending.deadline.take() {
            self.deadlines.remove(&key);
        }
        self.start_deadline_within(index, forwarded_id, Some(CANCEL_GRACE));
    }

    /// An answer from a peer answers a request forwarded to it; it goes back to the
    /// request's sender under the sender's id, through the chains between them.
    async fn on_answer(&mut self, from: Peer, answer: Message, head: Option<AnswerHead>) {
        let id = answer.id().expect("answers have ids");
        let taken = match from {
            Peer::Backend(index) => self.take_from_backend(index, id),
            Peer::Client => self.client.awaiting.take(id),
        };
        let Some(mut pending) = taken else {
            if let Peer::Backend(index) = from {
                if self.backends[index].handshake.as_deref().map(RawValue::get) == Some(id.get()) {
                    return self.on_handshake_answer(index, answer).await;
                }
                if id.get().starts_with("\"interpose-") {
                    // The answer to the relay's own request (a replayed `logging/setLevel`).
                    return tracing::debug!(session = %self.config.session, id = id.get(), "answer to the relay's own request");
                }
            }
            if self.side(from).was_cancelled(id) {
                tracing::debug!(session = %self.config.session, id = id.get(), "the {} answered a cancelled request; dropped", from.as_str());
            } else {
                tracing::warn!(session = %self.config.session, id = id.get(), "the {} answered a request that is not in flight; dropped", from.as_str());
            }
            return;
        };
        if let Peer::Backend(index) = from {
            self.upstream_done(index, &mut pending, Ok(&answer));
            let (answer, unchanged) = if self.has_chain(index) {
                self.judge_answer(Chain::Server(index), Direction::ToClient, answer, &pending)
                    .await
            } else {
                (answer, true)
            };
            // How the backend sent the answer describes it only as it sent it.
            let head = head.filter(|_| unchanged);
            return self.deliver_answer(index, answer, pending, head).await;
        }
        let to = pending.origin;
        let owner = match to {
            Peer::Backend(index) => Some(index),
            Peer::Client => None,
        };
        let (mut answer, mut unchanged) = self
            .judge_answer(
                Chain::Global { owner },
                Direction::ToServer,
                answer,
                &pending,
            )
            .await;
        if let Peer::Backend(index) = to
            && self.has_chain(index)
        {
            let own_unchanged;
            (answer, own_unchanged) = self
                .judge_answer(Chain::Server(index), Direction::ToServer, answer, &pending)
                .await;
            unchanged &= own_unchanged;
        }
        let outbound = Outbound {
            head: head.filter(|_| unchanged),
            ..Outbound::new(answer)
        };
        self.send(to, outbound).await;
    }

    /// An answer for the client from backend `index` (or made by its chain), past that
    /// chain: one part of a fan-out, or, under the client's names and through the
    /// global chain, the answer to the client's request.
    async fn deliver_answer(
        &mut self,
        index: usize,
        answer: Message,
        pending: Pending,
        head: Option<AnswerHead>,
    ) {
        if let Some(fanout) = pending.part_of {
            return self.on_part(fanout, index, part_of_answer(answer)).await;
        }
        let answer = match answer {
            Message::Response { id, result } => Message::Response {
                id,
                result: self.backend_result(index, &pending.method, result),
            },
            answer => answer,
        };
        self.forget_progress(&pending);
        tracing::trace!(method = %pending.method, elapsed = ?pending.started.elapsed(), "answered");
        if let (Message::Response { result, .. }, "tools/list") = (&answer, pending.method.as_str())
        {
            mcp_http::record_param_headers(&mut self.backends[index].param_headers, result);
            metrics::metrics().learn_tools(result);
        }
        let (answer, unchanged) = self
            .judge_answer(
                Chain::Global { owner: Some(index) },
                Direction::ToClient,
                answer,
                &pending,
            )
            .await;
        let outbound = Outbound {
            // Tagged for the client's streams.
            related: Some(pending.original_id),
            head: head.filter(|_| unchanged),
            ..Outbound::new(answer)
        };
        self.send_client(outbound).await;
    }

    /// The client's id of the request that a message of backend `index` belongs to,
    /// given the backend-side id the transport reported.
    fn client_request_for(
        &self,
        index: usize,
        backend_side_id: Option<&RawValue>,
    ) -> Option<RawId> {
        let awaiting = &self.backends[index].side.awaiting;
        backend_side_id
            .and_then(|id| awaiting.get(id))
            .map(|pending| pending.original_id.clone())
    }

    /// For a notification naming a subscription in flight: the client's id of its
    /// `subscriptions/listen` request, and the params naming it by that id.
    fn subscription_for(
        &self,
        index: usize,
        params: Option<&RawValue>,
    ) -> Option<(RawId, Box<RawValue>)> {
        let params = params?;
        let backend_side_id = jsonrpc::ParamsMeta::subscription_id(Some(params))?;
        let listen = self.client_request_for(index, Some(&backend_side_id))?;
        let renamed =
            jsonrpc::replace_meta_member(params, jsonrpc::SUBSCRIPTION_ID, listen.clone())?;
        Some((listen, renamed))
    }

    fn forget_progress(&mut self, pending: &Pending) {
        if let Some(token) = &pending.progress_token {
            self.progress_routes.remove(token);
        }
    }

    // ---- verdicts ----

    /// Whether backend `index` has a plugin chain of its own.
    fn has_chain(&self, index: usize) -> bool {
        self.backends[index].chain.is_some()
    }

    /// The server the global chain is told a message belongs to: its owner's name,
    /// else (what concerns every server) the gateway's.
    fn global_server(&self, owner: Option<usize>) -> &str {
        match owner {
            Some(index) if !self.gateway.is_passthrough() => &self.backends[index].name,
            _ => &self.config.server,
        }
    }

    /// Asks a chain about one message; `answering` is, for an answer, the request it
    /// answers; `trace`, the span the chain's plugin calls are children of.
    async fn judge(
        &self,
        chain: Chain,
        asked: Asked<'_>,
        answering: Option<&Pending>,
        trace: Option<&SpanContext>,
    ) -> Verdict {
        let (interceptor, server, request_payload): (&dyn Interceptor, _, _) = match chain {
            Chain::Global { owner } => (
                &*self.config.interceptor,
                self.global_server(owner),
                answering.and_then(|p| p.params.as_ref()),
            ),
            Chain::Server(index) => {
                let backend = &self.backends[index];
                let Some(own) = &backend.chain else {
                    return Verdict::Pass;
                };
                (
                    &**own,
                    backend.name.as_str(),
                    answering.and_then(|p| p.own_params.as_ref().or(p.params.as_ref())),
                )
            }
        };
        let message = Intercepted {
            direction: asked.direction,
            kind: asked.kind,
            method: asked.method,
            id: asked.id,
            payload: asked.payload,
            error: asked.error,
            request_payload,
            elapsed: answering.map(|p| p.started.elapsed()),
            session: &self.config.session,
            shared_session: self.config.shares_session(),
            server,
            trace,
            // A sessionless client's own, else the session's.
            principal: asked.principal.or(self.config.principal.as_ref()),
        };
        let verdict = interceptor.intercept(message).await;
        interceptor.observe(&message, &verdict);
        verdict
    }

    /// Runs an answer (response or error) to `pending` through a chain and returns it
    /// with the id its receiver knows, and whether it passed unchanged.
    async fn judge_answer(
        &self,
        chain: Chain,
        direction: Direction,
        answer: Message,
        pending: &Pending,
    ) -> (Message, bool) {
        let id = pending.original_id.clone();
        let (kind, payload, error) = match &answer {
            Message::Response { result, .. } => (Kind::Response, Some(result), None),
            Message::Error { error, .. } => (Kind::Error, None, ErrorObject::from_raw(error)),
            _ => unreachable!("only answers are judged here"),
        };
        let asked = Asked {
            direction,
            kind,
            method: &pending.method,
            id: Some(&id),
            payload,
            error: error.as_ref(),
            principal: pending.principal.as_ref(),
        };
        let trace = pending.operation.as_ref().and_then(Operation::trace_parent);
        let verdict = self.judge(chain, asked, Some(pending), trace).await;
        let judged = match (verdict, answer) {
            (Verdict::Pass, Message::Response { result, .. }) => {
                (Message::Response { id, result }, true)
            }
            (Verdict::Pass, Message::Error { error, .. }) => (Message::Error { id, error }, true),
            // A rewritten answer is a result; on an error, this recovers from it.
            (Verdict::Rewrite(result) | Verdict::Respond(result), _) => {
                (Message::Response { id, result }, false)
            }
            (Verdict::Reject(error), _) => (Message::error_response(id, &error), false),
            (Verdict::Pass, _) => unreachable!("only answers are judged here"),
        };
        // Past the global chain towards the client: the client's operation is done.
        if let (Chain::Global { .. }, Direction::ToClient) = (chain, direction)
            && let Some(operation) = &pending.operation
        {
            operation.answered(&pending.method, &judged.0);
        }
        judged
    }

    // ---- sending and ending ----

    /// Sends to a peer: to a backend that is starting, once it is up. A request a
    /// backend can no longer take is answered with an error.
    async fn send(&mut self, to: Peer, outbound: Outbound) {
        let Peer::Backend(index) = to else {
            return self.send_client(outbound).await;
        };
        let backend = &mut self.backends[index];
        match backend.state {
            State::Starting { .. } => return backend.queued.push(outbound),
            // Not started: what it would hear now, it hears in its handshake.
            State::Idle => return,
            _ => {}
        }
        self.send_now(index, outbound).await;
    }

    /// Sends to backend `index` now, whatever its state.
    async fn send_now(&mut self, index: usize, outbound: Outbound) {
        let sent = match &self.backends[index].side.outbound {
            Some(tx) => tx.send(outbound).await.map_err(|e| e.0.message),
            None => Err(outbound.message),
        };
        if let Err(Message::Request { id, .. }) = sent
            && let Some(pending) = self.take_from_backend(index, &id)
        {
            let error = ErrorObject::new(
                BACKEND_UNAVAILABLE,
                format!(
                    "backend `{}` is not accepting messages",
                    self.backends[index].name
                ),
            );
            self.fail_backend_request(index, pending, error).await;
        }
    }

    /// Traces a request forwarded to backend `index` as a client span, a child of the
    /// client request it serves, and writes the span's context into its `_meta`.
    fn trace_upstream(
        &mut self,
        index: usize,
        forwarded_id: &RawValue,
        method: &str,
        params: &mut Option<Payload>,
        parent: Option<SpanContext>,
    ) {
        let (Some(tracer), Some(parent)) = (trace::tracer(), parent) else {
            return;
        };
        let backend = &mut self.backends[index];
        let span = ClientSpan::start(tracer, &parent, &backend.name, method, forwarded_id, params);
        if let Some(pending) = backend.side.awaiting.get_mut(forwarded_id) {
            pending.upstream = Some(span);
        }
    }

    /// Backend `index` answered `pending` with `answer`, or it failed without one.
    fn upstream_done(
        &self,
        index: usize,
        pending: &mut Pending,
        answer: Result<&Message, &ErrorObject>,
    ) {
        let error = match answer {
            Ok(answer) => ErrorType::of_answer(&pending.method, answer),
            Err(error) => Some(ErrorType::of_code(error.code)),
        };
        let label = &self.backends[index].label;
        let elapsed = pending.started.elapsed();
        metrics::metrics().upstream_done(label, &pending.method, elapsed, error);
        if let Some(span) = pending.upstream.take() {
            span.end(&pending.method, answer);
        }
    }

    /// A request forwarded to backend `index` will not be answered: the client's
    /// request fails with `error`, or, for one part of a fan-out, that part does.
    async fn fail_backend_request(
        &mut self,
        index: usize,
        mut pending: Pending,
        error: ErrorObject,
    ) {
        self.upstream_done(index, &mut pending, Err(&error));
        match pending.part_of {
            Some(fanout) => self.on_part(fanout, index, Err(error)).await,
            None => self.fail_request(pending, &error).await,
        }
    }

    async fn send_client(&self, outbound: Outbound) {
        let sent = match &self.client.outbound {
            Some(tx) => tx.send(outbound).await.is_ok(),
            None => false,
        };
        if !sent {
            tracing::debug!(session = %self.config.session, "the client is gone; message dropped");
        }
    }

    /// Answers a client request taken from a backend's table with `error`, instead of
    /// the backend's answer it will not get.
    async fn fail_request(&mut self, pending: Pending, error: &ErrorObject) {
        self.forget_progress(&pending);
        if let Some(operation) = &pending.operation {
            operation.failed(&pending.method, error);
        }
        let id = pending.original_id;
        let outbound = Outbound {
            related: Some(id.clone()),
            ..Outbound::new(Message::error_response(id, error))
        };
        self.send_client(outbound).await;
    }

    /// Backend `index` is gone: every request still waiting for it gets an error now.
    async fn fail_in_flight(&mut self, index: usize, why: &str) {
        let backend = &mut self.backends[index];
        let name = backend.name.clone();
        let awaiting = backend.side.awaiting.drain();
        tracing::error!(session = %self.config.session, server = %name, in_flight = awaiting.len(), "{why}");
        // One backend's errors speak of it as the client knows it; a gateway's name
        // the server.
        let gateway = !self.gateway.is_passthrough();
        let why = match gateway {
            false => why.to_owned(),
            true => format!("server `{name}`: {why}"),
        };
        for pending in awaiting {
            if let Some(key) = &pending.deadline {
                self.deadlines.try_remove(key);
            }
            let mut data = serde_json::json!({ "method": pending.method });
            if gateway {
                data["server"] = name.clone().into();
            }
            let error = ErrorObject::new(
                BACKEND_UNAVAILABLE,
                format!("{why} before answering `{}`", pending.method),
            )
            .with_data(data);
            self.fail_backend_request(index, pending, error).await;
        }
        self.gateway.forget(index);
    }

    /// The client left (or we are stopping): cancel what the client still waits for,
    /// close the backends' input and keep relaying what they still send until they
    /// close or the grace period ends.
    async fn let_backends_finish(&mut self, why: &str) {
        for backend in &mut self.backends {
            backend.cancel_in_flight(why, &self.config.session);
            backend.side.outbound = None;
        }
        let deadline = tokio::time::Instant::now() + self.config.shutdown_grace;
        while self.backend_inbound.iter().any(Option::is_some) {
            let next = recv_from_backends(&mut self.backend_inbound, &mut self.backend_turn, None);
            let (index, inbound) = match tokio::time::timeout_at(deadline, next).await {
                Ok(next) => next,
                Err(_) => {
                    tracing::debug!(
                        "the backends did not close within {:?}",
                        self.config.shutdown_grace
                    );
                    break;
                }
            };
            match inbound.map(Arrival::of) {
                Some(Ok((frame, arrival))) => {
                    self.on_frame(Peer::Backend(index), frame, arrival).await
                }
                Some(Err(_)) | None => self.backend_inbound[index] = None,
            }
        }
        for index in 0..self.backends.len() {
            if !self.backends[index].side.awaiting.is_empty() {
                self.fail_in_flight(index, "the proxy is shutting down")
                    .await;
            }
        }
    }

    /// Lets the client's writer flush what is queued, then closes it.
    async fn close_client(self) {
        let SessionRelay {
            client,
            client_writer,
            ..
        } = self;
        drop(client);
        if tokio::time::timeout(CLIENT_FLUSH_LIMIT, client_writer)
            .await
            .is_err()
        {
            tracing::warn!(
                "the client did not read the last messages within {CLIENT_FLUSH_LIMIT:?}"
            );
        }
    }
}

impl Backend {
    /// It answered its `initialize` in `protocol_version`: it is up.
    fn mark_up(&mut self, protocol_version: Option<&str>) {
        self.state = State::Up(Instant::now());
        self.protocol_version = protocol_version.map(str::to_owned);
    }

    /// Tells the backend that nobody waits for its requests in flight any more, so it
    /// can stop working on them. Best effort: a full queue towards the backend is not
    /// waited for, as the backend may itself be blocked writing to us.
    fn cancel_in_flight(&self, why: &str, session: &str) {
        let Some(tx) = &self.side.outbound else {
            return;
        };
        let reason = serde_json::to_string(why).expect("a string serializes");
        for id in self.side.awaiting.forwarded_ids() {
            let params = format!(r#"{{"requestId":{},"reason":{reason}}}"#, id.get());
            let cancel = Message::Notification {
                method: CANCELLED.into(),
                params: Some(jsonrpc::raw(params).into()),
            };
            if tx.try_send(Outbound::new(cancel)).is_err() {
                tracing::debug!(%session, "no room to cancel the backend's requests in flight");
                return;
            }
        }
    }
}

/// Waits until every `destination` has room for a message, then receives from
/// `source`. The room stays free when we send right after: the relay is the only
/// sender.
async fn recv_when_room<'a>(
    source: &mut mpsc::Receiver<Inbound>,
    destinations: impl Iterator<Item = &'a mpsc::Sender<Outbound>>,
) -> Option<Inbound> {
    // A closed destination is handled where the message is sent.
    for destination in destinations {
        drop(destination.reserve().await);
    }
    source.recv().await
}

/// The next thing any open backend sends, with which backend sent it, once
/// `destination` (the client) has room. Backends are polled in turn from `turn`, which
/// moves past the one that was read, so a busy one cannot starve the others; nothing
/// is allocated per message.
async fn recv_from_backends(
    backends: &mut [Option<mpsc::Receiver<Inbound>>],
    turn: &mut usize,
    destination: Option<&mpsc::Sender<Outbound>>,
) -> (usize, Option<Inbound>) {
    if let Some(destination) = destination {
        drop(destination.reserve().await);
    }
    let count = backends.len();
    std::future::poll_fn(|cx| {
        for offset in 0..count {
            let index = (*turn + offset) % count;
            let Some(inbound) = &mut backends[index] else {
                continue;
            };
            if let std::task::Poll::Ready(inbound) = inbound.poll_recv(cx) {
                *turn = (index + 1) % count;
                return std::task::Poll::Ready((index, inbound));
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// A request past a chain: its params as the chain passes them on, and whether it
/// changed them; or the answer the chain made instead (`Respond`, `Reject`) under `id`.
fn passed_on(
    verdict: Verdict,
    id: &RawId,
    params: Option<Payload>,
) -> Result<(Option<Payload>, bool), Message> {
    match verdict {
        Verdict::Pass => Ok((params, false)),
        Verdict::Rewrite(params) => Ok((Some(params), true)),
        Verdict::Respond(result) => Err(Message::Response {
            id: id.clone(),
            result,
        }),
        Verdict::Reject(error) => Err(Message::error_response(id.clone(), &error)),
    }
}

/// A backend's answer to its part of a fan-out, as the merge takes it.
fn part_of_answer(answer: Message) -> Result<Box<RawValue>, ErrorObject> {
    match answer {
        Message::Response { result, .. } => Ok(result.into_raw()),
        Message::Error { error, .. } => Err(ErrorObject::from_raw(&error)
            .unwrap_or_else(|| ErrorObject::new(INTERNAL_ERROR, "unreadable error"))),
        _ => unreachable!("only answers are parts"),
    }
}

/// The protocol version an `initialize` result settled on.
fn protocol_version(result: &RawValue) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Settled {
        #[serde(rename = "protocolVersion")]
        protocol_version: Option<String>,
    }
    serde_json::from_str::<Settled>(result.get())
        .ok()?
        .protocol_version
}

/// The params a notification goes on with, or `None` when the verdict drops it.
fn notification_params(
    verdict: Verdict,
    params: Option<Payload>,
    method: &str,
) -> Option<Option<Payload>> {
    match verdict {
        Verdict::Pass => Some(params),
        // A notification is never answered: `respond` carries new params, as the WIT
        // says, rather than being ignored.
        Verdict::Rewrite(params) | Verdict::Respond(params) => Some(Some(params)),
        Verdict::Reject(_) => {
            tracing::debug!(method, "notification dropped by a plugin");
            None
        }
    }
}

fn too_long_error(len: usize, limit: usize) -> ErrorObject {
    ErrorObject::new(
        INVALID_REQUEST,
        format!("message of {len} bytes exceeds the limit of {limit} bytes"),
    )
    .with_data(serde_json::json!({ "size": len, "limit": limit }))
}

mod backend_life;
#[cfg(test)]
mod tests;
