"""interpose plugin: decides which tools a client may see and call, under which
names, and with which arguments. The Python twin of `plugins/tool-policy`:
same configuration, same decisions, same errors. See the README.

Payloads are read with `interpose_plugin.schema`, which refuses what serde
refuses with serde's words, and rewritten the way serde_json writes them
(struct fields in order, other keys sorted), so a rewrite is byte for byte the
one the Rust plugin makes.
"""

from interpose_plugin import PASS, ConfigError, Direction, Plugin, RawJson, Reject, Rewrite, RpcError, on_request, on_response
from interpose_plugin import schema
from interpose_plugin.schema import AnyValue, Bool, Field, MapOf, Opt, Seq, Str, Struct

#: The JSON-RPC error code of a call the policy denies.
DENIED = -32001

RULE = Struct(
    "Rule",
    [
        Field("tools", Seq(Str())),
        Field("scopes", Seq(Str()), default=list),
        Field("subjects", Seq(Str()), default=list),
    ],
    deny_unknown=True,
)
CONFIG = Struct(
    "Config",
    [
        Field("allow", Seq(Str()), default=list),
        Field("deny", Seq(Str()), default=list),
        Field("hide", Seq(Str()), default=list),
        Field("hide_denied", Bool(), default=True),
        Field("rename", MapOf(Str()), default=dict),
        Field("pin_arguments", MapOf(MapOf(AnyValue())), default=dict),
        Field("strip_arguments", MapOf(Seq(Str())), default=dict),
        Field("require", Seq(RULE), default=list),
    ],
    deny_unknown=True,
)
TOOL_CALL = Struct(
    "ToolCallParams", [Field("name", Str()), Field("arguments", Opt(MapOf(AnyValue())))], flatten=True
)
TOOL = Struct(
    "Tool",
    [Field("name", Str()), Field("description", Opt(Str())), Field("inputSchema", Opt(AnyValue()))],
    flatten=True,
)
TOOLS_LIST = Struct("ToolsListResult", [Field("tools", Seq(TOOL), default=list)], flatten=True)


def glob_matches(pattern: str, name: str) -> bool:
    """`*` matches any run of characters (also none), `?` any one character;
    everything else matches itself."""
    p = n = 0
    star = None  # (pattern index of the last `*`, name index it has swallowed up to)
    while n < len(name):
        c = pattern[p] if p < len(pattern) else None
        if c == "*":
            star = (p, n)
            p += 1
        elif c is not None and (c == "?" or c == name[n]):
            p += 1
            n += 1
        elif star is not None:
            p, n = star[0] + 1, star[1] + 1
            star = (star[0], star[1] + 1)
        else:
            return False
    return all(c == "*" for c in pattern[p:])


HIDDEN = "hidden"


class Denial:
    """Why a tool is denied: `why` ends the sentence "it ...", `required` is
    what a `require` rule asks for that the principal lacks (or `None`)."""

    __slots__ = ("why", "required")

    def __init__(self, why: str, required=None) -> None:
        self.why = why
        self.required = required


def listed(what: str, names) -> str:
    """`scope `a`` or `scopes `a`, `b``."""
    quoted = ", ".join(f"`{name}`" for name in names)
    return f"{what}{'' if len(names) == 1 else 's'} {quoted}"


def refuses(rule, principal):
    """Why `principal` may not call what `rule` covers, or `None` when it may.
    Says what the rule asks for, never what the token holds beyond it."""
    if principal is None:
        required = {}
        if rule["scopes"]:
            required["scopes"] = rule["scopes"]
        if rule["subjects"]:
            required["subjects"] = rule["subjects"]
        return Denial("requires an authenticated principal", required)
    if rule["subjects"] and principal.subject not in rule["subjects"]:
        return Denial(f"is reserved for {listed('subject', rule['subjects'])}", {"subjects": rule["subjects"]})
    missing = [scope for scope in rule["scopes"] if not principal.has_scope(scope)]
    if missing:
        return Denial(f"requires {listed('scope', missing)}", {"scopes": missing})
    return None


