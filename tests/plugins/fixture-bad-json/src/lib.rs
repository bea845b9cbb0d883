//! Test fixture: answers `tools/call` requests to the configured tool with a
//! payload that is not JSON. Config:
//! `{"tool": "bad-json", "verdict": "rewrite", "text": "{\"truncated\": "}`
//! (`verdict`: `rewrite` forwards the request with the bad params, `respond`
//! answers with the bad result).

use fixture_tool_call::{ToolCallFixture, ToolCallPlugin};
use interpose_plugin::{Manifest, Message, Verdict, export_plugin, manifest};
use serde::Deserialize;

/// Produces invalid JSON when triggered.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BadJson {
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

fn default_text() -> String {
    r#"{"truncated": "#.into()
}

impl ToolCallFixture for BadJson {
    const TOOL: &'static str = "bad-json";

    fn manifest() -> Manifest {
        manifest!()
    }

    fn on_call(&self, _msg: &Message) -> Verdict {
        match self.verdict {
            Mode::Rewrite => Verdict::Rewrite(self.text.clone()),
            Mode::Respond => Verdict::Respond(self.text.clone()),
        }
    }
}

export_plugin!(ToolCallPlugin<BadJson>);

#[cfg(test)]
mod tests {
    use interpose_plugin::Plugin;

    use super::*;

    #[test]
    fn the_configured_tool_gets_invalid_json() {
        let (plugin, _) = ToolCallPlugin::<BadJson>::init(r#"{"verdict": "respond"}"#).unwrap();
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
