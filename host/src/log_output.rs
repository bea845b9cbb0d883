//! Where log lines go (stderr, in batches) and how their fields are formatted.
//!
//! A write to stderr is a system call, and on the message path (an audit plugin logs
//! every message) one call per line cost more than the plugin's own work. So lines
//! are collected in memory and written by a flusher thread, as Envoy writes its access
//! logs: at most [`FLUSH_INTERVAL`] after the first unwritten line, or as soon as
//! [`FLUSH_AT_BYTES`] have gathered. The thread that logs only appends, unless it logs
//! a warning or an error (written at once, after every line before it) or the
//! flusher has fallen [`BLOCK_AT_BYTES`] behind (then it writes too, which slows the
//! proxy down to what stderr takes instead of growing without bound). What is left is
//! written when the process ends or panics.
//!
//! A plugin's info, debug and trace lines are not even formatted where they are
//! logged: the text the plugin gave is kept with its time and formatted, in its place
//! among the other lines, by whoever writes the batch ([`log_plugin_line`]). The
//! tracing event, the timestamp and the escaping are most of what a line costs, and
//! on the message path they held up the message the line was about.

use std::cell::{Cell, RefCell};
use std::io::{self, Write};
use std::ops::Range;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Level, Metadata};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FormatFields, MakeWriter};

/// The longest a line waits in memory.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(50);

/// The flusher writes at once when this much has gathered.
const FLUSH_AT_BYTES: usize = 64 * 1024;

/// A thread that logs writes the lines itself when this much is unwritten.
const BLOCK_AT_BYTES: usize = 4 << 20;

/// The process's batch (stderr's), once [`BatchedLog::for_process`] made it.
static PROCESS_LOG: OnceLock<BatchedLog> = OnceLock::new();

/// Writes out every line logged to stderr so far. Call it before writing to stderr
/// directly, so that the direct text comes after the lines logged before it.
pub fn flush_stderr() {
    if let Some(log) = PROCESS_LOG.get() {
        log.flush();
    }
}

/// A [`MakeWriter`] for `tracing_subscriber` that batches lines, see the module docs.
#[derive(Clone)]
pub struct BatchedLog {
    shared: Arc<Shared>,
}

/// Lock order: `out`, then `lines`. Appending takes `lines` only, briefly.
struct Shared {
    /// Lines not yet taken by a writer.
    lines: Mutex<Batch>,
    /// Wakes the flusher: the first line arrived, or [`FLUSH_AT_BYTES`] did.
    gathered: Condvar,
    /// Held while a batch is written, so batches go out in order.
    out: Mutex<Out>,
}

/// Lines gathered and not yet taken by a writer.
#[derive(Default)]
struct Batch {
    /// Formatted lines.
    bytes: Vec<u8>,
    /// Plugin lines still to format, in order.
    plugin_lines: Vec<PluginLine>,
    /// Their plugins' names and texts, one after the other. Copied in by the thread
    /// that logs, so that what it allocated is freed on that thread: glibc frees
    /// another thread's memory under its arena's lock, which the two would contend.
    plugin_text: String,
}

/// A plugin's line as the plugin gave it, to be formatted when its batch is written.
struct PluginLine {
    /// The length `bytes` had when the line came: its place among the formatted lines.
    at: usize,
    logged: SystemTime,
    level: Level,
    /// The plugin's name in `plugin_text`.
    plugin: Range<usize>,
    /// The line's text in `plugin_text`.
    text: Range<usize>,
}

/// What a plugin line adds to its text once formatted, about: for the thresholds.
const PLUGIN_LINE_BYTES: usize = 64;

impl Batch {
    fn len(&self) -> usize {
        self.bytes.len() + self.plugin_text.len() + PLUGIN_LINE_BYTES * self.plugin_lines.len()
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty() && self.plugin_lines.is_empty()
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.plugin_lines.clear();
        self.plugin_text.clear();
    }

