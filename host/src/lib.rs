//! interpose: an MCP proxy whose every forwarded message runs through sandboxed
//! WebAssembly plugins.
//!
//! A message's way, folder by folder: a client speaks to [`downstream`] (stdio or the
//! HTTP server), which hands each client session to the [`session`] layer as a
//! [`wire::link::Link`]; the session's relay carries every JSON-RPC message across in
//! order, remaps ids, and asks the interceptor (the [`plugin`] chain) what to do with
//! each; [`upstream`] (a child process, HTTP, SSE, in-process) takes it to the backend,
//! and answers come back the same way. Messages stay raw JSON text ([`wire::jsonrpc`])
//! so that what the proxy does not know passes through byte for byte.
//!
//! Layers, each using only those below it: `run`/`demo`/`cli` > `plugin` > `session` >
//! `downstream`, `upstream` > `wire`; `telemetry` counts for all of them.

pub mod cli;
pub mod config;
pub mod demo;
pub mod downstream;
pub mod log_json;
pub mod log_output;
pub mod plugin;
pub mod record;
pub mod run;
pub mod servers;
pub mod session;
pub mod telemetry;
pub mod upstream;
pub mod wire;
