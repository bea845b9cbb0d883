//! Test fixture: traps (a Rust panic, or an abort: both end in the Wasm
//! `unreachable` instruction), in `intercept` for `tools/call` requests to the
//! configured tool, or in `init`. Config:
//! `{"tool": "trap", "phase": "intercept", "how": "panic"}` (`how`: `panic` or `abort`).

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
    #[serde(default)]
    how: How,
}

#[derive(Deserialize, Default, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Phase {
    Init,
    #[default]
    Intercept,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum How {
    #[default]
    Panic,
    Abort,
}

fn default_tool() -> String {
    "trap".into()
}

/// Traps when triggered.
pub struct Trap {
    tool: String,
    how: How,
}

impl Plugin for Trap {
    fn init(config: &str) -> Result<(Self, Manifest), String> {
        let config: Config = parse_config(config)?;
        if config.phase == Phase::Init {
            trap(config.how);
        }
        Ok((
            Trap {
                tool: config.tool,
                how: config.how,
            },
            manifest!().methods(["tools/call"]).kinds([Kind::Request]),
        ))
    }

    fn intercept(&self, msg: &Message) -> Verdict {
        if msg.tool_call().is_some_and(|call| call.name == self.tool) {
            trap(self.how);
        }
        Verdict::Pass
    }
}

fn trap(how: How) -> ! {
    match how {
        How::Panic => panic!("fixture-trap: deliberate panic"),
        How::Abort => std::process::abort(),
    }
}

export_plugin!(Trap);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "fixture-trap: deliberate panic")]
    fn the_configured_tool_panics() {
        let (plugin, _) = Trap::init(r#"{"tool": "boom"}"#).unwrap();
        assert_eq!(
            plugin.intercept(&Message::request("tools/call", r#"{"name":"echo"}"#)),
            Verdict::Pass
        );
        plugin.intercept(&Message::request("tools/call", r#"{"name":"boom"}"#));
    }
}
