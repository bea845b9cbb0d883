//! What the criterion benchmarks share: payload sizes, `tools/call` payloads and
//! the message the chain is asked about.
#![allow(dead_code)] // each benchmark uses part of it

use serde_json::value::RawValue;

use interpose::session::intercept::{Direction, Intercepted};
use interpose::wire::jsonrpc::{Kind, Payload};

pub const SIZES: [(&str, usize); 2] = [("1KiB", 1024), ("100KiB", 100 * 1024)];

/// `tools/call` params of about `size` bytes.
pub fn tool_call(size: usize) -> Payload {
    let filler = "x".repeat(size.saturating_sub(40));
    RawValue::from_string(format!(
        r#"{{"name":"echo","arguments":{{"text":"{filler}"}}}}"#
    ))
    .expect("valid JSON")
    .into()
}

/// Prose-like text of `size` bytes, as a tool result; with `secret`, an e-mail
/// address in the middle.
pub fn tool_result(size: usize, secret: bool) -> Payload {
    let words = "the quick brown fox jumps over the lazy dog while 42 sleepy cats watch; ";
    let body = size.saturating_sub(60);
    let mut text: String = words.repeat(body / words.len() + 1);
    text.truncate(body);
    if secret {
        let middle = body / 2;
        text.replace_range(middle..middle + 17, " bob@example.com ");
    }
    RawValue::from_string(format!(
        r#"{{"content":[{{"type":"text","text":"{text}"}}],"isError":false}}"#
    ))
    .expect("valid JSON")
    .into()
}

/// A `tools/call` message of `kind`: a request goes to the server, an answer to
/// the client.
pub fn message<'a>(kind: Kind, payload: &'a Payload, id: &'a RawValue) -> Intercepted<'a> {
    Intercepted {
        direction: if kind == Kind::Request {
            Direction::ToServer
        } else {
            Direction::ToClient
        },
        kind,
        method: "tools/call",
        id: Some(id),
        payload: Some(payload),
        error: None,
        request_payload: None,
        elapsed: None,
        session: "bench",
        shared_session: false,
        server: "bench",
        trace: None,
        principal: None,
    }
}

/// The answer to the `tools/call` request `params`, carrying `result`, 250 µs after it.
pub fn response<'a>(params: &'a Payload, result: &'a Payload, id: &'a RawValue) -> Intercepted<'a> {
    Intercepted {
        direction: Direction::ToClient,
        kind: Kind::Response,
        payload: Some(result),
        request_payload: Some(params),
        elapsed: Some(std::time::Duration::from_micros(250)),
        ..message(Kind::Request, params, id)
    }
}
