//! Typed views of common MCP payloads, parsed on demand with serde.
//!
//! They are never required: a plugin can work on the payload text directly.
//! Each view keeps the fields it does not name in `extra`, so parsing a payload
//! and serializing it again loses nothing (key order aside), and a plugin that
//! edits one field can forward the rest as it came.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use interpose_core::subject;

/// `params` of a `tools/call` request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCallParams {
    /// The tool's name.
    pub name: String,
    /// The tool's arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Map<String, Value>>,
    /// Everything else (`_meta`, `task`, fields of later revisions).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ToolCallParams {
    /// One argument, if present.
    pub fn argument(&self, name: &str) -> Option<&Value> {
        self.arguments.as_ref()?.get(name)
    }

    /// The arguments, created empty when absent, for editing.
    pub fn arguments_mut(&mut self) -> &mut Map<String, Value> {
        self.arguments.get_or_insert_with(Map::new)
    }
}

/// One content block: text, image, audio, resource link or embedded resource.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Content {
    /// `text`, `image`, `audio`, `resource_link`, `resource`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The text of a `text` block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The resource of an embedded `resource` block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceContents>,
    /// Everything else (`data`, `mimeType`, `annotations`, `_meta`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Content {
    /// A `text` block.
    pub fn text(text: impl Into<String>) -> Self {
        Content {
            kind: "text".into(),
            text: Some(text.into()),
            ..Content::default()
        }
    }

    /// The text of a `text` block.
    pub fn as_text(&self) -> Option<&str> {
        if self.kind == "text" {
            self.text.as_deref()
        } else {
            None
        }
    }
}

/// `result` of a `tools/call` response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CallToolResult {
    /// Unstructured content blocks.
    #[serde(default)]
    pub content: Vec<Content>,
    /// Structured content, matching the tool's output schema.
    #[serde(
        rename = "structuredContent",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub structured_content: Option<Value>,
    /// Whether the tool reported an error.
    #[serde(rename = "isError", default, skip_serializing_if = "Option::is_none")]
    pub is_error: Option<bool>,
    /// Everything else (`_meta`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl CallToolResult {
    /// A result with one text block.
    pub fn text(text: impl Into<String>) -> Self {
        CallToolResult {
            content: vec![Content::text(text)],
            ..CallToolResult::default()
        }
    }

    /// A tool error (`isError: true`) with one text block: errors the model
    /// should see, as opposed to protocol errors.
    pub fn error(text: impl Into<String>) -> Self {
        CallToolResult {
            is_error: Some(true),
            ..CallToolResult::text(text)
        }
    }

    /// Whether the tool reported an error.
    pub fn is_error(&self) -> bool {
        self.is_error == Some(true)
    }

    /// The texts of the `text` blocks, in order.
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        self.content.iter().filter_map(Content::as_text)
    }

    /// The texts of the `text` blocks, joined with newlines.
    pub fn joined_text(&self) -> String {
        self.texts().collect::<Vec<_>>().join("\n")
    }

    /// Replaces the text of each `text` block for which `edit` returns
    /// `Some`. Returns whether anything changed.
    pub fn edit_texts(&mut self, mut edit: impl FnMut(&str) -> Option<String>) -> bool {
        let mut changed = false;
        for block in &mut self.content {
            if block.kind != "text" {
                continue;
            }
            if let Some(new) = block.text.as_deref().and_then(&mut edit) {
                block.text = Some(new);
                changed = true;
            }
        }
        changed
    }
}

/// One tool in a `tools/list` result.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// The tool's name.
    pub name: String,
    /// A description for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The JSON Schema of the arguments.
    #[serde(
        rename = "inputSchema",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub input_schema: Option<Value>,
    /// Everything else (`title`, `outputSchema`, `annotations`, `_meta`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Tool {
    /// Removes an argument from the input schema (`properties` and
    /// `required`). Returns whether the schema named it.
    pub fn remove_argument(&mut self, name: &str) -> bool {
        let Some(Value::Object(schema)) = &mut self.input_schema else {
            return false;
        };
        let mut found = false;
        if let Some(Value::Object(properties)) = schema.get_mut("properties") {
            found |= properties.remove(name).is_some();
        }
        if let Some(Value::Array(required)) = schema.get_mut("required") {
            let before = required.len();
            required.retain(|item| item.as_str() != Some(name));
            found |= required.len() != before;
        }
        found
    }
}

