"""The paper-trading ledger: identifiers, row layout, rows from the stepper, and everything derived from it.

SPEC §0.3 (identifiers), §4 (DCA grid rows), §5.3 (ledger rows), §6 (costs), §7.1 (portfolio state), §7.2
(execution checks). Pure python/pandas; never imports dagster.

- The ledger is append-only history: one BUY row per fill (``level`` 0 = the market entry, ≥ 1 = DCA limit fills)
  and one SELL row (``level`` −1) per trade group, idempotent on (``trade_group_id``, ``side``, ``level``).
- Rows record exactly what :mod:`.exits` (the stepper and its cost functions) produced; nothing here prices a fill.
- Positions, cash and the portfolio state are derived from the ledger alone (never from process memory).
- Money in USD (float64, never rounded here); rates and returns are fractions; timestamps tz-aware UTC.
- Sums use :func:`math.fsum` (exactly rounded), so a result never depends on row order and group sums equal the
  stepper's own (``PositionState.quantity`` / ``entry_fees_usd`` are fsums too).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

import numpy as np
import pandas as pd

from .config import Config, Strategy, Tier
from .exits import ExitReason, PositionState, exit_fee, exit_fill, is_utc, net_pnl, pnl_ratio
from .universe import SYMBOL_RE, Universe

# SPEC §0.3: the longest allowed trade_group_id (a format rule, not a tunable).
MAX_TRADE_GROUP_ID_LEN = 36
# Hex digits of the SHA-1 kept in a trade_group_id (SPEC §0.3).
_HASH_HEX = 4
SELL_LEVEL = -1

TRADE_GROUP_ID_RE = re.compile(
    r"^(?P<strategy>DCA|SWING|CHANNEL)_(?P<symbol>[A-Z0-9]+(?:-[A-Z0-9]+)?)_(?P<stamp>\d{12})_(?P<hash>[0-9a-f]{4})$"
)
SCAN_ID_RE = re.compile(r"^(?P<strategy>DCA|SWING|CHANNEL)_(?P<symbol>[A-Z0-9]+(?:-[A-Z0-9]+)?)_(?P<stamp>\d{10})$")


class LedgerError(ValueError):
    """A ledger that breaks the row rules of SPEC §4/§5.3 (names the trade group and the rule)."""


# ---------------------------------------------------------------------------------------------------------------
# Enums (SPEC §0.4): parsed strictly, an unknown value raises
# ---------------------------------------------------------------------------------------------------------------


class _StrictEnum(str, Enum):
    @classmethod
    def parse(cls, value: Any):
        """Strict parse; an unknown value raises ``ValueError`` naming the allowed values."""
        try:
            return cls(value)
        except ValueError:
            allowed = [m.value for m in cls]
            raise ValueError(f"unknown {cls.__name__} {value!r}; expected one of {allowed}") from None


class Side(_StrictEnum):
    BUY = "BUY"
    SELL = "SELL"


class FillKind(_StrictEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"


class TradeOutcome(_StrictEnum):
    """WIN when net P&L > 0, else LOSS (SPEC §5.2), whatever the exit label."""

    WIN = "WIN"
    LOSS = "LOSS"

    @classmethod
    def of(cls, pnl_usd: float) -> "TradeOutcome":
        return cls.WIN if pnl_usd > 0 else cls.LOSS


class ExecutionReason(_StrictEnum):
    """Reason codes of the §7.2 execution checks (step 6 of §3.4), in priority order."""

    SYMBOL_OPEN = "symbol_open"
    PORTFOLIO_FULL = "portfolio_full"
    STRATEGY_FULL = "strategy_full"
    ALLOCATION_EXHAUSTED = "allocation_exhausted"
    INSUFFICIENT_CASH = "insufficient_cash"


def _strategy(value: Strategy | str) -> Strategy:
    """Strict: ``Strategy`` or its exact value (``DCA``, ``SWING``, ``CHANNEL``)."""
    if isinstance(value, Strategy):
        return value
    try:
        return Strategy(value)
    except ValueError:
        raise ValueError(f"unknown strategy {value!r}; expected one of {[s.value for s in Strategy]}") from None


def _tier(value: Tier | str) -> Tier:
    try:
        return Tier(value)
    except ValueError:
        raise ValueError(f"unknown tier {value!r}; expected one of {[t.value for t in Tier]}") from None


def _utc(value: Any, what: str) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    if ts.tzinfo is None or not is_utc(ts.tzinfo):
        raise ValueError(f"{what} must be a tz-aware UTC time, got {value!r}")
    return ts.tz_convert("UTC")


# ---------------------------------------------------------------------------------------------------------------
# Identifiers (SPEC §0.3)
# ---------------------------------------------------------------------------------------------------------------


def trade_group_id(strategy: Strategy | str, symbol: str, entry_time: Any) -> str:
    """``{STRATEGY}_{SYMBOL}_{yymmddHHMMSS}_{xxxx}`` of entry time E (UTC); xxxx = first 4 hex of
    SHA-1(``STRATEGY|SYMBOL|YYYY-MM-DDTHH:MM:SSZ``).

    Raises ``ValueError`` for an unknown strategy, a malformed symbol, a naive/non-UTC or sub-second E, and for an
    id longer than 36 characters (never truncated: a cut id would no longer match its hash or be unique).
    """
    s = _strategy(strategy).value
    if not isinstance(symbol, str) or not SYMBOL_RE.match(symbol):
        raise ValueError(f"invalid symbol {symbol!r}")
    e = _utc(entry_time, "entry time")
    if e != e.floor("s"):
        raise ValueError(f"entry time {e} is not a whole second (E is a bar open time)")
    iso = e.strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = hashlib.sha1(f"{s}|{symbol}|{iso}".encode()).hexdigest()[:_HASH_HEX]
    tgid = f"{s}_{symbol}_{e.strftime('%y%m%d%H%M%S')}_{digest}"
    if len(tgid) > MAX_TRADE_GROUP_ID_LEN:
        raise ValueError(
            f"trade_group_id {tgid!r} has {len(tgid)} characters (> {MAX_TRADE_GROUP_ID_LEN}): symbol {symbol!r} "
            f"is too long for the SPEC §0.3 format"
        )
    return tgid


def scan_id(strategy: Strategy | str, symbol: str, cycle_point: Any) -> str:
    """``{STRATEGY}_{SYMBOL}_{yymmddHHMM}`` of the cycle point T (UTC, whole minute) = ``setup_id``."""
    s = _strategy(strategy).value
    if not isinstance(symbol, str) or not SYMBOL_RE.match(symbol):
        raise ValueError(f"invalid symbol {symbol!r}")
    t = _utc(cycle_point, "cycle point")
    if t != t.floor("min"):
        raise ValueError(f"cycle point {t} is not a whole minute")
    return f"{s}_{symbol}_{t.strftime('%y%m%d%H%M')}"


# ---------------------------------------------------------------------------------------------------------------
# Row layout (SPEC §5.3)
# ---------------------------------------------------------------------------------------------------------------

_TS = "datetime64[ns, UTC]"

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
    ("bar_time", _TS, "Open time of the bar the fill happened on (T for strategy-shift/manual/no-data closes)."),
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
    ("cycle_point", _TS, "Cycle point T of the engine tick that wrote this row."),
    ("entry_time", _TS, "Entry time E of the group (open time of the entry bar)."),
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
        if d == _TS:
            data[c] = pd.Series(pd.DatetimeIndex([_utc(v, c) for v in values]).as_unit("ns"))
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


def _row_key(row: Mapping[str, Any]) -> tuple[str, str, int]:
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
        key = _row_key(rec)
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
    if _strategy(strategy) is Strategy.DCA:
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
        s = _strategy(strategy)
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
    after every :func:`~.exits.step` or :func:`~.exits.close_position`, so new fills always come from the last
    stepped bar (their levels are the state's current ones); anything else raises ``ValueError``.
    ``cycle_point`` is the T of the tick writing the rows. Re-running on the same state gives identical rows
    (idempotent through :func:`append_rows`).
    """
    t = _utc(cycle_point, "cycle point")
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
# Validation
# ---------------------------------------------------------------------------------------------------------------


