"""The shadow analyzer (SPEC §10.3, table ``shadow_performance``) and its leaderboard (§12.2); never imports dagster.

:func:`analyze` turns the shadow takes into one row per window W ∈ ``shadow.windows_h`` × variation × strategy ∈
{DCA, SWING, CHANNEL, ALL} (columns :data:`PERFORMANCE_COLUMNS`):

- Membership: at analysis time t a window holds the takes with entry time in [t − h − W, t − h), h =
  ``exits.max_hold_h`` — only entries whose max hold has fully elapsed. Takes without an entry (order expired, NaT)
  are ignored. A strategy row uses only that strategy's shadows; ALL pools every strategy's shadows of the variation.
  The rows of a window × strategy are the variations with a take in it, plus CHAMPION whenever the input holds
  CHAMPION shadows of that strategy (any strategy for ALL), so the baseline is always shown.
- Completed = outcome ≠ PENDING. Fewer than ``shadow.min_outcomes`` completed → every metric null, tier INSUFFICIENT.
- Metrics over completed takes: win_rate = share with net pnl_usd > 0 (TIMEOUT rows count by sign); mean net
  pnl_pct; total net pnl_usd; size-weighted return Σ pnl_usd / Σ size_usd (SPEC I-2); best / worst pnl_pct; sharpe
  = mean / std (ddof 1) of per-trade pnl_pct, not annualised (null when the std is 0); max drawdown = max(1 −
  equity / running max) with equity = Π(1 + pnl_pct) from 1 in exit order (ties by ``shadow_id``), so the start at
  1 counts as a peak; mean hold hours; outperformance = win_rate − CHAMPION's win rate in the same window and
  strategy (0 on CHAMPION's own row, null without a CHAMPION row with metrics).
- Tests: a row *tests* when it is not CHAMPION and both it and CHAMPION have ≥ ``shadow.min_trades_for_test``
  completed takes (and metrics); p_z = pooled two-proportion z-test on the win counts, p_welch = Welch t-test on
  per-trade pnl_pct, both two-sided. A row that does not test has p_z = p_welch = p_z_holm = 1.
- Holm families: per window, the testing rows of DCA, SWING and CHANNEL form one family and the testing ALL rows
  another. **Rows that do not test are not members** (their p = 1 is a placeholder, not a hypothesis): counting them
  would make the correction depend on how many thin variations happen to exist.
- Tier (``shadow.tiers.*``, first satisfied of HIGH, MEDIUM, LOW, else INSUFFICIENT): completed trades ≥
  ``min_trades``, outperformance ≥ ``min_outperformance``, p_z_holm ≤ ``max_p``, W ≥ ``min_window_d`` days; equal
  passes. CHAMPION is the baseline: its tier is always INSUFFICIENT.
- dsr: the Deflated Sharpe Ratio (Bailey & López de Prado 2014) of the best variation per window × strategy (highest
  outperformance, ties by variation name; CHAMPION is the baseline, never the best), with n_trials = the rows of that
  window × strategy with a Sharpe (CHAMPION included) and V = the sample variance (ddof 1, 0 for one trial) of those
  Sharpes; skewness and Pearson kurtosis are the best row's sample moments of per-trade pnl_pct. Null elsewhere. A
  reported figure, never a gate.

Returns are fractions; money is USD; times are tz-aware UTC.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from ..common import StrictEnum, hours, is_utc, utc
from ..config import Config
from .stats import at_least, deflated_sharpe_ratio, holm, two_proportion_z_many, welch_t_from_stats
from .variations import CHAMPION

ALL = "ALL"
STRATEGIES: tuple[str, ...] = ("DCA", "SWING", "CHANNEL")
STRATEGY_ROWS: tuple[str, ...] = STRATEGIES + (ALL,)
PENDING = "PENDING"
OUTCOMES = frozenset({"WIN", "LOSS", "TIMEOUT", PENDING})

OUTCOME_COLUMNS: tuple[str, ...] = (
    "shadow_id", "scan_id", "strategy", "symbol", "variation", "entry_time", "exit_time", "outcome", "pnl_usd",
    "pnl_pct", "size_usd", "hold_h",
)
METRIC_COLUMNS: tuple[str, ...] = (
    "win_rate", "mean_pnl_pct", "total_pnl_usd", "size_weighted_return", "best_pnl_pct", "worst_pnl_pct", "sharpe",
    "max_drawdown", "mean_hold_h",
)
PERFORMANCE_COLUMNS: tuple[str, ...] = (
    "analyzed_at", "window_h", "strategy", "variation", "trades", "pending", *METRIC_COLUMNS, "outperformance",
    "p_z", "p_welch", "p_z_holm", "tier", "dsr",
)
LEADERBOARD_COLUMNS: tuple[str, ...] = (
    "strategy", "rank", "variation", "trades", "win_rate", "outperformance", "size_weighted_return", "total_pnl_usd",
    "tier", "p_z", "p_z_holm", "p_welch",
)


class EvidenceTier(StrictEnum):
    """The evidence tier of a variation (SPEC §0.4), strongest first."""

    HIGH = "HIGH"
    MEDIUM = "MEDIUM"
    LOW = "LOW"
    INSUFFICIENT = "INSUFFICIENT"

    @property
    def rank(self) -> int:
        """Larger is stronger: INSUFFICIENT is 0."""
        members = list(type(self))
        return len(members) - 1 - members.index(self)


TESTED_TIERS: tuple[EvidenceTier, ...] = (EvidenceTier.HIGH, EvidenceTier.MEDIUM, EvidenceTier.LOW)


# ---------------------------------------------------------------------------------------------------------------
# Input
# ---------------------------------------------------------------------------------------------------------------


def _checked(outcomes: pd.DataFrame) -> pd.DataFrame:
    """The takes with an entry, validated: known strategies and outcomes, UTC times, complete completed rows."""
    missing = [c for c in OUTCOME_COLUMNS if c not in outcomes.columns]
    if missing:
        raise ValueError(f"shadow outcomes lack columns {missing}")
    for col in ("entry_time", "exit_time"):
        dtype = outcomes[col].dtype
        if len(outcomes) and not (isinstance(dtype, pd.DatetimeTZDtype) and is_utc(dtype.tz)):
            raise ValueError(f"shadow outcomes: {col} must be tz-aware UTC, got {dtype}")
    df = outcomes.loc[outcomes["entry_time"].notna(), list(OUTCOME_COLUMNS)].copy()
    df["strategy"] = df["strategy"].astype(str)
    df["variation"] = df["variation"].astype(str)
    df["outcome"] = df["outcome"].astype(str)
    bad = sorted(set(df["strategy"]) - set(STRATEGIES))
    if bad:
        raise ValueError(f"shadow outcomes: unknown strategy {bad}; expected one of {list(STRATEGIES)}")
    bad = sorted(set(df["outcome"]) - OUTCOMES)
    if bad:
        raise ValueError(f"shadow outcomes: unknown outcome {bad}; expected one of {sorted(OUTCOMES)}")
    done = df["outcome"] != PENDING
    for col in ("exit_time", "pnl_usd", "pnl_pct", "size_usd", "hold_h"):
        if df.loc[done, col].isna().any():
            raise ValueError(f"shadow outcomes: completed takes with a missing {col}")
    return df


# ---------------------------------------------------------------------------------------------------------------
# Analysis
# ---------------------------------------------------------------------------------------------------------------
#
# Every (window, strategy, variation) row is one integer group g = (window_index · 4 + strategy_index) · n_var +
# variation_index (strategy_index 3 = ALL); the takes of all windows are expanded once (a take sits in every window
# that holds it, and once more under ALL) and reduced with sorted-segment reductions, so one analysis is a handful of
# numpy passes whatever the number of variations.


def analyze(outcomes: pd.DataFrame, t: pd.Timestamp, cfg: Config) -> pd.DataFrame:
    """``shadow_performance`` at analysis time ``t`` (UTC) from the shadow takes (one row per would_take row).

    ``outcomes`` has :data:`OUTCOME_COLUMNS` (pnl_pct a fraction, pnl_usd and size_usd in USD, hold_h hours).
    Returns :data:`PERFORMANCE_COLUMNS`, ordered by window, strategy (DCA, SWING, CHANNEL, ALL) and variation
    (CHAMPION first, then by name); see the module docstring for every rule.
    """
    t = utc(t, "analysis time t")
    df = _checked(outcomes)
    windows = [float(w) for w in cfg.shadow.windows_h]
    if df.empty or not windows:
        return _empty()
    n_s = len(STRATEGY_ROWS)
    names = sorted(set(df["variation"]) | {CHAMPION}, key=lambda v: (v != CHAMPION, v))  # CHAMPION is code 0
    n_v = len(names)
    var = pd.Categorical(df["variation"], categories=names).codes.astype("int64")
    strat = pd.Categorical(df["strategy"], categories=list(STRATEGIES)).codes.astype("int64")
    champion_strats = np.unique(strat[var == 0])

    # Expand: (take, window) for every window holding the take, then the same under ALL.
    entry = pd.DatetimeIndex(df["entry_time"]).as_unit("ns").asi8
    end = (t - hours(cfg.exits.max_hold_h)).as_unit("ns").value
    take_idx, win_idx = [], []
    for wi, w in enumerate(windows):
        inside = np.flatnonzero((entry >= end - hours(w).value) & (entry < end))
        take_idx.append(inside)
        win_idx.append(np.full(len(inside), wi, dtype="int64"))
    take = np.concatenate(take_idx)
    wi_of = np.concatenate(win_idx)
    take = np.concatenate([take, take])
    ws = np.concatenate([wi_of * n_s + strat[take[:len(wi_of)]], wi_of * n_s + STRATEGY_ROWS.index(ALL)])
    g = ws * n_v + var[take]

    pending = (df["outcome"].to_numpy() == PENDING)[take]
    groups = np.union1d(np.unique(g), _champion_groups(np.unique(ws), champion_strats, n_s, n_v))
    if groups.size == 0:
        return _empty()
    rows = _rows_frame(groups, windows, names, n_s, n_v)
    rows["pending"] = _count(g[pending], groups)

    done = ~pending
    m = _metrics(df, take[done], g[done], groups)
    rows["trades"] = m.pop("trades")
    order, segment = m.pop("order"), m.pop("segment")
    enough = rows["trades"].to_numpy() >= cfg.shadow.min_outcomes
    for col, values in m.items():
        rows[col] = np.where(enough, values, np.nan) if col in METRIC_COLUMNS else values

    # CHAMPION of the same window and strategy: its row is group (g // n_v) · n_v + 0.
    c_pos = np.searchsorted(groups, (groups // n_v) * n_v)
    has_c = (c_pos < len(groups)) & (groups[np.minimum(c_pos, len(groups) - 1)] == (groups // n_v) * n_v)
    c_pos = np.minimum(c_pos, len(groups) - 1)
    for col, src in (("c_trades", "trades"), ("c_wins", "wins"), ("c_win_rate", "win_rate"),
                     ("c_mean", "mean_pnl_pct"), ("c_std", "std")):
        rows[col] = np.where(has_c, rows[src].to_numpy(dtype="float64")[c_pos], np.nan)
    rows["outperformance"] = rows["win_rate"] - rows["c_win_rate"]

    _tests(rows, cfg)
    rows["tier"] = _tiers(rows, cfg)
    rows["dsr"] = _dsr(rows, order, segment, df["pnl_pct"].to_numpy(dtype="float64"), take[done])
    rows.insert(0, "analyzed_at", t)
    rows = rows.sort_values(["window_h", "_s", "_v"], kind="mergesort").reset_index(drop=True)
    return rows[list(PERFORMANCE_COLUMNS)]


def _empty() -> pd.DataFrame:
    out = pd.DataFrame({c: pd.Series(dtype="float64") for c in PERFORMANCE_COLUMNS})
    out["analyzed_at"] = pd.Series(dtype="datetime64[ns, UTC]")
    for col in ("strategy", "variation", "tier"):
        out[col] = pd.Series(dtype="object")
    for col in ("trades", "pending"):
        out[col] = pd.Series(dtype="int64")
    return out


def _champion_groups(present_ws: np.ndarray, champion_strats: np.ndarray, n_s: int, n_v: int) -> np.ndarray:
    """CHAMPION's group in every window × strategy with a take, where the input has CHAMPION shadows of it."""
    s = present_ws % n_s
    keep = np.isin(s, champion_strats) | ((s == STRATEGY_ROWS.index(ALL)) & (champion_strats.size > 0))
    return present_ws[keep] * n_v


