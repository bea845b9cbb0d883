//! interpose plugin: writes one structured log line (a JSON object, at info
//! level) per message: direction, kind, method, id, payload size, what the
//! request names (tool, resource URI, prompt) and, for answers, how long the
//! request took. See the README for the configuration.
//!
//! Instances are pooled and share no memory, so a request's start time goes to
//! the host's key-value store (keyed by session, direction and id, with a TTL),
//! where whichever instance sees the answer finds it.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use interpose_plugin::{
    Direction, Kind, Manifest, Message, Plugin, Verdict, export_plugin, host, manifest,
    parse_config,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The plugin's configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Log the arguments of `tools/call` and `prompts/get` requests.
    #[serde(default)]
    pub include_arguments: bool,
    /// Methods to log (exact names, `prefix/*` or `*`); empty means all.
    #[serde(default)]
    pub methods: Vec<String>,
    /// How long to remember a request's start time, waiting for its answer.
    #[serde(default = "default_pending_ttl_ms")]
    pub pending_ttl_ms: u64,
}

fn default_pending_ttl_ms() -> u64 {
    10 * 60 * 1000
}

/// The audit-log plugin.
pub struct AuditLog {
    config: Config,
}

impl Plugin for AuditLog {
    fn init(config: &str) -> Result<(Self, Manifest), String> {
        let config: Config = parse_config(config)?;
        if config.methods.iter().any(String::is_empty) {
            return Err("invalid config: `methods` has an empty method name".into());
        }
        let manifest = manifest!().methods(config.methods.iter().cloned());
        Ok((AuditLog { config }, manifest))
    }

    fn intercept(&self, msg: &Message) -> Verdict {
        let line = self.line(msg, now_micros());
        match serde_json::to_string(&line) {
            Ok(text) => host::log(host::Level::Info, &text),
            Err(err) => host::log(
                host::Level::Warn,
                &format!("audit-log: cannot format a line: {err}"),
            ),
        }
        Verdict::Pass
    }
}

/// One log line. Field order is the order in the JSON object.
#[derive(Debug, Serialize)]
struct Line<'a> {
    direction: &'static str,
    kind: &'static str,
    method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a RawValue>,
    session: &'a str,
    server: &'a str,
    /// Size of the payload text (params or result) in bytes.
    bytes: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uri: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    arguments: Option<&'a RawValue>,
    /// For answers whose request this plugin saw: milliseconds since it.
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorLine<'a>>,
}

#[derive(Debug, Serialize)]
struct ErrorLine<'a> {
    code: i64,
    message: &'a str,
}

/// The parts of request params worth logging; everything else is skipped
/// without being copied.
#[derive(Debug, Default, Deserialize)]
struct Named<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    uri: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    arguments: Option<&'a RawValue>,
}