def _group_slices(frame: pd.DataFrame, columns: Iterable[str]) -> tuple[dict[str, list], list[tuple[int, int]]]:
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


def _check_enum(ledger: pd.DataFrame, column: str, enum: type[Enum], rows: Any = None) -> None:
    values = ledger[column] if rows is None else ledger.loc[rows, column]
    bad = ~values.isin([m.value for m in enum])
    if bad.any():
        i = values.index[bad.to_numpy()][0]
        raise LedgerError(
            f"{ledger.at[i, 'trade_group_id']}: unknown {column} {values[i]!r}; expected one of "
            f"{[m.value for m in enum]}"
        )


def check_ledger(ledger: pd.DataFrame) -> None:
    """Raise :class:`LedgerError` unless ``ledger`` follows SPEC §0.3/§0.4/§4/§5.3 (I-13, I-14).

    Checks columns and dtypes; unique (trade_group_id, side, level); strict enums; BUY levels 0..k−1 below the
    grid size, at most one SELL with level −1; the id format and its hash; group constants equal on every row;
    SELL qty/P&L/pnl_pct/outcome equal to the §4/§6 formulas over the group's BUY rows (exactly: same cost
    functions, exact sums); bar times ≤ the writing cycle point and the SELL after the last BUY.
    """
    if list(ledger.columns) != list(LEDGER_COLUMNS):
        raise LedgerError(f"ledger columns {list(ledger.columns)} != {list(LEDGER_COLUMNS)}")
    for c, d in LEDGER_DTYPES.items():
        if str(ledger[c].dtype) != d:
            raise LedgerError(f"column {c!r} has dtype {ledger[c].dtype}, expected {d}")
    ledger = ledger.reset_index(drop=True)
    if ledger.duplicated(list(LEDGER_KEY)).any():
        dup = ledger[ledger.duplicated(list(LEDGER_KEY), keep=False)].iloc[0]
        raise LedgerError(f"duplicate ledger key {_row_key(dup)}")
    _check_enum(ledger, "side", Side)
    _check_enum(ledger, "fill_kind", FillKind)
    _check_enum(ledger, "strategy", Strategy)
    _check_enum(ledger, "tier", Tier)
    is_sell = (ledger["side"] == Side.SELL.value).to_numpy()
    _check_enum(ledger, "exit_reason", ExitReason, is_sell)
    _check_enum(ledger, "outcome", TradeOutcome, is_sell)
    buys = ledger[~is_sell]
    exit_fields = buys["exit_reason"].notna() | buys["outcome"].notna() | buys["pnl_usd"].notna()
    if exit_fields.any():
        raise LedgerError(f"{buys['trade_group_id'][exit_fields].iloc[0]}: BUY rows carry no exit fields")
    late = ledger["bar_time"] > ledger["cycle_point"]
    if late.any():
        first = ledger["trade_group_id"][late].iloc[0]
        raise LedgerError(f"{first}: a bar time is after the cycle point that wrote it")
    varying = ledger.groupby("trade_group_id", sort=False)[list(GROUP_COLUMNS)].nunique(dropna=False) != 1
    if varying.to_numpy().any():
        tgid = varying.index[varying.any(axis=1).to_numpy()][0]
        column = varying.columns[varying.loc[tgid].to_numpy()][0]
        raise LedgerError(f"{tgid}: column {column!r} differs between rows of the group")
    cols, bounds = _group_slices(
        ledger,
        ("side", "fill_kind", "strategy", "symbol", "entry_time", "grid_levels", "bar_time", "qty", "size_usd",
         "fee_usd", "fill_price", "pnl_usd", "pnl_pct", "outcome"),
    )
    for a, b in bounds:
        _check_group(cols, a, b)


