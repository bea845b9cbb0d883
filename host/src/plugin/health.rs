//! The breaker of one plugin version, one per session: a session whose messages keep
//! making the plugin fail stops entering it for a cooldown, then one of its messages
//! is tried again (half-open); a success closes the breaker, a failure opens it again.
//!
//! Scoped by session so that one client cannot switch a plugin off for the others;
//! timed so that it re-arms by itself. A reloaded version starts afresh. Messages the
//! plugin is not called for (too large, or refused by an open breaker) never count:
//! only calls that failed do.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Failures in a row, in one session, that open its breaker.
pub const MAX_CONSECUTIVE_FAILURES: u32 = 5;
/// Failures within [`FAILURE_WINDOW`], in one session, that open its breaker,
/// successes between them or not.
pub const MAX_FAILURES_IN_WINDOW: usize = 20;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Sessions whose failures are remembered at once. Beyond it, entries that have
/// nothing left to remember are dropped; if none has, a new session's failures are
/// not counted (its messages still get the failure policy one by one), so that
/// memory stays bounded however many sessions fail.
const MAX_TRACKED_SESSIONS: usize = 4096;

/// Whether a message may enter the plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The breaker is closed.
    Call,
    /// The cooldown is over: this call is the one that decides.
    Trial,
    /// The breaker is open (or another message is the trial): do not call.
    Refused,
}

/// A change of a session's breaker worth a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// Closed to open, with the reason.
    Opened(String),
    /// The trial failed: open for another cooldown.
    Reopened,
    /// The trial succeeded.
    Closed,
}

#[derive(Debug)]
pub struct Breaker {
    cooldown: Duration,
    /// Entries in `sessions`: zero in steady state, so calls skip the lock.
    tracked: AtomicUsize,
    sessions: Mutex<Sessions>,
}

#[derive(Debug)]
struct Sessions {
    by_name: HashMap<Box<str>, SessionHealth>,
    /// When entries were last swept: those of sessions that ended with a failure or
    /// two are dropped within a window, so that calls go back to skipping the lock.
    swept: Instant,
}

impl Sessions {
    fn sweep(&mut self, now: Instant) {
        self.by_name.retain(|_, health| !health.forgettable(now));
        self.swept = now;
    }
}

#[derive(Debug, Default)]
struct SessionHealth {
    consecutive: u32,
    /// Times of recent failures.
    recent: VecDeque<Instant>,
    state: State,
}

#[derive(Debug, Default, Clone, Copy)]
enum State {
    #[default]
    Closed,
    Open {
        until: Instant,
    },
    /// One call is trying the plugin again since `started`. A trial older than the
    /// cooldown was abandoned (its message was cancelled): the next one may try.
    Trial {
        started: Instant,
    },
}

impl SessionHealth {
    /// Forgets failures older than the window.
    fn prune(&mut self, now: Instant) {
        while self
            .recent
            .front()
            .is_some_and(|&t| now.duration_since(t) > FAILURE_WINDOW)
        {
            self.recent.pop_front();
        }
    }

    /// Whether the entry holds nothing worth keeping: closed, and no failure within
    /// the window (a run of failures that old is over too).
    fn forgettable(&mut self, now: Instant) -> bool {
        self.prune(now);
        matches!(self.state, State::Closed) && self.recent.is_empty()
    }
}

impl Breaker {
    pub fn new(cooldown: Duration) -> Self {
        Breaker {
            cooldown,
            tracked: AtomicUsize::new(0),
            sessions: Mutex::new(Sessions {
                by_name: HashMap::new(),
                swept: Instant::now(),
            }),
        }
    }

