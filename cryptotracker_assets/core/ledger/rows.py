"""The ledger's rows (SPEC §4, §5.3): layout, typed frames, idempotent appends and the rows of a stepped position.

The ledger is append-only history: one BUY row per fill (``level`` 0 = the market entry, ≥ 1 = DCA limit fills) and
one SELL row (``level`` −1) per trade group, idempotent on (``trade_group_id``, ``side``, ``level``). Rows record
exactly what :mod:`..exits` (the stepper and its cost functions) produced; nothing here prices a fill.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..common import UTC_NS, utc
from ..config import Config, Strategy, Tier
from ..exits import ExitReason, PositionState
from ..universe import Universe
from .enums import FillKind, Side, TradeOutcome
from .ids import trade_group_id

SELL_LEVEL = -1


class LedgerError(ValueError):
    """A ledger that breaks the row rules of SPEC §4/§5.3 (names the trade group and the rule)."""


# ---------------------------------------------------------------------------------------------------------------
# Row layout (SPEC §5.3)
# ---------------------------------------------------------------------------------------------------------------

# (column, dtype, description). §5.3 columns first; then the cycle point that wrote the row and the parameters
# frozen at entry (repeated on every row of a group) so positions, reservations and the limiter's tp rule are
# derivable from the ledger alone and a simulator entry can be rebuilt from it.
LEDGER_SCHEMA: tuple[tuple[str, str, str], ...] = (
    ("trade_group_id", "object", "SPEC §0.3 id of the trade group, on every row."),
    ("side", "object", "BUY (one row per fill) or SELL (the one closing row)."),
    ("fill_kind", "object", "MARKET (level 0 entry, every exit) or LIMIT (DCA levels ≥ 1)."),
    ("level", "int64", "Grid level of a BUY (0 = market entry); −1 on the SELL row, never null."),
    ("symbol", "object", "Universe symbol."),
    ("tier", "object", "tier(symbol) at entry: large_cap, mid_cap, small_cap or memecoin."),
    ("strategy", "object", "DCA, SWING or CHANNEL."),
    ("scan_id", "object", "SPEC §0.3 scan_id of the TAKE decision that opened the group."),
    ("bar_time", UTC_NS, "Open time of the bar the fill happened on (T for strategy-shift/manual/no-data closes)."),
    ("raw_price", "float64", "Price before slippage (USD per coin)."),
    ("fill_price", "float64", "Price after slippage (USD per coin)."),
    ("qty", "float64", "Coins bought (BUY) or sold (SELL: the whole position)."),
    ("size_usd", "float64", "USD invested by this BUY (g = G / levels); null on SELL."),
    ("fee_usd", "float64", "This row's fee only (USD)."),
    ("slippage_usd", "float64", "|fill − raw| × qty of this row (USD)."),
    ("avg_entry", "float64", "Average entry A in force after this BUY / on the exit bar (USD per coin)."),
    ("take_profit_price", "float64", "Take-profit level in force (USD per coin); null when disabled."),
    ("stop_price", "float64", "Static stop level in force (USD per coin); null when disabled."),
    ("trail_price", "float64", "Armed trailing level in force (USD per coin); null when not armed."),
    ("exit_reason", "object", "SPEC §0.4 exit_reason on the SELL row; null on BUY rows."),
    ("pnl_usd", "float64", "Net P&L of the group (USD) on the SELL row; null on BUY rows."),
    ("pnl_pct", "float64", "Net P&L / Σ filled size (fraction) on the SELL row; null on BUY rows."),
    ("outcome", "object", "WIN (net > 0) or LOSS on the SELL row; null on BUY rows."),
    ("high_water", "float64", "High-water mark H on the exit bar (SELL); null on BUY rows."),
    ("no_data", "bool", "SELL closed by the no-data rule (§5.2); false on BUY rows."),
    ("config_version", "int64", "Effective config version at entry (SPEC §0.3)."),
    ("cycle_point", UTC_NS, "Cycle point T of the engine tick that wrote this row."),
    ("entry_time", UTC_NS, "Entry time E of the group (open time of the entry bar)."),
    ("group_size_usd", "float64", "Total size G of the group (a DCA grid's total; USD)."),
    ("grid_levels", "int64", "Levels n of the group's grid (1 for SWING/CHANNEL)."),
    ("grid_spacing", "float64", "Grid spacing k (fraction; 0 for a single level)."),
    ("take_profit", "float64", "Effective tp frozen at entry (fraction of A)."),
    ("stop_loss", "float64", "Stop loss frozen at entry, after widening (fraction of A)."),
    ("trailing", "float64", "Trail r frozen at entry (fraction)."),
    ("trail_activation", "float64", "Trail activation a frozen at entry (fraction)."),
    ("max_hold_min", "float64", "Max hold frozen at entry (minutes from E)."),
    ("taker_fee", "float64", "Taker fee frozen at entry (fraction, every fill)."),
    ("slippage", "float64", "Tier slippage frozen at entry (fraction, market fills)."),
)
LEDGER_COLUMNS: tuple[str, ...] = tuple(c for c, _, _ in LEDGER_SCHEMA)
LEDGER_DTYPES: dict[str, str] = {c: d for c, d, _ in LEDGER_SCHEMA}
LEDGER_KEY = ("trade_group_id", "side", "level")
# Columns that are identical on every row of one group.
GROUP_COLUMNS = (
    "symbol",
    "tier",
    "strategy",
    "scan_id",
    "config_version",
    "entry_time",
    "group_size_usd",
    "grid_levels",
    "grid_spacing",
    "take_profit",
    "stop_loss",
    "trailing",
    "trail_activation",
    "max_hold_min",
    "taker_fee",
    "slippage",
)


def empty_ledger() -> pd.DataFrame:
    """A ledger without rows, with the columns and dtypes of :data:`LEDGER_SCHEMA`."""
    return pd.DataFrame({c: pd.Series(dtype=d) for c, d in LEDGER_DTYPES.items()})


def ledger_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows (dicts with exactly :data:`LEDGER_COLUMNS`) as a typed ledger frame, in the given order."""
    rows = list(rows)
    if not rows:
        return empty_ledger()
    for r in rows:
        if set(r) != set(LEDGER_COLUMNS):
            extra, missing = sorted(set(r) - set(LEDGER_COLUMNS)), sorted(set(LEDGER_COLUMNS) - set(r))
            raise LedgerError(f"ledger row with unknown columns {extra} / missing columns {missing}")
    data = {}
    for c, d, _ in LEDGER_SCHEMA:
        values = [r[c] for r in rows]
        if d == UTC_NS:
            data[c] = pd.Series(pd.DatetimeIndex([utc(v, c) for v in values]).as_unit("ns"))
        elif d == "float64":
            data[c] = pd.Series([math.nan if v is None else float(v) for v in values], dtype="float64")
        elif d == "int64":
            data[c] = pd.Series([int(v) for v in values], dtype="int64")
        elif d == "bool":
            data[c] = pd.Series([bool(v) for v in values], dtype="bool")
        else:
            data[c] = pd.Series(values, dtype="object")
    return pd.DataFrame(data, columns=list(LEDGER_COLUMNS))


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if a is None or b is None:
        return a is None and b is None
    return bool(a == b)


