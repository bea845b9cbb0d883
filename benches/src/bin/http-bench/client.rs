//! An MCP client session over Streamable HTTP: just enough of the transport to
//! initialize, call `echo` and end the session, reading answers sent as JSON or SSE.

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};

/// The version the driver negotiates and then names in `MCP-Protocol-Version`.
const PROTOCOL_VERSION: &str = "2025-11-25";
const SESSION_ID: &str = "mcp-session-id";
/// No single request of this benchmark should take anywhere near this long; past it,
/// the target is taken as stuck rather than slow.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The parts of an incoming message the driver looks at; the payload is skipped
/// without being built, so the driver's own cost stays small.
#[derive(Deserialize)]
struct Incoming {
    id: Option<Value>,
    method: Option<IgnoredAny>,
    error: Option<Value>,
}

/// One client's HTTP connection pool: one per session, as 100 separate clients would
/// have, so sessions do not queue behind each other on shared connections.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        // Only ever 127.0.0.1; a proxy from the environment must not intervene.
        .no_proxy()
        .http1_only()
        .tcp_nodelay(true)
        .timeout(REQUEST_TIMEOUT)
        .build()?)
}

/// A session that has completed `initialize` + `notifications/initialized`.
pub struct McpSession {
    http: reqwest::Client,
    url: String,
    /// Absent if the server did not hand one out (it then serves without sessions).
    session_id: Option<HeaderValue>,
    next_id: u64,
}

/// The `tools/call` body for `echo` with this id and argument text.
pub fn echo_request(id: u64, text: &str) -> String {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "tools/call",
        "params": { "name": "echo", "arguments": { "text": text } },
    })
    .to_string()
}

impl McpSession {
    /// Initializes a session on `url` and checks that the `echo` tool is there.
    pub async fn open(http: reqwest::Client, url: &str) -> anyhow::Result<Self> {
        let mut session = McpSession {
            http,
            url: url.to_owned(),
            session_id: None,
            next_id: 0,
        };
        let init = json!({
            "jsonrpc": "2.0",
            "id": session.take_id(),
            "method": "initialize",
            "params": {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": { "name": "http-bench", "version": env!("CARGO_PKG_VERSION") },
            },
        });
        let response = session
            .post(init.to_string())
            .send()
            .await
            .context("initialize")?;
        session.session_id = response.headers().get(SESSION_ID).cloned();
        let (answer, _) = read_answer(response, 0, Instant::now()).await?;
        let answer: Value = serde_json::from_str(&answer)?;
        ensure!(
            answer.get("result").is_some(),
            "initialize failed: {answer}"
        );

        let response = session
            .post(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_owned())
            .send()
            .await?;
        ensure!(
            response.status() == reqwest::StatusCode::ACCEPTED,
            "notifications/initialized got {}",
            response.status()
        );

        let id = session.take_id();
        let list = json!({ "jsonrpc": "2.0", "id": id, "method": "tools/list" });
        let (answer, _) = session.request(list.to_string(), id).await?;
        let answer: Value = serde_json::from_str(&answer)?;
        ensure!(
            answer["result"]["tools"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t["name"] == "echo")),
            "no `echo` tool in {answer}"
        );
        Ok(session)
    }

    /// One `tools/call` of `echo`, timed from just before the request is sent to the
    /// moment its answer has been read (not the end of an SSE stream after it).
    pub async fn timed_echo(&mut self, text: &str) -> anyhow::Result<Duration> {
        let id = self.take_id();
        let (answer, elapsed) = self.request(echo_request(id, text), id).await?;
        let answer: Incoming = serde_json::from_str(&answer)?;
        ensure!(answer.error.is_none(), "echo failed: {:?}", answer.error);
        Ok(elapsed)
    }

    /// Ends the session (DELETE), so a proxy stops its backend now rather than at exit.
    pub async fn close(self) -> anyhow::Result<()> {
        let Some(id) = &self.session_id else {
            return Ok(());
        };
        let response = self
            .http
            .delete(&self.url)
            .header(SESSION_ID, id)
            .header("mcp-protocol-version", PROTOCOL_VERSION)
            .send()
            .await?;
        // 405 is a server's way to say clients may not end sessions.
        ensure!(
            response.status().is_success()
                || response.status() == reqwest::StatusCode::METHOD_NOT_ALLOWED,
            "DELETE got {}",
            response.status()
        );
        Ok(())
    }

    async fn request(&self, body: String, id: u64) -> anyhow::Result<(String, Duration)> {
        let start = Instant::now();
        let response = self.post(body).send().await?;
        read_answer(response, id, start).await
    }

    fn post(&self, body: String) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .post(&self.url)
            .header(ACCEPT, "application/json, text/event-stream")
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(session) = &self.session_id {
            request = request
                .header(SESSION_ID, session)
                .header("mcp-protocol-version", PROTOCOL_VERSION);
        }
        request
    }

    fn take_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id - 1
    }
}

