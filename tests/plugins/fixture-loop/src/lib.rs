//! Test fixture: loops forever, in `intercept` for `tools/call` requests to the
//! configured tool, or in `init`. Config: `{"tool": "loop", "phase": "intercept"}`
//! (`phase`: `intercept` or `init`).

use fixture_tool_call::{ToolCallFixture, ToolCallPlugin};
use interpose_plugin::{Manifest, Message, Verdict, export_plugin, manifest};
use serde::Deserialize;

/// Loops when triggered; no settings of its own.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Loop {}

impl ToolCallFixture for Loop {
    const TOOL: &'static str = "loop";

    fn manifest() -> Manifest {
        manifest!()
    }

    fn on_init(&self) -> Result<(), String> {
        spin()
    }

    fn on_call(&self, _msg: &Message) -> Verdict {
        spin()
    }
}

fn spin() -> ! {
    let mut turns: u64 = 0;
    loop {
        turns = std::hint::black_box(turns.wrapping_add(1));
    }
}

export_plugin!(ToolCallPlugin<Loop>);

#[cfg(test)]
mod tests {
    use interpose_plugin::Plugin;

    use super::*;

    #[test]
    fn other_tools_pass() {
        let (plugin, manifest) = ToolCallPlugin::<Loop>::init("{}").unwrap();
        assert_eq!(manifest.interests[0].methods, ["tools/call"]);
        assert_eq!(
            plugin.intercept(&Message::request("tools/call", r#"{"name":"echo"}"#)),
            Verdict::Pass
        );
    }
}