impl AuditLog {
    fn line<'a>(&self, msg: &'a Message<'_>, now: u64) -> Line<'a> {
        let mut line = Line {
            direction: msg.direction().as_str(),
            kind: msg.kind().as_str(),
            method: msg.method(),
            id: msg.id().and_then(|id| serde_json::from_str(id).ok()),
            session: msg.session(),
            server: msg.server(),
            bytes: msg.payload_len(),
            tool: None,
            uri: None,
            prompt: None,
            arguments: None,
            duration_ms: None,
            error: msg.error().map(|err| ErrorLine {
                code: err.code,
                message: &err.message,
            }),
        };
        match msg.kind() {
            Kind::Request => {
                let named = if matches!(
                    msg.method(),
                    "tools/call"
                        | "prompts/get"
                        | "resources/read"
                        | "resources/subscribe"
                        | "resources/unsubscribe"
                ) {
                    msg.payload()
                        .and_then(|p| serde_json::from_str::<Named>(p).ok())
                        .unwrap_or_default()
                } else {
                    Named::default()
                };
                let name = named.name.clone();
                match msg.method() {
                    "tools/call" => line.tool = named.name,
                    "prompts/get" => line.prompt = named.name,
                    _ => line.uri = named.uri,
                }
                if self.config.include_arguments
                    && matches!(msg.method(), "tools/call" | "prompts/get")
                {
                    line.arguments = named.arguments;
                }
                if let Some(id) = msg.id() {
                    let pending = Pending {
                        started: now,
                        name: name.as_deref().unwrap_or(""),
                    };
                    let ttl = Duration::from_millis(self.config.pending_ttl_ms);
                    host::kv_set(
                        &pending_key(msg, msg.direction(), id),
                        &pending.encode(),
                        Some(ttl),
                    );
                }
            }
            Kind::Response | Kind::Error => {
                if let Some(id) = msg.id() {
                    let key = pending_key(msg, msg.direction().reverse(), id);
                    if let Some(pending) = host::kv_get(&key).as_deref().and_then(Pending::decode) {
                        host::kv_delete(&key);
                        line.duration_ms =
                            Some(now.saturating_sub(pending.started) as f64 / 1000.0);
                        if msg.method() == "tools/call" && !pending.name.is_empty() {
                            line.tool = Some(Cow::Owned(pending.name.to_owned()));
                        }
                    }
                }
            }
            Kind::Notification => {}
        }
        line
    }
}

/// The key under which a request's start is kept: ids are unique per session
/// and sender, and the sender is the direction the request travelled in.
fn pending_key(msg: &Message, request_direction: Direction, id: &str) -> String {
    format!(
        "pending\u{0}{}\u{0}{}\u{0}{}",
        msg.session(),
        request_direction.as_str(),
        id
    )
}

/// What the key-value store keeps for a request awaiting its answer.
struct Pending<'a> {
    /// Wall-clock microseconds since the Unix epoch: instances do not share a
    /// monotonic clock's origin, but they share the wall clock.
    started: u64,
    /// The tool name of a `tools/call`, so the answer's line can name it.
    name: &'a str,
}

impl<'a> Pending<'a> {
    fn encode(&self) -> Vec<u8> {
        let mut bytes = self.started.to_le_bytes().to_vec();
        bytes.extend_from_slice(self.name.as_bytes());
        bytes
    }

    fn decode(bytes: &'a [u8]) -> Option<Pending<'a>> {
        let (started, name) = bytes.split_first_chunk::<8>()?;
        Some(Pending {
            started: u64::from_le_bytes(*started),
            name: std::str::from_utf8(name).ok()?,
        })
    }
}

fn now_micros() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since_epoch.as_micros()).unwrap_or(u64::MAX)
}

export_plugin!(AuditLog);

#[cfg(test)]
mod tests {
    use interpose_plugin::host::testing::{kv_len, take_logs};
    use interpose_plugin::{Message, RpcError};
    use serde_json::{Value, json};

    use super::*;

    fn plugin(config: Value) -> AuditLog {
        AuditLog::init(&config.to_string()).unwrap().0
    }

    fn logged(plugin: &AuditLog, msg: &Message, now: u64) -> Value {
        serde_json::to_value(plugin.line(msg, now)).unwrap()
    }

