//! Test fixture: loops forever, in `intercept` for `tools/call` requests to the
//! configured tool, or in `init`. Config: `{"tool": "loop", "phase": "intercept"}`
//! (`phase`: `intercept` or `init`).

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
    phase: Phase,
}

#[derive(Deserialize, Default, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Phase {
    Init,
    #[default]
    Intercept,
}

fn default_tool() -> String {
    "loop".into()
}

/// Loops when triggered.
pub struct Loop {
    tool: String,
}

impl Plugin for Loop {
    fn init(config: &str) -> Result<(Self, Manifest), String> {
        let config: Config = parse_config(config)?;
        if config.phase == Phase::Init {
            spin();
        }
        Ok((
            Loop { tool: config.tool },
            manifest!().methods(["tools/call"]).kinds([Kind::Request]),
        ))
    }

    fn intercept(&self, msg: &Message) -> Verdict {
        if msg.tool_call().is_some_and(|call| call.name == self.tool) {
            spin();
        }
        Verdict::Pass
    }
}

fn spin() -> ! {
    let mut turns: u64 = 0;
    loop {
        turns = std::hint::black_box(turns.wrapping_add(1));
    }
}

export_plugin!(Loop);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_tools_pass() {
        let (plugin, manifest) = Loop::init("{}").unwrap();
        assert_eq!(manifest.interests[0].methods, ["tools/call"]);
        assert_eq!(
            plugin.intercept(&Message::request("tools/call", r#"{"name":"echo"}"#)),
            Verdict::Pass
        );
    }
}
