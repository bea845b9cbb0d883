//! A recording's lines, format version 1: one JSON object per message that crossed
//! the proxy, in the order the relay judged them. docs/record.md describes every field.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::log_output::utc_micros;
use crate::session::intercept::{Direction, Intercepted, Verdict};
use crate::wire::jsonrpc::{ErrorObject, Kind, Message, Payload, null_id, raw};

/// The `v` of every line this version writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// One line of a recording.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Line {
    /// The format version, [`FORMAT_VERSION`].
    pub v: u32,
    /// When the relay judged the message: RFC 3339, UTC, microseconds.
    pub time: String,
    /// The downstream session.
    pub session: String,
    /// The backend's name.
    pub server: String,
    pub direction: LineDirection,
    pub kind: LineKind,
    /// The method; for responses and errors, the method of the request they answer.
    pub method: String,
    /// The JSON-RPC id as the sender wrote it (absent for notifications).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Box<RawValue>>,
    /// The whole JSON-RPC message as received.
    pub message: Box<RawValue>,
    /// The interceptor chain's verdict.
    pub verdict: VerdictName,
    /// A `reject`'s error: what the sender got, what an answer became, or why a
    /// notification was dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorObject>,
    /// The message as forwarded, when the chain changed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarded: Option<Box<RawValue>>,
    /// A request the chain answered itself (`respond`, `reject`): the answer its
    /// sender got instead of the backend's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<Box<RawValue>>,
    /// Why parts of this line were replaced by `"[withheld]"`: the `--record-redact`
    /// plugin did something to them other than pass or rewrite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withheld: Option<String>,
}

/// [`Direction`] as lines spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LineDirection {
    ToServer,
    ToClient,
}

impl From<Direction> for LineDirection {
    fn from(direction: Direction) -> Self {
        match direction {
            Direction::ToServer => LineDirection::ToServer,
            Direction::ToClient => LineDirection::ToClient,
        }
    }
}

impl From<LineDirection> for Direction {
    fn from(direction: LineDirection) -> Self {
        match direction {
            LineDirection::ToServer => Direction::ToServer,
            LineDirection::ToClient => Direction::ToClient,
        }
    }
}

/// [`Kind`] as lines spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LineKind {
    Request,
    Notification,
    Response,
    Error,
}

impl From<Kind> for LineKind {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Request => LineKind::Request,
            Kind::Notification => LineKind::Notification,
            Kind::Response => LineKind::Response,
            Kind::Error => LineKind::Error,
        }
    }
}

impl From<LineKind> for Kind {
    fn from(kind: LineKind) -> Self {
        match kind {
            LineKind::Request => Kind::Request,
            LineKind::Notification => Kind::Notification,
            LineKind::Response => Kind::Response,
            LineKind::Error => Kind::Error,
        }
    }
}

/// Which verdict a message got (recordings and replay's golden files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerdictName {
    Pass,
    Rewrite,
    Respond,
    Reject,
}

impl From<&Verdict> for VerdictName {
    fn from(verdict: &Verdict) -> Self {
        match verdict {
            Verdict::Pass => VerdictName::Pass,
            Verdict::Rewrite(_) => VerdictName::Rewrite,
            Verdict::Respond(_) => VerdictName::Respond,
            Verdict::Reject(_) => VerdictName::Reject,
        }
    }
}

/// What stands in a line for a part the redaction plugin withheld.
pub const WITHHELD: &str = "[withheld]";

/// One judged message, copied out of the relay's borrowed message so that its line
/// is built and written later, off the message path.
#[derive(Debug, Clone)]
pub struct Captured {
    pub time: SystemTime,
    pub session: String,
    pub server: String,
    pub direction: Direction,
    pub kind: Kind,
    pub method: String,
    pub id: Option<Box<RawValue>>,
    /// `params` or `result` as received (shared with the message, not copied).
    pub payload: Option<Payload>,
    /// An error response's error as received.
    pub error: Option<ErrorObject>,
    pub verdict: Verdict,
    /// Set by redaction: why parts were withheld.
    pub withheld: Option<String>,
}

impl Captured {
    pub fn new(msg: &Intercepted<'_>, verdict: &Verdict) -> Self {
        Captured {
            time: SystemTime::now(),
            session: msg.session.to_owned(),
            server: msg.server.to_owned(),
            direction: msg.direction,
            kind: msg.kind,
            method: msg.method.to_owned(),
            id: msg.id.map(ToOwned::to_owned),
            payload: msg.payload.cloned(),
            error: msg.error.cloned(),
            verdict: verdict.clone(),
            withheld: None,
        }
    }

