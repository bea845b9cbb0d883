//! Test fixture: answers a `tools/call` of the `fetch` tool with the outbound HTTP
//! request its arguments describe, made with the SDK's `http` helper.
//!
//! Arguments: `{"url": "...", "method": "GET", "body": "..."}` (`method` defaults
//! to GET, or POST when there is a body). The answer is a tool result whose text is
//! `{"status": N, "body": "..."}`. When the request fails, the plugin rejects the
//! call with code -32050 and the error's text, or, with config
//! `{"on_error": "panic"}`, panics so that its failure policy applies.

use interpose_plugin::mcp::CallToolResult;
use interpose_plugin::{
    Kind, Manifest, Message, Plugin, Verdict, export_plugin, http, manifest, parse_config,
};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    on_error: OnError,
}

#[derive(Deserialize, Default, PartialEq)]
#[serde(rename_all = "lowercase")]
enum OnError {
    #[default]
    Reject,
    Panic,
}

pub struct Fetcher {
    config: Config,
}

impl Plugin for Fetcher {
    fn init(config: &str) -> Result<(Self, Manifest), String> {
        Ok((
            Fetcher {
                config: parse_config(config)?,
            },
            manifest!().methods(["tools/call"]).kinds([Kind::Request]),
        ))
    }

    fn intercept(&self, msg: &Message) -> Verdict {
        let Some(call) = msg.tool_call() else {
            return Verdict::Pass;
        };
        if call.name != "fetch" {
            return Verdict::Pass;
        }
        let Some(url) = call.argument("url").and_then(|u| u.as_str()) else {
            return Verdict::reject(-32602, "fetch needs a `url`");
        };
        let body = call.argument("body").and_then(|b| b.as_str());
        let method = call
            .argument("method")
            .and_then(|m| m.as_str())
            .unwrap_or(if body.is_some() { "POST" } else { "GET" });
        let mut request = http::Request::new(method, url);
        if let Some(body) = body {
            request = request.body(body);
        }
        match request.send() {
            Ok(response) => Verdict::respond_json(&CallToolResult::text(
                json!({"status": response.status, "body": response.text()}).to_string(),
            )),
            Err(e) if self.config.on_error == OnError::Panic => panic!("{e}"),
            Err(e) => Verdict::reject(-32050, e.to_string()),
        }
    }
}

export_plugin!(Fetcher);
