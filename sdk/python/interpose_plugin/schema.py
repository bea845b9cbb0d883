"""Reading JSON into typed shapes, with the error messages serde_json gives.

The Rust plugins read their configuration and payloads with serde; a Python
plugin that mirrors one should refuse the same inputs with the same words:

    CONFIG = Struct("Config", [Field("rules", Seq(RULE), default=list),
                               Field("defaults", Bool(), default=True)])
    config = parse_config(text, CONFIG)
    # ConfigError: invalid config: unknown field `rule`, expected `rules` or
    # `defaults` at line 1 column 7

Shapes: `Str`, `Bool`, `Int`, `AnyValue` (any JSON value), `Seq(item)`,
`MapOf(value)` (object with string keys; a repeated key keeps the last value),
`Opt(inner)` (`null` or inner), `Struct(name, fields, deny_unknown, flatten)`,
and `OneOf` for a value of several JSON types. A struct becomes a dict of its
fields (plus `"extra"`, a dict of the other members, when `flatten`).

Numbers follow serde_json without `arbitrary_precision`: an integer outside
the 64-bit range is read as a float. `dumps` writes values the way serde_json
writes a `Value` (object keys sorted, floats in ryu's format).
"""

from __future__ import annotations

import json
import math
import re
from json.decoder import scanstring
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .plugin import ConfigError

__all__ = [
    "SchemaError",
    "Str",
    "Bool",
    "Int",
    "AnyValue",
    "Seq",
    "MapOf",
    "Opt",
    "Field",
    "Struct",
    "OneOf",
    "parse",
    "parse_config",
    "dumps",
    "format_f64",
    "REQUIRED",
]

_WS = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_STRING_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|.)", re.S)
_I64_MIN, _U64_MAX = -(2**63), 2**64 - 1


class SchemaError(ValueError):
    """The input does not fit the shape; the text is serde_json's."""


REQUIRED: Any = object()


def _serde_int(text: str) -> Any:
    value = int(text)
    if value == 0 and text[0] == "-":
        return -0.0
    return value if _I64_MIN <= value <= _U64_MAX else float(text)


# --------------------------------------------------------------------------- shapes


class Shape:
    expecting = "a value"

    def read(self, r: "_Reader") -> Any:
        raise NotImplementedError


class Str(Shape):
    expecting = "a string"

    def read(self, r: "_Reader") -> Any:
        if r.peek() == '"':
            return r.string()
        raise r.invalid_type(self.expecting)


class Bool(Shape):
    expecting = "a boolean"

    def read(self, r: "_Reader") -> Any:
        c = r.peek()
        if c == "t" or c == "f":
            return r.literal()
        raise r.invalid_type(self.expecting)


class Int(Shape):
    """A 64-bit integer (`u64`/`i64`)."""

    def __init__(self, expecting: str = "u64") -> None:
        self.expecting = expecting

    def read(self, r: "_Reader") -> Any:
        c = r.peek()
        if c is not None and (c == "-" or c.isdigit()):
            start = r.i
            value = r.number()
            if isinstance(value, int):
                return value
            r.i = start
        raise r.invalid_type(self.expecting)


class AnyValue(Shape):
    """Any JSON value (serde_json's `Value`)."""

    def read(self, r: "_Reader") -> Any:
        return r.any_value()


class Seq(Shape):
    expecting = "a sequence"

    def __init__(self, item: Shape) -> None:
        self.item = item

    def read(self, r: "_Reader") -> Any:
        if r.peek() != "[":
            raise r.invalid_type(self.expecting)
        return r.seq(self.item)


class MapOf(Shape):
    expecting = "a map"

    def __init__(self, value: Shape) -> None:
        self.value = value

    def read(self, r: "_Reader") -> Any:
        if r.peek() != "{":
            raise r.invalid_type(self.expecting)
        r.i += 1
        out: Dict[str, Any] = {}
        for key in r.keys():
            out[key] = self.value.read(r)
        return out


class Opt(Shape):
    def __init__(self, inner: Shape) -> None:
        self.inner = inner
        self.expecting = f"option"

    def read(self, r: "_Reader") -> Any:
        if r.text.startswith("null", r.i):
            r.i += 4
            return None
        return self.inner.read(r)


