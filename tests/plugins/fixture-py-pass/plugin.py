"""Fixture: passes every message without reading it (the Python counterpart of
fixture-pass; the SDK's own cost per call)."""

from interpose_plugin import Plugin


class FixturePyPass(Plugin):
    name = "fixture-py-pass"

    def on_request(self, msg):
        return None

    def on_response(self, msg):
        return None

    def on_error(self, msg):
        return None

    def on_notification(self, msg):
        return None