    pub fn cooldown(&self) -> Duration {
        self.cooldown
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a message of `session` may enter the plugin now.
    #[inline]
    pub fn admit(&self, session: &str) -> Admission {
        if self.tracked.load(Ordering::Relaxed) == 0 {
            return Admission::Call;
        }
        self.admit_tracked(session, Instant::now())
    }

    fn admit_tracked(&self, session: &str, now: Instant) -> Admission {
        let mut sessions = self.lock();
        if now.duration_since(sessions.swept) > FAILURE_WINDOW {
            sessions.sweep(now);
            self.tracked
                .store(sessions.by_name.len(), Ordering::Relaxed);
        }
        let Some(health) = sessions.by_name.get_mut(session) else {
            return Admission::Call;
        };
        match health.state {
            State::Closed => Admission::Call,
            State::Open { until } if now < until => Admission::Refused,
            State::Trial { started } if now.duration_since(started) < self.cooldown => {
                Admission::Refused
            }
            State::Open { .. } | State::Trial { .. } => {
                health.state = State::Trial { started: now };
                Admission::Trial
            }
        }
    }

    /// Counts a call that worked.
    #[inline]
    pub fn success(&self, session: &str) -> Option<Transition> {
        if self.tracked.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let now = Instant::now();
        let mut sessions = self.lock();
        let health = sessions.by_name.get_mut(session)?;
        health.consecutive = 0;
        let closed = matches!(health.state, State::Trial { .. });
        if closed {
            health.state = State::Closed;
            health.recent.clear();
        }
        if health.forgettable(now) {
            sessions.by_name.remove(session);
            self.tracked
                .store(sessions.by_name.len(), Ordering::Relaxed);
        }
        closed.then_some(Transition::Closed)
    }

    /// Counts a failed call; returns the change it made to the session's breaker.
    pub fn failure(&self, session: &str) -> Option<Transition> {
        self.failure_at(session, Instant::now())
    }

    fn failure_at(&self, session: &str, now: Instant) -> Option<Transition> {
        let mut sessions = self.lock();
        if !sessions.by_name.contains_key(session) {
            if sessions.by_name.len() >= MAX_TRACKED_SESSIONS {
                sessions.sweep(now);
                if sessions.by_name.len() >= MAX_TRACKED_SESSIONS {
                    return None;
                }
            }
            sessions
                .by_name
                .insert(session.into(), SessionHealth::default());
            self.tracked
                .store(sessions.by_name.len(), Ordering::Relaxed);
        }
        let health = sessions.by_name.get_mut(session)?;
        health.consecutive += 1;
        health.recent.push_back(now);
        health.prune(now);
        let open = State::Open {
            until: now + self.cooldown,
        };
        match health.state {
            State::Trial { .. } => {
                health.state = open;
                Some(Transition::Reopened)
            }
            // A call admitted before the breaker opened, finishing after.
            State::Open { .. } => None,
            State::Closed => {
                let reason = if health.consecutive >= MAX_CONSECUTIVE_FAILURES {
                    format!("{} failures in a row", health.consecutive)
                } else if health.recent.len() >= MAX_FAILURES_IN_WINDOW {
                    format!(
                        "{} failures within {} s",
                        health.recent.len(),
                        FAILURE_WINDOW.as_secs()
                    )
                } else {
                    return None;
                };
                health.state = open;
                Some(Transition::Opened(reason))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOLDOWN: Duration = Duration::from_secs(30);

    #[test]
    fn opens_after_failures_in_a_row_in_that_session_only() {
        let breaker = Breaker::new(COOLDOWN);
        for _ in 1..MAX_CONSECUTIVE_FAILURES {
            assert_eq!(breaker.failure("a"), None);
        }
        assert_eq!(
            breaker.failure("a"),
            Some(Transition::Opened("5 failures in a row".into()))
        );
        assert_eq!(breaker.admit("a"), Admission::Refused);
        assert_eq!(breaker.admit("b"), Admission::Call, "another session");
        assert_eq!(breaker.failure("a"), None, "reported once");
    }

    #[test]
    fn success_resets_the_run_but_not_the_window() {
        let breaker = Breaker::new(COOLDOWN);
        for _ in 0..MAX_FAILURES_IN_WINDOW - 1 {
            assert_eq!(breaker.failure("a"), None);
            assert_eq!(breaker.success("a"), None);
        }
        assert_eq!(
            breaker.failure("a"),
            Some(Transition::Opened("20 failures within 60 s".into()))
        );
    }

    #[test]
    fn after_the_cooldown_one_trial_decides() {
        let breaker = Breaker::new(COOLDOWN);
        let start = Instant::now();
        for _ in 0..MAX_CONSECUTIVE_FAILURES {
            breaker.failure_at("a", start);
        }
        let later = start + COOLDOWN + Duration::from_millis(1);
        assert_eq!(breaker.admit_tracked("a", start), Admission::Refused);
        assert_eq!(breaker.admit_tracked("a", later), Admission::Trial);
        assert_eq!(
            breaker.admit_tracked("a", later),
            Admission::Refused,
            "one trial at a time"
        );
        // The trial fails: open for another cooldown.
        assert_eq!(breaker.failure_at("a", later), Some(Transition::Reopened));
        assert_eq!(
            breaker.admit_tracked("a", later + Duration::from_secs(1)),
            Admission::Refused
        );
        let again = later + COOLDOWN + Duration::from_millis(1);
        assert_eq!(breaker.admit_tracked("a", again), Admission::Trial);
        assert_eq!(breaker.success("a"), Some(Transition::Closed));
        assert_eq!(breaker.admit("a"), Admission::Call);
        assert_eq!(breaker.tracked.load(Ordering::Relaxed), 0, "forgotten");
    }

    #[test]
    fn an_abandoned_trial_lets_another_message_try() {
        let breaker = Breaker::new(COOLDOWN);
        let start = Instant::now();
        for _ in 0..MAX_CONSECUTIVE_FAILURES {
            breaker.failure_at("a", start);
        }
        let trial = start + COOLDOWN;
        assert_eq!(breaker.admit_tracked("a", trial), Admission::Trial);
        // Its message was cancelled: no success or failure is ever counted.
        assert_eq!(
            breaker.admit_tracked("a", trial + COOLDOWN),
            Admission::Trial
        );
    }

    #[test]
    fn memory_stays_bounded_however_many_sessions_fail() {
        let breaker = Breaker::new(COOLDOWN);
        for n in 0..MAX_TRACKED_SESSIONS + 10 {
            breaker.failure(&format!("s-{n}"));
        }
        assert_eq!(breaker.lock().by_name.len(), MAX_TRACKED_SESSIONS);
        assert_eq!(breaker.admit("s-new"), Admission::Call);
    }

    #[test]
    fn sessions_with_old_failures_are_forgotten() {
        let breaker = Breaker::new(COOLDOWN);
        let start = Instant::now();
        breaker.failure_at("ended", start);
        assert_eq!(breaker.tracked.load(Ordering::Relaxed), 1);
        let later = start + FAILURE_WINDOW + Duration::from_secs(1);
        assert_eq!(breaker.admit_tracked("other", later), Admission::Call);
        assert_eq!(breaker.tracked.load(Ordering::Relaxed), 0, "swept");
    }
}
