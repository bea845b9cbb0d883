//! interpose: an MCP proxy whose every forwarded message runs through sandboxed
//! WebAssembly plugins.
//!
//! The data path: a client [`transport`] (downstream) and a backend [`transport`]
//! (upstream) are joined by a [`relay::SessionRelay`], which carries every JSON-RPC
//! message across in order, remaps ids, and asks an [`intercept::Interceptor`] what
//! to do with each message. Messages stay raw JSON text ([`jsonrpc`]) so that what the
//! proxy does not know passes through byte for byte.

pub mod config;
pub mod demo;
pub mod framing;
pub mod intercept;
pub mod jsonrpc;
pub mod log_output;
pub mod plugin;
pub mod relay;
pub mod run;
pub mod transport;
