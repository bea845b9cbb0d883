//! Test fixture: recurses until the stack overflows (a trap), in `intercept`
//! for `tools/call` requests to the configured tool, or in `init`. Config:
//! `{"tool": "recursion", "phase": "intercept"}`.

use std::hint::black_box;

use fixture_tool_call::{ToolCallFixture, ToolCallPlugin};
use interpose_plugin::{Manifest, Message, Verdict, export_plugin, manifest};
use serde::Deserialize;

/// Recurses without end when triggered; no settings of its own.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recursion {}

impl ToolCallFixture for Recursion {
    const TOOL: &'static str = "recursion";

    fn manifest() -> Manifest {
        manifest!()
    }

    fn on_init(&self) -> Result<(), String> {
        black_box(dive(0));
        Ok(())
    }

    fn on_call(&self, _msg: &Message) -> Verdict {
        black_box(dive(0));
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

export_plugin!(ToolCallPlugin<Recursion>);

#[cfg(test)]
mod tests {
    use interpose_plugin::Plugin;

    use super::*;

    #[test]
    fn other_tools_pass() {
        let (plugin, _) = ToolCallPlugin::<Recursion>::init("{}").unwrap();
        assert_eq!(
            plugin.intercept(&Message::request("tools/call", r#"{"name":"echo"}"#)),
            Verdict::Pass
        );
    }
}
