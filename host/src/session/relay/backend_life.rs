//! A backend's life within a session, as the relay lives it: it goes down (and a
//! restart is set, see [`crate::session::lifecycle`]), starts again or for the first
//! time (a lazy start) with the client's handshake replayed, joins late, or is given
//! up on; and while it cannot take requests, they are refused at once with why.

use std::sync::Arc;

use super::{EXIT_WAIT, INITIALIZE, INITIALIZED, LIST_CHANGED, SET_LEVEL, SessionRelay, State};
use crate::session::gateway::Merge;
use crate::telemetry::{Operation, metrics};
use crate::wire::handoff::Handoff;
use crate::wire::jsonrpc::{self, BACKEND_UNAVAILABLE, ErrorObject, Message, Payload, RawId};
use crate::wire::link::Outbound;

/// What a lifecycle timer is for.
#[derive(Debug, Clone, Copy)]
pub(super) enum Timer {
    /// The backend's `initialize` has had its start timeout.
    StartTimeout,
    /// Time to start the backend again.
    Restart,
}

impl SessionRelay {
    /// Backend `index` is down (its requests in flight already failed): its
    /// connection is closed and, if it may be (`may_restart`) and its policy says so,
    /// a restart is set for after its backoff delay. When no backend is left, or will
    /// come back, the session is over.
    pub(super) fn went_down(&mut self, index: usize, why: String, may_restart: bool) {
        let session = &self.config.session;
        let backend = &mut self.backends[index];
        backend.side.outbound = None;
        backend.queued.clear();
        backend.handshake = None;
        self.backend_inbound[index] = None;
        if let Some(guard) = backend.guard.take() {
            // Reaps the process (and what it left behind) without holding the relay.
            tokio::spawn(guard.shutdown(EXIT_WAIT));
        }
        backend.up = None;
        let up_since = match backend.state {
            State::Up(since) => Some(since),
            _ => None,
        };
        let restart = (may_restart && backend.lifecycle.restarts()).then(|| {
            let (attempt, delay) = backend.backoff.next(up_since);
            self.timers
                .insert((index, backend.generation, Timer::Restart), delay);
            tracing::warn!(%session, server = %backend.name, attempt, ?delay, "server down: {why}; restart {attempt} in {delay:?}");
            attempt
        });
        if restart.is_none() {
            tracing::warn!(%session, server = %backend.name, "server down: {why}");
        }
        backend.state = State::Down { why, restart };
        let any_left = self
            .backends
            .iter()
            .any(|b| !matches!(b.state, State::Down { restart: None, .. }));
        if !any_left {
            self.over = Some(match &self.backends[index].state {
                State::Down { why, .. } => why.clone(),
                _ => unreachable!("set above"),
            });
        }
    }

    /// Tells the client that its lists changed: a server's names left or joined them.
    pub(super) async fn announce_lists_changed(&self) {
        for method in LIST_CHANGED {
            let changed = Message::Notification {
                method: (*method).to_owned(),
                params: None,
            };
            self.send_client(Outbound::new(changed)).await;
        }
    }

    /// A lifecycle timer of backend `index` is due; one set for an earlier connection
    /// is ignored.
    pub(super) async fn on_timer(&mut self, index: usize, generation: u64, timer: Timer) {
        if self.backends[index].generation != generation {
            return;
        }
        match timer {
            Timer::Restart => {
                if let State::Down {
                    restart: Some(attempt),
                    ..
                } = self.backends[index].state
                {
                    let backend = &self.backends[index];
                    tracing::info!(session = %self.config.session, server = %backend.name, attempt, "restarting server `{}` (attempt {attempt})", backend.name);
                    metrics::metrics().backend_restarted(&backend.label);
                    self.start(index, false).await;
                }
            }
            Timer::StartTimeout => self.start_overdue(index).await,
        }
    }