def _check_group(cols: dict[str, list], a: int, b: int) -> None:
    tgid = cols["trade_group_id"][a]

    def fail(msg: str) -> None:
        raise LedgerError(f"{tgid}: {msg}")

    if not TRADE_GROUP_ID_RE.match(tgid):
        fail("not a SPEC §0.3 trade_group_id")
    if trade_group_id(cols["strategy"][a], cols["symbol"][a], cols["entry_time"][a]) != tgid:
        fail("id does not match strategy, symbol and entry time (or its hash)")
    rows = range(a, b)
    sells = [i for i in rows if cols["side"][i] == Side.SELL.value]
    buys = [i for i in rows if cols["side"][i] == Side.BUY.value]
    levels = [cols["level"][i] for i in buys]  # ascending: the slice is sorted by level
    if not levels or levels != list(range(len(levels))):
        fail(f"BUY levels {levels} are not 0..k−1")
    if levels[-1] >= cols["grid_levels"][a]:
        fail(f"BUY level {levels[-1]} ≥ grid levels {cols['grid_levels'][a]}")
    first = buys[0]
    if cols["bar_time"][first] != cols["entry_time"][a] or cols["fill_kind"][first] != FillKind.MARKET.value:
        fail("level 0 must be the MARKET fill at the entry time")
    if any(cols["fill_kind"][i] != FillKind.LIMIT.value for i in buys[1:]):
        fail("DCA levels ≥ 1 must be LIMIT fills")
    if len(sells) > 1:
        fail("more than one SELL row")
    if not sells:
        return
    j = sells[0]
    if cols["level"][j] != SELL_LEVEL or cols["fill_kind"][j] != FillKind.MARKET.value:
        fail("the SELL row must be a MARKET fill with level −1")
    if not math.isnan(cols["size_usd"][j]):
        fail("SELL size_usd must be null")
    if cols["bar_time"][j] < max(cols["bar_time"][i] for i in buys):
        fail("SELL before the last BUY")
    qty = math.fsum(cols["qty"][i] for i in buys)
    size = math.fsum(cols["size_usd"][i] for i in buys)
    fees_in = math.fsum(cols["fee_usd"][i] for i in buys)
    if cols["qty"][j] != qty:
        fail(f"SELL qty {cols['qty'][j]!r} != Σ BUY qty {qty!r}")
    pnl = net_pnl(qty, cols["fill_price"][j], size, fees_in, cols["fee_usd"][j])
    if cols["pnl_usd"][j] != pnl or cols["pnl_pct"][j] != pnl_ratio(pnl, size):
        fail(f"SELL pnl {cols['pnl_usd'][j]!r}/{cols['pnl_pct'][j]!r} != net P&L {pnl!r} / Σ size {size!r}")
    if cols["outcome"][j] != TradeOutcome.of(pnl).value:
        fail(f"outcome {cols['outcome'][j]} does not match net P&L {pnl!r}")


