//! What MCP over HTTP needs on both sides of the proxy (our servers downstream, our
//! clients upstream): header names, turning an HTTP body into frames, reading the few
//! fields of a payload that decide HTTP behaviour, and Server-Sent Events on the wire.

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use http::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::wire::framing::{Frame, parse_frames};
use crate::wire::jsonrpc::sniff_id;

/// The session id a server assigns on `initialize` (2025-03-26 to 2025-11-25).
pub const SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
/// The negotiated protocol version, on every request after `initialize`.
pub const PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
/// The SSE cursor a client resumes a stream from.
pub const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");
/// 2026-07-28: the request's method, mirrored for intermediaries.
pub const MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");
/// 2026-07-28: `params.name` or `params.uri`, mirrored for intermediaries.
pub const MCP_NAME: HeaderName = HeaderName::from_static("mcp-name");
/// 2026-07-28: the prefix of the headers that mirror tool arguments (`x-mcp-header`).
pub const MCP_PARAM_PREFIX: &str = "mcp-param-";

pub const EVENT_STREAM: &str = "text/event-stream";
pub const JSON: &str = "application/json";

/// The first revision without `initialize`, where each request carries its own
/// protocol version in `_meta` and HTTP has no sessions.
pub const FIRST_STATELESS_VERSION: &str = "2026-07-28";
/// The revisions without sessions interpose serves itself (as the HTTP server in front
/// of a stdio backend).
pub const STATELESS_VERSIONS: &[&str] = &[FIRST_STATELESS_VERSION];

/// Turns a complete HTTP body (one message or a batch) into frames, with the same cap
/// and the same errors as the line framing of stdio.
pub fn frames_from_body(body: &[u8], max_message_bytes: usize) -> Vec<Frame> {
    if body.len() > max_message_bytes {
        let prefix = String::from_utf8_lossy(&body[..body.len().min(64 * 1024)]);
        return vec![Frame::TooLong {
            len: body.len(),
            limit: max_message_bytes,
            id: sniff_id(&prefix),
        }];
    }
    match std::str::from_utf8(body) {
        Ok(text) if text.trim().is_empty() => Vec::new(),
        Ok(text) => parse_frames(text.trim()),
        Err(_) => vec![Frame::Malformed {
            error: crate::wire::jsonrpc::ParseError::Json("message is not valid UTF-8".into()),
            id: None,
        }],
    }
}

#[derive(Deserialize)]
struct WithMeta<'a> {
    #[serde(rename = "_meta", borrow, default)]
    meta: Option<RequestMeta<'a>>,
}

#[derive(Deserialize)]
struct RequestMeta<'a> {
    #[serde(rename = "io.modelcontextprotocol/protocolVersion", borrow, default)]
    protocol_version: Option<std::borrow::Cow<'a, str>>,
}

/// `params._meta["io.modelcontextprotocol/protocolVersion"]`: set on every request of
/// a client speaking 2026-07-28 or later, absent in the handshake era.
pub fn meta_protocol_version(params: Option<&RawValue>) -> Option<String> {
    let params = params?;
    if !params
        .get()
        .contains("io.modelcontextprotocol/protocolVersion")
    {
        return None;
    }
    let parsed: WithMeta = serde_json::from_str(params.get()).ok()?;
    Some(parsed.meta?.protocol_version?.into_owned())
}

/// What is missing from the per-request `_meta` envelope a 2026-07-28 request must
/// carry (`protocolVersion` and `clientCapabilities`; `clientInfo` is optional), if
/// anything.
pub fn envelope_problem(params: Option<&RawValue>) -> Option<&'static str> {
    let params: Option<serde_json::Value> = params.and_then(|p| serde_json::from_str(p.get()).ok());
    let Some(meta) = params
        .as_ref()
        .and_then(|p| p.get("_meta"))
        .and_then(|m| m.as_object())
    else {
        return Some("the request has no _meta");
    };
    if !meta
        .get("io.modelcontextprotocol/protocolVersion")
        .is_some_and(serde_json::Value::is_string)
    {
        return Some("_meta has no io.modelcontextprotocol/protocolVersion");
    }
    if !meta
        .get("io.modelcontextprotocol/clientCapabilities")
        .is_some_and(serde_json::Value::is_object)
    {
        return Some("_meta has no io.modelcontextprotocol/clientCapabilities");
    }
    None
}

