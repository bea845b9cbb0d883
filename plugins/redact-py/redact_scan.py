"""Finds the strings to redact in a payload's raw JSON text and splices the
redacted ones back in, leaving every other byte as it was.

Mirrors the Rust `redact` plugin's `scan.rs`. Walking the text character by
character would be slow in Python, so the walk leans on C code: the `json`
module's scanner skips whole values and decodes strings, and the rules'
raw-text check picks the few strings worth decoding in a large subtree.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from json.decoder import scanstring
from typing import Any, Dict, List, Optional, Tuple

from redact_rules import Rules

# Specs: which strings of a payload to redact.
ALL = "all"  # every string value in this subtree (object keys are left alone)


def array(element: Any) -> Tuple[str, Any]:
    """Every element of an array, with this spec."""
    return ("array", element)


# An object spec is a dict: member name -> spec.
EMBEDDED_RESOURCE: Dict[str, Any] = {"text": ALL}
CONTENT_BLOCK: Dict[str, Any] = {"text": ALL, "resource": EMBEDDED_RESOURCE}
TOOL_RESULT: Dict[str, Any] = {"content": array(CONTENT_BLOCK), "structuredContent": ALL}
RESOURCE_RESULT: Dict[str, Any] = {"contents": array(EMBEDDED_RESOURCE)}
PROMPT_RESULT: Dict[str, Any] = {"messages": array({"content": CONTENT_BLOCK})}

_WS = re.compile(r"[ \t\n\r]*")
_WS_CHARS = " \t\n\r"
# Writes a JSON string exactly as serde_json does (`"`, `\\` and control
# characters escaped, nothing else), in C.
_encode_string = json.encoder.encode_basestring
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_SURROGATE = re.compile("[\ud800-\udfff]")
_SKIP = json.JSONDecoder(strict=False).scan_once
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]|[^"\[\]{}]+', re.S)


class ScanError(Exception):
    """Why a payload could not be scanned. Offsets are in bytes, as in Rust."""

    def __init__(self, kind: str, raw: str, at: int) -> None:
        offset = len(raw[:at].encode("utf-8", "surrogatepass"))
        if kind == "malformed":
            super().__init__(f"malformed JSON at byte {offset}")
        else:
            super().__init__(f"a string at byte {offset} does not decode")


class Redacted:
    def __init__(self, payload: str, strings: int, rules: List[int]) -> None:
        self.payload = payload
        self.strings = strings
        self.rules = rules


def redact(raw: str, spec: Any, rules: Rules) -> Optional[Redacted]:
    """The redacted payload; `None` when nothing matched."""
    scanner = _Scanner(raw, rules)
    scanner.value(spec)
    scanner.pos = _WS.match(raw, scanner.pos).end()
    if scanner.pos != len(raw):
        raise ScanError("malformed", raw, scanner.pos)
    if not scanner.edits:
        return None
    out: List[str] = []
    copied = 0
    for start, end, text in scanner.edits:
        out.append(raw[copied:start])
        out.append(text)
        copied = end
    out.append(raw[copied:])
    return Redacted("".join(out), len(scanner.edits), scanner.hits)


class _Scanner:
    def __init__(self, raw: str, rules: Rules) -> None:
        self.raw = raw
        self.pos = 0
        self.rules = rules
        self.edits: List[Tuple[int, int, str]] = []
        self.hits: List[int] = []
        # Without `\u` escapes, a string can only change where the rules'
        # raw-text check matches inside it.
        self.filtered = rules.filterable and "\\u" not in raw

    def peek(self) -> str:
        raw, pos = self.raw, self.pos
        if pos < len(raw) and raw[pos] not in _WS_CHARS:
            return raw[pos]
        pos = self.pos = _WS.match(raw, pos).end()
        if pos >= len(raw):
            raise ScanError("malformed", raw, pos)
        return raw[pos]

    def value(self, spec: Any) -> None:
        c = self.peek()
        if type(spec) is dict:
            if c == "{":
                return self.object(spec)
        elif spec is ALL:
            return self.walk()
        elif spec is not None and c == "[":
            return self.array(spec[1])
        self.skip()

    def skip(self) -> None:
        try:
            _, self.pos = _SKIP(self.raw, self.pos)
        except (StopIteration, ValueError):
            raise ScanError("malformed", self.raw, self.pos) from None
        except RecursionError:
            # Nested deeper than the C scanner's recursion allows.
            self.pos = self.skip_deep(self.pos)

    def skip_deep(self, start: int) -> int:
        """The end of the (valid, deeply nested) value at `start`, counting
        brackets outside strings."""
        depth = 0
        for token in _TOKEN.finditer(self.raw, start):
            c = token.group()[0]
            if c == "[" or c == "{":
                depth += 1
            elif c == "]" or c == "}":
                depth -= 1
            if depth == 0:
                return token.end()
        raise ScanError("malformed", self.raw, start)

    def object(self, members: Dict[str, Any]) -> None:
        raw = self.raw
        self.pos += 1
        if self.peek() == "}":
            self.pos += 1
            return
        while True:
            if self.peek() != '"':
                raise ScanError("malformed", raw, self.pos)
            key = self.decode_token(self.pos, self.string_end(self.pos))
            self.pos = self.token_end
            if self.peek() != ":":
                raise ScanError("malformed", raw, self.pos)
            self.pos += 1
            self.value(members.get(key))
            c = self.peek()
            self.pos += 1
            if c == ",":
                continue
            if c == "}":
                return
            raise ScanError("malformed", raw, self.pos - 1)

    def array(self, element: Any) -> None:
        self.pos += 1
        if self.peek() == "]":
            self.pos += 1
            return
        while True:
            self.value(element)
            c = self.peek()
            self.pos += 1
            if c == ",":
                continue
            if c == "]":
                return
            raise ScanError("malformed", self.raw, self.pos - 1)

    def string_end(self, start: int) -> int:
        found = _STRING.match(self.raw, start)
        if found is None:
            raise ScanError("malformed", self.raw, start)
        self.token_end = found.end()
        return self.token_end

    def decode_token(self, start: int, end: int) -> str:
        raw = self.raw
        if raw.find("\\", start, end) < 0:
            return raw[start + 1 : end - 1]
        try:
            text, _ = scanstring(raw, start + 1, True)
        except ValueError:
            raise ScanError("undecodable", raw, start) from None
        if _SURROGATE.search(text):
            raise ScanError("undecodable", raw, start)
        return text

    def walk(self) -> None:
        """Redacts every string value (not key) of the value at `pos`."""
        raw = self.raw
        start = self.pos
        if raw[start] == '"':
            # A lone string (a block's `text`): decode and redact it directly.
            end = self.string_end(start)
            self.pos = end
            self.redact_string(start, end)
            return
        self.skip()
        end = self.pos
        if self.filtered:
            hits = self.rules.may_match_slice(raw, start, end)
            if not hits:
                return
        else:
            hits = None
        for token in _STRING.finditer(raw, start, end):
            s, e = token.span()
            if hits is not None:
                # The first hit at or after the opening quote must fall inside.
                i = bisect_right(hits, s)
                if i == len(hits) or hits[i] >= e:
                    continue
            after = _WS.match(raw, e).end()
            if after < len(raw) and raw[after] == ":":
                continue
            self.redact_string(s, e)

    def redact_string(self, start: int, end: int) -> None:
        text = self.decode_token(start, end)
        redacted = self.rules.redact(text, self.hits)
        if redacted is not None:
            self.edits.append((start, end, _encode_string(redacted)))
