//! Where log lines go: stderr, in batches.
//!
//! A write to stderr is a system call, and on the message path (an audit plugin logs
//! every message) one call per line cost more than the plugin's own work. So lines
//! are collected in memory and written by a flusher thread at most [`FLUSH_INTERVAL`]
//! after the first unwritten one, as access logs are in Envoy and nginx. Warnings and
//! errors are written at once, with every line before them, and so is a full buffer.
//! What is left is written when the process ends or panics.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// The longest a line waits in memory.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(50);

/// A buffer this full is written at once, by the thread that filled it.
const FLUSH_AT_BYTES: usize = 64 * 1024;

/// The stderr batch, once [`BatchedLog::stderr`] made it.
static STDERR: OnceLock<BatchedLog> = OnceLock::new();

/// Writes out every line logged to stderr so far. Call it before writing to stderr
/// directly, so that the direct text comes after the lines logged before it.
pub fn flush_stderr() {
    if let Some(log) = STDERR.get() {
        log.flush();
    }
}

/// A [`MakeWriter`] for `tracing_subscriber` that batches lines, see the module docs.
#[derive(Clone)]
pub struct BatchedLog {
    shared: Arc<Shared>,
}

struct Shared {
    pending: Mutex<Pending>,
    /// Signalled when the buffer stops being empty.
    filled: Condvar,
}

struct Pending {
    lines: Vec<u8>,
    out: Box<dyn Write + Send>,
}

impl Pending {
    fn write_out(&mut self) {
        if self.lines.is_empty() {
            return;
        }
        // Nowhere to report a failing stderr; the lines are dropped as `eprintln!`
        // would panic.
        let _ = self
            .out
            .write_all(&self.lines)
            .and_then(|()| self.out.flush());
        self.lines.clear();
    }
}

impl BatchedLog {
    /// Batches lines for stderr. Starts the flusher thread and makes a panic write out
    /// the lines before it. Meant to be called once; [`flush_stderr`] flushes the first.
    pub fn stderr() -> io::Result<Self> {
        let log = Self::to(Box::new(io::stderr()))?;
        let _ = STDERR.set(log.clone());
        let on_panic = log.clone();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // `try_lock`: the panic may have happened while this thread held the lock.
            if let Ok(mut pending) = on_panic.shared.pending.try_lock() {
                pending.write_out();
            }
            previous(info);
        }));
        Ok(log)
    }

    /// Batches lines for `out`, with a flusher thread that lives as long as the process.
    pub fn to(out: Box<dyn Write + Send>) -> io::Result<Self> {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending {
                lines: Vec::new(),
                out,
            }),
            filled: Condvar::new(),
        });
        let flusher = shared.clone();
        std::thread::Builder::new()
            .name("log-flusher".into())
            .spawn(move || {
                loop {
                    let pending = flusher.lock();
                    let pending = flusher
                        .filled
                        .wait_while(pending, |p| p.lines.is_empty())
                        .unwrap_or_else(PoisonError::into_inner);
                    drop(pending);
                    std::thread::sleep(FLUSH_INTERVAL);
                    flusher.lock().write_out();
                }
            })?;
        Ok(BatchedLog { shared })
    }

    /// Writes out every line logged so far.
    pub fn flush(&self) {
        self.shared.lock().write_out();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn append(&self, line: &[u8], urgent: bool) {
        let mut pending = self.lock();
        let was_empty = pending.lines.is_empty();
        pending.lines.extend_from_slice(line);
        // Written under the lock, so lines keep their order.
        if urgent || pending.lines.len() >= FLUSH_AT_BYTES {
            pending.write_out();
        } else if was_empty {
            self.filled.notify_one();
        }
    }
}

/// Writes one formatted event into the batch.
pub struct LineWriter<'a> {
    shared: &'a Shared,
    urgent: bool,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.shared.append(buf, self.urgent);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchedLog {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            shared: &self.shared,
            urgent: false,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        LineWriter {
            shared: &self.shared,
            // Problems are seen at once, even when the process dies right after.
            urgent: *meta.level() <= Level::WARN,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// A sink the test can read while the log owns it.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn write(log: &BatchedLog, line: &str, urgent: bool) {
        let mut writer = LineWriter {
            shared: &log.shared,
            urgent,
        };
        writer.write_all(line.as_bytes()).unwrap();
    }

    #[test]
    fn lines_are_written_by_the_flusher_within_the_interval() {
        let sink = Sink::default();
        let log = BatchedLog::to(Box::new(sink.clone())).unwrap();
        write(&log, "a\n", false);
        write(&log, "b\n", false);
        assert_eq!(sink.text(), "", "nothing is written per line");
        let deadline = Instant::now() + FLUSH_INTERVAL * 20;
        while sink.text().is_empty() && Instant::now() < deadline {
            std::thread::sleep(FLUSH_INTERVAL / 5);
        }
        assert_eq!(sink.text(), "a\nb\n");
    }

    #[test]
    fn warnings_are_written_at_once_after_the_lines_before_them() {
        let sink = Sink::default();
        let log = BatchedLog::to(Box::new(sink.clone())).unwrap();
        write(&log, "info\n", false);
        write(&log, "warn\n", true);
        assert_eq!(sink.text(), "info\nwarn\n");
    }

    #[test]
    fn a_full_buffer_and_flush_write_at_once() {
        let sink = Sink::default();
        let log = BatchedLog::to(Box::new(sink.clone())).unwrap();
        let long = "x".repeat(FLUSH_AT_BYTES);
        write(&log, &long, false);
        assert_eq!(sink.text().len(), FLUSH_AT_BYTES);
        write(&log, "last\n", false);
        log.flush();
        assert!(sink.text().ends_with("xlast\n"));
    }

    #[test]
    fn a_subscriber_batches_info_and_writes_warnings_at_once() {
        let sink = Sink::default();
        let log = BatchedLog::to(Box::new(sink.clone())).unwrap();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(log)
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("first");
            assert_eq!(sink.text(), "");
            tracing::warn!("second");
        });
        let text = sink.text();
        let first = text.find("INFO").expect("the info line is written");
        assert!(text[first..].contains("first"));
        assert!(text.find("WARN").expect("and then the warning") > first);
    }
}
