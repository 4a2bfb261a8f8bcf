"""The market state of one cycle point: the engine's reader of ``market_regime`` rows (SPEC §8, §9.1)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from ..common import from_ns, ns_column
from ..config import Config, Strategy
from ..regime import BestStrategy, Regime, size_multiplier, vol24h_measure
from .errors import EngineInputError


@dataclass(frozen=True)
class Market:
    """The shared market state of one cycle point, read from its ``market_regime`` row (SPEC §8, §9.1)."""

    regime: Regime
    size_multiplier: float
    best: BestStrategy
    vol24h: float
    enabled: Mapping[Strategy, bool]
    changed: Mapping[Strategy, bool]
    entered_panic: bool
    btc_close: float
    measures: Mapping[str, float]


class MarketRows:
    """The ``market_regime`` rows of a run by cycle point; :meth:`at` checks and caches a row's :class:`Market`."""

    def __init__(self, frame: pd.DataFrame, cfg: Config) -> None:
        self.cfg = cfg
        self.vol_col = f"btc_{vol24h_measure(cfg)}"
        need = ["timestamp", "regime", "size_multiplier", "best_strategy", "btc_close", self.vol_col,
                "entered_panic", *[f"{s.key}_{x}" for s in Strategy for x in ("enabled", "changed")]]
        missing = [c for c in need if c not in frame.columns]
        if missing:
            raise EngineInputError(f"market_regime lacks columns {missing}")
        ts = ns_column(frame["timestamp"], "market_regime.timestamp", EngineInputError)
        if pd.Index(ts).has_duplicates:
            raise EngineInputError("market_regime has more than one row per cycle point")
        self.pos = {int(t): i for i, t in enumerate(ts)}
        self.measures = [c for c in frame.columns if c.startswith("btc_") and c != "btc_close"]
        # column lists (a row through .iloc on a mixed frame costs ~0.5 ms; the values are the same)
        self.cols = {c: frame[c].tolist() for c in dict.fromkeys([*need, *self.measures])}
        self._cache: dict[int, Market] = {}

    def at(self, t_ns: int) -> Market:
        if t_ns in self._cache:
            return self._cache[t_ns]
        i = self.pos.get(t_ns)
        if i is None:
            raise EngineInputError(f"market_regime has no row for cycle point {from_ns(t_ns)}")
        row = {c: v[i] for c, v in self.cols.items()}
        regime = Regime(row["regime"])
        mult = float(row["size_multiplier"])
        if mult != size_multiplier(regime, self.cfg):
            raise EngineInputError(f"market_regime at {from_ns(t_ns)}: size_multiplier {mult} is not the config's "
                                   f"{size_multiplier(regime, self.cfg)} for {regime.value} (another config?)")
        m = Market(
            regime=regime,
            size_multiplier=mult,
            best=BestStrategy(row["best_strategy"]),
            vol24h=float(row[self.vol_col]),
            enabled={s: bool(row[f"{s.key}_enabled"]) for s in Strategy},
            changed={s: bool(row[f"{s.key}_changed"]) for s in Strategy},
            entered_panic=bool(row["entered_panic"]),
            btc_close=float(row["btc_close"]),
            measures={c: float(row[c]) for c in self.measures},
        )
        self._cache[t_ns] = m
        return m