    /// Connects backend `index` again (a restart, or a lazy start when `queue`:
    /// requests routed to it meanwhile wait for it) and replays the client's
    /// handshake to it.
    pub(super) async fn start(&mut self, index: usize, queue: bool) {
        let Some(connect) = self.backends[index].lifecycle.connect.clone() else {
            // Whatever waits for it must not wait forever.
            return self.went_down(index, "it cannot be started again".into(), false);
        };
        let (link, guard) = match connect() {
            Ok(connected) => connected,
            Err(e) => return self.went_down(index, format!("could not start: {e:#}"), true),
        };
        let backend = &mut self.backends[index];
        backend.generation += 1;
        backend.side.outbound = Some(link.outbound);
        backend.up = Some(metrics::metrics().backend_connected(&backend.label));
        backend.guard = Some(guard);
        self.backend_inbound[index] = Some(link.inbound);
        let Some(params) = self.client_initialize.clone() else {
            // No handshake to replay (the client has not made one, or its protocol has
            // none): it takes requests as they come.
            backend.state = State::Connected;
            return self.came_up(index, !queue).await;
        };
        let id = self.own_request_id();
        let backend = &mut self.backends[index];
        backend.handshake = Some(id.clone());
        backend.state = State::Starting {
            overdue: false,
            queue,
        };
        // What the client said after its handshake follows once it is up.
        if self.client_initialized {
            backend.queued.push(Outbound::new(Message::Notification {
                method: INITIALIZED.into(),
                params: None,
            }));
        }
        if let Some(level) = self.log_level.clone() {
            let request = Message::Request {
                id: self.own_request_id(),
                method: SET_LEVEL.into(),
                params: Some(level),
            };
            self.backends[index].queued.push(Outbound::new(request));
        }
        let backend = &mut self.backends[index];
        self.timers.insert(
            (index, backend.generation, Timer::StartTimeout),
            backend.lifecycle.start_timeout,
        );
        let initialize = Message::Request {
            id,
            method: INITIALIZE.into(),
            params: Some(params),
        };
        self.send_now(index, Outbound::new(initialize)).await;
    }

