//! What interpose tells its operators about itself: Prometheus metrics
//! ([`metrics`]), served at `/metrics` on the HTTP listener and on the admin listener
//! ([`crate::downstream::admin`]), which also answers the health probes for stdio mode.
//!
//! Every layer counts into the one process-wide registry, so this module depends on
//! nothing but the message types of `wire`.

pub mod metrics;

pub use metrics::metrics;

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
