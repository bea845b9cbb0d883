//! The proxy between a client on its stdin and stdout and real backends: the demo, rmcp
//! clients, and backends that misbehave. One test binary per subject (each links the
//! whole host, wasmtime included); each file is a module.

#[path = "../http_support/mod.rs"]
mod http_support;
#[path = "../support/mod.rs"]
mod support;

mod backend_faults;
mod demo;
mod metrics;
mod record;
mod resilience;
mod servers_config;
mod stdio_rmcp;
