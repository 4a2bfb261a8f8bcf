"""The HTTP server the fake external services share: a threaded server on 127.0.0.1 (a free port), started and
stopped as a context manager, each request handed to the fake's ``_handle(handler)``."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LoopbackServer:
    """Base of the fakes: ``self.server`` on 127.0.0.1 answers the methods in ``methods`` through
    ``self._handle(handler)``; ``with fake:`` serves until the block ends."""

    def __init__(self, methods: tuple[str, ...]) -> None:
        self._lock = threading.Lock()
        fake = self

        def handle(handler: BaseHTTPRequestHandler) -> None:
            fake._handle(handler)

        attrs = {f"do_{m}": handle for m in methods}
        attrs["log_message"] = lambda handler, *args: None  # keep test output clean
        handler_class = type("Handler", (BaseHTTPRequestHandler,), attrs)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        raise NotImplementedError

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