/// `result` of a `tools/list` response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolsListResult {
    /// The tools on this page.
    #[serde(default)]
    pub tools: Vec<Tool>,
    /// Everything else (`nextCursor`, `_meta`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ToolsListResult {
    /// The tool names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tools.iter().map(|tool| tool.name.as_str())
    }

    /// The tool with this name.
    pub fn tool(&self, name: &str) -> Option<&Tool> {
        self.tools.iter().find(|tool| tool.name == name)
    }

    /// The tool with this name, for editing.
    pub fn tool_mut(&mut self, name: &str) -> Option<&mut Tool> {
        self.tools.iter_mut().find(|tool| tool.name == name)
    }

    /// Keeps only the tools for which `keep` returns true. Returns how many
    /// were removed.
    pub fn retain(&mut self, keep: impl FnMut(&Tool) -> bool) -> usize {
        let before = self.tools.len();
        self.tools.retain(keep);
        before - self.tools.len()
    }

    /// Renames a tool. Returns whether a tool had the name `from`.
    pub fn rename(&mut self, from: &str, to: impl Into<String>) -> bool {
        match self.tool_mut(from) {
            Some(tool) => {
                tool.name = to.into();
                true
            }
            None => false,
        }
    }
}

/// One item of a `resources/read` result, or the resource of an embedded
/// resource block.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceContents {
    /// The resource's URI.
    pub uri: String,
    /// Its MIME type.
    #[serde(rename = "mimeType", default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// Text contents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Binary contents, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob: Option<String>,
    /// Everything else (`_meta`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `result` of a `resources/read` response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReadResourceResult {
    /// The resource's contents, possibly several parts.
    #[serde(default)]
    pub contents: Vec<ResourceContents>,
    /// Everything else (`_meta`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ReadResourceResult {
    /// The text parts, in order.
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        self.contents.iter().filter_map(|part| part.text.as_deref())
    }
}

/// One message of a `prompts/get` result.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PromptMessage {
    /// `user` or `assistant`.
    pub role: String,
    /// The message's content block.
    pub content: Content,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `result` of a `prompts/get` response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GetPromptResult {
    /// A description of the prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The prompt's messages.
    #[serde(default)]
    pub messages: Vec<PromptMessage>,
    /// Everything else (`_meta`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl GetPromptResult {
    /// The texts of the messages' `text` blocks, in order.
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        self.messages
            .iter()
            .filter_map(|message| message.content.as_text())
    }
}