/// The 2026-07-28 protocol headers of a client's request, values byte for byte:
/// `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name` and every `Mcp-Param-*`.
pub fn protocol_headers(headers: &HeaderMap) -> HeaderMap {
    headers
        .iter()
        .filter(|(name, _)| {
            *name == PROTOCOL_VERSION
                || *name == MCP_METHOD
                || *name == MCP_NAME
                || name.as_str().starts_with(MCP_PARAM_PREFIX)
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// The client's protocol headers after a plugin rewrote the request: each header the
/// client sent that describes the request (`Mcp-Method`, `Mcp-Name`,
/// `MCP-Protocol-Version`) now says what the rewritten request says, and for a
/// `tools/call` of a tool whose `x-mcp-header`s are `declared`, each `Mcp-Param-*`
/// mirrors its argument as rewritten (present exactly when the argument is). Other
/// headers the client did not send stay absent.
pub fn rederive_headers(
    sent: &HeaderMap,
    method: &str,
    params: Option<&RawValue>,
    declared: &ParamHeaders,
) -> HeaderMap {
    let mut headers = sent.clone();
    let mut set = |name: HeaderName, value: Option<String>| {
        if headers.contains_key(&name)
            && let Some(value) = value.and_then(|v| HeaderValue::from_str(&v).ok())
        {
            headers.insert(name, value);
        }
    };
    set(MCP_METHOD, Some(method.to_owned()));
    set(
        MCP_NAME,
        request_name(method, params).map(|name| encode_header_value(&name)),
    );
    set(PROTOCOL_VERSION, meta_protocol_version(params));
    if method == "tools/call" {
        mirror_param_headers(&mut headers, params, declared);
    }
    headers
}

/// Sets each `Mcp-Param-*` the called tool declares from its argument in `params`.
fn mirror_param_headers(
    headers: &mut HeaderMap,
    params: Option<&RawValue>,
    declared: &ParamHeaders,
) {
    let params: serde_json::Value = params
        .and_then(|p| serde_json::from_str(p.get()).ok())
        .unwrap_or_default();
    let Some(pairs) = params["name"].as_str().and_then(|name| declared.get(name)) else {
        return;
    };
    for (header, arg) in pairs {
        let Ok(name) = HeaderName::from_bytes(format!("{MCP_PARAM_PREFIX}{header}").as_bytes())
        else {
            continue;
        };
        let value = match params["arguments"].get(arg) {
            Some(serde_json::Value::String(s)) => Some(encode_header_value(s)),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            Some(serde_json::Value::Bool(b)) => Some(b.to_string()),
            _ => None,
        };
        match value.and_then(|v| HeaderValue::from_str(&v).ok()) {
            Some(value) => headers.insert(name, value),
            None => headers.remove(name),
        };
    }
}

/// Per tool name, its `(header name, argument name)` pairs from `x-mcp-header`.
pub type ParamHeaders = std::collections::HashMap<String, Vec<(String, String)>>;

/// Records the `x-mcp-header` declarations of a `tools/list` result (anything else is
/// left alone; the substring test keeps other answers from being parsed).
pub fn record_param_headers(declared: &mut ParamHeaders, result: &RawValue) {
    if !result.get().contains("x-mcp-header") {
        return;
    }
    #[derive(Deserialize)]
    struct List {
        tools: Vec<Tool>,
    }
    #[derive(Deserialize)]
    struct Tool {
        name: String,
        #[serde(rename = "inputSchema", default)]
        input_schema: serde_json::Value,
    }
    let Ok(list) = serde_json::from_str::<List>(result.get()) else {
        return;
    };
    for tool in list.tools {
        let pairs: Vec<(String, String)> = tool.input_schema["properties"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(arg, schema)| {
                let header = schema.get("x-mcp-header")?.as_str()?;
                Some((header.to_owned(), arg.clone()))
            })
            .collect();
        if pairs.is_empty() {
            declared.remove(&tool.name);
        } else {
            declared.insert(tool.name, pairs);
        }
    }
}

/// 2026-07-28 Server Validation of `Mcp-Param-{Name}` for a `tools/call`: each header
/// the tool declares must be visible ASCII, decode (strict base64 when encoded), and
/// equal the argument it mirrors (numbers compared as numbers); a header that is
/// absent while its argument is given is a mismatch. Why not, if it fails.
pub fn check_param_headers(
    declared: &ParamHeaders,
    headers: &HeaderMap,
    method: &str,
    params: Option<&RawValue>,
) -> Result<(), String> {
    if method != "tools/call" {
        return Ok(());
    }
    let params: serde_json::Value = params
        .and_then(|p| serde_json::from_str(p.get()).ok())
        .unwrap_or_default();
    let Some(pairs) = params["name"].as_str().and_then(|name| declared.get(name)) else {
        return Ok(());
    };
    for (header, arg) in pairs {
        let name = format!("{MCP_PARAM_PREFIX}{header}");
        let argument = params["arguments"].get(arg).filter(|v| !v.is_null());
        let Some(value) = headers.get(name.to_ascii_lowercase().as_str()) else {
            if argument.is_some() {
                return Err(format!("the Mcp-Param-{header} header is absent"));
            }
            continue;
        };
        let decoded = value
            .to_str()
            .ok()
            .and_then(decode_header_value)
            .ok_or_else(|| format!("the Mcp-Param-{header} header is not a valid value"))?;
        let matches = match argument {
            Some(serde_json::Value::String(s)) => *s == decoded,
            Some(serde_json::Value::Number(n)) => {
                decoded.parse::<f64>().is_ok_and(|h| n.as_f64() == Some(h))
            }
            Some(serde_json::Value::Bool(b)) => decoded == b.to_string(),
            _ => false,
        };
        if !matches {
            return Err(format!(
                "the Mcp-Param-{header} header does not match the argument {arg}"
            ));
        }
    }
    Ok(())
}

/// `result.protocolVersion` of an `initialize` result.
pub fn negotiated_version(result: &RawValue) -> Option<String> {
    #[derive(Deserialize)]
    struct Init {
        #[serde(rename = "protocolVersion")]
        protocol_version: String,
    }
    serde_json::from_str::<Init>(result.get())
        .ok()
        .map(|i| i.protocol_version)
}

/// The 2026-07-28 `Mcp-Name` of a request: its subject (`params.name` of tools and
/// prompts, `params.uri` of `resources/read`), for the three methods that carry one.
pub fn request_name(method: &str, params: Option<&RawValue>) -> Option<String> {
    matches!(method, "tools/call" | "prompts/get" | "resources/read")
        .then(|| interpose_core::subject(method, params?.get()))
        .flatten()
}

/// A header value as 2026-07-28 asks: plain when it is safe visible ASCII, otherwise
/// `=?base64?...?=` of its UTF-8 bytes.
pub fn encode_header_value(value: &str) -> String {
    use base64::Engine;
    let plain = !value.is_empty()
        && value.bytes().all(|b| (0x20..=0x7e).contains(&b))
        && value.trim() == value
        && !(value.starts_with("=?base64?") && value.ends_with("?="));
    if plain {
        value.to_owned()
    } else {
        let encoded = base64::engine::general_purpose::STANDARD.encode(value.as_bytes());
        format!("=?base64?{encoded}?=")
    }
}

/// The value a 2026-07-28 header carries, decoding `=?base64?...?=`; `None` when the
/// encoding is broken.
pub fn decode_header_value(value: &str) -> Option<String> {
    use base64::Engine;
    match value
        .strip_prefix("=?base64?")
        .and_then(|rest| rest.strip_suffix("?="))
    {
        Some(encoded) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok()?;
            String::from_utf8(bytes).ok()
        }
        None => Some(value.to_owned()),
    }
}

/// Whether the handshake-era lifecycle applies to `version` (sessions, GET stream,
/// server-to-client requests), as opposed to 2026-07-28 and later.
pub fn has_sessions(version: &str) -> bool {
    version < FIRST_STATELESS_VERSION
}

/// One Server-Sent Event, ready to write. Data that spans lines (pretty-printed JSON
/// from a peer) is split into several `data:` lines, which the reader joins again.
pub fn sse_event(id: Option<&str>, event: Option<&str>, data: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + 32);
    if let Some(event) = event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(event.as_bytes());
        out.extend_from_slice(b"\n");
    }
    if let Some(id) = id {
        out.extend_from_slice(b"id: ");
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(b"\n");
    }
    // A lone `\r` ends a line for the reader too (JSON may use it as whitespace), so it
    // must start a new `data:` line, or the rest of the line reads as a bad field.
    let lines = data
        .split('\n')
        .flat_map(|line| line.strip_suffix('\r').unwrap_or(line).split('\r'));
    for line in lines {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\n");
    }
    out.extend_from_slice(b"\n");
    out.freeze()
}

