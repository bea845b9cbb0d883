//! Test fixture: returns whatever verdict its configuration says, so host tests
//! can produce each verdict for each kind of message in each direction.
//!
//! Config (every key optional):
//!
//! ```json
//! {
//!   "name": "fixture-verdicts",
//!   "methods": ["tools/call"], "kinds": ["request"], "wants_request": false,
//!   "init_error": null,
//!   "rules": [
//!     {"method": "tools/call", "direction": "to-server", "kind": "request", "tool": "echo",
//!      "verdict": "rewrite", "payload": {"name": "echo", "arguments": {"text": "rewritten"}}}
//!   ]
//! }
//! ```
//!
//! The config may also be just the list of rules. `name`, `methods`, `kinds`
//! and `wants_request` go to the manifest (defaults: the crate's name, every
//! method, every kind, false). `init_error` makes `init` fail with that text.
//!
//! The first rule whose conditions all hold decides; no rule means `pass`.
//! Conditions: `method` (exact, `prefix/*` or `*`), `direction` (`to-server`,
//! `to-client`), `kind` (`request`, `response`, `error`, `notification`),
//! `tool` (the tool name of a `tools/call` request, or of the request an answer
//! answers when `wants_request` is set). Verdicts:
//! - `pass`;
//! - `rewrite` / `respond` with `payload` (any JSON value, serialized), or
//!   `payload_text` (sent as is, valid JSON or not), or `echo: true` (the
//!   payload is `{"seen": MESSAGE}`, MESSAGE being what the plugin received:
//!   `direction`, `kind`, `method`, `id`, `payload`, `request_payload`,
//!   `error`, `session`, `server`, with `id` and the payloads as JSON text);
//! - `reject` with `code` (default -32000), `message` (default "rejected by
//!   fixture-verdicts") and optional `data` (any JSON value).
//!
//! A rule may also write text before giving its verdict: `log` through the host's
//! `log` call (at info), `print` to stdout; either as given, control characters
//! and all (for the tests that check a plugin cannot forge the proxy's log lines).

use interpose_plugin::{
    Direction, Kind, Manifest, Message, Plugin, RpcError, Verdict, export_plugin, parse_config,
};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
#[serde(untagged)]
enum ConfigForm {
    Rules(Vec<Rule>),
    Full(Config),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    methods: Vec<String>,
    #[serde(default)]
    kinds: Vec<KindName>,
    #[serde(default)]
    wants_request: bool,
    #[serde(default)]
    init_error: Option<String>,
    #[serde(default)]
    rules: Vec<Rule>,
}

#[derive(Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "kebab-case")]
enum KindName {
    Request,
    Response,
    Error,
    Notification,
}

impl From<KindName> for Kind {
    fn from(kind: KindName) -> Kind {
        match kind {
            KindName::Request => Kind::Request,
            KindName::Response => Kind::Response,
            KindName::Error => Kind::Error,
            KindName::Notification => Kind::Notification,
        }
    }
}

#[derive(Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "kebab-case")]
enum DirectionName {
    ToServer,
    ToClient,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
enum VerdictName {
    Pass,
    Rewrite,
    Respond,
    Reject,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    direction: Option<DirectionName>,
    #[serde(default)]
    kind: Option<KindName>,
    #[serde(default)]
    tool: Option<String>,
    verdict: VerdictName,
    #[serde(default)]
    payload: Option<Value>,
    #[serde(default)]
    payload_text: Option<String>,
    #[serde(default)]
    echo: bool,
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    log: Option<String>,
    #[serde(default)]
    print: Option<String>,
}

impl Rule {
    fn matches(&self, msg: &Message) -> bool {
        let direction = match msg.direction() {
            Direction::ToServer => DirectionName::ToServer,
            Direction::ToClient => DirectionName::ToClient,
        };
        self.method
            .as_deref()
            .is_none_or(|pattern| method_matches(pattern, msg.method()))
            && self.direction.is_none_or(|d| d == direction)
            && self.kind.is_none_or(|k| Kind::from(k) == msg.kind())
            && self
                .tool
                .as_deref()
                .is_none_or(|tool| msg.tool_call().is_some_and(|call| call.name == tool))
    }

    fn verdict(&self, msg: &Message) -> Verdict {
        if let Some(text) = &self.log {
            interpose_plugin::host::info(text);
        }
        if let Some(text) = &self.print {
            println!("{text}");
        }
        let payload = || -> String {
            if self.echo {
                json!({ "seen": seen(msg) }).to_string()
            } else if let Some(text) = &self.payload_text {
                text.clone()
            } else {
                self.payload.as_ref().unwrap_or(&Value::Null).to_string()
            }
        };
        match self.verdict {
            VerdictName::Pass => Verdict::Pass,
            VerdictName::Rewrite => Verdict::Rewrite(payload()),
            VerdictName::Respond => Verdict::Respond(payload()),
            VerdictName::Reject => Verdict::Reject(RpcError {
                code: self.code.unwrap_or(-32000),
                message: self
                    .message
                    .clone()
                    .unwrap_or_else(|| "rejected by fixture-verdicts".into()),
                data: self.data.as_ref().map(Value::to_string),
            }),
        }
    }
}

fn method_matches(pattern: &str, method: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => method.starts_with(prefix),
        None => pattern == method,
    }
}