    /// `bytes`, with each plugin line formatted in its place (on this thread, by the
    /// log's subscriber), then `last`, into `out`.
    fn format_into(&self, out: &mut Vec<u8>, last: &[u8]) {
        let mut from = 0;
        for line in &self.plugin_lines {
            out.extend_from_slice(&self.bytes[from..line.at]);
            let plugin = &self.plugin_text[line.plugin.clone()];
            let text = &self.plugin_text[line.text.clone()];
            capture_into(out, || emit(line.level, plugin, text, Some(line.logged)));
            from = line.at;
        }
        out.extend_from_slice(&self.bytes[from..]);
        out.extend_from_slice(last);
    }
}

struct Out {
    sink: Box<dyn Write + Send>,
    /// The previous batch, swapped in for `lines` to keep its capacity.
    spare: Batch,
    /// A batch's text with its plugin lines formatted in place.
    text: Vec<u8>,
}

impl Out {
    /// Writes `lines` (and `last`, if any) after every batch taken before, formatting
    /// its plugin lines on this thread.
    fn write_out(&mut self, lines: &Mutex<Batch>, last: &[u8]) {
        let mut batch = std::mem::take(&mut self.spare);
        {
            let mut lines = lock(lines);
            std::mem::swap(&mut *lines, &mut batch);
        }
        let text = if batch.plugin_lines.is_empty() {
            batch.bytes.extend_from_slice(last);
            &batch.bytes
        } else {
            self.text.clear();
            batch.format_into(&mut self.text, last);
            &self.text
        };
        if !text.is_empty() {
            // Nowhere to report a failing stderr; the lines are dropped as `eprintln!`
            // would panic.
            let _ = self.sink.write_all(text).and_then(|()| self.sink.flush());
        }
        batch.clear();
        self.spare = batch;
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl BatchedLog {
    /// Batches lines for stderr, as the process's log: see [`BatchedLog::for_process`].
    pub fn stderr() -> io::Result<Self> {
        Self::for_process(Box::new(io::stderr()))
    }

    /// Batches lines for `sink` as the process's log, where plugins' lines go (see
    /// [`log_plugin_line`]): stderr for the proxy, `/dev/null` for a benchmark that
    /// logs as the proxy does. Starts the flusher thread and makes a panic write out
    /// the lines before it. Meant to be called once; [`flush_stderr`] flushes the first.
    pub fn for_process(sink: Box<dyn Write + Send>) -> io::Result<Self> {
        let log = Self::to(sink)?;
        let _ = PROCESS_LOG.set(log.clone());
        let on_panic = log.clone();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // `try_lock`: the panic may have happened while this thread held a lock.
            let shared = &on_panic.shared;
            if let Ok(mut out) = shared.out.try_lock()
                && shared.lines.try_lock().is_ok()
            {
                out.write_out(&shared.lines, &[]);
            }
            previous(info);
        }));
        Ok(log)
    }

    /// Batches lines for `out`, with a flusher thread that lives as long as the process.
    pub fn to(sink: Box<dyn Write + Send>) -> io::Result<Self> {
        let shared = Arc::new(Shared::new(sink));
        let flusher = shared.clone();
        std::thread::Builder::new()
            .name("log-flusher".into())
            .spawn(move || {
                loop {
                    let lines = lock(&flusher.lines);
                    let lines = flusher
                        .gathered
                        .wait_while(lines, |l| l.is_empty())
                        .unwrap_or_else(PoisonError::into_inner);
                    let (lines, _) = flusher
                        .gathered
                        .wait_timeout_while(lines, FLUSH_INTERVAL, |l| l.len() < FLUSH_AT_BYTES)
                        .unwrap_or_else(PoisonError::into_inner);
                    drop(lines);
                    flusher.write_out(&[]);
                }
            })?;
        Ok(BatchedLog { shared })
    }

    /// Writes out every line logged so far.
    pub fn flush(&self) {
        self.shared.write_out(&[]);
    }
}

impl Shared {
    /// Nothing gathered yet; batches go to `sink`.
    fn new(sink: Box<dyn Write + Send>) -> Self {
        Shared {
            lines: Mutex::new(Batch::default()),
            gathered: Condvar::new(),
            out: Mutex::new(Out {
                sink,
                spare: Batch::default(),
                text: Vec::new(),
            }),
        }
    }

