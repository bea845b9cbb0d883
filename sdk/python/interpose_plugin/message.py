"""The message a plugin sees, the JSON-RPC error type, and JSON helpers."""

from __future__ import annotations

import enum
import json
import operator
from typing import Any, Callable, Dict, Iterable, Optional

__all__ = ["Direction", "Kind", "Message", "Principal", "RpcError", "RawJson", "to_json"]


class Direction(enum.Enum):
    """Which way a message travels."""

    TO_SERVER = "to-server"
    """From the client towards the backend server."""
    TO_CLIENT = "to-client"
    """From the backend server towards the client."""

    # Members are singletons compared by identity: hash them in C, not with
    # Enum's Python-level `__hash__` (dispatch tables are keyed by kind).
    __hash__ = object.__hash__


class Kind(enum.Enum):
    """The four kinds of JSON-RPC message."""

    REQUEST = "request"
    """Has an id and expects exactly one answer."""
    RESPONSE = "response"
    """A successful answer to a request."""
    ERROR = "error"
    """An error answer to a request."""
    NOTIFICATION = "notification"
    """A one-way message; never answered."""

    __hash__ = object.__hash__


class RawJson:
    """JSON text to be embedded as it is wherever the SDK serializes a value
    (a verdict's payload, a rejection's `data`)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"RawJson({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RawJson) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


def _default(value: Any) -> Any:
    to_dict = getattr(value, "to_dict", None)
    if to_dict is not None:
        return to_dict()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def to_json(value: Any) -> str:
    """Serializes a payload: JSON text (`str` or `RawJson`) is kept as it is;
    anything else (dicts, lists, the typed views of `interpose_plugin.mcp`) is
    serialized compactly, with non-ASCII characters left unescaped."""
    if isinstance(value, str):
        return value
    if isinstance(value, RawJson):
        return value.text
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_default)


class RpcError:
    """A JSON-RPC error object. `data` is JSON text (or `None`)."""

    __slots__ = ("code", "message", "data")

    PARSE_ERROR = -32700
    """Invalid JSON was received."""
    INVALID_REQUEST = -32600
    """The JSON sent is not a valid request object."""
    METHOD_NOT_FOUND = -32601
    """The method does not exist or is not available."""
    INVALID_PARAMS = -32602
    """Invalid method parameters; MCP also uses it for an unknown tool."""
    INTERNAL_ERROR = -32603
    """Internal error."""

    def __init__(self, code: int, message: str, data: Optional[str] = None) -> None:
        self.code = code
        self.message = message
        self.data = data

    def data_json(self) -> Any:
        """`data`, parsed; `None` when there is none."""
        return None if self.data is None else json.loads(self.data)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, RpcError)
            and (self.code, self.message, self.data) == (other.code, other.message, other.data)
        )

    def __repr__(self) -> str:
        return f"RpcError({self.code}, {self.message!r}, data={self.data!r})"


class Principal:
    """Who the client session is authenticated as, as the access token the
    proxy's OAuth resource server (`[auth]`) validated says: `subject` (`sub`,
    or `client_id` for a token without one), `issuer` (`iss`), `scopes` (a
    tuple of strings) and `claims` (every claim of the token, a parsed dict)."""

    __slots__ = ("subject", "issuer", "scopes", "claims")

    def __init__(
        self,
        subject: str,
        issuer: str,
        scopes: Iterable[str] = (),
        claims: Optional[Dict[str, Any]] = None,
    ) -> None:
        self.subject = subject
        self.issuer = issuer
        self.scopes = tuple(scopes)
        self.claims = {} if claims is None else claims

    def has_scope(self, scope: str) -> bool:
        """Whether the token grants `scope`."""
        return scope in self.scopes

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Principal) and (self.subject, self.issuer, self.scopes, self.claims) == (
            other.subject,
            other.issuer,
            other.scopes,
            other.claims,
        )

    def __repr__(self) -> str:
        # The claims stay out of logs and test output.
        return f"Principal({self.subject!r}, {self.issuer!r}, scopes={list(self.scopes)!r})"


#: A message's parts: the first three come as arguments of `intercept`; the
#: others (`_LENT_PARTS`) are read from the host's message by getters of the
#: same names.
_PARTS = (
    "direction",
    "kind",
    "method",
    "id",
    "payload",
    "error",
    "request_payload",
    "elapsed_us",
    "subject",
    "session",
    "server",
    "principal",
)
_LENT_PARTS = _PARTS[3:]


class Message:
    """One message on its way through the proxy.

    Payloads are JSON text exactly as they arrived. Parse them only when you
    need to: `json()` parses (once, then cached), and `tool_call()`,
    `tool_result()`, `tools_list()`, `resource_contents()` and `prompt()` give
    typed views of common payloads (see `interpose_plugin.mcp`).

    In a component, the host lends the message for the length of one call:
    `direction`, `kind` and `method` come with the call, and every other part
    crosses into Python only when first read (then it is kept), so a handler
    that looks at the method alone never copies the payload; parts a kind
    never has (an error's payload, a request's error) are `None` without asking.
    A message a plugin keeps after the call (on `self`, say) is read whole
    before the call returns, and stays usable.
    """

    __slots__ = (
        *_PARTS,
        "_parsed",
        # The host's message while it is lent (the component glue sets it);
        # `None` for messages built here and after the call.
        "_lent",
    )

    def __init__(
        self,
        direction: Direction,
        kind: Kind,
        method: str,
        id: Optional[str] = None,
        payload: Any = None,
        error: Optional[RpcError] = None,
        request_payload: Any = None,
        session: str = "",
        server: str = "",
        elapsed_us: Optional[int] = None,
        subject: Optional[str] = None,
        principal: Optional[Principal] = None,
    ) -> None:
        self.direction = direction
        self.kind = kind
        self.method = method
        self.id = id
        #: `params` of a request or notification, `result` of a response, as
        #: JSON text; `None` when the message has none (and for errors).
        self.payload = None if payload is None else to_json(payload)
        self.error = error
        #: For answers, when the plugin set `wants_request`: the request's
        #: `params` as JSON text.
        self.request_payload = None if request_payload is None else to_json(request_payload)
        #: For answers: microseconds from when the proxy forwarded the request
        #: to when this answer arrived; `None` for requests and notifications.
        self.elapsed_us = elapsed_us
        #: What the message acts on: the tool's name (`tools/call`), the
        #: prompt's name (`prompts/get`) or the resource URI (`resources/read`,
        #: `subscribe`, `unsubscribe`, `notifications/resources/updated`). An
        #: answer's is its request's, when the plugin set `wants_request`. The
        #: host reads it from the params, so a plugin that needs only the name
        #: neither copies nor parses the payload. Derived here, as the host
        #: does, unless given.
        self.subject = subject if subject is not None else _subject_of(kind, method, self.payload, self.request_payload)
        self.session = session
        self.server = server
        #: Who the client session is authenticated as, by the proxy's OAuth
        #: resource server (`[auth]`); `None` for stdio, for the static bearer
        #: token and for unauthenticated sessions.
        self.principal = principal
        self._parsed = _UNPARSED
        self._lent = None

    def __getattr__(self, name: str) -> Any:
        # Called only for a slot never set: a part of a lent message that was
        # not read yet.
        read = _READERS.get(name)
        if read is None:
            raise AttributeError(f"'Message' object has no attribute {name!r}")
        lent = self._lent
        if lent is None:
            raise RuntimeError(f"msg.{name} was not read while the host lent the message, and it is gone now")
        value = None if name in _ABSENT[self.kind] else read(lent)
        setattr(self, name, value)
        return value

    def _read_all(self) -> None:
        """Reads every part not read yet (while the message is lent)."""
        for name in _READERS:
            getattr(self, name)

    def __getstate__(self) -> Dict[str, Any]:
        # A copy (or a pickle) is a whole message of its own, never lent.
        return {name: getattr(self, name) for name in _PARTS}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        for name, value in state.items():
            setattr(self, name, value)
        self._parsed = _UNPARSED
        self._lent = None

    # Builders, mostly for tests: payloads may be given as JSON text or values.

    @classmethod
    def request(cls, method: str, params: Any = None, *, id: str = "1", **fields: Any) -> "Message":
        """A client request (`to-server`), with id `1` unless given."""
        return cls(Direction.TO_SERVER, Kind.REQUEST, method, id=id, payload=params, **fields)

    @classmethod
    def response(
        cls, method: str, result: Any = None, *, id: str = "1", request: Any = None, **fields: Any
    ) -> "Message":
        """A server response (`to-client`) to a client request, with id `1`
        unless given; `request` is the request's params (`request_payload`)."""
        return cls(
            Direction.TO_CLIENT, Kind.RESPONSE, method, id=id, payload=result, request_payload=request, **fields
        )

    @classmethod
    def error_answer(
        cls, method: str, code: int, message: str, data: Any = None, *, id: str = "1", **fields: Any
    ) -> "Message":
        """A server error answer (`to-client`) to a client request."""
        error = RpcError(code, message, None if data is None else to_json(data))
        return cls(Direction.TO_CLIENT, Kind.ERROR, method, id=id, error=error, **fields)

    @classmethod
    def notification(cls, method: str, params: Any = None, *, to_client: bool = False, **fields: Any) -> "Message":
        """A notification, from the client unless `to_client`."""
        direction = Direction.TO_CLIENT if to_client else Direction.TO_SERVER
        return cls(direction, Kind.NOTIFICATION, method, payload=params, **fields)

    # Questions.

    @property
    def is_request(self) -> bool:
        return self.kind is Kind.REQUEST

    @property
    def is_response(self) -> bool:
        return self.kind is Kind.RESPONSE

    @property
    def is_error(self) -> bool:
        return self.kind is Kind.ERROR

    @property
    def is_answer(self) -> bool:
        """A response or an error."""
        return self.kind is Kind.RESPONSE or self.kind is Kind.ERROR

    @property
    def is_notification(self) -> bool:
        return self.kind is Kind.NOTIFICATION

    # Payloads.

    @property
    def payload_size(self) -> int:
        """The payload's size in bytes (0 when there is none), without copying
        the payload into Python unless it was read already."""
        lent = self._lent
        if lent is not None and self.kind is not Kind.ERROR:
            try:
                object.__getattribute__(self, "payload")
            except AttributeError:
                return lent.payload_size()
        payload = self.payload
        return 0 if payload is None else len(payload.encode())

    def json(self) -> Any:
        """The payload, parsed (`None` when there is none). Parsed once; the
        same object is returned on later calls, so copy it before editing if
        you compare with the original."""
        parsed = self._parsed
        if parsed is _UNPARSED:
            parsed = None if self.payload is None else json.loads(self.payload)
            self._parsed = parsed
        return parsed

    def request_json(self) -> Any:
        """The request's params, parsed (`None` when absent)."""
        return None if self.request_payload is None else json.loads(self.request_payload)

    def tool_call(self):
        """For a `tools/call` request, its params; for an answer to one, the
        params of the request when the plugin set `wants_request`. `None` for
        other messages or when the params are not a tool call."""
        from .mcp import ToolCall

        if self.method != "tools/call":
            return None
        if self.kind is Kind.REQUEST:
            return ToolCall.parse(self.json())
        if self.kind is Kind.RESPONSE or self.kind is Kind.ERROR:
            return ToolCall.parse(self.request_json())
        return None

    def tool_result(self):
        """The result of a successful `tools/call` answer, or `None`."""
        from .mcp import ToolResult

        return self._result_of("tools/call", ToolResult)

    def tools_list(self):
        """The result of a successful `tools/list` answer, or `None`."""
        from .mcp import ToolsList

        return self._result_of("tools/list", ToolsList)

    def resource_contents(self):
        """The result of a successful `resources/read` answer, or `None`."""
        from .mcp import ReadResourceResult

        return self._result_of("resources/read", ReadResourceResult)

    def prompt(self):
        """The result of a successful `prompts/get` answer, or `None`."""
        from .mcp import GetPromptResult

        return self._result_of("prompts/get", GetPromptResult)

    def _result_of(self, method: str, view: Any) -> Any:
        if self.kind is not Kind.RESPONSE or self.method != method:
            return None
        return view.parse(self.json())

    def __repr__(self) -> str:
        return (
            f"Message({self.direction.value} {self.kind.value} {self.method!r}, id={self.id!r}, "
            f"payload={_short(self.payload)}, error={self.error!r})"
        )