/// The event a resumable stream starts with: its id is the client's first cursor (so it
/// can resume even before any message came), `retry` how long to wait before doing so,
/// and the data is empty so there is nothing to deliver.
pub fn sse_priming_event(id: &str, retry_ms: u64) -> Bytes {
    Bytes::from(format!("id: {id}\nretry: {retry_ms}\ndata: \n\n"))
}

/// An SSE comment: keeps idle connections open and finds dead ones.
pub const SSE_KEEP_ALIVE: &[u8] = b":\n\n";

/// Why reading an event stream failed.
#[derive(Debug, thiserror::Error)]
pub enum SseReadError {
    #[error("an event exceeds the {0}-byte limit")]
    TooLarge(usize),
    #[error("{0}")]
    Stream(String),
}

/// Parses Server-Sent Events from a body, refusing events larger than `max_event_bytes`
/// (sse-stream itself buffers without bound).
pub fn read_events<S, E>(
    body: S,
    max_event_bytes: usize,
) -> impl Stream<Item = Result<sse_stream::Sse, SseReadError>> + Send
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    let limit = max_event_bytes.saturating_add(1024);
    let guarded = body.scan(EventSizeGuard::default(), move |guard, chunk| {
        let item = match chunk {
            Ok(bytes) if guard.add(&bytes) > limit => Err(GuardError::TooLarge),
            Ok(bytes) => Ok(bytes),
            Err(e) => Err(GuardError::Body(e.to_string())),
        };
        std::future::ready(Some(item))
    });
    // sse-stream reports a bad line before the events it parsed earlier in the same
    // chunk, and we stop at the error: fed a line at a time, it hands those out first.
    let lines = guarded.flat_map(|chunk| futures::stream::iter(split_after_line_ends(chunk)));
    sse_stream::SseStream::from_bytes_stream(lines).map(move |item| {
        item.map_err(|e| match e {
            sse_stream::Error::Body(inner)
                if matches!(inner.downcast_ref(), Some(GuardError::TooLarge)) =>
            {
                SseReadError::TooLarge(max_event_bytes)
            }
            other => SseReadError::Stream(other.to_string()),
        })
    })
}