/// The message as the plugin received it.
fn seen(msg: &Message) -> Value {
    json!({
        "direction": msg.direction().as_str(),
        "kind": msg.kind().as_str(),
        "method": msg.method(),
        "id": msg.id(),
        "payload": msg.payload(),
        "request_payload": msg.request_payload(),
        "error": msg.error().map(|e| json!({"code": e.code, "message": e.message, "data": e.data})),
        "session": msg.session(),
        "server": msg.server(),
    })
}

/// Returns configured verdicts.
pub struct Verdicts {
    rules: Vec<Rule>,
}

impl Plugin for Verdicts {
    fn init(config: &str) -> Result<(Self, Manifest), String> {
        let config = match parse_config::<ConfigForm>(config)? {
            ConfigForm::Rules(rules) => Config {
                rules,
                ..Config::default()
            },
            ConfigForm::Full(config) => config,
        };
        if let Some(error) = config.init_error {
            return Err(error);
        }
        let manifest = Manifest::new(
            config.name.as_deref().unwrap_or(env!("CARGO_PKG_NAME")),
            env!("CARGO_PKG_VERSION"),
        )
        .methods(config.methods)
        .kinds(config.kinds.into_iter().map(Kind::from))
        .wants_request(config.wants_request);
        Ok((
            Verdicts {
                rules: config.rules,
            },
            manifest,
        ))
    }

    fn intercept(&self, msg: &Message) -> Verdict {
        self.rules
            .iter()
            .find(|rule| rule.matches(msg))
            .map_or(Verdict::Pass, |rule| rule.verdict(msg))
    }
}

export_plugin!(Verdicts);

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin(config: Value) -> (Verdicts, Manifest) {
        Verdicts::init(&config.to_string()).unwrap()
    }

    #[test]
    fn first_matching_rule_decides() {
        let (plugin, manifest) = plugin(json!([
            {"method": "tools/call", "direction": "to-server", "kind": "request", "tool": "echo",
             "verdict": "rewrite", "payload": {"name": "echo", "arguments": {"text": "rewritten"}}},
            {"method": "tools/*", "kind": "request", "verdict": "reject", "code": -32001, "message": "no", "data": [1]},
            {"method": "notifications/*", "verdict": "reject"},
            {"method": "sampling/createMessage", "direction": "to-client", "verdict": "rewrite", "payload_text": "{\"x\":1}"},
        ]));
        assert_eq!(
            (manifest.name.as_str(), manifest.interests[0].methods.len()),
            ("fixture-verdicts", 0)
        );
        let echo = Message::request("tools/call", r#"{"name":"echo"}"#);
        assert_eq!(
            plugin.intercept(&echo).json().unwrap(),
            json!({"name": "echo", "arguments": {"text": "rewritten"}})
        );
        let other = Message::request("tools/call", r#"{"name":"other"}"#);
        assert_eq!(
            plugin.intercept(&other),
            Verdict::Reject(RpcError {
                code: -32001,
                message: "no".into(),
                data: Some("[1]".into())
            })
        );
        let note = Message::new(
            Direction::ToClient,
            Kind::Notification,
            "notifications/progress",
        );
        assert_eq!(
            plugin.intercept(&note),
            Verdict::reject(-32000, "rejected by fixture-verdicts")
        );
        let sampling = Message::new(Direction::ToClient, Kind::Request, "sampling/createMessage");
        assert_eq!(
            plugin.intercept(&sampling),
            Verdict::Rewrite("{\"x\":1}".into())
        );
        assert_eq!(
            plugin.intercept(&Message::response("tools/call", "{}")),
            Verdict::Pass,
            "no rule"
        );
    }

    #[test]
    fn echo_shows_what_the_plugin_received() {
        let (plugin, manifest) = plugin(json!({
            "name": "spy", "methods": ["tools/call"], "kinds": ["response"], "wants_request": true,
            "rules": [{"verdict": "rewrite", "echo": true}]
        }));
        assert_eq!(manifest.name, "spy");
        assert_eq!(manifest.interests[0].kinds, [Kind::Response]);
        assert!(manifest.wants_request);
        let msg = Message::response("tools/call", "{\"content\":[]}")
            .with_request_payload("{\"name\":\"echo\"}")
            .with_session("s")
            .with_server("b");
        assert_eq!(
            plugin.intercept(&msg).json().unwrap(),
            json!({"seen": {"direction": "to-client", "kind": "response", "method": "tools/call", "id": "1",
                "payload": "{\"content\":[]}", "request_payload": "{\"name\":\"echo\"}", "error": null,
                "session": "s", "server": "b"}})
        );
    }

    #[test]
    fn init_error_and_bad_config() {
        assert_eq!(
            Verdicts::init(r#"{"init_error": "refused"}"#)
                .err()
                .unwrap(),
            "refused"
        );
        assert!(Verdicts::init(r#"[{"verdict": "maybe"}]"#).is_err());
        assert!(Verdicts::init("").is_ok(), "blank config means no rules");
    }
}
