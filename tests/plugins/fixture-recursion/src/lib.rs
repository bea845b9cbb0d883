//! Test fixture: recurses until the stack overflows (a trap), in `intercept`
//! for `tools/call` requests to the configured tool, or in `init`. Config:
//! `{"tool": "recursion", "phase": "intercept"}`.

use std::hint::black_box;

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
    "recursion".into()
}

/// Recurses without end when triggered.
pub struct Recursion {
    tool: String,
}

impl Plugin for Recursion {
    fn init(config: &str) -> Result<(Self, Manifest), String> {
        let config: Config = parse_config(config)?;
        if config.phase == Phase::Init {
            black_box(dive(0));
        }
        Ok((
            Recursion { tool: config.tool },
            manifest!().methods(["tools/call"]).kinds([Kind::Request]),
        ))
    }

    fn intercept(&self, msg: &Message) -> Verdict {
        if msg.tool_call().is_some_and(|call| call.name == self.tool) {
            black_box(dive(0));
        }
        Verdict::Pass
    }
}

/// Never returns: each frame keeps a local array alive across the call, so
/// the compiler cannot turn the recursion into a loop.
#[inline(never)]
fn dive(depth: u64) -> u64 {
    let mut pad = [depth; 32];
    black_box(&mut pad);
    let below = if black_box(true) { dive(depth + 1) } else { 0 };
    black_box(&pad);
    below ^ pad[3]
}

export_plugin!(Recursion);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_tools_pass() {
        let (plugin, _) = Recursion::init("{}").unwrap();
        assert_eq!(
            plugin.intercept(&Message::request("tools/call", r#"{"name":"echo"}"#)),
            Verdict::Pass
        );
    }
}
