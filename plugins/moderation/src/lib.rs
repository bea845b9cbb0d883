//! `moderation`: sends tool results (and, when asked, tool-call arguments) to an
//! HTTP moderation endpoint, and rejects or annotates what it flags. The protocol
//! and the configuration are in the README.

use std::time::Duration;

use interpose_plugin::mcp::{CallToolResult, Content};
use interpose_plugin::{
    Kind, Manifest, Message, Plugin, RpcError, Verdict, export_plugin, host, http, manifest,
    parse_config,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The JSON-RPC error code of a rejected message.
pub const FLAGGED: i64 = -32001;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Where the checks are POSTed (must be within the plugin's `http` grant).
    endpoint: String,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default)]
    on_flag: OnFlag,
    /// Also check tool-call arguments, before the call reaches the server.
    #[serde(default)]
    check_arguments: bool,
    /// What to do when the endpoint cannot answer: `reject` (fail closed) or `pass`.
    #[serde(default)]
    on_error: OnError,
}

fn default_timeout_ms() -> u64 {
    1000
}

#[derive(Debug, Deserialize, Default, PartialEq, Eq, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum OnFlag {
    #[default]
    Reject,
    Annotate,
}

#[derive(Debug, Deserialize, Default, PartialEq, Eq, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum OnError {
    #[default]
    Reject,
    Pass,
}

/// What is sent to the endpoint.
#[derive(Debug, Serialize, PartialEq)]
pub struct Check<'a> {
    /// `tool_result` or `tool_arguments`.
    pub kind: &'static str,
    /// The tool's name, when known.
    pub tool: Option<&'a str>,
    /// The text to judge: the result's text blocks joined with newlines, or the
    /// arguments as JSON.
    pub text: String,
}

/// What the endpoint answers.
#[derive(Debug, Deserialize, PartialEq)]
pub struct Answer {
    pub flagged: bool,
    #[serde(default)]
    pub reason: Option<String>,
}

pub struct Moderation {
    config: Config,
}

impl Plugin for Moderation {
    fn init(config: &str) -> Result<(Self, Manifest), String> {
        let config: Config = parse_config(config)?;
        if !config.endpoint.starts_with("http://") && !config.endpoint.starts_with("https://") {
            return Err(format!(
                "`endpoint` must be an http:// or https:// URL, not `{}`",
                config.endpoint
            ));
        }
        // The request's params name the tool a result answers.
        let mut manifest = manifest!()
            .wants([Kind::Response], ["tools/call"])
            .wants_request(true);
        if config.check_arguments {
            manifest = manifest.wants([Kind::Request], ["tools/call"]);
        }
        Ok((Moderation { config }, manifest))
    }

    fn intercept(&self, msg: &Message) -> Verdict {
        let tool = msg.tool_call();
        let tool_name = tool.as_ref().map(|call| call.name.as_str());
        match msg.kind() {
            Kind::Request if self.config.check_arguments => {
                let Some(call) = &tool else {
                    return Verdict::Pass;
                };
                let text = serde_json::Value::Object(call.arguments.clone().unwrap_or_default())
                    .to_string();
                let check = Check {
                    kind: "tool_arguments",
                    tool: tool_name,
                    text,
                };
                // Arguments cannot be annotated: flagged ones are rejected.
                self.decide(&check, self.ask(&check), None)
            }
            Kind::Response => {
                let Some(result) = msg.call_tool_result() else {
                    return Verdict::Pass;
                };
                let check = Check {
                    kind: "tool_result",
                    tool: tool_name,
                    text: result.joined_text(),
                };
                if check.text.is_empty() {
                    return Verdict::Pass;
                }
                self.decide(&check, self.ask(&check), Some(result))
            }
            _ => Verdict::Pass,
        }
    }
}

impl Moderation {
    fn ask(&self, check: &Check) -> Result<Answer, String> {
        let response = http::Request::new("POST", &self.config.endpoint)
            .json(check)
            .and_then(|r| {
                r.timeout(Duration::from_millis(self.config.timeout_ms))
                    .send()
            })
            .map_err(|e| e.to_string())?;
        if response.status != 200 {
            return Err(format!("the endpoint answered HTTP {}", response.status));
        }
        response.json().map_err(|e| e.to_string())
    }

