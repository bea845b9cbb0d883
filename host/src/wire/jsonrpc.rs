//! JSON-RPC 2.0 messages as the proxy sees them: the envelope is parsed, the payload
//! (`params`, `result`, `error`) stays raw JSON text so that fields the proxy does not
//! know pass through byte for byte and nothing is re-serialized unless it must be.

use std::fmt;
use std::io::Write;
use std::ops::Deref;
use std::sync::Arc;

use serde::de::Deserializer;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Invalid JSON was received.
pub const PARSE_ERROR: i64 = -32700;
/// The JSON sent is not a valid request object.
pub const INVALID_REQUEST: i64 = -32600;
/// The method does not exist (or is not available).
pub const METHOD_NOT_FOUND: i64 = -32601;
/// The params of a request are invalid (2026-07-28: also a missing `_meta` envelope).
pub const INVALID_PARAMS: i64 = -32602;
/// Internal JSON-RPC error.
pub const INTERNAL_ERROR: i64 = -32603;
/// The backend is gone (exited, crashed or unreachable); the request was not answered.
pub const BACKEND_UNAVAILABLE: i64 = -32000;
/// A plugin refused the message or failed while handling it.
pub const PLUGIN_ERROR: i64 = -32001;

/// A JSON-RPC id exactly as it was written (a number, a string or `null`).
pub type RawId = Box<RawValue>;

/// A message's payload (`params`, `result`, `error`) as raw JSON text, shared by
/// reference count from the parser on: the plugin view, a kept request's params and
/// the writer hold the same bytes, and a clone copies none of them.
///
/// The text stays in the `Box<RawValue>` the parser made: an `Arc<RawValue>` cannot be
/// made from it without copying the text (or `unsafe`), so the box is shared instead.
#[derive(Clone)]
pub struct Payload(Arc<Box<RawValue>>);

impl Payload {
    /// Whether `self` and `other` share their bytes (a clone of one another).
    pub fn shares(&self, other: &Payload) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The text as a box of its own: moved out when nothing else holds it, copied
    /// when something does.
    pub fn into_raw(self) -> Box<RawValue> {
        Arc::try_unwrap(self.0).unwrap_or_else(|shared| (*shared).clone())
    }
}

impl From<Box<RawValue>> for Payload {
    fn from(raw: Box<RawValue>) -> Self {
        Payload(Arc::new(raw))
    }
}

impl Deref for Payload {
    type Target = RawValue;

    fn deref(&self) -> &RawValue {
        &self.0
    }
}

impl AsRef<RawValue> for Payload {
    fn as_ref(&self) -> &RawValue {
        self
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self.0, f)
    }
}

impl Serialize for Payload {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(d).map(Payload::from)
    }
}

/// One JSON-RPC message with its payload kept as raw JSON text.
#[derive(Debug, Clone)]
pub enum Message {
    Request {
        id: RawId,
        method: String,
        params: Option<Payload>,
    },
    Notification {
        method: String,
        params: Option<Payload>,
    },
    Response {
        id: RawId,
        result: Payload,
    },
    Error {
        id: RawId,
        error: Payload,
    },
}

/// Why a line could not be turned into a [`Message`].
#[derive(Debug, Clone, thiserror::Error)]
pub enum ParseError {
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("invalid JSON-RPC message: {0}")]
    Invalid(&'static str),
}

impl ParseError {
    /// The JSON-RPC error code a peer gets for this problem.
    pub fn code(&self) -> i64 {
        match self {
            ParseError::Json(_) => PARSE_ERROR,
            ParseError::Invalid(_) => INVALID_REQUEST,
        }
    }

    /// The id the sender's error answer carries (`None`: null). JSON-RPC 2.0 answers
    /// a parse error with id null, even when an id could still be read from the text;
    /// that id serves to fail the request a backend's unreadable answer belongs to.
    pub fn answer_id(&self, read: Option<RawId>) -> Option<RawId> {
        match self {
            ParseError::Json(_) => None,
            ParseError::Invalid(_) => read,
        }
    }
}