class Field:
    """A struct field: its JSON key, shape, and default (a value or a
    zero-argument callable; `REQUIRED` when it must be present; `Opt` fields
    default to `None`)."""

    def __init__(self, key: str, shape: Shape, default: Any = REQUIRED) -> None:
        self.key = key
        self.shape = shape
        self.default = default

    def missing(self) -> Any:
        if self.default is REQUIRED:
            if isinstance(self.shape, Opt):
                return None
            raise KeyError(self.key)
        return self.default() if callable(self.default) else self.default


class Struct(Shape):
    """A struct (`#[derive(Deserialize)]`): `deny_unknown` refuses other keys
    (`#[serde(deny_unknown_fields)]`); `flatten` keeps them in `"extra"`
    (`#[serde(flatten)] extra: Map<String, Value>`)."""

    def __init__(self, name: str, fields: Sequence[Field], deny_unknown: bool = False, flatten: bool = False) -> None:
        self.name = name
        self.fields = {field.key: field for field in fields}
        self.deny_unknown = deny_unknown
        self.flatten = flatten
        self.expecting = f"struct {name}"

    def read(self, r: "_Reader") -> Any:
        if r.peek() != "{":
            raise r.invalid_type(self.expecting)
        r.i += 1
        out: Dict[str, Any] = {}
        extra: Dict[str, Any] = {}
        for key in r.keys():
            field = self.fields.get(key)
            if field is not None:
                if key in out:
                    raise r.custom(f"duplicate field `{key}`", r.key_end)
                out[key] = field.shape.read(r)
            elif self.flatten:
                extra[key] = r.any_value()
            elif self.deny_unknown:
                raise r.custom(f"unknown field `{key}`, {_expected_fields(list(self.fields))}", r.key_end)
            else:
                r.any_value()
        for key, field in self.fields.items():
            if key not in out:
                try:
                    out[key] = field.missing()
                except KeyError:
                    raise r.custom(f"missing field `{key}`", r.i) from None
        if self.flatten:
            out["extra"] = extra
        return out


class OneOf(Shape):
    """A value read by `deserialize_any` with a custom visitor: `accept` maps
    a JSON type (`"bool"`, `"seq"`, `"str"`, `"int"`, `"float"`, `"map"`,
    `"null"`) to the shape that reads it; other types are refused with
    `expecting`."""

    def __init__(self, expecting: str, accept: Dict[str, Shape]) -> None:
        self.expecting = expecting
        self.accept = accept

    def read(self, r: "_Reader") -> Any:
        c = r.peek()
        kind = {"t": "bool", "f": "bool", "[": "seq", '"': "str", "n": "null", "{": "map"}.get(c or "", "number")
        if kind == "number":
            start = r.i
            value = r.number()
            r.i = start
            kind = "int" if isinstance(value, int) else "float"
        shape = self.accept.get(kind)
        if shape is not None:
            return shape.read(r)
        if kind == "seq" or kind == "map":
            # The visitor refuses it after the bracket; serde_json then tries
            # to close it, which succeeds only when it is empty.
            r.i += 1
            if r.peek() == ("]" if kind == "seq" else "}"):
                r.i += 1
            raise r.custom(f"invalid type: {'sequence' if kind == 'seq' else 'map'}, expected {self.expecting}", r.i)
        raise r.invalid_type(self.expecting)


def _expected_fields(names: List[str]) -> str:
    quoted = [f"`{name}`" for name in names]
    if not quoted:
        return "there are no fields"
    if len(quoted) == 1:
        return f"expected {quoted[0]}"
    if len(quoted) == 2:
        return f"expected {quoted[0]} or {quoted[1]}"
    return f"expected one of {', '.join(quoted)}"


