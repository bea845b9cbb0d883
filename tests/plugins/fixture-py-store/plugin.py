"""Fixture: the `store` API through the real component glue. A call to
`incr_py` increments `n` (and writes it to `last`), answering
`structuredContent: {"count": N, "last": "N"}`; a store error is answered as
`{"error": KIND, "detail": TEXT or None}`."""

from interpose_plugin import Plugin, Respond, StoreError, store, tool_call


class FixturePyStore(Plugin):
    name = "fixture-py-store"

    @tool_call
    def count(self, call, msg):
        if call is None or call.name != "incr_py":
            return None
        try:
            count = store.increment("n", 1, ttl_ms=600_000)
            store.set("last", str(count))
            answer = {"count": count, "last": store.get("last").decode()}
        except StoreError as error:
            answer = {"error": error.kind, "detail": error.detail}
        return Respond({"content": [], "structuredContent": answer})
