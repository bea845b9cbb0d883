"""What the host does with a message: `Pass`, `Rewrite`, `Respond`, `Reject`."""

from __future__ import annotations

import json
from typing import Any, Optional

from .message import RpcError, to_json

__all__ = ["Verdict", "Pass", "Rewrite", "Respond", "Reject", "PASS"]


class Verdict:
    """Base class of the four verdicts."""

    __slots__ = ()

    @property
    def is_pass(self) -> bool:
        return False


class Pass(Verdict):
    """Forward the message unchanged. Costs nothing: return it (or `None`)
    whenever you did not change anything."""

    __slots__ = ()

    @property
    def is_pass(self) -> bool:
        return True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pass)

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "Pass()"


PASS = Pass()
"""A shared `Pass()`."""


class _WithPayload(Verdict):
    __slots__ = ("text",)

    def __init__(self, payload: Any) -> None:
        #: The payload as JSON text.
        self.text = to_json(payload)

    def json(self) -> Any:
        """The payload, parsed (handy in tests)."""
        return json.loads(self.text)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.text == self.text  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.text!r})"


class Rewrite(_WithPayload):
    """Forward the message with this payload instead: new `params` for requests
    and notifications, a new `result` for responses (an error answer becomes
    this successful result). The payload is JSON text, or a value to serialize
    (a dict, a list, a typed view from `interpose_plugin.mcp`).

    A rewrite that leaves the payload as it was is turned into `Pass` by the
    SDK, but it still costs a serialization: return `Pass()` instead."""

    __slots__ = ()


class Respond(_WithPayload):
    """Requests only: do not forward; answer the sender with this `result`
    (JSON text or a value to serialize). For other kinds it acts as `Rewrite`."""

    __slots__ = ()


class Reject(Verdict):
    """Requests: answer the sender with this error, do not forward. Responses
    and errors: deliver this error instead. Notifications: drop them.

    An answer made by `Respond` or `Reject` to a request walks back through the
    plugins before this one, as any answer does; a rejected answer goes on
    through them as this error.

    `data` is any JSON value (serialized for you), or `RawJson` text."""

    __slots__ = ("error",)

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        self.error = RpcError(int(code), str(message), None if data is None else to_json_value(data))

    @property
    def code(self) -> int:
        return self.error.code

    @property
    def message(self) -> str:
        return self.error.message

    @property
    def data(self) -> Optional[str]:
        """`data` as JSON text."""
        return self.error.data

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Reject) and other.error == self.error

    def __hash__(self) -> int:
        return hash((self.error.code, self.error.message))

    def __repr__(self) -> str:
        data = "" if self.error.data is None else f", data={self.error.data}"
        return f"Reject({self.error.code}, {self.error.message!r}{data})"


def to_json_value(value: Any) -> str:
    """Like `to_json`, except that a `str` is a JSON string value, not JSON text."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return to_json(value)
