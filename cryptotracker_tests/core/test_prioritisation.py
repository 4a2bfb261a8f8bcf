"""Market-aware prioritisation (SPEC §9.2) and the strategy-shift fold and rules (SPEC §9.3).

The config values the tests depend on are pinned first (``PINNED``); every expected order and reason is written out
by hand from the rules, never computed with the code under test.
"""

from __future__ import annotations

import pandas as pd
import pytest

from cryptotracker_assets.core.config import Strategy, build_config, merge, raw_dict
from cryptotracker_assets.core.exits import ExitReason
from cryptotracker_assets.core.prioritisation import (
    Candidate,
    Sentiment,
    ShiftState,
    advance_shift,
    hours_between,
    order_within_strategy,
    prioritise,
    sentiment,
    shift_applies,
    shift_exit_reason,
)
from cryptotracker_assets.core.regime import BestStrategy
from cryptotracker_assets.core.setups import ListType

PINNED = {"prioritisation": {
    "min_best_signals": 3, "sentiment_ratio": 1.5, "sentiment_weights": {"dca": 0.5, "swing": 1.0, "channel": 1.0},
    "shift": {"big_loss": -0.05, "moderate_loss": -0.02, "moderate_after_h": 2, "flat_band": 0.02,
              "flat_after_h": 4, "stale_win_age_h": 12}}}

D, S, C = Strategy.DCA, Strategy.SWING, Strategy.CHANNEL
T0 = pd.Timestamp("2024-05-01T00:00:00Z")
H = pd.Timedelta(hours=1)


@pytest.fixture(scope="module")
def pcfg(cfg):
    return build_config(merge(raw_dict(cfg), PINNED), source="test")


def cand(key, strategy, symbol, confidence=0.5, value=0.0):
    return Candidate(key, strategy, symbol, confidence, value)


def keys(p):
    return [c.key for c, _ in p.ordered]


# --- ordering within a strategy ---------------------------------------------------------------------------------


def test_within_strategy_confidence_then_strength_then_symbol():
    dca = [cand("a", D, "ETH", 0.5, -0.030), cand("b", D, "BTC", 0.5, -0.040), cand("c", D, "SOL", 0.7, -0.020),
           cand("d", D, "ADA", 0.5, -0.040)]
    # c has the highest confidence; then the lowest drop (-0.040: ADA before BTC by symbol), then -0.030.
    assert [c.key for c in order_within_strategy(dca)] == ["c", "d", "b", "a"]
    swing = [cand("a", S, "ETH", 0.5, 0.012), cand("b", S, "BTC", 0.5, 0.020), cand("c", S, "SOL", 0.5, 0.012)]
    # SWING: highest breakout first; equal breakouts by symbol.
    assert [c.key for c in order_within_strategy(swing)] == ["b", "a", "c"]  # ETH before SOL
    channel = [cand("a", C, "ETH", 0.5, 0.08), cand("b", C, "BTC", 0.5, 0.01), cand("c", C, "SOL", 0.6, 0.09)]
    # CHANNEL: lowest channel_position first, after confidence.
    assert [c.key for c in order_within_strategy(channel)] == ["c", "b", "a"]


# --- sentiment ---------------------------------------------------------------------------------------------------


def test_sentiment_weights_and_ratio_boundaries(pcfg):
    # bullish = 0.5·DCA + 1·SWING + 1·CHANNEL setups; bearish = CHANNEL top-of-range rows.
    assert sentiment({D: 0, S: 0, C: 0}, 0, pcfg) is Sentiment.NEUTRAL  # 0 > 1.5·0 is false both ways
    assert sentiment({D: 1, S: 0, C: 0}, 0, pcfg) is Sentiment.BULLISH  # 0.5 > 0
    assert sentiment({D: 0, S: 3, C: 0}, 2, pcfg) is Sentiment.NEUTRAL  # 3 = 1.5 × 2: not strictly greater
    assert sentiment({D: 1, S: 3, C: 0}, 2, pcfg) is Sentiment.BULLISH  # 3.5 > 3
    assert sentiment({D: 4, S: 0, C: 0}, 3, pcfg) is Sentiment.NEUTRAL  # 3 = 1.5 × 2 (4 DCA weigh 2)
    assert sentiment({D: 2, S: 0, C: 0}, 2, pcfg) is Sentiment.BEARISH  # 2 > 1.5 × 1
    assert sentiment({D: 0, S: 0, C: 0}, 1, pcfg) is Sentiment.BEARISH  # 1 > 0


# --- lists for best ∈ {DCA, SWING, CHANNEL} ---------------------------------------------------------------------


def _mixed():
    return [cand("d1", D, "ETH", 0.5, -0.03), cand("s1", S, "BTC", 0.5, 0.02), cand("s2", S, "SOL", 0.6, 0.01),
            cand("c1", C, "ADA", 0.5, 0.05), cand("d2", D, "XRP", 0.9, -0.02)]


