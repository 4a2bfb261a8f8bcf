"""Features (SPEC §2): registry, definitions against independent loop implementations written here, the Kind-X
start rule, no look-ahead, partition by partition = continuous (bit for bit), schemas and input checks."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.errors
import pytest
import yaml

from cryptotracker_assets.core import feature_schemas as fs
from cryptotracker_assets.core import features as F
from cryptotracker_assets.core.config import DEFAULT_CONFIG_PATH, Timeframe, build_config, load_config, merge
from cryptotracker_assets.core.universe import Universe

DAY = pd.Timedelta(days=1)
RTOL = 1e-9


@pytest.fixture(scope="module")
def cfg():
    return load_config()


def config_with(override: dict):
    return build_config(merge(yaml.safe_load(DEFAULT_CONFIG_PATH.read_text()), override))


def make_bars(symbols, start, n, step_min=1, seed=0, gap=0.0, flat=None, zero_volume=None) -> pd.DataFrame:
    """Seeded random-walk bars; ``gap``: fraction of bars missing; ``flat`` / ``zero_volume``: {symbol: (i, j)}
    bar ranges with a constant price / no volume."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range(start, periods=n, freq=f"{step_min}min", tz="UTC")
    frames = []
    for k, sym in enumerate(symbols):
        close = (3.0 ** k) * 20.0 * np.exp(np.cumsum(rng.normal(0.0, 0.0012 * math.sqrt(step_min), n)))
        open_ = np.r_[close[0], close[:-1]]
        high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 4e-4, n)))
        low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 4e-4, n)))
        vol = rng.lognormal(4, 1, n)
        if flat and sym in flat:
            i, j = flat[sym]
            for a in (open_, high, low, close):
                a[i:j] = close[i - 1]
        if zero_volume and sym in zero_volume:
            i, j = zero_volume[sym]
            vol[i:j] = 0.0
        keep = rng.random(n) >= gap
        frames.append(pd.DataFrame({"symbol": sym, "timestamp": ts[keep], "open": open_[keep], "high": high[keep],
                                    "low": low[keep], "close": close[keep], "volume": vol[keep]}))
    return pd.concat(frames, ignore_index=True)


