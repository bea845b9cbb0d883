//! Writes a recording on its own thread: the relay only copies each message into a
//! bounded queue, and never waits for the file. When the queue is full, the line is
//! dropped and counted.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use tokio::runtime::Handle;

use super::format::{Captured, WITHHELD};
use crate::session::intercept::{Direction, Intercepted, Interceptor, SharedInterceptor, Verdict};
use crate::wire::jsonrpc::{ErrorObject, Kind, Payload, raw};

/// Messages queued for the writer at most; past that, lines are dropped.
pub const QUEUE_CAPACITY: usize = 16 * 1024;

/// How often the writer takes what is queued and writes it.
pub const DRAIN_INTERVAL: Duration = Duration::from_millis(20);

enum Queued {
    Line(Box<Captured>),
    /// Write what came before, flush, and stop.
    Finish,
}

/// The relay's end of the queue.
#[derive(Clone)]
pub(super) struct Sink {
    queue: SyncSender<Queued>,
    dropped: Arc<AtomicU64>,
}

impl Sink {
    /// Queues a line, or counts it as dropped when the writer is behind (or gone).
    pub(super) fn push(&self, captured: Captured) {
        match self.queue.try_send(Queued::Line(Box::new(captured))) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The writer thread and the queue to it.
pub(super) struct Writer {
    sink: Sink,
    thread: JoinHandle<()>,
}

impl Writer {
    /// Opens `path` (created owner-only, or appended to) and starts the writer thread.
    /// `redact`, if given, runs over every message before it is written; its calls run
    /// on `runtime`.
    pub(super) fn start(
        path: &Path,
        redact: Option<SharedInterceptor>,
        runtime: Handle,
    ) -> anyhow::Result<Self> {
        let file = open(path)?;
        let (queue, receiver) = sync_channel(QUEUE_CAPACITY);
        let dropped = Arc::new(AtomicU64::new(0));
        let state = WriterState {
            out: BufWriter::new(file),
            path: path.to_owned(),
            dropped: dropped.clone(),
            reported: 0,
            redact: redact.map(|chain| (chain, runtime)),
        };
        let thread = std::thread::Builder::new()
            .name("interpose-record".into())
            .spawn(move || state.run(receiver))
            .context("cannot start the recording's writer thread")?;
        Ok(Writer {
            sink: Sink { queue, dropped },
            thread,
        })
    }

    pub(super) fn sink(&self) -> Sink {
        self.sink.clone()
    }

    /// Writes everything queued so far, flushes and stops the thread. Blocks.
    pub(super) fn finish(self) {
        // Fails only when the thread already ended (a write error, logged then).
        let _ = self.sink.queue.send(Queued::Finish);
        if self.thread.join().is_err() {
            tracing::error!("the recording's writer thread panicked");
        }
    }
}

/// Creates the file with mode 0600, or opens it to append. An existing file others
/// can read is kept as it is, with a warning.
fn open(path: &Path) -> anyhow::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot open the recording file {}", path.display()))?;
    let mode = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        tracing::warn!(
            file = %path.display(),
            "the recording file already exists and others may read it (mode {:o}); it will hold raw traffic",
            mode & 0o777
        );
    }
    Ok(file)
}

struct WriterState {
    out: BufWriter<File>,
    path: PathBuf,
    dropped: Arc<AtomicU64>,
    /// Dropped lines already logged.
    reported: u64,
    redact: Option<(SharedInterceptor, Handle)>,
}

impl WriterState {
    fn run(mut self, receiver: Receiver<Queued>) {
        // Polled, not waited on: a writer blocked in `recv` would have to be woken by
        // the relay for every message, a system call on the message path.
        loop {
            loop {
                let captured = match receiver.try_recv() {
                    Ok(Queued::Line(captured)) => captured,
                    Err(TryRecvError::Empty) => break,
                    Ok(Queued::Finish) | Err(TryRecvError::Disconnected) => {
                        self.flush();
                        return;
                    }
                };
                if let Err(e) = self.write(*captured) {
                    tracing::error!(
                        file = %self.path.display(),
                        "cannot write the recording, recording stops: {e}"
                    );
                    return;
                }
            }
            self.flush();
            std::thread::sleep(DRAIN_INTERVAL);
        }
    }