def test_best_with_enough_signals_keeps_only_its_list(pcfg):
    cands = _mixed() + [cand("s3", S, "ADA", 0.5, 0.03)]
    p = prioritise(cands, BestStrategy.SWING, setups={D: 2, S: 3, C: 1}, top_of_range=0, cfg=pcfg)
    assert keys(p) == ["s2", "s3", "s1"]  # 3 = min_best_signals: SWING only, confidence then breakout
    assert {t for _, t in p.ordered} == {ListType.RECOMMENDED}
    assert sorted(c.key for c in p.not_prioritised) == ["c1", "d1", "d2"]
    assert p.sentiment is None


def test_best_short_of_signals_appends_others_unless_bearish(pcfg):
    p = prioritise(_mixed(), "SWING", setups={D: 2, S: 2, C: 1}, top_of_range=0, cfg=pcfg)
    # 2 SWING < 3: sentiment bullish (0.5·2 + 2 + 1 = 4 > 0) → others appended in the order DCA, SWING, CHANNEL.
    assert p.sentiment is Sentiment.BULLISH
    assert keys(p) == ["s2", "s1", "d2", "d1", "c1"]
    assert [t for _, t in p.ordered] == [ListType.RECOMMENDED] * 2 + [ListType.FALLBACK] * 3
    assert p.not_prioritised == ()
    neutral = prioritise(_mixed(), "SWING", setups={D: 2, S: 2, C: 1}, top_of_range=3, cfg=pcfg)
    assert neutral.sentiment is Sentiment.NEUTRAL  # bullish 4, bearish 3: neither beats 1.5×
    assert keys(neutral) == ["s2", "s1", "d2", "d1", "c1"]
    bearish = prioritise(_mixed(), "SWING", setups={D: 2, S: 2, C: 1}, top_of_range=7, cfg=pcfg)
    assert bearish.sentiment is Sentiment.BEARISH  # 7 > 1.5 × 4
    assert keys(bearish) == ["s2", "s1"]
    assert sorted(c.key for c in bearish.not_prioritised) == ["c1", "d1", "d2"]


def test_best_without_candidates_falls_back_to_the_others(pcfg):
    cands = [cand("d1", D, "ETH", 0.5, -0.03), cand("c1", C, "ADA", 0.5, 0.05)]
    p = prioritise(cands, BestStrategy.SWING, setups={D: 1, S: 0, C: 1}, top_of_range=0, cfg=pcfg)
    assert keys(p) == ["d1", "c1"]
    assert [t for _, t in p.ordered] == [ListType.FALLBACK, ListType.FALLBACK]


@pytest.mark.parametrize("best", [BestStrategy.WAIT, BestStrategy.NONE])
def test_wait_and_none_round_robin_then_confidence_blocks_nothing(pcfg, best):
    cands = [cand("d1", D, "AAA", 0.5, -0.05), cand("d2", D, "BBB", 0.5, -0.03), cand("d3", D, "CCC", 0.5, -0.02),
             cand("s1", S, "AAA", 0.5, 0.02), cand("c1", C, "BBB", 0.5, 0.01), cand("c2", C, "CCC", 0.7, 0.09)]
    p = prioritise(cands, best, setups={D: 3, S: 1, C: 2}, top_of_range=10, cfg=pcfg)
    # Round robin: d1 s1 c2 | d2 c1 | d3 (c2 leads CHANNEL on confidence); then a stable sort by confidence puts
    # c2 (0.7) first and keeps the round-robin order among the 0.5 ties. A bearish mood changes nothing.
    assert keys(p) == ["c2", "d1", "s1", "d2", "c1", "d3"]
    assert p.not_prioritised == ()
    assert {t for _, t in p.ordered} == {ListType.FALLBACK}


def test_every_candidate_is_placed_exactly_once(pcfg):
    for best in BestStrategy:
        p = prioritise(_mixed(), best, setups={D: 2, S: 2, C: 1}, top_of_range=1, cfg=pcfg)
        placed = keys(p) + [c.key for c in p.not_prioritised]
        assert sorted(placed) == sorted(c.key for c in _mixed())


def test_duplicate_keys_and_bad_confidence_raise(pcfg):
    with pytest.raises(ValueError):
        prioritise([cand("x", D, "A"), cand("x", S, "B")], "DCA", setups={}, top_of_range=0, cfg=pcfg)
    with pytest.raises(ValueError):
        cand("x", D, "A", confidence=1.5)
    with pytest.raises(ValueError):
        prioritise([], "MAYBE", setups={}, top_of_range=0, cfg=pcfg)


# --- the shift fold (§9.3) ---------------------------------------------------------------------------------------


def fold(bests, start=T0):
    st = ShiftState()
    out = []
    for i, b in enumerate(bests):
        st = advance_shift(st, start + i * pd.Timedelta(minutes=5), b)
        out.append(st)
    return out


