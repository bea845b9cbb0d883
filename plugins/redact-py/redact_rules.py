"""Redaction rules: the built-in ones, the user's, and the raw-text pre-check.

Mirrors the Rust `redact` plugin's `rules.rs`: same configuration, same rule
names and order, same matches. Rust `regex` syntax in user patterns is
translated to Python's `re` (see `translate`); the built-in patterns are
written for `re` directly, with finders that stay linear where a backtracking
engine would not (an e-mail address after a long run of letters).
"""

from __future__ import annotations

import re
from re import _parser as sre_parse  # type: ignore[attr-defined]
from re import _constants as sre_c  # type: ignore[attr-defined]
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

from interpose_plugin import ConfigError
from interpose_plugin.schema import Bool, Field, OneOf, Opt, Seq, Str, Struct, parse_config

RULE = Struct(
    "RuleConfig",
    [Field("name", Str()), Field("pattern", Str()), Field("replacement", Opt(Str()))],
    deny_unknown=True,
)
CONFIG = Struct(
    "Config",
    [
        Field("rules", Seq(RULE), default=list),
        Field(
            "defaults",
            OneOf("true, false, or a list of built-in rule names", {"bool": Bool(), "seq": Seq(Str())}),
            default=True,
        ),
    ],
    deny_unknown=True,
)

# Rust's `\s` (Unicode White_Space); Python's also takes U+001C..U+001F.
_WS = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"

Span = Tuple[int, int]


# Digits become "0", every other byte "x", and spaces and dashes go: a card
# number (13 or more digits, single spaces or dashes between) then shows as 13
# zeros in a row. A necessary condition checked at C speed; unrelated digit
# groups may merge, which only costs a regex search.
_DIGIT_MAP = bytes(0x30 if 0x30 <= b <= 0x39 else 0x78 for b in range(256))
_THIRTEEN_DIGITS = b"0" * 13


def _may_hold_card_number(text: str) -> bool:
    encoded = text.encode("utf-8", "surrogatepass")
    return _THIRTEEN_DIGITS in encoded.translate(_DIGIT_MAP, b" -")


# --------------------------------------------------------------------------- built-ins


class Builtin:
    def __init__(
        self,
        name: str,
        pattern: str,
        raw_filter: str,
        literals: Sequence[str] = (),
        lower_literal: Optional[str] = None,
        min_digits: int = 0,
        validator: Optional[Callable[[str, int, int], bool]] = None,
        finder: Optional[Callable[[str], Iterator[Span]]] = None,
        raw_check: Optional[Callable[[str], bool]] = None,
    ) -> None:
        self.name = name
        self.regex = re.compile(pattern)
        #: A necessary condition for `pattern` to match a decoded string,
        #: checked on raw JSON text (see `escape_safe`).
        self.raw_filter = re.compile(raw_filter)
        #: Cheaper necessary conditions: one of these substrings is present
        #: (in the text, or in its lower-case form), and enough digits.
        self.literals = tuple(literals)
        self.lower_literal = lower_literal
        self.min_digits = min_digits
        self.validator = validator
        self.finder = finder
        #: Checks `raw_filter` faster than a regex scan would.
        self.raw_check = raw_check
        self._gate = self._build_gate()

    def may_match(self, text: str, lower: Callable[[], str]) -> bool:
        return self._gate(text, lower)

    def _build_gate(self) -> Callable[[str, Callable[[], str]], bool]:
        literals, lower_literal = self.literals, self.lower_literal
        if self.min_digits:
            return lambda text, lower: _may_hold_card_number(text)
        if lower_literal is not None:
            return lambda text, lower: lower_literal in lower()
        if len(literals) == 1:
            (only,) = literals
            return lambda text, lower: only in text
        return lambda text, lower: any(literal in text for literal in literals)

    def may_match_raw(self, raw: str, lower: Callable[[], str]) -> bool:
        if not self.may_match(raw, lower):
            return False
        if self.raw_check is not None:
            return self.raw_check(raw)
        return self.raw_filter.search(raw) is not None