# --------------------------------------------------------------------------- reader


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.key_end = 0
        self._decoder = json.JSONDecoder(parse_int=_serde_int, strict=True)

    # Positions are serde_json's: line, and bytes since the line's start.
    def position(self, index: int) -> Tuple[int, int]:
        head = self.text[:index]
        line_start = head.rfind("\n") + 1
        return head.count("\n") + 1, len(head[line_start:].encode("utf-8", "surrogatepass"))

    def custom(self, message: str, index: int) -> SchemaError:
        line, column = self.position(index)
        return SchemaError(f"{message} at line {line} column {column}")

    def syntax(self, message: str, peeked: bool = True) -> SchemaError:
        index = min(self.i + 1, len(self.text)) if peeked else self.i
        return self.custom(message, index)

    def peek(self) -> Optional[str]:
        self.i = _WS.match(self.text, self.i).end()
        return self.text[self.i] if self.i < len(self.text) else None

    def string(self) -> str:
        start = self.i
        try:
            value, self.i = scanstring(self.text, self.i + 1, True)
        except ValueError:
            raise self.syntax("invalid string") from None
        if _SURROGATE.search(value):
            self.check_surrogates(start, self.i)
        return value

    def check_surrogates(self, start: int, end: int) -> None:
        """Raises serde_json's error for the first unpaired surrogate escape
        in the string tokens of `text[start:end]`."""
        text = self.text
        for token in _STRING_TOKEN.finditer(text, start, end):
            for escape in _ESCAPE.finditer(text, token.start() + 1, token.end() - 1):
                code = escape.group(1)
                if code is None:
                    continue
                first = int(code, 16)
                after = escape.end()
                if 0xDC00 <= first <= 0xDFFF:
                    raise self.custom("lone leading surrogate in hex escape", after)
                if not 0xD800 <= first <= 0xDBFF:
                    continue
                if text[after : after + 1] != "\\":
                    raise self.custom("unexpected end of hex escape", after + 1)
                if text[after + 1 : after + 2] != "u":
                    raise self.custom("unexpected end of hex escape", after + 2)
                second = int(text[after + 2 : after + 6], 16)
                if not 0xDC00 <= second <= 0xDFFF:
                    raise self.custom("lone leading surrogate in hex escape", after + 6)

    def literal(self) -> Any:
        for word, value in (("true", True), ("false", False), ("null", None)):
            if self.text.startswith(word, self.i):
                self.i += len(word)
                return value
        raise self.syntax("expected value")

    def number(self) -> Any:
        found = _NUMBER.match(self.text, self.i)
        if found is None:
            raise self.syntax("expected value")
        self.i = found.end()
        if found.group(1) is None and found.group(2) is None:
            return _serde_int(found.group(0))
        return float(found.group(0))

    def any_value(self) -> Any:
        c = self.peek()
        if c is None:
            raise self.syntax("EOF while parsing a value", peeked=False)
        start = self.i
        try:
            value, self.i = self._decoder.scan_once(self.text, self.i)
        except (StopIteration, ValueError):
            raise self.syntax("expected value") from None
        if _SURROGATE_ESCAPE.search(self.text, start, self.i):
            self.check_surrogates(start, self.i)
        return value

    def keys(self):
        """Yields each key of the object whose `{` was just read, leaving the
        reader at the key's value; ends after the `}`."""
        if self.peek() == "}":
            self.i += 1
            return
        while True:
            c = self.peek()
            if c != '"':
                raise self.syntax("EOF while parsing an object" if c is None else "key must be a string")
            key = self.string()
            self.key_end = self.i
            if self.peek() != ":":
                raise self.syntax("expected `:`")
            self.i += 1
            self.peek()
            yield key
            c = self.peek()
            if c == ",":
                self.i += 1
                continue
            if c == "}":
                self.i += 1
                return
            raise self.syntax("EOF while parsing an object" if c is None else "expected `,` or `}`")

    def seq(self, item: Shape) -> List[Any]:
        self.i += 1
        out: List[Any] = []
        if self.peek() == "]":
            self.i += 1
            return out
        while True:
            out.append(item.read(self))
            c = self.peek()
            if c == ",":
                self.i += 1
                continue
            if c == "]":
                self.i += 1
                return out
            raise self.syntax("EOF while parsing a list" if c is None else "expected `,` or `]`")

    def invalid_type(self, expecting: str) -> SchemaError:
        """serde_json's `peek_invalid_type`: describes the value ahead (reading
        a scalar past it) and reports at the position reached."""
        c = self.peek()
        if c is None:
            return self.syntax("EOF while parsing a value", peeked=False)
        if c in "tfn":
            value = self.literal()
            unexpected = "null" if value is None else f"boolean `{'true' if value else 'false'}`"
        elif c == "-" or c.isdigit():
            value = self.number()
            unexpected = f"integer `{value}`" if isinstance(value, int) else f"floating point `{format_f64(value)}`"
        elif c == '"':
            unexpected = f"string {_rust_debug(self.string())}"
        elif c == "[":
            unexpected = "sequence"
        elif c == "{":
            unexpected = "map"
        else:
            return self.syntax("expected value")
        return self.custom(f"invalid type: {unexpected}, expected {expecting}", self.i)