def test_first_observed_best_only_initialises():
    (st,) = fold(["CHANNEL"])
    assert st.last_best is BestStrategy.CHANNEL and st.shifted_at == {}


def test_change_away_sets_and_return_clears():
    states = fold(["SWING", "SWING", "CHANNEL", "DCA", "SWING"])
    t = [T0 + i * pd.Timedelta(minutes=5) for i in range(5)]
    assert states[1].shifted_at == {}
    assert states[2].shifted_at == {S: t[2]}  # away from SWING
    assert states[3].shifted_at == {S: t[2], C: t[3]}  # SWING keeps its time; CHANNEL shifted at t3
    assert states[4].shifted_at == {C: t[3], D: t[4]}  # best is SWING again: cleared; DCA shifted


def test_none_is_ignored_and_wait_is_not_a_strategy():
    states = fold(["SWING", "NONE", "SWING", "NONE", "WAIT", "NONE", "DCA"])
    t = [T0 + i * pd.Timedelta(minutes=5) for i in range(7)]
    assert states[1].shifted_at == {} and states[1].last_best is BestStrategy.SWING
    assert states[2].shifted_at == {}
    assert states[4].shifted_at == {S: t[4]}  # SWING → WAIT is a change away from SWING
    assert states[5].last_best is BestStrategy.WAIT  # NONE: the last other value stands
    assert states[6].shifted_at == {S: t[4]}  # WAIT → DCA shifts nothing (WAIT is no strategy)
    first_none = fold(["NONE", "NONE", "DCA", "SWING"])
    assert first_none[1].last_best is None
    assert first_none[2].shifted_at == {}  # DCA is the first observed best: initialises only
    assert first_none[3].shifted_at == {D: t[3]}


def test_shift_applies_only_to_positions_entered_before_the_shift():
    st = fold(["DCA", "SWING"])[-1]
    at = T0 + pd.Timedelta(minutes=5)
    assert shift_applies(st, D, at - pd.Timedelta(minutes=1))
    assert not shift_applies(st, D, at)  # E < shifted_at, strictly
    assert not shift_applies(st, S, T0)  # best is SWING: no SWING position is evaluated
    with pytest.raises(ValueError):
        advance_shift(st, at, "DCA")  # cycle points move forward only


# --- the shift rules (net r, D and age in hours) -----------------------------------------------------------------


@pytest.mark.parametrize(
    "r, d_h, age_h, expected",
    [
        (-0.05, 0.0, 0.0, ExitReason.STRATEGY_SHIFT_BIG_LOSS),  # equal fires
        (-0.0501, 0.0, 0.0, ExitReason.STRATEGY_SHIFT_BIG_LOSS),
        (-0.0499, 1.99, 0.0, None),  # moderate needs D ≥ 2
        (-0.0499, 2.0, 0.0, ExitReason.STRATEGY_SHIFT_MODERATE_LOSS),
        (-0.02, 2.0, 0.0, ExitReason.STRATEGY_SHIFT_MODERATE_LOSS),  # equal fires
        (-0.0199, 3.99, 0.0, None),  # |r| < 0.02 but D < 4
        (-0.0199, 4.0, 0.0, ExitReason.STRATEGY_SHIFT_FLAT),
        (0.0199, 4.0, 0.0, ExitReason.STRATEGY_SHIFT_FLAT),
        (0.02, 4.0, 11.99, None),  # |r| = 0.02 is not flat; age < 12
        (0.02, 4.0, 12.0, ExitReason.STRATEGY_SHIFT_STALE_WIN),
        (0.001, 0.5, 12.0, ExitReason.STRATEGY_SHIFT_STALE_WIN),  # r > 0, old enough, flat not yet due
        (0.0, 0.5, 30.0, None),  # r = 0 is no win
        (-0.03, 1.0, 30.0, None),
    ],
)
def test_shift_rule_table(pcfg, r, d_h, age_h, expected):
    assert shift_exit_reason(r, d_h, age_h, pcfg) is expected


def test_shift_rule_order_first_match_wins(pcfg):
    # r = -0.06 matches big and moderate (D ≥ 2): big loss comes first; r = 0.01 at D ≥ 4 and age ≥ 12 is flat first.
    assert shift_exit_reason(-0.06, 5.0, 20.0, pcfg) is ExitReason.STRATEGY_SHIFT_BIG_LOSS
    assert shift_exit_reason(0.01, 5.0, 20.0, pcfg) is ExitReason.STRATEGY_SHIFT_FLAT
    with pytest.raises(ValueError):
        shift_exit_reason(float("nan"), 1.0, 1.0, pcfg)


def test_hours_between():
    assert hours_between(T0, T0 + 2 * H + pd.Timedelta(minutes=30)) == 2.5
    with pytest.raises(ValueError):
        hours_between(pd.Timestamp("2024-01-01"), T0)