_EMAIL_LOCAL = "A-Za-z0-9._%+-"
_EMAIL_LOCAL_RUN = re.compile(f"[{_EMAIL_LOCAL}]+")
_EMAIL_DOMAIN = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")


def find_emails(text: str) -> Iterator[Span]:
    """What `finditer` of the e-mail pattern finds, without its quadratic
    backtracking: a match holds exactly one `@`, and starts where the run of
    local-part characters before that `@` starts."""
    search = 0
    reversed_text = None
    while True:
        at = text.find("@", search)
        if at < 0:
            return
        if at == search or text[at - 1] not in _LOCAL_CHARS:
            search = at + 1
            continue
        if reversed_text is None:
            reversed_text = text[::-1]
        run = _EMAIL_LOCAL_RUN.match(reversed_text, len(text) - at)
        start = max(at - (run.end() - run.start()), search) if run else at
        domain = _EMAIL_DOMAIN.match(text, at + 1)
        if domain is None:
            search = at + 1
            continue
        yield start, domain.end()
        search = domain.end()


_LOCAL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-")


def _email_raw(raw: str) -> bool:
    """The e-mail raw filter `[A-Za-z0-9._%+-]@[A-Za-z0-9-]`, by `@`."""
    at = raw.find("@", 1)
    while at > 0:
        after = raw[at + 1 : at + 2]
        if raw[at - 1] in _LOCAL_CHARS and after and (after.isascii() and (after.isalnum() or after == "-")):
            return True
        at = raw.find("@", at + 1)
    return False


def card_number_valid(haystack: str, start: int, end: int) -> bool:
    """A card number: 13 to 19 digits passing the Luhn check, not part of a
    longer number (`12.4111...`, `4111...,5`)."""
    if start > 0:
        before = haystack[start - 1]
        if ("0" <= before <= "9") or before == "." or before == ",":
            return False
    after = haystack[end : end + 2]
    if after[:1] in (".", ",") and len(after) == 2 and "0" <= after[1] <= "9":
        return False
    digits = [ord(c) - 48 for c in haystack[start:end] if "0" <= c <= "9"]
    return 13 <= len(digits) <= 19 and luhn(digits)


def luhn(digits: List[int]) -> bool:
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


BUILTINS: List[Builtin] = [
    Builtin(
        "private-key",
        # A whole PEM block; without its END line (a truncated block), the
        # header and the base64 body after it.
        r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----(?:[\s\S]*?-----END[A-Z0-9 ]*PRIVATE KEY-----|[A-Za-z0-9+/=" + _WS + "]*)",
        r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----",
        literals=("-----BEGIN",),
    ),
    Builtin(
        "aws-access-key",
        r"(?a:\b)(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}(?a:\b)",
        r"(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}",
        literals=("AKIA", "ASIA", "ABIA", "ACCA"),
    ),
    Builtin(
        "bearer-token",
        r"(?a:\b)(?i:bearer[" + _WS + r"]+[A-Za-z0-9\-._~+/]{20,}=*)",
        r"(?i:bearer)",
        lower_literal="bearer",
    ),
    Builtin(
        "api-key",
        # OpenAI / Anthropic style `sk-...` keys and GitHub tokens.
        r"(?a:\b)(?:sk-[A-Za-z0-9_-]{20,}|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})",
        r"sk-[A-Za-z0-9_-]{20}|gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{40}",
        literals=("sk-", "gh", "github_pat_"),
    ),
    Builtin(
        "email",
        r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
        r"[A-Za-z0-9._%+-]@[A-Za-z0-9-]",
        literals=("@",),
        finder=find_emails,
        raw_check=lambda raw: _email_raw(raw),
    ),
    Builtin(
        "card-number",
        # 13 to 19 digits, optionally grouped by single spaces or dashes,
        # starting like a Visa, Mastercard, Amex, Discover, JCB or Diners card.
        r"(?a:\b)[2-6][0-9](?:[ -]?[0-9]){11,17}(?a:\b)",
        r"[2-6][0-9](?:[ -]?[0-9]){11,17}",
        min_digits=13,
        validator=card_number_valid,
    ),
]