class Policy:
    def __init__(self, config) -> None:
        config = schema.parse_config(config, CONFIG)
        to_exposed = {}
        for exposed, backend in sorted(config["rename"].items()):
            if not exposed or not backend:
                raise ConfigError("invalid config: `rename` has an empty tool name")
            if backend in to_exposed:
                raise ConfigError(
                    f"invalid config: `rename` maps both `{to_exposed[backend]}` and `{exposed}` "
                    f"to the backend tool `{backend}`"
                )
            to_exposed[backend] = exposed
        if any(not rule["tools"] for rule in config["require"]):
            raise ConfigError("invalid config: a `require` rule names no tools")
        patterns = config["allow"] + config["deny"] + config["hide"]
        patterns += [pattern for rule in config["require"] for pattern in rule["tools"]]
        if any(not p for p in patterns + list(config["pin_arguments"]) + list(config["strip_arguments"])):
            raise ConfigError("invalid config: an empty tool pattern")
        self.allow = config["allow"]
        self.deny = config["deny"]
        self.hide = config["hide"]
        self.hide_denied = config["hide_denied"]
        self.to_backend = config["rename"]
        self.to_exposed = to_exposed
        # Maps are BTreeMaps in Rust: patterns and argument names apply sorted.
        self.pin = [(p, sorted(args.items())) for p, args in sorted(config["pin_arguments"].items())]
        self.strip = sorted(config["strip_arguments"].items())
        self.require = config["require"]

    def is_noop(self) -> bool:
        return not (self.allow or self.deny or self.hide or self.to_backend or self.pin or self.strip or self.require)

    def backend_name(self, exposed: str):
        """The backend tool a client's name refers to; `None` when the name is
        not exposed (it is a renamed tool's backend name)."""
        if exposed in self.to_backend:
            return self.to_backend[exposed]
        return None if exposed in self.to_exposed else exposed

    def exposed_name(self, backend: str):
        """The name a backend tool is shown under; `None` when another tool
        took its name through `rename`."""
        if backend in self.to_exposed:
            return self.to_exposed[backend]
        return None if backend in self.to_backend else backend

    def access(self, exposed: str, backend: str, msg):
        """`None` (allowed), `HIDDEN`, or a `Denial`. `msg.principal` is read
        only when a `require` rule covers the tool."""

        def matches(pattern: str) -> bool:
            return glob_matches(pattern, exposed) or glob_matches(pattern, backend)

        if any(map(matches, self.hide)):
            return HIDDEN
        for pattern in self.deny:
            if matches(pattern):
                return Denial(f"matches deny pattern `{pattern}`")
        if self.allow and not any(map(matches, self.allow)):
            return Denial("matches no allow pattern")
        for rule in self.require:
            if any(map(matches, rule["tools"])):
                denial = refuses(rule, msg.principal)
                if denial is not None:
                    return denial
        return None

    def listed(self, access) -> bool:
        if access is None:
            return True
        if access is HIDDEN:
            return False
        return not self.hide_denied

    def pinned(self, exposed: str, backend: str):
        return [
            pair
            for pattern, arguments in self.pin
            if glob_matches(pattern, exposed) or glob_matches(pattern, backend)
            for pair in arguments
        ]

    def stripped(self, exposed: str, backend: str):
        return [
            name
            for pattern, names in self.strip
            if glob_matches(pattern, exposed) or glob_matches(pattern, backend)
            for name in names
        ]


def unknown_tool(name: str) -> Reject:
    return Reject(RpcError.INVALID_PARAMS, f"Unknown tool: {name}")


def remove_argument(tool: dict, name: str) -> bool:
    """Removes an argument from a tool's input schema (`properties` and
    `required`); whether the schema named it."""
    schema_value = tool["inputSchema"]
    if not isinstance(schema_value, dict):
        return False
    found = False
    properties = schema_value.get("properties")
    if isinstance(properties, dict) and name in properties:
        del properties[name]
        found = True
    required = schema_value.get("required")
    if isinstance(required, list):
        kept = [item for item in required if item != name or not isinstance(item, str)]
        if len(kept) != len(required):
            schema_value["required"] = kept
            found = True
    return found


def write_tool_call(params: dict) -> str:
    pairs = [("name", params["name"])]
    if params["arguments"] is not None:
        pairs.append(("arguments", params["arguments"]))
    pairs.extend(sorted(params["extra"].items()))
    return schema.dumps_struct(pairs)


def write_tool(tool: dict) -> str:
    pairs = [("name", tool["name"])]
    if tool["description"] is not None:
        pairs.append(("description", tool["description"]))
    if tool["inputSchema"] is not None:
        pairs.append(("inputSchema", tool["inputSchema"]))
    pairs.extend(sorted(tool["extra"].items()))
    return schema.dumps_struct(pairs)


