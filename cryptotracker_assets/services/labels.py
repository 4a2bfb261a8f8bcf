"""Training labels of one UTC day against the warehouse (SPEC §11.1), without Dagster.

``training_labels`` is partitioned by the UTC day a label's outcome became final (``final_day``): the labels of day D
are built from the setups that could end in D (setup times from D − the longest hold − the no-data grace − one day),
with outcomes from bars up to the end of D (or the newest stored bar, if earlier), so a day once materialized only
ever gains rows that were final then; rows are appended by ``label_id`` and never pruned.
"""

from __future__ import annotations

import pandas as pd

from ..core.common import utc_days
from ..core.config import Config
from ..core.engine import BarStore
from ..core.features import DAILY_COLUMNS, ML_COLUMNS
from ..core.ml.labels import LABEL_ROW_COLUMNS, build_labels
from ..core.regime import Regime, build_market_regime
from ..core.setups import scan_features, scan_from_features
from ..core.shadows.outcomes import derive_outcomes
from ..core.universe import Universe
from ..core.watermarks import derived_span
from ..storage.warehouse import Warehouse
from .operator import read_ledger

DAY = pd.Timedelta(days=1)


def label_window(cfg: Config, day: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
    """[first setup time, end) of the setups whose outcome may become final on UTC ``day``."""
    span = pd.Timedelta(hours=cfg.exits.max_hold_h) + pd.Timedelta(minutes=cfg.exits.no_data_grace_min) + DAY
    return day - span, day + DAY


def labels_for_day(wh: Warehouse, cfg: Config, day: pd.Timestamp) -> pd.DataFrame:
    """The label rows whose outcome became final on UTC ``day`` (the ``training_labels`` partition)."""
    day = pd.Timestamp(day).tz_convert("UTC").floor("1D")
    start, end = label_window(cfg, day)
    u = Universe.from_config(cfg)
    with wh.snapshot() as con:
        scan = wh.read_slice("scan_history", "timestamp", start, end, con=con)
        regime = wh.read_slice("market_regime", "timestamp", start, end, con=con)
        scan, regime = with_replayed_setups(wh, cfg, scan, regime, start, end, con)
        if scan is None or scan.empty:
            return build_empty(cfg)
        symbols = sorted(set(scan["symbol"]))
        bars = wh.read_bars(cfg.engine.base_timeframe, start, end, symbols, con=con)
        ml = wh.read_slice("features_15m", "timestamp", start - DAY, end, symbols, con=con)
        daily = wh.read_slice("features_daily", "timestamp", start - DAY, end, symbols, con=con)
        ledger = read_ledger(wh, start, end + pd.Timedelta(hours=cfg.exits.max_hold_h) + DAY, con=con)
        shadows = wh.shadow_rows(start, end, con=con)
    if regime is None:
        raise LabelInputError(f"training_labels {day:%Y-%m-%d}: market_regime must be materialized for "
                              f"{start:%Y-%m-%d}..{day:%Y-%m-%d} first")
    # a feature frame not materialized (yet): its features are unknown (NaN), never filled in (SPEC I-18)
    ml = ml if ml is not None else empty_frame(ML_COLUMNS)
    daily = daily if daily is not None else empty_frame(DAILY_COLUMNS)
    outcomes = None
    if shadows.decisions is not None and len(shadows.decisions):
        exits = shadows.exits
        if exits is not None and len(exits):
            exits = exits.loc[pd.DatetimeIndex(exits["closed_at"]) < end]
        outcomes = derive_outcomes(shadows.decisions, exits, shadows.real_sells)
    bars_end = min(end, pd.Timestamp(bars["timestamp"].max()) + pd.Timedelta(minutes=cfg.engine.base_timeframe
                                                                                .minutes)) if len(bars) else end
    current = Regime.parse(regime["regime"].iloc[-1]) if len(regime) else Regime.UNKNOWN
    labels = build_labels(cfg, scan_rows=scan, ledger=ledger, bars=BarStore.from_frame(bars), ml_rows=ml,
                          daily_rows=daily, regime_rows=regime, shadow_outcomes=outcomes, as_of=bars_end,
                          current_regime=current, bars_end=bars_end, tier_of=u.tier)
    return labels.loc[pd.DatetimeIndex(labels["final_day"]) == day].reset_index(drop=True)


def with_replayed_setups(wh: Warehouse, cfg: Config, scan: pd.DataFrame | None, regime: pd.DataFrame | None,
                         start: pd.Timestamp, end: pd.Timestamp, con) -> tuple[pd.DataFrame | None,
                                                                               pd.DataFrame | None]:
    """The scan rows of [start, end) plus, for the UTC days the engine never saw (no scan_history rows) but whose
    base bars are stored, the detectors replayed over those bars — the live chain's functions (scan features,
    market regime, steps 1–3 of the scan), as the backtest runs them (SPEC §11.1 simulated rows)."""
    seen = set() if scan is None or scan.empty else set(pd.DatetimeIndex(scan["timestamp"]).floor("1D"))
    days = [d for d in utc_days(start, end) if d not in seen]
    if not days:
        return scan, regime
    u = Universe.from_config(cfg)
    a, b = max(start, days[0]), min(end, days[-1] + DAY)
    bars = wh.read_bars(cfg.engine.base_timeframe, a - derived_span(cfg), b, sorted(u.tiers), con=con)
    if bars.empty:
        return scan, regime
    active = u.active_symbols
    scan_syms = active if u.market_symbol in active else [*active, u.market_symbol]
    regime_syms = list(dict.fromkeys([u.market_symbol, *cfg.prioritisation.symbols]))
    feats = scan_features(bars[bars["symbol"].isin(scan_syms)], cfg, start=a, end=b, symbols=active)
    reg, _ = build_market_regime(bars[bars["symbol"].isin(regime_syms)], cfg, start=a, end=b)
    replayed = scan_from_features(feats, reg, cfg, start=a, end=b, symbols=active)
    keep = pd.DatetimeIndex(replayed["timestamp"]).floor("1D").isin(days)
    replayed = replayed.loc[keep]
    if regime is not None and len(regime):
        reg = reg.loc[~pd.DatetimeIndex(reg["timestamp"]).isin(pd.DatetimeIndex(regime["timestamp"]))]
    parts = [f for f in (scan, replayed) if f is not None and len(f)]
    regimes = [f for f in (regime, reg) if f is not None and len(f)]
    scan = pd.concat(parts, ignore_index=True) if parts else scan
    regime = pd.concat(regimes, ignore_index=True).sort_values("timestamp").reset_index(drop=True) if regimes \
        else regime
    return scan, regime


def build_empty(cfg: Config) -> pd.DataFrame:
    """No labels (the label columns, no rows)."""
    return pd.DataFrame(columns=list(LABEL_ROW_COLUMNS))


def empty_frame(columns) -> pd.DataFrame:
    """A feature table without rows: UTC times, text symbol, float features."""
    times = ("timestamp", "available_at")
    return pd.DataFrame({c: pd.Series([], dtype="datetime64[ns, UTC]" if c in times else object if c == "symbol"
                                      else bool if c == "warmup" else "float64") for c in columns})


class LabelInputError(RuntimeError):
    """The inputs of a label day are not materialized (names them)."""