def builtin_names() -> List[str]:
    return [rule.name for rule in BUILTINS]


# --------------------------------------------------------------------------- user patterns


class PatternError(ValueError):
    pass


_FLAG_GROUP = re.compile(r"\(\?([a-zA-Z]*)(?:-([a-zA-Z]*))?([:)])")
_RUST_FLAGS = set("imsxUuR")
_PY_FLAGS = set("imsx")


def translate(pattern: str) -> str:
    """Rust `regex` syntax to Python `re` syntax, for what user rules use:
    flag groups anywhere (`(?i)` mid-pattern applies to the rest of its
    group), `(?<name>...)`, `\\x{...}`, `\\z`, and `$` (end of text, unlike
    Python's `$` which also matches before a final newline). Constructs Rust
    does not have (look-around, back-references) are refused, like Rust does."""
    out: List[str] = []
    # Per open group: the flag groups opened mid-group, to close with it.
    pending: List[List[str]] = [[]]
    multi_line = False
    # Python's `\s` also matches U+001C..U+001F; Rust's does not. (Inside an
    # ASCII-only `(?-u)` scope both mean ASCII whitespace: leave them then.)
    unicode_spaces = "-u" not in pattern and not re.search(r"\(\?[a-zA-Z]*-[a-zA-Z]*u", pattern)
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 >= n:
                raise PatternError("incomplete escape sequence")
            e = pattern[i + 1]
            if e == "x" and pattern.startswith("{", i + 2):
                close = pattern.find("}", i + 3)
                if close < 0:
                    raise PatternError("unclosed hexadecimal escape")
                out.append("\\U%08x" % int(pattern[i + 3 : close], 16))
                i = close + 1
                continue
            if e == "z":
                out.append(r"\Z")
            elif e in "sS" and unicode_spaces:
                out.append(f"[{_WS}]" if e == "s" else f"[^{_WS}]")
            elif e in "pP":
                raise PatternError("Unicode classes (\\p, \\P) are not supported by the Python plugin")
            elif e.isdigit() and e != "0":
                raise PatternError("backreferences are not supported")
            elif e == "Z":
                raise PatternError("unrecognized escape sequence")
            else:
                out.append(pattern[i : i + 2])
            i += 2
            continue
        if c == "[":
            end = _class_end(pattern, i)
            body = pattern[i:end]
            # The class's own `[` may be followed by `:` (`[:=]` is a class of two
            # characters); only a `[:` inside it starts a POSIX class.
            if "[:" in body[1:] or "&&" in body or "--" in body or "~~" in body:
                raise PatternError("nested classes, class set operations and POSIX classes are not supported by the Python plugin")
            if unicode_spaces:
                body = re.sub(r"(?<!\\)((?:\\\\)*)\\s", lambda m: m.group(1) + _WS, body)
            out.append(body)
            i = end
            continue
        if c == "(":
            if pattern.startswith("(?", i):
                flag_group = _FLAG_GROUP.match(pattern, i)
                if flag_group:
                    on, off, end = flag_group.group(1), flag_group.group(2) or "", flag_group.group(3)
                    flags = set(on) | set(off)
                    if not flags <= _RUST_FLAGS:
                        raise PatternError(f"unrecognized flag in {flag_group.group(0)}")
                    if "U" in flags:
                        raise PatternError("the swap-greed flag U is not supported by the Python plugin")
                    multi_line |= "m" in on
                    on_py = "".join(f for f in on if f in _PY_FLAGS)
                    off_py = "".join(f for f in off if f in _PY_FLAGS)
                    if "u" in off:
                        # Rust's `(?-u)`: ASCII-only classes and boundaries.
                        on_py += "a"
                    spec = on_py + (f"-{off_py}" if off_py else "")
                    opener = f"(?{spec}:" if spec else "(?:"
                    out.append(opener)
                    if end == ":":
                        pending.append([])
                    else:
                        # `(?i)` applies to the rest of the enclosing group.
                        pending[-1].append(opener)
                    i = flag_group.end()
                    continue
                if pattern.startswith("(?P<", i) or pattern.startswith("(?<", i):
                    if pattern.startswith("(?<=", i) or pattern.startswith("(?<!", i):
                        raise PatternError("look-around, including look-ahead and look-behind, is not supported")
                    start = i + (4 if pattern.startswith("(?P<", i) else 3)
                    out.append("(?P<")
                    pending.append([])
                    i = start
                    continue
                raise PatternError("look-around, including look-ahead and look-behind, is not supported")
            out.append("(")
            pending.append([])
            i += 1
            continue
        if c == ")":
            if len(pending) == 1:
                raise PatternError("unopened group")
            out.append(")" * len(pending.pop()))
            out.append(")")
            i += 1
            continue
        if c == "|":
            # Flags set mid-group hold for the later branches too: close their
            # groups before the bar and open them again after it.
            openers = pending[-1]
            out.append(")" * len(openers) + "|" + "".join(openers))
            i += 1
            continue
        if c in "*+?}" and i + 1 < n and pattern[i + 1] == "+":
            raise PatternError("possessive repetitions are not supported")
        out.append(c)
        i += 1
    if len(pending) != 1:
        raise PatternError("unclosed group")
    out.append(")" * len(pending[0]))
    translated = "".join(out)
    if not multi_line:
        translated = _dollars_to_end(translated)
    return translated