    fn write(&mut self, mut captured: Captured) -> std::io::Result<()> {
        if let Some((chain, runtime)) = &self.redact {
            runtime.block_on(redact(chain.as_ref(), &mut captured));
        }
        serde_json::to_writer(&mut self.out, &captured.to_line())?;
        self.out.write_all(b"\n")
    }

    fn flush(&mut self) {
        if let Err(e) = self.out.flush() {
            tracing::error!(file = %self.path.display(), "cannot write the recording: {e}");
        }
        let dropped = self.dropped.load(Ordering::Relaxed);
        if dropped > self.reported {
            tracing::warn!(
                file = %self.path.display(),
                dropped_total = dropped,
                "the recording fell behind: {} message(s) were not recorded (the traffic itself was not slowed)",
                dropped - self.reported
            );
            self.reported = dropped;
        }
    }
}

/// Runs the redaction chain over every part of `captured` that is written: the
/// message as received and what its verdict made of it. A rewrite is what gets
/// recorded; anything else the chain does to a part withholds that part.
async fn redact(chain: &dyn Interceptor, captured: &mut Captured) {
    let mut withheld = Vec::new();
    let received = Part {
        direction: captured.direction,
        kind: captured.kind,
        payload: captured.payload.take(),
        error: captured.error.take(),
    };
    let received = redact_part(chain, captured, received, &mut withheld).await;
    captured.payload = received.payload;
    captured.error = received.error;
    let verdict = std::mem::replace(&mut captured.verdict, Verdict::Pass);
    captured.verdict = match verdict {
        Verdict::Pass => Verdict::Pass,
        // The answer the chain made goes back to the request's sender.
        Verdict::Respond(result) if captured.kind == Kind::Request => {
            let part = Part::payload(captured.direction.reversed(), Kind::Response, result);
            Verdict::Respond(redact_payload(chain, captured, part, &mut withheld).await)
        }
        // A rewritten error is forwarded as a result.
        Verdict::Rewrite(payload) | Verdict::Respond(payload) => {
            let kind = match captured.kind {
                Kind::Error => Kind::Response,
                kind => kind,
            };
            let part = Part::payload(captured.direction, kind, payload);
            Verdict::Rewrite(redact_payload(chain, captured, part, &mut withheld).await)
        }
        Verdict::Reject(error) => {
            let direction = match captured.kind {
                Kind::Request => captured.direction.reversed(),
                _ => captured.direction,
            };
            let part = Part {
                direction,
                kind: Kind::Error,
                payload: None,
                error: Some(error),
            };
            let part = redact_part(chain, captured, part, &mut withheld).await;
            Verdict::Reject(part.error.unwrap_or_else(|| ErrorObject::new(0, WITHHELD)))
        }
    };
    if !withheld.is_empty() {
        captured.withheld = Some(withheld.join("; "));
    }
}

async fn redact_payload(
    chain: &dyn Interceptor,
    head: &Captured,
    part: Part,
    withheld: &mut Vec<String>,
) -> Payload {
    let part = redact_part(chain, head, part, withheld).await;
    part.payload.unwrap_or_else(|| raw("null").into())
}

/// A message, or what a verdict made of one, as the redaction chain is asked about it.
struct Part {
    direction: Direction,
    kind: Kind,
    payload: Option<Payload>,
    error: Option<ErrorObject>,
}

impl Part {
    fn payload(direction: Direction, kind: Kind, payload: Payload) -> Self {
        Part {
            direction,
            kind,
            payload: Some(payload),
            error: None,
        }
    }
}

