//! Prints each message crossing the proxy, for the demo and `interpose replay`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::session::intercept::{
    Intercepted, Interceptor, SharedInterceptor, Verdict, VerdictFuture,
};
use crate::wire::jsonrpc::Kind;

/// What one plugin did, as the trace shows it.
pub struct TracedStep {
    pub line: String,
    /// On the answer a later plugin made to the traced message, walking back.
    pub on_chain_answer: bool,
}

/// Wraps the real interceptor and prints every message with the verdict it got.
pub struct Tracer {
    inner: SharedInterceptor,
    /// What each plugin did with the message being traced, filled by the chain.
    steps: Arc<Mutex<Vec<TracedStep>>>,
    started: Instant,
    messages: AtomicUsize,
    bytes: AtomicUsize,
    changed: AtomicUsize,
}

impl Tracer {
    pub fn new(inner: SharedInterceptor, steps: Arc<Mutex<Vec<TracedStep>>>) -> Self {
        Tracer {
            inner,
            steps,
            started: Instant::now(),
            messages: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            changed: AtomicUsize::new(0),
        }
    }

    pub fn print_header() {
        println!(
            "{:>9}  {:<3} {:<13} {:<32} {:>4} {:>9}  verdict",
            "time", "dir", "kind", "method", "id", "size"
        );
    }

    pub fn print_totals(&self) {
        println!(
            "{} messages ({} bytes of payload) crossed the proxy; {} were changed, answered or dropped by the interceptor.",
            self.messages.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
            self.changed.load(Ordering::Relaxed),
        );
    }
}

impl Interceptor for Tracer {
    fn intercept<'a>(&'a self, msg: Intercepted<'a>) -> VerdictFuture<'a> {
        self.inner.intercept(msg)
    }

    fn wants_request_payload(&self) -> bool {
        self.inner.wants_request_payload()
    }

    fn observe(&self, msg: &Intercepted<'_>, verdict: &Verdict) {
        self.inner.observe(msg, verdict);
        self.row(msg, verdict, true);
    }
}

impl Tracer {
    /// Counts `msg` and, with `print`, prints its row of the table. Returns what each
    /// plugin did with it (`NAME VERDICT`, in walk order; then those for a chain's
    /// answer, walking back, as `answer: NAME VERDICT`).
    pub fn row(&self, msg: &Intercepted<'_>, verdict: &Verdict, print: bool) -> Vec<String> {
        let size = msg.payload.map_or(0, |p| p.get().len());
        self.messages.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(size, Ordering::Relaxed);
        let verdict = match verdict {
            Verdict::Pass => "pass".to_owned(),
            Verdict::Rewrite(_) => "rewritten".to_owned(),
            Verdict::Respond(_) => "answered by the proxy".to_owned(),
            Verdict::Reject(e) if msg.kind == Kind::Notification => {
                format!("dropped: {}", e.message)
            }
            Verdict::Reject(e) => format!("rejected: {}", e.message),
        };
        if verdict != "pass" {
            self.changed.fetch_add(1, Ordering::Relaxed);
        }
        let kind = match msg.kind {
            Kind::Error => "error",
            kind => kind.as_str(),
        };
        let steps = std::mem::take(&mut *self.steps.lock().unwrap_or_else(|e| e.into_inner()));
        let (on_answer, on_message): (Vec<_>, Vec<_>) =
            steps.into_iter().partition(|step| step.on_chain_answer);
        let lines = |steps: Vec<TracedStep>| -> Vec<String> {
            steps.into_iter().map(|step| step.line).collect()
        };
        let (on_message, on_answer) = (lines(on_message), lines(on_answer));
        if print {
            let mut plugins = String::new();
            if !on_message.is_empty() {
                plugins = format!("  [{}]", on_message.join(", "));
            }
            if !on_answer.is_empty() {
                plugins.push_str(&format!(
                    ", its answer back through [{}]",
                    on_answer.join(", ")
                ));
            }
            println!(
                "{:>6.1} ms  {:<3} {:<13} {:<32} {:>4} {:>7} B  {verdict}{plugins}",
                self.started.elapsed().as_secs_f64() * 1000.0,
                msg.direction.arrow(),
                kind,
                msg.method,
                msg.id.map_or("", |id| id.get()),
                size,
            );
        }
        let mut steps = on_message;
        steps.extend(on_answer.into_iter().map(|line| format!("answer: {line}")));
        steps
    }
}
