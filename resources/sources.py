"""Market data clients without Dagster: Polygon REST aggregates, a folder of candle files, the synthetic market.

Each returns raw candles (``symbol, timestamp, open, high, low, close, volume``; timestamp = bar open, UTC) for
one symbol, timeframe and [start, end). Validation, suspect flags and storage happen downstream.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cryptotracker_assets.core.config import Tier, Timeframe
from cryptotracker_assets.core.ohlc import OHLC_COLUMNS, aggregate_bars, empty_bars
from cryptotracker_assets.core.synthetic import generate_range


class MarketDataError(RuntimeError):
    """A source failed for a symbol/timeframe/range; the message names them (never a secret)."""


# ---------------------------------------------------------------------------------------------------------------
# Polygon
# ---------------------------------------------------------------------------------------------------------------

POLYGON_SPANS = {
    Timeframe.M1: (1, "minute"),
    Timeframe.M5: (5, "minute"),
    Timeframe.M15: (15, "minute"),
    Timeframe.H1: (1, "hour"),
    Timeframe.D1: (1, "day"),
}


class TransientHTTPError(Exception):
    def __init__(self, status: int, retry_after: float | None, page: int = 1):
        super().__init__(f"HTTP {status} on page {page}")
        self.status = status
        self.retry_after = retry_after
        self.page = page


class PolygonAPIError(Exception):
    """An error body (``{"status": "ERROR", ...}``) or a non-retryable HTTP status."""


class BadPageError(Exception):
    """An HTTP 200 answer that is not a whole aggregates page: a body that is not a JSON object (truncated JSON, a
    proxy's HTML page), or a page without bars that still points to a next one. polygon-api-client would end the
    pagination there and return a partial range as if complete, so the fetch retries it like a 5xx."""

    def __init__(self, page: int, reason: str):
        super().__init__(f"page {page}: {reason}")
        self.page = page
        self.reason = reason


def _snippet(text: str, n: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= n else flat[:n] + "…"


def check_page(data: bytes, content_type: str | None, page: int, loads: Callable[[str], object] = json.loads) -> dict:
    """The decoded body of a 200 aggregates page, or :class:`BadPageError` / :class:`PolygonAPIError`.

    A page must be a JSON object; ``{"status": "ERROR"}`` is an API error (not retried); ``results``, when
    present, is a list of objects; a page with no (or empty) ``results`` but a ``next_url`` is a page missing in
    the middle of the range. A page with neither is a range without trades (an empty result, not an error).
    """
    kind = content_type or "no content type"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadPageError(page, f"body is not UTF-8 ({kind}, {len(data)} bytes)") from None
    try:
        body = loads(text)
    except ValueError as exc:
        raise BadPageError(page, f"body is not JSON ({kind}, {len(data)} bytes: {exc}; starts {_snippet(text)!r})") \
            from None
    if not isinstance(body, dict):
        raise BadPageError(page, f"body is JSON {type(body).__name__}, not an object ({kind}, {len(data)} bytes)")
    if str(body.get("status", "")).upper() == "ERROR":
        raise PolygonAPIError(str(body.get("error") or body.get("message") or "error status"))
    results = body.get("results")
    if results is not None and not (isinstance(results, list) and all(isinstance(r, dict) for r in results)):
        raise BadPageError(page, f"`results` is not a list of bar objects ({type(results).__name__})")
    if not results and body.get("next_url"):
        raise BadPageError(page, "no `results` but a `next_url` (a page missing in the middle of the range)")
    return body


class RateLimiter:
    """At least ``min_interval_s`` between calls and at most ``max_per_min`` calls in any 60 s (0 = unlimited)."""

    def __init__(self, min_interval_s: float, max_per_min: int, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.min_interval_s = min_interval_s
        self.max_per_min = max_per_min
        self.clock = clock
        self.sleep = sleep
        self._calls: deque[float] = deque()
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = self.clock()
            if self._calls and now - self._calls[-1] < self.min_interval_s:
                self.sleep(self.min_interval_s - (now - self._calls[-1]))
                now = self.clock()
            if self.max_per_min:
                while self._calls and now - self._calls[0] >= 60.0:
                    self._calls.popleft()
                if len(self._calls) >= self.max_per_min:
                    self.sleep(60.0 - (now - self._calls[0]))
                    now = self.clock()
                    while self._calls and now - self._calls[0] >= 60.0:
                        self._calls.popleft()
            self._calls.append(now)


class _GuardedPool:
    """Wraps the client's urllib3 pool: rate limit every HTTP call (pages included), surface 429/5xx, error bodies
    and 200 bodies that are not whole pages (:func:`check_page`) as exceptions so the fetch can retry with
    backoff; no urllib3-level retries. Pages are counted per thread from :meth:`begin` (one paginated fetch)."""

    def __init__(self, pool, limiter: RateLimiter, timeout, loads: Callable[[str], object] = json.loads):
        self._pool = pool
        self._limiter = limiter
        self._timeout = timeout
        self._loads = loads
        self._page = threading.local()
        self.calls = 0

    def begin(self) -> None:
        """A new paginated fetch starts on this thread: the next request is its page 1."""
        self._page.n = 0

    def request(self, method, url, **kwargs):
        self._limiter.wait()
        self.calls += 1
        page = getattr(self._page, "n", 0) + 1
        self._page.n = page
        kwargs.setdefault("timeout", self._timeout)
        kwargs["retries"] = False
        resp = self._pool.request(method, url, **kwargs)
        if resp.status == 429 or resp.status >= 500:
            retry_after = resp.headers.get("Retry-After")
            try:
                ra = float(retry_after) if retry_after is not None else None
            except ValueError:
                ra = None
            raise TransientHTTPError(resp.status, ra, page)
        if resp.status == 200:
            check_page(resp.data, resp.headers.get("Content-Type"), page, self._loads)
        elif resp.status >= 400:
            try:
                body = json.loads(resp.data.decode("utf-8"))
                detail = body.get("error") or body.get("message") or body.get("status")
            except (ValueError, AttributeError):
                detail = None
            raise PolygonAPIError(f"HTTP {resp.status}" + (f": {detail}" if detail else ""))
        return resp

    def __getattr__(self, name):
        return getattr(self._pool, name)


@dataclass
class PolygonBarsClient:
    """Polygon REST aggregates through polygon-api-client, for tickers like ``X:BTCUSD``.

    Pagination (``next_url``) is followed to the end by ``list_aggs``; 429/5xx, network errors and 200 pages that
    are not whole pages (:func:`check_page`: the client would end pagination there and return a partial range)
    are retried ``retries`` times after ``retry_delays_s`` plus jitter, a ``Retry-After`` capped at
    ``max_retry_after_s`` (the whole range is re-fetched, which is idempotent), then raise
    :class:`MarketDataError` naming symbol, timeframe, range, page and reason; calls are rate-limited. The API
    key is sent as a header by the client and never appears in messages.
    """

    api_key: str = field(repr=False)
    base_url: str = "https://api.polygon.io"
    retries: int = 5
    retry_delays_s: tuple[float, ...] = (0.1, 0.5, 1, 2, 4)
    min_call_interval_s: float = 0.1
    max_requests_per_min: int = 0
    max_retry_after_s: float = 60.0  # data.polygon.max_retry_after_s: a longer Retry-After is capped
    timeout_s: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    jitter: Callable[[float], float] = field(default=lambda d: random.uniform(0, d))
    _client: object = field(default=None, init=False, repr=False)
    _pool: _GuardedPool | None = field(default=None, init=False, repr=False)

    def __post_init__(self):
        if not self.api_key:
            raise MarketDataError("polygon: no API key (set POLYGON_API_KEY)")

    def _rest(self):
        if self._client is None:
            import urllib3
            from polygon import RESTClient

            client = RESTClient(api_key=self.api_key, base=self.base_url.rstrip("/"), retries=0,
                                connect_timeout=self.timeout_s, read_timeout=self.timeout_s)
            limiter = RateLimiter(self.min_call_interval_s, self.max_requests_per_min, sleep=self.sleep)
            timeout = urllib3.Timeout(connect=self.timeout_s, read=self.timeout_s)
            self._pool = _GuardedPool(client.client, limiter, timeout, loads=client.json.loads)
            client.client = self._pool
            self._client = client
        return self._client

    @property
    def calls(self) -> int:
        return self._pool.calls if self._pool else 0

    def _redact(self, text: str) -> str:
        return text.replace(self.api_key, "***") if self.api_key else text

    def fetch(self, symbol: str, ticker: str, timeframe: Timeframe | str, start: pd.Timestamp,
              end: pd.Timestamp) -> pd.DataFrame:
        import urllib3.exceptions
        from polygon.exceptions import BadResponse

        tf = Timeframe(timeframe)
        mult, span = POLYGON_SPANS[tf]
        from_ms = int(start.value // 1_000_000)
        to_ms = int(end.value // 1_000_000) - 1  # Polygon's `to` is inclusive
        what = f"polygon: {symbol} ({ticker}) {tf.value} [{start.isoformat()}, {end.isoformat()})"
        client = self._rest()
        last_error = ""
        for attempt in range(self.retries + 1):
            self._pool.begin()
            try:
                aggs = list(client.list_aggs(ticker, mult, span, from_ms, to_ms, adjusted=True, sort="asc",
                                             limit=50000))
                break
            except TransientHTTPError as exc:
                last_error = str(exc)
                delay = min(exc.retry_after, self.max_retry_after_s) if exc.retry_after is not None else None
                if exc.retry_after is not None and exc.retry_after > self.max_retry_after_s:
                    last_error += (f" (Retry-After {exc.retry_after:g} s, each wait capped at "
                                   f"data.polygon.max_retry_after_s = {self.max_retry_after_s:g} s)")
            except BadPageError as exc:  # a partial range must never pass as complete: retried like a 5xx
                last_error = f"bad response on {exc}"
                delay = None
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                last_error = f"network error {type(exc).__name__}"
                delay = None
            except PolygonAPIError as exc:
                raise MarketDataError(self._redact(f"{what}: {exc}")) from None
            except BadResponse as exc:
                raise MarketDataError(self._redact(f"{what}: bad response {exc}")) from None
            if attempt == self.retries:
                raise MarketDataError(self._redact(f"{what}: {last_error} after {self.retries} retries "
                                                   "(retry budget spent)"))
            base = self.retry_delays_s[min(attempt, len(self.retry_delays_s) - 1)]
            self.sleep(max(base, delay or 0.0) + self.jitter(base))
        rows = [
            (a.timestamp, a.open, a.high, a.low, a.close, a.volume)
            for a in aggs
            if a.timestamp is not None
        ]
        if not rows:
            return empty_bars()
        df = pd.DataFrame(rows, columns=["t", "open", "high", "low", "close", "volume"])
        df.insert(0, "symbol", symbol)
        df.insert(1, "timestamp", pd.to_datetime(df.pop("t"), unit="ms", utc=True))
        df = df[(df["timestamp"] >= start) & (df["timestamp"] < end)]
        return df[OHLC_COLUMNS].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class FilesBarsReader:
    """A folder of Parquet/CSV candle files, one symbol per file named ``<SYMBOL>.parquet`` or ``<SYMBOL>.csv``
    (the layout of ``../shared/data/README.md``). Coarser timeframes are aggregated from the file's bars; a
    timeframe finer than the file's is an error; a symbol without a file has no data."""

    folder: str
    _cache: dict[str, pd.DataFrame] = field(default_factory=dict, init=False, repr=False)

    def path_for(self, symbol: str) -> Path | None:
        for ext in (".parquet", ".csv"):
            p = Path(self.folder) / f"{symbol}{ext}"
            if p.exists():
                return p
        return None

    def _load(self, symbol: str) -> pd.DataFrame | None:
        if symbol in self._cache:
            return self._cache[symbol]
        if not Path(self.folder).is_dir():
            raise MarketDataError(f"files: folder {self.folder} does not exist")
        path = self.path_for(symbol)
        if path is None:
            return None
        try:
            if path.suffix == ".parquet":
                df = pd.read_parquet(path)
            else:
                # round_trip: every price equals the file's decimal text exactly (the default parser is off in
                # the last digits for ~20 % of real prices)
                df = pd.read_csv(path, float_precision="round_trip")
        except Exception as exc:
            raise MarketDataError(f"files: {path} (symbol {symbol}) is not a readable {path.suffix[1:]} file: "
                                  f"{type(exc).__name__}: {exc}") from None
        missing = [c for c in OHLC_COLUMNS if c not in df.columns]
        if missing:
            raise MarketDataError(f"files: {path} (symbol {symbol}) lacks column(s) {missing}")
        if path.suffix == ".csv" or not pd.api.types.is_datetime64_any_dtype(df["timestamp"]):
            df["timestamp"] = pd.to_datetime(df["timestamp"], utc=False, errors="coerce", format="ISO8601")
        other = df["symbol"].astype(str) != symbol
        if other.any():
            raise MarketDataError(f"files: {path} holds rows for symbol {df.loc[other, 'symbol'].iloc[0]!r}, "
                                  f"expected only {symbol!r}")
        self._cache[symbol] = df[OHLC_COLUMNS]
        return self._cache[symbol]

    @staticmethod
    def native_minutes(df: pd.DataFrame) -> int:
        ts = df["timestamp"].dropna().sort_values().drop_duplicates()
        if len(ts) < 2:
            return 1
        return int(ts.diff().dropna().mode().iloc[0] / pd.Timedelta(minutes=1))

    def fetch(self, symbol: str, timeframe: Timeframe | str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        tf = Timeframe(timeframe)
        df = self._load(symbol)
        if df is None or df.empty:
            return empty_bars()
        native = self.native_minutes(df)
        if tf.minutes < native or tf.minutes % native:
            raise MarketDataError(f"files: {symbol} has {native}-minute bars; {tf.value} cannot be built from them")
        ts = df["timestamp"]
        if isinstance(ts.dtype, pd.DatetimeTZDtype):
            sel = df[(ts >= start) & (ts < end)]
        else:  # naive or unparsed timestamps are passed on for validation to reject, within the day's range
            naive = pd.to_datetime(ts, errors="coerce")
            sel = df[(naive >= start.tz_localize(None)) & (naive < end.tz_localize(None)) | naive.isna()]
            return sel.reset_index(drop=True)
        if tf.minutes != native:
            sel = aggregate_bars(sel, tf)
        return sel.reset_index(drop=True)


# ---------------------------------------------------------------------------------------------------------------
# Synthetic
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticBars:
    """The deterministic synthetic market (embedded default)."""

    market_symbol: str
    market_tier: Tier

    def fetch(self, symbol: str, tier: Tier, timeframe: Timeframe | str, start: pd.Timestamp,
              end: pd.Timestamp) -> pd.DataFrame:
        return generate_range(symbol, tier, timeframe, start, end, self.market_symbol, self.market_tier)