    fn write_out(&self, last: &[u8]) {
        lock(&self.out).write_out(&self.lines, last);
    }

    fn append(&self, line: &[u8], urgent: bool) {
        if urgent {
            return self.write_out(line);
        }
        self.gather(|batch| batch.bytes.extend_from_slice(line));
    }

    /// Adds a plugin's line to the batch, to be formatted when it is written.
    fn defer(&self, level: Level, plugin: &str, text: &str) {
        let logged = SystemTime::now();
        self.gather(|batch| {
            let start = batch.plugin_text.len();
            batch.plugin_text.push_str(plugin);
            let name_end = batch.plugin_text.len();
            batch.plugin_text.push_str(text);
            batch.plugin_lines.push(PluginLine {
                at: batch.bytes.len(),
                logged,
                level,
                plugin: start..name_end,
                text: name_end..batch.plugin_text.len(),
            });
        });
    }

    /// Adds to the batch with `add`, then wakes the flusher or writes, as the
    /// batch's size asks.
    fn gather(&self, add: impl FnOnce(&mut Batch)) {
        let mut lines = lock(&self.lines);
        let before = lines.len();
        add(&mut lines);
        let after = lines.len();
        drop(lines);
        if after >= BLOCK_AT_BYTES {
            self.write_out(&[]);
        } else if before == 0 || (before < FLUSH_AT_BYTES && after >= FLUSH_AT_BYTES) {
            self.gathered.notify_one();
        }
    }
}

thread_local! {
    /// While a plugin's line is formatted on this thread: where its text goes,
    /// instead of the batch.
    static CAPTURED: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
    /// While a plugin's line is formatted on this thread: when it was logged.
    static LOGGED_AT: Cell<Option<SystemTime>> = const { Cell::new(None) };
}

/// Whether the log takes plugins' lines of this level.
fn plugin_level_enabled(level: Level) -> bool {
    match level {
        Level::TRACE => tracing::enabled!(target: "interpose::plugin", Level::TRACE),
        Level::DEBUG => tracing::enabled!(target: "interpose::plugin", Level::DEBUG),
        Level::INFO => tracing::enabled!(target: "interpose::plugin", Level::INFO),
        Level::WARN => tracing::enabled!(target: "interpose::plugin", Level::WARN),
        Level::ERROR => tracing::enabled!(target: "interpose::plugin", Level::ERROR),
    }
}

/// A plugin's line as the `interpose::plugin` event: its text as the `message`
/// field (written in one piece and escaped by [`Fields`]) and the plugin's name as
/// `plugin`; timestamped `logged`, when given, rather than now.
fn emit(level: Level, plugin: &str, message: &str, logged: Option<SystemTime>) {
    LOGGED_AT.set(logged);
    match level {
        Level::TRACE => tracing::trace!(target: "interpose::plugin", message, plugin),
        Level::DEBUG => tracing::debug!(target: "interpose::plugin", message, plugin),
        Level::INFO => tracing::info!(target: "interpose::plugin", message, plugin),
        Level::WARN => tracing::warn!(target: "interpose::plugin", message, plugin),
        Level::ERROR => tracing::error!(target: "interpose::plugin", message, plugin),
    }
    LOGGED_AT.set(None);
}

/// Appends to `out` what `log` has the log's subscriber write on this thread.
fn capture_into(out: &mut Vec<u8>, log: impl FnOnce()) {
    CAPTURED.set(Some(std::mem::take(out)));
    log();
    *out = CAPTURED.take().unwrap_or_default();
}

/// Logs a plugin's line: an info, debug or trace line goes to stderr's batch as the
/// plugin gave it, to be formatted when the batch is written (see the module docs);
/// a warning or an error, or any line when stderr is not batched, is logged at once.
pub fn log_plugin_line(level: Level, plugin: &str, text: &str) {
    if !plugin_level_enabled(level) {
        return;
    }
    match PROCESS_LOG.get() {
        Some(log) if level > Level::WARN => log.shared.defer(level, plugin, text),
        _ => emit(level, plugin, text, None),
    }
}

