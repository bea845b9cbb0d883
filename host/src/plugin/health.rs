//! Failure counting for one plugin version: a plugin that keeps failing is disabled
//! (loudly) rather than entered again and again. A reloaded version starts afresh.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Failures in a row that disable a plugin.
pub const MAX_CONSECUTIVE_FAILURES: u32 = 5;
/// Failures within [`FAILURE_WINDOW`] that disable a plugin, successes between them
/// or not.
pub const MAX_FAILURES_IN_WINDOW: usize = 20;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub struct Health {
    consecutive: AtomicU32,
    /// Times of recent failures; touched only when a call fails.
    recent: Mutex<VecDeque<Instant>>,
    disabled: AtomicBool,
}

impl Health {
    #[inline]
    pub fn is_disabled(&self) -> bool {
        self.disabled.load(Ordering::Relaxed)
    }

    #[inline]
    pub fn success(&self) {
        // Read first: a write on every call would bounce the cache line between cores.
        if self.consecutive.load(Ordering::Relaxed) != 0 {
            self.consecutive.store(0, Ordering::Relaxed);
        }
    }

    /// Counts a failure; returns the reason when this one disabled the plugin.
    pub fn failure(&self) -> Option<String> {
        let in_a_row = self.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
        let now = Instant::now();
        let in_window = {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            recent.push_back(now);
            while recent
                .front()
                .is_some_and(|&t| now.duration_since(t) > FAILURE_WINDOW)
            {
                recent.pop_front();
            }
            recent.len()
        };
        let reason = if in_a_row >= MAX_CONSECUTIVE_FAILURES {
            format!("{in_a_row} failures in a row")
        } else if in_window >= MAX_FAILURES_IN_WINDOW {
            format!("{in_window} failures within {} s", FAILURE_WINDOW.as_secs())
        } else {
            return None;
        };
        (!self.disabled.swap(true, Ordering::Relaxed)).then_some(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_after_failures_in_a_row() {
        let health = Health::default();
        for _ in 1..MAX_CONSECUTIVE_FAILURES {
            assert_eq!(health.failure(), None);
        }
        assert_eq!(health.failure().as_deref(), Some("5 failures in a row"));
        assert!(health.is_disabled());
        assert_eq!(health.failure(), None, "reported once");
    }

    #[test]
    fn success_resets_the_run_but_not_the_window() {
        let health = Health::default();
        for _ in 0..MAX_FAILURES_IN_WINDOW - 1 {
            assert_eq!(health.failure(), None);
            health.success();
        }
        assert_eq!(health.failure().as_deref(), Some("20 failures within 60 s"));
    }
}