/// The outcome of parsing one line: usually one message, an array for a (2025-03-26) batch.
#[derive(Debug)]
pub enum Parsed {
    One(Message),
    Batch(Vec<Result<Message, (ParseError, Option<RawId>)>>),
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    jsonrpc: Option<&'a str>,
    #[serde(default, deserialize_with = "present")]
    id: Option<RawId>,
    #[serde(borrow, default)]
    method: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, deserialize_with = "present")]
    params: Option<Box<RawValue>>,
    #[serde(default, deserialize_with = "present")]
    result: Option<Box<RawValue>>,
    #[serde(default, deserialize_with = "present")]
    error: Option<Box<RawValue>>,
}

/// Keeps an explicit `null` as `Some("null")`, so `"id": null` differs from no id.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

impl Envelope<'_> {
    fn into_message(self) -> Result<Message, (ParseError, Option<RawId>)> {
        if self.jsonrpc != Some("2.0") {
            return Err((ParseError::Invalid("\"jsonrpc\" must be \"2.0\""), self.id));
        }
        match (self.method, self.id, self.result, self.error) {
            (Some(method), Some(id), None, None) => Ok(Message::Request {
                id,
                method: method.into_owned(),
                params: self.params.map(Payload::from),
            }),
            (Some(method), None, None, None) => Ok(Message::Notification {
                method: method.into_owned(),
                params: self.params.map(Payload::from),
            }),
            (None, Some(id), Some(result), None) => Ok(Message::Response {
                id,
                result: result.into(),
            }),
            (None, Some(id), None, Some(error)) => Ok(Message::Error {
                id,
                error: error.into(),
            }),
            (_, id, _, _) => Err((
                ParseError::Invalid("expected a request, a notification, a result or an error"),
                id,
            )),
        }
    }
}

impl Message {
    /// Parses one line of text (without its newline).
    pub fn parse(text: &str) -> Result<Parsed, (ParseError, Option<RawId>)> {
        let first = text.trim_start().as_bytes().first().copied();
        if first == Some(b'[') {
            let items: Vec<&RawValue> =
                serde_json::from_str(text).map_err(|e| (ParseError::Json(e.to_string()), None))?;
            if items.is_empty() {
                return Err((ParseError::Invalid("empty batch"), None));
            }
            let messages = items
                .into_iter()
                .map(|item| Self::parse_object(item.get()))
                .collect();
            return Ok(Parsed::Batch(messages));
        }
        Self::parse_object(text).map(Parsed::One)
    }

    fn parse_object(text: &str) -> Result<Message, (ParseError, Option<RawId>)> {
        match serde_json::from_str::<Envelope>(text) {
            // serde also fills a struct from an array, by position: `["2.0",1,"ping"]`.
            Ok(_) if !text.trim_start().starts_with('{') => {
                Err((ParseError::Invalid("not a JSON-RPC object"), None))
            }
            Ok(envelope) => envelope.into_message(),
            Err(e) if e.is_data() => {
                Err((ParseError::Invalid("not a JSON-RPC object"), sniff_id(text)))
            }
            // Truncated text or a value JSON does not have (`NaN`): the id may still be
            // readable, and then the request it answers can be failed instead of hanging.
            Err(e) => Err((ParseError::Json(e.to_string()), sniff_id(text))),
        }
    }

    pub fn method(&self) -> Option<&str> {
        match self {
            Message::Request { method, .. } | Message::Notification { method, .. } => Some(method),
            _ => None,
        }
    }

    pub fn id(&self) -> Option<&RawValue> {
        match self {
            Message::Request { id, .. }
            | Message::Response { id, .. }
            | Message::Error { id, .. } => Some(id),
            Message::Notification { .. } => None,
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Message::Request { .. } => Kind::Request,
            Message::Notification { .. } => Kind::Notification,
            Message::Response { .. } => Kind::Response,
            Message::Error { .. } => Kind::Error,
        }
    }

    /// `params`, `result` or `error`, as raw JSON text.
    pub fn payload(&self) -> Option<&RawValue> {
        match self {
            Message::Request { params, .. } | Message::Notification { params, .. } => {
                params.as_deref()
            }
            Message::Response { result, .. } => Some(result),
            Message::Error { error, .. } => Some(error),
        }
    }

