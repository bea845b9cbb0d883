//! Test fixture: traps (a Rust panic, or an abort: both end in the Wasm
//! `unreachable` instruction), in `intercept` for `tools/call` requests to the
//! configured tool, or in `init`. Config:
//! `{"tool": "trap", "phase": "intercept", "how": "panic"}` (`how`: `panic` or `abort`).

use fixture_tool_call::{ToolCallFixture, ToolCallPlugin};
use interpose_plugin::{Manifest, Message, Verdict, export_plugin, manifest};
use serde::Deserialize;

/// Traps when triggered, the way `how` says.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trap {
    #[serde(default)]
    how: How,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum How {
    #[default]
    Panic,
    Abort,
}

impl ToolCallFixture for Trap {
    const TOOL: &'static str = "trap";

    fn manifest() -> Manifest {
        manifest!()
    }

    fn on_init(&self) -> Result<(), String> {
        trap(self.how)
    }

    fn on_call(&self, _msg: &Message) -> Verdict {
        trap(self.how)
    }
}

fn trap(how: How) -> ! {
    match how {
        How::Panic => panic!("fixture-trap: deliberate panic"),
        How::Abort => std::process::abort(),
    }
}

export_plugin!(ToolCallPlugin<Trap>);

#[cfg(test)]
mod tests {
    use interpose_plugin::Plugin;

    use super::*;

    #[test]
    #[should_panic(expected = "fixture-trap: deliberate panic")]
    fn the_configured_tool_panics() {
        let (plugin, _) = ToolCallPlugin::<Trap>::init(r#"{"tool": "boom"}"#).unwrap();
        assert_eq!(
            plugin.intercept(&Message::request("tools/call", r#"{"name":"echo"}"#)),
            Verdict::Pass
        );
        plugin.intercept(&Message::request("tools/call", r#"{"name":"boom"}"#));
    }
}