def _class_end(pattern: str, start: int) -> int:
    i = start + 1
    if i < len(pattern) and pattern[i] == "^":
        i += 1
    if i < len(pattern) and pattern[i] == "]":
        i += 1
    while i < len(pattern):
        if pattern[i] == "\\":
            i += 2
            continue
        if pattern[i] == "]":
            return i + 1
        i += 1
    raise PatternError("unclosed character class")


def _dollars_to_end(pattern: str) -> str:
    """`$` outside classes becomes `\\Z` (Rust's `$` is the end of the text)."""
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i : i + 2])
            i += 2
        elif c == "[":
            end = _class_end(pattern, i)
            out.append(pattern[i:end])
            i = end
        elif c == "$":
            out.append(r"\Z")
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _escapable(c: int) -> bool:
    return c < 0x20 or c == 0x22 or c == 0x5C or c == 0x2F


def escape_safe(tree) -> bool:
    """Whether a parsed pattern can be checked on raw JSON text: whatever it
    matches in a decoded string, it also matches, unchanged, in the string's
    raw text. True when it can match none of the characters JSON escapes
    (`"`, `\\`, `/`, control characters) and has no assertion."""
    for op, av in tree:
        if op is sre_c.LITERAL:
            if _escapable(av):
                return False
        elif op is sre_c.IN:
            for item_op, item in av:
                if item_op is sre_c.NEGATE:
                    return False
                if item_op is sre_c.LITERAL:
                    if _escapable(item):
                        return False
                elif item_op is sre_c.RANGE:
                    lo, hi = item
                    if any(_escapable(c) for c in range(lo, min(hi, 0x7F) + 1)):
                        return False
                elif item_op is sre_c.CATEGORY:
                    if item not in (sre_c.CATEGORY_DIGIT, sre_c.CATEGORY_WORD):
                        return False
                else:
                    return False
        elif op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT):
            if not escape_safe(av[2]):
                return False
        elif op is sre_c.SUBPATTERN:
            if not escape_safe(av[-1]):
                return False
        elif op is sre_c.BRANCH:
            if not all(escape_safe(branch) for branch in av[1]):
                return False
        else:
            # ANY, NOT_LITERAL, AT (assertions), look-around, references.
            return False
    return True


# --------------------------------------------------------------------------- replacement


