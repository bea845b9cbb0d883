//! The live downstream sessions: creating them (each with its own relay and backend
//! session), finding them by id, and ending them (DELETE, idle expiry, shutdown, or the
//! backend going away).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::sync::{Notify, Semaphore, mpsc};

use super::ServerState;
use super::session::{Session, SessionKind};
use crate::telemetry::metrics::Transport;
use crate::wire::handoff::{Handoff, HandoffState};
use crate::wire::link::{ConnectContext, Link};

/// Messages the relay may queue for a session's streams: few, so that when the session
/// waits for a slow reader the relay soon waits too, instead of queueing answers.
const TO_CLIENT_QUEUE: usize = 16;
/// Sealed ids of ended sessions remembered; past this the memory starts again (a
/// forgotten one, reopened, meets the backend's own 404 and ends at once).
const ENDED_SEALED_KEPT: usize = 4096;

/// Why a session could not be created.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the proxy already serves {0} sessions; try again later")]
    Full(usize),
    #[error("could not open a session with the backend: {0:#}")]
    Backend(anyhow::Error),
}

/// Whether the client ended `session` (DELETE), so that its sealed id must not
/// continue it again.
fn ended_by_client(session: &Session) -> bool {
    session
        .handoff
        .as_ref()
        .is_some_and(|h| h.is_ended_by_client())
}

pub struct SessionTable {
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    /// Sealed ids of sessions that ended for good here (DELETE, or the backend ended
    /// them), so that they are not continued again from their id alone.
    ended_sealed: Mutex<HashSet<String>>,
    /// Held while a session from another replica is continued, so that concurrent
    /// requests naming it continue it once.
    resuming: Mutex<()>,
    /// One permit per session (stateless aside), taken before its backend starts and
    /// given back once the backend has been reaped, so the cap bounds live backends.
    slots: Arc<Semaphore>,
    max_sessions: usize,
    /// The one session shared by clients that send no session id (2026-07-28).
    stateless: Mutex<Option<Arc<Session>>>,
    next_label: AtomicU64,
    running: AtomicUsize,
    stopped: Notify,
}

