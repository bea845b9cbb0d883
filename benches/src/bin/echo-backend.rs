//! A fast stdio MCP server with one `echo` tool: the backend every benchmark target
//! sits in front of. Blocking IO and raw `serde_json`, so its own cost stays small and
//! the differences between targets are the proxies' cost.

use std::io::{self, BufRead, BufWriter, Write};

use serde_json::{Value, json};

// `--http ADDR`: the HTTP baseline for http-bench, with this file's `answer`.
#[path = "../echo_http.rs"]
mod echo_http;

/// Answered when the client does not say which protocol version it wants.
const DEFAULT_PROTOCOL_VERSION: &str = "2025-06-18";

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, addr] = args.as_slice()
        && flag == "--http"
    {
        return echo_http::serve(addr);
    }
    let stdin = io::stdin().lock();
    let mut out = BufWriter::new(io::stdout().lock());
    for line in stdin.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let reply = match serde_json::from_str::<Value>(&line) {
            Ok(message) => answer(&message),
            Err(e) => Some(error_reply(
                Value::Null,
                -32700,
                &format!("parse error: {e}"),
            )),
        };
        if let Some(reply) = reply {
            serde_json::to_writer(&mut out, &reply)?;
            out.write_all(b"\n")?;
            // One flush per message: the client is waiting for this very answer.
            out.flush()?;
        }
    }
    Ok(())
}

/// The reply to one message, or `None` for notifications and anything else
/// that carries no id (responses from the client, which this server never asks for).
fn answer(message: &Value) -> Option<Value> {
    let id = message.get("id")?.clone();
    let method = message.get("method")?.as_str().unwrap_or_default();
    let params = message.get("params").unwrap_or(&Value::Null);
    let result = match method {
        "initialize" => {
            // Agree to whatever version the client asks for, as the spec allows a
            // server that supports it; this echo server is the same in all of them.
            let version = params
                .get("protocolVersion")
                .and_then(Value::as_str)
                .unwrap_or(DEFAULT_PROTOCOL_VERSION);
            json!({
                "protocolVersion": version,
                "capabilities": { "tools": { "listChanged": false } },
                "serverInfo": { "name": "echo-backend", "version": env!("CARGO_PKG_VERSION") },
            })
        }
        "ping" => json!({}),
        "tools/list" => json!({
            "tools": [{
                "name": "echo",
                "description": "Returns its `text` argument unchanged.",
                "inputSchema": {
                    "type": "object",
                    "properties": { "text": { "type": "string" } },
                    "required": ["text"],
                },
            }],
        }),
        "tools/call" => {
            let name = params.get("name").and_then(Value::as_str);
            let text = params.pointer("/arguments/text").and_then(Value::as_str);
            match (name, text) {
                (Some("echo"), Some(text)) => json!({
                    "content": [{ "type": "text", "text": text }],
                    "isError": false,
                }),
                (Some("echo"), None) => {
                    return Some(error_reply(id, -32602, "echo needs a string `text`"));
                }
                _ => return Some(error_reply(id, -32602, "unknown tool")),
            }
        }
        _ => {
            return Some(error_reply(
                id,
                -32601,
                &format!("method not found: {method}"),
            ));
        }
    };
    Some(json!({ "jsonrpc": "2.0", "id": id, "result": result }))
}

fn error_reply(id: Value, code: i64, message: &str) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } })
}