def _rows_frame(groups: np.ndarray, windows: list[float], names: list[str], n_s: int, n_v: int) -> pd.DataFrame:
    v = groups % n_v
    s = (groups // n_v) % n_s
    wi = groups // n_v // n_s
    return pd.DataFrame({"window_h": np.asarray(windows)[wi], "strategy": np.asarray(STRATEGY_ROWS, dtype=object)[s],
                         "variation": np.asarray(names, dtype=object)[v], "_s": s, "_v": v, "_g": groups})


def _count(keys: np.ndarray, groups: np.ndarray) -> np.ndarray:
    u, n = np.unique(keys, return_counts=True)
    out = np.zeros(len(groups), dtype="int64")
    out[np.searchsorted(groups, u)] = n
    return out


def _metrics(df: pd.DataFrame, take: np.ndarray, g: np.ndarray, groups: np.ndarray) -> dict[str, np.ndarray]:
    """Per-group metrics of the completed takes (``take`` positions in ``df``, ``g`` their groups), aligned with
    ``groups``; also the exit order (``order``) and its segment per group (``segment``: start, stop) for the DSR."""
    n_rows = len(groups)
    exit_ns = pd.DatetimeIndex(df["exit_time"]).as_unit("ns").asi8[take]
    sid = pd.factorize(df["shadow_id"].astype(str), sort=True)[0][take]
    order = np.lexsort((sid, exit_ns, g))  # by group, then exit time, ties by shadow_id
    gs = g[order]
    u, starts, counts = np.unique(gs, return_index=True, return_counts=True)
    pos = np.searchsorted(groups, u)
    col = {c: df[c].to_numpy(dtype="float64")[take][order] for c in ("pnl_pct", "pnl_usd", "size_usd", "hold_h")}
    r = col["pnl_pct"]

    def per_group(values: np.ndarray, fill: float = np.nan) -> np.ndarray:
        out = np.full(n_rows, fill)
        out[pos] = values
        return out

    out: dict[str, np.ndarray] = {}
    trades = np.zeros(n_rows, dtype="int64")
    trades[pos] = counts
    out["trades"] = trades
    if len(u) == 0:
        for name in (*METRIC_COLUMNS, "wins", "std"):
            out[name] = np.full(n_rows, np.nan) if name != "wins" else np.zeros(n_rows)
        out["order"], out["segment"] = order, np.zeros((n_rows, 2), dtype="int64")
        return out
    sums = np.add.reduceat(r, starts)
    mean = sums / counts
    dev = r - np.repeat(mean, counts)
    ss = np.add.reduceat(dev * dev, starts)
    best, worst = np.maximum.reduceat(r, starts), np.minimum.reduceat(r, starts)
    with np.errstate(divide="ignore", invalid="ignore"):
        # Equal returns have std 0 exactly (the rounding of sum/n would leave a tiny one and a huge Sharpe).
        std = np.where(counts > 1, np.where(best == worst, 0.0, np.sqrt(ss / (counts - 1))), np.nan)
        sharpe = np.where(std > 0, mean / std, np.nan)
    wins = np.add.reduceat((col["pnl_usd"] > 0).astype("float64"), starts)
    total = np.add.reduceat(col["pnl_usd"], starts)
    size = np.add.reduceat(col["size_usd"], starts)
    # Equity Π(1 + r) from 1 in exit order; the start at 1 is a peak, so running max is clipped below at 1.
    seg = pd.Series(1.0 + r)
    key = np.repeat(np.arange(len(u)), counts)
    equity = seg.groupby(key, sort=False).cumprod()
    peak = equity.groupby(key, sort=False).cummax().clip(lower=1.0)
    drawdown = np.maximum.reduceat((1.0 - equity / peak).to_numpy(), starts)

    out.update(wins=per_group(wins, 0.0), win_rate=per_group(wins / counts), mean_pnl_pct=per_group(mean),
               total_pnl_usd=per_group(total), size_weighted_return=per_group(total / size),
               best_pnl_pct=per_group(best), worst_pnl_pct=per_group(worst), sharpe=per_group(sharpe),
               max_drawdown=per_group(drawdown),
               mean_hold_h=per_group(np.add.reduceat(col["hold_h"], starts) / counts), std=per_group(std))
    segment = np.zeros((n_rows, 2), dtype="int64")
    segment[pos, 0] = starts
    segment[pos, 1] = starts + counts
    out["order"], out["segment"] = order, segment
    return out


def _tests(rows: pd.DataFrame, cfg: Config) -> None:
    """Fill p_z, p_welch and p_z_holm in place (Holm per family; non-testing rows are not members, p = 1)."""
    n_min = cfg.shadow.min_trades_for_test
    tests = ((rows["_v"] != 0) & rows["win_rate"].notna() & rows["c_win_rate"].notna()
             & (rows["trades"] >= n_min) & (rows["c_trades"] >= n_min)).to_numpy()
    p_z = np.ones(len(rows))
    p_welch = np.ones(len(rows))
    if tests.any():
        r = rows[tests]
        p_z[tests] = two_proportion_z_many(r["wins"], r["trades"], r["c_wins"], r["c_trades"])
        p_welch[tests] = welch_t_from_stats(r["mean_pnl_pct"], r["std"], r["trades"], r["c_mean"], r["c_std"],
                                            r["c_trades"])
    p_holm = np.ones(len(rows))
    is_all = (rows["strategy"] == ALL).to_numpy()
    window = rows["window_h"].to_numpy()
    for w in np.unique(window):
        for family in (tests & ~is_all & (window == w), tests & is_all & (window == w)):
            if family.any():
                p_holm[family] = holm(p_z[family])
    rows["p_z"] = p_z
    rows["p_welch"] = p_welch
    rows["p_z_holm"] = p_holm


def tier_of(trades: int, outperformance: float, p_holm: float, window_h: float, cfg: Config) -> EvidenceTier:
    """The first satisfied tier of ``shadow.tiers`` (HIGH, MEDIUM, LOW), else INSUFFICIENT; equal passes."""
    window = hours(window_h)
    for tier in TESTED_TIERS:
        rule = getattr(cfg.shadow.tiers, tier.value.lower())
        if (trades >= rule.min_trades and at_least(outperformance, rule.min_outperformance)
                and at_least(rule.max_p, p_holm) and window >= pd.Timedelta(days=rule.min_window_d)):
            return tier
    return EvidenceTier.INSUFFICIENT


def _tiers(rows: pd.DataFrame, cfg: Config) -> list[str]:
    out = []
    for v, trades, outp, p, w in zip(rows["_v"], rows["trades"], rows["outperformance"], rows["p_z_holm"],
                                     rows["window_h"]):
        if v == 0 or pd.isna(outp):  # CHAMPION is the baseline; no outperformance, no evidence
            out.append(EvidenceTier.INSUFFICIENT.value)
        else:
            out.append(tier_of(int(trades), float(outp), float(p), float(w), cfg).value)
    return out


def _dsr(rows: pd.DataFrame, order: np.ndarray, segment: np.ndarray, pnl_pct: np.ndarray, take: np.ndarray
         ) -> np.ndarray:
    """The Deflated Sharpe Ratio on the best row of each window × strategy, NaN elsewhere."""
    out = np.full(len(rows), np.nan)
    keys = list(zip(rows["window_h"], rows["strategy"]))
    by_key: dict[tuple, list[int]] = {}
    for i, k in enumerate(keys):
        by_key.setdefault(k, []).append(i)
    sharpe = rows["sharpe"].to_numpy()
    outp = rows["outperformance"].to_numpy()
    v = rows["_v"].to_numpy()
    name = rows["variation"].to_numpy()
    for idx in by_key.values():
        trials = [i for i in idx if np.isfinite(sharpe[i])]
        cands = [i for i in idx if v[i] != 0 and np.isfinite(outp[i])]
        if not trials or not cands:
            continue
        best = min(cands, key=lambda i: (-outp[i], name[i]))
        if not np.isfinite(sharpe[best]):
            continue
        a, b = segment[best]
        x = pnl_pct[take[order[a:b]]]
        variance = float(np.var(sharpe[trials], ddof=1)) if len(trials) > 1 else 0.0
        d = x - x.mean()
        m2 = np.mean(d * d)  # sample (biased) moments, as scipy.stats.skew / kurtosis(fisher=False)
        skew, kurtosis = np.mean(d**3) / m2**1.5, np.mean(d**4) / m2**2
        out[best] = deflated_sharpe_ratio(float(sharpe[best]), len(x), float(skew), float(kurtosis), len(trials),
                                          variance)
    return out


# ---------------------------------------------------------------------------------------------------------------
# Leaderboard (SPEC §12.2)
# ---------------------------------------------------------------------------------------------------------------


def leaderboard(perf: pd.DataFrame, window_h: float, strategies: Iterable[str] = (ALL, *STRATEGIES)) -> pd.DataFrame:
    """Variations of one window ranked by outperformance (desc; null last; ties by name) for ALL, then each
    strategy, with size-weighted return (the metric where VOLATILITY_SIZED differs), tier and p-values.

    Columns :data:`LEADERBOARD_COLUMNS`; ``rank`` starts at 1 within each strategy. Returns are fractions.
    """
    rows = perf[perf["window_h"] == window_h]
    parts = []
    for strategy in strategies:
        mine = rows[rows["strategy"] == strategy]
        if mine.empty:
            continue
        mine = mine.sort_values(["outperformance", "variation"], ascending=[False, True], na_position="last",
                                kind="mergesort")
        parts.append(mine.assign(rank=np.arange(1, len(mine) + 1)))
    if not parts:
        return pd.DataFrame(columns=list(LEADERBOARD_COLUMNS))
    return pd.concat(parts, ignore_index=True)[list(LEADERBOARD_COLUMNS)]
