"""The batch simulator's kernel (SPEC §5.2): every open entry advanced together, vectorised over entries.

Entries come prepared by :mod:`.batch` as :class:`Entries`; :func:`run_kernel` returns per entry the global index of
the exit bar, the raw exit price and the exit reason as an int8 code of :data:`REASON_BY_CODE`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from .rules import ExitReason

if TYPE_CHECKING:
    from .batch import BarArrays

# Blocks examined per entry and coarse step.
_COARSE_SPAN = 16
# Reasons the kernel can produce, by code (its int8 encoding).
REASON_BY_CODE = (
    None,
    ExitReason.STOP_LOSS,
    ExitReason.TRAILING_STOP,
    ExitReason.TAKE_PROFIT,
    ExitReason.TIME_EXIT,
    ExitReason.END_OF_DATA,
)
_STOP, _TRAIL, _TP, _TIME, _EOD = 1, 2, 3, 4, 5


class Entries(NamedTuple):
    """Entries prepared for the kernel: arrays over the entries that have an entry bar (levels precomputed)."""

    pos: np.ndarray  # row positions in the input frame that have an entry bar
    start: np.ndarray  # global index of the entry bar
    horizon: np.ndarray  # last global bar index checked for stop / take profit
    has_time: np.ndarray  # the horizon bar is the time-exit bar
    size: np.ndarray
    fee: np.ndarray
    slip: np.ndarray
    avg: np.ndarray  # A = entry fill
    tp: np.ndarray  # TP level, +inf when disabled
    stop: np.ndarray  # static stop level, -inf when disabled
    act: np.ndarray  # activation level, +inf when the trail is disabled
    keep: np.ndarray  # 1 - trailing


# The batch kernel advances all open entries together, vectorised over entries. A "fine" step scans one block of
# bars exactly (2-D gather, running max for the high-water mark) and is the only place an exit is decided. A
# "coarse" step skips whole blocks that provably hold no stop or take-profit hit: within a block H can only rise up
# to the block's max high, so the effective stop is bounded above by max(S, max-high × (1 − r)); a block whose
# min(open, low) stays above that bound and whose max(open, high) stays below TP is skipped with H updated exactly.
# Pruning is conservative, so it never changes a result (the tests run block sizes 1…64 against a plain loop). The
# time exit and end of data need no scan: the time-exit bar is found by binary search and caps the horizon.


def _fine_step(bars: BarArrays, en: Entries, idx, pos, hw, block, out_i, out_raw, out_code):
    """Scan each entry from ``pos`` to the end of its block (or its horizon), exactly.

    Returns (still-open mask, next position, high-water mark before the next position).
    """
    k = np.arange(block)[:, None]
    limit = np.minimum((pos // block + 1) * block, en.horizon[idx] + 1)
    width = limit - pos
    gi = np.minimum(pos[None, :] + k, len(bars.ts) - 1)
    o, h, lo = bars.open[gi], bars.high[gi], bars.low[gi]
    run = np.maximum.accumulate(h, axis=0)
    hb = np.empty_like(run)
    hb[0] = hw
    np.maximum(run[:-1], hw[None, :], out=hb[1:])
    stop = en.stop[idx][None, :]
    tp = en.tp[idx][None, :]
    lvl = hb * en.keep[idx][None, :]
    trail_on = (hb >= en.act[idx][None, :]) & (lvl > stop)
    eff = np.where(trail_on, lvl, stop)
    gap = o <= eff
    hit_stop = gap | (lo <= eff)
    gap_tp = o >= tp
    hit = (hit_stop | gap_tp | (h >= tp)) & (k < width[None, :])
    first = hit.argmax(axis=0)
    done = hit[first, np.arange(len(idx))]
    if done.any():
        d = np.flatnonzero(done)
        f = first[d]
        is_stop = hit_stop[f, d]
        stop_raw = np.where(gap[f, d], o[f, d], eff[f, d])
        tp_raw = np.where(gap_tp[f, d], o[f, d], en.tp[idx[d]])
        code = np.where(is_stop, np.where(trail_on[f, d], _TRAIL, _STOP), _TP)
        sel = idx[d]
        out_i[sel] = pos[d] + f
        out_raw[sel] = np.where(is_stop, stop_raw, tp_raw)
        out_code[sel] = code
    openm = ~done
    last = np.maximum(width - 1, 0)
    new_hw = np.maximum(hw, run[last, np.arange(len(idx))])
    return openm, limit, new_hw


def _coarse_step(en: Entries, blocks, idx, pos, hw, block):
    """From block-aligned ``pos``, skip blocks where no stop or take profit can fire (conservative bounds).

    Returns (candidate found, reached horizon without candidate, next position, high-water mark there).
    """
    max_h, max_oh, min_ol = blocks
    b0 = pos // block
    nbk = en.horizon[idx] // block - b0 + 1
    span = int(min(_COARSE_SPAN, nbk.max()))
    k = np.arange(span)[:, None]
    bi = np.minimum(b0[None, :] + k, len(max_h) - 1)
    hu = np.maximum(np.maximum.accumulate(max_h[bi], axis=0), hw[None, :])  # H bound within / after each block
    hs = np.empty_like(hu)  # exact H before each block (only blocks before the horizon block are used)
    hs[0] = hw
    hs[1:] = hu[:-1]
    keep = en.keep[idx][None, :]
    stop = en.stop[idx][None, :]
    lvl_hi = np.maximum(hu * keep, hs * keep)  # H × (1 − r) is monotone in H, either sign of (1 − r)
    eff_hi = np.where(hu >= en.act[idx][None, :], np.maximum(stop, lvl_hi), stop)
    cand = ((min_ol[bi] <= eff_hi) | (max_oh[bi] >= en.tp[idx][None, :])) & (k < nbk[None, :])
    first = cand.argmax(axis=0)
    cols = np.arange(len(idx))
    found = cand[first, cols]
    exhausted = ~found & (span >= nbk)
    nxt = np.where(found, (b0 + first) * block, (b0 + span) * block)
    new_hw = np.where(found, hs[first, cols], hu[span - 1, cols])
    return found, exhausted, nxt, new_hw


def run_kernel(bars: BarArrays, en: Entries, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exit bar index, raw exit price and reason code (:data:`REASON_BY_CODE`) of every entry."""
    n = len(en.start)
    out_i = np.full(n, -1, dtype=np.int64)
    out_raw = np.full(n, np.nan)
    out_code = np.zeros(n, dtype=np.int8)
    if n == 0:
        return out_i, out_raw, out_code
    blocks = bars.block_stats(block)
    idx = np.arange(n)
    pos = en.start.copy()
    hw = en.avg.copy()
    fine = np.ones(n, dtype=bool)
    while idx.size:
        # Exact scan of one (partial) block for entries in fine mode.
        f = np.flatnonzero(fine)
        if f.size:
            openm, nxt, nhw = _fine_step(bars, en, idx[f], pos[f], hw[f], block, out_i, out_raw, out_code)
            pos[f], hw[f] = nxt, nhw
            alive = np.ones(idx.size, dtype=bool)
            alive[f[~openm]] = False
            alive[f[openm & (nxt > en.horizon[idx[f]])]] = False  # horizon reached: no stop / take profit
            fine[f] = False
            idx, pos, hw, fine = idx[alive], pos[alive], hw[alive], fine[alive]
        # Coarse skip for the others.
        c = np.flatnonzero(~fine)
        if c.size:
            found, exhausted, nxt, nhw = _coarse_step(en, blocks, idx[c], pos[c], hw[c], block)
            pos[c], hw[c] = nxt, nhw
            fine[c] = found
            alive = np.ones(idx.size, dtype=bool)
            alive[c[exhausted]] = False
            idx, pos, hw, fine = idx[alive], pos[alive], hw[alive], fine[alive]
    rest = out_code == 0
    tm = rest & en.has_time
    eod = rest & ~en.has_time
    out_i[rest] = en.horizon[rest]
    out_raw[rest] = bars.close[en.horizon[rest]]
    out_code[tm] = _TIME
    out_code[eod] = _EOD
    return out_i, out_raw, out_code