def assert_same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Bit-for-bit equal frames (NaN == NaN)."""
    a, b = a.reset_index(drop=True), b.reset_index(drop=True)
    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b)
    for col in a.columns:
        x, y = a[col].to_numpy(), b[col].to_numpy()
        if x.dtype.kind == "f":
            assert np.array_equal(x.view("int64"), y.view("int64")), col  # the same bits, NaNs included
        else:
            assert (pd.Series(x).fillna("<NA>") == pd.Series(y).fillna("<NA>")).all(), col


# ---------------------------------------------------------------------------------------------------------------
# Independent loop implementations (straight from the SPEC text)
# ---------------------------------------------------------------------------------------------------------------


def rsi_loop(c, n):
    out = [np.nan] * len(c)
    if len(c) <= n:
        return out
    g = sum(max(c[i] - c[i - 1], 0.0) for i in range(1, n + 1)) / n
    lo = sum(max(c[i - 1] - c[i], 0.0) for i in range(1, n + 1)) / n
    out[n] = 100 * g / (g + lo) if g + lo > 0 else np.nan
    for i in range(n + 1, len(c)):
        d = c[i] - c[i - 1]
        g = (g * (n - 1) + max(d, 0.0)) / n
        lo = (lo * (n - 1) + max(-d, 0.0)) / n
        out[i] = 100 * g / (g + lo) if g + lo > 0 else np.nan
    return out


def ema_loop(x, n, alpha=None):
    a = 2 / (n + 1) if alpha is None else alpha
    out = [np.nan] * len(x)
    if len(x) < n:
        return out
    y = sum(x[:n]) / n
    out[n - 1] = y
    for i in range(n, len(x)):
        y = y + a * (x[i] - y)
        out[i] = y
    return out


def macd_loop(c, fast, slow, signal):
    ef, es = ema_loop(c, fast), ema_loop(c, slow)
    line = [f - s for f, s in zip(ef, es)]
    first = max(fast, slow) - 1
    sig = [np.nan] * len(c)
    sig[first:] = ema_loop(line[first:], signal)
    return line, sig


def ref_ml(b: pd.DataFrame, cfg) -> pd.DataFrame:
    """SPEC §2.2 for one symbol's 15m bars, window by window."""
    tf = cfg.features.ml.timeframe.minutes
    w = cfg.features.ml.windows_min
    cov = cfg.engine.min_window_coverage
    k_bb = cfg.features.ml.bb_std

    def n(m):
        return m // tf

    b = b.sort_values("timestamp")
    idx = pd.date_range(b.timestamp.min().floor("D"), b.timestamp.max(), freq=f"{tf}min")
    s = b.set_index("timestamp").reindex(idx)
    c, h, lo, v = (s[x].to_numpy() for x in ("close", "high", "low", "volume"))
    rows = []
    for i in np.flatnonzero(~np.isnan(c)):
        def win(a, m):
            return a[max(0, i - m + 1): i + 1]

        def ok(m):
            return np.count_nonzero(~np.isnan(win(c, m))) >= cov * m - 1e-9

        def ret(m):
            return c[i] / c[i - m] - 1 if i - m >= 0 and not np.isnan(c[i - m]) and ok(m) else np.nan

        def mean_present(a, m):
            x = win(a, m)
            return x[~np.isnan(x)].mean()

        r = {"timestamp": idx[i]}
        for name, m in zip(("ret_75m", "ret_225m", "ret_15h", "ret_60h"), w.ret):
            r[name] = ret(n(m))
        r["roc_12"] = ret(n(w.roc))
        for name, m in (("volume_ratio_15h", n(w.volume_ratio)), ("volume_sma_ratio", n(w.volume_sma))):
            mv = mean_present(v, m)
            r[name] = v[i] / mv if ok(m) and mv != 0 else np.nan
        m = n(w.bb)
        cc = win(c, m)[~np.isnan(win(c, m))]
        if ok(m):
            mid = cc.mean()
            sd = 0.0 if cc.max() == cc.min() else cc.std(ddof=0)
            hi_b, lo_b = mid + k_bb * sd, mid - k_bb * sd
            r.update(bb_mid=mid, bb_high=hi_b, bb_low=lo_b, bb_width=(hi_b - lo_b) / mid,
                     bb_position=(c[i] - lo_b) / (hi_b - lo_b) if hi_b != lo_b else np.nan)
        else:
            r.update(bb_mid=np.nan, bb_high=np.nan, bb_low=np.nan, bb_width=np.nan, bb_position=np.nan)
        for name, dist, m in (("sma_20", "dist_sma20", n(w.sma[0])), ("sma_50", "dist_sma50", n(w.sma[1]))):
            r[name] = mean_present(c, m) if ok(m) else np.nan
            r[dist] = c[i] / r[name] - 1
        m = n(w.support_resistance)
        cc = win(c, m)[~np.isnan(win(c, m))]
        r["dist_support_5h"] = c[i] / cc.min() - 1 if ok(m) else np.nan
        r["dist_resistance_5h"] = c[i] / cc.max() - 1 if ok(m) else np.nan
        for name, m in zip(("volatility_15h", "volatility_60h"), (n(x) for x in w.volatility)):
            rets = [c[j] / c[j - 1] - 1 for j in range(max(1, i - m + 1), i + 1)
                    if not np.isnan(c[j]) and not np.isnan(c[j - 1])]
            r[name] = np.std(rets, ddof=1) if len(rets) >= cov * m - 1e-9 and len(rets) >= 2 else np.nan
        m = n(w.obv)
        terms = [(np.sign(c[j] - c[j - 1]) * v[j], v[j]) for j in range(max(1, i - m + 1), i + 1)
                 if not np.isnan(c[j]) and not np.isnan(c[j - 1])]
        den = sum(t[1] for t in terms)
        r["obv_15h"] = sum(t[0] for t in terms) / den if len(terms) >= cov * m - 1e-9 and den != 0 else np.nan
        m = n(w.stoch)
        ll, hh = np.nanmin(win(lo, m)), np.nanmax(win(h, m))
        r["stoch_k_14"] = (c[i] - ll) / (hh - ll) * 100 if ok(m) and hh != ll else np.nan
        rows.append(r)
    out = pd.DataFrame(rows).set_index("timestamp")

    # Kind X: each row's recursion starts at 00:00 UTC of the day containing (bar close − min_history_min).
    times = b["timestamp"].reset_index(drop=True)
    closes = b["close"].to_numpy()
    starts = (times + pd.Timedelta(minutes=tf) - pd.Timedelta(minutes=cfg.features.ml.min_history_min)).dt.floor("D")
    n_rsi = [n(x) for x in w.rsi]
    n_ema = [n(x) for x in w.ema]
    fast, slow, signal = (n(x) for x in w.macd)
    x_cols = {k: np.full(len(times), np.nan) for k in ("rsi_14", "rsi_30", "ema_12", "ema_26", "macd", "macd_signal")}
    for s0 in starts.unique():
        sel = np.flatnonzero(starts == s0)
        lane_idx = np.flatnonzero((times >= s0).to_numpy())
        lane_idx = lane_idx[lane_idx <= sel.max()]
        lane = list(closes[lane_idx])
        pos = np.searchsorted(lane_idx, sel)
        line, sig = macd_loop(lane, fast, slow, signal)
        vals = {"rsi_14": rsi_loop(lane, n_rsi[0]), "rsi_30": rsi_loop(lane, n_rsi[1]),
                "ema_12": ema_loop(lane, n_ema[0]), "ema_26": ema_loop(lane, n_ema[1]), "macd": line,
                "macd_signal": sig}
        for k, vv in vals.items():
            x_cols[k][sel] = np.asarray(vv)[pos]
    for k, vv in x_cols.items():
        out[k] = vv
    out["macd_diff"] = out["macd"] - out["macd_signal"]
    return out


