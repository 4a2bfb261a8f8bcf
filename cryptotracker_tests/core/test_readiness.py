"""Readiness 0–100 and status labels (SPEC §3.6, I-9): the three formulas at their breakpoints against hand-computed
values, status cut-offs from the config, a firing setup is READY / BUY_ZONE whatever its score, and the scan rows
against a scalar re-implementation written here from the SPEC text, under the default and a changed config."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptotracker_assets.core import setups as S
from cryptotracker_assets.core.config import DEFAULT_CONFIG_PATH, build_config, load_config, merge

from .test_setups import FIRE, T0, random_bars, regime_frame, row, scan, series

DAY = pd.Timedelta(days=1)
DEFAULTS = load_config()  # for the hypothesis tests (no function-scoped fixtures there)


@pytest.fixture(scope="module")
def cfg():
    return load_config()


def config_with(override: dict):
    return build_config(merge(yaml.safe_load(DEFAULT_CONFIG_PATH.read_text()), override))


def swing(cfg, breakout, surge):
    sw, rs = cfg.strategies.swing, cfg.readiness.swing
    return S.swing_readiness(np.asarray(breakout, dtype=float), np.asarray(surge, dtype=float), sw.breakout_threshold,
                             sw.min_volume_surge, rs.breakout_weight, rs.volume_weight)


# ---------------------------------------------------------------------------------------------------------------
# Formulas at their breakpoints (defaults: breakout 0.010, surge 1.3, weights 0.7 / 0.3; DCA mid_cap −0.025)
# ---------------------------------------------------------------------------------------------------------------

SWING_CASES = [  # breakout, volume_surge, readiness = 0.7·b + 0.3·v
    (-0.03, 0.0, 0.0),  # x = −3 < −2: b = 0
    (-0.02, 0.0, 0.0),  # x = −2: b = 35·0
    (-0.01, 0.0, 24.5),  # x = −1: b = 35
    (0.0, 0.0, 49.0),  # x = 0: b = 70
    (0.005, 0.65, 71.0),  # x = 0.5: b = 80; v = 50
    (0.01, 1.3, 93.0),  # x = 1: b = 90; v = 100
    (0.015, 2.6, 96.5),  # x = 1.5: b = 95; v = min(100, 200)
    (0.02, 1.3, 100.0),  # x = 2: b = 100
    (0.05, 5.0, 100.0),  # x = 5: b = min(100, 130)
    (0.0, 1.95, 79.0),  # v = min(100, 150)
]


@pytest.mark.parametrize("breakout,surge,expected", SWING_CASES)
def test_swing_readiness_at_breakpoints(cfg, breakout, surge, expected):
    assert swing(cfg, [breakout], [surge])[0] == pytest.approx(expected, abs=1e-9)


def test_swing_readiness_is_continuous_at_its_breakpoints_and_null_without_inputs(cfg):
    eps = 1e-9
    for x in (-2.0, 0.0, 1.0, 2.0):
        b = x * cfg.strategies.swing.breakout_threshold
        lo, hi = swing(cfg, [b - eps, b + eps], [1.3, 1.3])
        assert lo == pytest.approx(hi, abs=1e-4), x
    assert np.isnan(swing(cfg, [np.nan], [1.0])[0]) and np.isnan(swing(cfg, [0.01], [np.nan])[0])
    half = config_with({"readiness": {"swing": {"breakout_weight": 0.5, "volume_weight": 0.5}}})
    assert swing(half, [0.005], [0.65])[0] == pytest.approx(0.5 * 80 + 0.5 * 50)


CHANNEL_CASES = [  # channel_position, flat, readiness
    (0.0, False, 100.0),
    (0.1, False, 100.0 - 20.0 * 10.0 / 35.0),  # 94.2857…
    (0.35, False, 80.0),  # both branches meet at p = 35
    (0.5, False, 56.0),  # 80 − 1.6·15
    (0.6625, False, 30.0),  # 80 − 1.6·31.25
    (0.85, False, 0.0),  # 80 − 1.6·50
    (1.0, False, 0.0),  # max(0, −24)
    (np.nan, True, 56.0),  # flat: p = 50
]


@pytest.mark.parametrize("pos,flat,expected", CHANNEL_CASES)
def test_channel_readiness_at_breakpoints(pos, flat, expected):
    assert S.channel_readiness(np.array([pos]), np.array([flat]))[0] == pytest.approx(expected, abs=1e-9)


def test_channel_readiness_null_without_a_valid_window():
    assert np.isnan(S.channel_readiness(np.array([np.nan]), np.array([False]))[0])


DCA_CASES = [  # drop, threshold, readiness; d = 100·|drop − t|
    (-0.025, -0.025, 80.0),
    (-0.05, -0.025, 90.0),  # d = 2.5 below: 80 + 10
    (-0.075, -0.025, 100.0),  # d = 5: 80 + 20
    (-0.2, -0.025, 100.0),  # capped
    (-0.02, -0.025, 70.0),  # d = 0.5 above: 80 − 10
    (-0.015, -0.025, 60.0),
    (-0.005, -0.025, 40.0),
    (0.0, -0.025, 30.0),
    (0.015, -0.025, 0.0),  # d = 4: 80 − 80
    (0.1, -0.025, 0.0),  # floored
    (-0.04, -0.04, 80.0),  # memecoin threshold
    (-0.0175, -0.0175, 80.0),  # large_cap threshold
]


@pytest.mark.parametrize("drop,threshold,expected", DCA_CASES)
def test_dca_readiness_at_breakpoints(drop, threshold, expected):
    assert S.dca_readiness(np.array([drop]), np.array([threshold]))[0] == pytest.approx(expected, abs=1e-9)


# ---------------------------------------------------------------------------------------------------------------
# Status labels
# ---------------------------------------------------------------------------------------------------------------


def test_status_cut_offs_come_from_the_config(cfg):
    rc = cfg.readiness
    no = np.zeros(6, dtype=bool)
    dca = S.readiness_status("DCA", np.array([80.0, 79.99, 60.0, 59.99, 0.0, np.nan]), no, rc)
    assert list(dca) == ["READY", "CLOSE", "CLOSE", "WAITING", "WAITING", None]
    sw = S.readiness_status("SWING", np.array([100.0, 90.0, 89.99, 70.0, 69.99, np.nan]), no, rc)
    assert list(sw) == ["READY", "READY", "CLOSE", "CLOSE", "WAITING", None]
    ch = S.readiness_status("CHANNEL", np.array([100.0, 80.0, 79.99, 30.0, 29.99, 0.0]), no, rc)
    assert list(ch) == ["BUY_ZONE", "BUY_ZONE", "NEUTRAL", "NEUTRAL", "SELL_ZONE", "SELL_ZONE"]
    # A firing setup is READY / BUY_ZONE whatever its score.
    fire = np.ones(2, dtype=bool)
    assert list(S.readiness_status("DCA", np.array([10.0, 65.0]), fire, rc)) == ["READY", "READY"]
    assert list(S.readiness_status("CHANNEL", np.array([5.0, 50.0]), fire, rc)) == ["BUY_ZONE", "BUY_ZONE"]
    strict = config_with({"readiness": {"dca": {"ready": 85, "close": 70}, "channel": {"buy_zone_score": 90}}})
    assert list(S.readiness_status("DCA", np.array([80.0, 69.0]), no[:2], strict.readiness)) == ["CLOSE", "WAITING"]
    assert list(S.readiness_status("CHANNEL", np.array([85.0]), no[:1], strict.readiness)) == ["NEUTRAL"]


def test_a_firing_setup_is_ready_whatever_its_score_in_the_scan():
    # DCA ready cut-off 95: a −0.026 drop on AVAX (−0.025) scores 80.4 but fires.
    cfg = config_with({"readiness": {"dca": {"ready": 95}}, "strategies": {"channel": {"buy_zone": 0.5}}})
    bars = pd.concat([series("AVAX", [100.0] * 44 + [97.4] * 2),
                      series("DOGE", [15.0] * 30 + [20.0, 10.0] + [15.0] * 12 + [14.5] * 2)], ignore_index=True)
    res = scan(cfg, bars, ["AVAX", "DOGE"])
    d = row(res, "DCA", "AVAX", FIRE)
    assert d.setup and d.readiness == pytest.approx(80.4) and d.status == "READY"
    c = row(res, "CHANNEL", "DOGE", FIRE)  # position 0.45 ≤ 0.5: p = 45 → 80 − 16 = 64 (NEUTRAL by score)
    assert c.setup and c.readiness == pytest.approx(64.0) and c.status == "BUY_ZONE"


# ---------------------------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------------------------

finite = st.floats(min_value=-1.0, max_value=1.0, allow_nan=False)
surges = st.floats(min_value=0.0, max_value=50.0, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(b1=finite, b2=finite, v1=surges, v2=surges)
def test_swing_readiness_is_bounded_and_monotone(b1, b2, v1, v2):
    cfg = DEFAULTS
    lo_b, hi_b = sorted((b1, b2))
    lo_v, hi_v = sorted((v1, v2))
    r = swing(cfg, [lo_b, hi_b, lo_b], [lo_v, hi_v, hi_v])
    assert ((r >= 0) & (r <= 100)).all()
    assert r[0] <= r[2] + 1e-9 and r[2] <= r[1] + 1e-9


@settings(max_examples=200, deadline=None)
@given(p1=st.floats(min_value=0.0, max_value=1.0), p2=st.floats(min_value=0.0, max_value=1.0),
       d1=finite, d2=finite, t=st.floats(min_value=-0.10, max_value=-0.001))
def test_channel_and_dca_readiness_are_bounded_and_monotone(p1, p2, d1, d2, t):
    lo, hi = sorted((p1, p2))
    c = S.channel_readiness(np.array([lo, hi]), np.zeros(2, dtype=bool))
    assert ((c >= 0) & (c <= 100)).all() and c[0] >= c[1] - 1e-9
    lo, hi = sorted((d1, d2))
    d = S.dca_readiness(np.array([lo, hi]), np.array([t, t]))
    assert ((d >= 0) & (d <= 100)).all() and d[0] >= d[1] - 1e-9


# ---------------------------------------------------------------------------------------------------------------
# Scan rows against a scalar re-implementation of §3.2 and §3.6 (I-9: same windows and live thresholds)
# ---------------------------------------------------------------------------------------------------------------


def ref_swing(breakout, surge, thr, min_surge, wb, wv):
    if math.isnan(breakout) or math.isnan(surge):
        return math.nan
    x = breakout / thr
    if x < -2:
        b = 0.0
    elif x < 0:
        b = 35 * (x + 2)
    elif x < 1:
        b = 70 + 20 * x
    else:
        b = min(100.0, 90 + 10 * (x - 1))
    return wb * b + wv * min(100.0, 100 * surge / min_surge)


def ref_channel(pos, width):
    if math.isnan(width):
        return math.nan
    p = 50.0 if width == 0 else 100 * pos
    return 100 - 20 * p / 35 if p <= 35 else max(0.0, 80 - 1.6 * (p - 35))


def ref_dca(drop, t):
    if math.isnan(drop):
        return math.nan
    d = 100 * abs(drop - t)
    return min(100.0, 80 + 4 * d) if drop <= t else max(0.0, 80 - 20 * d)


def ref_status(strategy, score, setup, rc):
    labels = {"DCA": ("READY", "CLOSE", "WAITING"), "SWING": ("READY", "CLOSE", "WAITING"),
              "CHANNEL": ("BUY_ZONE", "NEUTRAL", "SELL_ZONE")}[strategy]
    if setup:
        return labels[0]
    if math.isnan(score):
        return None
    top, mid = {"DCA": (rc.dca.ready, rc.dca.close), "SWING": (rc.swing.ready, rc.swing.close),
                "CHANNEL": (rc.channel.buy_zone_score, rc.channel.neutral)}[strategy]
    return labels[0] if score >= top else labels[1] if score >= mid else labels[2]


CHANGED = {"strategies": {"dca": {"drop_threshold": {"mid_cap": -0.01, "large_cap": -0.005}},
                          "swing": {"breakout_threshold": 0.004, "min_volume_surge": 1.1},
                          "channel": {"buy_zone": 0.25, "top_zone": 0.75}},
           "readiness": {"swing": {"breakout_weight": 0.6, "volume_weight": 0.4, "ready": 85, "close": 60},
                         "channel": {"buy_zone_score": 75, "neutral": 40}, "dca": {"ready": 75, "close": 50}}}


@pytest.mark.parametrize("override", [{}, CHANGED], ids=["defaults", "changed"])
def test_scan_rows_match_the_spec_formulas(override):
    cfg = config_with(override)
    syms = ["BTC", "ETH", "AVAX", "DOGE", "PEPE"]
    bars = random_bars(syms, 2 * 1440, seed=3)
    res = scan(cfg, bars, syms, start=T0 + DAY, end=T0 + 2 * DAY, regime=regime_frame(cfg, T0 + DAY, T0 + 2 * DAY))
    st_, rc = cfg.strategies, cfg.readiness
    n_setups = {"DCA": 0, "SWING": 0, "CHANNEL": 0}
    for r in res.scan_rows.itertuples(index=False):
        f = r._asdict()
        if r.strategy == "DCA":
            t = st_.dca.drop_threshold.of(r.tier)
            expected = ref_dca(f["drop"], t)
            fires = f["drop"] <= t
        elif r.strategy == "SWING":
            expected = ref_swing(r.breakout, r.volume_surge, st_.swing.breakout_threshold, st_.swing.min_volume_surge,
                                 rc.swing.breakout_weight, rc.swing.volume_weight)
            fires = r.breakout >= st_.swing.breakout_threshold and r.volume_surge > st_.swing.min_volume_surge
        else:
            expected = ref_channel(r.channel_position, r.channel_width)
            fires = r.channel_position <= st_.channel.buy_zone and not r.channel_position >= st_.channel.top_zone
        assert (math.isnan(expected) and math.isnan(r.readiness)) or r.readiness == pytest.approx(expected, abs=1e-9)
        assert bool(r.setup) == bool(fires), r.scan_id
        assert r.status == ref_status(r.strategy, r.readiness, fires, rc), r.scan_id
        n_setups[r.strategy] += bool(fires)
    assert min(n_setups.values()) > 0
    assert res.scan_rows.readiness.max() <= 100 and res.scan_rows.readiness.min() >= 0