/// Reads the answer to request `id` from a JSON or SSE response; returns its JSON text
/// and the time from `start` until it was read. An SSE stream is then read to its end,
/// untimed, so that the connection goes back to the pool instead of being closed.
async fn read_answer(
    mut response: reqwest::Response,
    id: u64,
    start: Instant,
) -> anyhow::Result<(String, Duration)> {
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        bail!("HTTP {status}: {body}");
    }
    let is_sse = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !is_sse {
        let body = response.text().await?;
        let elapsed = start.elapsed();
        ensure!(is_answer_to(&body, id), "not the answer to {id}: {body}");
        return Ok((body, elapsed));
    }
    let mut events = SseParser::default();
    while let Some(chunk) = response.chunk().await? {
        let Some(answer) = events
            .push(&chunk)
            .into_iter()
            .find(|data| is_answer_to(data, id))
        else {
            continue;
        };
        let elapsed = start.elapsed();
        while response.chunk().await?.is_some() {}
        return Ok((answer, elapsed));
    }
    bail!("the event stream ended without the answer to {id}")
}

/// Whether `data` is a response (not a request or notification) with this id.
fn is_answer_to(data: &str, id: u64) -> bool {
    serde_json::from_str::<Incoming>(data)
        .is_ok_and(|m| m.method.is_none() && m.id == Some(Value::from(id)))
}

/// Splits an SSE byte stream into the data of its events. Lines may end in LF or
/// CRLF; `id:`, `event:`, `retry:` and comments are skipped, as the driver needs none.
#[derive(Default)]
pub struct SseParser {
    pending: Vec<u8>,
    data: String,
    has_data: bool,
}

impl SseParser {
    /// Feeds the next bytes; returns the data of every event they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(bytes);
        let mut events = Vec::new();
        let mut consumed = 0;
        while let Some(end) = self.pending[consumed..].iter().position(|&b| b == b'\n') {
            let line = &self.pending[consumed..consumed + end];
            consumed += end + 1;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                if self.has_data {
                    events.push(std::mem::take(&mut self.data));
                    self.has_data = false;
                }
            } else if let Some(value) = line.strip_prefix(b"data:") {
                let value = value.strip_prefix(b" ").unwrap_or(value);
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&String::from_utf8_lossy(value));
                self.has_data = true;
            }
        }
        self.pending.drain(..consumed);
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_split_across_chunks_and_line_endings() {
        let mut p = SseParser::default();
        assert!(p.push(b": keep-alive\n\nid: 0-1\nda").is_empty());
        assert_eq!(p.push(b"ta: {\"a\":1}\r\n\r\nevent: x\n"), ["{\"a\":1}"]);
        assert_eq!(p.push(b"data: 1\ndata:2\n\n"), ["1\n2"]);
        // An event with no data is no event.
        assert!(p.push(b"id: 7\n\n").is_empty());
    }

    #[test]
    fn answers_are_told_from_requests_and_other_ids() {
        assert!(is_answer_to(r#"{"jsonrpc":"2.0","id":3,"result":{}}"#, 3));
        assert!(!is_answer_to(r#"{"jsonrpc":"2.0","id":4,"result":{}}"#, 3));
        assert!(!is_answer_to(
            r#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#,
            3
        ));
        assert!(!is_answer_to("", 3));
    }

    #[test]
    fn echo_request_carries_the_text() {
        let v: Value = serde_json::from_str(&echo_request(7, "a\"b")).unwrap();
        assert_eq!(v["id"], 7);
        assert_eq!(v["params"]["arguments"]["text"], "a\"b");
    }
}
