//! interpose plugin: writes one structured log line (a JSON object, at info
//! level) per message: direction, kind, method, id, payload size, what the
//! request names (tool, resource URI, prompt) and, for answers, how long the
//! request took. See the README for the configuration.
//!
//! It keeps no state: the host times each request (`Message::elapsed`) and names
//! what a message acts on (`Message::subject`; an answer's is its request's, since
//! the manifest sets `wants_request`).

use interpose_plugin::{
    Kind, Manifest, Message, Plugin, Verdict, export_plugin, host, manifest, parse_config,
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
        let manifest = manifest!()
            .methods(config.methods.iter().cloned())
            .wants_request(true);
        Ok((AuditLog { config }, manifest))
    }

    fn intercept(&self, msg: &Message) -> Verdict {
        let line = self.line(msg);
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
    tool: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uri: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    arguments: Option<&'a RawValue>,
    /// For answers: milliseconds from forwarding the request to the answer.
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

/// The `arguments` of request params; everything else is skipped without being
/// copied.
#[derive(Debug, Default, Deserialize)]
struct Arguments<'a> {
    #[serde(borrow, default)]
    arguments: Option<&'a RawValue>,
}

impl AuditLog {
    fn line<'a>(&self, msg: &'a Message<'_>) -> Line<'a> {
        // The host reads the name from the params (an answer's from its request's),
        // so neither is copied into the plugin nor parsed here.
        let subject = msg.subject();
        let (tool, prompt, uri) = match msg.method() {
            "tools/call" => (subject, None, None),
            "prompts/get" => (None, subject, None),
            _ => (None, None, subject),
        };
        Line {
            direction: msg.direction().as_str(),
            kind: msg.kind().as_str(),
            method: msg.method(),
            id: msg.id().and_then(|id| serde_json::from_str(id).ok()),
            session: msg.session(),
            server: msg.server(),
            bytes: msg.payload_len(),
            tool,
            uri,
            prompt,
            arguments: self.arguments(msg),
            duration_ms: msg.elapsed().map(|e| e.as_micros() as f64 / 1000.0),
            error: msg.error().map(|err| ErrorLine {
                code: err.code,
                message: &err.message,
            }),
        }
    }

    /// With `include_arguments`: the `arguments` of a `tools/call` or
    /// `prompts/get` request.
    fn arguments<'a>(&self, msg: &'a Message<'_>) -> Option<&'a RawValue> {
        if !self.config.include_arguments
            || msg.kind() != Kind::Request
            || !matches!(msg.method(), "tools/call" | "prompts/get")
        {
            return None;
        }
        let params = serde_json::from_str::<Arguments<'_>>(msg.payload()?).ok()?;
        params.arguments
    }
}

export_plugin!(AuditLog);

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use interpose_plugin::host::testing::take_logs;
    use interpose_plugin::{Direction, Message, RpcError};
    use serde_json::{Value, json};

    use super::*;

    fn plugin(config: Value) -> AuditLog {
        AuditLog::init(&config.to_string()).unwrap().0
    }

    fn logged(plugin: &AuditLog, msg: &Message) -> Value {
        serde_json::to_value(plugin.line(msg)).unwrap()
    }

    #[test]
    fn request_and_response_lines_carry_tool_size_and_duration() {
        let audit = plugin(json!({}));
        let params = r#"{"name":"search","arguments":{"q":"secret"}}"#;
        let request = Message::request("tools/call", params)
            .with_id("7")
            .with_session("s1")
            .with_server("web");
        assert_eq!(
            logged(&audit, &request),
            json!({"direction": "to-server", "kind": "request", "method": "tools/call", "id": 7,
                   "session": "s1", "server": "web", "bytes": 44, "tool": "search"})
        );
        let response = Message::response("tools/call", r#"{"content":[]}"#)
            .with_id("7")
            .with_session("s1")
            .with_server("web")
            .with_request_payload(params)
            .with_elapsed(Duration::from_micros(12_500));
        assert_eq!(
            logged(&audit, &response),
            json!({"direction": "to-client", "kind": "response", "method": "tools/call", "id": 7,
                   "session": "s1", "server": "web", "bytes": 14, "tool": "search", "duration_ms": 12.5})
        );
    }

    #[test]
    fn arguments_are_logged_only_when_asked() {
        let request = Message::request(
            "tools/call",
            r#"{"name":"search","arguments":{"q":"x","n":2}}"#,
        );
        let line = logged(&plugin(json!({})), &request);
        assert!(line.get("arguments").is_none());
        let line = logged(&plugin(json!({"include_arguments": true})), &request);
        assert_eq!(line["arguments"], json!({"q": "x", "n": 2}));
    }

    #[test]
    fn answers_to_server_requests_and_untimed_answers() {
        let audit = plugin(json!({}));
        let answer = Message::new(
            Direction::ToServer,
            Kind::Response,
            "sampling/createMessage",
        )
        .with_id(r#""srv-1""#)
        .with_payload("{}")
        .with_elapsed(Duration::from_millis(4));
        let line = logged(&audit, &answer);
        assert_eq!(
            (
                line["direction"].clone(),
                line["id"].clone(),
                line["duration_ms"].clone()
            ),
            (json!("to-server"), json!("srv-1"), json!(4.0))
        );
        assert!(line.get("tool").is_none());
        let untimed = Message::response("tools/call", "{}");
        let line = logged(&audit, &untimed);
        assert!(line.get("duration_ms").is_none());
        assert!(line.get("tool").is_none(), "no request payload, no name");
    }

    #[test]
    fn errors_notifications_and_resources() {
        let audit = plugin(json!({}));
        let read = Message::request("resources/read", r#"{"uri":"file:///a.txt"}"#).with_id("1");
        assert_eq!(logged(&audit, &read)["uri"], "file:///a.txt");
        let error = Message::new(Direction::ToClient, Kind::Error, "resources/read")
            .with_id("1")
            .with_error(RpcError::new(-32002, "Resource not found"))
            .with_elapsed(Duration::from_millis(3));
        let line = logged(&audit, &error);
        assert_eq!(
            line["error"],
            json!({"code": -32002, "message": "Resource not found"})
        );
        assert_eq!(line["duration_ms"], json!(3.0));
        assert!(line.get("uri").is_none(), "no request payload, no URI");
        let line = logged(
            &audit,
            &error.with_request_payload(r#"{"uri":"file:///a.txt"}"#),
        );
        assert_eq!(
            line["uri"], "file:///a.txt",
            "an answer names its request's URI"
        );
        let note = Message::new(
            Direction::ToClient,
            Kind::Notification,
            "notifications/message",
        )
        .with_payload("{}");
        let line = logged(&audit, &note);
        assert!(line.get("id").is_none());
        assert_eq!(line["kind"], "notification");
    }

    #[test]
    fn intercept_passes_and_logs_one_json_line_at_info() {
        let (audit, manifest) = AuditLog::init(r#"{"methods": ["tools/*"]}"#).unwrap();
        assert_eq!(manifest.interests[0].methods, ["tools/*"]);
        assert!(manifest.wants_request, "answers name their request's tool");
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
