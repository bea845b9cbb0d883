from interpose_plugin import Plugin, Reject, Rewrite, RpcError, log, tool_call, tool_result


class Hello(Plugin):
    name = "hello"

    def init(self, config):
        self.deny = set(config.get("deny", ["crash"]))

    @tool_call
    def refuse_denied(self, call, msg):
        if call and call.name in self.deny:
            log.info(f"refused {call.name}")
            return Reject(RpcError.INVALID_PARAMS, f"tool `{call.name}` is not allowed here")

    @tool_result
    def tag(self, result, msg):
        if result.edit_texts(lambda text: "[checked] " + text):
            return Rewrite(result)