    /// An error response carrying `error`.
    pub fn error_response(id: RawId, error: &ErrorObject) -> Message {
        Message::Error {
            id,
            error: error.to_raw().into(),
        }
    }

    /// Serializes the message as one line of JSON, newline included.
    pub fn write_line(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(br#"{"jsonrpc":"2.0","#);
        let write_method = |out: &mut Vec<u8>, method: &str| {
            out.extend_from_slice(br#""method":"#);
            serde_json::to_writer(&mut *out, method).expect("writing to a Vec cannot fail");
        };
        match self {
            Message::Request { id, method, params } => {
                write!(out, r#""id":{},"#, id.get()).expect("writing to a Vec cannot fail");
                write_method(out, method);
                if let Some(params) = params {
                    write!(out, r#","params":{}"#, params.get()).expect("infallible");
                }
            }
            Message::Notification { method, params } => {
                write_method(out, method);
                if let Some(params) = params {
                    write!(out, r#","params":{}"#, params.get()).expect("infallible");
                }
            }
            Message::Response { id, result } => {
                write!(out, r#""id":{},"result":{}"#, id.get(), result.get()).expect("infallible");
            }
            Message::Error { id, error } => {
                write!(out, r#""id":{},"error":{}"#, id.get(), error.get()).expect("infallible");
            }
        }
        out.extend_from_slice(b"}\n");
    }

    /// The message as a JSON string (without newline), for logs and tests.
    pub fn to_json(&self) -> String {
        let mut out = Vec::new();
        self.write_line(&mut out);
        out.pop();
        String::from_utf8(out).expect("serde_json writes UTF-8")
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_json())
    }
}

pub use interpose_core::Kind;

/// Which way a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the client towards the backend.
    ToServer,
    /// From the backend towards the client.
    ToClient,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::ToServer => "to-server",
            Direction::ToClient => "to-client",
        }
    }

    /// The other way: where an answer to a message going this way goes.
    pub fn reversed(self) -> Self {
        match self {
            Direction::ToServer => Direction::ToClient,
            Direction::ToClient => Direction::ToServer,
        }
    }

    /// The arrow used in logs and in the demo's output.
    pub fn arrow(self) -> &'static str {
        match self {
            Direction::ToServer => "->",
            Direction::ToClient => "<-",
        }
    }
}

/// A JSON-RPC error object. `data` is raw JSON so it passes through unchanged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorObject {
    pub code: i64,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Box<RawValue>>,
}

impl ErrorObject {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        ErrorObject {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// Attaches `data`, serialized as JSON.
    pub fn with_data(mut self, data: impl Serialize) -> Self {
        self.data = serde_json::value::to_raw_value(&data).ok();
        self
    }

    /// Reads an error object from a message's raw `error` member.
    pub fn from_raw(raw: &RawValue) -> Option<Self> {
        serde_json::from_str(raw.get()).ok()
    }

