//! What the test fixtures that act on one tool's calls share, so that each fixture
//! is only what it does. Such a fixture asks only for `tools/call` requests and acts
//! only on calls of its tool, so the rest of a session works. Its config has two
//! keys of this crate's beside its own:
//!
//! - `tool`: the tool whose calls set it off (default: the fixture's own word);
//! - `phase`: `intercept` (the default), or `init` to act once while loading instead,
//!   for fixtures that can (so a plugin that fails to load can be tested).
//!
//! ```text
//! #[derive(Deserialize)]
//! #[serde(deny_unknown_fields)]
//! pub struct Loop {}
//!
//! impl ToolCallFixture for Loop {
//!     const TOOL: &'static str = "loop";
//!     fn manifest() -> Manifest { manifest!() }
//!     fn on_call(&self, _msg: &Message) -> Verdict { spin() }
//! }
//!
//! export_plugin!(ToolCallPlugin<Loop>);
//! ```

use interpose_plugin::{Kind, Manifest, Message, Plugin, Verdict, parse_config};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// A fixture that acts on calls of one tool; deserialized from its config's own
/// keys (declare it `#[serde(deny_unknown_fields)]`, so a typo is refused).
pub trait ToolCallFixture: DeserializeOwned + 'static {
    /// The tool whose calls set it off when the config names none.
    const TOOL: &'static str;

    /// `manifest!()`, so the plugin is named after the fixture's crate; the methods
    /// and kinds are set here.
    fn manifest() -> Manifest;

    /// Refuses settings that cannot work; the text is shown to the user.
    fn check(&self) -> Result<(), String> {
        Ok(())
    }

    /// What it does with `"phase": "init"`; by default that phase is refused.
    fn on_init(&self) -> Result<(), String> {
        Err("this fixture has no `init` phase".into())
    }

    /// What it does to a call of its tool.
    fn on_call(&self, msg: &Message) -> Verdict;
}

#[derive(Deserialize, Default, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Phase {
    Init,
    #[default]
    Intercept,
}

/// The plugin a [`ToolCallFixture`] is exported as: `export_plugin!(ToolCallPlugin<F>)`.
pub struct ToolCallPlugin<F> {
    tool: String,
    /// The fixture, for unit tests that look at its settings.
    pub fixture: F,
}

impl<F: ToolCallFixture> Plugin for ToolCallPlugin<F> {
    fn init(config: &str) -> Result<(Self, Manifest), String> {
        let mut keys: Map<String, Value> = parse_config(config)?;
        let tool = take(&mut keys, "tool")?.unwrap_or_else(|| F::TOOL.to_owned());
        let phase: Phase = take(&mut keys, "phase")?.unwrap_or_default();
        let fixture: F = serde_json::from_value(Value::Object(keys))
            .map_err(|err| format!("invalid config: {err}"))?;
        fixture.check()?;
        if phase == Phase::Init {
            fixture.on_init()?;
        }
        let manifest = F::manifest().methods(["tools/call"]).kinds([Kind::Request]);
        Ok((ToolCallPlugin { tool, fixture }, manifest))
    }

    fn intercept(&self, msg: &Message) -> Verdict {
        match msg.tool_call() {
            Some(call) if call.name == self.tool => self.fixture.on_call(msg),
            _ => Verdict::Pass,
        }
    }
}

/// Takes one of this crate's keys out of the config, leaving the fixture's own.
fn take<T: DeserializeOwned>(
    keys: &mut Map<String, Value>,
    key: &str,
) -> Result<Option<T>, String> {
    keys.remove(key)
        .map(|value| {
            serde_json::from_value(value).map_err(|err| format!("invalid config: `{key}`: {err}"))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use interpose_plugin::manifest;

    use super::*;

    /// Answers calls of its tool with its `answer`.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Answers {
        answer: String,
    }

    impl ToolCallFixture for Answers {
        const TOOL: &'static str = "ask";

        fn manifest() -> Manifest {
            manifest!()
        }

        fn on_call(&self, _msg: &Message) -> Verdict {
            Verdict::Respond(self.answer.clone())
        }
    }

    fn call(tool: &str) -> Message<'static> {
        Message::request("tools/call", format!(r#"{{"name":"{tool}"}}"#))
    }

    #[test]
    fn acts_only_on_calls_of_its_tool_and_asks_for_nothing_else() {
        let (plugin, manifest) = ToolCallPlugin::<Answers>::init(r#"{"answer": "42"}"#).unwrap();
        assert_eq!(manifest.interests[0].methods, ["tools/call"]);
        assert_eq!(
            plugin.intercept(&call("ask")),
            Verdict::Respond("42".into())
        );
        assert_eq!(plugin.intercept(&call("other")), Verdict::Pass);

        let config = r#"{"answer": "42", "tool": "other", "phase": "intercept"}"#;
        let (plugin, _) = ToolCallPlugin::<Answers>::init(config).unwrap();
        assert_eq!(plugin.intercept(&call("ask")), Verdict::Pass);
        assert_eq!(
            plugin.intercept(&call("other")),
            Verdict::Respond("42".into())
        );
    }

    #[test]
    fn bad_configs_are_refused_with_the_reason() {
        let refused = |config: &str| ToolCallPlugin::<Answers>::init(config).err().unwrap();
        assert_eq!(
            refused(r#"{"answer": "42", "phase": "init"}"#),
            "this fixture has no `init` phase"
        );
        assert!(refused(r#"{"answer": "42", "tool": 7}"#).starts_with("invalid config: `tool`: "));
        assert!(
            refused(r#"{"answer": "42", "phase": "later"}"#)
                .starts_with("invalid config: `phase`: ")
        );
        assert!(refused(r#"{"answer": "42", "anwser": 1}"#).contains("unknown field `anwser`"));
        assert!(refused("{}").contains("missing field `answer`"));
    }
}