    /// The verdict for `check` given the endpoint's `answer`; `result` is the tool
    /// result to annotate (`None` for arguments, which are rejected when flagged).
    fn decide(
        &self,
        check: &Check,
        answer: Result<Answer, String>,
        result: Option<CallToolResult>,
    ) -> Verdict {
        let what = match check.tool {
            Some(tool) => format!("{} of `{tool}`", check.kind.replace('_', " ")),
            None => check.kind.replace('_', " "),
        };
        let answer = match answer {
            Ok(answer) => answer,
            Err(e) if self.config.on_error == OnError::Pass => {
                host::log(host::Level::Warn, &format!("{what} passed unchecked: {e}"));
                return Verdict::Pass;
            }
            Err(e) => {
                return Verdict::reject(
                    RpcError::INTERNAL_ERROR,
                    format!("moderation: the {what} could not be checked: {e}"),
                );
            }
        };
        if !answer.flagged {
            return Verdict::Pass;
        }
        let reason = answer.reason.as_deref().unwrap_or("no reason given");
        host::log(host::Level::Info, &format!("{what} flagged: {reason}"));
        match (self.config.on_flag, result) {
            (OnFlag::Annotate, Some(mut result)) => {
                result
                    .content
                    .insert(0, Content::text(format!("[moderation] flagged: {reason}")));
                result.extra.insert(
                    "_meta".into(),
                    json!({"moderation": {"flagged": true, "reason": reason}}),
                );
                Verdict::rewrite_json(&result)
            }
            _ => Verdict::reject_with_data(
                FLAGGED,
                format!(
                    "moderation: the {what} {} flagged: {reason}",
                    if check.kind == "tool_arguments" {
                        "were"
                    } else {
                        "was"
                    }
                ),
                &json!({"plugin": "moderation", "reason": reason}),
            ),
        }
    }
}

export_plugin!(Moderation);

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin(config: serde_json::Value) -> (Moderation, Manifest) {
        Moderation::init(&config.to_string()).unwrap()
    }

    fn result_check() -> Check<'static> {
        Check {
            kind: "tool_result",
            tool: Some("search"),
            text: "some text".into(),
        }
    }

    fn flagged() -> Result<Answer, String> {
        Ok(Answer {
            flagged: true,
            reason: Some("rude".into()),
        })
    }

    #[test]
    fn config_is_checked_and_decides_the_interests() {
        assert!(Moderation::init("{}").is_err(), "endpoint is required");
        assert!(Moderation::init(r#"{"endpoint": "ftp://x"}"#).is_err());
        assert!(Moderation::init(r#"{"endpoint": "http://x", "on_flag": "drop"}"#).is_err());
        let (_, manifest) = plugin(json!({"endpoint": "http://127.0.0.1:1/v1"}));
        assert_eq!(manifest.interests.len(), 1);
        assert!(manifest.wants_request);
        let (_, manifest) =
            plugin(json!({"endpoint": "http://127.0.0.1:1/v1", "check_arguments": true}));
        assert_eq!(manifest.interests.len(), 2);
    }

    #[test]
    fn flagged_results_are_rejected_or_annotated() {
        let (reject, _) = plugin(json!({"endpoint": "http://x/"}));
        let verdict = reject.decide(&result_check(), flagged(), Some(CallToolResult::text("t")));
        let Verdict::Reject(error) = verdict else {
            panic!("expected a rejection, got {verdict:?}");
        };
        assert_eq!(error.code, FLAGGED);
        assert_eq!(
            error.message,
            "moderation: the tool result of `search` was flagged: rude"
        );

        let (annotate, _) = plugin(json!({"endpoint": "http://x/", "on_flag": "annotate"}));
        let verdict = annotate.decide(&result_check(), flagged(), Some(CallToolResult::text("t")));
        let rewritten = verdict.json().expect("a rewrite");
        assert_eq!(
            rewritten["content"][0]["text"],
            "[moderation] flagged: rude"
        );
        assert_eq!(rewritten["content"][1]["text"], "t");
        assert_eq!(rewritten["_meta"]["moderation"]["reason"], "rude");
    }

    #[test]
    fn clean_answers_pass_and_failures_follow_on_error() {
        let (closed, _) = plugin(json!({"endpoint": "http://x/"}));
        let clean = Ok(Answer {
            flagged: false,
            reason: None,
        });
        assert!(closed.decide(&result_check(), clean, None).is_pass());
        let failed = closed.decide(&result_check(), Err("timeout".into()), None);
        let Verdict::Reject(error) = failed else {
            panic!("expected a rejection, got {failed:?}");
        };
        assert_eq!(
            error.message,
            "moderation: the tool result of `search` could not be checked: timeout"
        );
        let (open, _) = plugin(json!({"endpoint": "http://x/", "on_error": "pass"}));
        assert!(
            open.decide(&result_check(), Err("timeout".into()), None)
                .is_pass()
        );
    }

    #[test]
    fn the_protocol_is_plain_json() {
        assert_eq!(
            serde_json::to_value(result_check()).unwrap(),
            json!({"kind": "tool_result", "tool": "search", "text": "some text"})
        );
        let answer: Answer = serde_json::from_str(r#"{"flagged": true, "reason": "x"}"#).unwrap();
        assert_eq!(
            answer,
            Answer {
                flagged: true,
                reason: Some("x".into())
            }
        );
        let answer: Answer = serde_json::from_str(r#"{"flagged": false}"#).unwrap();
        assert!(!answer.flagged);
    }
}
