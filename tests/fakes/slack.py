"""A fake Slack Web API: ``chat.postMessage`` with a bot token, Slack's always-200 envelope.

Slack answers HTTP 200 with ``{"ok": false, "error": ...}`` for refused calls; this fake does the
same, and records each posted message as {channel, text}.
"""

from __future__ import annotations

import json

from tests.fakes.server import FakeServer

TOKEN = "xoxb-fake-0000"


class FakeSlack(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[dict[str, str]] = []

    def handle(self, method, path, headers, body):
        if headers.get("Authorization") != f"Bearer {TOKEN}":
            return 200, {}, {"ok": False, "error": "invalid_auth"}
        if method == "POST" and path == "/api/chat.postMessage":
            message = json.loads(body or b"{}")
            if not message.get("channel"):
                return 200, {}, {"ok": False, "error": "channel_not_found"}
            if not message.get("text"):
                return 200, {}, {"ok": False, "error": "no_text"}
            with self.lock:
                self.messages.append({"channel": message["channel"], "text": message["text"]})
            return 200, {}, {"ok": True, "channel": message["channel"], "ts": f"{len(self.messages)}.000100"}
        return 404, {}, {"ok": False, "error": "unknown_method"}
