//! What the benchmarks share: the options every run takes, the targets they start,
//! the stdio MCP session they time calls through, the machine a run was measured on,
//! the CPU time processes and the machine spent, and the statistics of a run.

pub mod cpu;
pub mod machine;
pub mod options;
pub mod session;
pub mod stats;

use std::ffi::OsString;
use std::process::Child;
use std::thread;
use std::time::{Duration, Instant};

/// How long a target gets to exit on its own before it is killed.
pub const EXIT_GRACE: Duration = Duration::from_secs(5);

/// What to start: a name for the tables and a command line (which may hold
/// placeholders such as `{port}` that the benchmark fills in).
pub struct Target {
    pub name: String,
    pub command: Vec<OsString>,
}

/// Waits up to [`EXIT_GRACE`] for `child` to exit (after the caller asked it to:
/// closed its stdin, sent SIGTERM), then kills it.
pub fn stop(child: &mut Child) {
    let deadline = Instant::now() + EXIT_GRACE;
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}