def _short(text: Optional[str]) -> str:
    if text is None or len(text) <= 80:
        return repr(text)
    return repr(text[:77] + "...")


_UNPARSED = object()

#: The params member that names what a method acts on (the host reads it with
#: the Rust SDK's `mcp::subject`, which has the same list).
_SUBJECT_MEMBER = {
    "tools/call": "name",
    "prompts/get": "name",
    "resources/read": "uri",
    "resources/subscribe": "uri",
    "resources/unsubscribe": "uri",
    "notifications/resources/updated": "uri",
}


class _Members(list):
    """A JSON object's members in order, duplicates kept (`json.loads` hook)."""


def _subject_of(kind: Kind, method: str, payload: Optional[str], request_payload: Optional[str]) -> Optional[str]:
    member = _SUBJECT_MEMBER.get(method)
    params = request_payload if kind in (Kind.RESPONSE, Kind.ERROR) else payload
    if member is None or params is None:
        return None
    try:
        members = json.loads(params, object_pairs_hook=_Members)
    except ValueError:
        return None
    if not isinstance(members, _Members):
        return None
    # As the host reads it (serde): a repeated `name` or `uri`, or one that is
    # not a string, gives no subject.
    found: Dict[str, Any] = {}
    for key, value in members:
        if key in ("name", "uri"):
            if key in found or not (value is None or isinstance(value, str)):
                return None
            found[key] = value
    return found.get(member)

#: Parts a kind of message never has: `None` without asking the host.
_ABSENT = {
    Kind.REQUEST: frozenset({"error", "request_payload", "elapsed_us"}),
    Kind.RESPONSE: frozenset({"error"}),
    Kind.ERROR: frozenset({"payload"}),
    Kind.NOTIFICATION: frozenset({"id", "error", "request_payload", "elapsed_us"}),
}

#: How each part of a lent message that `intercept` does not receive as an
#: argument is read from the host's message: its getter of the same name. The
#: component glue converts `error` from the WIT record.
_READERS: Dict[str, Callable[[Any], Any]] = {name: operator.methodcaller(name) for name in _LENT_PARTS}