def _rust_debug(text: str) -> str:
    out = ['"']
    for ch in text:
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\0":
            out.append("\\0")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{{{ord(ch):x}}}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def parse(text: str, shape: Shape) -> Any:
    """Reads `text` as `shape`; raises `SchemaError` with serde_json's message."""
    reader = _Reader(text)
    value = shape.read(reader)
    if reader.peek() is not None:
        raise reader.syntax("trailing characters")
    return value


def parse_config(text: Any, shape: Shape) -> Any:
    """Reads a plugin's configuration (JSON text, or a dict) as `shape`; blank
    text counts as `{}`. Raises `ConfigError("invalid config: ...")`, like the
    Rust SDK's `parse_config`."""
    if isinstance(text, dict):
        original = getattr(text, "text", None)
        text = original if isinstance(original, str) else json.dumps(text, ensure_ascii=False, separators=(",", ":"))
    if not text or not text.strip():
        text = "{}"
    try:
        return parse(text, shape)
    except SchemaError as err:
        raise ConfigError(f"invalid config: {err}") from None


# --------------------------------------------------------------------------- writing


def format_f64(value: float) -> str:
    """A float as serde_json writes it: `1.0`, `0.00001`, `1e+16`, `1.5e-7`
    (shortest round-trip digits; exponent form below 1e-5 and from 1e16);
    `null` when not finite."""
    if not math.isfinite(value):
        return "null"
    text = repr(value)
    sign = ""
    if text[0] == "-":
        sign, text = "-", text[1:]
    mantissa, _, exponent = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    point = len(whole) + (int(exponent) if exponent else 0)
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    if not digits:
        return sign + "0.0"
    length, kk = len(digits), point
    k = kk - length
    if 0 <= k and kk <= 16:
        body = digits + "0" * k + ".0"
    elif 0 < kk <= 16:
        body = digits[:kk] + "." + digits[kk:]
    elif -5 < kk <= 0:
        body = "0." + "0" * (-kk) + digits
    else:
        exponent = kk - 1
        mantissa = digits if length == 1 else f"{digits[0]}.{digits[1:]}"
        body = f"{mantissa}e{'+' if exponent > 0 else ''}{exponent}"
    return sign + body


def _has_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_float(v) for v in value)
    return False


_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=True)
_encode_str = json.encoder.py_encode_basestring  # escapes exactly what serde_json escapes


def dumps(value: Any, sort_keys: bool = True) -> str:
    """`value` as serde_json writes a `Value`: compact, keys sorted (serde_json
    without `preserve_order`), floats as ryu writes them, non-ASCII as is."""
    if sort_keys and not _has_float(value):
        return _COMPACT.encode(value)
    iterencode = json.encoder._make_iterencode(  # type: ignore[attr-defined]
        None, _no_default, _encode_str, None, format_f64, ":", ",", sort_keys, False, True
    )
    return "".join(iterencode(value, 0))


def _no_default(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps_struct(pairs: Sequence[Tuple[str, Any]]) -> str:
    """A struct as serde writes it: its members in this order (values written
    with `dumps`)."""
    return "{" + ",".join(f"{_encode_str(key)}:{dumps(value)}" for key, value in pairs) + "}"
