//! Test fixture: on a `tools/call` request to the configured tool, tries to
//! reach outside the sandbox (read files, list and write directories, read
//! environment variables, open TCP connections) and answers with what worked,
//! as `structuredContent` (and the same JSON as text), also logged at info.
//!
//! Config (every list optional):
//! `{"tool": "escape", "read": ["/etc/hostname"], "list": ["/"], "write": ["/tmp/x"],
//!   "env": ["HOME"], "connect": ["127.0.0.1:80"]}`.
//!
//! Result: `{"read": {PATH: OUTCOME}, "list": {...}, "write": {...}, "env": {NAME: OUTCOME},
//! "connect": {ADDR: OUTCOME}, "env_count": N}` where OUTCOME is
//! `{"ok": true, "value": ...}` or `{"ok": false, "error": "..."}`; `value` is the
//! file's text, the sorted entry names, the bytes written, the variable's value,
//! or the peer address. `env_count` is how many variables the plugin sees at all.

use std::collections::BTreeMap;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use fixture_tool_call::{ToolCallFixture, ToolCallPlugin};
use interpose_plugin::mcp::{CallToolResult, Content};
use interpose_plugin::{Manifest, Message, Verdict, export_plugin, host, manifest};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Tries to escape when triggered.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Escape {
    #[serde(default)]
    read: Vec<String>,
    #[serde(default)]
    list: Vec<String>,
    #[serde(default)]
    write: Vec<String>,
    #[serde(default)]
    env: Vec<String>,
    #[serde(default)]
    connect: Vec<String>,
}

/// What one attempt did.
#[derive(Serialize)]
struct Outcome {
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl<T: Into<Value>, E: std::fmt::Display> From<Result<T, E>> for Outcome {
    fn from(result: Result<T, E>) -> Self {
        match result {
            Ok(value) => Outcome {
                ok: true,
                value: Some(value.into()),
                error: None,
            },
            Err(err) => Outcome {
                ok: false,
                value: None,
                error: Some(err.to_string()),
            },
        }
    }
}

impl ToolCallFixture for Escape {
    const TOOL: &'static str = "escape";

    fn manifest() -> Manifest {
        manifest!()
    }

    fn on_call(&self, _msg: &Message) -> Verdict {
        let report = self.attempt();
        let text = report.to_string();
        host::info(&format!("fixture-escape: {text}"));
        let result = CallToolResult {
            content: vec![Content::text(text)],
            structured_content: Some(report),
            ..CallToolResult::default()
        };
        Verdict::respond_json(&result)
    }
}

impl Escape {
    fn attempt(&self) -> Value {
        let each =
            |items: &[String], attempt: &dyn Fn(&str) -> Outcome| -> BTreeMap<String, Outcome> {
                items
                    .iter()
                    .map(|item| (item.clone(), attempt(item)))
                    .collect()
            };
        json!({
            "read": each(&self.read, &|path| std::fs::read_to_string(path).into()),
            "list": each(&self.list, &|path| list_dir(path).into()),
            "write": each(&self.write, &|path| {
                std::fs::write(path, b"fixture-escape was here").map(|()| 23).into()
            }),
            "env": each(&self.env, &|name| std::env::var(name).into()),
            "connect": each(&self.connect, &|addr| connect(addr).into()),
            "env_count": std::env::vars_os().count(),
        })
    }
}

fn list_dir(path: &str) -> std::io::Result<Vec<String>> {
    let mut names = std::fs::read_dir(path)?
        .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<Vec<_>>>()?;
    names.sort();
    Ok(names)
}

fn connect(addr: &str) -> std::io::Result<String> {
    let target = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address"))?;
    let stream = TcpStream::connect_timeout(&target, Duration::from_secs(1))?;
    Ok(stream.peer_addr()?.to_string())
}

export_plugin!(ToolCallPlugin<Escape>);

#[cfg(test)]
mod tests {
    use interpose_plugin::Plugin;

    use super::*;

    #[test]
    fn reports_each_attempt() {
        let dir = std::env::temp_dir().join(format!("fixture-escape-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("a.txt");
        std::fs::write(&file, "hello").unwrap();
        let config = json!({
            "read": [file, dir.join("missing")],
            "list": [dir],
            "write": [dir.join("b.txt")],
            "env": ["FIXTURE_ESCAPE_SURELY_UNSET"],
        });
        let (plugin, _) = ToolCallPlugin::<Escape>::init(&config.to_string()).unwrap();
        let verdict = plugin.intercept(&Message::request("tools/call", r#"{"name":"escape"}"#));
        let report = verdict.json().unwrap()["structuredContent"].clone();
        let file = file.to_str().unwrap();
        assert_eq!(report["read"][file], json!({"ok": true, "value": "hello"}));
        assert_eq!(
            report["read"][dir.join("missing").to_str().unwrap()]["ok"],
            false
        );
        assert_eq!(
            report["list"][dir.to_str().unwrap()],
            json!({"ok": true, "value": ["a.txt"]})
        );
        assert_eq!(
            report["write"][dir.join("b.txt").to_str().unwrap()]["ok"],
            true
        );
        assert_eq!(report["env"]["FIXTURE_ESCAPE_SURELY_UNSET"]["ok"], false);
        assert!(
            report["env_count"].as_u64().unwrap() > 0,
            "natively the test sees its environment"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            plugin.intercept(&Message::request("tools/call", r#"{"name":"echo"}"#)),
            Verdict::Pass
        );
    }
}
