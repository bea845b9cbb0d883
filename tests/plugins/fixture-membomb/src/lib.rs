//! Test fixture: allocates memory until the allocator fails (which aborts, a
//! trap), in `intercept` for `tools/call` requests to the configured tool, or
//! in `init`. Config: `{"tool": "membomb", "phase": "intercept", "chunk_bytes": 1048576}`.

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
    #[serde(default = "default_chunk")]
    chunk_bytes: usize,
}

#[derive(Deserialize, Default, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Phase {
    Init,
    #[default]
    Intercept,
}

fn default_tool() -> String {
    "membomb".into()
}

fn default_chunk() -> usize {
    1 << 20
}

/// Allocates without end when triggered.
pub struct MemBomb {
    tool: String,
    chunk_bytes: usize,
}

impl Plugin for MemBomb {
    fn init(config: &str) -> Result<(Self, Manifest), String> {
        let config: Config = parse_config(config)?;
        if config.chunk_bytes == 0 {
            return Err("chunk_bytes must be positive".into());
        }
        if config.phase == Phase::Init {
            hoard(config.chunk_bytes);
        }
        let plugin = MemBomb {
            tool: config.tool,
            chunk_bytes: config.chunk_bytes,
        };
        Ok((
            plugin,
            manifest!().methods(["tools/call"]).kinds([Kind::Request]),
        ))
    }

    fn intercept(&self, msg: &Message) -> Verdict {
        if msg.tool_call().is_some_and(|call| call.name == self.tool) {
            hoard(self.chunk_bytes);
        }
        Verdict::Pass
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

export_plugin!(MemBomb);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_tools_pass_and_zero_chunks_are_refused() {
        let (plugin, _) = MemBomb::init("{}").unwrap();
        assert_eq!(
            plugin.intercept(&Message::request("tools/call", r#"{"name":"echo"}"#)),
            Verdict::Pass
        );
        assert_eq!(
            MemBomb::init(r#"{"chunk_bytes": 0}"#).err().unwrap(),
            "chunk_bytes must be positive"
        );
    }
}
