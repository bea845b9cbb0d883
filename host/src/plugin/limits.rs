//! What one plugin may use (time per call, memory, input and output size) and how a
//! broken limit, or any other failure, is described to the user.

use std::fmt;
use std::time::Duration;

use wasmtime::Trap;

use crate::config::{INPUT_SHARE_OF_MEMORY, PluginConfig};

/// How often the epoch advances: the granularity of call deadlines. Each tick wakes a
/// thread, which on a small machine costs more than it seems (at 1 ms, the ticker and
/// the timer interrupts it causes were about 4 % of the proxy's CPU time with one
/// plugin); 5 ms keeps a deadline within 5 ms of its `timeout_ms`.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// The limits of one plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deadline for one `intercept` call.
    pub timeout: Duration,
    /// Memory cap of one instance, in bytes.
    pub memory_bytes: usize,
    /// Largest payload a verdict may carry, in bytes.
    pub max_output_bytes: usize,
    /// Largest message the plugin is called with, in bytes (see
    /// [`MessageView::input_len`](super::message_view::MessageView::input_len)).
    pub max_input_bytes: usize,
}

/// `init` may parse configuration, load tables or start an interpreter: it gets at
/// least this long.
pub const MIN_INIT_TIMEOUT: Duration = Duration::from_secs(2);

impl Limits {
    pub fn from_config(config: &PluginConfig, max_message_bytes: usize) -> Self {
        let memory_bytes =
            usize::try_from(config.memory_mb.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX);
        Limits {
            timeout: Duration::from_millis(config.timeout_ms),
            memory_bytes,
            max_output_bytes: config.max_output_bytes.unwrap_or(max_message_bytes),
            max_input_bytes: config
                .max_input_bytes
                .unwrap_or(memory_bytes / INPUT_SHARE_OF_MEMORY),
        }
    }

    /// Epoch ticks ([`EPOCH_TICK`] each) to allow for `timeout`. One more than the
    /// whole ticks, since the current tick may be about to end.
    pub fn deadline_ticks(timeout: Duration) -> u64 {
        u64::try_from(timeout.as_micros() / EPOCH_TICK.as_micros())
            .unwrap_or(u64::MAX / 2)
            .saturating_add(1)
    }

    pub fn init_timeout(&self) -> Duration {
        self.timeout.max(MIN_INIT_TIMEOUT)
    }
}

/// Enforces the memory cap of one store, remembering when it said no so that the
/// failure can be named even when the guest turns it into an abort of its own.
#[derive(Debug)]
pub struct MemoryLimiter {
    limit: usize,
    hit: bool,
}

impl MemoryLimiter {
    pub fn new(limit: usize) -> Self {
        MemoryLimiter { limit, hit: false }
    }

    /// Whether a growth was refused since the last [`MemoryLimiter::reset`].
    pub fn was_hit(&self) -> bool {
        self.hit
    }

    pub fn reset(&mut self) {
        self.hit = false;
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = desired <= self.limit && maximum.is_none_or(|max| desired <= max);
        if !allowed {
            self.hit = true;
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold references, 8 bytes or so each: bounded by the memory cap too.
        let allowed =
            desired.saturating_mul(8) <= self.limit && maximum.is_none_or(|max| desired <= max);
        if !allowed {
            self.hit = true;
        }
        Ok(allowed)
    }
}

/// Why a plugin did not give a usable verdict. The text completes
/// "plugin `NAME` failed: ...".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The call ran past its deadline and was stopped.
    Deadline(Duration),
    /// The instance asked for more memory than its cap.
    Memory(usize),
    /// The guest overflowed its stack.
    StackOverflow,
    /// Any other trap.
    Trap(String),
    /// A verdict carried text that is not one JSON value.
    InvalidJson(&'static str),
    /// A verdict carried more than the output cap.
    TooLarge {
        what: &'static str,
        len: usize,
        limit: usize,
    },
    /// No instance could be made to run the call.
    Instantiate(String),
    /// The message is larger than the plugin's input limit; it was not called.
    InputTooLarge { len: usize, limit: usize },
    /// The plugin failed too often in this client session; it was not called.
    Paused,
}

impl Failure {
    /// Classifies an error from a call into the guest. `memory_hit` says whether the
    /// memory limiter refused a growth during the call.
    pub fn from_call_error(error: &wasmtime::Error, limits: &Limits, memory_hit: bool) -> Self {
        match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => Failure::Deadline(limits.timeout),
            Some(Trap::StackOverflow) => Failure::StackOverflow,
            _ if memory_hit => Failure::Memory(limits.memory_bytes),
            Some(trap) => {
                let text = trap.to_string();
                Failure::Trap(text.strip_prefix("wasm trap: ").unwrap_or(&text).to_owned())
            }
            None => Failure::Trap(first_line(error)),
        }
    }

