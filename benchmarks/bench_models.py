"""Model benchmark (issue 12): training time per strategy for 10k and 100k labelled setups on this machine, the
walk-forward windows included (goal: 100k < 60 s), and champion inference for 99 symbols × 3 strategies in one
engine tick: the feature frame (the one ``model_feature_frame`` training uses) plus P(WIN) for every scan row of a
cycle point (goal: < 20 ms added to the tick).

Labels are synthetic (all 63 model features, a planted rule on three of them, 20 % of the values missing); the
inference inputs are one cycle point's scan rows, a day of 15m feature rows and the market row.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from cryptotracker_assets.core.config import Strategy, load_config
from cryptotracker_assets.core.features import DAILY_COLUMNS, ML_COLUMNS
from cryptotracker_assets.core.ml import train
from cryptotracker_assets.core.ml.features import MODEL_FEATURES, feature_set_version, model_feature_frame
from cryptotracker_assets.core.universe import Universe

T0 = pd.Timestamp("2026-01-01", tz="UTC")
GOAL_TRAIN_S, GOAL_INFER_MS = 60.0, 20.0


def labels(n: int, strategy: Strategy, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    setup = T0 + pd.to_timedelta(np.arange(n) * 2, "min")
    x = rng.normal(size=(len(MODEL_FEATURES), n))
    x[rng.random(x.shape) < 0.2] = np.nan
    y = (np.nan_to_num(x[0]) + 0.5 * np.nan_to_num(x[1]) + rng.normal(size=n) > 0).astype("int64")
    src = np.where(rng.random(n) < 0.1, "shadow", np.where(rng.random(n) < 0.2, "real", "simulated"))
    frame = pd.DataFrame({
        "label_id": [f"L{i}" for i in range(n)], "source": src, "scan_id": [f"{strategy.value}_X_{i}" for i in range(n)],
        "variation": np.where(src == "shadow", "QUICK_EXITS", None), "strategy": strategy.value,
        "setup_time": setup, "first_label_bar": setup, "outcome_end": setup + pd.Timedelta(hours=6),
        "max_feature_time": setup - pd.Timedelta(minutes=1), "weight": np.where(src == "shadow", 0.3, 1.0),
        "label": y, "tp_target": rng.uniform(0, 0.3, n), "sl_target": rng.uniform(0.01, 0.1, n),
        "hold_target_h": rng.uniform(0, 72, n),
        "size_mult_target": rng.uniform(0.5, 1.5, n) if strategy is Strategy.DCA else np.nan})
    return pd.concat([frame, pd.DataFrame(x.T, columns=list(MODEL_FEATURES))], axis=1)


def inference_ms(model, cfg) -> tuple[float, int]:
    """One cycle point's 297 scan rows (99 symbols × 3 strategies): features joined and scored, best of 5."""
    u = Universe.from_config(cfg)
    syms = sorted(u.symbols)
    t = T0 + pd.Timedelta(days=2)
    rng = np.random.default_rng(5)
    rows = pd.DataFrame({"symbol": np.repeat(syms, 3), "timestamp": t, "bar_timestamp": t - pd.Timedelta(minutes=1),
                         **{f: rng.normal(size=3 * len(syms)) for f in MODEL_FEATURES[:10]}})
    ml_ts = pd.date_range(t - pd.Timedelta(days=1), t, freq="15min", tz="UTC")
    ml = pd.DataFrame({"symbol": np.repeat(syms, len(ml_ts)), "timestamp": np.tile(ml_ts, len(syms)),
                       "warmup": False})
    ml["available_at"] = ml["timestamp"] + pd.Timedelta(minutes=15)
    for f in ML_COLUMNS[4:]:
        ml[f] = rng.normal(size=len(ml))
    daily = pd.DataFrame({"symbol": syms, "timestamp": t.floor("1D"), "warmup": False,
                          **{f: rng.normal(size=len(syms)) for f in DAILY_COLUMNS[3:]}})
    regime = pd.DataFrame({"timestamp": [t], "regime": ["NORMAL"], "btc_ret_1h": [0.0], "btc_ret_4h": [0.0],
                           "btc_ret_24h": [0.0], "btc_vol_24h": [0.03], "regime_panic": [0.0],
                           "regime_caution": [0.0], "regime_euphoria": [0.0]})
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        keys = pd.DataFrame({"symbol": rows["symbol"], "setup_time": rows["timestamp"]})
        feats = model_feature_frame(keys, rows, ml, daily, regime, u.tier, cfg=cfg)
        model.predict_proba(feats)
        best = min(best, time.perf_counter() - t0)
    return 1000 * best, len(rows)


def main() -> None:
    cfg = load_config()
    fsv = feature_set_version(cfg)
    model = None
    for n in (10_000, 100_000):
        for s in (Strategy.DCA, Strategy.SWING, Strategy.CHANNEL) if n == 10_000 else (Strategy.DCA,):
            frame = labels(n, s)
            t0 = time.perf_counter()
            m = train(frame, MODEL_FEATURES, s, cfg, started_at=T0 + pd.Timedelta(days=30), feature_set_version=fsv)
            sec = time.perf_counter() - t0
            model = model or m
            goal = f" (goal < {GOAL_TRAIN_S:.0f} s: {'met' if sec < GOAL_TRAIN_S else 'MISSED'})" if n == 100_000 else ""
            print(f"training {s.value} on {n:,} labelled setups × {len(MODEL_FEATURES)} features, classifier + "
                  f"{len(m.regressors)} regressors + {cfg.ml.walk_forward.windows - 1} walk-forward refits: "
                  f"{sec:.1f} s{goal}; test composite {m.test_metrics.composite:.3f}, AUC {m.test_metrics.auc:.3f}")
    ms, rows = inference_ms(model, cfg)
    print(f"inference of one cycle point ({rows} scan rows: 99 symbols × 3 strategies): {ms:.1f} ms "
          f"(goal < {GOAL_INFER_MS:.0f} ms: {'met' if ms < GOAL_INFER_MS else 'MISSED'})")


if __name__ == "__main__":
    main()