async fn redact_part(
    chain: &dyn Interceptor,
    head: &Captured,
    mut part: Part,
    withheld: &mut Vec<String>,
) -> Part {
    let msg = Intercepted {
        direction: part.direction,
        kind: part.kind,
        method: &head.method,
        id: head.id.as_deref(),
        payload: part.payload.as_ref(),
        error: part.error.as_ref(),
        request_payload: None,
        elapsed: None,
        session: &head.session,
        shared_session: false,
        server: &head.server,
        trace: None,
        principal: None,
    };
    let why = match chain.intercept(msg).await {
        Verdict::Pass => return part,
        Verdict::Rewrite(payload) | Verdict::Respond(payload) if part.kind != Kind::Error => {
            part.payload = Some(payload);
            return part;
        }
        Verdict::Reject(error) if part.kind == Kind::Error => {
            part.error = Some(error);
            return part;
        }
        Verdict::Reject(error) => {
            format!("the {} was rejected: {}", part.kind.as_str(), error.message)
        }
        Verdict::Rewrite(_) | Verdict::Respond(_) => "an error was turned into a result".to_owned(),
    };
    withheld.push(format!("--record-redact: {why}"));
    if let Some(error) = &mut part.error {
        *error = ErrorObject::new(error.code, WITHHELD);
    } else {
        part.payload = Some(raw(serde_json::to_string(WITHHELD).unwrap_or_default()).into());
    }
    part
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::session::intercept::VerdictFuture;

    fn captured(id: u32) -> Captured {
        Captured {
            time: SystemTime::now(),
            session: "s".into(),
            server: "b".into(),
            direction: Direction::ToServer,
            kind: Kind::Request,
            method: "tools/call".into(),
            id: Some(raw(id.to_string())),
            payload: None,
            error: None,
            verdict: Verdict::Pass,
            withheld: None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn lines_are_appended_in_order_to_an_owner_only_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rec.jsonl");
        for run in 0..2 {
            let writer = Writer::start(&path, None, Handle::current()).unwrap();
            let sink = writer.sink();
            for id in 0..3 {
                sink.push(captured(run * 10 + id));
            }
            tokio::task::spawn_blocking(move || writer.finish())
                .await
                .unwrap();
        }
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        let ids: Vec<String> = text
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["id"].to_string())
            .collect();
        assert_eq!(ids, ["0", "1", "2", "10", "11", "12"]);
    }

    /// Rewrites notifications, cannot check responses, passes the rest.
    struct Redactor;

    impl Interceptor for Redactor {
        fn intercept<'a>(&'a self, msg: Intercepted<'a>) -> VerdictFuture<'a> {
            VerdictFuture::ready(match msg.kind {
                Kind::Notification => Verdict::Rewrite(raw(r#"{"clean":true}"#).into()),
                Kind::Response => Verdict::Reject(ErrorObject::new(-1, "cannot check")),
                _ => Verdict::Pass,
            })
        }
    }

    #[tokio::test]
    async fn redaction_records_rewrites_and_withholds_what_it_cannot_check() {
        let mut notification = captured(0);
        notification.kind = Kind::Notification;
        notification.payload = Some(raw(r#"{"secret":"sk-1"}"#).into());
        redact(&Redactor, &mut notification).await;
        assert_eq!(notification.payload.unwrap().get(), r#"{"clean":true}"#);
        assert_eq!(notification.withheld, None);

        // A request the chain answered: the request passes, its answer is withheld.
        let mut answered = captured(1);
        answered.payload = Some(raw(r#"{"name":"x"}"#).into());
        answered.verdict = Verdict::Respond(raw(r#"{"secret":"sk-1"}"#).into());
        redact(&Redactor, &mut answered).await;
        assert_eq!(answered.payload.unwrap().get(), r#"{"name":"x"}"#);
        assert!(matches!(&answered.verdict, Verdict::Respond(p) if p.get() == r#""[withheld]""#));
        assert_eq!(
            answered.withheld.as_deref(),
            Some("--record-redact: the response was rejected: cannot check")
        );
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let (queue, _receiver) = sync_channel(2);
        let sink = Sink {
            queue,
            dropped: Arc::new(AtomicU64::new(0)),
        };
        for id in 0..5 {
            sink.push(captured(id));
        }
        assert_eq!(sink.dropped.load(Ordering::Relaxed), 3);
    }
}
