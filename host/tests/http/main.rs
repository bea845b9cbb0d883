//! The proxy's Streamable HTTP and SSE sides, client-facing and backend-facing, against
//! the real binary and real peers. One test binary per subject (each links the whole
//! host, wasmtime included); each file is a module.

#[path = "../http_support/mod.rs"]
mod http_support;

mod http_2026;
mod http_failure;
mod http_faults;
mod http_lazy;
mod http_metrics;
mod http_pairs;
mod http_record;
mod http_replicas;
mod http_resume;
mod http_rmcp;
mod http_security;
mod http_sessions;
