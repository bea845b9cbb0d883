//! What the interpose host and the Rust plugin SDK must agree on, defined once: the
//! kinds of JSON-RPC message, and what an MCP message acts on (its subject). The host
//! links this crate instead of the guest SDK, and the SDK re-exports it, so a plugin's
//! test reads a message exactly as the host does.

use std::borrow::Cow;

use serde::Deserialize;

/// The four kinds of JSON-RPC message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Has an id and expects exactly one answer.
    Request,
    /// A successful answer to a request.
    Response,
    /// An error answer to a request.
    Error,
    /// A one-way message; never answered.
    Notification,
}

impl Kind {
    /// The WIT spelling: `request`, `response`, `error` or `notification`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Request => "request",
            Kind::Response => "response",
            Kind::Error => "error",
            Kind::Notification => "notification",
        }
    }
}

/// What `params` of `method` act on: `name` of `tools/call` and `prompts/get`, `uri`
/// of the resource methods (`resources/read`, `subscribe`, `unsubscribe`,
/// `notifications/resources/updated`); `None` for other methods and for params without
/// it (or with it twice, or not a string). This is the WIT `message.subject`, and the
/// value of the 2026-07-28 `Mcp-Name` header for the methods that have one.
pub fn subject(method: &str, params: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Named<'a> {
        #[serde(borrow, default)]
        name: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        uri: Option<Cow<'a, str>>,
    }
    let by_name = match method {
        "tools/call" | "prompts/get" => true,
        "resources/read"
        | "resources/subscribe"
        | "resources/unsubscribe"
        | "notifications/resources/updated" => false,
        _ => return None,
    };
    let named: Named<'_> = serde_json::from_str(params).ok()?;
    if by_name { named.name } else { named.uri }.map(Cow::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_tool_and_prompt_names_and_resource_uris() {
        let call = r#"{"arguments":{"name":"not this","uri":"x"},"name":"search"}"#;
        assert_eq!(subject("tools/call", call).as_deref(), Some("search"));
        assert_eq!(
            subject("prompts/get", r#"{"name":"greet"}"#).as_deref(),
            Some("greet")
        );
        for method in [
            "resources/read",
            "resources/subscribe",
            "resources/unsubscribe",
            "notifications/resources/updated",
        ] {
            let params = r#"{"uri":"file:///a\u0020b.txt"}"#;
            assert_eq!(subject(method, params).as_deref(), Some("file:///a b.txt"));
        }
    }

    #[test]
    fn no_subject_for_other_methods_missing_members_and_bad_json() {
        assert_eq!(subject("tools/list", r#"{"name":"x"}"#), None);
        assert_eq!(subject("tools/call", r#"{"arguments":{}}"#), None);
        assert_eq!(subject("tools/call", r#"{"name":7}"#), None);
        assert_eq!(subject("tools/call", r#"{"name":"a","name":"b"}"#), None);
        assert_eq!(subject("resources/read", "not json"), None);
    }

    #[test]
    fn kinds_are_spelled_as_in_the_wit() {
        let all = [
            Kind::Request,
            Kind::Response,
            Kind::Error,
            Kind::Notification,
        ];
        let names: Vec<&str> = all.iter().map(|k| k.as_str()).collect();
        assert_eq!(names, ["request", "response", "error", "notification"]);
    }
}
