"""Typed views of common MCP payloads, parsed on demand.

They are never required: a plugin can work on `msg.payload` (JSON text) or
`msg.json()` directly. Each view keeps the fields it does not name in `extra`,
so parsing a payload, editing one field and serializing it again (`to_dict()`,
or pass the view to `Rewrite`) loses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional

__all__ = [
    "ToolCall",
    "Content",
    "ToolResult",
    "Tool",
    "ToolsList",
    "ResourceContents",
    "ReadResourceResult",
    "PromptMessage",
    "GetPromptResult",
]

_ABSENT: Any = object()


def _split(obj: Dict[str, Any], names: tuple) -> tuple:
    """The values of `names` in `obj` (`_ABSENT` when missing) and the rest."""
    values = tuple(obj.get(name, _ABSENT) for name in names)
    extra = {key: value for key, value in obj.items() if key not in names}
    return values, extra


def _put(out: Dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        out[key] = value.to_dict() if hasattr(value, "to_dict") else value


def _opt(value: Any) -> Any:
    return None if value is _ABSENT else value


@dataclass
class ToolCall:
    """`params` of a `tools/call` request."""

    name: str
    arguments: Optional[Dict[str, Any]] = None
    extra: Dict[str, Any] = field(default_factory=dict)
    """Everything else (`_meta`, `task`, fields of later revisions)."""

    @classmethod
    def parse(cls, obj: Any) -> Optional["ToolCall"]:
        """The view of `obj`, or `None` when it is not a tool call."""
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            return None
        (name, arguments), extra = _split(obj, ("name", "arguments"))
        arguments = _opt(arguments)
        if arguments is not None and not isinstance(arguments, dict):
            return None
        return cls(name, arguments, extra)

    def argument(self, name: str, default: Any = None) -> Any:
        """One argument, or `default` when absent."""
        return default if self.arguments is None else self.arguments.get(name, default)

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"name": self.name}
        _put(out, "arguments", self.arguments)
        out.update(self.extra)
        return out


@dataclass
class ResourceContents:
    """One part of a resource: text or a base64 `blob`."""

    uri: str
    mime_type: Optional[str] = None
    text: Optional[str] = None
    blob: Optional[str] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, obj: Any) -> Optional["ResourceContents"]:
        if not isinstance(obj, dict):
            return None
        (uri, mime_type, text, blob), extra = _split(obj, ("uri", "mimeType", "text", "blob"))
        return cls(_opt(uri) or "", _opt(mime_type), _opt(text), _opt(blob), extra)

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"uri": self.uri}
        _put(out, "mimeType", self.mime_type)
        _put(out, "text", self.text)
        _put(out, "blob", self.blob)
        out.update(self.extra)
        return out


@dataclass
class Content:
    """One content block: `text`, `image`, `audio`, `resource_link` or an
    embedded `resource`."""

    type: str
    text: Optional[str] = None
    resource: Optional[ResourceContents] = None
    extra: Dict[str, Any] = field(default_factory=dict)
    """Everything else (`data`, `mimeType`, `annotations`, `_meta`, ...)."""

    @classmethod
    def text_block(cls, text: str) -> "Content":
        """A `text` block."""
        return cls("text", text=text)

    @classmethod
    def parse(cls, obj: Any) -> Optional["Content"]:
        if not isinstance(obj, dict):
            return None
        (kind, text, resource), extra = _split(obj, ("type", "text", "resource"))
        resource = _opt(resource)
        return cls(
            _opt(kind) or "",
            _opt(text),
            ResourceContents.parse(resource) if isinstance(resource, dict) else None,
            extra,
        )

    def as_text(self) -> Optional[str]:
        """The text of a `text` block; `None` for other blocks."""
        return self.text if self.type == "text" else None

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"type": self.type}
        _put(out, "text", self.text)
        _put(out, "resource", self.resource)
        out.update(self.extra)
        return out


def _contents(items: Any) -> List[Content]:
    if not isinstance(items, list):
        return []
    return [block for block in map(Content.parse, items) if block is not None]


@dataclass
class ToolResult:
    """`result` of a `tools/call` response."""

    content: List[Content] = field(default_factory=list)
    structured_content: Any = None
    is_error: Optional[bool] = None
    extra: Dict[str, Any] = field(default_factory=dict)
    """Everything else (`_meta`, ...)."""

    @classmethod
    def of_text(cls, text: str, is_error: Optional[bool] = None) -> "ToolResult":
        """A result with one text block; `is_error=True` for a tool error the
        model should see (as opposed to a protocol error)."""
        return cls([Content.text_block(text)], is_error=is_error)

    @classmethod
    def parse(cls, obj: Any) -> Optional["ToolResult"]:
        if not isinstance(obj, dict):
            return None
        (content, structured, is_error), extra = _split(obj, ("content", "structuredContent", "isError"))
        return cls(_contents(_opt(content)), _opt(structured), _opt(is_error), extra)

    def texts(self) -> Iterator[str]:
        """The texts of the `text` blocks, in order."""
        return (block.text for block in self.content if block.type == "text" and block.text is not None)

    def joined_text(self) -> str:
        """The texts of the `text` blocks, joined with newlines."""
        return "\n".join(self.texts())

    def edit_texts(self, edit: Callable[[str], Optional[str]]) -> bool:
        """Replaces the text of each `text` block for which `edit` returns a
        string. Returns whether anything changed."""
        changed = False
        for block in self.content:
            if block.type == "text" and block.text is not None:
                new = edit(block.text)
                if new is not None and new != block.text:
                    block.text = new
                    changed = True
        return changed

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"content": [block.to_dict() for block in self.content]}
        _put(out, "structuredContent", self.structured_content)
        _put(out, "isError", self.is_error)
        out.update(self.extra)
        return out


@dataclass
class Tool:
    """One tool in a `tools/list` result."""

    name: str
    description: Optional[str] = None
    input_schema: Any = None
    extra: Dict[str, Any] = field(default_factory=dict)
    """Everything else (`title`, `outputSchema`, `annotations`, `_meta`, ...)."""

    @classmethod
    def parse(cls, obj: Any) -> Optional["Tool"]:
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            return None
        (name, description, schema), extra = _split(obj, ("name", "description", "inputSchema"))
        return cls(name, _opt(description), _opt(schema), extra)

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"name": self.name}
        _put(out, "description", self.description)
        _put(out, "inputSchema", self.input_schema)
        out.update(self.extra)
        return out


@dataclass
class ToolsList:
    """`result` of a `tools/list` response."""

    tools: List[Tool] = field(default_factory=list)
    next_cursor: Optional[str] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, obj: Any) -> Optional["ToolsList"]:
        if not isinstance(obj, dict):
            return None
        (tools, cursor), extra = _split(obj, ("tools", "nextCursor"))
        tools = _opt(tools)
        parsed = [tool for tool in map(Tool.parse, tools if isinstance(tools, list) else []) if tool]
        return cls(parsed, _opt(cursor), extra)

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"tools": [tool.to_dict() for tool in self.tools]}
        _put(out, "nextCursor", self.next_cursor)
        out.update(self.extra)
        return out


@dataclass
class ReadResourceResult:
    """`result` of a `resources/read` response."""

    contents: List[ResourceContents] = field(default_factory=list)
    extra: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, obj: Any) -> Optional["ReadResourceResult"]:
        if not isinstance(obj, dict):
            return None
        (contents,), extra = _split(obj, ("contents",))
        contents = _opt(contents)
        parts = [part for part in map(ResourceContents.parse, contents if isinstance(contents, list) else []) if part]
        return cls(parts, extra)

    def texts(self) -> Iterator[str]:
        """The text parts, in order."""
        return (part.text for part in self.contents if part.text is not None)

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"contents": [part.to_dict() for part in self.contents]}
        out.update(self.extra)
        return out


@dataclass
class PromptMessage:
    """One message of a prompt."""

    role: str
    content: Content
    extra: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, obj: Any) -> Optional["PromptMessage"]:
        if not isinstance(obj, dict):
            return None
        (role, content), extra = _split(obj, ("role", "content"))
        block = Content.parse(_opt(content))
        if block is None:
            return None
        return cls(_opt(role) or "", block, extra)

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"role": self.role, "content": self.content.to_dict()}
        out.update(self.extra)
        return out


@dataclass
class GetPromptResult:
    """`result` of a `prompts/get` response."""

    messages: List[PromptMessage] = field(default_factory=list)
    description: Optional[str] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, obj: Any) -> Optional["GetPromptResult"]:
        if not isinstance(obj, dict):
            return None
        (messages, description), extra = _split(obj, ("messages", "description"))
        messages = _opt(messages)
        parsed = [m for m in map(PromptMessage.parse, messages if isinstance(messages, list) else []) if m]
        return cls(parsed, _opt(description), extra)

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        _put(out, "description", self.description)
        out["messages"] = [message.to_dict() for message in self.messages]
        out.update(self.extra)
        return out
