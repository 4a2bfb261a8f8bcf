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
    def __init__(self, status: int, retry_after: float | None):
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after


class PolygonAPIError(Exception):
    """An error body (``{"status": "ERROR", ...}``) or a non-retryable HTTP status."""


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
    """Wraps the client's urllib3 pool: rate limit every HTTP call (pages included), surface 429/5xx and
    error bodies as exceptions so the fetch can retry with backoff; no urllib3-level retries."""

    def __init__(self, pool, limiter: RateLimiter, timeout):
        self._pool = pool
        self._limiter = limiter
        self._timeout = timeout
        self.calls = 0

    def request(self, method, url, **kwargs):
        self._limiter.wait()
        self.calls += 1
        kwargs.setdefault("timeout", self._timeout)
        kwargs["retries"] = False
        resp = self._pool.request(method, url, **kwargs)
        if resp.status == 429 or resp.status >= 500:
            retry_after = resp.headers.get("Retry-After")
            try:
                ra = float(retry_after) if retry_after is not None else None
            except ValueError:
                ra = None
            raise TransientHTTPError(resp.status, ra)
        if resp.status == 200:
            try:
                body = json.loads(resp.data.decode("utf-8"))
            except ValueError:
                body = None
            if isinstance(body, dict) and str(body.get("status", "")).upper() == "ERROR":
                raise PolygonAPIError(str(body.get("error") or body.get("message") or "error status"))
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

    Pagination (``next_url``) is followed to the end by ``list_aggs``; 429/5xx and network errors are retried
    ``retries`` times after ``retry_delays_s`` plus jitter (the whole range is re-fetched, which is idempotent);
    calls are rate-limited. The API key is sent as a header by the client and never appears in messages.
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
            self._pool = _GuardedPool(client.client, limiter, urllib3.Timeout(connect=self.timeout_s, read=self.timeout_s))
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
            try:
                aggs = list(client.list_aggs(ticker, mult, span, from_ms, to_ms, adjusted=True, sort="asc",
                                             limit=50000))
                break
            except TransientHTTPError as exc:
                last_error = str(exc)
                delay = min(exc.retry_after, self.max_retry_after_s) if exc.retry_after is not None else None
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                last_error = f"network error {type(exc).__name__}"
                delay = None
            except PolygonAPIError as exc:
                raise MarketDataError(self._redact(f"{what}: {exc}")) from None
            except BadResponse as exc:
                raise MarketDataError(self._redact(f"{what}: bad response {exc}")) from None
            if attempt == self.retries:
                raise MarketDataError(f"{what}: {last_error} after {self.retries} retries (retry budget spent)")
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