def write_tools_list(result: dict) -> str:
    tools = "[" + ",".join(write_tool(tool) for tool in result["tools"]) + "]"
    extra = schema.dumps_struct(sorted(result["extra"].items()))
    return '{"tools":' + tools + ("," + extra[1:] if len(extra) > 2 else "}")


class ToolPolicy(Plugin):
    name = "tool-policy"
    version = "0.1.0"

    def init(self, config):
        self.policy = Policy(config)
        self.noop = self.policy.is_noop()

    # Two handlers, so the manifest asks for exactly these two: the plugin is
    # never called for call results or list requests.
    @on_request("tools/call")
    def on_call(self, msg):
        if self.noop or msg.direction is not Direction.TO_SERVER:
            return PASS
        return self.call(msg)

    @on_response("tools/list")
    def on_list(self, msg):
        if self.noop or msg.direction is not Direction.TO_CLIENT:
            return PASS
        return self.list(msg)

    def call(self, msg):
        policy = self.policy
        # The host names the tool (no name for params with a duplicate or
        # missing `name`, which the strict parse below rejects). A tool the
        # policy allows and neither renames nor edits passes without its params
        # being copied into the plugin or parsed; checking the arguments is the
        # backend's job.
        exposed = msg.subject
        if exposed is not None and self.passes_untouched(exposed, msg):
            return PASS
        try:
            # Strict parsing: a duplicate `name` is an error here rather than a
            # guess at which one the backend would read.
            params = schema.parse("null" if msg.payload is None else msg.payload, TOOL_CALL)
        except schema.SchemaError as err:
            return Reject(RpcError.INVALID_PARAMS, f"invalid tools/call params: {err}")
        exposed = params["name"]
        backend = policy.backend_name(exposed)
        if backend is None:
            return unknown_tool(exposed)
        access = policy.access(exposed, backend, msg)
        if access is HIDDEN:
            return unknown_tool(exposed)
        if access is not None:
            data = {"plugin": "tool-policy", "tool": exposed}
            if access.required is not None:
                data["required"] = access.required
            return Reject(
                DENIED,
                f"tool `{exposed}` is denied by tool-policy: it {access.why}",
                RawJson(schema.dumps(data)),
            )

        stripped = policy.stripped(exposed, backend)
        pinned = policy.pinned(exposed, backend)
        # Arguments the policy touches are always re-serialized, even when
        # unchanged, so a duplicate key cannot smuggle a second value past it.
        rewrite = backend != exposed or bool(stripped) or bool(pinned)
        if stripped or pinned:
            if params["arguments"] is None:
                params["arguments"] = {}
            arguments = params["arguments"]
            for name in stripped:
                arguments.pop(name, None)
            for name, value in pinned:
                arguments[name] = value
        params["name"] = backend
        return Rewrite(write_tool_call(params)) if rewrite else PASS

    def passes_untouched(self, exposed, msg):
        policy = self.policy
        return (
            policy.backend_name(exposed) == exposed
            and policy.access(exposed, exposed, msg) is None
            and not policy.stripped(exposed, exposed)
            and not policy.pinned(exposed, exposed)
        )

    def list(self, msg):
        policy = self.policy
        try:
            result = schema.parse("null" if msg.payload is None else msg.payload, TOOLS_LIST)
        except schema.SchemaError as err:
            # Fail closed: a list we cannot read could show hidden tools.
            return Reject(RpcError.INTERNAL_ERROR, f"tool-policy could not read the tools/list result: {err}")
        changed = False
        kept = []
        for tool in result["tools"]:
            backend = tool["name"]
            exposed = policy.exposed_name(backend)
            if exposed is None or not policy.listed(policy.access(exposed, backend, msg)):
                changed = True
                continue
            removed = False
            for name in policy.stripped(exposed, backend):
                removed |= remove_argument(tool, name)
            for name, _ in policy.pinned(exposed, backend):
                removed |= remove_argument(tool, name)
            if exposed != backend:
                tool["name"] = exposed
                removed = True
            changed |= removed
            kept.append(tool)
        if not changed:
            return PASS
        result["tools"] = kept
        return Rewrite(write_tools_list(result))