/// Writes one formatted event into the batch.
pub struct LineWriter<'a> {
    shared: &'a Shared,
    urgent: bool,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let captured = CAPTURED.with_borrow_mut(|captured| {
            captured
                .as_mut()
                .map(|captured| captured.extend_from_slice(buf))
        });
        if captured.is_none() {
            self.shared.append(buf, self.urgent);
        }
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

/// Writes each line's timestamp as `tracing-subscriber`'s default timer does (RFC 3339,
/// UTC, microseconds: `2026-12-05T09:22:07.123456Z`), but turns the seconds into a date
/// and time of day once per second per thread rather than once per line: with an audit
/// plugin logging every message, that conversion was a third of formatting a line.
#[derive(Debug, Default, Clone, Copy)]
pub struct Timestamps;

thread_local! {
    /// The last whole second formatted on this thread, and its text up to the seconds.
    static LAST_SECOND: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
}

impl FormatTime for Timestamps {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        let now = LOGGED_AT.get().unwrap_or_else(SystemTime::now);
        let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let seconds = since_epoch.as_secs();
        let date_time = LAST_SECOND.with(|last| {
            let (cached, text) = last.get();
            if cached == seconds {
                return text;
            }
            let text = date_time_text(seconds);
            last.set((seconds, text));
            text
        });
        let mut line = [0u8; 27];
        line[..19].copy_from_slice(&date_time);
        line[19] = b'.';
        write_digits(&mut line[20..26], since_epoch.subsec_micros());
        line[26] = b'Z';
        // Only ASCII digits and separators were written.
        w.write_str(std::str::from_utf8(&line).map_err(|_| fmt::Error)?)
    }
}

/// `time` in RFC 3339, UTC, with microseconds (`2026-12-05T11:03:59.123456Z`), as log
/// lines and recordings write it.
pub fn utc_micros(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let mut text = [0u8; 27];
    text[..19].copy_from_slice(&date_time_text(since_epoch.as_secs()));
    text[19] = b'.';
    write_digits(&mut text[20..26], since_epoch.subsec_micros());
    text[26] = b'Z';
    // Only ASCII digits and separators were written.
    String::from_utf8_lossy(&text).into_owned()
}

/// `YYYY-MM-DDTHH:MM:SS` for a time `seconds` after the Unix epoch, in UTC (dates from
/// days with Howard Hinnant's `civil_from_days`, which is exact for every Gregorian date).
fn date_time_text(seconds: u64) -> [u8; 19] {
    let days = i64::try_from(seconds / 86_400).unwrap_or(i64::MAX / 2);
    // Below 86 400: fits.
    let of_day = u32::try_from(seconds % 86_400).unwrap_or(0);
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    let mut text = *b"0000-00-00T00:00:00";
    let field = |value: i64| u32::try_from(value).unwrap_or(0);
    write_digits(&mut text[0..4], field(year.clamp(0, 9999)));
    write_digits(&mut text[5..7], field(month));
    write_digits(&mut text[8..10], field(day));
    write_digits(&mut text[11..13], of_day / 3600);
    write_digits(&mut text[14..16], of_day / 60 % 60);
    write_digits(&mut text[17..19], of_day % 60);
    text
}

