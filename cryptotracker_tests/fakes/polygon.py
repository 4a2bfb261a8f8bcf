"""A small fake Polygon REST server on 127.0.0.1 speaking the real aggregates wire format (with next_url
pagination), for the real polygon-api-client."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlparse

import pandas as pd

from cryptotracker_tests.fakes.loopback import LoopbackServer


class FakePolygon(LoopbackServer):
    """Serves ``bars[ticker]`` (a DataFrame of ohlcv with a UTC timestamp column) page by page.

    ``page_size`` bars per page; ``script`` maps a request number (1-based) to an HTTP status to answer instead
    (e.g. {1: 429} → first request rate-limited); ``fail_always`` answers every request with that status.

    ``faults`` maps a page number of one range (1 = the request without a cursor, 2 = the first ``next_url``, …) to
    a broken answer, given the first ``fault_times`` times that page is asked for (None = every time):

    - ``"truncated"``: HTTP 200, ``application/json``, the page's JSON cut in the middle (a consistent length);
    - ``"html"``: HTTP 200, ``text/html``, a proxy's error page;
    - ``"no_results_next"`` / ``"empty_results_next"``: HTTP 200, the page without ``results`` (or with
      ``results: []``) but with its ``next_url`` — the page's bars are skipped;
    - ``"short_read"``: HTTP 200 whose ``Content-Length`` promises more than is sent before the connection closes;
    - ``"429"`` / ``"503"``: that status (with ``Retry-After: retry_after`` on 429).
    """

    FAULTS = ("truncated", "html", "no_results_next", "empty_results_next", "short_read", "429", "503")
    PROXY_PAGE = ("<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n<body><h1>Bad Gateway</h1>"
                  "<p>The proxy server received an invalid response from an upstream server.</p></body></html>\n")

    def __init__(self, bars: dict[str, pd.DataFrame] | None = None, page_size: int = 2, script=None,
                 fail_always: int | None = None, error_body: dict | None = None, raw_pages: list | None = None,
                 retry_after: str = "0", faults: dict[int, str] | None = None, fault_times: int | None = None):
        unknown = set((faults or {}).values()) - set(self.FAULTS)
        if unknown:
            raise ValueError(f"unknown fault(s) {sorted(unknown)}; known: {self.FAULTS}")
        self.faults = dict(faults or {})
        self.fault_times = fault_times
        self.faults_served: dict[int, int] = {}  # page number -> broken answers given
        self.bars = bars or {}
        self.page_size = page_size
        self.script = dict(script or {})
        self.fail_always = fail_always
        self.error_body = error_body
        self.raw_pages = raw_pages  # verbatim JSON pages: the first without a cursor, the next for next_url
        self.retry_after = retry_after  # the Retry-After header of a 429 answer
        self.requests: list[dict] = []
        super().__init__(("GET",))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _send(self, handler, status: int, body: dict | bytes, headers: dict | None = None,
              content_type: str = "application/json", content_length: int | None = None):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data) if content_length is None else content_length))
        for k, v in (headers or {}).items():
            handler.send_header(k, v)
        handler.end_headers()
        handler.wfile.write(data)

    def _fault(self, page: int) -> str | None:
        kind = self.faults.get(page)
        if kind is None:
            return None
        with self._lock:
            served = self.faults_served.get(page, 0)
            if self.fault_times is not None and served >= self.fault_times:
                return None
            self.faults_served[page] = served + 1
        return kind

    def _page(self, handler, page: int, body: dict):
        """Answer one aggregates page, or the fault scripted for its number."""
        kind = self._fault(page)
        if kind is None:
            return self._send(handler, 200, body)
        if kind in ("429", "503"):
            headers = {"Retry-After": self.retry_after} if kind == "429" else None
            return self._send(handler, int(kind), {"status": "ERROR", "error": f"fake {kind}"}, headers)
        if kind == "truncated":
            data = json.dumps(body).encode()
            return self._send(handler, 200, data[: len(data) // 2])
        if kind == "html":
            return self._send(handler, 200, self.PROXY_PAGE.encode(), content_type="text/html; charset=utf-8")
        if kind == "short_read":
            data = json.dumps(body).encode()
            handler.close_connection = True
            return self._send(handler, 200, data[: len(data) // 2], content_length=len(data))
        broken = {k: v for k, v in body.items() if k != "results"}  # no_results_next / empty_results_next
        broken.update(queryCount=0, resultsCount=0)
        if kind == "empty_results_next":
            broken["results"] = []
        if "next_url" not in broken:
            raise AssertionError(f"fault {kind} on page {page}: that page has no next_url (the last page)")
        return self._send(handler, 200, broken)

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
            page = 2 if "cursor" in query else 1
            return self._page(handler, page, self.raw_pages[page - 1])
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
        self._page(handler, cursor // self.page_size + 1, body)


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
