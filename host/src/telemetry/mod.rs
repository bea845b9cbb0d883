//! What interpose tells its operators about itself: Prometheus metrics
//! ([`metrics`]), served at `/metrics` on the HTTP listener and on the admin listener
//! ([`crate::downstream::admin`]), which also answers the health probes for stdio mode;
//! and OpenTelemetry traces ([`trace`]), exported over OTLP when asked for.
//!
//! Every layer counts into the one process-wide registry, so this module depends on
//! nothing but the message types of `wire`.

pub mod metrics;
pub mod trace;

use serde_json::value::RawValue;

pub use metrics::metrics;

use crate::wire::jsonrpc::{ErrorObject, Message};

/// The path metrics are scraped at, on either listener.
pub const METRICS_PATH: &str = "/metrics";

/// Answers a scrape: the registry in the Prometheus text format.
pub async fn serve_metrics() -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(http::header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics().encode(),
    )
        .into_response()
}

/// A client's request from its arrival to its answer: timed for the operation
/// metric and, when traces are exported, traced as a server span.
#[derive(Debug)]
pub struct Operation {
    clock: metrics::Operation,
    span: Option<trace::ServerSpan>,
}

/// Where a client's requests come from, as their spans record it.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The session's id; `None` when unrelated clients share the session.
    pub session: Option<&'a str>,
    pub transport: metrics::Transport,
}

impl Operation {
    /// A client's request to `method` arrived.
    pub fn start(
        method: &str,
        id: &RawValue,
        params: Option<&RawValue>,
        origin: Origin<'_>,
    ) -> Self {
        let span = trace::tracer().map(|tracer| {
            trace::ServerSpan::start(tracer, method, id, params, origin.session, origin.transport)
        });
        Operation {
            clock: metrics().operation(method, params),
            span,
        }
    }

    /// The context of the request's span, when traced: the parent of what it causes.
    pub fn trace_parent(&self) -> Option<&opentelemetry::trace::SpanContext> {
        self.span.as_ref().map(trace::ServerSpan::context)
    }

    /// The request got `answer` (from a server, a plugin, or the proxy).
    pub fn answered(&self, method: &str, answer: &Message) {
        metrics().operation_answered(&self.clock, method, answer);
        if let Some(span) = &self.span {
            span.end(method, Ok(answer));
        }
    }

    /// The request failed with `error`, which the relay or a plugin made.
    pub fn failed(&self, method: &str, error: &ErrorObject) {
        metrics().operation_failed(&self.clock, method, error.code);
        if let Some(span) = &self.span {
            span.end(method, Err(error));
        }
    }
}