/// Writes `value` in decimal into all of `out`, zero-padded on the left.
fn write_digits(out: &mut [u8], mut value: u32) {
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Formats an event's fields as `tracing-subscriber`'s default does (the message,
/// then `name=value` pairs), but escapes the message and the values in one pass per
/// piece of text (see [`write_escaped`]): the default sanitizes one `write_char` at a
/// time, which was an eighth of the proxy's time with an audit plugin logging every
/// message. Beyond the characters the default escapes (ESC, BEL, BS, FF, DEL and C1
/// controls, so that log text from plugins and peers cannot drive the terminal),
/// newlines and every other control are escaped too: one event is one line, and a
/// plugin cannot write a line that looks like the proxy's own.
#[derive(Debug, Default, Clone, Copy)]
pub struct Fields;

impl<'w> FormatFields<'w> for Fields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = FieldWriter {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct FieldWriter<'w> {
    writer: Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl FieldWriter<'_> {
    fn separate(&mut self) -> fmt::Result {
        if std::mem::take(&mut self.first) {
            Ok(())
        } else {
            self.writer.write_char(' ')
        }
    }

    fn message(&mut self, text: &dyn fmt::Debug) -> fmt::Result {
        self.separate()?;
        write!(Escaped(&mut self.writer), "{text:?}")
    }

    fn pair(&mut self, name: &str, value: &dyn fmt::Debug) -> fmt::Result {
        self.separate()?;
        let name = name.strip_prefix("r#").unwrap_or(name);
        if self.writer.has_ansi_escapes() {
            let italic = nu_ansi_term::Style::new().italic();
            let dimmed = nu_ansi_term::Style::new().dimmed();
            write!(self.writer, "{}{}", italic.paint(name), dimmed.paint("="))?;
        } else {
            write!(self.writer, "{name}=")?;
        }
        // A `%` field (Display) is written as it is: escaped here like the message.
        write!(Escaped(&mut self.writer), "{value:?}")
    }
}

impl Visit for FieldWriter<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.result.is_ok() && field.name() == "message" {
            self.result = self
                .separate()
                .and_then(|()| write_escaped(&mut self.writer, value));
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let name = field.name();
        // Metadata of records from the `log` crate, shown elsewhere in the line.
        if self.result.is_err() || name.starts_with("log.") {
            return;
        }
        self.result = if name == "message" {
            self.message(value)
        } else {
            self.pair(name, value)
        };
    }
}

/// A writer that escapes what goes through it with [`write_escaped`].
pub struct Escaped<W>(pub W);

impl<W: fmt::Write> fmt::Write for Escaped<W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        write_escaped(&mut self.0, text)
    }
}

/// `text` as one line with no control characters (see [`write_escaped`]); borrowed
/// when there is nothing to escape. For text from plugins or peers that reaches
/// stderr other than through the log (a start-up error).
pub fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    if !needs_escaping(text) {
        return text.into();
    }
    let mut line = String::with_capacity(text.len() + 8);
    // Writing to a String cannot fail.
    let _ = write_escaped(&mut line, text);
    line.into()
}

/// Whether `text` has a character [`write_escaped`] escapes: ASCII controls but tab
/// (0x00-0x1f, 0x7f) are single bytes; C1 controls (U+0080..=U+009F) start with
/// 0xC2, and U+2028/U+2029 (line and paragraph separators) with 0xE2, which other
/// text has too and then takes the slow path.
fn needs_escaping(text: &str) -> bool {
    text.bytes()
        .any(|b| (b < 0x20 && b != b'\t') || matches!(b, 0x7f | 0xc2 | 0xe2))
}

