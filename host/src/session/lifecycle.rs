//! A backend's life within one session: how it is started (now, or lazily on first
//! use), how long its `initialize` may take before the client is answered without it,
//! and whether it is started again after it dies (with exponential backoff). The relay
//! keeps one [`State`] per backend and asks it whether a request may go there and, if
//! not, what to tell the client.
//!
//! Documented in `docs/config.md` ("Servers": `start_timeout_ms`, `restart`, `lazy`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::lists::ListKind;
use crate::upstream::UpstreamGuard;
use crate::wire::link::Link;

/// How long a server's `initialize` may take before the client is answered without it.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(10);

/// The first restart waits this long; each one after waits twice the one before...
const FIRST_RESTART_DELAY: Duration = Duration::from_millis(500);
/// ...up to this.
const MAX_RESTART_DELAY: Duration = Duration::from_secs(30);
/// A server that stayed up this long before dying starts again from the first delay.
const STABLE_AFTER: Duration = Duration::from_secs(60);

/// Whether a server that died is started again within the session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RestartPolicy {
    /// It stays down; its names stay out of the lists.
    #[default]
    Never,
    /// It is started again after a delay that doubles with each attempt.
    OnFailure,
}

impl RestartPolicy {
    /// Reads the value of a `restart` key or flag.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "never" => Some(RestartPolicy::Never),
            "on-failure" => Some(RestartPolicy::OnFailure),
            _ => None,
        }
    }
}

/// Opens a new session with a backend (starts its process, for a command).
pub type Connector = Arc<dyn Fn() -> anyhow::Result<(Link, UpstreamGuard)> + Send + Sync>;

/// How the relay starts and restarts one backend.
#[derive(Clone)]
pub struct Lifecycle {
    pub start_timeout: Duration,
    pub restart: RestartPolicy,
    /// How to connect again (a restart, a lazy start); `None`: it cannot be, so it
    /// is never restarted.
    pub connect: Option<Connector>,
    /// For a server started lazily: what its live instances answered, shared by
    /// every session, to answer for it while it is not started.
    pub catalog: Option<Arc<Catalog>>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            start_timeout: DEFAULT_START_TIMEOUT,
            restart: RestartPolicy::Never,
            connect: None,
            catalog: None,
        }
    }
}

/// What any live instance of one server last answered to `initialize` and to the
/// first page of each list: a session that has not started the server (a lazy start)
/// answers from it. Shared by all sessions.
#[derive(Debug, Default)]
pub struct Catalog {
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    initialize: Option<Value>,
    /// First pages, by list.
    lists: Vec<(ListKind, Value)>,
}

impl Catalog {
    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        // What is kept is replaced whole: a panic elsewhere cannot leave it torn.
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a session can do without starting the server: its `initialize`
    /// result is known.
    pub fn is_filled(&self) -> bool {
        self.seen().initialize.is_some()
    }

    pub fn initialize(&self) -> Option<Value> {
        self.seen().initialize.clone()
    }

    pub fn first_page(&self, kind: ListKind) -> Option<Value> {
        let seen = self.seen();
        seen.lists
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, v)| v.clone())
    }

    pub fn record_initialize(&self, result: &Value) {
        self.seen().initialize = Some(result.clone());
    }

    pub fn record_first_page(&self, kind: ListKind, result: &Value) {
        let mut seen = self.seen();
        seen.lists.retain(|(k, _)| *k != kind);
        seen.lists.push((kind, result.clone()));
    }
}

impl Lifecycle {
    /// Whether a backend that died is started again.
    pub fn restarts(&self) -> bool {
        self.restart == RestartPolicy::OnFailure && self.connect.is_some()
    }
}

/// Where a backend is within its session.
#[derive(Debug)]
pub enum State {
    /// Connected, no handshake seen yet: requests go to it as they come (the client's
    /// `initialize`, or a 2026-07-28 client's requests, which have no handshake).
    Connected,
    /// Not started: it starts on the first request routed to it (lazy start).
    Idle,
    /// Its `initialize` is out and not answered. `overdue` once it has taken longer than
    /// its start timeout (it still joins when it answers); `queue`: requests routed to
    /// it wait for it (a lazy start), instead of failing at once.
    Starting { overdue: bool, queue: bool },
    /// Up since then.
    Up(Instant),
    /// Gone: why, and the attempt of the restart waiting for its time, if one is.
    Down { why: String, restart: Option<u32> },
}

impl State {
    /// Whether requests may be routed to it (they may wait there, in a lazy start).
    pub fn takes_requests(&self) -> bool {
        match self {
            State::Connected | State::Idle | State::Up(_) => true,
            State::Starting { queue, .. } => *queue,
            State::Down { .. } => false,
        }
    }

    /// Why a request cannot go to server `name` now, as the client is told.
    pub fn unavailable(&self, name: &str, start_timeout: Duration) -> String {
        match self {
            State::Starting { overdue: false, .. } => format!("server `{name}` is starting"),
            State::Starting { overdue: true, .. } => {
                format!("server `{name}` did not start within {start_timeout:?}")
            }
            State::Down {
                why,
                restart: Some(attempt),
            } => format!("server `{name}` is not available: {why}; restart {attempt} is pending"),
            State::Down { why, restart: None } => {
                format!("server `{name}` is not available: {why}")
            }
            State::Connected | State::Idle | State::Up(_) => {
                format!("server `{name}` is available")
            }
        }
    }
}

/// The restart attempts of one backend: their count and the delay before each.
#[derive(Debug, Default)]
pub struct Backoff {
    attempts: u32,
}

impl Backoff {
    /// The server died after being up since `up_since` (if it got up at all): the next
    /// attempt's number and how long to wait before it.
    pub fn next(&mut self, up_since: Option<Instant>) -> (u32, Duration) {
        if up_since.is_some_and(|since| since.elapsed() >= STABLE_AFTER) {
            self.attempts = 0;
        }
        self.attempts = self.attempts.saturating_add(1);
        (self.attempts, restart_delay(self.attempts))
    }
}

/// The wait before restart `attempt` (from 1): 0.5 s, 1 s, 2 s, ... at most 30 s.
pub fn restart_delay(attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(16);
    FIRST_RESTART_DELAY
        .saturating_mul(1 << doublings)
        .min(MAX_RESTART_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_delays_double_from_half_a_second_up_to_thirty() {
        let delays: Vec<f64> = (1..=9).map(|a| restart_delay(a).as_secs_f64()).collect();
        assert_eq!(delays, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]);
        assert_eq!(restart_delay(u32::MAX), MAX_RESTART_DELAY);
    }

    #[test]
    fn backoff_starts_over_after_a_server_stayed_up() {
        let mut backoff = Backoff::default();
        assert_eq!(backoff.next(None).0, 1);
        assert_eq!(backoff.next(Some(Instant::now())).0, 2);
        let long_ago = Instant::now().checked_sub(STABLE_AFTER);
        if let Some(long_ago) = long_ago {
            assert_eq!(backoff.next(Some(long_ago)), (1, FIRST_RESTART_DELAY));
        }
    }

    #[test]
    fn restart_policy_reads_its_two_values() {
        assert_eq!(
            RestartPolicy::parse("on-failure"),
            Some(RestartPolicy::OnFailure)
        );
        assert_eq!(RestartPolicy::parse("never"), Some(RestartPolicy::Never));
        assert_eq!(RestartPolicy::parse("always"), None);
    }
}