    /// The message as `kind` with `payload` or `error`, under this one's id and method.
    fn message(
        &self,
        kind: Kind,
        payload: Option<&Payload>,
        error: Option<&ErrorObject>,
    ) -> Box<RawValue> {
        let id = || self.id.clone().unwrap_or_else(null_id);
        let message = match kind {
            Kind::Request => Message::Request {
                id: id(),
                method: self.method.clone(),
                params: payload.cloned(),
            },
            Kind::Notification => Message::Notification {
                method: self.method.clone(),
                params: payload.cloned(),
            },
            Kind::Response => Message::Response {
                id: id(),
                result: payload.cloned().unwrap_or_else(|| raw("null").into()),
            },
            Kind::Error => Message::Error {
                id: id(),
                error: error
                    .map_or_else(|| raw("null"), ErrorObject::to_raw)
                    .into(),
            },
        };
        raw(message.to_json())
    }

    /// The line for this message.
    pub fn to_line(&self) -> Line {
        let received = self.message(self.kind, self.payload.as_ref(), self.error.as_ref());
        let (mut forwarded, mut answer, mut error) = (None, None, None);
        match &self.verdict {
            Verdict::Pass => {}
            Verdict::Respond(result) if self.kind == Kind::Request => {
                answer = Some(self.message(Kind::Response, Some(result), None));
            }
            // A rewritten answer is a result, even if it was an error (the relay's rule);
            // `respond` on anything but a request is a rewrite.
            Verdict::Rewrite(payload) | Verdict::Respond(payload) => {
                let kind = if self.kind == Kind::Error {
                    Kind::Response
                } else {
                    self.kind
                };
                forwarded = Some(self.message(kind, Some(payload), None));
            }
            Verdict::Reject(e) => {
                match self.kind {
                    Kind::Request => answer = Some(self.message(Kind::Error, None, Some(e))),
                    Kind::Response | Kind::Error => {
                        forwarded = Some(self.message(Kind::Error, None, Some(e)));
                    }
                    // Dropped: nothing went anywhere.
                    Kind::Notification => {}
                }
                error = Some(e.clone());
            }
        }
        Line {
            v: FORMAT_VERSION,
            time: utc_micros(self.time),
            session: self.session.clone(),
            server: self.server.clone(),
            direction: self.direction.into(),
            kind: self.kind.into(),
            method: self.method.clone(),
            id: self.id.clone(),
            message: received,
            verdict: (&self.verdict).into(),
            error,
            forwarded,
            answer,
            withheld: self.withheld.clone(),
        }
    }
}

/// The payload and error of a recorded JSON-RPC message.
#[derive(Debug, Default, Deserialize)]
pub struct Parts {
    #[serde(default)]
    pub params: Option<Payload>,
    #[serde(default)]
    pub result: Option<Payload>,
    #[serde(default)]
    pub error: Option<ErrorObject>,
}

impl Parts {
    /// `params` of requests and notifications, `result` of responses.
    pub fn payload(&self) -> Option<&Payload> {
        self.params.as_ref().or(self.result.as_ref())
    }
}

/// Why a recording's line could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("line {line}: not a recording line: {cause}")]
    Json {
        line: usize,
        cause: serde_json::Error,
    },
    #[error("line {line}: format version {found}; this interpose reads version {FORMAT_VERSION}")]
    Version { line: usize, found: u32 },
    #[error("line {line}: `message` is not a JSON-RPC message: {cause}")]
    Message {
        line: usize,
        cause: serde_json::Error,
    },
}

impl Line {
    /// Reads line number `number` (from 1) of a recording.
    pub fn parse(text: &str, number: usize) -> Result<Line, ReadError> {
        let line: Line = serde_json::from_str(text).map_err(|cause| ReadError::Json {
            line: number,
            cause,
        })?;
        if line.v != FORMAT_VERSION {
            return Err(ReadError::Version {
                line: number,
                found: line.v,
            });
        }
        Ok(line)
    }

