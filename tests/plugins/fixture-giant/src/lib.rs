//! Test fixture: answers `tools/call` requests to the configured tool with a
//! huge but valid JSON payload (a `tools/call` result with one text block).
//! Config: `{"tool": "giant", "bytes": 67108864, "verdict": "rewrite"}`
//! (`bytes`: the payload's exact size, at least 64; `verdict`: `rewrite` or `respond`).

use fixture_tool_call::{ToolCallFixture, ToolCallPlugin};
use interpose_plugin::{Manifest, Message, Verdict, export_plugin, manifest};
use serde::Deserialize;

/// Produces a huge payload when triggered.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Giant {
    #[serde(default = "default_bytes")]
    bytes: usize,
    #[serde(default)]
    verdict: Mode,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Mode {
    #[default]
    Rewrite,
    Respond,
}

fn default_bytes() -> usize {
    64 << 20
}

const HEAD: &str = r#"{"content":[{"type":"text","text":""#;
const TAIL: &str = r#""}]}"#;

impl ToolCallFixture for Giant {
    const TOOL: &'static str = "giant";

    fn manifest() -> Manifest {
        manifest!()
    }

    fn check(&self) -> Result<(), String> {
        if self.bytes < 64 {
            return Err("bytes must be at least 64".into());
        }
        Ok(())
    }

    fn on_call(&self, _msg: &Message) -> Verdict {
        let payload = giant_payload(self.bytes);
        match self.verdict {
            Mode::Rewrite => Verdict::Rewrite(payload),
            Mode::Respond => Verdict::Respond(payload),
        }
    }
}

fn giant_payload(bytes: usize) -> String {
    let mut payload = String::with_capacity(bytes);
    payload.push_str(HEAD);
    payload.extend(std::iter::repeat_n('x', bytes - HEAD.len() - TAIL.len()));
    payload.push_str(TAIL);
    payload
}

export_plugin!(ToolCallPlugin<Giant>);

#[cfg(test)]
mod tests {
    use interpose_plugin::Plugin;

    use super::*;

    #[test]
    fn payload_has_the_exact_size_and_is_json() {
        let (plugin, _) =
            ToolCallPlugin::<Giant>::init(r#"{"bytes": 1000, "verdict": "respond"}"#).unwrap();
        let verdict = plugin.intercept(&Message::request("tools/call", r#"{"name":"giant"}"#));
        let Verdict::Respond(text) = &verdict else {
            panic!("expected respond")
        };
        assert_eq!(text.len(), 1000);
        assert_eq!(
            verdict.json().unwrap()["content"][0]["text"]
                .as_str()
                .unwrap()
                .len(),
            1000 - HEAD.len() - TAIL.len()
        );
        assert_eq!(
            plugin.intercept(&Message::request("tools/call", r#"{"name":"echo"}"#)),
            Verdict::Pass
        );
    }
}