/// The chunk cut after every `\n` and `\r` (without copying).
fn split_after_line_ends(chunk: Result<Bytes, GuardError>) -> Vec<Result<Bytes, GuardError>> {
    let Ok(bytes) = chunk else {
        return vec![chunk];
    };
    let mut pieces = Vec::new();
    let mut start = 0;
    for end in memchr::memchr2_iter(b'\n', b'\r', &bytes) {
        pieces.push(Ok(bytes.slice(start..=end)));
        start = end + 1;
    }
    if start < bytes.len() {
        pieces.push(Ok(bytes.slice(start..)));
    }
    pieces
}

#[derive(Debug, thiserror::Error)]
enum GuardError {
    #[error("SSE event too large")]
    TooLarge,
    #[error("{0}")]
    Body(String),
}

/// Counts the bytes since the last blank line (the end of an event).
#[derive(Default)]
struct EventSizeGuard {
    since_boundary: usize,
    last_was_newline: bool,
}

impl EventSizeGuard {
    /// Counts `bytes` in; returns the largest event size seen while doing so.
    fn add(&mut self, bytes: &[u8]) -> usize {
        let mut largest = self.since_boundary;
        for &b in bytes {
            match b {
                b'\r' => {}
                b'\n' if self.last_was_newline => self.since_boundary = 0,
                b'\n' => self.last_was_newline = true,
                _ => {
                    self.last_was_newline = false;
                    self.since_boundary += 1;
                    largest = largest.max(self.since_boundary);
                }
            }
        }
        largest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::jsonrpc::raw;

    #[test]
    fn reads_meta_protocol_version() {
        let params =
            raw(r#"{"name":"x","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}"#);
        assert_eq!(
            meta_protocol_version(Some(&params)).as_deref(),
            Some("2026-07-28")
        );
        assert_eq!(meta_protocol_version(Some(&raw(r#"{"_meta":{}}"#))), None);
    }

    #[test]
    fn envelope_needs_version_and_capabilities() {
        let complete = raw(
            r#"{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}"#,
        );
        assert_eq!(envelope_problem(Some(&complete)), None);
        assert_eq!(envelope_problem(None), Some("the request has no _meta"));
        let no_caps = raw(r#"{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}"#);
        assert_eq!(
            envelope_problem(Some(&no_caps)),
            Some("_meta has no io.modelcontextprotocol/clientCapabilities")
        );
        let no_version = raw(r#"{"_meta":{"io.modelcontextprotocol/clientCapabilities":{}}}"#);
        assert_eq!(
            envelope_problem(Some(&no_version)),
            Some("_meta has no io.modelcontextprotocol/protocolVersion")
        );
    }

    #[test]
    fn rewritten_requests_get_matching_headers_only_where_sent() {
        let mut sent = HeaderMap::new();
        sent.insert(MCP_NAME, HeaderValue::from_static("echo"));
        sent.insert("mcp-param-region", HeaderValue::from_static("eu"));
        let params = raw(r#"{"name":"ëcho","arguments":{}}"#);
        let headers = rederive_headers(&sent, "tools/call", Some(&params), &ParamHeaders::new());
        assert_eq!(headers[MCP_NAME], "=?base64?w6tjaG8=?=");
        assert_eq!(
            headers["mcp-param-region"], "eu",
            "an undeclared tool's headers pass as sent"
        );
        assert!(!headers.contains_key(MCP_METHOD), "never invented");
    }

    #[test]
    fn rewritten_arguments_are_mirrored_in_their_param_headers() {
        let mut declared = ParamHeaders::new();
        record_param_headers(
            &mut declared,
            &raw(
                r#"{"tools":[{"name":"t","inputSchema":{"type":"object","properties":{"region":{"type":"string","x-mcp-header":"Region"},"n":{"type":"number","x-mcp-header":"N"},"gone":{"type":"string","x-mcp-header":"Gone"}}}}]}"#,
            ),
        );
        let mut sent = HeaderMap::new();
        sent.insert("mcp-param-region", HeaderValue::from_static("eu"));
        sent.insert("mcp-param-gone", HeaderValue::from_static("x"));
        let params = raw(r#"{"name":"t","arguments":{"region":"Zürich","n":2.5}}"#);
        let headers = rederive_headers(&sent, "tools/call", Some(&params), &declared);
        assert_eq!(headers["mcp-param-region"], "=?base64?WsO8cmljaA==?=");
        assert_eq!(headers["mcp-param-n"], "2.5");
        assert!(
            !headers.contains_key("mcp-param-gone"),
            "its argument is gone"
        );
        assert_eq!(
            check_param_headers(&declared, &headers, "tools/call", Some(&params)),
            Ok(()),
            "what the backend checks now holds"
        );
    }

    #[test]
    fn param_headers_must_mirror_their_arguments() {
        let mut declared = ParamHeaders::new();
        record_param_headers(
            &mut declared,
            &raw(
                r#"{"tools":[{"name":"t","inputSchema":{"type":"object","properties":{"region":{"type":"string","x-mcp-header":"Region"},"n":{"type":"number","x-mcp-header":"N"}}}}]}"#,
            ),
        );
        let call = raw(r#"{"name":"t","arguments":{"region":"Hello","n":2}}"#);
        let check = |pairs: &[(&str, &str)]| {
            let mut headers = HeaderMap::new();
            for (k, v) in pairs {
                headers.insert(
                    HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                );
            }
            check_param_headers(&declared, &headers, "tools/call", Some(&call))
        };
        assert_eq!(
            check(&[
                ("mcp-param-region", "=?base64?SGVsbG8=?="),
                ("mcp-param-n", "2.0")
            ]),
            Ok(())
        );
        assert!(
            check(&[
                ("mcp-param-region", "=?base64?SGVsbG8?="),
                ("mcp-param-n", "2")
            ])
            .is_err(),
            "padding"
        );
        assert!(
            check(&[
                ("mcp-param-region", "=?base64?SGVs!!!bG8=?="),
                ("mcp-param-n", "2")
            ])
            .is_err(),
            "alphabet"
        );
        assert!(
            check(&[("mcp-param-region", "Other"), ("mcp-param-n", "2")]).is_err(),
            "mismatch"
        );
        assert!(check(&[("mcp-param-n", "2")]).is_err(), "absent");
    }

    #[test]
    fn header_values_are_base64_when_unsafe() {
        assert_eq!(encode_header_value("us-west1"), "us-west1");
        assert_eq!(
            encode_header_value("Hello, 世界"),
            "=?base64?SGVsbG8sIOS4lueVjA==?="
        );
        assert_eq!(encode_header_value(" padded "), "=?base64?IHBhZGRlZCA=?=");
        assert_eq!(
            encode_header_value("=?base64?literal?="),
            "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="
        );
    }

    #[test]
    fn header_values_decode_back() {
        for value in ["plain", "Hello, 世界", " padded ", "=?base64?literal?="] {
            assert_eq!(
                decode_header_value(&encode_header_value(value)).as_deref(),
                Some(value)
            );
        }
        assert_eq!(decode_header_value("=?base64?!!?="), None);
    }

    #[test]
    fn multi_line_data_becomes_several_data_lines() {
        let event = sse_event(Some("1-2"), None, "{\n\"a\":1}");
        assert_eq!(&event[..], b"id: 1-2\ndata: {\ndata: \"a\":1}\n\n");
    }

    #[test]
    fn version_shape() {
        assert!(has_sessions("2025-11-25"));
        assert!(!has_sessions("2026-07-28"));
    }

    #[tokio::test]
    async fn oversized_event_is_refused() {
        let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from("data: small\n\n")),
            Ok(Bytes::from(format!("data: {}\n\n", "x".repeat(5000)))),
        ];
        let mut events = Box::pin(read_events(futures::stream::iter(chunks), 1000));
        let first = events.next().await.unwrap().unwrap();
        assert_eq!(first.data.as_deref(), Some("small"));
        let second = events.next().await;
        assert!(
            matches!(second, Some(Err(SseReadError::TooLarge(1000)))),
            "{second:?}"
        );
    }
}