    /// An id for a request the relay itself sends a backend; never one a pending
    /// table gives out (those are numbers), so its answer is told apart.
    pub(super) fn own_request_id(&mut self) -> RawId {
        self.next_own_request += 1;
        jsonrpc::raw(format!(r#""interpose-{}""#, self.next_own_request))
    }

    /// Backend `index` has not answered its `initialize` within its start timeout: it
    /// still joins when it answers, but what waits for it fails now, and what is
    /// routed to it fails at once.
    pub(super) async fn start_overdue(&mut self, index: usize) {
        let backend = &mut self.backends[index];
        let State::Starting { overdue, queue, .. } = &mut backend.state else {
            return;
        };
        *overdue = true;
        *queue = false;
        tracing::warn!(session = %self.config.session, server = %backend.name, "server `{}` did not answer `initialize` within {:?}", backend.name, backend.lifecycle.start_timeout);
        let message = backend
            .state
            .unavailable(&backend.name, backend.lifecycle.start_timeout);
        let waiting: Vec<RawId> = backend
            .queued
            .iter()
            .filter_map(|out| match &out.message {
                Message::Request { id, .. } => Some(id.clone()),
                _ => None,
            })
            .collect();
        backend
            .queued
            .retain(|out| !matches!(out.message, Message::Request { .. }));
        for id in waiting {
            if let Some(pending) = self.take_from_backend(index, &id) {
                let error = self.unavailable_error(index, message.clone(), &pending.method);
                self.fail_backend_request(index, pending, error).await;
            }
        }
    }

    /// The error a request to backend `index` gets when it cannot go there.
    pub(super) fn unavailable_error(
        &self,
        index: usize,
        message: String,
        method: &str,
    ) -> ErrorObject {
        ErrorObject::new(BACKEND_UNAVAILABLE, message).with_data(serde_json::json!({
            "server": self.backends[index].name,
            "method": method,
        }))
    }

    /// Backend `index` answered the `initialize` that no request waits for (the
    /// relay's replay, or the client's that it answered late): it joins, unless it
    /// refused or settled on another protocol version than before.
    pub(super) async fn on_handshake_answer(&mut self, index: usize, answer: Message) {
        let backend = &mut self.backends[index];
        backend.handshake = None;
        let version = match &answer {
            Message::Response { result, .. } => {
                serde_json::from_str::<serde_json::Value>(result.get())
                    .ok()
                    .and_then(|r| r["protocolVersion"].as_str().map(str::to_owned))
            }
            _ => None,
        };
        let refused = match (&answer, &version, &backend.protocol_version) {
            (Message::Error { error, .. }, _, _) => Some(format!(
                "it refused `initialize`: {}",
                ErrorObject::from_raw(error)
                    .map(|e| e.message)
                    .unwrap_or_else(|| error.get().to_owned())
            )),
            (_, Some(now), Some(before)) if now != before => Some(format!(
                "it settled on protocol version {now}, not {before} as before"
            )),
            _ => None,
        };
        if let Some(why) = refused {
            let why = format!("given up: {why}");
            tracing::error!(session = %self.config.session, server = %backend.name, "server `{}` {why}", backend.name);
            self.fail_in_flight(index, &why).await;
            return self.went_down(index, why, false);
        }
        // A lazy start in time: the client has listed its names already.
        let lazy = matches!(backend.state, State::Starting { queue: true, .. });
        backend.mark_up(version.as_deref());
        let queued = std::mem::take(&mut backend.queued);
        for outbound in queued {
            self.send_now(index, outbound).await;
        }
        self.came_up(index, !lazy).await;
    }

    /// Backend `index` is up (again, late, or lazily): with `announce`, its names come
    /// back into the lists, and the client is told to list again.
    pub(super) async fn came_up(&mut self, index: usize, announce: bool) {
        let backend = &self.backends[index];
        tracing::info!(session = %self.config.session, server = %backend.name, "server `{}` is up", backend.name);
        if announce {
            self.announce_lists_changed().await;
        }
    }

    /// A backend's result as the client sees it ([`Gateway::expose_result`]). The
    /// answer to a client's `initialize` sent straight through (one backend) marks
    /// the backend up; with restarts on, its lists say they can change (they do, when
    /// it dies and comes back).
    pub(super) fn backend_result(
        &mut self,
        index: usize,
        method: &str,
        result: Payload,
    ) -> Payload {
        if method != INITIALIZE {
            return self.gateway.expose_result(index, method, result);
        }
        let Ok(mut value) = serde_json::from_str::<serde_json::Value>(result.get()) else {
            return result;
        };
        let backend = &mut self.backends[index];
        backend.mark_up(value["protocolVersion"].as_str());
        if !backend.lifecycle.restarts() {
            return result;
        }
        if let Some(capabilities) = value["capabilities"].as_object_mut() {
            crate::session::gateway::announce_list_changed(capabilities);
        }
        serde_json::value::to_raw_value(&value).map_or(result, Payload::from)
    }

    /// Records the client's handshake for another replica (`[replicas]`); a session
    /// another replica opened continues where it was: past the handshake, with the
    /// backends it had started up in the versions they settled on.
    pub fn attach_handoff(&mut self, handoff: Arc<Handoff>) {
        if handoff.is_resumed() {
            self.client_initialize = handoff.initialize().map(Payload::from);
            // A client sends `notifications/initialized` before anything else it sends.
            self.client_initialized = true;
            for backend in &mut self.backends {
                if let Some(version) = handoff.resumed_version(&backend.name) {
                    backend.mark_up(Some(&version));
                }
            }
        }
        self.handoff = Some(handoff);
    }

    /// What of the client's handshake a backend that starts later is told again.
    pub(super) fn remember_handshake(&mut self, method: &str, params: Option<&Payload>) {
        match method {
            INITIALIZE => {
                self.client_initialize = params.cloned();
                if let Some(handoff) = &self.handoff {
                    handoff.record_initialize(params.map(|p| &**p));
                }
            }
            SET_LEVEL => self.log_level = params.cloned(),
            _ => {}
        }
    }

    /// Answers the client's request `id` at once: backend `index` cannot take it now.
    pub(super) async fn refuse(
        &mut self,
        index: usize,
        id: RawId,
        method: &str,
        operation: Option<&Operation>,
    ) {
        let backend = &self.backends[index];
        let message = backend
            .state
            .unavailable(&backend.name, backend.lifecycle.start_timeout);
        let error = self.unavailable_error(index, message, method);
        if let Some(operation) = operation {
            operation.failed(method, &error);
        }
        let outbound = Outbound {
            related: Some(id.clone()),
            ..Outbound::new(Message::error_response(id, &error))
        };
        self.send_client(outbound).await;
    }

    /// For a lazy server not started yet: its part of a fan-out as its catalog has
    /// it. `None`: it must start to answer (it is then started).
    pub(super) fn catalog_answer(
        &self,
        backend: usize,
        merge: Merge,
        first_page: bool,
    ) -> Option<serde_json::Value> {
        let backend = &self.backends[backend];
        if !matches!(backend.state, State::Idle) {
            return None;
        }
        let catalog = backend.lifecycle.catalog.as_ref()?;
        match merge {
            Merge::Initialize => catalog.initialize(),
            Merge::List(kind) if first_page => catalog.first_page(kind),
            // The level is replayed when it starts.
            Merge::Empty => Some(serde_json::json!({})),
            // A listen streams from the server itself: it starts.
            Merge::List(_) | Merge::Discover | Merge::Listen => None,
        }
    }
}
