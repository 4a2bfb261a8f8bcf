"""The engine's incremental portfolio state (issue 10, replay speed) equals the ledger-derived one at every cycle
point of a random run, and the engine's outputs do not depend on which of the two it uses.

The run: 3 UTC days × 20 symbols of seeded synthetic 1m bars, thresholds loosened so that DCA grids fill level by
level, positions stop out, take profit, trail, time out and are shifted, and the book stays busy. With
``verify=True`` the engine rebuilds the portfolio state and the open counts from the ledger (the pre-issue-10
method) at every cycle point and raises on the first difference; independently of both, every snapshot is checked
against sums over the ledger prefix written up to its cycle point.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cryptotracker_assets.core import regime as R
from cryptotracker_assets.core import setups as S
from cryptotracker_assets.core.common import ExactSum
from cryptotracker_assets.core.config import Tier, build_config, merge
from cryptotracker_assets.core.engine import (BarStore, EngineInputs, EngineInvariantError, EngineState,
                                              next_cycle_points, run_engine)
from cryptotracker_assets.core.ledger import append_rows, check_ledger, closed_trades, empty_ledger, open_groups
from cryptotracker_assets.core.ohlc import flag_suspect
from cryptotracker_assets.core.synthetic import generate_range
from cryptotracker_assets.core.universe import Universe
from cryptotracker_tests.core.test_engine_parity import _default_raw, check_snapshots

START = pd.Timestamp("2024-05-06", tz="UTC")
DAYS = 3
SYMBOLS = {
    "large_cap": ["BTC", "ETH", "SOL", "BNB"],
    "mid_cap": ["LINK", "AVAX", "DOT", "UNI", "ATOM", "NEAR", "ARB", "OP"],
    "small_cap": ["DOGE", "TRX", "SHIB"],
    "memecoin": ["PEPE", "WIF", "BONK", "FLOKI", "MEME"],
}
BUSY = {
    "universe": {"market_symbol": "BTC", "inactive": [], **SYMBOLS},
    "prioritisation": {"symbols": ["BTC", "ETH", "SOL", "BNB", "LINK", "AVAX", "DOT", "DOGE"]},
    "strategies": {
        "dca": {"drop_threshold": {"large_cap": -0.004, "mid_cap": -0.006, "small_cap": -0.008, "memecoin": -0.01},
                "grid": {"spacing": {"large_cap": 0.002, "mid_cap": 0.003, "small_cap": 0.004, "memecoin": 0.005}}},
        "swing": {"breakout_threshold": 0.001, "min_volume_surge": 1.0},
    },
    "exits": {"max_hold_h": 6},
    "shadow": {"variations": {"quick_exits": {"max_hold_h": 6}, "ml_trust": {"hold_h_range": [1, 6]}}},
    "protection": {"limiter": {"cooldown_h": {"large_cap": 0.25, "mid_cap": 0.25, "small_cap": 0.25,
                                              "memecoin": 0.25}}},
    "limits": {"loss_streak": 50},
}


@pytest.fixture(scope="module")
def busy():
    cfg = build_config(merge(_default_raw(), BUSY))
    uni = Universe.from_config(cfg)
    end = START + DAYS * pd.Timedelta(days=1)
    warm = max(S.setups_warmup(cfg), R.regime_warmup(cfg))
    bars = pd.concat([generate_range(s, uni.tier(s), "1m", START - warm, end, "BTC", Tier.LARGE_CAP)
                      for s in uni.symbols], ignore_index=True)
    # thin the bars at random (illiquid minutes have no bar): gaps, stale symbols and no-data closes happen too
    keep = np.random.default_rng(11).random(len(bars)) > 0.03
    bars = bars[keep | (bars["symbol"] == "BTC")].reset_index(drop=True)
    bars["suspect"] = flag_suspect(bars, cfg.data.health.extreme_move)
    bars["ingested_at"] = bars["timestamp"] + pd.Timedelta(minutes=1)
    regime, _ = R.build_market_regime(bars, cfg, start=START, end=end)
    preview = S.scan_cycle_points(bars, regime, cfg, start=START, end=end).scan_rows
    points = next_cycle_points(EngineState(), cfg, start=START, end=end)
    return cfg, BarStore.from_frame(bars), regime, preview, points


def test_incremental_portfolio_equals_the_ledger_derived_one_at_every_cycle_point(busy):
    cfg, store, regime, preview, points = busy
    # day by day, the ledger passed back in (as the runner does): the incremental state starts from that ledger
    state, ledger, outs = EngineState(), empty_ledger(), []
    for d in range(DAYS):
        pts = points[(points >= START + pd.Timedelta(days=d)) & (points < START + pd.Timedelta(days=d + 1))]
        state, out = run_engine(state, EngineInputs(cfg, store, regime, ledger=ledger, scan_rows=preview), pts,
                                verify=True)
        ledger = append_rows(ledger, out.ledger_rows)
        outs.append(out)
    snapshots = pd.concat([o.snapshots for o in outs], ignore_index=True)
    ct = closed_trades(ledger)
    # the run is busy: every exit kind, DCA grids filled beyond level 0, many groups open at once
    assert {"stop_loss", "take_profit", "trailing_stop", "time_exit"} <= set(ct.exit_reason)
    assert (ledger["level"] >= 2).any() and len(ct) >= 100
    assert snapshots["open_count"].max() >= 10
    check_snapshots(ledger, snapshots, cfg)  # independent sums over the ledger prefix of every cycle point
    # the final state's open groups are the ledger's open groups
    groups = {(g.symbol, g.sizes, g.fees, g.quantities) for g in open_groups(ledger)}
    assert groups == {(p.meta.symbol, tuple(f.size_usd for f in p.state.fills),
                       tuple(f.fee_usd for f in p.state.fills), tuple(f.quantity for f in p.state.fills))
                      for p in state.positions}
    # the same run without the check gives the same rows and state, bit for bit
    plain_state, plain = run_engine(EngineState(), EngineInputs(cfg, store, regime, scan_rows=preview), points)
    pd.testing.assert_frame_equal(plain.ledger_rows, ledger, check_exact=True)
    pd.testing.assert_frame_equal(plain.snapshots, snapshots, check_exact=True)
    assert plain_state.to_json() == state.to_json()
    # a time exit never comes before max hold, nor later than the first bar reaching it (bars may be missing)
    late = ct[(ct.exit_reason == "time_exit") & ~ct.no_data]
    hold = pd.Timedelta(hours=cfg.exits.max_hold_h)
    assert (late.exit_time + pd.Timedelta(minutes=1) >= late.entry_time + hold).all()
    check_ledger(ledger)


def test_verify_catches_a_ledger_that_disagrees_with_the_positions(busy):
    # an open group's BUY row whose quantity differs from the state's fill: the check names the fields it moves
    cfg, store, regime, preview, points = busy
    state, out = run_engine(EngineState(), EngineInputs(cfg, store, regime, scan_rows=preview), points[:200])
    assert state.positions
    ledger = out.ledger_rows.copy()
    tgid = state.positions[0].trade_group_id
    row = ledger.index[(ledger["trade_group_id"] == tgid) & (ledger["level"] == 0)][0]
    ledger.loc[row, "qty"] *= 1.01
    inputs = EngineInputs(cfg, store, regime, ledger=ledger, scan_rows=preview)
    with pytest.raises(EngineInvariantError, match=r"differs from the ledger's in \['positions_value', 'unrealised', "
                                                   r"'mark_equity'\]"):
        run_engine(state, inputs, points[200:210], verify=True)
    run_engine(state, inputs, points[200:210])  # without the check the run trusts its state


def test_exact_sum_equals_fsum_in_any_order():
    rng = np.random.default_rng(5)
    values = list(rng.normal(0, 1, 2000) * 10.0 ** rng.integers(-8, 8, 2000))
    acc = ExactSum()
    for i, v in enumerate(values):
        acc.add(v)
        if i % 97 == 0:
            assert acc.value == math.fsum(values[: i + 1])
    assert acc.value == math.fsum(reversed(values)) == math.fsum(sorted(values))
    assert ExactSum([1e16, 1.0, -1e16]).value == 1.0 != (1e16 + 1.0) - 1e16
    with pytest.raises(ValueError, match="finite"):
        ExactSum([math.nan])