    /// Whether the plugin was not called at all (the message gets the plugin's
    /// `unchecked_policy`, and the failure does not count towards the breaker).
    pub fn not_called(&self) -> bool {
        matches!(self, Failure::InputTooLarge { .. } | Failure::Paused)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Deadline(d) => write!(f, "deadline of {} ms exceeded", d.as_millis()),
            Failure::Memory(bytes) => {
                write!(f, "memory limit of {} MiB exceeded", bytes / (1024 * 1024))
            }
            Failure::StackOverflow => f.write_str("stack overflow"),
            Failure::Trap(trap) => write!(f, "trapped: {trap}"),
            Failure::InvalidJson(what) => write!(f, "returned invalid JSON in `{what}`"),
            Failure::TooLarge { what, len, limit } => write!(
                f,
                "returned {len} bytes in `{what}`, over the limit of {limit} bytes"
            ),
            Failure::Instantiate(why) => write!(f, "could not start an instance: {why}"),
            Failure::InputTooLarge { len, limit } => write!(
                f,
                "a message of {len} bytes is over the input limit of {limit} bytes (`max_input_bytes`)"
            ),
            Failure::Paused => {
                f.write_str("paused for this client session after repeated failures")
            }
        }
    }
}

/// The innermost cause of an error, first line only (wasmtime appends backtraces).
pub fn first_line(error: &wasmtime::Error) -> String {
    let text = error.root_cause().to_string();
    text.lines().next().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_texts() {
        assert_eq!(
            Failure::Deadline(Duration::from_millis(50)).to_string(),
            "deadline of 50 ms exceeded"
        );
        assert_eq!(
            Failure::Memory(64 << 20).to_string(),
            "memory limit of 64 MiB exceeded"
        );
        assert_eq!(
            Failure::TooLarge {
                what: "rewrite",
                len: 10,
                limit: 5
            }
            .to_string(),
            "returned 10 bytes in `rewrite`, over the limit of 5 bytes"
        );
        assert_eq!(
            Failure::InputTooLarge { len: 10, limit: 5 }.to_string(),
            "a message of 10 bytes is over the input limit of 5 bytes (`max_input_bytes`)"
        );
    }

    #[test]
    fn input_limit_defaults_to_an_eighth_of_the_memory_cap() {
        let mut config = PluginConfig::from_path("p.wasm");
        assert_eq!(Limits::from_config(&config, 1000).max_input_bytes, 8 << 20);
        config.memory_mb = 128;
        assert_eq!(Limits::from_config(&config, 1000).max_input_bytes, 16 << 20);
        config.max_input_bytes = Some(77);
        assert_eq!(Limits::from_config(&config, 1000).max_input_bytes, 77);
    }

    #[test]
    fn deadline_rounds_up() {
        assert_eq!(Limits::deadline_ticks(EPOCH_TICK * 10), 11);
        assert_eq!(Limits::deadline_ticks(EPOCH_TICK * 10 + EPOCH_TICK / 2), 11);
        assert_eq!(Limits::deadline_ticks(Duration::from_micros(10)), 1);
    }

    #[test]
    fn limiter_remembers_a_refusal() {
        use wasmtime::ResourceLimiter;
        let mut limiter = MemoryLimiter::new(1 << 20);
        assert!(limiter.memory_growing(0, 1 << 20, None).unwrap());
        assert!(!limiter.was_hit());
        assert!(!limiter.memory_growing(0, 2 << 20, None).unwrap());
        assert!(limiter.was_hit());
        limiter.reset();
        assert!(!limiter.was_hit());
    }
}
