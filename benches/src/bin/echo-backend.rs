//! A fast stdio MCP server with one `echo` tool: the backend every benchmark target
//! sits in front of. Blocking IO and raw `serde_json`, so its own cost stays small and
//! the differences between targets are the proxies' cost. `--tools N` lists N tools
//! (`echo` and N-1 that cannot be called) so a `tools/list` has a realistic size.

use std::io::{self, BufRead, BufWriter, Write};
use std::sync::OnceLock;

use clap::Parser;
use serde_json::{Value, json};

// `--http ADDR`: the HTTP baseline for http-bench, with this file's `answer`.
#[path = "../echo_http.rs"]
mod echo_http;

/// Answered when the client does not say which protocol version it wants.
const DEFAULT_PROTOCOL_VERSION: &str = "2025-06-18";

/// A stdio MCP server with an `echo` tool (or, with `--http`, a Streamable HTTP one).
#[derive(Parser)]
#[command(name = "echo-backend")]
struct Cli {
    /// Serve Streamable HTTP at `/mcp` on this address instead of stdio.
    #[arg(long, value_name = "ADDR")]
    http: Option<String>,
    /// Tools in `tools/list`: `echo`, then N-1 others with descriptions and schemas
    /// the size of real servers' (calling them is an error).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    tools: u16,
}

/// The `tools/list` result, built once at start: the list is the same every time.
static TOOLS: OnceLock<Value> = OnceLock::new();

fn main() -> io::Result<()> {
    let cli = Cli::parse();
    TOOLS.get_or_init(|| tool_list(usize::from(cli.tools)));
    if let Some(addr) = &cli.http {
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
        "tools/list" => TOOLS.get_or_init(|| tool_list(1)).clone(),
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

/// The `tools/list` result with `count` tools: `echo` first, then tools shaped like
/// those of common servers (files, issues, SQL, chat, web, calendar), numbered so
/// every name is unique.
fn tool_list(count: usize) -> Value {
    let echo = json!({
        "name": "echo",
        "description": "Returns its `text` argument unchanged.",
        "inputSchema": {
            "type": "object",
            "properties": { "text": { "type": "string" } },
            "required": ["text"],
        },
    });
    let others = (1..count).map(|n| {
        let (base, mut tool) = match n % 6 {
            0 => (
                "read_file",
                json!({
                    "description": "Reads a file from the workspace and returns its contents as text. Paths are relative to the workspace root; files over 1 MiB are cut, and binary files are returned base64-encoded with their MIME type.",
                    "inputSchema": {
                        "type": "object",
                        "properties": {
                            "path": { "type": "string", "description": "Path of the file, relative to the workspace root." },
                            "offset": { "type": "integer", "minimum": 1, "description": "First line to return (1-based)." },
                            "limit": { "type": "integer", "minimum": 1, "maximum": 10000, "description": "Most lines to return." },
                        },
                        "required": ["path"],
                    },
                }),
            ),
            1 => (
                "search_issues",
                json!({
                    "description": "Searches issues and pull requests in a repository. Returns the number, title, state, labels and author of each match, newest first.",
                    "inputSchema": {
                        "type": "object",
                        "properties": {
                            "repository": { "type": "string", "description": "owner/name of the repository." },
                            "query": { "type": "string", "description": "Search terms; supports the tracker's qualifiers such as `author:` and `label:`." },
                            "state": { "type": "string", "enum": ["open", "closed", "all"], "default": "open" },
                            "labels": { "type": "array", "items": { "type": "string" }, "description": "Only issues with all of these labels." },
                            "per_page": { "type": "integer", "minimum": 1, "maximum": 100, "default": 30 },
                        },
                        "required": ["repository", "query"],
                    },
                    "annotations": { "readOnlyHint": true, "openWorldHint": true },
                }),
            ),
            2 => (
                "run_query",
                json!({
                    "description": "Runs a read-only SQL query against the analytics database and returns at most `limit` rows as JSON objects, with the column types. Statements that write are refused.",
                    "inputSchema": {
                        "type": "object",
                        "properties": {
                            "sql": { "type": "string", "description": "One SELECT statement; use $1, $2... for parameters." },
                            "params": { "type": "array", "items": { "type": ["string", "number", "boolean", "null"] } },
                            "limit": { "type": "integer", "minimum": 1, "maximum": 5000, "default": 100 },
                            "timeout_ms": { "type": "integer", "minimum": 100, "default": 30000 },
                        },
                        "required": ["sql"],
                    },
                    "annotations": { "readOnlyHint": true },
                }),
            ),
            3 => (
                "send_message",
                json!({
                    "description": "Posts a message to a chat channel, or as a reply in a thread. Mentions notify the people named. Returns the message's timestamp, which identifies it.",
                    "inputSchema": {
                        "type": "object",
                        "properties": {
                            "channel": { "type": "string", "description": "Channel name (without #) or id." },
                            "text": { "type": "string", "description": "Message text in Markdown." },
                            "thread_ts": { "type": "string", "description": "Timestamp of the message to reply to." },
                            "mentions": { "type": "array", "items": { "type": "string" }, "description": "User ids to mention." },
                        },
                        "required": ["channel", "text"],
                    },
                    "annotations": { "destructiveHint": false, "openWorldHint": true },
                }),
            ),
            4 => (
                "fetch_url",
                json!({
                    "description": "Fetches a URL and returns its body converted to Markdown. Follows up to five redirects; pages longer than `max_length` characters are cut, and `start_index` reads on from there.",
                    "inputSchema": {
                        "type": "object",
                        "properties": {
                            "url": { "type": "string", "format": "uri" },
                            "max_length": { "type": "integer", "minimum": 1, "default": 5000 },
                            "start_index": { "type": "integer", "minimum": 0, "default": 0 },
                            "headers": { "type": "object", "additionalProperties": { "type": "string" }, "description": "Extra request headers." },
                        },
                        "required": ["url"],
                    },
                }),
            ),
            _ => (
                "create_event",
                json!({
                    "description": "Creates a calendar event and invites the attendees. Times are RFC 3339; without a time zone they are taken in the calendar's own.",
                    "inputSchema": {
                        "type": "object",
                        "properties": {
                            "title": { "type": "string" },
                            "start": { "type": "string", "format": "date-time" },
                            "end": { "type": "string", "format": "date-time" },
                            "attendees": { "type": "array", "items": { "type": "string", "format": "email" } },
                            "location": { "type": "string" },
                            "description": { "type": "string" },
                        },
                        "required": ["title", "start", "end"],
                    },
                }),
            ),
        };
        tool["name"] = format!("{base}_{n}").into();
        tool
    });
    json!({ "tools": std::iter::once(echo).chain(others).collect::<Vec<_>>() })
}

fn error_reply(id: Value, code: i64, message: &str) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_of_n_tools_has_echo_first_and_unique_names() {
        let list = tool_list(120);
        let tools = list["tools"].as_array().unwrap();
        assert_eq!(tools.len(), 120);
        assert_eq!(tools[0]["name"], "echo");
        let names: std::collections::HashSet<_> =
            tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(names.len(), 120);
        assert!(tools.iter().all(|t| t["inputSchema"]["type"] == "object"));
        // About the size of a real server's tools (400-700 bytes each).
        let bytes = list.to_string().len();
        assert!((40_000..90_000).contains(&bytes), "{bytes} bytes");
    }

    #[test]
    fn the_default_list_is_echo_alone() {
        let reply = answer(&json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list" })).unwrap();
        let tools = reply["result"]["tools"].as_array().unwrap();
        assert_eq!(tools.len(), 1);
        assert_eq!(tools[0]["name"], "echo");
    }
}
