//! What an MCP request acts on, read from its params: the host side of the WIT
//! `message.subject`. The Rust SDK mirrors this for messages built in tests
//! (`interpose_plugin::mcp::subject`); keep the two method lists the same.

use std::borrow::Cow;

use serde::Deserialize;

/// The params member that names the subject of `method`, for the methods that have one.
fn member(method: &str) -> Option<Member> {
    match method {
        "tools/call" | "prompts/get" => Some(Member::Name),
        "resources/read"
        | "resources/subscribe"
        | "resources/unsubscribe"
        | "notifications/resources/updated" => Some(Member::Uri),
        _ => None,
    }
}

enum Member {
    Name,
    Uri,
}

/// Only the two members; every other one is skipped without being copied.
#[derive(Deserialize)]
struct Named<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    uri: Option<Cow<'a, str>>,
}

/// The tool or prompt name, or the resource URI, that `params` of `method` name;
/// `None` for other methods and for params without it.
pub fn subject(method: &str, params: &str) -> Option<String> {
    let member = member(method)?;
    let named: Named<'_> = serde_json::from_str(params).ok()?;
    match member {
        Member::Name => named.name,
        Member::Uri => named.uri,
    }
    .map(Cow::into_owned)
}

#[cfg(test)]
mod tests {
    use super::subject;

    #[test]
    fn tools_and_prompts_by_name_resources_by_uri() {
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
    fn none_for_other_methods_missing_members_and_bad_json() {
        assert_eq!(subject("tools/list", r#"{"name":"x"}"#), None);
        assert_eq!(subject("tools/call", r#"{"arguments":{}}"#), None);
        assert_eq!(subject("tools/call", r#"{"name":7}"#), None);
        assert_eq!(subject("resources/read", "not json"), None);
    }
}
