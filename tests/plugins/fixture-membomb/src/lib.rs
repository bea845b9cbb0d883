//! Test fixture: allocates memory until the allocator fails (which aborts, a
//! trap), in `intercept` for `tools/call` requests to the configured tool, or
//! in `init`. Config: `{"tool": "membomb", "phase": "intercept", "chunk_bytes": 1048576}`.

use fixture_tool_call::{ToolCallFixture, ToolCallPlugin};
use interpose_plugin::{Manifest, Message, Verdict, export_plugin, manifest};
use serde::Deserialize;

/// Allocates without end when triggered, `chunk_bytes` at a time.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemBomb {
    #[serde(default = "default_chunk")]
    chunk_bytes: usize,
}

fn default_chunk() -> usize {
    1 << 20
}

impl ToolCallFixture for MemBomb {
    const TOOL: &'static str = "membomb";

    fn manifest() -> Manifest {
        manifest!()
    }

    fn check(&self) -> Result<(), String> {
        if self.chunk_bytes == 0 {
            return Err("chunk_bytes must be positive".into());
        }
        Ok(())
    }

    fn on_init(&self) -> Result<(), String> {
        hoard(self.chunk_bytes)
    }

    fn on_call(&self, _msg: &Message) -> Verdict {
        hoard(self.chunk_bytes)
    }
}

fn hoard(chunk_bytes: usize) -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0u8; chunk_bytes];
        // Touch every page so the memory is really used.
        for byte in chunk.iter_mut().step_by(4096) {
            *byte = 1;
        }
        hoard.push(std::hint::black_box(chunk));
    }
}

export_plugin!(ToolCallPlugin<MemBomb>);

#[cfg(test)]
mod tests {
    use interpose_plugin::Plugin;

    use super::*;

    #[test]
    fn other_tools_pass_and_zero_chunks_are_refused() {
        let (plugin, _) = ToolCallPlugin::<MemBomb>::init("{}").unwrap();
        assert_eq!(
            plugin.intercept(&Message::request("tools/call", r#"{"name":"echo"}"#)),
            Verdict::Pass
        );
        assert_eq!(
            ToolCallPlugin::<MemBomb>::init(r#"{"chunk_bytes": 0}"#)
                .err()
                .unwrap(),
            "chunk_bytes must be positive"
        );
    }
}