    /// The payload and error of the message as received.
    pub fn received(&self, number: usize) -> Result<Parts, ReadError> {
        serde_json::from_str(self.message.get()).map_err(|cause| ReadError::Message {
            line: number,
            cause,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn captured(kind: Kind, payload: Option<&str>, verdict: Verdict) -> Captured {
        Captured {
            time: SystemTime::UNIX_EPOCH + std::time::Duration::from_micros(1_500_000),
            session: "s1".into(),
            server: "echo".into(),
            direction: Direction::ToServer,
            kind,
            method: "tools/call".into(),
            id: (kind != Kind::Notification).then(|| raw("7")),
            payload: payload.map(|p| raw(p).into()),
            error: None,
            verdict,
            withheld: None,
        }
    }

    fn as_json(line: &Line) -> Value {
        serde_json::to_value(line).unwrap()
    }

    #[test]
    fn a_passed_request_is_one_flat_line_with_the_message_as_received() {
        let line = captured(Kind::Request, Some(r#"{"name":"add"}"#), Verdict::Pass).to_line();
        assert_eq!(
            as_json(&line),
            json!({
                "v": 1, "time": "1970-01-01T00:00:01.500000Z", "session": "s1",
                "server": "echo", "direction": "to-server", "kind": "request",
                "method": "tools/call", "id": 7,
                "message": {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                            "params": {"name": "add"}},
                "verdict": "pass"
            })
        );
    }

    #[test]
    fn each_verdict_records_where_its_result_went() {
        let rewrite = captured(
            Kind::Request,
            Some(r#"{"a":1}"#),
            Verdict::Rewrite(raw(r#"{"a":2}"#).into()),
        )
        .to_line();
        assert_eq!(
            as_json(&rewrite)["forwarded"],
            json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"a": 2}})
        );
        assert_eq!(as_json(&rewrite)["message"]["params"], json!({"a": 1}));

        let respond = captured(Kind::Request, None, Verdict::Respond(raw("{}").into())).to_line();
        let respond = as_json(&respond);
        assert_eq!(respond["verdict"], "respond");
        assert_eq!(
            respond["answer"],
            json!({"jsonrpc": "2.0", "id": 7, "result": {}})
        );
        assert!(respond.get("forwarded").is_none());

        let denied = ErrorObject::new(-32001, "denied");
        let reject = captured(Kind::Request, None, Verdict::Reject(denied.clone())).to_line();
        let reject = as_json(&reject);
        assert_eq!(
            reject["error"],
            json!({"code": -32001, "message": "denied"})
        );
        assert_eq!(reject["answer"]["error"]["message"], "denied");

        let dropped = captured(Kind::Notification, None, Verdict::Reject(denied)).to_line();
        let dropped = as_json(&dropped);
        assert!(dropped.get("id").is_none() && dropped.get("forwarded").is_none());
        assert!(dropped.get("answer").is_none());
        assert_eq!(dropped["error"]["message"], "denied");
    }

    #[test]
    fn a_rewritten_error_is_forwarded_as_a_result() {
        let mut error = captured(
            Kind::Error,
            None,
            Verdict::Rewrite(raw(r#"{"ok":1}"#).into()),
        );
        error.error = Some(ErrorObject::new(-1, "boom"));
        let line = as_json(&error.to_line());
        assert_eq!(line["message"]["error"]["message"], "boom");
        assert_eq!(
            line["forwarded"],
            json!({"jsonrpc": "2.0", "id": 7, "result": {"ok": 1}})
        );
    }

    #[test]
    fn lines_read_back_as_written() {
        let line = captured(Kind::Response, Some(r#"{"x":[1,2]}"#), Verdict::Pass).to_line();
        let text = serde_json::to_string(&line).unwrap();
        let back = Line::parse(&text, 1).unwrap();
        assert_eq!(back.kind, LineKind::Response);
        assert_eq!(back.id.as_deref().map(RawValue::get), Some("7"));
        assert_eq!(
            back.received(1).unwrap().payload().unwrap().get(),
            r#"{"x":[1,2]}"#
        );
    }

    #[test]
    fn unreadable_lines_are_named() {
        let err = Line::parse("{}", 3).unwrap_err().to_string();
        assert!(
            err.starts_with("line 3: not a recording line: missing field"),
            "{err}"
        );
        let mut line = as_json(&captured(Kind::Request, None, Verdict::Pass).to_line());
        line["v"] = json!(2);
        let err = Line::parse(&line.to_string(), 4).unwrap_err().to_string();
        assert_eq!(
            err,
            "line 4: format version 2; this interpose reads version 1"
        );
    }
}
