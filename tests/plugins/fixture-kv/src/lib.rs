//! Test fixture: counts `tools/call` requests to the configured tool in the
//! host's key-value store (shared by all instances) and answers each with the
//! new count, as text and as `structuredContent: {"count": N}`. A call to
//! `reset_tool` deletes the counter and answers with count 0.
//!
//! Config: `{"tool": "count", "reset_tool": "reset", "key": "calls", "ttl_ms": null}`
//! (`tool` may be `*` to count every tool call; `ttl_ms` makes the counter
//! expire that long after its last update).

use std::time::Duration;

use interpose_plugin::mcp::CallToolResult;
use interpose_plugin::{
    Kind, Manifest, Message, Plugin, Verdict, export_plugin, host, manifest, parse_config,
};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "default_tool")]
    tool: String,
    #[serde(default = "default_reset_tool")]
    reset_tool: String,
    #[serde(default = "default_key")]
    key: String,
    #[serde(default)]
    ttl_ms: Option<u64>,
}

fn default_tool() -> String {
    "count".into()
}

fn default_reset_tool() -> String {
    "reset".into()
}

fn default_key() -> String {
    "calls".into()
}

/// Counts calls in the key-value store.
pub struct Counter {
    config: Config,
}

impl Plugin for Counter {
    fn init(config: &str) -> Result<(Self, Manifest), String> {
        let config: Config = parse_config(config)?;
        Ok((
            Counter { config },
            manifest!().methods(["tools/call"]).kinds([Kind::Request]),
        ))
    }

    fn intercept(&self, msg: &Message) -> Verdict {
        let Some(call) = msg.tool_call() else {
            return Verdict::Pass;
        };
        let count = if call.name == self.config.reset_tool {
            host::kv_delete(&self.config.key);
            0
        } else if self.config.tool == "*" || call.name == self.config.tool {
            let count = host::kv_get(&self.config.key)
                .and_then(|bytes| bytes.try_into().ok())
                .map_or(0, u64::from_le_bytes)
                + 1;
            let ttl = self.config.ttl_ms.map(Duration::from_millis);
            host::kv_set(&self.config.key, &count.to_le_bytes(), ttl);
            count
        } else {
            return Verdict::Pass;
        };
        let result = CallToolResult {
            structured_content: Some(json!({ "count": count })),
            ..CallToolResult::text(count.to_string())
        };
        Verdict::respond_json(&result)
    }
}

export_plugin!(Counter);

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn count(plugin: &Counter, tool: &str) -> Option<Value> {
        let params = json!({ "name": tool }).to_string();
        plugin
            .intercept(&Message::request("tools/call", params))
            .json()
            .map(|r| r["structuredContent"]["count"].clone())
    }

    #[test]
    fn counts_across_instances_and_resets() {
        host::testing::clear_kv();
        let (first, _) = Counter::init("{}").unwrap();
        let (second, _) = Counter::init("{}").unwrap();
        assert_eq!(count(&first, "count"), Some(json!(1)));
        assert_eq!(
            count(&second, "count"),
            Some(json!(2)),
            "the store is shared"
        );
        assert_eq!(count(&first, "echo"), None, "other tools pass");
        assert_eq!(count(&first, "reset"), Some(json!(0)));
        assert_eq!(count(&second, "count"), Some(json!(1)));
        let (any, _) = Counter::init(r#"{"tool": "*", "key": "other"}"#).unwrap();
        assert_eq!(count(&any, "echo"), Some(json!(1)));
    }
}