def ref_scan(bars: pd.DataFrame, cfg, points: pd.DatetimeIndex, base_min: int = 1) -> pd.DataFrame:
    """SPEC §2.1 per symbol and cycle point, from the visible bars (open < T) selected by time."""
    st, sc, e = cfg.strategies, cfg.scan, cfg.engine
    cov = e.min_window_coverage
    mkt = cfg.universe.market_symbol
    minute = pd.Timedelta(minutes=1)
    b = pd.Timedelta(minutes=base_min)
    data = {s: g.sort_values("timestamp").reset_index(drop=True) for s, g in bars.groupby("symbol")}
    close_at = {s: dict(zip(g["timestamp"], g["close"])) for s, g in data.items()}

    def ret_at(sym, u):
        d = close_at[sym]
        return d[u] / d[u - b] - 1 if u in d and (u - b) in d else None

    rows = []
    for sym, g in data.items():
        ts = g["timestamp"]
        for t in points:
            r = {"symbol": sym, "timestamp": t}
            vis = np.flatnonzero((ts < t).to_numpy())
            if len(vis) == 0 or ts[vis[-1]] < t - e.max_bar_lag_min * minute:
                rows.append({**r, "stale": True})
                continue
            ci = vis[-1]
            ct = ts[ci]
            c = g.loc[ci]

            def incl(span):
                m = ((ts > ct - span * minute) & (ts <= ct)).to_numpy()
                return g[m], m.sum() >= cov * span / base_min - 1e-9

            def excl(span):
                m = ((ts >= ct - span * minute) & (ts < ct)).to_numpy()
                return g[m], m.sum() >= cov * span / base_min - 1e-9

            wdw, ok = incl(st.dca.lookback_min)
            r["drop"] = c.close / wdw.high.max() - 1 if ok else np.nan
            wdw, ok = excl(st.swing.lookback_min)
            r["breakout"] = c.close / wdw.high.max() - 1 if ok else np.nan
            mv = wdw.volume.mean() if len(wdw) else np.nan
            r["volume_surge"] = (0.0 if mv == 0 else c.volume / mv) if ok else np.nan
            wdw, ok = incl(st.channel.lookback_min)
            lo_c, hi_c = wdw.close.min(), wdw.close.max()
            r["channel_position"] = (c.close - lo_c) / (hi_c - lo_c) if ok and hi_c != lo_c else np.nan
            r["channel_width"] = (hi_c - lo_c) / lo_c if ok else np.nan
            start = (t - pd.Timedelta(minutes=cfg.features.ml.min_history_min)).floor("D")
            lane = g[(ts >= start) & (ts <= ct)].close.tolist()
            r["rsi_14m"] = rsi_loop(lane, sc.windows_min.rsi // base_min)[-1]
            wdw, ok = excl(sc.windows_min.volume_ratio)
            mv = wdw.volume.mean() if len(wdw) else np.nan
            r["volume_ratio"] = c.volume / mv if ok and mv != 0 else np.nan
            wdw, ok = incl(sc.windows_min.support)
            r["dist_support"] = c.close / wdw.low.min() - 1 if ok else np.nan
            if sym == mkt:
                r["btc_corr"] = 1.0
            elif mkt in data:
                us = [u for u in ts[(ts > ct - sc.windows_min.btc_corr * minute) & (ts <= ct)]]
                pairs = [(ret_at(sym, u), ret_at(mkt, u)) for u in us]
                pairs = [p for p in pairs if p[0] is not None and p[1] is not None]
                x = np.array(pairs)
                if len(pairs) >= sc.min_btc_corr_pairs and x[:, 0].std() > 0 and x[:, 1].std() > 0:
                    r["btc_corr"] = np.corrcoef(x[:, 0], x[:, 1])[0, 1]
                else:
                    r["btc_corr"] = np.nan
            wdw, ok = incl(sc.windows_min.vol_24h)
            r["vol_24h"] = (wdw.high.max() - wdw.low.min()) / wdw.open.iloc[0] if ok else np.nan
            rows.append({**r, "stale": False, "bar_timestamp": ct})
    return pd.DataFrame(rows)


def ref_daily(daily: pd.DataFrame, cfg, days: pd.DatetimeIndex) -> pd.DataFrame:
    """SPEC §2.3 daily context per symbol and day D from the daily bars of days before D."""
    d = cfg.features.daily
    cov = cfg.engine.min_window_coverage
    mkt = cfg.universe.market_symbol
    one = pd.Timedelta(days=1)
    by = {s: g.set_index("timestamp") for s, g in daily.groupby("symbol")}
    btc = by[mkt]

    def closes(frame, D, n):
        return frame.close[(frame.index >= D - n * one) & (frame.index < D)]

    def cl(frame, day):
        return frame.close.get(day, np.nan)

    def ret(frame, D, n):
        if len(closes(frame, D, n)) < cov * n - 1e-9:
            return np.nan
        return cl(frame, D - one) / cl(frame, D - (n + 1) * one) - 1

    def rets(frame, D, n):
        out = {}
        for k in range(1, n + 1):
            day = D - k * one
            a, p = cl(frame, day), cl(frame, day - one)
            if not (np.isnan(a) or np.isnan(p)):
                out[day] = a / p - 1
        return out

    def sma(D, n):
        x = closes(btc, D, n)
        return x.mean() if len(x) >= cov * n - 1e-9 else np.nan

    rows = []
    for sym, frame in by.items():
        for D in days:
            r = {"symbol": sym, "timestamp": D}
            s50, s200 = sma(D, d.sma_d[0]), sma(D, d.sma_d[1])
            last = cl(btc, D - one)
            r["btc_dist_sma50"] = last / s50 - 1
            r["btc_dist_sma200"] = last / s200 - 1
            r["btc_trend_30d"] = ret(btc, D, d.trend_d)
            for name, n in zip(("btc_vol_7d", "btc_vol_30d"), d.vol_d):
                x = list(rets(btc, D, n).values())
                ok = len(x) >= cov * n - 1e-9 and len(x) >= 2
                r[name] = np.std(x, ddof=1) * math.sqrt(365) if ok else np.nan
            n = d.range_d
            win = btc[(btc.index >= D - n * one) & (btc.index < D)]
            ok = len(win) >= cov * n - 1e-9
            r["btc_range_7d"] = (win.high.max() - win.low.min()) / win.low.min() if ok else np.nan
            for name, n in zip(("sym_vs_btc_7d", "sym_vs_btc_30d"), d.rel_d):
                r[name] = ret(frame, D, n) - ret(btc, D, n)
            a, bb = rets(frame, D, d.corr_d), rets(btc, D, d.corr_d)
            common = sorted(set(a) & set(bb))
            x, y = np.array([a[k] for k in common]), np.array([bb[k] for k in common])
            ok = len(common) >= d.corr_min_pairs and len(common) > 1 and x.std() > 0 and y.std() > 0
            r["sym_btc_corr_30d"] = np.corrcoef(x, y)[0, 1] if ok else np.nan
            full = not np.isnan(cl(btc, D - d.sma_d[1] * one))  # history reaches sma_d[1] days back
            if not (full and np.isfinite(s50) and np.isfinite(s200) and np.isfinite(last)):
                trend = "UNKNOWN"
            elif s50 > s200 and last > s50:
                trend = "BULL"
            elif s50 < s200 and last < s50:
                trend = "BEAR"
            else:
                trend = "NEUTRAL"
            r["btc_trend"] = trend
            rows.append(r)
    return pd.DataFrame(rows)


# Ratios of a difference to a band or range width, of order 1, lose relative precision where the numerator
# cancels (close at the band); compare them absolutely.
ABS = {"bb_position": 1e-10, "channel_position": 1e-10, "stoch_k_14": 1e-8}


def compare(ours: pd.DataFrame, ref: pd.DataFrame, columns, rtol=RTOL, atol=1e-13) -> int:
    """Same nulls and values within rtol; returns the number of non-null values compared."""
    n = 0
    for col in columns:
        tol = ABS.get(col, atol)
        a, b = ours[col].to_numpy(dtype="float64"), ref[col].to_numpy(dtype="float64")
        assert np.array_equal(np.isnan(a), np.isnan(b)), (col, np.flatnonzero(np.isnan(a) != np.isnan(b))[:5])
        ok = ~np.isnan(a)
        np.testing.assert_allclose(a[ok], b[ok], rtol=rtol, atol=tol, err_msg=col)
        n += int(ok.sum())
    return n


# ---------------------------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------------------------


def test_registry_lists_the_29_ml_features_and_their_model_inputs(cfg):
    assert len(F.ML_FEATURES) == 29
    assert F.ML_FEATURES[:3] == ("ret_75m", "ret_225m", "ret_15h") and F.ML_FEATURES[-1] == "stoch_k_14"
    assert set(F.ML_USD_FEATURES) == {"macd", "macd_signal", "macd_diff", "bb_high", "bb_low", "bb_mid", "sma_20",
                                      "sma_50", "ema_12", "ema_26"}
    assert set(F.ML_REL_FEATURES) == {f"{n}_rel" for n in F.ML_USD_FEATURES}
    assert len(F.ML_MODEL_INPUTS) == 29
    assert not any(F.feature_spec(n).unit is F.Unit.USD for n in F.ML_MODEL_INPUTS)
    assert len(F.SCAN_FEATURES) == 10
    kinds = {s.name: s.kind for s in F.FEATURE_REGISTRY}
    assert {n for n, k in kinds.items() if k is F.Kind.X} == {"rsi_14", "rsi_30", "macd", "macd_signal", "macd_diff",
                                                             "ema_12", "ema_26", "rsi_14m", "macd_rel",
                                                             "macd_signal_rel", "macd_diff_rel", "ema_12_rel",
                                                             "ema_26_rel"}
    with pytest.raises(KeyError):
        F.feature_spec("rsi_15")


def test_every_window_resolves_to_whole_bars_of_its_timeframe(cfg):
    for spec in F.FEATURE_REGISTRY:
        tf = F.timeframe_of(cfg, spec.timeframe)
        for key in spec.windows:
            bars = F.window_bars(cfg, key, tf)
            span = F.config_value(cfg, key)
            assert bars * (1 if tf is Timeframe.D1 else tf.minutes) == span, key
    assert F.window_bars(cfg, "features.ml.windows_min.rsi[0]", Timeframe.M15) == 14
    assert F.window_bars(cfg, "features.ml.windows_min.ret[3]", Timeframe.M15) == 240
    with pytest.raises(ValueError, match=r"features.ml.windows_min.rsi\[5\]"):
        F.config_value(cfg, "features.ml.windows_min.rsi[5]")
    with pytest.raises(ValueError, match="not a whole number"):
        F.window_bars(cfg, "scan.windows_min.rsi", Timeframe.M5)


def test_feature_set_version_hashes_names_definitions_and_windows(cfg):
    v = F.feature_set_version(cfg)
    assert v == F.feature_set_version(load_config()) and len(v) == 16
    changed = config_with({"features": {"ml": {"windows_min": {"rsi": [210, 300]}}}})
    assert F.feature_set_version(changed) != v
    assert F.feature_set_version(config_with({"features": {"ml": {"bb_std": 2.5}}})) != v
    assert F.feature_set_version(config_with({"features": {"ml": {"min_history_min": 8640}}})) != v
    # A key no feature reads leaves the version alone.
    assert F.feature_set_version(config_with({"exits": {"no_data_grace_min": 30}})) == v
    sub = F.feature_set_version(cfg, F.ML_MODEL_INPUTS)
    assert sub != v and F.feature_set_version(changed, F.ML_MODEL_INPUTS) != sub


def test_warmup_spans(cfg):
    assert F.ml_warmup(cfg) == pd.Timedelta(days=5)
    assert F.scan_warmup(cfg) == pd.Timedelta(days=5)
    assert F.daily_warmup(cfg) == pd.Timedelta(days=200)
    # A start span that is not whole days reaches back to the previous midnight.
    odd = config_with({"features": {"ml": {"min_history_min": 7230}}})
    assert F.ml_warmup(odd) == pd.Timedelta(days=6)
    short = config_with({"features": {"ml": {"min_history_min": 1440}}})
    assert F.ml_warmup(short) == pd.Timedelta(minutes=3600)  # the 60 h windows are then the longest reach


# ---------------------------------------------------------------------------------------------------------------
# Definitions against the loop implementations
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gappy15():
    return make_bars(["BTC", "DOGE", "PEPE"], "2024-02-01", 8 * 96, step_min=15, seed=7, gap=0.06,
                     flat={"PEPE": (400, 430)}, zero_volume={"DOGE": (500, 570)})


def test_ml_features_equal_the_loop_implementation_with_gaps_flats_and_zero_volume(gappy15, cfg):
    ml = F.compute_ml_features(gappy15, cfg, bar_timeframe="15m")
    n = 0
    for sym, rows in ml.groupby("symbol"):
        ref = ref_ml(gappy15[gappy15.symbol == sym], cfg)
        assert (rows["timestamp"].to_numpy() == ref.index.to_numpy()).all()
        n += compare(rows.reset_index(drop=True), ref.reset_index(drop=True), F.ML_FEATURES)
        close = gappy15[gappy15.symbol == sym].set_index("timestamp").loc[rows["timestamp"], "close"].to_numpy()
        for name in F.ML_USD_FEATURES:
            np.testing.assert_allclose(rows[f"{name}_rel"].to_numpy(), rows[name].to_numpy() / close, rtol=1e-15)
    assert n > 50_000
    pepe = ml[ml.symbol == "PEPE"].set_index("timestamp")
    assert pepe["bb_position"].isna().any() and pepe["stoch_k_14"].isna().any()  # flat windows are null
    doge = ml[ml.symbol == "DOGE"]
    assert doge["volume_ratio_15h"].isna().any() and doge["obv_15h"].isna().any()  # zero volume → null


def test_ml_features_on_hand_computed_bars():
    """Six 15m bars and 3-bar windows: every value below is worked out by hand."""
    small = config_with({"features": {"ml": {"min_history_min": 1440, "windows_min": {
        "ret": [15, 30, 45, 60], "volume_ratio": 45, "rsi": [30, 45], "macd": [30, 45, 30], "bb": 45,
        "sma": [45, 60], "ema": [30, 45], "support_resistance": 45, "volatility": [45, 60], "obv": 45,
        "volume_sma": 45, "roc": 30, "stoch": 45}}}})
    close = np.array([10.0, 11.0, 10.5, 12.0, 12.0, 11.0])
    bars = pd.DataFrame({"symbol": "ETH", "timestamp": pd.date_range("2024-01-02", periods=6, freq="15min", tz="UTC"),
                         "open": close, "high": close + 0.5, "low": close - 0.5, "close": close,
                         "volume": [100.0, 200.0, 50.0, 300.0, 100.0, 400.0]})
    last = F.compute_ml_features(bars, small, bar_timeframe="15m").iloc[-1]
    assert last["obv_15h"] == pytest.approx((300 + 0 - 400) / 800)  # up, flat, down over the last 3 bars
    assert last["volume_ratio_15h"] == pytest.approx(400 / ((300 + 100 + 400) / 3))
    assert last["volume_sma_ratio"] == pytest.approx(1.5)
    assert last["stoch_k_14"] == pytest.approx((11 - 10.5) / (12.5 - 10.5) * 100)
    assert last["dist_support_5h"] == 0.0 and last["dist_resistance_5h"] == pytest.approx(11 / 12 - 1)
    assert last["ret_75m"] == pytest.approx(11 / 12 - 1) and last["ret_225m"] == pytest.approx(11 / 12 - 1)
    assert last["ret_15h"] == pytest.approx(11 / 10.5 - 1) and last["ret_60h"] == 0.0
    assert last["roc_12"] == pytest.approx(11 / 12 - 1)
    # Wilder RSI(2): gains/losses seeded with the mean of the first 2 changes (+1, −0.5), then (avg·1 + x)/2.
    g, lo = 0.5, 0.25
    for d in (1.5, 0.0, -1.0):
        g, lo = (g + max(d, 0)) / 2, (lo + max(-d, 0)) / 2
    assert last["rsi_14"] == pytest.approx(100 * g / (g + lo)) and last["rsi_14"] == pytest.approx(32.0)
    mid, sd = 35 / 3, math.sqrt(2 / 9)
    assert last["bb_mid"] == pytest.approx(mid) and last["bb_high"] == pytest.approx(mid + 2 * sd)
    assert last["bb_position"] == pytest.approx((11 - (mid - 2 * sd)) / (4 * sd))
    rets = [12 / 10.5 - 1, 0.0, 11 / 12 - 1]
    assert last["volatility_15h"] == pytest.approx(np.std(rets, ddof=1))
    assert last["sma_50"] == pytest.approx((10.5 + 12 + 12 + 11) / 4)
    # EMA(2) seeded with the mean of the first two closes; EMA(3) with the first three.
    e2 = 10.5
    for x in close[2:]:
        e2 += 2 / 3 * (x - e2)
    assert last["ema_12"] == pytest.approx(e2) and last["ema_12_rel"] == pytest.approx(e2 / 11)


def test_ml_features_from_1m_bars_aggregate_per_spec_13_1(cfg):
    b1 = make_bars(["BTC", "ETH"], "2024-02-01", 6 * 1440, seed=2, gap=0.02)
    agg = []
    for sym, g in b1.groupby("symbol"):
        r = g.set_index("timestamp").resample("15min").agg(
            {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}).dropna()
        agg.append(r.reset_index().assign(symbol=sym))
    b15 = pd.concat(agg, ignore_index=True)
    from1m = F.compute_ml_features(b1, cfg)
    from15 = F.compute_ml_features(b15, cfg, bar_timeframe="15m")
    assert len(from1m) == len(from15)
    compare(from1m, from15, F.ML_FEATURES, rtol=1e-12, atol=1e-15)


def test_scan_features_equal_the_loop_implementation(cfg):
    bars = make_bars(["BTC", "ETH", "PEPE"], "2024-02-01", 6 * 1440, seed=3, gap=0.03,
                     flat={"PEPE": (7000, 7030)}, zero_volume={"PEPE": (7000, 7030)})
    bars = bars[~((bars.symbol == "ETH") & (bars.timestamp >= "2024-02-06 10:00") & (bars.timestamp < "2024-02-06 10:20"))]
    rng = np.random.default_rng(1)
    day = pd.Timestamp("2024-02-05", tz="UTC")
    pts = F.cycle_points(day, day + DAY + DAY, cfg.engine.cycle_min)
    pick = pd.DatetimeIndex(sorted(set(rng.choice(pts, 40, replace=False)) | {
        pd.Timestamp("2024-02-05 00:00", tz="UTC"), pd.Timestamp("2024-02-06 10:10", tz="UTC"),
        pd.Timestamp("2024-02-06 10:25", tz="UTC"), pd.Timestamp("2024-02-05 20:45", tz="UTC"),
        pd.Timestamp("2024-02-05 20:50", tz="UTC")}))
    scan = F.compute_scan_features(bars, cfg, start=day, end=day + 2 * DAY)
    ours = scan[scan.timestamp.isin(pick)].sort_values(["symbol", "timestamp"]).reset_index(drop=True)
    ref = ref_scan(bars, cfg, pick).sort_values(["symbol", "timestamp"]).reset_index(drop=True)
    assert (ours["stale"].to_numpy() == ref["stale"].to_numpy()).all()
    assert ours["stale"].sum() >= 1  # the ETH outage makes it stale
    fresh = ~ours["stale"].to_numpy()
    assert (ours.loc[fresh, "bar_timestamp"].to_numpy() == ref.loc[fresh, "bar_timestamp"].to_numpy()).all()
    n = compare(ours[fresh].reset_index(drop=True), ref[fresh].reset_index(drop=True), F.SCAN_FEATURES)
    assert n > 1000
    assert ours.loc[~fresh, list(F.SCAN_FEATURES)].isna().all().all()
    pepe = ours[(ours.symbol == "PEPE") & fresh]
    assert (pepe["volume_surge"] == 0).any() or pepe["channel_position"].isna().any()


def test_daily_context_equals_the_loop_implementation(cfg):
    daily = make_bars(["BTC", "ETH", "SOL"], "2023-01-01", 260, step_min=1440, seed=4, gap=0.02)
    days = pd.date_range("2023-07-01", "2023-09-17", freq="D", tz="UTC")
    ours = F.compute_daily_context(daily, cfg, start=days[0], end=days[-1] + DAY, bar_timeframe="1d")
    ref = ref_daily(daily, cfg, days)
    ours = ours.sort_values(["symbol", "timestamp"]).reset_index(drop=True)
    ref = ref.sort_values(["symbol", "timestamp"]).reset_index(drop=True)
    assert (ours["timestamp"].to_numpy() == ref["timestamp"].to_numpy()).all()
    cols = [c for c in F.DAILY_FEATURES if c not in ("trend_bull", "trend_bear")]
    assert compare(ours, ref, cols) > 1500
    assert (ours["btc_trend"] == ref["btc_trend"]).all()
    assert set(ref["btc_trend"]) - {"UNKNOWN"}, "the window must reach a known trend"
    assert (ours["trend_bull"] == (ours["btc_trend"] == "BULL")).all()
    assert (ours["trend_bear"] == (ours["btc_trend"] == "BEAR")).all()
    btc = ours[ours.symbol == "BTC"]
    np.testing.assert_allclose(btc["sym_btc_corr_30d"].dropna(), 1.0)
    assert (btc["sym_vs_btc_7d"].dropna() == 0).all()


def test_daily_context_aggregates_base_bars_to_utc_days(cfg):
    b1 = make_bars(["BTC", "ETH"], "2024-02-01", 12 * 1440, seed=8, gap=0.01)
    ours = F.compute_daily_context(b1, cfg)
    daily = b1.groupby(["symbol", b1.timestamp.dt.floor("D")]).agg(
        open=("open", "first"), high=("high", "max"), low=("low", "min"), close=("close", "last"),
        volume=("volume", "sum")).reset_index()
    days = pd.date_range("2024-02-02", "2024-02-12", freq="D", tz="UTC")
    ref = ref_daily(daily, cfg, days).sort_values(["symbol", "timestamp"]).reset_index(drop=True)
    assert (ours["timestamp"].to_numpy() == ref["timestamp"].to_numpy()).all()
    compare(ours, ref, ["btc_vol_7d", "btc_range_7d", "sym_vs_btc_7d"])
    assert ours["btc_vol_7d"].notna().sum() > 0 and (ours["btc_trend"] == "UNKNOWN").all()


def test_static_context(cfg):
    uni = Universe.from_config(cfg)
    frame = pd.DataFrame({"symbol": ["BTC", "PEPE", "DOGE"],
                          "timestamp": pd.to_datetime(["2024-03-10 09:55", "2024-03-10 10:05", "2024-11-04 23:00"],
                                                      utc=True)})
    out = F.static_context(frame.symbol, frame.timestamp, uni.tier)
    assert out["tier_large_cap"].tolist() == [1, 0, 0] and out["tier_memecoin"].tolist() == [0, 1, 0]
    assert out["tier_small_cap"].tolist() == [0, 0, 1]
    assert out["hour_utc"].tolist() == [9, 10, 23] and out["dow_utc"].tolist() == [6, 6, 0]
    with pytest.raises(KeyError):
        F.static_context(pd.Series(["NOPE"]), frame.timestamp[:1], uni.tier)


# ---------------------------------------------------------------------------------------------------------------
# Causality and partitions
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bars1m():
    return make_bars(["BTC", "ETH", "WIF"], "2024-03-01", 9 * 1440, seed=5, gap=0.02)


@pytest.fixture(scope="module")
def ml_continuous(bars1m, cfg):
    return F.compute_ml_features(bars1m, cfg)


def test_ml_features_have_no_look_ahead(bars1m, ml_continuous, cfg):
    rng = np.random.default_rng(9)
    ts = bars1m["timestamp"].sort_values().unique()
    for cut in rng.choice(ts[len(ts) // 2:], 4, replace=False):
        cut = pd.Timestamp(cut)
        end = cut + pd.Timedelta(minutes=1)
        part = F.compute_ml_features(bars1m[bars1m.timestamp <= cut], cfg, end=end)
        full = ml_continuous[ml_continuous.available_at <= end]
        assert_same(part, full)
        assert part["available_at"].max() <= end


def test_ml_features_day_by_day_equal_the_continuous_series(bars1m, ml_continuous, cfg):
    warm = F.ml_warmup(cfg)
    for day in pd.date_range("2024-03-06", "2024-03-09", freq="D", tz="UTC"):
        window = bars1m[(bars1m.timestamp >= day - warm) & (bars1m.timestamp < day + DAY)]
        part = F.compute_ml_features_day(window, day, cfg)
        assert_same(part, ml_continuous[(ml_continuous.timestamp >= day) & (ml_continuous.timestamp < day + DAY)])
        assert len(part) == 3 * 96 and not part["warmup"].any()
    # One day less of warm-up changes Kind-X values: the span is needed, not just generous.
    day = pd.Timestamp("2024-03-08", tz="UTC")
    short = bars1m[(bars1m.timestamp >= day - warm + DAY) & (bars1m.timestamp < day + DAY)]
    part = F.compute_ml_features_day(short, day, cfg)
    full = ml_continuous[(ml_continuous.timestamp >= day) & (ml_continuous.timestamp < day + DAY)]
    assert not np.array_equal(part["rsi_30"].to_numpy(), full["rsi_30"].to_numpy())
    assert np.array_equal(part["sma_50"].to_numpy(), full["sma_50"].to_numpy())  # Kind R only needs 60 h


def test_partition_equality_with_a_start_span_that_is_not_whole_days(bars1m):
    odd = config_with({"features": {"ml": {"min_history_min": 5790}}})  # 4 d 30 min: two starts within a day
    full = F.compute_ml_features(bars1m, odd)
    warm = F.ml_warmup(odd)
    assert warm == pd.Timedelta(days=5)
    for day in pd.date_range("2024-03-07", "2024-03-09", freq="D", tz="UTC"):
        window = bars1m[(bars1m.timestamp >= day - warm) & (bars1m.timestamp < day + DAY)]
        assert_same(F.compute_ml_features_day(window, day, odd),
                    full[(full.timestamp >= day) & (full.timestamp < day + DAY)])


@pytest.fixture(scope="module")
def scan_continuous(bars1m, cfg):
    return F.compute_scan_features(bars1m, cfg, start=pd.Timestamp("2024-03-01", tz="UTC"),
                                   end=pd.Timestamp("2024-03-10", tz="UTC"))


def test_scan_features_have_no_look_ahead(bars1m, scan_continuous, cfg):
    rng = np.random.default_rng(4)
    ts = bars1m["timestamp"].sort_values().unique()
    start = pd.Timestamp("2024-03-01", tz="UTC")
    for cut in rng.choice(ts[len(ts) // 2:], 4, replace=False):
        cut = pd.Timestamp(cut)
        end = cut + pd.Timedelta(minutes=1)
        part = F.compute_scan_features(bars1m[bars1m.timestamp <= cut], cfg, start=start, end=end)
        assert_same(part, scan_continuous[scan_continuous.timestamp < end])


def test_scan_features_day_by_day_equal_the_continuous_series(bars1m, scan_continuous, cfg):
    warm = F.scan_warmup(cfg)
    for day in pd.date_range("2024-03-06", "2024-03-09", freq="D", tz="UTC"):
        window = bars1m[(bars1m.timestamp >= day - warm) & (bars1m.timestamp < day + DAY)]
        part = F.compute_scan_features_day(window, day, cfg)
        assert len(part) == 3 * 288
        assert_same(part, scan_continuous[(scan_continuous.timestamp >= day) & (scan_continuous.timestamp < day + DAY)])
        fresh = part[~part.stale]
        assert not fresh["warmup"].any()
        assert fresh[[c for c in F.SCAN_FEATURES if c not in ("channel_position", "btc_corr")]].notna().mean().min() > 0.95


def test_scan_rows_for_a_given_symbol_list(bars1m, scan_continuous, cfg):
    """Rows for exactly the symbols asked (a symbol without bars is stale); the market symbol still feeds btc_corr."""
    day = pd.Timestamp("2024-03-07", tz="UTC")
    part = F.compute_scan_features_day(bars1m, day, cfg, symbols=["WIF", "DOGE"])
    assert sorted(part["symbol"].unique()) == ["DOGE", "WIF"]
    assert part.loc[part.symbol == "DOGE", "stale"].all()
    full = scan_continuous[(scan_continuous.timestamp >= day) & (scan_continuous.timestamp < day + DAY)]
    assert_same(part[part.symbol == "WIF"], full[full.symbol == "WIF"])
    assert part.loc[part.symbol == "WIF", "btc_corr"].notna().mean() > 0.9


def test_daily_context_no_look_ahead_and_day_by_day(cfg):
    daily = make_bars(["BTC", "ETH"], "2023-01-01", 250, step_min=1440, seed=6, gap=0.02)
    start, end = pd.Timestamp("2023-07-20", tz="UTC"), pd.Timestamp("2023-09-08", tz="UTC")
    full = F.compute_daily_context(daily, cfg, start=start, end=end, bar_timeframe="1d")
    warm = F.daily_warmup(cfg)
    for day in pd.date_range("2023-08-01", "2023-08-04", freq="D", tz="UTC"):
        part = F.compute_daily_context_day(daily[(daily.timestamp >= day - warm) & (daily.timestamp < day)], day, cfg,
                                           bar_timeframe="1d")
        assert_same(part, full[full.timestamp == day])
    for cut in pd.to_datetime(["2023-08-10", "2023-08-21"], utc=True):
        part = F.compute_daily_context(daily[daily.timestamp < cut], cfg, start=start, end=cut + DAY,
                                       bar_timeframe="1d")
        assert_same(part, full[full.timestamp <= cut])


def test_features_ignore_local_time_across_la_dst_changes(cfg):
    """The same bars placed over the America/Los_Angeles DST changes and 2 weeks earlier give the same values."""
    for dst in ("2024-03-10", "2024-11-03"):
        first = pd.Timestamp(dst, tz="UTC") - pd.Timedelta(days=6)
        a = make_bars(["BTC", "ETH"], first, 8 * 1440, seed=12, gap=0.01)
        b = a.assign(timestamp=a.timestamp - pd.Timedelta(days=14))
        for frame_a, frame_b in (
            (F.compute_ml_features(a, cfg), F.compute_ml_features(b, cfg)),
            (F.compute_scan_features(a, cfg, start=first + 5 * DAY, end=first + 8 * DAY),
             F.compute_scan_features(b, cfg, start=first + 5 * DAY - 14 * DAY, end=first + 8 * DAY - 14 * DAY)),
        ):
            assert (frame_a["timestamp"] - frame_b["timestamp"] == pd.Timedelta(days=14)).all()
            assert_same(frame_a.drop(columns=[c for c in frame_a if "timestamp" in c or c == "available_at"]),
                        frame_b.drop(columns=[c for c in frame_b if "timestamp" in c or c == "available_at"]))
        scan = F.compute_scan_features(a, cfg, start=pd.Timestamp(dst, tz="UTC"), end=pd.Timestamp(dst, tz="UTC") + DAY)
        assert (scan.groupby("symbol").size() == 1440 // cfg.engine.cycle_min).all()


# ---------------------------------------------------------------------------------------------------------------
# Schemas and input checks
# ---------------------------------------------------------------------------------------------------------------


def test_schemas_accept_the_frames_and_reject_broken_invariants(ml_continuous, scan_continuous, cfg):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fs.MlFeatureSchema.validate(ml_continuous)
        fs.ScanFeatureSchema.validate(scan_continuous)
    bad = ml_continuous.copy()
    bad.loc[bad.index[-1], "rsi_14"] = 100.5
    with pytest.raises(pandera.errors.SchemaError, match="rsi_14"):
        fs.MlFeatureSchema.validate(bad)
    bad = ml_continuous.copy()
    bad.loc[bad.index[-1], "bb_position"] = np.inf
    with pytest.raises(pandera.errors.SchemaError, match="inf"):
        fs.MlFeatureSchema.validate(bad)
    bad = scan_continuous.copy()
    bad.loc[bad.index[-1], "volume_ratio"] = -1.0
    with pytest.raises(pandera.errors.SchemaError):
        fs.ScanFeatureSchema.validate(bad)
    # A null outside the warm-up is a warning, not an error.
    odd = ml_continuous.copy()
    odd.loc[odd.index[-1], "ret_75m"] = np.nan
    with pytest.warns(Warning, match="warm-up"):
        fs.MlFeatureSchema.validate(odd)
    report = fs.history_report(ml_continuous)
    assert not report["insufficient_history"].any() and (report["warmup_rows"] > 0).all()
    empty = F.compute_ml_features(ml_continuous.iloc[:0].assign(open=[], high=[], low=[], close=[], volume=[]), cfg)
    fs.MlFeatureSchema.validate(empty)


def test_bad_input_raises(bars1m, cfg):
    dup = pd.concat([bars1m, bars1m.iloc[[10]]])
    with pytest.raises(ValueError, match="duplicate bar"):
        F.compute_ml_features(dup, cfg)
    naive = bars1m.assign(timestamp=bars1m.timestamp.dt.tz_localize(None))
    with pytest.raises(ValueError, match="UTC"):
        F.compute_ml_features(naive, cfg)
    shifted = bars1m.assign(timestamp=bars1m.timestamp + pd.Timedelta(seconds=30))
    with pytest.raises(ValueError, match="grid"):
        F.compute_ml_features(shifted, cfg, bar_timeframe="15m")
    nan = bars1m.copy()
    nan.loc[nan.index[5], "close"] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        F.compute_scan_features(nan, cfg, start=pd.Timestamp("2024-03-02", tz="UTC"),
                                end=pd.Timestamp("2024-03-03", tz="UTC"))
    with pytest.raises(ValueError, match="UTC"):
        F.compute_ml_features(bars1m, cfg, start="2024-03-02")
    with pytest.raises(ValueError, match="00:00 UTC"):
        F.compute_ml_features_day(bars1m, pd.Timestamp("2024-03-02 01:00", tz="UTC"), cfg)


def test_core_modules_do_not_import_dagster():
    code = ("import sys; import cryptotracker_assets.core.features, cryptotracker_assets.core.regime, "
            "cryptotracker_assets.core.feature_schemas; "
            "bad = [m for m in sys.modules if m == 'dagster' or m.startswith('dagster.') or m.startswith('dagster_')]; "
            "assert not bad, bad")
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)