/// Writes `text` with control characters escaped, the one place log text is: `\n`
/// and `\r` as such, other ASCII controls (not tab) as `\xNN` (as `tracing-subscriber`
/// writes ESC, BEL, BS, FF and DEL), C1 controls and the Unicode line and paragraph
/// separators as `\u{NN}`. Text without any is written at once.
pub fn write_escaped(out: &mut impl fmt::Write, text: &str) -> fmt::Result {
    if !needs_escaping(text) {
        return out.write_str(text);
    }
    let mut clean_from = 0;
    for (at, ch) in text.char_indices() {
        let escaped = match ch {
            '\t' => continue,
            '\n' => out
                .write_str(&text[clean_from..at])
                .and(out.write_str("\\n")),
            '\r' => out
                .write_str(&text[clean_from..at])
                .and(out.write_str("\\r")),
            '\0'..='\x1f' | '\x7f' => {
                out.write_str(&text[clean_from..at])?;
                write!(out, "\\x{:02x}", ch as u32)
            }
            '\u{80}'..='\u{9f}' | '\u{2028}' | '\u{2029}' => {
                out.write_str(&text[clean_from..at])?;
                write!(out, "\\u{{{:x}}}", ch as u32)
            }
            _ => continue,
        };
        escaped?;
        clean_from = at + ch.len_utf8();
    }
    out.write_str(&text[clean_from..])
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

    /// Polls `sink` until it holds `len` bytes, or gives up after a while.
    fn wait_for(sink: &Sink, len: usize) -> usize {
        let deadline = Instant::now() + FLUSH_INTERVAL * 20;
        while sink.text().len() < len && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        sink.text().len()
    }

    #[test]
    fn a_full_batch_is_written_by_the_flusher_without_waiting_out_the_interval() {
        let sink = Sink::default();
        let log = BatchedLog::to(Box::new(sink.clone())).unwrap();
        write(&log, "first\n", false);
        let started = Instant::now();
        write(&log, &"x".repeat(FLUSH_AT_BYTES), false);
        assert_eq!(wait_for(&sink, FLUSH_AT_BYTES + 6), FLUSH_AT_BYTES + 6);
        assert!(
            started.elapsed() < FLUSH_INTERVAL,
            "written after {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_flusher_far_behind_makes_the_logging_thread_write() {
        let sink = Sink::default();
        let log = BatchedLog::to(Box::new(sink.clone())).unwrap();
        // Held, the output lock stands for a stderr that takes its time.
        let out = lock(&log.shared.out);
        let big = "y".repeat(BLOCK_AT_BYTES / 2);
        write(&log, &big, false);
        let logger = {
            let log = log.clone();
            std::thread::spawn(move || write(&log, &"z".repeat(BLOCK_AT_BYTES / 2), false))
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(!logger.is_finished(), "the logger waits for stderr");
        drop(out);
        logger.join().unwrap();
        assert_eq!(sink.text().len(), BLOCK_AT_BYTES);
    }

    #[test]
    fn flush_writes_everything_at_once() {
        let sink = Sink::default();
        let log = BatchedLog::to(Box::new(sink.clone())).unwrap();
        write(&log, "a\n", false);
        write(&log, "last\n", false);
        log.flush();
        assert_eq!(sink.text(), "a\nlast\n");
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

    #[test]
    fn plugin_lines_are_formatted_when_written_in_their_place_with_their_time() {
        let sink = Sink::default();
        // No flusher thread: the batch is written here, on this thread and under
        // this subscriber, whose lines for the plugin's are captured.
        let shared = Shared::new(Box::new(sink.clone()));
        let subscriber = tracing_subscriber::fmt()
            .with_writer(BatchedLog::to(Box::new(io::sink())).unwrap())
            .fmt_fields(Fields)
            .with_timer(Timestamps)
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            shared.append(b"before\n", false);
            shared.defer(Level::INFO, "audit-log", "{\"a\":1}\nforged");
            shared.append(b"after\n", false);
            {
                let batch = lock(&shared.lines);
                assert_eq!(batch.plugin_text, "audit-log{\"a\":1}\nforged");
                assert!(batch.len() > "before\nafter\n".len() + batch.plugin_text.len());
            }
            lock(&shared.lines).plugin_lines[0].logged =
                UNIX_EPOCH + Duration::from_micros(1_796_548_927_123_456);
            shared.write_out(b"last\n");
        });
        assert_eq!(
            sink.text(),
            "before\n\
             2026-12-06T09:22:07.123456Z  INFO interpose::plugin: {\"a\":1}\\nforged plugin=\"audit-log\"\n\
             after\nlast\n"
        );
        assert!(lock(&shared.lines).is_empty());
    }

    #[test]
    fn only_plugin_lines_the_log_takes_are_kept() {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(Level::INFO)
            .with_writer(io::sink)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            assert!(plugin_level_enabled(Level::INFO));
            assert!(!plugin_level_enabled(Level::DEBUG));
        });
    }

    /// What `tracing-subscriber` writes for the events `log` makes, with its own
    /// field formatter or with [`Fields`] (no timestamps, no colours).
    fn formatted(ours: bool, log: impl Fn()) -> String {
        let sink = Sink::default();
        let writer = sink.clone();
        let builder = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .without_time();
        if ours {
            tracing::subscriber::with_default(builder.fmt_fields(Fields).finish(), log);
        } else {
            tracing::subscriber::with_default(builder.finish(), log);
        }
        sink.text()
    }

    #[test]
    fn fields_read_as_tracing_subscribers_own() {
        let log = || {
            let plugin = "audit-log";
            tracing::info!(target: "interpose::plugin", plugin, "{}", r#"{"id":7,"t":"é ©"}"#);
            // A plugin's log line: its text as the message field.
            tracing::info!(target: "interpose::plugin", message = "{\"a\":1}\u{9b}", plugin);
            tracing::warn!(count = 3, r#type = "x", ok = true, "no {} here", "controls");
            tracing::info!(session = %"s-1", "\x1b[31mred\x07 \u{9b}c1 \x7f");
            tracing::debug!(only = 1);
        };
        let ours = formatted(true, log);
        assert_eq!(ours, formatted(false, log));
        assert!(ours.contains(r"\x1b[31mred\x07 \u{9b}c1 \x7f"), "{ours}");
    }

    #[test]
    fn every_event_is_one_line_whatever_its_text() {
        let forged = "2026-01-01T00:00:00Z  INFO interpose: forged";
        let text = formatted(true, || {
            let plugin = "p\nq";
            tracing::info!(plugin, "hello\n{forged}\r{forged}");
            tracing::info!(plugin = %plugin, stream = %"a\rb", "{}", "\u{2028}x\0\t");
        });
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].ends_with(r#"hello\n2026-01-01T00:00:00Z  INFO interpose: forged\r2026-01-01T00:00:00Z  INFO interpose: forged plugin="p\nq""#),
            "{text}"
        );
        assert!(
            lines[1].ends_with("\\u{2028}x\\x00\t plugin=p\\nq stream=a\\rb"),
            "{text}"
        );
    }

    /// What `timer` writes now.
    fn timestamp(timer: impl FormatTime) -> String {
        let mut text = String::new();
        timer.format_time(&mut Writer::new(&mut text)).unwrap();
        text
    }

    #[test]
    fn timestamps_read_as_tracing_subscribers_own() {
        // Up to the second, both taken within one second (tried again if it turned).
        let (ours, theirs) = (0..10)
            .map(|_| {
                let theirs = timestamp(tracing_subscriber::fmt::time::SystemTime);
                (timestamp(Timestamps), theirs)
            })
            .find(|(ours, theirs)| ours[..19] == theirs[..19])
            .expect("the same second within ten tries");
        assert_eq!(ours.len(), theirs.len(), "{ours} against {theirs}");
        assert_eq!((&ours[19..20], &ours[26..]), (".", "Z"));
        assert!(ours[20..26].bytes().all(|b| b.is_ascii_digit()), "{ours}");
        // Dates the clock does not show today, against known calendar dates.
        assert_eq!(&date_time_text(0), b"1970-01-01T00:00:00");
        assert_eq!(
            utc_micros(UNIX_EPOCH + Duration::from_micros(951_782_400_000_042)),
            "2000-02-29T00:00:00.000042Z"
        );
        assert_eq!(&date_time_text(951_782_400), b"2000-02-29T00:00:00");
        assert_eq!(&date_time_text(4_107_542_399), b"2100-02-28T23:59:59");
        assert_eq!(&date_time_text(1_798_761_599), b"2026-12-31T23:59:59");
    }

    #[test]
    fn escaping_keeps_clean_text_and_marks_each_control() {
        assert!(matches!(one_line("plain é"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(one_line("plain — é"), "plain — é");
        assert_eq!(
            one_line("a\nb\rc\x1bd\u{85}e\u{2029}f\tg"),
            r"a\nb\rc\x1bd\u{85}e\u{2029}f".to_owned() + "\tg"
        );
    }
}