# ---------------------------------------------------------------------------------------------------------------
# Derived views: open positions, closed trades, performance
# ---------------------------------------------------------------------------------------------------------------

OPEN_POSITION_COLUMNS = (
    "trade_group_id",
    "strategy",
    "symbol",
    "tier",
    "scan_id",
    "entry_time",
    "filled_levels",
    "grid_levels",
    "unfilled_levels",
    "level_size_usd",
    "group_size_usd",
    "filled_usd",
    "qty",
    "avg_entry",
    "take_profit_price",
    "stop_price",
    "entry_fees_usd",
    "open_cost_usd",
    "reserved_usd",
    "taker_fee",
    "slippage",
    "take_profit",
    "stop_loss",
    "trailing",
    "trail_activation",
    "max_hold_min",
)
MARK_COLUMNS = ("mark", "value_usd", "unrealised_usd", "unrealised_pct")
CLOSED_TRADE_COLUMNS = (
    "trade_group_id",
    "strategy",
    "symbol",
    "tier",
    "scan_id",
    "entry_time",
    "exit_time",
    "cycle_point",
    "exit_reason",
    "filled_levels",
    "size_usd",
    "qty",
    "avg_entry",
    "exit_price",
    "entry_fees_usd",
    "exit_fee_usd",
    "pnl_usd",
    "pnl_pct",
    "outcome",
    "take_profit",
    "no_data",
)


