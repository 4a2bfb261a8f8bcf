"""The paper engine (SPEC §3.1, §4–§9) on hand-built scenarios with hand-computed fills.

Each scenario builds 1m bars, ``market_regime`` rows and steps 1–3 scan rows (the ``scan_preview`` layout) by hand
for a small universe (BTC ETH | LINK UNI | DOGE | PEPE ACT, ACT inactive), runs :func:`run_engine` and compares the
ledger, scan decisions, snapshots and notifications with numbers worked out from the SPEC formulas with plain
arithmetic. The config values a test depends on are pinned in ``PINNED`` (or in the test's own override).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable

import numpy as np
import pandas as pd
import pytest

from cryptotracker_assets.core.config import Strategy, build_config, merge, raw_dict
from cryptotracker_assets.core.engine import (
    EngineInputError,
    EngineInputs,
    EngineInvariantError,
    EngineState,
    ManualClose,
    next_cycle_points,
    run_engine,
)
from cryptotracker_assets.core.features import SCAN_FEATURES
from cryptotracker_assets.core.ledger import (
    TRADE_GROUP_ID_RE,
    append_rows,
    check_ledger,
    closed_trades,
    empty_ledger,
    open_positions,
    scan_id,
)
from cryptotracker_assets.core.protection import OperatorAction, OperatorEvent
from cryptotracker_assets.core.setup_schemas import ScanHistorySchema
from cryptotracker_assets.core.setups import SCAN_ROW_COLUMNS
from cryptotracker_assets.core.universe import Universe

MIN = pd.Timedelta(minutes=1)
H = pd.Timedelta(hours=1)
T0 = pd.Timestamp("2024-01-02T00:00:00Z")
STRATS = (Strategy.DCA, Strategy.SWING, Strategy.CHANNEL)
DEFAULT_VALUE = {Strategy.DCA: -0.03, Strategy.SWING: 0.015, Strategy.CHANNEL: 0.05}
THRESHOLD = {Strategy.DCA: -0.025, Strategy.SWING: 0.010, Strategy.CHANNEL: 0.10}

UNIVERSE = {"market_symbol": "BTC", "inactive": ["ACT"], "large_cap": ["BTC", "ETH"], "mid_cap": ["LINK", "UNI"],
            "small_cap": ["DOGE"], "memecoin": ["PEPE", "ACT"]}
PINNED = {
    "universe": UNIVERSE,
    "prioritisation": {"symbols": ["BTC", "ETH", "LINK", "UNI", "DOGE"], "min_best_signals": 3,
                       "sentiment_ratio": 1.5, "sentiment_weights": {"dca": 0.5, "swing": 1.0, "channel": 1.0},
                       "shift": {"big_loss": -0.05, "moderate_loss": -0.02, "moderate_after_h": 2, "flat_band": 0.02,
                                 "flat_after_h": 4, "stale_win_age_h": 12}},
    "engine": {"base_timeframe": "1m", "cycle_min": 5, "max_bar_lag_min": 5, "entry_timeout_min": 5},
    "costs": {"taker_fee": 0.003, "slippage": {"large_cap": 0.0015, "mid_cap": 0.0025, "small_cap": 0.005,
                                               "memecoin": 0.0075}},
    "exits": {"max_hold_h": 72, "no_data_grace_min": 60, "tp_multiplier": {"dca": 1.0, "swing": 1.0, "channel": 1.0},
              "swing": {"large_cap": {"take_profit": 0.05, "stop_loss": 0.04, "trail": 0.025,
                                      "trail_activation": 0.025},
                        "mid_cap": {"take_profit": 0.08, "stop_loss": 0.06, "trail": 0.04, "trail_activation": 0.04},
                        "small_cap": {"take_profit": 0.15, "stop_loss": 0.08, "trail": 0.06, "trail_activation": 0.06},
                        "memecoin": {"take_profit": 0.15, "stop_loss": 0.12, "trail": 0.08, "trail_activation": 0.08}},
              "dca": {"mid_cap": {"take_profit": 0.07, "stop_loss": 0.08, "trail": 0.035, "trail_activation": 0.035}}},
    "strategies": {"dca": {"enabled": True, "grid": {"levels": {"mid_cap": 4}, "spacing": {"mid_cap": 0.025}}},
                   "swing": {"enabled": True}, "channel": {"enabled": True}},
    "portfolio": {"initial_balance_usd": 10000.0, "position_size_usd": 50.0, "reserve": 0.20,
                  "allocation": {"dca": 0.40, "swing": 0.30, "channel": 0.30}},
    "limits": {"max_open_total": 80, "max_open_per_strategy": 40, "max_open_per_symbol": 1,
               "max_position_cash_fraction": 0.50, "daily_loss_limit": 0.03, "loss_streak": 5,
               "loss_streak_pause_h": 12},
    "protection": {"regime": {"size_multiplier": {"panic": 0.0, "caution": 0.5, "euphoria": 0.7, "normal": 1.0}},
                   "limiter": {"cooldown_h": {"large_cap": 4, "mid_cap": 6, "small_cap": 12, "memecoin": 24},
                               "ban_after_stops": 3, "ban_h": 24, "reset_profit_fraction_of_tp": 0.5},
                   "stop_widening": {"vol_floor": 0.05, "vol_factor": 3.0,
                                     "regime_multiplier": {"panic": 1.5, "caution": 1.3, "euphoria": 1.2,
                                                           "normal": 1.0},
                                     "cap": {"large_cap": 0.10, "mid_cap": 0.12, "small_cap": 0.15,
                                             "memecoin": 0.15}}},
    "ml": {"rule": {"confidence": 0.5, "threshold": 0.45}},
}
FEE = 0.003
SLIP = {"BTC": 0.0015, "ETH": 0.0015, "LINK": 0.0025, "UNI": 0.0025, "DOGE": 0.005, "PEPE": 0.0075, "ACT": 0.0075}


def deep_merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@pytest.fixture(scope="module")
def base_raw(cfg):
    return raw_dict(cfg)


def make_cfg(base_raw: dict, override: dict | None = None, version: int = 0):
    return build_config(merge(base_raw, deep_merge(PINNED, override or {})), source="test", config_version=version)


@pytest.fixture(scope="module")
def ecfg(base_raw):
    return make_cfg(base_raw)


# ---------------------------------------------------------------------------------------------------------------
# Scenario builder: bars, market_regime rows and scan_preview rows by hand
# ---------------------------------------------------------------------------------------------------------------


class Scenario:
    """Hand-built inputs. Bars are 1m (o, h, l, c) per symbol and minute; the market row of every cycle point
    defaults to NORMAL, best SWING, vol24h 0.03, every strategy enabled; signals are candidate scan rows."""

    def __init__(self, cfg, best: str = "SWING"):
        self.cfg = cfg
        self.uni = Universe.from_config(cfg)
        self.bars: dict[tuple[str, pd.Timestamp], tuple[float, float, float, float]] = {}
        self.market: dict[pd.Timestamp, dict] = {}
        self.best = best
        self.signals: dict[pd.Timestamp, list[dict]] = {}
        self.events: list = []
        self.ledger = empty_ledger()
        self.state = EngineState()
        self.outs = []

    # bars
    def flat(self, symbol: str, price: float, start: pd.Timestamp, end: pd.Timestamp) -> "Scenario":
        t = start
        while t < end:
            self.bars[(symbol, t)] = (price, price, price, price)
            t += MIN
        return self

    def bar(self, symbol: str, t: pd.Timestamp, o: float, h: float, lo: float, c: float) -> "Scenario":
        self.bars[(symbol, t)] = (o, h, lo, c)
        return self

    def drop(self, symbol: str, start: pd.Timestamp, end: pd.Timestamp) -> "Scenario":
        for key in [k for k in self.bars if k[0] == symbol and start <= k[1] < end]:
            del self.bars[key]
        return self

    # market rows and signals
    def set_market(self, t: pd.Timestamp, **kw) -> "Scenario":
        self.market.setdefault(t, {}).update(kw)
        return self

    def set_best(self, t: pd.Timestamp, best: str) -> "Scenario":
        """The best strategy from cycle point t on (until set again)."""
        return self.set_market(t, best_strategy=best)

    def set_range(self, start: pd.Timestamp, end: pd.Timestamp, **kw) -> "Scenario":
        """Market fields at every cycle point in [start, end)."""
        t = start
        while t < end:
            self.set_market(t, **kw)
            t += 5 * MIN
        return self

    def signal(self, t: pd.Timestamp, strategy: Strategy, symbol: str, confidence: float = 0.5,
               value: float | None = None, kind: str = "candidate", **features: float) -> "Scenario":
        """A scan row of ``kind`` (candidate / below / top / feature: a row with only its setup value, no
        production setup); ``features``: stored feature values (``surge``, ``vol_24h``)."""
        self.signals.setdefault(t, []).append(
            {"strategy": strategy, "symbol": symbol, "confidence": confidence,
             "value": DEFAULT_VALUE[strategy] if value is None else value, "kind": kind, **features})
        return self

    # frames
    def bars_frame(self) -> pd.DataFrame:
        keys = sorted(self.bars, key=lambda k: (k[0], k[1]))
        ts = pd.DatetimeIndex([k[1] for k in keys], dtype="datetime64[ns, UTC]")
        vals = np.array([self.bars[k] for k in keys], dtype="float64").reshape(-1, 4)
        return pd.DataFrame({"symbol": [k[0] for k in keys], "timestamp": ts, "open": vals[:, 0],
                             "high": vals[:, 1], "low": vals[:, 2], "close": vals[:, 3], "volume": 1.0,
                             "suspect": False, "ingested_at": ts + MIN})

    def market_row(self, t: pd.Timestamp, cfg) -> dict:
        m = {"regime": "NORMAL", "best_strategy": self.best, "btc_vol_24h": 0.03, "entered_panic": False,
             **{f"{s.key}_enabled": True for s in Strategy}, **{f"{s.key}_changed": False for s in Strategy}}
        for tt in sorted(self.market):  # best strategy persists from the last time it was set
            if tt <= t and "best_strategy" in self.market[tt]:
                m["best_strategy"] = self.market[tt]["best_strategy"]
        m.update({k: v for k, v in self.market.get(t, {}).items()})
        mult = cfg.protection.regime.size_multiplier
        m["size_multiplier"] = {"PANIC": mult.panic, "CAUTION": mult.caution, "EUPHORIA": mult.euphoria,
                                "NORMAL": mult.normal, "UNKNOWN": 0.0}[m["regime"]]
        return {"timestamp": t, "btc_close": 100.0, "btc_ret_1h": 0.0, **m}

    def regime_frame(self, points: Iterable[pd.Timestamp], cfg) -> pd.DataFrame:
        df = pd.DataFrame([self.market_row(t, cfg) for t in points])
        df["timestamp"] = pd.DatetimeIndex(df["timestamp"], dtype="datetime64[ns, UTC]")
        return df

    def preview(self, points: Iterable[pd.Timestamp], cfg) -> pd.DataFrame:
        uni = Universe.from_config(cfg)
        rows = []
        for t in points:
            mk = self.market_row(t, cfg)
            sig = {(s["strategy"], s["symbol"]): s for s in self.signals.get(t, [])}
            for strategy in STRATS:
                for sym in sorted(uni.active_symbols):
                    s = sig.get((strategy, sym))
                    kind = s["kind"] if s else None
                    setup = kind in ("candidate", "below")
                    row = {c: math.nan for c in SCAN_ROW_COLUMNS}
                    row.update({
                        "scan_id": scan_id(strategy, sym, t), "timestamp": t, "bar_timestamp": t - MIN,
                        "symbol": sym, "tier": uni.tier(sym).value, "strategy": strategy.value,
                        "decision": None if kind == "candidate" else "SKIP",
                        "reason": {None: "no_setup", "candidate": None, "below": "ml_below_threshold",
                                   "top": "top_of_range", "feature": "no_setup"}[kind],
                        "candidate": kind == "candidate", "setup": setup,
                        "confidence": s["confidence"] if setup else math.nan,
                        "confidence_source": "rule" if setup else None, "threshold": 0.45,
                        "readiness": 100.0 if setup else 10.0,
                        "status": ("BUY_ZONE" if strategy is Strategy.CHANNEL else "READY") if setup else (
                            "SELL_ZONE" if strategy is Strategy.CHANNEL else "WAITING"),
                        "price": 100.0, "setup_value": s["value"] if s else math.nan,
                        # a SWING setup's volume surge (shadow variations re-evaluate the setup from it)
                        "volume_surge": s.get("surge", 2.0) if s and strategy is Strategy.SWING else math.nan,
                        "vol_24h": s.get("vol_24h", math.nan) if s else math.nan,
                        "setup_threshold": THRESHOLD[strategy], "regime": mk["regime"],
                        "best_strategy": mk["best_strategy"], "btc_close": 100.0, "list_type": None,
                        "config_version": cfg.config_version,
                    })
                    rows.append(row)
        df = pd.DataFrame(rows, columns=list(SCAN_ROW_COLUMNS))
        for c in ("timestamp", "bar_timestamp"):
            df[c] = pd.DatetimeIndex(df[c], dtype="datetime64[ns, UTC]")
        df["config_version"] = df["config_version"].astype("int64")
        for c in ("candidate", "setup"):
            df[c] = df[c].astype(bool)
        for c in SCAN_FEATURES + ("volume_filter_ratio",):
            df[c] = df[c].astype("float64")
        return df

    def run(self, start: pd.Timestamp, end: pd.Timestamp, cfg=None, validate: bool = True):
        """Run the cycle points in [start, end) (continuing the scenario's state and ledger); ``validate`` checks
        the scan rows against ``ScanHistorySchema`` and the whole ledger with ``check_ledger``."""
        cfg = cfg or self.cfg
        points = list(next_cycle_points(self.state, cfg, start=start, end=end))
        inputs = EngineInputs(cfg, self.bars_frame(), self.regime_frame(points, cfg), ledger=self.ledger,
                              events=tuple(self.events), scan_rows=self.preview(points, cfg))
        self.state, out = run_engine(self.state, inputs, points)
        self.ledger = append_rows(self.ledger, out.ledger_rows)
        if validate:
            ScanHistorySchema.validate(out.scan_rows)
            check_ledger(self.ledger)
        self.outs.append(out)
        return out

    # views over everything run so far
    def scan_rows(self) -> pd.DataFrame:
        return pd.concat([o.scan_rows for o in self.outs], ignore_index=True)

    def decision(self, t: pd.Timestamp, strategy: Strategy, symbol: str) -> tuple[str, str]:
        rows = self.scan_rows()
        r = rows[(rows.timestamp == t) & (rows.strategy == strategy.value) & (rows.symbol == symbol)]
        assert len(r) == 1
        return r.iloc[0]["decision"], r.iloc[0]["reason"]

    def snapshots(self) -> pd.DataFrame:
        return pd.concat([o.snapshots for o in self.outs], ignore_index=True)

    def snapshot(self, t: pd.Timestamp) -> dict:
        s = self.snapshots()
        return s[s.cycle_point == t].iloc[0].to_dict()

    def notes(self, kind: str | None = None) -> list[dict]:
        out = [n for o in self.outs for n in o.notifications]
        return [n for n in out if kind is None or n["kind"] == kind]

    def rows(self, side: str | None = None) -> pd.DataFrame:
        return self.ledger if side is None else self.ledger[self.ledger.side == side].reset_index(drop=True)


def tgid(strategy: str, symbol: str, e: pd.Timestamp) -> str:
    """SPEC §0.3 by hand."""
    h = hashlib.sha1(f"{strategy}|{symbol}|{e.strftime('%Y-%m-%dT%H:%M:%SZ')}".encode()).hexdigest()[:4]
    return f"{strategy}_{symbol}_{e.strftime('%y%m%d%H%M%S')}_{h}"


def buy(open_price: float, size: float, slip: float) -> tuple[float, float, float]:
    """(fill, qty, fee) of a market buy (SPEC §6)."""
    fill = open_price * (1 + slip)
    return fill, size / fill, size * FEE


def net(qty: float, raw: float, slip: float, size: float, entry_fees: float) -> tuple[float, float]:
    """(net P&L, pnl_pct) of a market sell of ``qty`` at raw price ``raw`` (SPEC §6)."""
    xf = raw * (1 - slip)
    pnl = qty * xf - size - entry_fees - qty * xf * FEE
    return pnl, pnl / size


def approx(x):
    return pytest.approx(x, rel=1e-12, abs=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# Entries (§0.2), take profit, DCA grid (§4)
# ---------------------------------------------------------------------------------------------------------------


def test_entry_fills_at_entry_bar_open_then_take_profit(ecfg):
    sc = Scenario(ecfg).flat("ETH", 100.0, T0 - 30 * MIN, T0 + 60 * MIN)
    sc.bar("ETH", T0 + 7 * MIN, 104.0, 106.0, 103.9, 105.0)
    sc.signal(T0, Strategy.SWING, "ETH")
    sc.run(T0, T0 + 5 * MIN)
    assert sc.decision(T0, Strategy.SWING, "ETH") == ("TAKE", "entered")
    rows = sc.scan_rows()
    assert rows.loc[(rows.symbol == "ETH") & (rows.strategy == "SWING"), "list_type"].tolist() == ["recommended"]
    assert sc.ledger.empty and len(sc.state.pending_orders) == 1  # fills only once its entry bar is visible
    assert sc.snapshot(T0)["cash"] == 10000.0

    sc.run(T0 + 5 * MIN, T0 + 10 * MIN)
    fill, qty, fee = buy(100.0, 50.0, 0.0015)  # 100.15, 50 / 100.15, 0.15
    (b,) = sc.rows("BUY").to_dict("records")
    assert b["trade_group_id"] == tgid("SWING", "ETH", T0) and TRADE_GROUP_ID_RE.match(b["trade_group_id"])
    assert len(b["trade_group_id"]) <= 36
    assert (b["level"], b["fill_kind"], b["bar_time"], b["cycle_point"]) == (0, "MARKET", T0, T0 + 5 * MIN)
    assert b["raw_price"] == 100.0 and b["fill_price"] == approx(fill) and b["qty"] == approx(qty)
    assert b["fee_usd"] == approx(fee) and b["slippage_usd"] == approx((fill - 100.0) * qty)
    assert b["take_profit_price"] == approx(fill * 1.05) and b["stop_price"] == approx(fill * 0.96)
    assert b["scan_id"] == scan_id("SWING", "ETH", T0) and b["entry_time"] == T0
    snap = sc.snapshot(T0 + 5 * MIN)
    assert snap["cash"] == approx(10000.0 - 50.0 - fee)
    assert snap["positions_value"] == approx(qty * 100.0 * (1 - 0.0015) * (1 - FEE))
    assert snap["equity"] == approx(snap["cash"] + snap["positions_value"]) and snap["open_count"] == 1

    sc.run(T0 + 10 * MIN, T0 + 15 * MIN)
    (s,) = sc.rows("SELL").to_dict("records")
    tp = fill * 1.05
    pnl, pct = net(qty, tp, 0.0015, 50.0, fee)
    assert (s["exit_reason"], s["bar_time"], s["cycle_point"], s["level"]) == ("take_profit", T0 + 7 * MIN,
                                                                              T0 + 10 * MIN, -1)
    assert s["raw_price"] == approx(tp) and s["fill_price"] == approx(tp * (1 - 0.0015))
    assert s["pnl_usd"] == approx(pnl) and s["pnl_pct"] == approx(pct) and s["outcome"] == "WIN"
    assert sc.snapshot(T0 + 10 * MIN)["cash"] == approx(10000.0 + pnl)
    assert [n["kind"] for n in sc.notes() if n["kind"] in ("opened", "closed")] == ["opened", "closed"]
    assert sc.notes("closed")[0]["exit_reason"] == "take_profit"


def test_entry_bar_is_the_first_bar_in_the_window(ecfg):
    sc = Scenario(ecfg).flat("ETH", 100.0, T0 - 30 * MIN, T0 + 30 * MIN).drop("ETH", T0, T0 + 3 * MIN)
    sc.bar("ETH", T0 + 3 * MIN, 101.0, 101.0, 101.0, 101.0)
    sc.signal(T0, Strategy.SWING, "ETH")
    sc.run(T0, T0 + 10 * MIN)
    (b,) = sc.rows("BUY").to_dict("records")
    assert b["entry_time"] == T0 + 3 * MIN and b["fill_price"] == approx(101.0 * 1.0015)


def test_entry_timeout_expiry(ecfg):
    sc = Scenario(ecfg).flat("ETH", 100.0, T0 - 30 * MIN, T0 + 30 * MIN).drop("ETH", T0, T0 + 6 * MIN)
    sc.signal(T0, Strategy.SWING, "ETH")
    sc.run(T0, T0 + 15 * MIN)
    assert sc.decision(T0, Strategy.SWING, "ETH") == ("TAKE", "entered")  # the order was created ...
    assert sc.ledger.empty and sc.state.pending_orders == ()  # ... and expired: no bar in [T0, T0 + 5 min)
    (n,) = sc.notes("entry_expired")
    assert n["cycle_point"] == T0 + 5 * MIN and n["symbol"] == "ETH"
    assert sc.snapshot(T0 + 5 * MIN)["cash"] == 10000.0


def test_trailing_stop_after_arming(ecfg):
    sc = Scenario(ecfg).flat("ETH", 100.0, T0 - 30 * MIN, T0 + 30 * MIN)
    sc.bar("ETH", T0 + 6 * MIN, 100.0, 104.0, 100.0, 103.5)  # H = 104 ≥ A × 1.025 = 102.65: armed from the next bar
    sc.bar("ETH", T0 + 7 * MIN, 103.0, 103.2, 101.0, 101.5)
    sc.signal(T0, Strategy.SWING, "ETH")
    sc.run(T0, T0 + 15 * MIN)
    fill, qty, fee = buy(100.0, 50.0, 0.0015)
    trail = 104.0 * (1 - 0.025)  # 101.4 > static stop 96.144; low 101 ≤ 101.4 < open 103
    (s,) = sc.rows("SELL").to_dict("records")
    pnl, _ = net(qty, trail, 0.0015, 50.0, fee)
    assert (s["exit_reason"], s["bar_time"]) == ("trailing_stop", T0 + 7 * MIN)
    assert s["raw_price"] == approx(trail) and s["high_water"] == 104.0 and s["trail_price"] == approx(trail)
    assert s["pnl_usd"] == approx(pnl) and s["outcome"] == ("WIN" if pnl > 0 else "LOSS")


def test_dca_grid_fills_and_exit(ecfg):
    sc = Scenario(ecfg, best="DCA").flat("LINK", 10.0, T0 - 30 * MIN, T0 + 6 * MIN)
    sc.bar("LINK", T0 + 6 * MIN, 9.8, 9.8, 9.5, 9.6).flat("LINK", 9.6, T0 + 7 * MIN, T0 + 13 * MIN)
    sc.signal(T0, Strategy.DCA, "LINK")
    f0, q0, _ = buy(10.0, 12.5, 0.0025)  # level 0: g = 50 / 4 levels
    p1, p2, p3 = f0 * (1 - 0.025), f0 * (1 - 0.05), f0 * (1 - 0.075)
    q1, q2 = 12.5 / p1, 12.5 / p2
    avg = 37.5 / math.fsum([q0, q1, q2])
    tp = avg * 1.07
    sc.bar("LINK", T0 + 13 * MIN, 10.0, tp + 0.1, 9.9, 10.5)
    sc.run(T0, T0 + 20 * MIN)
    buys = sc.rows("BUY")
    assert buys["level"].tolist() == [0, 1, 2]  # P3 = F0 × 0.925 was never reached (low 9.5)
    assert buys["fill_kind"].tolist() == ["MARKET", "LIMIT", "LIMIT"]
    assert buys["fill_price"].tolist() == approx([f0, p1, p2])  # min(P_i, open 9.8) = P_i
    assert buys["qty"].tolist() == approx([q0, q1, q2])
    assert buys["fee_usd"].tolist() == approx([12.5 * FEE] * 3) and buys["slippage_usd"].iloc[1:].tolist() == [0, 0]
    assert buys["size_usd"].tolist() == [12.5] * 3 and (buys["group_size_usd"] == 50.0).all()
    assert buys["avg_entry"].iloc[2] == approx(avg) and buys["stop_price"].iloc[2] == approx(avg * 0.92)
    assert buys["bar_time"].tolist() == [T0, T0 + 6 * MIN, T0 + 6 * MIN]
    assert p3 < 9.5
    # Step-4 state at T0 + 10: three levels paid, the fourth reserved.
    assert sc.snapshot(T0 + 10 * MIN)["cash"] == approx(10000.0 - 37.5 - 3 * 12.5 * FEE)
    (s,) = sc.rows("SELL").to_dict("records")
    pnl, pct = net(math.fsum([q0, q1, q2]), tp, 0.0025, 37.5, 3 * 12.5 * FEE)
    assert s["exit_reason"] == "take_profit" and s["raw_price"] == approx(tp) and s["bar_time"] == T0 + 13 * MIN
    assert s["qty"] == approx(q0 + q1 + q2) and s["pnl_usd"] == approx(pnl) and s["pnl_pct"] == approx(pct)
    assert sc.notes("closed")[0]["levels_filled"] == 3
    assert open_positions(sc.ledger).empty


# ---------------------------------------------------------------------------------------------------------------
# Market protection: stop widening (§8.4), CAUTION size, PANIC, volatility disable (§8.1, §8.2)
# ---------------------------------------------------------------------------------------------------------------


def test_stop_widening_above_the_vol_floor(ecfg):
    sc = Scenario(ecfg).flat("ETH", 100.0, T0 - 30 * MIN, T0 + 30 * MIN).flat("UNI", 10.0, T0 - 30 * MIN, T0 + 30 * MIN)
    sc.set_market(T0, btc_vol_24h=0.07).set_market(T0 + 5 * MIN, btc_vol_24h=0.05)
    sc.signal(T0, Strategy.SWING, "ETH").signal(T0 + 5 * MIN, Strategy.SWING, "UNI")
    sl = 0.04 * (1 + (0.07 - 0.05) * 3.0)  # 0.0424: +0.03 relative per 0.01 of vol24h above 0.05
    fill = 100.0 * 1.0015
    widened, base = fill * (1 - sl), fill * (1 - 0.04)
    sc.bar("ETH", T0 + 6 * MIN, 99.0, 99.0, 96.0, 98.0)  # below the base stop, above the widened one
    assert widened < 96.0 < base
    sc.bar("ETH", T0 + 8 * MIN, 96.5, 96.5, 95.8, 96.0)
    sc.run(T0, T0 + 15 * MIN)
    eth = sc.rows()[sc.rows().symbol == "ETH"]
    assert eth["stop_loss"].tolist() == approx([sl, sl]) and eth["stop_price"].iloc[0] == approx(widened)
    s = eth[eth.side == "SELL"].iloc[0]
    assert (s["exit_reason"], s["bar_time"]) == ("stop_loss", T0 + 8 * MIN) and s["raw_price"] == approx(widened)
    assert s["outcome"] == "LOSS"
    uni = sc.rows("BUY").query("symbol == 'UNI'").iloc[0]
    assert uni["stop_loss"] == 0.06  # vol24h = 0.05 is not above the floor: the base stop
    assert eth["take_profit"].iloc[0] == 0.05 and eth["trailing"].iloc[0] == 0.025  # TP and trail not widened


def test_caution_half_size_and_widening_cap(ecfg):
    sc = Scenario(ecfg).flat("ETH", 100.0, T0 - 30 * MIN, T0 + 30 * MIN).flat("PEPE", 1.0, T0 - 30 * MIN, T0 + 30 * MIN)
    sc.set_market(T0, regime="CAUTION", btc_vol_24h=0.10)
    sc.signal(T0, Strategy.SWING, "ETH").signal(T0, Strategy.SWING, "PEPE")
    sc.run(T0, T0 + 10 * MIN)
    b = sc.rows("BUY").set_index("symbol")
    assert b.loc["ETH", "size_usd"] == 25.0 and b.loc["PEPE", "size_usd"] == 25.0  # 50 × 0.5
    assert b.loc["ETH", "qty"] == approx(25.0 / (100.0 * 1.0015))
    # ETH: 0.04 × (1 + 0.05 × 3) × 1.3 = 0.0598 < cap 0.10; PEPE: 0.12 × 1.15 × 1.3 = 0.1794 → cap 0.15.
    assert b.loc["ETH", "stop_loss"] == approx(0.04 * (1 + 0.05 * 3.0) * 1.3)
    assert b.loc["PEPE", "stop_loss"] == 0.15
    assert sc.notes("opened")[0]["regime"] == "CAUTION"
    eu = Scenario(ecfg).flat("ETH", 100.0, T0 - 30 * MIN, T0 + 30 * MIN)
    eu.set_market(T0, regime="EUPHORIA", btc_vol_24h=0.09).signal(T0, Strategy.SWING, "ETH")
    eu.run(T0, T0 + 10 * MIN)
    (b,) = eu.rows("BUY").to_dict("records")
    assert b["size_usd"] == 35.0  # 50 × 0.7
    assert b["stop_loss"] == approx(0.04 * (1 + 0.04 * 3.0) * 1.2)


def test_panic_halts_entries_while_exits_continue(ecfg):
    sc = Scenario(ecfg).flat("ETH", 100.0, T0 - 30 * MIN, T0 + 30 * MIN)
    sc.flat("LINK", 10.0, T0 - 30 * MIN, T0 + 30 * MIN)
    sc.bar("ETH", T0 + 11 * MIN, 104.0, 106.0, 103.9, 105.0)
    sc.set_range(T0 + 10 * MIN, T0 + 20 * MIN, regime="PANIC", btc_vol_24h=0.13)
    sc.set_market(T0 + 10 * MIN, entered_panic=True)
    sc.signal(T0, Strategy.SWING, "ETH")
    for t in (T0 + 10 * MIN, T0 + 15 * MIN):
        sc.signal(t, Strategy.SWING, "LINK")
    sc.run(T0, T0 + 20 * MIN)
    assert sc.decision(T0 + 10 * MIN, Strategy.SWING, "LINK") == ("SKIP", "regime_panic")
    assert sc.decision(T0 + 15 * MIN, Strategy.SWING, "LINK") == ("SKIP", "regime_panic")
    (s,) = sc.rows("SELL").to_dict("records")
    assert s["exit_reason"] == "take_profit" and s["cycle_point"] == T0 + 15 * MIN  # exited during PANIC
    assert [n["cycle_point"] for n in sc.notes("panic")] == [T0 + 10 * MIN]  # one alert on entering PANIC
    assert sc.rows("BUY")["symbol"].tolist() == ["ETH"]


def test_volatility_disable_and_disabled_strategy(ecfg, base_raw):
    sc = Scenario(ecfg).flat("ETH", 100.0, T0 - 30 * MIN, T0 + 30 * MIN)
    sc.flat("LINK", 10.0, T0 - 30 * MIN, T0 + 30 * MIN)
    sc.set_market(T0, channel_enabled=False, channel_changed=True, btc_vol_24h=0.085)
    sc.signal(T0, Strategy.CHANNEL, "LINK").signal(T0, Strategy.SWING, "ETH")
    sc.run(T0, T0 + 5 * MIN)
    assert sc.decision(T0, Strategy.CHANNEL, "LINK") == ("SKIP", "strategy_disabled")
    assert sc.decision(T0, Strategy.SWING, "ETH") == ("TAKE", "entered")
    (n,) = sc.notes("strategy_disabled")
    assert n["strategy"] == "CHANNEL" and n["vol24h"] == 0.085
    # strategies.<s>.enabled = false gives the same gate.
    off = make_cfg(base_raw, {"strategies": {"swing": {"enabled": False}}})
    sc2 = Scenario(off).flat("ETH", 100.0, T0 - 30 * MIN, T0 + 30 * MIN).signal(T0, Strategy.SWING, "ETH")
    sc2.run(T0, T0 + 5 * MIN)
    assert sc2.decision(T0, Strategy.SWING, "ETH") == ("SKIP", "strategy_disabled")


# ---------------------------------------------------------------------------------------------------------------
# Trade limiter (§8.3), daily loss gate, loss streak, operator pause (§7.3)
# ---------------------------------------------------------------------------------------------------------------


def stop_bar(sc: Scenario, symbol: str, t: pd.Timestamp, price: float) -> None:
    """A bar that gaps below any stop of a position entered at ``price``: open 0.99 × price, low 0.9 × price."""
    sc.bar(symbol, t, price * 0.99, price * 0.99, price * 0.9, price * 0.95)


def test_limiter_cooldown_then_ban(base_raw):
    cfg = make_cfg(base_raw, {"protection": {"limiter": {"cooldown_h": {"large_cap": 0.5}, "ban_after_stops": 2,
                                                         "ban_h": 2}}})
    sc = Scenario(cfg).flat("ETH", 100.0, T0 - 30 * MIN, T0 + 4 * H)
    stop_bar(sc, "ETH", T0 + 6 * MIN, 100.0)  # trade 1 stops at T0 + 6: cooldown until T0 + 36
    stop_bar(sc, "ETH", T0 + 41 * MIN, 100.0)  # trade 2 stops at T0 + 41: 2 stops → banned until T0 + 161
    for m in (0, 10, 35, 40, 50, 70, 160, 165):
        sc.signal(T0 + m * MIN, Strategy.SWING, "ETH")
    sc.run(T0, T0 + 170 * MIN)
    d = {m: sc.decision(T0 + m * MIN, Strategy.SWING, "ETH")[1] for m in (0, 10, 35, 40, 50, 70, 160, 165)}
    assert d == {0: "entered", 10: "cooldown", 35: "cooldown", 40: "entered", 50: "banned", 70: "banned",
                 160: "banned", 165: "entered"}
    sells = sc.rows("SELL")
    assert sells["exit_reason"].tolist() == ["stop_loss", "stop_loss"]
    assert sells["bar_time"].tolist() == [T0 + 6 * MIN, T0 + 41 * MIN]
    lim = sc.state.protection.limiter.of("ETH")
    assert lim.stops == 0 and lim.banned_until is None  # the ban ended at T0 + 161: stops reset


def test_daily_loss_gate_latches_until_the_next_utc_day(base_raw):
    cfg = make_cfg(base_raw, {"portfolio": {"position_size_usd": 500.0}, "limits": {"daily_loss_limit": 0.002}})
    t0 = pd.Timestamp("2024-01-01T22:00:00Z")
    sc = Scenario(cfg).flat("ETH", 100.0, t0 - 30 * MIN, t0 + 3 * H).flat("LINK", 10.0, t0 - 30 * MIN, t0 + 3 * H)
    stop_bar(sc, "ETH", t0 + 6 * MIN, 100.0)
    sc.signal(t0, Strategy.SWING, "ETH")
    late = (t0 + 10 * MIN, t0 + 115 * MIN, t0 + 2 * H)  # 22:10, 23:55, 00:00 next day
    for t in late:
        sc.signal(t, Strategy.SWING, "LINK")
    sc.run(t0, t0 + 2 * H + 5 * MIN)
    fill, qty, fee = buy(100.0, 500.0, 0.0015)
    stop = fill * 0.96
    assert 90.0 < stop < 99.0  # low below the stop, open above it: the exit is at the stop
    pnl, _ = net(qty, stop, 0.0015, 500.0, fee)
    assert sc.rows("SELL")["pnl_usd"].iloc[0] == approx(pnl)
    # E₀ = 10 000 (first cycle point of the day); at 22:10 mark_equity − E₀ = pnl ≤ −0.002 × 10 000 = −20.
    assert pnl <= -20.0
    assert sc.snapshot(t0 + 10 * MIN)["equity"] == approx(10000.0 + pnl)
    assert [sc.decision(t, Strategy.SWING, "LINK")[1] for t in late] == ["daily_loss_gate", "daily_loss_gate",
                                                                         "entered"]
    (n,) = sc.notes("daily_loss_gate")
    assert n["cycle_point"] == t0 + 10 * MIN and n["e0"] == 10000.0
    assert n["resume_at"] == pd.Timestamp("2024-01-02T00:00:00Z")
    assert sc.state.protection.daily_loss.e0 == approx(10000.0 + pnl)  # E₀ of 2024-01-02 at its 00:00 point


def test_loss_streak_pauses_entries_for_the_configured_hours(base_raw):
    cfg = make_cfg(base_raw, {"limits": {"loss_streak": 2, "loss_streak_pause_h": 1}})
    sc = Scenario(cfg)
    for sym, p in (("ETH", 100.0), ("LINK", 10.0), ("UNI", 5.0)):
        sc.flat(sym, p, T0 - 30 * MIN, T0 + 2 * H)
    stop_bar(sc, "ETH", T0 + 6 * MIN, 100.0)
    stop_bar(sc, "LINK", T0 + 7 * MIN, 10.0)
    sc.signal(T0, Strategy.SWING, "ETH").signal(T0, Strategy.SWING, "LINK")
    for m in (10, 65, 70):
        sc.signal(T0 + m * MIN, Strategy.SWING, "UNI")
    sc.run(T0, T0 + 75 * MIN)
    assert sc.rows("SELL")["outcome"].tolist() == ["LOSS", "LOSS"]  # both processed at T0 + 10: streak of 2
    assert [sc.decision(T0 + m * MIN, Strategy.SWING, "UNI")[1] for m in (10, 65, 70)] == [
        "loss_streak_pause", "loss_streak_pause", "entered"]  # paused from T0 + 10 for 1 h
    (n,) = sc.notes("loss_streak_pause")
    assert n["cycle_point"] == T0 + 10 * MIN and n["resume_at"] == T0 + 70 * MIN
    assert sc.state.protection.loss_streak.count == 0  # reset when the pause ended


def test_operator_pause_blocks_entries_but_exits_continue(ecfg):
    sc = Scenario(ecfg).flat("ETH", 100.0, T0 - 30 * MIN, T0 + 40 * MIN)
    sc.flat("LINK", 10.0, T0 - 30 * MIN, T0 + 40 * MIN)
    sc.bar("ETH", T0 + 12 * MIN, 104.0, 106.0, 103.9, 105.0)
    sc.signal(T0, Strategy.SWING, "ETH")
    for m in (10, 15, 20):
        sc.signal(T0 + m * MIN, Strategy.SWING, "LINK")
    sc.events += [OperatorEvent(T0 + 7 * MIN, OperatorAction.PAUSE, "ops", "maintenance"),
                  OperatorEvent(T0 + 15 * MIN, OperatorAction.RESUME, "ops", "done")]
    sc.run(T0, T0 + 25 * MIN)
    assert [sc.decision(T0 + m * MIN, Strategy.SWING, "LINK")[1] for m in (10, 15, 20)] == [
        "paused", "paused", "entered"]  # the resume stamped at T0 + 15 acts from the first T after it
    (s,) = sc.rows("SELL").to_dict("records")
    assert s["exit_reason"] == "take_profit" and s["cycle_point"] == T0 + 15 * MIN  # exited while paused
    op = sc.state.protection.operator
    assert (op.paused, op.who, op.why) == (False, "ops", "done")


# ---------------------------------------------------------------------------------------------------------------
# Manual closes (§5.2) and no-data closes
# ---------------------------------------------------------------------------------------------------------------


def test_manual_close_at_the_decision_bar_close(ecfg):
    sc = Scenario(ecfg).flat("ETH", 100.0, T0 - 30 * MIN, T0 + 14 * MIN)
    sc.flat("ETH", 101.0, T0 + 14 * MIN, T0 + 40 * MIN)
    sc.flat("LINK", 10.0, T0 - 30 * MIN, T0 + 7 * MIN).flat("LINK", 10.2, T0 + 22 * MIN, T0 + 23 * MIN)
    sc.signal(T0, Strategy.SWING, "ETH").signal(T0, Strategy.SWING, "LINK")
    eth, link = tgid("SWING", "ETH", T0), tgid("SWING", "LINK", T0)
    sc.events += [ManualClose(T0 + 11 * MIN, eth, "alice", "risk"), ManualClose(T0 + 11 * MIN, link, "bob", "stale"),
                  ManualClose(T0 + 12 * MIN, "SWING_XRP_240102000000_0000", "carol", "typo")]
    sc.run(T0, T0 + 30 * MIN)
    sells = sc.rows("SELL").set_index("trade_group_id")
    fill, qty, fee = buy(100.0, 50.0, 0.0015)
    pnl, _ = net(qty, 101.0, 0.0015, 50.0, fee)
    e = sells.loc[eth]
    assert (e["exit_reason"], e["bar_time"], e["cycle_point"]) == ("manual", T0 + 15 * MIN, T0 + 15 * MIN)
    assert e["raw_price"] == 101.0 and e["pnl_usd"] == approx(pnl)  # close of the decision bar T0 + 14
    # LINK had no bar after T0 + 6 (stale at T0 + 15 and T0 + 20): the close waits for the fresh bar at T0 + 22.
    lk = sells.loc[link]
    assert (lk["exit_reason"], lk["cycle_point"], lk["raw_price"]) == ("manual", T0 + 25 * MIN, 10.2)
    closed = {n["trade_group_id"]: n for n in sc.notes("closed")}
    assert (closed[eth]["who"], closed[eth]["why"]) == ("alice", "risk")
    assert [n["trade_group_id"] for n in sc.notes("manual_close_ignored")] == ["SWING_XRP_240102000000_0000"]
    assert sc.state.manual_pending == ()


def test_time_exit_and_no_data_close_after_max_hold_plus_grace(base_raw):
    cfg = make_cfg(base_raw, {"exits": {"max_hold_h": 1, "no_data_grace_min": 60},
                              "shadow": {"variations": {"quick_exits": {"max_hold_h": 1},
                                                        "ml_trust": {"hold_h_range": [1, 1]}}}})
    sc = Scenario(cfg).flat("ETH", 100.0, T0 - 30 * MIN, T0 + 3 * H)
    sc.flat("LINK", 10.0, T0 - 30 * MIN, T0 + 30 * MIN).bar("LINK", T0 + 30 * MIN, 10.0, 10.1, 9.9, 10.07)
    sc.signal(T0, Strategy.SWING, "ETH").signal(T0, Strategy.SWING, "LINK")
    sc.run(T0, T0 + 115 * MIN + 5 * MIN)
    sells = sc.rows("SELL").set_index("symbol")
    # ETH has bars: time exit at the close of the first bar with open + 1 min ≥ E + 1 h (the bar at T0 + 59).
    e = sells.loc["ETH"]
    assert (e["exit_reason"], e["bar_time"], e["raw_price"], e["no_data"]) == ("time_exit", T0 + 59 * MIN, 100.0,
                                                                              False)
    # LINK's bars stop at T0 + 30: still open at T0 + 115, closed at T0 + 120 = E + 1 h + 60 min.
    assert "LINK" not in sells.index
    sc.run(T0 + 120 * MIN, T0 + 125 * MIN)
    lk = sc.rows("SELL").set_index("symbol").loc["LINK"]
    assert (lk["exit_reason"], lk["bar_time"], lk["raw_price"], bool(lk["no_data"])) == (
        "time_exit", T0 + 120 * MIN, 10.07, True)  # at the last known close
    fill, qty, fee = buy(10.0, 50.0, 0.0025)
    assert lk["pnl_usd"] == approx(net(qty, 10.07, 0.0025, 50.0, fee)[0])
    (n,) = sc.notes("no_data_close")
    assert n["trade_group_id"] == tgid("SWING", "LINK", T0) and n["last_bar"] == T0 + 30 * MIN
    assert sc.notes("closed")[-1]["no_data"] is True


# ---------------------------------------------------------------------------------------------------------------
# Strategy-shift closes (§9.3)
# ---------------------------------------------------------------------------------------------------------------


def shift_scenario(cfg, symbol: str, entry: float, after: float, end: pd.Timestamp) -> Scenario:
    """A SWING position on ``symbol`` entered at T0 (best SWING, the first observed best), price ``after`` from
    T0 + 6 min on; best CHANNEL from T0 + 10 min (shifted_at(SWING) = T0 + 10 min)."""
    sc = Scenario(cfg).flat(symbol, entry, T0 - 30 * MIN, T0 + 6 * MIN).flat(symbol, after, T0 + 6 * MIN, end)
    sc.signal(T0, Strategy.SWING, symbol)
    sc.set_best(T0 + 10 * MIN, "CHANNEL")
    return sc


def shift_r(symbol: str, entry: float, price: float) -> float:
    fill, qty, fee = buy(entry, 50.0, SLIP[symbol])
    return net(qty, price, SLIP[symbol], 50.0, fee)[1]


def test_shift_big_loss_and_later_entries_are_not_evaluated(ecfg):
    ts = T0 + 10 * MIN
    sc = shift_scenario(ecfg, "PEPE", 1.0, 0.92, T0 + H)
    assert shift_r("PEPE", 1.0, 0.92) <= -0.05  # −0.0995: net of slippage and both fees
    sc.flat("DOGE", 1.0, T0 - 30 * MIN, T0 + 16 * MIN).flat("DOGE", 0.93, T0 + 16 * MIN, T0 + H)
    sc.signal(T0 + 15 * MIN, Strategy.SWING, "DOGE")  # entered after the shift (fallback list)
    sc.run(T0, T0 + 40 * MIN)
    (s,) = sc.rows("SELL").to_dict("records")
    assert (s["exit_reason"], s["bar_time"], s["raw_price"]) == ("strategy_shift_big_loss", ts, 0.92)
    assert s["pnl_pct"] == approx(shift_r("PEPE", 1.0, 0.92))
    assert sc.decision(T0 + 15 * MIN, Strategy.SWING, "DOGE") == ("TAKE", "entered")
    assert shift_r("DOGE", 1.0, 0.93) <= -0.05
    assert [p.meta.symbol for p in sc.state.positions] == ["DOGE"]  # E ≥ shifted_at: never evaluated
    assert sc.scan_rows().query("symbol == 'DOGE' and strategy == 'SWING'")["list_type"].dropna().tolist() == [
        "fallback"]


def test_shift_moderate_loss_after_two_hours(ecfg):
    ts = T0 + 10 * MIN
    sc = shift_scenario(ecfg, "PEPE", 1.0, 0.985, ts + 3 * H)
    r = shift_r("PEPE", 1.0, 0.985)
    assert -0.05 < r <= -0.02  # −0.0356
    sc.run(T0, ts + 2 * H - 5 * MIN + 5 * MIN)  # up to D = 1 h 55
    assert sc.rows("SELL").empty
    sc.run(ts + 2 * H, ts + 2 * H + 5 * MIN)
    (s,) = sc.rows("SELL").to_dict("records")
    assert (s["exit_reason"], s["bar_time"]) == ("strategy_shift_moderate_loss", ts + 2 * H)
    assert s["pnl_pct"] == approx(r)


def test_shift_flat_after_four_hours_with_none_ignored(ecfg):
    ts = T0 + 10 * MIN
    sc = shift_scenario(ecfg, "ETH", 100.0, 100.5, ts + 5 * H)
    sc.set_best(ts + H, "NONE").set_best(ts + 2 * H, "CHANNEL")  # NONE: the last other value (CHANNEL) stands
    r = shift_r("ETH", 100.0, 100.5)
    assert abs(r) < 0.02 and r < 0  # −0.0040
    sc.run(T0, ts + 4 * H)
    assert sc.rows("SELL").empty
    sc.run(ts + 4 * H, ts + 4 * H + 5 * MIN)
    (s,) = sc.rows("SELL").to_dict("records")
    assert (s["exit_reason"], s["bar_time"], s["pnl_pct"]) == ("strategy_shift_flat", ts + 4 * H, approx(r))


def test_shift_stale_win_at_twelve_hours_of_age(ecfg):
    sc = shift_scenario(ecfg, "ETH", 100.0, 103.5, T0 + 13 * H)
    sc.set_best(T0 + 10 * MIN, "SWING").set_best(T0 + 11 * H, "CHANNEL")  # the shift happens at E + 11 h
    r = shift_r("ETH", 100.0, 103.5)
    assert r > 0.02  # +0.0258: not flat; the armed trail (103.5 × 0.975) stays below the price
    sc.run(T0, T0 + 12 * H)
    assert sc.rows("SELL").empty
    sc.run(T0 + 12 * H, T0 + 12 * H + 5 * MIN)
    (s,) = sc.rows("SELL").to_dict("records")
    assert (s["exit_reason"], s["bar_time"], s["pnl_pct"]) == ("strategy_shift_stale_win", T0 + 12 * H, approx(r))


def test_shift_cleared_when_best_returns_and_stale_symbol_waits(ecfg):
    ts = T0 + 10 * MIN
    back = shift_scenario(ecfg, "PEPE", 1.0, 0.985, ts + 3 * H).set_best(ts + H, "SWING")
    back.run(T0, ts + 2 * H + 30 * MIN)
    assert back.rows("SELL").empty and len(back.state.positions) == 1  # shifted_at(SWING) cleared at ts + 1 h
    assert back.state.shift.shifted_at == {Strategy.CHANNEL: ts + H}
    # A stale symbol waits for a fresh decision bar: PEPE has no bar between T0 + 5 and T0 + 22.
    sc = shift_scenario(ecfg, "PEPE", 1.0, 0.92, T0 + H).drop("PEPE", T0 + 5 * MIN, T0 + 22 * MIN)
    sc.run(T0, T0 + 30 * MIN)
    (s,) = sc.rows("SELL").to_dict("records")
    assert (s["exit_reason"], s["bar_time"], s["raw_price"]) == ("strategy_shift_big_loss", T0 + 25 * MIN, 0.92)


# ---------------------------------------------------------------------------------------------------------------
# Inactive symbols, WAIT, limits and execution checks (§1, §9.2, §7.2, I-3, I-20)
# ---------------------------------------------------------------------------------------------------------------


def test_inactive_symbol_is_not_scanned_but_its_position_exits(base_raw):
    active = make_cfg(base_raw, {"universe": {"inactive": []}})
    inactive = make_cfg(base_raw, version=1)  # ACT inactive from config version 1 on
    sc = Scenario(active).flat("ACT", 1.0, T0 - 30 * MIN, T0 + 30 * MIN)
    sc.bar("ACT", T0 + 12 * MIN, 1.1, 1.2, 1.09, 1.15)
    sc.signal(T0, Strategy.SWING, "ACT")
    sc.run(T0, T0 + 10 * MIN)
    assert len(sc.state.positions) == 1
    sc.signal(T0 + 10 * MIN, Strategy.SWING, "ACT")  # a signal the scan of version 1 never produces
    out = sc.run(T0 + 10 * MIN, T0 + 20 * MIN, cfg=inactive)
    assert "ACT" not in set(out.scan_rows["symbol"]) and out.scan_rows["config_version"].eq(1).all()
    assert len(out.scan_rows) == 2 * 3 * 6  # two cycle points × 3 strategies × 6 active symbols
    (s,) = sc.rows("SELL").to_dict("records")
    tp = 1.0 * 1.0075 * 1.15
    assert (s["exit_reason"], s["raw_price"], s["config_version"]) == ("take_profit", approx(tp), 0)
    with pytest.raises(EngineInputError):  # inactive symbols have no scan rows
        bad = sc.preview([T0 + 20 * MIN], active).assign(config_version=1)
        run_engine(sc.state, EngineInputs(inactive, sc.bars_frame(), sc.regime_frame([T0 + 20 * MIN], inactive),
                                          ledger=sc.ledger, scan_rows=bad), [T0 + 20 * MIN])


def test_wait_reorders_entries_only(base_raw):
    cfg = make_cfg(base_raw, {"limits": {"max_open_total": 3}})
    sc = Scenario(cfg, best="WAIT")
    sc.signal(T0, Strategy.DCA, "LINK", 0.5, -0.03).signal(T0, Strategy.DCA, "UNI", 0.5, -0.05)
    sc.signal(T0, Strategy.SWING, "ETH", 0.5, 0.02)
    sc.signal(T0, Strategy.CHANNEL, "DOGE", 0.6, 0.05).signal(T0, Strategy.CHANNEL, "PEPE", 0.5, 0.02)
    sc.run(T0, T0 + 5 * MIN)
    # Round robin UNI, ETH, DOGE, LINK, PEPE; stable by confidence: DOGE (0.6), UNI, ETH | LINK, PEPE full.
    got = {sym: sc.decision(T0, s, sym)[1] for s, sym in [(Strategy.CHANNEL, "DOGE"), (Strategy.DCA, "UNI"),
                                                          (Strategy.SWING, "ETH"), (Strategy.DCA, "LINK"),
                                                          (Strategy.CHANNEL, "PEPE")]}
    assert got == {"DOGE": "entered", "UNI": "entered", "ETH": "entered", "LINK": "portfolio_full",
                   "PEPE": "portfolio_full"}
    lt = sc.scan_rows().query("candidate")["list_type"]
    assert set(lt) == {"fallback"}
    roomy = Scenario(make_cfg(base_raw), best="WAIT")
    roomy.signals = sc.signals
    roomy.run(T0, T0 + 5 * MIN)
    assert set(roomy.scan_rows().query("candidate")["reason"]) == {"entered"}  # WAIT blocks nothing


def test_execution_checks_allocation_and_cash(base_raw):
    cfg = make_cfg(base_raw, {"portfolio": {"position_size_usd": 1000.0}})
    sc = Scenario(cfg)
    for sym, v in (("ETH", 0.03), ("LINK", 0.02), ("UNI", 0.01)):
        sc.signal(T0, Strategy.SWING, sym, 0.5, v)
    sc.run(T0, T0 + 5 * MIN)
    # SWING allocation 0.30 × deployable (0.8 × 10 000) = 2 400: two G = 1 000 fit, the third does not.
    assert [sc.decision(T0, Strategy.SWING, s)[1] for s in ("ETH", "LINK", "UNI")] == [
        "entered", "entered", "allocation_exhausted"]
    cash = make_cfg(base_raw, {"portfolio": {"position_size_usd": 3000.0,
                                             "allocation": {"dca": 0.9, "swing": 0.05, "channel": 0.05}},
                               "limits": {"max_position_cash_fraction": 0.35}})
    sc2 = Scenario(cash, best="DCA")
    for sym, v in (("LINK", -0.05), ("UNI", -0.04), ("DOGE", -0.03)):
        sc2.signal(T0, Strategy.DCA, sym, 0.5, v)
    sc2.run(T0, T0 + 5 * MIN)
    # After LINK: available = 10 000 − 3 000 × 1.003 = 6 991; 3 000 > 0.35 × 6 991 = 2 446.85.
    assert [sc2.decision(T0, Strategy.DCA, s)[1] for s in ("LINK", "UNI", "DOGE")] == [
        "entered", "insufficient_cash", "insufficient_cash"]


def random_bars(sc: Scenario, symbols, start, end, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for k, sym in enumerate(symbols):
        n = int((end - start) / MIN)
        close = 10.0 * np.exp(np.cumsum(rng.normal(0.0, 0.006, n)))
        opn = np.concatenate([[10.0], close[:-1]])
        for i in range(n):
            hi, lo = max(opn[i], close[i]) * 1.002, min(opn[i], close[i]) * 0.998
            sc.bar(sym, start + i * MIN, float(opn[i]), float(hi), float(lo), float(close[i]))


@pytest.mark.parametrize("per_symbol", [1, 2])
def test_limits_never_exceeded_when_everything_signals(base_raw, per_symbol):
    cfg = make_cfg(base_raw, {"limits": {"max_open_total": 4, "max_open_per_strategy": 2,
                                         "max_open_per_symbol": per_symbol}})
    sc = Scenario(cfg)
    active = sorted(sc.uni.active_symbols)
    random_bars(sc, sc.uni.symbols, T0 - 30 * MIN, T0 + 3 * H, seed=per_symbol)
    rng = np.random.default_rng(7)
    bests = ["SWING", "WAIT", "DCA", "CHANNEL", "NONE"]
    points = [T0 + k * 5 * MIN for k in range(30)]
    for k, t in enumerate(points):
        sc.set_best(t, bests[k % len(bests)])
        for s in STRATS:
            for sym in active:
                sc.signal(t, s, sym, float(rng.uniform(0.45, 1.0)), DEFAULT_VALUE[s] * float(rng.uniform(1, 2)))
    for t in points:  # one tick at a time, checking the state after each
        sc.run(t, t + 5 * MIN, validate=False)
        c = sc.state.open_counts()
        assert c.total <= 4 and all(v <= 2 for v in c.by_strategy.values())
        assert all(v <= per_symbol for v in c.by_symbol.values())
    rows = sc.scan_rows()
    ScanHistorySchema.validate(rows)
    check_ledger(sc.ledger)
    assert len(rows) == 30 * 3 * len(active) and rows["decision"].notna().all()
    reasons = set(rows.loc[rows.candidate, "reason"])
    assert {"entered", "symbol_open", "strategy_full", "portfolio_full", "not_prioritised"} <= reasons
    assert len(closed_trades(sc.ledger)) > 0  # positions closed and the freed slots were taken again
    first = rows[rows.timestamp == T0]
    # T0, best SWING with 6 ≥ 3 candidates: the best two SWING enter, the rest is strategy_full; others not listed.
    assert (first.query("strategy == 'SWING'")["reason"] == "entered").sum() == 2
    assert set(first.query("strategy == 'SWING'")["reason"]) == {"entered", "strategy_full"}
    assert set(first.query("strategy != 'SWING'")["reason"]) == {"not_prioritised"}


# ---------------------------------------------------------------------------------------------------------------
# The state, its JSON and the run's guards
# ---------------------------------------------------------------------------------------------------------------


def test_state_json_round_trip_is_exact(ecfg):
    sc = Scenario(ecfg, best="DCA").flat("LINK", 10.0, T0 - 30 * MIN, T0 + 6 * MIN)
    sc.bar("LINK", T0 + 6 * MIN, 9.8, 9.8, 9.5, 9.6).flat("LINK", 9.6, T0 + 7 * MIN, T0 + 30 * MIN)
    sc.flat("ETH", 100.0, T0 - 30 * MIN, T0 + 7 * MIN)
    stop_bar(sc, "ETH", T0 + 7 * MIN, 100.0)
    sc.signal(T0, Strategy.DCA, "LINK").signal(T0, Strategy.SWING, "ETH").signal(T0 + 15 * MIN, Strategy.DCA, "UNI")
    sc.events += [ManualClose(T0 + 11 * MIN, tgid("DCA", "LINK", T0), "a", "b"),
                  OperatorEvent(T0 + 2 * MIN, OperatorAction.PAUSE, "ops", "x"),
                  OperatorEvent(T0 + 7 * MIN, OperatorAction.RESUME, "ops", "y")]
    sc.drop("LINK", T0 + 8 * MIN, T0 + 30 * MIN)  # LINK stale at T0 + 15: the manual close waits
    sc.run(T0, T0 + 20 * MIN)
    st = sc.state
    assert st.positions and st.pending_orders and st.manual_pending and st.protection.limiter.symbols
    assert st.protection.operator.who == "ops" and st.shift.last_best is not None
    text = st.to_json()
    back = EngineState.from_json(text)
    assert back == st and back.to_json() == text
    assert EngineState.from_json(EngineState().to_json()) == EngineState()


def test_guards_fail_loudly(ecfg):
    sc = Scenario(ecfg).flat("ETH", 100.0, T0 - 30 * MIN, T0 + 30 * MIN).signal(T0, Strategy.SWING, "ETH")
    sc.run(T0, T0 + 10 * MIN)
    t = T0 + 15 * MIN  # skips T0 + 10
    inputs = EngineInputs(ecfg, sc.bars_frame(), sc.regime_frame([t], ecfg), ledger=sc.ledger,
                          scan_rows=sc.preview([t], ecfg))
    with pytest.raises(EngineInputError, match="does not follow"):
        run_engine(sc.state, inputs, [t])
    t = T0 + 10 * MIN
    inputs = EngineInputs(ecfg, sc.bars_frame(), sc.regime_frame([t], ecfg), ledger=empty_ledger(),
                          scan_rows=sc.preview([t], ecfg))
    with pytest.raises(EngineInvariantError, match="disagree"):  # a state without its ledger
        run_engine(sc.state, inputs, [t])
    with pytest.raises(EngineInputError, match="no row for cycle point"):
        run_engine(sc.state, EngineInputs(ecfg, sc.bars_frame(), sc.regime_frame([T0], ecfg), ledger=sc.ledger,
                                          scan_rows=sc.preview([t], ecfg)), [t])
    short = sc.preview([t], ecfg).iloc[:-1]
    with pytest.raises(EngineInputError, match="one per active symbol"):
        run_engine(sc.state, EngineInputs(ecfg, sc.bars_frame(), sc.regime_frame([t], ecfg), ledger=sc.ledger,
                                          scan_rows=short), [t])


def test_a_limit_violation_fails_loudly(ecfg, monkeypatch):
    """Were an execution check to let an order through, the post-tick assertion (§7.2, I-3) stops the run."""
    import cryptotracker_assets.core.engine.fold as engine_module
    from cryptotracker_assets.core.ledger import apply_order

    monkeypatch.setattr(engine_module, "admit", lambda ps, c, o, cfg: (None, *apply_order(ps, c, o, cfg)))
    sc = Scenario(ecfg).signal(T0, Strategy.SWING, "ETH").signal(T0, Strategy.DCA, "ETH")
    with pytest.raises(EngineInvariantError, match="max_open_per_symbol"):
        sc.run(T0, T0 + 5 * MIN)


def test_next_cycle_points(ecfg):
    assert list(next_cycle_points(EngineState(), ecfg, start=T0 + MIN, end=T0 + 16 * MIN)) == [
        T0 + 5 * MIN, T0 + 10 * MIN, T0 + 15 * MIN]
    assert list(next_cycle_points(EngineState(cursor=T0), ecfg, end=T0 + 10 * MIN)) == [T0 + 5 * MIN]
    with pytest.raises(EngineInputError):
        next_cycle_points(EngineState(), ecfg, end=T0)


def test_core_engine_never_imports_dagster():
    import subprocess
    import sys

    code = ("import sys, cryptotracker_assets.core.engine, cryptotracker_assets.core.prioritisation; "
            "sys.exit(1 if any(m.split('.')[0] == 'dagster' for m in sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