def expand(match: "re.Match[str]", template: str) -> str:
    """Rust `regex`'s `Captures::expand`: `$1` / `$name` / `${name}` insert a
    group (nothing when it does not exist or did not take part), `$$` is a
    dollar sign, any other `$` is itself."""
    out: List[str] = []
    rest = template
    while rest:
        at = rest.find("$")
        if at < 0:
            break
        out.append(rest[:at])
        rest = rest[at:]
        if rest[1:2] == "$":
            out.append("$")
            rest = rest[2:]
            continue
        ref, end = _cap_ref(rest)
        if ref is None:
            out.append("$")
            rest = rest[1:]
            continue
        rest = rest[end:]
        try:
            value = match.group(ref)
        except IndexError:
            value = None
        if value is not None:
            out.append(value)
    out.append(rest)
    return "".join(out)


_CAP_LETTER = re.compile(r"[0-9A-Za-z_]+")
_NUMBER = re.compile(r"\+?[0-9]+")


def _cap_ref(rep: str):
    if len(rep) <= 1:
        return None, 0
    if rep[1] == "{":
        close = rep.find("}", 2)
        if close < 0:
            return None, 0
        return _ref(rep[2:close]), close + 1
    run = _CAP_LETTER.match(rep, 1)
    if run is None:
        return None, 0
    return _ref(run.group()), run.end()


def _ref(name: str):
    if _NUMBER.fullmatch(name):
        number = int(name)
        return number if number < 2**64 else name
    return name


# --------------------------------------------------------------------------- rules


class Rule:
    def __init__(
        self,
        name: str,
        regex: "re.Pattern[str]",
        replacement: str,
        template: bool,
        builtin: Optional[Builtin] = None,
    ) -> None:
        self.name = name
        self.regex = regex
        self.replacement = replacement
        self.template = template
        self.builtin = builtin

    def matches(self, text: str) -> bool:
        """Whether the rule's pattern matches somewhere in `text` (validator
        aside)."""
        builtin = self.builtin
        if builtin is not None and builtin.finder is not None:
            return next(builtin.finder(text), None) is not None
        return self.regex.search(text) is not None

    def apply(self, haystack: str) -> Optional[str]:
        """The haystack with every match replaced; `None` when nothing matched."""
        builtin = self.builtin
        if builtin is not None and builtin.finder is not None:
            spans: Iterator = builtin.finder(haystack)
            validator = builtin.validator
        else:
            spans = self.regex.finditer(haystack)
            validator = builtin.validator if builtin is not None else None
        out: List[str] = []
        copied = 0
        for found in spans:
            if isinstance(found, tuple):
                start, end = found
            else:
                start, end = found.span()
            if validator is not None and not validator(haystack, start, end):
                continue
            out.append(haystack[copied:start])
            if self.template:
                match = found if not isinstance(found, tuple) else self.regex.match(haystack, start, end)
                out.append(expand(match, self.replacement))
            else:
                out.append(self.replacement)
            copied = end
        if not out:
            return None
        out.append(haystack[copied:])
        return "".join(out)