    #[test]
    fn request_and_response_lines_carry_tool_size_and_duration() {
        let audit = plugin(json!({}));
        let request = Message::request(
            "tools/call",
            r#"{"name":"search","arguments":{"q":"secret"}}"#,
        )
        .with_id("7")
        .with_session("s1")
        .with_server("web");
        assert_eq!(
            logged(&audit, &request, 1_000_000),
            json!({"direction": "to-server", "kind": "request", "method": "tools/call", "id": 7,
                   "session": "s1", "server": "web", "bytes": 44, "tool": "search"})
        );
        let response = Message::response("tools/call", r#"{"content":[]}"#)
            .with_id("7")
            .with_session("s1")
            .with_server("web");
        assert_eq!(
            logged(&audit, &response, 1_012_500),
            json!({"direction": "to-client", "kind": "response", "method": "tools/call", "id": 7,
                   "session": "s1", "server": "web", "bytes": 14, "tool": "search", "duration_ms": 12.5})
        );
        assert_eq!(kv_len(), 0, "the pending entry is removed once answered");
        let again = logged(&audit, &response, 1_020_000);
        assert!(
            again.get("duration_ms").is_none(),
            "a second answer with that id has no start"
        );
    }

    #[test]
    fn arguments_are_logged_only_when_asked() {
        let request = Message::request(
            "tools/call",
            r#"{"name":"search","arguments":{"q":"x","n":2}}"#,
        );
        let line = logged(&plugin(json!({})), &request, 0);
        assert!(line.get("arguments").is_none());
        let line = logged(&plugin(json!({"include_arguments": true})), &request, 0);
        assert_eq!(line["arguments"], json!({"q": "x", "n": 2}));
    }

    #[test]
    fn server_requests_are_matched_with_client_answers() {
        let audit = plugin(json!({}));
        let sampling = Message::new(Direction::ToClient, Kind::Request, "sampling/createMessage")
            .with_id(r#""srv-1""#)
            .with_payload("{}");
        logged(&audit, &sampling, 5_000);
        // A client request with the same id must not pick up the server's start.
        let client_answer = Message::response("sampling/createMessage", "{}").with_id(r#""srv-1""#);
        assert!(
            logged(&audit, &client_answer, 6_000)
                .get("duration_ms")
                .is_none()
        );
        let answer = Message::new(
            Direction::ToServer,
            Kind::Response,
            "sampling/createMessage",
        )
        .with_id(r#""srv-1""#)
        .with_payload("{}");
        let line = logged(&audit, &answer, 9_000);
        assert_eq!(
            (line["id"].clone(), line["duration_ms"].clone()),
            (json!("srv-1"), json!(4.0))
        );
    }

    #[test]
    fn errors_notifications_and_resources() {
        let audit = plugin(json!({}));
        let read = Message::request("resources/read", r#"{"uri":"file:///a.txt"}"#).with_id("1");
        assert_eq!(logged(&audit, &read, 0)["uri"], "file:///a.txt");
        let error = Message::new(Direction::ToClient, Kind::Error, "resources/read")
            .with_id("1")
            .with_error(RpcError::new(-32002, "Resource not found"));
        let line = logged(&audit, &error, 3_000);
        assert_eq!(
            line["error"],
            json!({"code": -32002, "message": "Resource not found"})
        );
        assert_eq!(line["duration_ms"], json!(3.0));
        let note = Message::new(
            Direction::ToClient,
            Kind::Notification,
            "notifications/message",
        )
        .with_payload("{}");
        let line = logged(&audit, &note, 0);
        assert!(line.get("id").is_none());
        assert_eq!(line["kind"], "notification");
    }

    #[test]
    fn intercept_passes_and_logs_one_json_line_at_info() {
        let (audit, manifest) = AuditLog::init(r#"{"methods": ["tools/*"]}"#).unwrap();
        assert_eq!(manifest.methods, ["tools/*"]);
        take_logs();
        let verdict = audit.intercept(&Message::request("tools/list", "{}").with_id("3"));
        assert_eq!(verdict, Verdict::Pass);
        let logs = take_logs();
        assert_eq!(logs.len(), 1);
        assert_eq!(logs[0].0, host::Level::Info);
        let line: Value = serde_json::from_str(&logs[0].1).unwrap();
        assert_eq!(line["method"], "tools/list");
        assert!(logs[0].1.starts_with(
            r#"{"direction":"to-server","kind":"request","method":"tools/list","id":3,"#
        ));
    }

    #[test]
    fn config_errors() {
        let err = AuditLog::init(r#"{"include_args": true}"#).err().unwrap();
        assert!(
            err.starts_with("invalid config: unknown field `include_args`"),
            "{err}"
        );
        let err = AuditLog::init(r#"{"methods": [""]}"#).err().unwrap();
        assert_eq!(err, "invalid config: `methods` has an empty method name");
    }
}