/// Calls `edit` on every string value (not object keys) inside `value`,
/// replacing those for which it returns `Some`. Returns whether anything
/// changed. Handy for `structuredContent`.
pub fn edit_strings(value: &mut Value, edit: &mut impl FnMut(&str) -> Option<String>) -> bool {
    match value {
        Value::String(text) => match edit(text) {
            Some(new) => {
                *text = new;
                true
            }
            None => false,
        },
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, item| edit_strings(item, edit) | changed),
        Value::Object(map) => map
            .values_mut()
            .fold(false, |changed, item| edit_strings(item, edit) | changed),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn views_keep_unknown_fields_through_a_round_trip() {
        let raw = json!({
            "tools": [{
                "name": "search",
                "title": "Search",
                "inputSchema": {"type": "object"},
                "execution": {"taskSupport": "optional"},
                "_meta": {"vendor": 1}
            }],
            "nextCursor": "abc"
        });
        let list: ToolsListResult = serde_json::from_value(raw.clone()).unwrap();
        assert_eq!(
            list.tool("search").unwrap().extra["execution"],
            json!({"taskSupport": "optional"})
        );
        assert_eq!(serde_json::to_value(&list).unwrap(), raw);

        let call = json!({"name": "t", "arguments": {"a": 1}, "_meta": {"progressToken": "p"}, "task": {"ttl": 5}});
        let params: ToolCallParams = serde_json::from_value(call.clone()).unwrap();
        assert_eq!(params.argument("a"), Some(&json!(1)));
        assert_eq!(serde_json::to_value(&params).unwrap(), call);

        let result = json!({
            "content": [{"type": "text", "text": "hi", "annotations": {"priority": 1}},
                        {"type": "image", "data": "AA==", "mimeType": "image/png"}],
            "structuredContent": {"n": 1},
            "isError": false,
            "_meta": {}
        });
        let parsed: CallToolResult = serde_json::from_value(result.clone()).unwrap();
        assert_eq!(serde_json::to_value(&parsed).unwrap(), result);
    }

    #[test]
    fn call_tool_result_text_helpers() {
        let mut result = CallToolResult::text("one");
        result.content.push(Content {
            kind: "image".into(),
            ..Content::default()
        });
        result.content.push(Content::text("two"));
        assert_eq!(result.texts().collect::<Vec<_>>(), ["one", "two"]);
        assert_eq!(result.joined_text(), "one\ntwo");
        assert!(result.edit_texts(|text| (text == "two").then(|| "2".to_owned())));
        assert_eq!(result.joined_text(), "one\n2");
        assert!(!result.edit_texts(|_| None));
        assert!(CallToolResult::error("boom").is_error());
        assert_eq!(
            serde_json::to_value(CallToolResult::error("boom")).unwrap(),
            json!({"content": [{"type": "text", "text": "boom"}], "isError": true})
        );
    }

    #[test]
    fn tools_list_editing() {
        let mut list: ToolsListResult = serde_json::from_value(json!({"tools": [
            {"name": "a", "inputSchema": {"type": "object", "properties": {"x": {}, "y": {}}, "required": ["x", "y"]}},
            {"name": "b"},
            {"name": "c"}
        ]}))
        .unwrap();
        assert_eq!(list.retain(|tool| tool.name != "b"), 1);
        assert!(list.rename("c", "see"));
        assert!(!list.rename("zzz", "x"));
        assert!(list.tool_mut("a").unwrap().remove_argument("x"));
        assert!(!list.tool_mut("a").unwrap().remove_argument("nope"));
        assert_eq!(list.names().collect::<Vec<_>>(), ["a", "see"]);
        assert_eq!(
            list.tool("a").unwrap().input_schema,
            Some(json!({"type": "object", "properties": {"y": {}}, "required": ["y"]}))
        );
    }

    #[test]
    fn resource_and_prompt_views() {
        let read: ReadResourceResult = serde_json::from_value(json!({"contents": [
            {"uri": "a", "text": "alpha"}, {"uri": "b", "blob": "AA=="}, {"uri": "c", "text": "gamma"}
        ]}))
        .unwrap();
        assert_eq!(read.texts().collect::<Vec<_>>(), ["alpha", "gamma"]);
        let prompt: GetPromptResult = serde_json::from_value(json!({"messages": [
            {"role": "user", "content": {"type": "text", "text": "hello"}},
            {"role": "assistant", "content": {"type": "resource", "resource": {"uri": "r", "text": "embedded"}}}
        ]}))
        .unwrap();
        assert_eq!(prompt.texts().collect::<Vec<_>>(), ["hello"]);
        assert_eq!(
            prompt.messages[1]
                .content
                .resource
                .as_ref()
                .unwrap()
                .text
                .as_deref(),
            Some("embedded")
        );
    }

    #[test]
    fn edit_strings_reaches_nested_values_but_not_keys() {
        let mut value = json!({"key": ["a", {"key": "a"}, 1, null], "a": "b"});
        let changed = edit_strings(&mut value, &mut |s| (s == "a").then(|| "A".to_owned()));
        assert!(changed);
        assert_eq!(
            value,
            json!({"key": ["A", {"key": "A"}, 1, null], "a": "b"})
        );
    }
}
