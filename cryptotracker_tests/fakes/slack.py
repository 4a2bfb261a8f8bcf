"""A small fake Slack Web API on 127.0.0.1 for the real slack_sdk client (``SlackNotifier(base_url=...)``):
``POST /api/chat.postMessage`` with a JSON or form body, answered with the shared wire-format fixture
(``slack_post_message_ok.json``) or, while ``error`` is set, with ``{"ok": false, "error": ...}`` (HTTP 200, as
Slack answers a refused post). ``statuses``: HTTP statuses to answer the next posts with (e.g. ``[500]``: one
server error, then ok). ``per_channel_s``: Slack's rate limit — a second post to a channel within that many
seconds is answered HTTP 429 ``ratelimited`` with a ``Retry-After`` header."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import parse_qs

from cryptotracker_tests.fakes.loopback import LoopbackServer


class FakeSlack(LoopbackServer):
    """Records every ``chat.postMessage`` (channel, text, auth) and answers ok (``posts``), or ``error``
    (``refused``)."""

    def __init__(self, ok_body: dict, error: str | None = None):
        self.ok_body = ok_body
        self.error = error
        self.posts: list[dict] = []  # the posts answered ok
        self.refused: list[dict] = []  # the posts answered with ``error``
        self.on_post = None  # called with each accepted post before it is answered (tests: "meanwhile, …")
        self.statuses: list[int] = []  # the next posts are answered with these HTTP statuses (5xx: server errors)
        self.per_channel_s: float | None = None  # Slack's per-channel rate limit; None: unlimited
        self.limited: list[dict] = []  # the posts answered 429
        self.errored: list[dict] = []  # the posts answered with a ``statuses`` status
        self._last: dict[str, float] = {}
        super().__init__(("POST",))

    @classmethod
    def from_fixtures(cls, fixtures_dir: Path, error: str | None = None) -> "FakeSlack":
        return cls(json.loads((fixtures_dir / "slack_post_message_ok.json").read_text()), error)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    @property
    def texts(self) -> list[str]:
        with self._lock:
            return [p["text"] for p in self.posts]

    def _handle(self, handler) -> None:
        raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0)).decode()
        if handler.path != "/api/chat.postMessage":
            return self._answer(handler, 404, {"ok": False, "error": "unknown_method"})
        if "json" in (handler.headers.get("Content-Type") or ""):
            body = json.loads(raw)
        else:
            body = {k: v[0] for k, v in parse_qs(raw).items()}
        blocks = body.get("blocks")
        if isinstance(blocks, str):  # a form body carries the blocks as JSON text
            blocks = json.loads(blocks)
        post = {"channel": body.get("channel"), "text": body.get("text"), "blocks": blocks,
                "auth": handler.headers.get("Authorization")}
        with self._lock:
            if self.statuses:
                status = self.statuses.pop(0)
                self.errored.append(post)
                return self._answer(handler, status, {"ok": False, "error": "internal_error"})
            now = time.monotonic()
            last = self._last.get(post["channel"])
            if self.per_channel_s is not None and last is not None and now - last < self.per_channel_s:
                self.limited.append(post)
                return self._answer(handler, 429, {"ok": False, "error": "ratelimited"},
                                    {"Retry-After": str(max(1, round(self.per_channel_s)))})
            self._last[post["channel"]] = now
            if self.error is not None:
                self.refused.append(post)
                return self._answer(handler, 200, {"ok": False, "error": self.error})
            self.posts.append(post)
        if self.on_post is not None:
            self.on_post(post)
        self._answer(handler, 200, {**self.ok_body, "channel": body.get("channel")})

    @staticmethod
    def _answer(handler, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        for k, v in (headers or {}).items():
            handler.send_header(k, v)
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
