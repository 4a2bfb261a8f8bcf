"""Engine parity (SPEC §0.5, I-19) and exit parity with the batch simulator, on synthetic and real candles.

(a) One cycle point per call, the state round-tripped through JSON every time, equals one call over all cycle points:
    identical ledger, scan rows, snapshots, notifications and final state (also with the engine running the scan).
(b) The exits of SWING and CHANNEL positions not closed by a strategy shift, manually or for missing data equal
    ``simulate_exits`` on entries rebuilt from the ledger (entry time E, size G, effective tp, widened stop, trail,
    activation, max hold, taker fee, tier slippage).
Both on seeded synthetic 1m bars (``core.synthetic``) over two days and on the real BTC-quoted 5m candles of
``../shared/data`` (in CI a missing folder fails), where positions open and close and no rule is violated.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import yaml

from cryptotracker_assets.core import regime as R
from cryptotracker_assets.core import setups as S
from cryptotracker_assets.core.config import DEFAULT_CONFIG_PATH, Strategy, Tier, build_config, merge
from cryptotracker_assets.core.engine import (
    BarStore,
    EngineInputs,
    EngineState,
    ManualClose,
    next_cycle_points,
    run_engine,
)
from cryptotracker_assets.core.exits import ExitReason, simulate_exits
from cryptotracker_assets.core.ledger import append_rows, check_ledger, closed_trades, empty_ledger
from cryptotracker_assets.core.ohlc import flag_suspect
from cryptotracker_assets.core.protection import OperatorAction, OperatorEvent
from cryptotracker_assets.core.setup_schemas import ScanHistorySchema
from cryptotracker_assets.core.setups import ModelConfidence
from cryptotracker_assets.core.synthetic import generate_range
from cryptotracker_assets.core.universe import Universe
from cryptotracker_tests.conftest import five_minute_base

DAY = pd.Timedelta(days=1)
SYN_START = pd.Timestamp("2024-03-01", tz="UTC")
SYN_DAYS = 2
PREFIX = 200  # cycle points of the probe run (its state seeds the short runs)
PAIRS_DIR_NAME = "binance_altbtc_2018-01_5m"
REAL_START = pd.Timestamp("2018-01-15", tz="UTC")
REAL_DAYS = 4

# SWING thresholds lowered and short cooldowns so that the two synthetic days hold SWING and CHANNEL trades.
SYN_CONFIG = {
    "universe": {"market_symbol": "BTC", "inactive": ["ACT"], "large_cap": ["BTC", "ETH", "SOL"],
                 "mid_cap": ["LINK", "AVAX", "DOT"], "small_cap": ["DOGE"], "memecoin": ["PEPE", "ACT"]},
    "prioritisation": {"symbols": ["BTC", "ETH", "SOL", "LINK", "AVAX", "DOT", "DOGE"]},
    "strategies": {"swing": {"breakout_threshold": 0.001, "min_volume_surge": 1.0}},
    "protection": {"limiter": {"cooldown_h": {"large_cap": 0.5, "mid_cap": 0.5, "small_cap": 0.5, "memecoin": 0.5}}},
    "limits": {"loss_streak_pause_h": 2},
}


def _default_raw() -> dict:
    return yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())


# ---------------------------------------------------------------------------------------------------------------
# Independent checks shared by the runs
# ---------------------------------------------------------------------------------------------------------------

_NOT_BY_EXIT_RULES = {ExitReason.MANUAL.value, *(r.value for r in ExitReason if r.value.startswith("strategy_shift"))}


def simulator_parity(ledger: pd.DataFrame, bars: pd.DataFrame, cfg, processed_before: pd.Timestamp) -> dict:
    """Compare every SWING/CHANNEL group's exit with ``simulate_exits`` on an entry rebuilt from its ledger rows.

    Groups closed by a shift, manually or for no data are skipped; groups still open must be open in the simulator
    too (``end_of_data`` on the bars the engine had processed, open time < ``processed_before``)."""
    buys = ledger[(ledger.side == "BUY") & (ledger.level == 0) & ledger.strategy.isin(["SWING", "CHANNEL"])]
    sells = ledger[ledger.side == "SELL"].set_index("trade_group_id")
    skip = set(sells.index[sells.exit_reason.isin(_NOT_BY_EXIT_RULES) | sells.no_data])
    buys = buys[~buys.trade_group_id.isin(skip)].reset_index(drop=True)
    entries = pd.DataFrame({
        "entry_id": buys.trade_group_id, "symbol": buys.symbol, "entry_time": buys.entry_time,
        "size_usd": buys.group_size_usd, "take_profit": buys.take_profit, "stop_loss": buys.stop_loss,
        "trailing": buys.trailing, "trail_activation": buys.trail_activation, "max_hold_minutes": buys.max_hold_min,
        "fee": buys.taker_fee, "slippage": buys.slippage,
    })
    seen = bars[bars.timestamp < processed_before][["symbol", "timestamp", "open", "high", "low", "close", "volume"]]
    sim = simulate_exits(seen.reset_index(drop=True), entries, bar_minutes=cfg.engine.base_timeframe.minutes)
    assert len(sim) == len(entries)
    counts = {"closed": 0, "open": 0}
    for row in sim.itertuples(index=False):
        assert row.entry_time == buys.set_index("trade_group_id").loc[row.entry_id, "entry_time"]
        if row.entry_id in sells.index:
            s = sells.loc[row.entry_id]
            got = (s.bar_time, s.exit_reason, s.fill_price, s.qty, s.pnl_usd, s.pnl_pct)
            assert got == (row.exit_time, row.exit_reason, row.exit_price, row.quantity, row.pnl_usd,
                           row.pnl_ratio), row.entry_id
            counts["closed"] += 1
        else:
            assert row.exit_reason == ExitReason.END_OF_DATA.value, row.entry_id
            counts["open"] += 1
    return counts


def check_snapshots(ledger: pd.DataFrame, snapshots: pd.DataFrame, cfg) -> None:
    """I-4 at every cycle point, from the ledger prefix written up to T (independent sums)."""
    side = ledger.side.to_numpy()
    cp = ledger.cycle_point.to_numpy(dtype="datetime64[ns]")
    tg = ledger.trade_group_id.to_numpy()
    sold_at = dict(zip(tg[side == "SELL"], cp[side == "SELL"]))
    sell_cp, sell_pnl = cp[side == "SELL"], ledger.pnl_usd.to_numpy()[side == "SELL"]
    is_buy = side == "BUY"
    buy_cp, buy_tg = cp[is_buy], tg[is_buy]
    buy_cost = (ledger.size_usd.to_numpy() + ledger.fee_usd.to_numpy())[is_buy]
    buy_sold = np.array([sold_at.get(g, np.datetime64("NaT")) for g in buy_tg], dtype="datetime64[ns]")
    initial = cfg.portfolio.initial_balance_usd
    for snap in snapshots.itertuples(index=False):
        t = np.datetime64(snap.cycle_point.value, "ns")
        realised = math.fsum(sell_pnl[sell_cp <= t])
        live = (buy_cp <= t) & (np.isnat(buy_sold) | (buy_sold > t))
        open_cost = math.fsum(buy_cost[live])
        assert snap.realised == realised
        assert snap.open_count == len(set(buy_tg[live]))
        assert snap.cash + open_cost == pytest.approx(initial + realised, rel=1e-12)
        assert snap.equity == snap.cash + snap.positions_value
        assert snap.unrealised == pytest.approx(snap.positions_value - open_cost, abs=1e-9)


def check_rules(out, ledger: pd.DataFrame, cfg, state: EngineState) -> None:
    """Rules an independent reader can check on the outputs (beyond the engine's own assertions)."""
    check_ledger(ledger)
    ScanHistorySchema.validate(out.scan_rows)
    rows = out.scan_rows
    uni = Universe.from_config(cfg)
    per_t = rows.groupby("timestamp").size()
    assert (per_t == 3 * len(uni.active_symbols)).all()  # I-19: one row per active symbol × strategy × T
    takes = rows[rows.decision == "TAKE"]
    assert not takes.regime.isin(["PANIC", "UNKNOWN"]).any()
    expired = {n["scan_id"] for n in out.notifications if n["kind"] == "entry_expired"}
    opened = set(ledger.loc[(ledger.side == "BUY") & (ledger.level == 0), "scan_id"])
    pending = {o.scan_id for o in state.pending_orders}
    assert set(takes.scan_id) == opened | expired | pending  # every TAKE filled, expired or still pending
    assert not (opened & expired)
    ct = closed_trades(ledger)
    hold = pd.to_timedelta(ct.exit_time - ct.entry_time)
    max_hold = pd.Timedelta(hours=cfg.exits.max_hold_h)
    grace = pd.Timedelta(minutes=cfg.exits.no_data_grace_min)
    late = np.where(ct.no_data, grace + pd.Timedelta(cfg.engine.cycle_min, "min"), pd.Timedelta(0))
    assert (hold < max_hold + late).all()  # a no-data close comes within one cycle point after the grace
    assert ((ct.outcome == "WIN") == (ct.pnl_usd > 0)).all()
    # Open groups never above the limits at the end of any tick (the engine asserts open + pending each T).
    lim = cfg.limits
    opens = ledger[(ledger.side == "BUY") & (ledger.level == 0)].reset_index(drop=True)
    closes = ledger[ledger.side == "SELL"].set_index("trade_group_id").cycle_point
    b = opens.cycle_point.to_numpy(dtype="datetime64[ns]")
    e = opens.trade_group_id.map(closes).to_numpy(dtype="datetime64[ns]")
    for t in out.snapshots.cycle_point.to_numpy(dtype="datetime64[ns]"):
        live = opens[(b <= t) & (np.isnat(e) | (e > t))]
        assert len(live) <= lim.max_open_total
        assert live.strategy.value_counts().max() <= lim.max_open_per_strategy if len(live) else True
        assert live.symbol.value_counts().max() <= lim.max_open_per_symbol if len(live) else True


# ---------------------------------------------------------------------------------------------------------------
# Synthetic bars
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def syn():
    cfg = build_config(merge(_default_raw(), SYN_CONFIG))
    uni = Universe.from_config(cfg)
    end = SYN_START + SYN_DAYS * DAY
    warm = max(S.setups_warmup(cfg), R.regime_warmup(cfg))
    bars = pd.concat([generate_range(s, uni.tier(s), "1m", SYN_START - warm, end, "BTC", Tier.LARGE_CAP)
                      for s in uni.symbols], ignore_index=True)
    bars["suspect"] = flag_suspect(bars, cfg.data.health.extreme_move)
    bars["ingested_at"] = bars["timestamp"] + pd.Timedelta(minutes=1)
    regime, _ = R.build_market_regime(bars, cfg, start=SYN_START, end=end)
    preview = S.scan_cycle_points(bars, regime, cfg, start=SYN_START, end=end).scan_rows
    points = next_cycle_points(EngineState(), cfg, start=SYN_START, end=end)
    # Operator events: a pause and a resume, and a manual close of the first position a probe run opens.
    store = BarStore.from_frame(bars)
    probe_state, probe = run_engine(EngineState(), EngineInputs(cfg, store, regime, scan_rows=preview),
                                    points[:PREFIX])
    first = probe.ledger_rows.iloc[0]
    events = (OperatorEvent(SYN_START + pd.Timedelta(hours=9, minutes=2), OperatorAction.PAUSE, "ops", "test"),
              OperatorEvent(SYN_START + pd.Timedelta(hours=10, minutes=3), OperatorAction.RESUME, "ops", "done"),
              ManualClose(first.entry_time + pd.Timedelta(minutes=12), first.trade_group_id, "ops", "manual test"))
    state, out = run_engine(EngineState(), EngineInputs(cfg, store, regime, events=events, scan_rows=preview), points)
    return {"cfg": cfg, "bars": bars, "store": store, "regime": regime, "preview": preview, "points": points,
            "events": events, "state": state, "out": out,
            "prefix": (probe_state, append_rows(empty_ledger(), probe.ledger_rows))}


def test_synthetic_run_opens_closes_and_violates_no_rule(syn):
    out, cfg = syn["out"], syn["cfg"]
    ledger = append_rows(empty_ledger(), out.ledger_rows)
    check_rules(out, ledger, cfg, syn["state"])
    check_snapshots(ledger, out.snapshots, cfg)
    ct = closed_trades(ledger)
    assert {"SWING", "CHANNEL"} <= set(ct.strategy)
    assert "manual" in set(ct.exit_reason)
    assert any(r.startswith("strategy_shift") for r in ct.exit_reason)
    reasons = set(out.scan_rows.reason)
    assert {"entered", "paused", "symbol_open"} <= reasons
    assert out.watermark == syn["bars"].loc[syn["bars"].timestamp < syn["points"][-1], "ingested_at"].max()


def test_synthetic_exits_equal_the_batch_simulator(syn):
    counts = simulator_parity(syn["out"].ledger_rows, syn["bars"], syn["cfg"], syn["points"][-1])
    assert counts["closed"] >= 10
    by = syn["out"].ledger_rows.query("side == 'SELL'").strategy.value_counts()
    assert by.get("SWING", 0) >= 1 and by.get("CHANNEL", 0) >= 1


def _slices(frame: pd.DataFrame) -> dict:
    return {t: g for t, g in frame.groupby("timestamp", sort=True)}


def test_tick_by_tick_equals_one_run(syn):
    """Day 1 one cycle point per call (state through JSON each time), day 2 in one call: equal to the 2-day run."""
    cfg, points, events = syn["cfg"], syn["points"], syn["events"]
    rows_at, regime_at = _slices(syn["preview"]), _slices(syn["regime"])
    day1 = [t for t in points if t < SYN_START + DAY]
    day2 = [t for t in points if t >= SYN_START + DAY]
    state, ledger, outs = EngineState(), empty_ledger(), []
    for t in day1:
        state = EngineState.from_json(state.to_json())
        inputs = EngineInputs(cfg, syn["store"], regime_at[t], ledger=ledger, events=events, scan_rows=rows_at[t])
        state, out = run_engine(state, inputs, [t])
        ledger = append_rows(ledger, out.ledger_rows)
        outs.append(out)
    state = EngineState.from_json(state.to_json())
    state, out = run_engine(state, EngineInputs(cfg, syn["store"], syn["regime"], ledger=ledger, events=events,
                                                scan_rows=syn["preview"]), day2)
    ledger = append_rows(ledger, out.ledger_rows)
    outs.append(out)
    batch = syn["out"]
    pd.testing.assert_frame_equal(ledger, batch.ledger_rows)
    pd.testing.assert_frame_equal(pd.concat([o.scan_rows for o in outs], ignore_index=True), batch.scan_rows)
    pd.testing.assert_frame_equal(pd.concat([o.snapshots for o in outs], ignore_index=True), batch.snapshots)

    def key(n):
        return tuple(sorted((k, repr(v)) for k, v in n.items()))

    assert [key(n) for o in outs for n in o.notifications] == [key(n) for n in batch.notifications]
    assert state.to_json() == syn["state"].to_json() and state == syn["state"]
    assert outs[-1].watermark == batch.watermark
    assert (ledger.cycle_point < SYN_START + DAY).sum() > 20 and len(ledger) > 50


def test_tick_by_tick_equals_one_run_with_the_engine_scanning(syn):
    cfg, points = syn["cfg"], syn["points"][PREFIX:PREFIX + 12]
    start_state, ledger0 = syn["prefix"]  # the state after the first PREFIX cycle points (no operator events)
    batch_state, batch = run_engine(start_state, EngineInputs(cfg, syn["store"], syn["regime"], ledger=ledger0),
                                    points)
    state, ledger, rows = start_state, ledger0, []
    for t in points:
        state, out = run_engine(EngineState.from_json(state.to_json()),
                                EngineInputs(cfg, syn["store"], syn["regime"], ledger=ledger), [t])
        ledger = append_rows(ledger, out.ledger_rows)
        rows.append(out.scan_rows)
    pd.testing.assert_frame_equal(pd.concat(rows, ignore_index=True), batch.scan_rows)
    assert state.to_json() == batch_state.to_json()
    pd.testing.assert_frame_equal(ledger, append_rows(ledger0, batch.ledger_rows))
    # The engine's own scan equals the precomputed preview it decides on (steps 1–3 unchanged).
    pre = syn["preview"][syn["preview"].timestamp.isin(points)].reset_index(drop=True)
    undecided = batch.scan_rows.drop(columns=["decision", "reason", "list_type"])
    pd.testing.assert_frame_equal(undecided, pre.drop(columns=["decision", "reason", "list_type"]))


def test_a_champion_model_plugs_in_as_the_confidence_source(syn):
    """The models issue plugs a champion in through ``EngineInputs.confidence`` (SPEC §3.3): its probability is
    the confidence and ``ml.confidence_threshold.<s>`` the threshold; the other strategies keep the rule."""
    cfg, points = syn["cfg"], syn["points"][PREFIX:PREFIX + 24]
    start_state, ledger = syn["prefix"]
    champion = ModelConfidence("channel_202402010000", lambda rows: np.full(len(rows), 0.9))
    _, out = run_engine(start_state, EngineInputs(cfg, syn["store"], syn["regime"], ledger=ledger,
                                                  confidence={Strategy.CHANNEL: champion}), points)
    rows = out.scan_rows
    ch = rows[(rows.strategy == "CHANNEL") & rows.setup]
    assert len(ch) > 0 and (ch.confidence == 0.9).all()
    assert set(ch.confidence_source) == {"model:channel_202402010000"}
    assert (rows.loc[rows.strategy == "CHANNEL", "threshold"] == cfg.ml.confidence_threshold.channel).all()
    assert (rows.loc[rows.strategy != "CHANNEL", "threshold"] == cfg.ml.rule.threshold).all()
    opened = [n for n in out.notifications if n["kind"] == "opened" and n["strategy"] == "CHANNEL"]
    assert opened and {n["confidence_source"] for n in opened} == {"model:channel_202402010000"}


# ---------------------------------------------------------------------------------------------------------------
# Real candles (../shared/data): BTC-quoted 5m pairs through the January 2018 crash
# ---------------------------------------------------------------------------------------------------------------


def real_config(pairs: list[str]):
    user = {
        "universe": {"market_symbol": "ETH-BTC", "inactive": [], "large_cap": pairs[:3], "mid_cap": pairs[3:7],
                     "small_cap": pairs[7:], "memecoin": []},
        **five_minute_base(),
        "strategies": {"swing": {"lookback_min": 10}},
        "scan": {"windows_min": {"rsi": 15, "btc_corr": 300}},
        "prioritisation": {"symbols": pairs},
    }
    return build_config(merge(_default_raw(), user), source="real pairs")


def test_real_candles_run(shared_data):
    folder = shared_data / PAIRS_DIR_NAME
    files = sorted(folder.glob("*.parquet"))
    assert len(files) >= 10, f"expected the 5m pairs in {folder}"
    bars = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    pairs = sorted(bars.symbol.unique())
    # The market symbol first, as in the asset tests: ETH-BTC is large cap.
    pairs = ["ETH-BTC"] + [p for p in pairs if p != "ETH-BTC"]
    cfg = real_config(pairs)
    end = REAL_START + REAL_DAYS * DAY
    bars = bars[(bars.timestamp >= REAL_START - S.setups_warmup(cfg)) & (bars.timestamp < end)].reset_index(drop=True)
    bars["suspect"] = flag_suspect(bars, cfg.data.health.extreme_move)
    bars["ingested_at"] = bars["timestamp"] + pd.Timedelta(minutes=5)
    regime, _ = R.build_market_regime(bars, cfg, start=REAL_START, end=end)
    points = next_cycle_points(EngineState(), cfg, start=REAL_START, end=end)
    state, out = run_engine(EngineState(), EngineInputs(cfg, bars, regime), points)
    ledger = append_rows(empty_ledger(), out.ledger_rows)
    check_rules(out, ledger, cfg, state)
    check_snapshots(ledger, out.snapshots, cfg)
    ct = closed_trades(ledger)
    assert len(ct) >= 5 and out.snapshots.open_count.max() >= 1  # positions open and close
    assert set(regime.regime) - {"NORMAL"}  # the crash: protection states other than NORMAL occur
    counts = simulator_parity(ledger, bars, cfg, points[-1])
    assert counts["closed"] >= 3
    # SPEC I-15 on real candles: every real trade's CHAMPION shadow is the trade (shift / manual / no-data aside)
    from cryptotracker_tests.core.test_shadows import assert_champions_reproduce

    assert assert_champions_reproduce(out.shadow_decisions, out.shadow_exits, ledger) >= 3