def _buy_sell(ledger: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    side = ledger["side"].to_numpy()
    return ledger[side == Side.BUY.value], ledger[side == Side.SELL.value]


_OPEN_SOURCE = (
    "strategy",
    "symbol",
    "tier",
    "scan_id",
    "entry_time",
    "grid_levels",
    "group_size_usd",
    "size_usd",
    "fee_usd",
    "qty",
    "avg_entry",
    "take_profit_price",
    "stop_price",
    "taker_fee",
    "slippage",
    "take_profit",
    "stop_loss",
    "trailing",
    "trail_activation",
    "max_hold_min",
)


def _open_buys(ledger: pd.DataFrame) -> pd.DataFrame:
    buys, sells = _buy_sell(ledger)
    return buys[~buys["trade_group_id"].isin(set(sells["trade_group_id"].tolist()))]


def open_positions(ledger: pd.DataFrame, marks: Mapping[str, float] | None = None) -> pd.DataFrame:
    """One row per open group (no SELL row), ordered by entry time then trade_group_id.

    ``filled_usd``/``qty``/``entry_fees_usd`` are exact sums over the BUY rows; ``avg_entry`` and the levels are those
    the stepper put in force after the latest fill; ``open_cost_usd`` = filled + entry fees; ``reserved_usd`` =
    unfilled levels × g × (1 + fee). With ``marks`` (symbol → decision-bar close, USD) also the liquidation value
    qty × close × (1 − s) × (1 − fee) (through the §6 cost functions), unrealised USD and unrealised / filled size.
    """
    cols, bounds = _group_slices(_open_buys(ledger), _OPEN_SOURCE)
    records = []
    for a, b in bounds:
        i = b - 1  # the highest level: the latest fill
        size, fees = cols["size_usd"][a:b], cols["fee_usd"][a:b]
        filled = math.fsum(size)
        n = int(cols["grid_levels"][i])
        g_size, fee = cols["size_usd"][i], cols["taker_fee"][i]
        unfilled = n - (b - a)
        rec = {
            "trade_group_id": cols["trade_group_id"][i],
            **{c: cols[c][i] for c in ("strategy", "symbol", "tier", "scan_id", "entry_time")},
            "filled_levels": b - a,
            "grid_levels": n,
            "unfilled_levels": unfilled,
            "level_size_usd": g_size,
            "group_size_usd": cols["group_size_usd"][i],
            "filled_usd": filled,
            "qty": math.fsum(cols["qty"][a:b]),
            "avg_entry": cols["avg_entry"][i],
            "take_profit_price": cols["take_profit_price"][i],
            "stop_price": cols["stop_price"][i],
            "entry_fees_usd": math.fsum(fees),
            "open_cost_usd": math.fsum(size + fees),
            "reserved_usd": unfilled * g_size * (1.0 + fee),
            "taker_fee": fee,
            **{
                c: cols[c][i]
                for c in ("slippage", "take_profit", "stop_loss", "trailing", "trail_activation", "max_hold_min")
            },
        }
        if marks is not None:
            mark = _mark(marks, rec["symbol"])
            value = liquidation_value(rec["qty"], mark, rec["slippage"], fee)
            unrealised = value - rec["open_cost_usd"]
            rec.update(mark=mark, value_usd=value, unrealised_usd=unrealised, unrealised_pct=unrealised / filled)
        records.append(rec)
    columns = list(OPEN_POSITION_COLUMNS) + (list(MARK_COLUMNS) if marks is not None else [])
    out = pd.DataFrame.from_records(records, columns=columns)
    if out.empty:
        out = out.astype({"entry_time": _TS})
    return out.sort_values(["entry_time", "trade_group_id"], kind="stable").reset_index(drop=True)


def _mark(marks: Mapping[str, float], symbol: str) -> float:
    if symbol not in marks:
        raise ValueError(f"no mark (decision-bar close) for open position symbol {symbol!r}")
    m = float(marks[symbol])
    if not (math.isfinite(m) and m > 0):
        raise ValueError(f"mark for {symbol!r} must be a positive price, got {marks[symbol]!r}")
    return m


def liquidation_value(qty: float, close: float, slippage: float, fee: float) -> float:
    """USD from selling ``qty`` at ``close`` now: qty × close × (1 − slippage) − exit fee (SPEC §6, §7.1)."""
    xf = exit_fill(close, slippage)
    return qty * xf - exit_fee(qty, xf, fee)


def closed_trades(ledger: pd.DataFrame) -> pd.DataFrame:
    """One row per closed group in exit order (exit time, then trade_group_id; SPEC §5.2).

    ``pnl_usd``/``pnl_pct``/``outcome``/``exit_fee_usd`` are those recorded on the SELL row (the stepper's);
    ``size_usd`` = Σ filled size (pnl_pct = pnl_usd / size_usd); ``cycle_point`` is the tick that closed it.
    """
    buys, sells = _buy_sell(ledger)
    buys = buys[buys["trade_group_id"].isin(set(sells["trade_group_id"].tolist()))]
    cols, bounds = _group_slices(buys, ("size_usd", "fee_usd"))
    per = {
        cols["trade_group_id"][a]: (b - a, math.fsum(cols["size_usd"][a:b]), math.fsum(cols["fee_usd"][a:b]))
        for a, b in bounds
    }
    n = [per[t] for t in sells["trade_group_id"].tolist()]
    sells = sells.reset_index(drop=True)
    out = pd.DataFrame(
        {
            "trade_group_id": sells["trade_group_id"],
            "strategy": sells["strategy"],
            "symbol": sells["symbol"],
            "tier": sells["tier"],
            "scan_id": sells["scan_id"],
            "entry_time": sells["entry_time"],
            "exit_time": sells["bar_time"],
            "cycle_point": sells["cycle_point"],
            "exit_reason": sells["exit_reason"],
            "filled_levels": np.array([x[0] for x in n], dtype="int64"),
            "size_usd": np.array([x[1] for x in n], dtype="float64"),
            "qty": sells["qty"],
            "avg_entry": sells["avg_entry"],
            "exit_price": sells["fill_price"],
            "entry_fees_usd": np.array([x[2] for x in n], dtype="float64"),
            "exit_fee_usd": sells["fee_usd"],
            "pnl_usd": sells["pnl_usd"],
            "pnl_pct": sells["pnl_pct"],
            "outcome": sells["outcome"],
            "take_profit": sells["take_profit"],
            "no_data": sells["no_data"],
        },
        columns=list(CLOSED_TRADE_COLUMNS),
    )
    return out.sort_values(["exit_time", "trade_group_id"], kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class ClosedTrade:
    """A closed group as the protection folds see it (fractions for pnl_pct and take_profit)."""

    trade_group_id: str
    strategy: Strategy
    symbol: str
    tier: Tier
    exit_time: pd.Timestamp
    cycle_point: pd.Timestamp  # the tick that processed the close
    exit_reason: ExitReason
    pnl_usd: float
    pnl_pct: float
    take_profit: float  # the position's effective tp frozen at entry
    outcome: TradeOutcome


def closed_trade_records(ledger: pd.DataFrame) -> list[ClosedTrade]:
    """:func:`closed_trades` as typed records (strict enum parsing), in exit order."""
    df = closed_trades(ledger)
    return [
        ClosedTrade(
            trade_group_id=r["trade_group_id"],
            strategy=_strategy(r["strategy"]),
            symbol=r["symbol"],
            tier=_tier(r["tier"]),
            exit_time=r["exit_time"],
            cycle_point=r["cycle_point"],
            exit_reason=ExitReason.parse(r["exit_reason"]),
            pnl_usd=float(r["pnl_usd"]),
            pnl_pct=float(r["pnl_pct"]),
            take_profit=float(r["take_profit"]),
            outcome=TradeOutcome.parse(r["outcome"]),
        )
        for r in df.to_dict("records")
    ]


def size_weighted_return(pnl_usd: Iterable[float], size_usd: Iterable[float]) -> float:
    """Σ P&L USD / Σ size USD (I-2: never a sum or mean of percentages); NaN without size."""
    size = math.fsum(size_usd)
    return math.fsum(pnl_usd) / size if size else math.nan


# ---------------------------------------------------------------------------------------------------------------
# Portfolio state (SPEC §7.1): THE one function for engine, reports, CLI and HTML report
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PendingOrder:
    """An entry order decided at a cycle point and not yet filled (its full G counts from the decision)."""

    strategy: Strategy
    symbol: str
    size_usd: float  # G
    decided_at: pd.Timestamp
    scan_id: str


@dataclass(frozen=True)
class OpenCounts:
    """Open groups + pending orders: in total, per strategy and per symbol (the §7.2 / I-3 counts)."""

    total: int
    by_strategy: Mapping[Strategy, int] = field(default_factory=dict)
    by_symbol: Mapping[str, int] = field(default_factory=dict)

    def strategy(self, s: Strategy | str) -> int:
        return self.by_strategy.get(_strategy(s), 0)

    def symbol(self, symbol: str) -> int:
        return self.by_symbol.get(symbol, 0)

    def plus(self, strategy: Strategy | str, symbol: str) -> "OpenCounts":
        s = _strategy(strategy)
        by_s = dict(self.by_strategy)
        by_s[s] = by_s.get(s, 0) + 1
        by_y = dict(self.by_symbol)
        by_y[symbol] = by_y.get(symbol, 0) + 1
        return OpenCounts(self.total + 1, by_s, by_y)


@dataclass(frozen=True)
class PortfolioState:
    """SPEC §7.1 quantities (USD). ``committed`` is Σ G of open groups and pending orders per strategy."""

    initial: float
    realised: float
    open_cost: float
    reserved: float
    cash: float
    available: float
    book_equity: float
    positions_value: float
    unrealised: float
    mark_equity: float
    deployable: float
    committed: Mapping[Strategy, float]
    open_positions: int
    pending_orders: int

    def committed_of(self, strategy: Strategy | str) -> float:
        return self.committed.get(_strategy(strategy), 0.0)


def open_counts(ledger: pd.DataFrame, pending_orders: Iterable[PendingOrder] = ()) -> OpenCounts:
    """Counts of open groups (no SELL row) plus pending orders."""
    buys, sells = _buy_sell(ledger)
    level0 = buys[(buys["level"] == 0) & ~buys["trade_group_id"].isin(set(sells["trade_group_id"]))]
    counts = OpenCounts(0)
    for strategy, symbol in zip(level0["strategy"], level0["symbol"]):
        counts = counts.plus(strategy, symbol)
    for o in pending_orders:
        counts = counts.plus(o.strategy, o.symbol)
    return counts


def portfolio_state(
    ledger: pd.DataFrame,
    pending_orders: Iterable[PendingOrder],
    marks: Mapping[str, float],
    cfg: Config,
) -> PortfolioState:
    """The portfolio state of SPEC §7.1 from the ledger, the pending entry orders and the marks.

    ``marks``: symbol → decision-bar close (USD per coin) for every symbol with an open group (a missing one raises).
    Open groups value at liquidation with the fee and slippage frozen at their entry; pending orders reserve
    G × (1 + ``costs.taker_fee``). realised = Σ net P&L of closed groups; cash = initial + realised − open_cost;
    available = cash − reserved; book_equity = cash + open_cost; mark_equity = cash + positions_value;
    unrealised = positions_value − open_cost; deployable = (1 − ``portfolio.reserve``) × book_equity.
    """
    pending = list(pending_orders)
    _, sells = _buy_sell(ledger)
    realised = math.fsum(sells["pnl_usd"].tolist())
    pos = open_positions(ledger, marks)
    open_buys = _open_buys(ledger)
    open_cost = math.fsum(open_buys["size_usd"].tolist() + open_buys["fee_usd"].tolist())
    fee = cfg.costs.taker_fee
    reserved = math.fsum([*pos["reserved_usd"], *(o.size_usd * (1.0 + fee) for o in pending)])
    positions_value = math.fsum(pos["value_usd"])
    initial = float(cfg.portfolio.initial_balance_usd)
    cash = initial + realised - open_cost
    book_equity = cash + open_cost
    committed: dict[Strategy, list[float]] = {s: [] for s in Strategy}
    for s, g in zip(pos["strategy"], pos["group_size_usd"]):
        committed[_strategy(s)].append(float(g))
    for o in pending:
        committed[_strategy(o.strategy)].append(float(o.size_usd))
    return PortfolioState(
        initial=initial,
        realised=realised,
        open_cost=open_cost,
        reserved=reserved,
        cash=cash,
        available=cash - reserved,
        book_equity=book_equity,
        positions_value=positions_value,
        unrealised=positions_value - open_cost,
        mark_equity=cash + positions_value,
        deployable=(1.0 - cfg.portfolio.reserve) * book_equity,
        committed={s: math.fsum(v) for s, v in committed.items()},
        open_positions=len(pos),
        pending_orders=len(pending),
    )


SNAPSHOT_COLUMNS = ("cycle_point", "cash", "positions_value", "equity", "realised", "unrealised", "open_count")


def snapshot_row(state: PortfolioState, cycle_point: Any) -> dict[str, Any]:
    """The ``portfolio_snapshots`` row of a step-4 state (equity = mark_equity; open_count = open groups)."""
    return {
        "cycle_point": _utc(cycle_point, "cycle point"),
        "cash": state.cash,
        "positions_value": state.positions_value,
        "equity": state.mark_equity,
        "realised": state.realised,
        "unrealised": state.unrealised,
        "open_count": state.open_positions,
    }


@dataclass(frozen=True)
class Performance:
    """Realised and unrealised P&L, each size-weighted (I-2): pct = Σ USD / Σ filled size, fractions."""

    closed_trades: int
    wins: int
    losses: int
    realised_usd: float
    realised_size_usd: float
    realised_pct: float
    open_positions: int
    unrealised_usd: float
    open_size_usd: float
    unrealised_pct: float

    @property
    def win_rate(self) -> float:
        return self.wins / self.closed_trades if self.closed_trades else math.nan


def performance(ledger: pd.DataFrame, marks: Mapping[str, float], cfg: Config) -> Performance:
    """Performance summary; unrealised comes from :func:`portfolio_state` (liquidation value − open cost)."""
    closed = closed_trades(ledger)
    pos = open_positions(ledger, marks)
    state = portfolio_state(ledger, (), marks, cfg)
    wins = int((closed["outcome"] == TradeOutcome.WIN.value).sum())
    open_size = math.fsum(pos["filled_usd"])
    return Performance(
        closed_trades=len(closed),
        wins=wins,
        losses=len(closed) - wins,
        realised_usd=state.realised,
        realised_size_usd=math.fsum(closed["size_usd"]),
        realised_pct=size_weighted_return(closed["pnl_usd"], closed["size_usd"]),
        open_positions=len(pos),
        unrealised_usd=state.unrealised,
        open_size_usd=open_size,
        unrealised_pct=state.unrealised / open_size if open_size else math.nan,
    )


# ---------------------------------------------------------------------------------------------------------------
# Execution checks (SPEC §7.2)
# ---------------------------------------------------------------------------------------------------------------


def check_execution(
    state: PortfolioState,
    counts: OpenCounts,
    strategy: Strategy | str,
    symbol: str,
    size_usd: float,
    cfg: Config,
) -> ExecutionReason | None:
    """The first failing §7.2 check for a candidate entry of size G = ``size_usd`` (USD), or None if it may open.

    In order: ``symbol_open`` (open + pending on the symbol ≥ ``limits.max_open_per_symbol``), ``portfolio_full``
    (≥ ``limits.max_open_total``), ``strategy_full`` (≥ ``limits.max_open_per_strategy``), ``allocation_exhausted``
    (committed(s) + G > ``portfolio.allocation.<s>`` × deployable), ``insufficient_cash`` (G × (1 + fee) > available,
    or G > ``limits.max_position_cash_fraction`` × available).
    """
    s = _strategy(strategy)
    g = float(size_usd)
    if not (math.isfinite(g) and g > 0):
        raise ValueError(f"size_usd must be > 0, got {size_usd!r}")
    lim = cfg.limits
    if counts.symbol(symbol) >= lim.max_open_per_symbol:
        return ExecutionReason.SYMBOL_OPEN
    if counts.total >= lim.max_open_total:
        return ExecutionReason.PORTFOLIO_FULL
    if counts.strategy(s) >= lim.max_open_per_strategy:
        return ExecutionReason.STRATEGY_FULL
    if state.committed_of(s) + g > cfg.portfolio.allocation.of(s) * state.deployable:
        return ExecutionReason.ALLOCATION_EXHAUSTED
    if g * (1.0 + cfg.costs.taker_fee) > state.available or g > lim.max_position_cash_fraction * state.available:
        return ExecutionReason.INSUFFICIENT_CASH
    return None


def apply_order(
    state: PortfolioState, counts: OpenCounts, order: PendingOrder, cfg: Config
) -> tuple[PortfolioState, OpenCounts]:
    """State and counts after ``order`` became pending: reserved += G × (1 + fee), available −= the same,
    committed(s) += G, counts + 1 (cash, equities and deployable are unchanged until it fills)."""
    s = _strategy(order.strategy)
    r = order.size_usd * (1.0 + cfg.costs.taker_fee)
    committed = dict(state.committed)
    committed[s] = committed.get(s, 0.0) + order.size_usd
    reserved = state.reserved + r
    new = replace(
        state,
        reserved=reserved,
        available=state.cash - reserved,
        committed=committed,
        pending_orders=state.pending_orders + 1,
    )
    return new, counts.plus(s, order.symbol)


def admit(
    state: PortfolioState, counts: OpenCounts, order: PendingOrder, cfg: Config
) -> tuple[ExecutionReason | None, PortfolioState, OpenCounts]:
    """Run :func:`check_execution` for ``order``; when it passes, apply it. Returns (reason, state, counts)."""
    reason = check_execution(state, counts, order.strategy, order.symbol, order.size_usd, cfg)
    if reason is not None:
        return reason, state, counts
    new_state, new_counts = apply_order(state, counts, order, cfg)
    return None, new_state, new_counts


def limit_violations(counts: OpenCounts, cfg: Config) -> list[str]:
    """Counts above ``limits.max_open_*`` (the post-commit assertion of §7.2 / I-3); empty when within limits."""
    lim = cfg.limits
    out = []
    if counts.total > lim.max_open_total:
        out.append(f"open + pending {counts.total} > limits.max_open_total {lim.max_open_total}")
    for s, n in counts.by_strategy.items():
        if n > lim.max_open_per_strategy:
            out.append(f"{s.value}: open + pending {n} > limits.max_open_per_strategy {lim.max_open_per_strategy}")
    for sym, n in counts.by_symbol.items():
        if n > lim.max_open_per_symbol:
            out.append(f"{sym}: open + pending {n} > limits.max_open_per_symbol {lim.max_open_per_symbol}")
    return out


__all__: Sequence[str] = (
    "CLOSED_TRADE_COLUMNS",
    "ClosedTrade",
    "ExecutionReason",
    "FillKind",
    "LEDGER_COLUMNS",
    "LEDGER_DTYPES",
    "LEDGER_KEY",
    "LEDGER_SCHEMA",
    "LedgerError",
    "MAX_TRADE_GROUP_ID_LEN",
    "OPEN_POSITION_COLUMNS",
    "OpenCounts",
    "PendingOrder",
    "Performance",
    "PortfolioState",
    "SNAPSHOT_COLUMNS",
    "Side",
    "TradeMeta",
    "TradeOutcome",
    "admit",
    "append_rows",
    "apply_order",
    "check_execution",
    "check_ledger",
    "closed_trade_records",
    "closed_trades",
    "empty_ledger",
    "grid_shape",
    "ledger_frame",
    "limit_violations",
    "liquidation_value",
    "open_counts",
    "open_positions",
    "performance",
    "portfolio_state",
    "scan_id",
    "size_weighted_return",
    "snapshot_row",
    "step_rows",
    "trade_group_id",
)
