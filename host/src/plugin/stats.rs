//! Per-plugin counts of calls and verdicts, time spent in the guest, messages the
//! plugin was not called for and breakers opened, logged at debug level every
//! [`LOG_EVERY`] calls and when the chain is dropped, and counted in the process's
//! metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::limits::Failure;
use crate::telemetry::metrics::{FailureCause, PluginMetrics, VerdictLabel};
use crate::wire::jsonrpc::Kind;

/// Calls between two debug lines.
pub const LOG_EVERY: u64 = 1000;

#[derive(Debug)]
pub struct Stats {
    calls: AtomicU64,
    passes: AtomicU64,
    rewrites: AtomicU64,
    responds: AtomicU64,
    rejects: AtomicU64,
    failures: AtomicU64,
    nanos: AtomicU64,
    /// Messages over the input limit, not given to the plugin.
    oversized: AtomicU64,
    /// Messages of a session whose breaker was open, not given to the plugin.
    paused: AtomicU64,
    /// Times a session's breaker opened (a failed trial included).
    breaker_opened: AtomicU64,
    /// The plugin's name in the metrics: the name it was first loaded with, kept
    /// across reloads so that its series go on.
    metrics_name: Box<str>,
    metrics: PluginMetrics,
}

/// Which way a call ended, for counting.
#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    Pass,
    Rewrite,
    Respond,
    Reject,
    Failure,
}

impl Outcome {
    /// The verdict given; `None` for a failure.
    pub fn verdict(self) -> Option<VerdictLabel> {
        match self {
            Outcome::Pass => Some(VerdictLabel::Pass),
            Outcome::Rewrite => Some(VerdictLabel::Rewrite),
            Outcome::Respond => Some(VerdictLabel::Respond),
            Outcome::Reject => Some(VerdictLabel::Reject),
            Outcome::Failure => None,
        }
    }
}

/// Why `failure` happened, as metrics and traces name it.
pub fn cause(failure: &Failure) -> FailureCause {
    match failure {
        Failure::Deadline(_) => FailureCause::Deadline,
        Failure::Memory(_) => FailureCause::Memory,
        Failure::StackOverflow | Failure::Trap(_) => FailureCause::Trap,
        Failure::InvalidJson(_) | Failure::TooLarge { .. } => FailureCause::BadOutput,
        Failure::Instantiate(_) => FailureCause::Instantiate,
        Failure::InputTooLarge { .. } => FailureCause::Oversized,
        Failure::Paused => FailureCause::Paused,
    }
}

impl Stats {
    /// Statistics of the plugin called `plugin` (its name in the metrics).
    pub fn new(plugin: &str) -> Self {
        let zero = AtomicU64::default;
        Stats {
            calls: zero(),
            passes: zero(),
            rewrites: zero(),
            responds: zero(),
            rejects: zero(),
            failures: zero(),
            nanos: zero(),
            oversized: zero(),
            paused: zero(),
            breaker_opened: zero(),
            metrics_name: plugin.into(),
            metrics: crate::telemetry::metrics().plugin(plugin),
        }
    }

    /// Counts one call for a message of `kind`; returns true when a summary is due.
    pub fn record(&self, outcome: Outcome, kind: Kind, elapsed: Duration) -> bool {
        self.metrics.call(kind, outcome.verdict(), elapsed);
        let counter = match outcome {
            Outcome::Pass => &self.passes,
            Outcome::Rewrite => &self.rewrites,
            Outcome::Respond => &self.responds,
            Outcome::Reject => &self.rejects,
            Outcome::Failure => &self.failures,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.nanos.fetch_add(
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        let calls = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        calls.is_multiple_of(LOG_EVERY)
    }

    /// Counts why a call gave no verdict, or why the plugin was not called.
    pub fn failure(&self, failure: &Failure) {
        self.metrics.failure(cause(failure));
    }

    /// Counts a message the plugin was not called for.
    pub fn not_called(&self, oversized: bool) {
        let counter = if oversized {
            &self.oversized
        } else {
            &self.paused
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn breaker_opened(&self) {
        self.breaker_opened.fetch_add(1, Ordering::Relaxed);
        self.metrics.breaker_opened();
    }

    /// Counts a new version of the plugin loaded.
    pub fn reloaded(&self) {
        self.metrics.reloaded();
    }

    pub fn metrics_name(&self) -> &str {
        &self.metrics_name
    }

    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Writes the summary line.
    pub fn log(&self, plugin: &str) {
        let calls = self.calls();
        let oversized = self.oversized.load(Ordering::Relaxed);
        let paused = self.paused.load(Ordering::Relaxed);
        if calls + oversized + paused == 0 {
            return;
        }
        let nanos = self.nanos.load(Ordering::Relaxed);
        tracing::debug!(
            target: "interpose::plugin",
            plugin,
            calls,
            pass = self.passes.load(Ordering::Relaxed),
            rewrite = self.rewrites.load(Ordering::Relaxed),
            respond = self.responds.load(Ordering::Relaxed),
            reject = self.rejects.load(Ordering::Relaxed),
            failed = self.failures.load(Ordering::Relaxed),
            oversized,
            paused,
            breaker_opened = self.breaker_opened.load(Ordering::Relaxed),
            mean_us = nanos as f64 / calls.max(1) as f64 / 1000.0,
            "plugin statistics"
        );
    }
}