/// 128 bits from the operating system's CSPRNG (via the thread's ChaCha generator),
/// as hex: unguessable, and only visible ASCII as the spec asks.
pub fn new_session_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl SessionTable {
    pub fn new(max_sessions: usize) -> Self {
        SessionTable {
            sessions: Mutex::default(),
            resuming: Mutex::default(),
            ended_sealed: Mutex::default(),
            slots: Arc::new(Semaphore::new(max_sessions)),
            max_sessions,
            stateless: Mutex::default(),
            next_label: AtomicU64::default(),
            running: AtomicUsize::default(),
            stopped: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A live session of `kind` with this id.
    pub fn get(&self, id: &str, kind: SessionKind) -> Option<Arc<Session>> {
        self.lock()
            .get(id)
            .filter(|s| s.kind == kind && !s.is_ended())
            .cloned()
    }

    /// Ends a session and forgets it at once, so its id answers 404 from now on.
    pub fn end(&self, id: &str, why: &str) -> bool {
        let removed = {
            let mut sessions = self.lock();
            // A session the client ended is refused by its sealed id from before it
            // leaves the table, not only once its backend has been reaped (see `open`):
            // a request in between would otherwise continue it again from that id.
            // (`ended_sealed` is never held while `sessions` is taken.)
            if let Some(session) = sessions.get(id)
                && ended_by_client(session)
                && let Some(sealed) = session.sealed_id()
            {
                self.remember_ended(sealed);
            }
            sessions.remove(id)
        };
        match removed {
            Some(session) => {
                self.forget(&session);
                session.end(why);
                true
            }
            None => false,
        }
    }

    /// Creates a session with its own backend session and relay. With `[replicas]`,
    /// a Streamable HTTP session whose backends can all be reached from any replica
    /// records its handoff (its id is sealed once the handshake is answered, see
    /// [`SessionTable::seal`]); any other gets an id that names this replica.
    pub fn start(
        &self,
        state: &Arc<ServerState>,
        kind: SessionKind,
        context: &ConnectContext,
    ) -> Result<Arc<Session>, StartError> {
        let mut context = context.clone();
        let mut id = new_session_id();
        if let Some(replicas) = &state.config.replicas
            && kind != SessionKind::Stateless
        {
            if kind == SessionKind::Streamable && state.backend.sessions_can_move() {
                context.handoff = Some(Handoff::new());
            } else {
                id = replicas.sticky_id(&id);
            }
        }
        self.open(state, kind, id, None, &context)
    }

    /// Continues, under `id`, a session another replica opened (its handoff state
    /// came sealed in `id`, `sealed_ago`), or returns the one a concurrent request
    /// continued first.
    pub fn resume(
        &self,
        state: &Arc<ServerState>,
        id: &str,
        handoff: HandoffState,
        sealed_ago: Duration,
        context: &ConnectContext,
    ) -> Result<Arc<Session>, StartError> {
        let _one_at_a_time = self.resuming.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(session) = self.get(id, SessionKind::Streamable) {
            return Ok(session);
        }
        let context = ConnectContext {
            handoff: Some(Handoff::resume(handoff)),
            ..context.clone()
        };
        let session = self.open(
            state,
            SessionKind::Streamable,
            new_session_id(),
            Some(id.to_owned()),
            &context,
        )?;
        tracing::info!(session = %session.label, "session continued from another replica (its id was sealed {}s ago)", sealed_ago.as_secs());
        Ok(session)
    }

    /// Gives a session that can move its sealed id, once its handshake is answered:
    /// from then on, it is found by that id too.
    pub fn seal(&self, state: &ServerState, session: &Arc<Session>) {
        let (Some(replicas), Some(handoff)) = (&state.config.replicas, &session.handoff) else {
            return;
        };
        let sealed = replicas.seal(session.principal.as_deref(), handoff.snapshot());
        session.set_sealed_id(sealed.clone());
        self.lock().insert(sealed, session.clone());
    }

    fn open(
        &self,
        state: &Arc<ServerState>,
        kind: SessionKind,
        id: String,
        sealed_id: Option<String>,
        context: &ConnectContext,
    ) -> Result<Arc<Session>, StartError> {
        let slot = match kind {
            SessionKind::Stateless => None,
            _ => Some(
                self.slots
                    .clone()
                    .try_acquire_owned()
                    .map_err(|_| StartError::Full(self.max_sessions))?,
            ),
        };
        let n = self.next_label.fetch_add(1, Ordering::Relaxed) + 1;
        let label = match kind {
            SessionKind::Stateless => format!("http-stateless-{n}"),
            SessionKind::Streamable if sealed_id.is_some() => format!("http-continued-{n}"),
            SessionKind::Streamable => format!("http-{n}"),
            SessionKind::LegacySse => format!("sse-{n}"),
        };
        let (session, from_client) = Session::new(
            id,
            label.clone(),
            kind,
            state.readers.clone(),
            context.principal.clone(),
            context.handoff.clone(),
        );
        if let Some(sealed) = sealed_id {
            session.set_sealed_id(sealed);
        }
        let (to_client, from_relay) = mpsc::channel(TO_CLIENT_QUEUE);
        let dispatcher = tokio::spawn(session.clone().dispatch(from_relay));
        let client = Link {
            inbound: from_client,
            outbound: to_client,
            writer: dispatcher,
        };
        let transport = match kind {
            SessionKind::Stateless => Transport::Sessionless,
            SessionKind::Streamable => Transport::StreamableHttp,
            SessionKind::LegacySse => Transport::Sse,
        };
        let running = state
            .backend
            .open(client, &label, transport, context)
            .map_err(StartError::Backend)?;
        if kind != SessionKind::Stateless {
            let mut sessions = self.lock();
            sessions.insert(session.id.clone(), session.clone());
            if let Some(sealed) = session.sealed_id() {
                sessions.insert(sealed.to_owned(), session.clone());
            }
        }
        self.running.fetch_add(1, Ordering::AcqRel);
        match &context.principal {
            Some(who) => {
                tracing::info!(session = %session.label, subject = %who.subject, "session opened")
            }
            None => tracing::info!(session = %session.label, "session opened"),
        }
        let open = crate::telemetry::metrics().session_opened(transport);
        let state = state.clone();
        let ended = session.clone();
        tokio::spawn(async move {
            let backend_ended = running.await;
            drop(open);
            // The backend is reaped (or beyond reach of signals): its slot is free.
            drop(slot);
            let table = &state.sessions;
            table.forget(&ended);
            // A sealed id would open again on this replica: once the client or the
            // backend has ended its session, it is refused here instead (404).
            let for_good = backend_ended.is_some() || ended_by_client(&ended);
            if let (true, Some(sealed)) = (for_good, ended.sealed_id()) {
                table.remember_ended(sealed);
            }
            match backend_ended {
                Some(why) => tracing::warn!(session = %ended.label, "session ended: {why}"),
                None => tracing::info!(session = %ended.label, "session closed"),
            }
            if table.running.fetch_sub(1, Ordering::AcqRel) == 1 {
                table.stopped.notify_waiters();
            }
        });
        Ok(session)
    }

    fn remember_ended(&self, sealed_id: &str) {
        let mut ended = self.ended_sealed.lock().unwrap_or_else(|e| e.into_inner());
        if ended.len() >= ENDED_SEALED_KEPT {
            ended.clear();
        }
        ended.insert(sealed_id.to_owned());
    }

    /// Whether a sealed id names a session that ended for good on this replica.
    pub fn has_ended(&self, sealed_id: &str) -> bool {
        self.ended_sealed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(sealed_id)
    }

    fn forget(&self, session: &Arc<Session>) {
        let mut sessions = self.lock();
        for id in [Some(session.id.as_str()), session.sealed_id()]
            .into_iter()
            .flatten()
        {
            if sessions.get(id).is_some_and(|s| Arc::ptr_eq(s, session)) {
                sessions.remove(id);
            }
        }
        drop(sessions);
        let mut stateless = self.stateless.lock().unwrap_or_else(|e| e.into_inner());
        if stateless.as_ref().is_some_and(|s| Arc::ptr_eq(s, session)) {
            *stateless = None;
        }
    }

    /// The shared session for requests without a session id, opened on first use.
    pub fn stateless(&self, state: &Arc<ServerState>) -> Result<Arc<Session>, StartError> {
        // Held while starting, so concurrent first requests share one backend session.
        let mut slot = self.stateless.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(session) = slot.as_ref().filter(|s| !s.is_ended()) {
            return Ok(session.clone());
        }
        let session = self.start(state, SessionKind::Stateless, &ConnectContext::default())?;
        *slot = Some(session.clone());
        Ok(session)
    }

    /// Ends sessions nobody has used for `limit`.
    pub fn expire_idle(&self, limit: Duration) {
        let idle: Vec<String> = self
            .lock()
            .values()
            .filter(|s| s.idle_for() > limit)
            .map(|s| s.id.clone())
            .collect();
        for id in idle {
            self.end(&id, "session expired after being idle");
        }
        let stateless = self
            .stateless
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(session) = stateless
            && session.idle_for() > limit
        {
            session.end("the stateless session expired after being idle");
        }
    }

    /// Ends every session and waits (up to `limit`) for their backends to stop.
    pub async fn end_all(&self, why: &str, limit: Duration) {
        let all: Vec<Arc<Session>> = self.lock().drain().map(|(_, s)| s).collect();
        for session in all {
            session.end(why);
        }
        if let Some(session) = self
            .stateless
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            session.end(why);
        }
        let all_stopped = async {
            loop {
                let notified = self.stopped.notified();
                if self.running.load(Ordering::Acquire) == 0 {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(limit, all_stopped).await.is_err() {
            tracing::warn!("some sessions did not stop within {limit:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_128_bit_hex_and_differ() {
        let a = new_session_id();
        let b = new_session_id();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a[..8], b[..8]);
    }
}
