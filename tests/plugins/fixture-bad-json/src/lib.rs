//! Test fixture: answers `tools/call` requests to the configured tool with a
//! payload that is not JSON. Config:
//! `{"tool": "bad-json", "verdict": "rewrite", "text": "{\"truncated\": "}`
//! (`verdict`: `rewrite` forwards the request with the bad params, `respond`
//! answers with the bad result).

use interpose_plugin::{
    Kind, Manifest, Message, Plugin, Verdict, export_plugin, manifest, parse_config,
};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "default_tool")]
    tool: String,
    #[serde(default)]
    verdict: Mode,
    #[serde(default = "default_text")]
    text: String,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Mode {
    #[default]
    Rewrite,
    Respond,
}

fn default_tool() -> String {
    "bad-json".into()
}

fn default_text() -> String {
    r#"{"truncated": "#.into()
}

/// Produces invalid JSON when triggered.
pub struct BadJson {
    config: Config,
}

impl Plugin for BadJson {
    fn init(config: &str) -> Result<(Self, Manifest), String> {
        let config: Config = parse_config(config)?;
        Ok((
            BadJson { config },
            manifest!().methods(["tools/call"]).kinds([Kind::Request]),
        ))
    }

    fn intercept(&self, msg: &Message) -> Verdict {
        if msg
            .tool_call()
            .is_none_or(|call| call.name != self.config.tool)
        {
            return Verdict::Pass;
        }
        match self.config.verdict {
            Mode::Rewrite => Verdict::Rewrite(self.config.text.clone()),
            Mode::Respond => Verdict::Respond(self.config.text.clone()),
        }
    }
}

export_plugin!(BadJson);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configured_tool_gets_invalid_json() {
        let (plugin, _) = BadJson::init(r#"{"verdict": "respond"}"#).unwrap();
        let verdict = plugin.intercept(&Message::request("tools/call", r#"{"name":"bad-json"}"#));
        // The default text is cut off in the middle of an object.
        assert_eq!(verdict, Verdict::Respond(r#"{"truncated": "#.into()));
        assert_eq!(verdict.json(), None, "not JSON");
        assert_eq!(
            plugin.intercept(&Message::request("tools/call", r#"{"name":"echo"}"#)),
            Verdict::Pass
        );
    }
}