    pub fn to_raw(&self) -> Box<RawValue> {
        serde_json::value::to_raw_value(self).expect("an error object always serializes")
    }
}

/// A raw JSON value from a string known to be valid JSON (for literals and our own output).
pub fn raw(json: impl Into<String>) -> Box<RawValue> {
    RawValue::from_string(json.into()).expect("valid JSON")
}

/// The raw id for `null`, used when a message's own id cannot be known.
pub fn null_id() -> RawId {
    raw("null")
}

/// Finds the top-level `"id"` of a JSON object that is malformed, truncated or too long
/// to parse, so the error we send back can still name the request it answers.
pub fn sniff_id(text: &str) -> Option<RawId> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0usize;
    while i < bytes.len() {
        match bytes[i] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'"' => {
                let end = string_end(bytes, i)?;
                // Only a key is followed by `:`; `"id"` as a value (`"method":"id"`) is not it.
                if depth == 1
                    && &bytes[i..=end] == br#""id""#
                    && let Some(rest) = text[end + 1..].trim_start().strip_prefix(':')
                {
                    return leading_scalar(rest.trim_start());
                }
                i = end;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Index of the closing quote of the string starting at `start`.
fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// A JSON number, string or null at the start of `text`, if it is one.
fn leading_scalar(text: &str) -> Option<RawId> {
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Box<RawValue>>();
    let value = stream.next()?.ok()?;
    let first = value.get().as_bytes().first().copied();
    matches!(first, Some(b'"' | b'-' | b'0'..=b'9' | b'n')).then_some(value)
}

/// Parses only the parts of `params` that the relay needs, skipping the rest.
#[derive(Deserialize, Default)]
pub struct ParamsMeta {
    #[serde(rename = "_meta", default)]
    pub meta: Option<Meta>,
}

#[derive(Deserialize, Default)]
pub struct Meta {
    #[serde(rename = "progressToken", default)]
    pub progress_token: Option<Box<RawValue>>,
    #[serde(rename = "io.modelcontextprotocol/subscriptionId", default)]
    pub subscription_id: Option<Box<RawValue>>,
}

/// The `_meta` key (2026-07-28, `subscriptions/listen`) by which a notification names
/// the subscription it belongs to: the JSON-RPC id of the listen request.
pub const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
/// The first message on a `subscriptions/listen` stream (2026-07-28).
pub const SUBSCRIPTIONS_ACKNOWLEDGED: &str = "notifications/subscriptions/acknowledged";

impl ParamsMeta {
    /// `params._meta.progressToken`, if any.
    pub fn progress_token(params: Option<&RawValue>) -> Option<Box<RawValue>> {
        let params = params?;
        if !params.get().contains("progressToken") {
            return None;
        }
        let parsed: ParamsMeta = serde_json::from_str(params.get()).ok()?;
        parsed.meta?.progress_token
    }

    /// `params._meta["io.modelcontextprotocol/subscriptionId"]`, if any.
    pub fn subscription_id(params: Option<&RawValue>) -> Option<Box<RawValue>> {
        let params = params?;
        if !params.get().contains(SUBSCRIPTION_ID) {
            return None;
        }
        let parsed: ParamsMeta = serde_json::from_str(params.get()).ok()?;
        parsed.meta?.subscription_id
    }
}

/// `params.progressToken` of `notifications/progress`.
pub fn notification_progress_token(params: Option<&RawValue>) -> Option<Box<RawValue>> {
    #[derive(Deserialize)]
    struct Progress {
        #[serde(rename = "progressToken")]
        token: Box<RawValue>,
    }
    let parsed: Progress = serde_json::from_str(params?.get()).ok()?;
    Some(parsed.token)
}

/// `params.requestId` of `notifications/cancelled`.
pub fn cancelled_request_id(params: Option<&RawValue>) -> Option<Box<RawValue>> {
    #[derive(Deserialize)]
    struct Cancelled {
        #[serde(rename = "requestId")]
        request_id: Box<RawValue>,
    }
    let parsed: Cancelled = serde_json::from_str(params?.get()).ok()?;
    Some(parsed.request_id)
}

/// Returns `params` with one top-level member replaced, other members kept as they were
/// and in their order.
pub fn replace_member(params: &RawValue, key: &str, value: Box<RawValue>) -> Option<Box<RawValue>> {
    let mut members: indexmap::IndexMap<String, Box<RawValue>> =
        serde_json::from_str(params.get()).ok()?;
    members.insert(key.to_owned(), value);
    serde_json::value::to_raw_value(&members).ok()
}

/// Returns `params` with one member of its `_meta` replaced (`_meta` must exist), other
/// members kept as they were and in their order.
pub fn replace_meta_member(
    params: &RawValue,
    key: &str,
    value: Box<RawValue>,
) -> Option<Box<RawValue>> {
    let mut members: indexmap::IndexMap<String, Box<RawValue>> =
        serde_json::from_str(params.get()).ok()?;
    let meta = replace_member(members.get("_meta")?, key, value)?;
    members.insert("_meta".to_owned(), meta);
    serde_json::value::to_raw_value(&members).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_replaces_a_subscription_id() {
        let params =
            raw(r#"{"_meta":{"a":1,"io.modelcontextprotocol/subscriptionId":7},"x":[1, 2]}"#);
        assert_eq!(
            ParamsMeta::subscription_id(Some(&params)).unwrap().get(),
            "7"
        );
        let renamed = replace_meta_member(&params, SUBSCRIPTION_ID, raw(r#""s-1""#)).unwrap();
        assert_eq!(
            renamed.get(),
            r#"{"_meta":{"a":1,"io.modelcontextprotocol/subscriptionId":"s-1"},"x":[1, 2]}"#
        );
        assert!(ParamsMeta::subscription_id(Some(&raw(r#"{"_meta":{}}"#))).is_none());
    }

    fn one(text: &str) -> Message {
        match Message::parse(text).expect("parses") {
            Parsed::One(m) => m,
            Parsed::Batch(_) => panic!("expected one message"),
        }
    }

    #[test]
    fn request_payload_is_kept_byte_for_byte() {
        let line = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"b": 1.0,"a":[1,  2],"_meta":{"x":1}}}"#;
        let msg = one(line);
        assert_eq!(
            msg.payload().unwrap().get(),
            r#"{"b": 1.0,"a":[1,  2],"_meta":{"x":1}}"#
        );
        assert_eq!(msg.to_json(), line);
    }

    #[test]
    fn a_payload_clone_shares_the_parsed_bytes() {
        let line = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"é"}]}}"#;
        let msg = one(line);
        let Message::Response {
            result: in_message, ..
        } = &msg
        else {
            panic!("a result")
        };
        let payload = in_message.clone();
        let text = payload.get();
        assert!(payload.shares(in_message), "a clone shares, not copies");
        assert!(std::ptr::eq(text, in_message.get()), "the same bytes");
        assert_eq!(text, r#"{"content":[{"type":"text","text":"é"}]}"#);
        let other = Payload::from(raw(text));
        assert!(!other.shares(&payload), "equal text, other bytes");
        // The one holder moves its box out; one of two copies.
        let address = other.get().as_ptr();
        assert_eq!(other.into_raw().get().as_ptr(), address);
        let kept = payload.clone();
        assert_eq!(payload.into_raw().get(), kept.get());
        drop(msg);
        assert_eq!(kept.get(), text_of(line, "result"));
    }

    /// The member `key` of the object `line`, as raw text.
    fn text_of(line: &str, key: &str) -> String {
        let members: indexmap::IndexMap<String, Box<RawValue>> =
            serde_json::from_str(line).expect("an object");
        members[key].get().to_owned()
    }

    #[test]
    fn a_payload_serialises_as_its_raw_text() {
        // Spacing, order and number forms kept, inside a struct and alone.
        let text = r#"{"b": 1.0,"a":[1,  2e3],"s":"\u00e9"}"#;
        let payload = Payload::from(raw(text));
        assert_eq!(serde_json::to_string(&payload).unwrap(), text);
        #[derive(Serialize, Deserialize)]
        struct Holder {
            p: Payload,
            none: Option<Payload>,
        }
        let holder = Holder {
            p: payload.clone(),
            none: None,
        };
        let json = serde_json::to_string(&holder).unwrap();
        assert_eq!(json, format!(r#"{{"p":{text},"none":null}}"#));
        let back: Holder = serde_json::from_str(&json).unwrap();
        assert_eq!(back.p.get(), text);
        assert!(back.none.is_none());
        assert_eq!(format!("{payload:?}"), format!("{:?}", raw(text)));
        // A message written from payloads writes what a boxed value would.
        let msg = Message::Request {
            id: raw("3"),
            method: "tools/call".into(),
            params: Some(payload),
        };
        assert_eq!(
            msg.to_json(),
            format!(r#"{{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{text}}}"#)
        );
    }

    #[test]
    fn classifies_each_kind() {
        assert_eq!(
            one(r#"{"jsonrpc":"2.0","method":"x"}"#).kind(),
            Kind::Notification
        );
        assert_eq!(
            one(r#"{"jsonrpc":"2.0","id":"a","result":{}}"#).kind(),
            Kind::Response
        );
        assert_eq!(
            one(r#"{"jsonrpc":"2.0","id":null,"error":{"code":1,"message":"m"}}"#).kind(),
            Kind::Error
        );
    }

    #[test]
    fn explicit_null_id_is_kept() {
        let msg = one(r#"{"jsonrpc":"2.0","id":null,"error":{"code":1,"message":"m"}}"#);
        assert_eq!(msg.id().unwrap().get(), "null");
    }

    #[test]
    fn malformed_json_is_a_parse_error() {
        let (err, _) = Message::parse(r#"{"jsonrpc":"2.0","id":1,"#).unwrap_err();
        assert_eq!(err.code(), PARSE_ERROR);
    }

    #[test]
    fn invalid_json_keeps_the_id_when_it_can_be_read() {
        let nan = r#"{"jsonrpc":"2.0","id":4,"result":{"score":NaN}}"#;
        let (err, id) = Message::parse(nan).unwrap_err();
        assert_eq!(err.code(), PARSE_ERROR);
        assert_eq!(id.unwrap().get(), "4");
        let truncated = r#"{"jsonrpc":"2.0","id":"a-1","result":{"content":[{"type":"te"#;
        let (_, id) = Message::parse(truncated).unwrap_err();
        assert_eq!(id.unwrap().get(), r#""a-1""#);
        // The id after the cut is gone: nothing to recover.
        let (_, id) = Message::parse(r#"{"jsonrpc":"2.0","result":{"x":1"#).unwrap_err();
        assert!(id.is_none());
    }

    #[test]
    fn a_parse_error_is_answered_with_id_null_an_invalid_request_with_its_id() {
        let (err, id) = Message::parse(r#"{"jsonrpc":"2.0","id":4,"method":"x","#).unwrap_err();
        assert_eq!(id.as_ref().unwrap().get(), "4");
        assert!(err.answer_id(id).is_none());
        let (err, id) = Message::parse(r#"{"jsonrpc":"2.0","id":5}"#).unwrap_err();
        assert_eq!(err.answer_id(id).unwrap().get(), "5");
    }

    #[test]
    fn wrong_shape_is_invalid_request_with_its_id() {
        let (err, id) = Message::parse(r#"{"jsonrpc":"2.0","id":5}"#).unwrap_err();
        assert_eq!(err.code(), INVALID_REQUEST);
        assert_eq!(id.unwrap().get(), "5");
        let (err, id) = Message::parse(r#"{"jsonrpc":"1.0","id":"x","method":"m"}"#).unwrap_err();
        assert_eq!(err.code(), INVALID_REQUEST);
        assert_eq!(id.unwrap().get(), r#""x""#);
    }

    #[test]
    fn sniffs_top_level_id_from_truncated_text() {
        let text = r#"{"jsonrpc":"2.0","params":{"id":99,"s":"\"id\":3"},"id":"req-1","method":"tools/call","params":{"x":"aaaa"#;
        assert_eq!(sniff_id(text).unwrap().get(), r#""req-1""#);
        assert!(sniff_id(r#"{"params":{"id":1}"#).is_none());
    }

    #[test]
    fn replace_member_keeps_other_members_in_order() {
        let params = raw(r#"{"requestId":"abc","reason":"user","z":1.50}"#);
        let out = replace_member(&params, "requestId", raw("12")).unwrap();
        assert_eq!(out.get(), r#"{"requestId":12,"reason":"user","z":1.50}"#);
    }

    #[test]
    fn extracts_progress_token() {
        let params = raw(r#"{"name":"t","_meta":{"progressToken":"p1"}}"#);
        assert_eq!(
            ParamsMeta::progress_token(Some(&params)).unwrap().get(),
            r#""p1""#
        );
    }

    #[test]
    fn batch_is_split() {
        match Message::parse(r#"[{"jsonrpc":"2.0","method":"a"},{"bad":1}]"#).unwrap() {
            Parsed::Batch(items) => {
                assert!(items[0].is_ok());
                assert!(items[1].is_err());
            }
            Parsed::One(_) => panic!("expected a batch"),
        }
    }
}
