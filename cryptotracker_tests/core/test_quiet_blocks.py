"""The engine's fast path over quiet bars (issue 10, replay speed): when ``quiet_through`` clears a block of bars,
stepping them one by one (the stepper of SPEC §5.2) changes nothing but the high-water mark and the last bar time,
and ``pass_quietly`` leaves the position exactly as the stepping does. Checked on thousands of seeded random
positions (DCA grids, trails armed or not, time exits near) and blocks, including blocks the bound must refuse."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd

from cryptotracker_assets.core.exits import Bar, ExitRule, PositionState, pass_quietly, quiet_through, step

E = pd.Timestamp("2024-01-01", tz="UTC")
MIN = pd.Timedelta(minutes=1)


def _position(rng: np.random.Generator) -> tuple[PositionState, int]:
    levels = int(rng.choice([1, 1, 3, 5]))
    rule = ExitRule(take_profit=float(rng.choice([0.0, 0.01, 0.03])), stop_loss=float(rng.choice([0.0, 0.01, 0.02])),
                    trailing=float(rng.choice([0.0, 0.004, 0.01])),
                    trail_activation=float(rng.choice([0.0, 0.002, 0.008])),
                    max_hold_minutes=float(rng.choice([0.0, 30.0, 240.0])))
    st = PositionState.open(E, 100.0, 50.0, rule, 0.003, 0.0025, 1.0, levels=levels,
                            spacing=0.004 if levels > 1 else 0.0)
    # walk it a little (fills, a raised high-water mark), as the engine would have
    t = 0
    price = 100.0
    for _ in range(int(rng.integers(0, 20))):
        o = price
        c = o * (1 + rng.normal(0, 0.002))
        bar = Bar(E + t * MIN, o, max(o, c) * (1 + abs(rng.normal(0, 0.001))), min(o, c) * (1 - abs(rng.normal(0, 0.001))), c)
        if step(st, bar) is not None:
            return _position(rng)  # closed already: draw another
        price, t = c, t + 1
    return st, t


def test_a_cleared_block_steps_to_the_same_position_with_no_event():
    rng = np.random.default_rng(2024)
    cleared = refused = 0
    for _ in range(4000):
        st, t0 = _position(rng)
        n = int(rng.integers(1, 8))
        gap = int(rng.integers(1, 4))
        price = st.avg_entry * (1 + rng.normal(0, 0.004))
        rows = []
        for j in range(n):
            o = price
            c = o * (1 + rng.normal(0, 0.0015))
            rows.append((t0 + gap + j, o, max(o, c) * (1 + abs(rng.normal(0, 0.0008))),
                         min(o, c) * (1 - abs(rng.normal(0, 0.0008))), c))
            price = c
        ts = np.array([(E + m * MIN).value for m, *_ in rows])
        op, hi, lo, cl = (np.array([r[k] for r in rows]) for k in (1, 2, 3, 4))
        quiet = quiet_through(st, float(op.min()), float(lo.min()), float(hi.max()), float(op.max()), int(ts[-1]))
        stepped = copy.deepcopy(st)
        events = [step(stepped, Bar(E + m * MIN, o, h, lw, c)) for m, o, h, lw, c in rows if stepped.exit is None]
        if not quiet:
            refused += 1
            continue
        cleared += 1
        assert not any(events) and len(stepped.fills) == len(st.fills)
        fast = copy.deepcopy(st)
        pass_quietly(fast, float(hi.max()), E + rows[-1][0] * MIN)
        assert (fast.high_water, fast.last_time, fast.avg_entry, fast.stop_price, fast.take_profit_price) == (
            stepped.high_water, stepped.last_time, stepped.avg_entry, stepped.stop_price, stepped.take_profit_price)
    assert cleared > 1000 and refused > 500  # both paths are exercised
