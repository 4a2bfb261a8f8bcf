"""Market data as one abstract resource with three implementations: polygon | synthetic | files."""

from __future__ import annotations

import dagster as dg
import pandas as pd
from pydantic import PrivateAttr

from cryptotracker_assets.core.config import Config, Timeframe
from cryptotracker_assets.core.universe import Universe

from .sources import FilesBarsReader, MarketDataError, PolygonBarsClient, SyntheticBars

__all__ = ["FilesMarketData", "MarketDataError", "MarketDataSource", "PolygonMarketData", "SyntheticMarketData"]


class MarketDataSource(dg.ConfigurableResource):
    """Raw candles for one symbol, timeframe and [start, end) (bar open times, UTC).

    Returns an empty frame when the source has no bars for the symbol (a warning downstream, not a failure);
    raises :class:`MarketDataError` naming symbol/timeframe/range when the source fails.
    """

    def fetch_bars(self, symbol: str, timeframe: Timeframe | str, start: pd.Timestamp, end: pd.Timestamp,
                   cfg: Config) -> pd.DataFrame:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def source_name(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError


class SyntheticMarketData(MarketDataSource):
    """Deterministic synthetic candles per (symbol, UTC day): the embedded default (no keys, no network)."""

    def fetch_bars(self, symbol, timeframe, start, end, cfg):
        universe = Universe.from_config(cfg)
        market = universe.market_symbol
        return SyntheticBars(market, universe.tier(market)).fetch(symbol, universe.tier(symbol), timeframe,
                                                                  start, end)

    @property
    def source_name(self) -> str:
        return "synthetic"


class FilesMarketData(MarketDataSource):
    """A folder of ``<SYMBOL>.parquet`` / ``<SYMBOL>.csv`` candle files (exchange exports, ../shared/data)."""

    folder: str
    _reader: FilesBarsReader | None = PrivateAttr(default=None)

    def fetch_bars(self, symbol, timeframe, start, end, cfg):
        if self._reader is None:
            self._reader = FilesBarsReader(self.folder)
        return self._reader.fetch(symbol, timeframe, start, end)

    @property
    def source_name(self) -> str:
        return "files"


class PolygonMarketData(MarketDataSource):
    """Polygon REST aggregates (polygon-api-client) for ``universe.polygon_ticker``; key from
    ``EnvVar("POLYGON_API_KEY")``, never logged. Retries, delays and rate limits come from ``data.*``."""

    api_key: str
    base_url: str = "https://api.polygon.io"
    timeout_s: float = 30.0
    _client: PolygonBarsClient | None = PrivateAttr(default=None)

    def __repr_args__(self):
        """The key never reaches a repr (logs, tracebacks, metadata)."""
        return [(k, "***" if k == "api_key" else v) for k, v in super().__repr_args__()]

    def client(self, cfg: Config) -> PolygonBarsClient:
        if self._client is None:
            ing = cfg.data.ingest
            self._client = PolygonBarsClient(
                api_key=self.api_key,
                base_url=self.base_url,
                retries=ing.retries,
                retry_delays_s=tuple(ing.retry_delays_s),
                min_call_interval_s=ing.min_call_interval_s,
                max_requests_per_min=cfg.data.polygon.max_requests_per_min,
                max_retry_after_s=cfg.data.polygon.max_retry_after_s,
                timeout_s=self.timeout_s,
            )
        return self._client

    def fetch_bars(self, symbol, timeframe, start, end, cfg):
        ticker = Universe.from_config(cfg).polygon_ticker(symbol)
        return self.client(cfg).fetch(symbol, ticker, timeframe, start, end)

    @property
    def source_name(self) -> str:
        return "polygon"
