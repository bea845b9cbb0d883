//! my-plugin: an interpose plugin in Rust.
//!
//! It refuses calls to tools whose names start with a configured prefix
//! (`delete_` by default) and logs the calls it lets through. Edit `intercept`;
//! `interpose plugin build .` builds the component, `cargo test` runs the tests.

use interpose_plugin::host::{self, Level};
use interpose_plugin::{
    Kind, Manifest, Message, Plugin, RpcError, Verdict, export_plugin, manifest, parse_config,
};
use serde::Deserialize;

/// The plugin's `config` table from interpose.toml.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Tools whose names start with this are refused.
    #[serde(default = "default_prefix")]
    prefix: String,
}

fn default_prefix() -> String {
    "delete_".into()
}

pub struct MyPlugin {
    prefix: String,
}

impl Plugin for MyPlugin {
    fn init(config: &str) -> Result<(Self, Manifest), String> {
        let config: Config = parse_config(config)?;
        // Only `tools/call` requests reach this plugin: the proxy skips it for
        // everything else without entering WebAssembly.
        let manifest = manifest!().methods(["tools/call"]).kinds([Kind::Request]);
        let plugin = MyPlugin {
            prefix: config.prefix,
        };
        Ok((plugin, manifest))
    }

    fn intercept(&self, msg: &Message) -> Verdict {
        let Some(call) = msg.tool_call() else {
            return Verdict::Pass;
        };
        if call.name.starts_with(&self.prefix) {
            return Verdict::reject(
                RpcError::INVALID_PARAMS,
                format!("tool `{}` is not allowed here", call.name),
            );
        }
        host::log(Level::Debug, &format!("allowed {}", call.name));
        // Passing costs nothing: the message goes on unchanged.
        Verdict::Pass
    }
}

export_plugin!(MyPlugin);

#[cfg(test)]
mod tests {
    use interpose_plugin::Interest;
    use interpose_plugin::host::testing::take_logs;

    use super::*;

    #[test]
    fn asks_only_for_tool_calls() {
        let (_, manifest) = MyPlugin::init("").unwrap();
        assert_eq!(manifest.name, "my-plugin");
        assert_eq!(
            manifest.interests,
            [Interest::new([Kind::Request], ["tools/call"])]
        );
    }

    #[test]
    fn refuses_tools_with_the_prefix_and_passes_the_others() {
        let (plugin, _) = MyPlugin::init(r#"{"prefix": "rm_"}"#).unwrap();
        let refused = plugin.intercept(&Message::request(
            "tools/call",
            r#"{"name":"rm_repo","arguments":{}}"#,
        ));
        assert_eq!(
            refused,
            Verdict::reject(-32602, "tool `rm_repo` is not allowed here")
        );
        let allowed = plugin.intercept(&Message::request("tools/call", r#"{"name":"list_repos"}"#));
        assert_eq!(allowed, Verdict::Pass);
        assert_eq!(
            take_logs(),
            [(Level::Debug, "allowed list_repos".to_owned())]
        );
    }

    #[test]
    fn refuses_unknown_config_keys() {
        let err = MyPlugin::init(r#"{"prefixes": []}"#).err().unwrap();
        assert!(
            err.starts_with("invalid config: unknown field `prefixes`, expected `prefix`"),
            "{err}"
        );
    }
}
