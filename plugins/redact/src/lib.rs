//! interpose plugin: redacts secrets and personal data from what backends send
//! back: `tools/call` results (text blocks, embedded resources,
//! `structuredContent`), `resources/read` contents and `prompts/get` messages.
//! See the README for the configuration.
//!
//! Most messages hold nothing to redact, so the plugin first runs one combined
//! pattern over the raw JSON text and passes the message untouched when it
//! finds nothing. Otherwise it scans the text, decodes the strings that matter,
//! applies the rules, and splices the changed strings back, re-encoded.

mod rules;
mod scan;

use interpose_plugin::{
    Kind, Manifest, Message, Plugin, RpcError, Verdict, export_plugin, host, manifest, parse_config,
};

use crate::rules::{Config, Rules};
use crate::scan::Spec;

/// The redaction plugin.
pub struct Redact {
    rules: Rules,
}

impl Plugin for Redact {
    fn init(config: &str) -> Result<(Self, Manifest), String> {
        let config: Config = parse_config(config)?;
        let rules = Rules::new(&config)?;
        let manifest = manifest!()
            .methods(["tools/call", "resources/read", "prompts/get"])
            .kinds([Kind::Response]);
        Ok((Redact { rules }, manifest))
    }

    fn intercept(&self, msg: &Message) -> Verdict {
        let Some(payload) = msg.payload() else {
            return Verdict::Pass;
        };
        let spec: &Spec = match (msg.kind(), msg.method()) {
            (Kind::Response, "tools/call") => &scan::TOOL_RESULT,
            (Kind::Response, "resources/read") => &scan::RESOURCE_RESULT,
            (Kind::Response, "prompts/get") => &scan::PROMPT_RESULT,
            _ => return Verdict::Pass,
        };
        if !self.rules.may_match_raw(payload) {
            return Verdict::Pass;
        }
        match scan::redact(payload, spec, &self.rules) {
            Ok(None) => Verdict::Pass,
            Ok(Some(redacted)) => {
                host::log(
                    host::Level::Debug,
                    &format!(
                        "redacted {} string(s) in a {} result (rules: {})",
                        redacted.strings,
                        msg.method(),
                        self.rules.names(&redacted.rules).join(", ")
                    ),
                );
                Verdict::Rewrite(redacted.payload)
            }
            // Fail closed: a result that cannot be checked is not delivered.
            Err(err) => Verdict::reject(
                RpcError::INTERNAL_ERROR,
                format!("redact: the {} result was withheld: {err}", msg.method()),
            ),
        }
    }
}

export_plugin!(Redact);

#[cfg(test)]
mod tests {
    use interpose_plugin::{Direction, Message};
    use serde_json::json;

    use super::*;

    fn plugin(config: &str) -> Redact {
        Redact::init(config).unwrap().0
    }

    #[test]
    fn manifest_asks_only_for_results_of_the_three_methods() {
        let (_, manifest) = Redact::init("{}").unwrap();
        assert_eq!(manifest.name, "redact");
        assert_eq!(
            manifest.interests,
            [interpose_plugin::Interest::new(
                [Kind::Response],
                ["tools/call", "resources/read", "prompts/get"]
            )]
        );
    }

    #[test]
    fn secret_in_tool_result_is_rewritten() {
        let result = json!({"content": [{"type": "text", "text": "key=AKIAIOSFODNN7EXAMPLE"}], "isError": false});
        let verdict = plugin("{}").intercept(&Message::response("tools/call", result.to_string()));
        assert_eq!(
            verdict.json().unwrap(),
            json!({"content": [{"type": "text", "text": "key=[REDACTED:aws-access-key]"}], "isError": false})
        );
        let logs = host::testing::take_logs();
        assert_eq!(
            logs,
            [(
                host::Level::Debug,
                "redacted 1 string(s) in a tools/call result (rules: aws-access-key)".to_owned()
            )]
        );
    }

    #[test]
    fn clean_results_and_other_messages_pass() {
        let redact = plugin("{}");
        let clean = json!({"content": [{"type": "text", "text": "all good"}]}).to_string();
        assert_eq!(
            redact.intercept(&Message::response("tools/call", &*clean)),
            Verdict::Pass
        );
        let secret = json!({"content": [{"type": "text", "text": "bob@example.com"}]}).to_string();
        assert_eq!(
            redact.intercept(&Message::request("tools/call", &*secret)),
            Verdict::Pass,
            "requests"
        );
        assert_eq!(
            redact.intercept(&Message::response("tools/list", &*secret)),
            Verdict::Pass,
            "other methods"
        );
        let no_payload = Message::new(Direction::ToClient, Kind::Response, "tools/call");
        assert_eq!(redact.intercept(&no_payload), Verdict::Pass);
    }

    #[test]
    fn defaults_false_without_rules_redacts_nothing() {
        let secret = json!({"content": [{"type": "text", "text": "bob@example.com"}]}).to_string();
        let verdict =
            plugin(r#"{"defaults": false}"#).intercept(&Message::response("tools/call", secret));
        assert_eq!(verdict, Verdict::Pass);
    }

    #[test]
    fn undecodable_result_fails_closed() {
        let raw = r#"{"content":[{"type":"text","text":"\ud800 bob@example.com"}]}"#;
        match plugin("{}").intercept(&Message::response("tools/call", raw)) {
            Verdict::Reject(err) => {
                assert_eq!(err.code, RpcError::INTERNAL_ERROR);
                assert_eq!(
                    err.message,
                    "redact: the tools/call result was withheld: a string at byte 34 does not decode"
                );
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn config_errors_are_reported() {
        let err = Redact::init(r#"{"rule": []}"#).err().unwrap();
        assert!(
            err.starts_with("invalid config: unknown field `rule`, expected `rules` or `defaults`"),
            "{err}"
        );
        let err = Redact::init(r#"{"rules": [{"name": "a"}]}"#).err().unwrap();
        assert!(
            err.starts_with("invalid config: missing field `pattern`"),
            "{err}"
        );
    }
}