class Rules:
    """All rules of one plugin instance, and the pre-check over raw JSON text."""

    def __init__(self, config_text) -> None:
        config = parse_config(config_text, CONFIG)
        defaults = config["defaults"]
        if defaults is True:
            builtins = list(BUILTINS)
        elif defaults is False:
            builtins = []
        else:
            for name in defaults:
                if name not in builtin_names():
                    raise ConfigError(
                        f"invalid config: `defaults` names an unknown rule `{name}`; "
                        f"the built-in rules are: {', '.join(builtin_names())}"
                    )
            builtins = [rule for rule in BUILTINS if rule.name in defaults]

        self.rules: List[Rule] = []
        # Raw-text checks: user patterns (compiled) and built-ins.
        user_filters: List[str] = []
        filterable = True
        for user in config["rules"]:
            name = user["name"]
            if not name:
                raise ConfigError("invalid config: a rule has an empty `name`")

            def rule_error(detail: str, name: str = name) -> ConfigError:
                return ConfigError(f"invalid config: rule `{name}`: {detail}")

            try:
                translated = translate(user["pattern"])
                tree = sre_parse.parse(translated)
                regex = re.compile(translated)
            except (PatternError, re.error, OverflowError, ValueError) as err:
                raise rule_error(f"invalid pattern: {err}") from None
            if tree.getwidth()[0] == 0:
                raise rule_error("the pattern matches the empty string")
            if escape_safe(tree):
                user_filters.append(translated)
            else:
                filterable = False
            replacement = user["replacement"]
            if replacement is None:
                self.rules.append(Rule(name, regex, f"[REDACTED:{name}]", False))
            else:
                self.rules.append(Rule(name, regex, replacement, "$" in replacement))
        for builtin in builtins:
            self.rules.append(Rule(builtin.name, builtin.regex, f"[REDACTED:{builtin.name}]", False, builtin))

        if config["rules"]:
            # The built-ins are known to combine; user patterns may clash
            # (a group name used twice, say), as they would in Rust.
            try:
                re.compile("|".join(f"(?:{rule.regex.pattern})" for rule in self.rules))
            except re.error as err:
                raise ConfigError(f"invalid config: the rules do not combine into one pattern: {err}") from None
        self.user_filter = re.compile("|".join(f"(?:{p})" for p in user_filters)) if user_filters else None
        self.builtins = builtins
        self.filterable = filterable

    def names(self, indexes: List[int]) -> List[str]:
        return [self.rules[i].name for i in indexes if i < len(self.rules)]

    def may_match_raw(self, raw: str) -> bool:
        """Whether the raw JSON text of a payload may hold something to
        redact; `False` means it certainly does not."""
        if not self.rules:
            return False
        # A `\u` escape can spell any character, so the raw text is not the
        # decoded text even for escape-safe patterns.
        if not self.filterable or "\\u" in raw:
            return True
        lowered: List[str] = []

        def lower() -> str:
            if not lowered:
                lowered.append(raw.lower())
            return lowered[0]

        if self.user_filter is not None and self.user_filter.search(raw):
            return True
        return any(builtin.may_match_raw(raw, lower) for builtin in self.builtins)

    def may_match_slice(self, raw: str, start: int, end: int) -> List[int]:
        """Where the raw-text check matches within `raw[start:end]`: the start
        offsets of its matches (a string holding none of them cannot change)."""
        hits: List[int] = []
        if self.user_filter is not None:
            hits.extend(m.start() for m in self.user_filter.finditer(raw, start, end))
        piece = raw[start:end]
        lowered: List[str] = []

        def lower() -> str:
            if not lowered:
                lowered.append(piece.lower())
            return lowered[0]

        for builtin in self.builtins:
            if not builtin.may_match(piece, lower):
                continue
            if builtin.finder is find_emails:
                at = raw.find("@", start, end)
                while at >= 0:
                    hits.append(at)
                    at = raw.find("@", at + 1, end)
            else:
                hits.extend(m.start() for m in builtin.raw_filter.finditer(raw, start, end))
        hits.sort()
        return hits

    def redact(self, text: str, hits: List[int]) -> Optional[str]:
        """Redacts one decoded string; `None` when nothing matched. Adds the
        indexes of the rules that matched to `hits`. Rules apply in order,
        each to the previous one's output, and only those that match `text`
        itself (as the Rust plugin's `RegexSet` decides)."""
        current: Optional[str] = None
        lowered: List[str] = []

        def lower() -> str:
            if not lowered:
                lowered.append(text.lower())
            return lowered[0]

        for index, rule in enumerate(self.rules):
            builtin = rule.builtin
            if builtin is not None and not builtin.may_match(text, lower):
                continue
            if current is None:
                # Applying to `text` itself is the match test too.
                replaced = rule.apply(text)
            elif rule.matches(text):
                replaced = rule.apply(current)
            else:
                continue
            if replaced is not None:
                current = replaced
                if index not in hits:
                    hits.append(index)
        return current
