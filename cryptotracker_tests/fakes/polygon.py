"""A small fake Polygon REST server on 127.0.0.1 speaking the real aggregates wire format (with next_url
pagination), for the real polygon-api-client."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pandas as pd


class FakePolygon:
    """Serves ``bars[ticker]`` (a DataFrame of ohlcv with a UTC timestamp column) page by page.

    ``page_size`` bars per page; ``script`` maps a request number (1-based) to an HTTP status to answer instead
    (e.g. {1: 429} → first request rate-limited); ``fail_always`` answers every request with that status.
    """

    def __init__(self, bars: dict[str, pd.DataFrame] | None = None, page_size: int = 2, script=None,
                 fail_always: int | None = None, error_body: dict | None = None, raw_pages: list | None = None,
                 retry_after: str = "0"):
        self.bars = bars or {}
        self.page_size = page_size
        self.script = dict(script or {})
        self.fail_always = fail_always
        self.error_body = error_body
        self.raw_pages = raw_pages  # verbatim JSON pages: the first without a cursor, the next for next_url
        self.retry_after = retry_after  # the Retry-After header of a 429 answer
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                fake._handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def _send(self, handler, status: int, body: dict, headers: dict | None = None):
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            handler.send_header(k, v)
        handler.end_headers()
        handler.wfile.write(data)

    def _handle(self, handler):
        url = urlparse(handler.path)
        query = parse_qs(url.query)
        with self._lock:
            n = len(self.requests) + 1
            self.requests.append({"path": url.path, "query": query, "auth": handler.headers.get("Authorization")})
        status = self.fail_always or self.script.get(n)
        if status:
            headers = {"Retry-After": self.retry_after} if status == 429 else None
            return self._send(handler, status, {"status": "ERROR", "error": f"fake {status}"}, headers)
        if self.error_body is not None:
            return self._send(handler, 200, self.error_body)
        if self.raw_pages is not None:
            return self._send(handler, 200, self.raw_pages[1 if "cursor" in query else 0])
        parts = url.path.split("/")
        # /v2/aggs/ticker/{ticker}/range/{mult}/{span}/{from}/{to}
        if len(parts) < 10 or parts[1:4] != ["v2", "aggs", "ticker"]:
            return self._send(handler, 404, {"status": "NOT_FOUND"})
        ticker, mult, span, frm, to = parts[4], int(parts[6]), parts[7], int(parts[8]), int(parts[9])
        df = self.bars.get(ticker)
        cursor = int(query.get("cursor", ["0"])[0])
        if df is None or df.empty:
            return self._send(handler, 200, {"ticker": ticker, "queryCount": 0, "resultsCount": 0, "adjusted": True,
                                             "status": "OK", "request_id": f"r{n}"})
        ms = (df["timestamp"].astype("int64") // 1_000_000)
        sel = df[(ms >= frm) & (ms <= to)]
        page = sel.iloc[cursor:cursor + self.page_size]
        results = [
            {"v": float(r.volume), "vw": float(r.close), "o": float(r.open), "c": float(r.close), "h": float(r.high),
             "l": float(r.low), "t": int(r.timestamp.value // 1_000_000), "n": 1}
            for r in page.itertuples()
        ]
        body = {"ticker": ticker, "queryCount": len(results), "resultsCount": len(results), "adjusted": True,
                "status": "OK", "request_id": f"r{n}", "results": results}
        if cursor + self.page_size < len(sel):
            # Like the real API: an absolute next_url on api.polygon.io; the client keeps only path + query.
            body["next_url"] = (f"https://api.polygon.io/v2/aggs/ticker/{ticker}/range/{mult}/{span}/{frm}/{to}"
                                f"?cursor={cursor + self.page_size}")
        self._send(handler, 200, body)


def fixture_bars(fixtures_dir) -> pd.DataFrame:
    """The bars of the shared Polygon fixture pages as a DataFrame (ticker X:BTCUSD)."""
    rows = []
    for name in ("polygon_aggs_page1.json", "polygon_aggs_page2.json"):
        rows += json.loads((fixtures_dir / name).read_text())["results"]
    return pd.DataFrame(
        {"timestamp": pd.to_datetime([r["t"] for r in rows], unit="ms", utc=True),
         "open": [r["o"] for r in rows], "high": [r["h"] for r in rows], "low": [r["l"] for r in rows],
         "close": [r["c"] for r in rows], "volume": [r["v"] for r in rows]}
    )
