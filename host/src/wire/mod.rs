//! What travels: JSON-RPC messages as the proxy sees them (the envelope parsed, the
//! payload kept as raw text), their newline-delimited framing, MCP's HTTP codec (headers,
//! SSE), the [`link::Link`] by which a peer's messages reach the session layer, and the
//! [`handoff::Handoff`] a session carries to another replica. Both sides and the
//! session layer build on this; it builds on nothing of the proxy.

pub mod framing;
pub mod handoff;
pub mod jsonrpc;
pub mod link;
pub mod mcp_http;