def row_key(row: Mapping[str, Any]) -> tuple[str, str, int]:
    """The key (trade_group_id, side, level) of a ledger row."""
    return (row["trade_group_id"], row["side"], int(row["level"]))


def append_rows(ledger: pd.DataFrame, rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Append ``rows`` idempotently on (trade_group_id, side, level); returns a new frame.

    A row whose key is already present with identical values is skipped (a retried tick writes nothing twice); one
    with different values raises :class:`LedgerError` (the ledger is append-only history, never rewritten).
    """
    new = rows if isinstance(rows, pd.DataFrame) else ledger_frame(rows)
    if list(new.columns) != list(LEDGER_COLUMNS):
        raise LedgerError(f"rows must have the ledger columns {list(LEDGER_COLUMNS)}")
    existing: dict[tuple[str, str, int], int] = {
        (t, sd, int(lv)): i
        for i, (t, sd, lv) in enumerate(zip(ledger["trade_group_id"], ledger["side"], ledger["level"]))
    }
    keep: list[int] = []
    seen: dict[tuple[str, str, int], dict[str, Any]] = {}
    for i, rec in enumerate(new.to_dict("records")):
        key = row_key(rec)
        if key in existing:
            old = ledger.iloc[existing[key]].to_dict()
        elif key in seen:
            old = seen[key]
        else:
            seen[key] = rec
            keep.append(i)
            continue
        if not all(_same(old[c], rec[c]) for c in LEDGER_COLUMNS):
            diff = [c for c in LEDGER_COLUMNS if not _same(old[c], rec[c])]
            raise LedgerError(f"{key}: a row with this key exists with different values in {diff}")
    if not keep:
        return ledger.reset_index(drop=True)
    added = new.iloc[keep]
    if ledger.empty:
        return added.reset_index(drop=True)
    return pd.concat([ledger, added], ignore_index=True)


# ---------------------------------------------------------------------------------------------------------------
# Rows from the stepper's events (SPEC §4, §5.3)
# ---------------------------------------------------------------------------------------------------------------


def grid_shape(cfg: Config, strategy: Strategy | str, tier: Tier | str) -> tuple[int, float]:
    """(levels n, spacing k) of a new group: the DCA grid of the tier (§4), one level for SWING/CHANNEL."""
    if Strategy.parse(strategy) is Strategy.DCA:
        grid = cfg.strategies.dca.grid
        return grid.levels.of(tier), grid.spacing.of(tier)
    return 1, 0.0


@dataclass(frozen=True)
class TradeMeta:
    """What the ledger needs about a group beyond the stepper's state: ids, tier, G, grid spacing, config version."""

    trade_group_id: str
    strategy: Strategy
    symbol: str
    tier: Tier
    scan_id: str
    config_version: int
    size_usd: float  # G, the group's total size
    grid_spacing: float

    @classmethod
    def for_entry(
        cls, cfg: Config, strategy: Strategy | str, symbol: str, entry_time: Any, scan: str, size_usd: float
    ) -> "TradeMeta":
        """Meta of a group entering at E = ``entry_time`` with total size G = ``size_usd`` under ``cfg``."""
        s = Strategy.parse(strategy)
        tier = Universe.from_config(cfg).tier(symbol)
        _, spacing = grid_shape(cfg, s, tier)
        return cls(
            trade_group_id=trade_group_id(s, symbol, entry_time),
            strategy=s,
            symbol=symbol,
            tier=tier,
            scan_id=scan,
            config_version=cfg.config_version,
            size_usd=float(size_usd),
            grid_spacing=float(spacing),
        )


def _nan(x: float | None) -> float:
    return math.nan if x is None or not math.isfinite(x) else float(x)


def _group_fields(state: PositionState, meta: TradeMeta, cycle_point: pd.Timestamp) -> dict[str, Any]:
    r = state.rule
    return {
        "trade_group_id": meta.trade_group_id,
        "symbol": meta.symbol,
        "tier": meta.tier.value,
        "strategy": meta.strategy.value,
        "scan_id": meta.scan_id,
        "config_version": int(meta.config_version),
        "cycle_point": cycle_point,
        "entry_time": state.entry_time,
        "group_size_usd": meta.size_usd,
        "grid_levels": len(state.grid_prices) + 1,
        "grid_spacing": meta.grid_spacing,
        "take_profit": float(r.take_profit),
        "stop_loss": float(r.stop_loss),
        "trailing": float(r.trailing),
        "trail_activation": float(r.trail_activation),
        "max_hold_min": float(r.max_hold_minutes),
        "taker_fee": float(state.fee),
        "slippage": float(state.slippage),
    }


def step_rows(state: PositionState, meta: TradeMeta, cycle_point: Any, recorded_fills: int) -> list[dict[str, Any]]:
    """Ledger rows for what the stepper produced since ``recorded_fills`` fills were written.

    BUY rows for ``state.fills[recorded_fills:]`` (with the levels in force after them), then the SELL row if the
    position is closed. Call it right after :meth:`PositionState.open` (``recorded_fills=0``: the level-0 row) and
    after every :func:`~..exits.step` or :func:`~..exits.close_position`, so new fills always come from the last
    stepped bar (their levels are the state's current ones); anything else raises ``ValueError``.
    ``cycle_point`` is the T of the tick writing the rows. Re-running on the same state gives identical rows
    (idempotent through :func:`append_rows`).
    """
    t = utc(cycle_point, "cycle point")
    n = len(state.grid_prices) + 1
    if meta.trade_group_id != trade_group_id(meta.strategy, meta.symbol, state.entry_time):
        raise ValueError(f"{meta.trade_group_id}: does not match the state's entry time {state.entry_time}")
    if state.level_size != meta.size_usd / n:
        raise ValueError(f"{meta.trade_group_id}: level size {state.level_size} is not G / n = {meta.size_usd}/{n}")
    if not 0 <= recorded_fills <= len(state.fills):
        raise ValueError(f"recorded_fills {recorded_fills} outside 0..{len(state.fills)}")
    new = state.fills[recorded_fills:]
    rows: list[dict[str, Any]] = []
    if new:
        last = state.last_time
        expected = state.entry_time if last is None else last
        if any(f.time != expected for f in new):
            raise ValueError(
                f"{meta.trade_group_id}: unrecorded fills from an earlier bar; write rows after every step"
            )
        _, static, trail = state.levels_in_force()
        base = _group_fields(state, meta, t)
        for f in new:
            rows.append(
                {
                    **base,
                    "side": Side.BUY.value,
                    "fill_kind": FillKind.parse(f.fill_kind).value,
                    "level": int(f.level),
                    "bar_time": f.time,
                    "raw_price": float(f.raw_price),
                    "fill_price": float(f.fill_price),
                    "qty": float(f.quantity),
                    "size_usd": float(f.size_usd),
                    "fee_usd": float(f.fee_usd),
                    "slippage_usd": float(f.slippage_usd),
                    "avg_entry": float(state.avg_entry),
                    "take_profit_price": _nan(state.take_profit_price),
                    "stop_price": _nan(static),
                    "trail_price": _nan(trail),
                    "exit_reason": None,
                    "pnl_usd": math.nan,
                    "pnl_pct": math.nan,
                    "outcome": None,
                    "high_water": math.nan,
                    "no_data": False,
                }
            )
    ev = state.exit
    if ev is not None:
        rows.append(
            {
                **_group_fields(state, meta, t),
                "side": Side.SELL.value,
                "fill_kind": FillKind.MARKET.value,
                "level": SELL_LEVEL,
                "bar_time": ev.time,
                "raw_price": float(ev.raw_price),
                "fill_price": float(ev.fill_price),
                "qty": float(ev.quantity),
                "size_usd": math.nan,
                "fee_usd": float(ev.exit_fee_usd),
                "slippage_usd": float(ev.slippage_usd),
                "avg_entry": float(ev.avg_entry),
                "take_profit_price": _nan(ev.take_profit_price),
                "stop_price": _nan(ev.stop_price),
                "trail_price": _nan(ev.trail_price),
                "exit_reason": ExitReason.parse(ev.reason).value,
                "pnl_usd": float(ev.pnl_usd),
                "pnl_pct": float(ev.pnl_ratio),
                "outcome": TradeOutcome.of(ev.pnl_usd).value,
                "high_water": float(ev.high_water),
                "no_data": bool(ev.no_data),
            }
        )
    return rows


# ---------------------------------------------------------------------------------------------------------------
# Rows grouped by trade group (for the validation and the derived views)
# ---------------------------------------------------------------------------------------------------------------


def group_slices(frame: pd.DataFrame, columns: Iterable[str]) -> tuple[dict[str, list], list[tuple[int, int]]]:
    """``frame``'s columns as lists sorted by (trade_group_id, level), and each group's [start, end) slice."""
    f = frame.sort_values(["trade_group_id", "level"], kind="stable")
    cols = {c: f[c].tolist() for c in dict.fromkeys(("trade_group_id", "level", *columns))}
    keys = cols["trade_group_id"]
    bounds, start = [], 0
    for i in range(1, len(keys) + 1):
        if i == len(keys) or keys[i] != keys[start]:
            bounds.append((start, i))
            start = i
    return cols, bounds
