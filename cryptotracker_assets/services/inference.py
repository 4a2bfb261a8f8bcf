"""The champions as confidence sources (SPEC §3.3, §11.1), without Dagster.

For each strategy the champion pointer in force (``model_registry``) names a model; it is loaded from the store and
verified (content hash), and must be of the registry's ``feature_set_version`` (I-18). Its P(WIN) over the one
feature frame training used (:func:`..core.ml.features.model_feature_frame`, joined from the stored feature tables)
is the confidence of the strategy's setups, recorded on each scan row as ``model:<version>``. A corrupt, mismatched
or unloadable champion counts as none: that strategy uses the rule confidence and an alert is queued — research
never stops trading.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.config import Config, Strategy
from ..core.engine_records import outbox_rows
from ..core.features import DAILY_COLUMNS, ML_COLUMNS
from ..core.ml import ModelStoreError, load
from ..core.ml.features import feature_set_version, model_feature_frame
from ..core.setups import ModelConfidence
from ..core.universe import Universe
from ..storage.warehouse import Warehouse
from .labels import empty_frame
from .models import champion_of

DAY = pd.Timedelta(days=1)


@dataclass
class Champions:
    """The confidence sources of the strategies with a usable champion, and why the others have none."""

    sources: dict[Strategy, ModelConfidence] = field(default_factory=dict)
    problems: dict[Strategy, str] = field(default_factory=dict)


def feature_rows(wh: Warehouse, start: pd.Timestamp, end: pd.Timestamp, con=None
                 ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None]:
    """The stored ML, daily and market rows a scan over [start, end) joins (with the ML rows' lead time); a
    feature table not materialized gives no rows (its features are unknown: NaN, never filled in)."""
    ml = wh.read_slice("features_15m", "timestamp", start - DAY, end, con=con)
    daily = wh.read_slice("features_daily", "timestamp", start - DAY, end, con=con)
    regime = wh.read_slice("market_regime", "timestamp", start, end, con=con)
    return (ml if ml is not None else empty_frame(ML_COLUMNS),
            daily if daily is not None else empty_frame(DAILY_COLUMNS), regime)


def predictor(model, frames: tuple, cfg: Config) -> Callable[[pd.DataFrame], np.ndarray]:
    """P(WIN) of scan rows (symbol, timestamp = T, the scan features) over the model's feature frame."""
    ml, daily, regime = frames
    tier_of = Universe.from_config(cfg).tier

    def predict(rows: pd.DataFrame) -> np.ndarray:
        keys = pd.DataFrame({"symbol": rows["symbol"].reset_index(drop=True),
                             "setup_time": rows["timestamp"].reset_index(drop=True)})
        feats = model_feature_frame(keys, rows, ml, daily, regime, tier_of, cfg=cfg)
        return model.predict_proba(feats)

    return predict


def champions(wh: Warehouse, cfg: Config, root: Path, at: pd.Timestamp, frames: tuple) -> Champions:
    """The usable champions in force at ``at`` (the first cycle point of the rows to score)."""
    out = Champions()
    if not cfg.ml.use_champion_for_entries:
        return out
    fsv = feature_set_version(cfg)
    for s in Strategy:
        ch = champion_of(wh, s, at)
        if ch.model_version is None:
            continue
        try:
            model = load(root, s, ch.model_version, regressors=False)  # every file verified, the classifier parsed
        except ModelStoreError as exc:
            out.problems[s] = f"champion {ch.model_version} cannot be loaded: {exc}"
            continue
        if model.feature_set_version != fsv:
            out.problems[s] = (f"champion {ch.model_version} was trained on feature set "
                               f"{model.feature_set_version[:12]}, the registry's is {fsv[:12]}: retired from serving")
            continue
        out.sources[s] = ModelConfidence(ch.model_version, predictor(model, frames, cfg))
    return out


def alert_problems(wh: Warehouse, cfg: Config, found: Champions) -> int:
    """One alert per unusable champion (the same problem again is not queued twice: its id is its content)."""
    notes = [{"kind": "champion_unavailable", "channel": cfg.notifications.channels.alerts,
              "cycle_point": pd.Timestamp(0, tz="UTC"), "strategy": s.value, "problem": p,
              "fallback": "rule confidence"} for s, p in sorted(found.problems.items(), key=lambda kv: kv[0].value)]
    if not notes:
        return 0
    return wh.queue_messages(outbox_rows(notes, cfg)[0], pd.Timestamp.now(tz="UTC"))


SCORE_COLUMNS = ("confidence", "tp_target", "sl_target", "hold_target_h")


def scorer(wh: Warehouse, cfg: Config, root: Path) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """The champions' outputs for the shadows (``EngineInputs.model_scores``): for each scan row past the data step
    of a strategy with a usable champion in force at its T (the swap history: each from the first cycle point
    after it), P(WIN) and the regressors' tp / sl / hold targets, indexed by scan_id. The same stored feature
    frames as the scan's confidence, so a replay and the day audit compute the same values."""
    from ..core.setups import DecisionReason

    step1 = {r.value for r in DecisionReason if r.step == 1}
    tier_of = Universe.from_config(cfg).tier
    fsv = feature_set_version(cfg)

    def score(rows: pd.DataFrame) -> pd.DataFrame:
        empty = pd.DataFrame({c: pd.Series([], dtype="float64") for c in SCORE_COLUMNS})
        swaps = wh.model_swaps()
        if not cfg.ml.use_champion_for_entries or swaps.empty or rows.empty:
            return empty
        ts = pd.DatetimeIndex(rows["timestamp"])
        frames = None
        parts = []
        for s in Strategy:
            mine = swaps[swaps["strategy"] == s.value]
            if mine.empty:
                continue
            at = pd.DatetimeIndex(mine["swapped_at"]).tz_convert("UTC").asi8
            pos = np.searchsorted(at, ts.asi8, side="left") - 1  # the newest swap before T
            versions = np.where(pos >= 0, mine["model_version"].to_numpy(dtype=object)[np.maximum(pos, 0)], None)
            ok = (rows["strategy"].to_numpy() == s.value) & ~rows["reason"].isin(step1).to_numpy()
            for version in sorted({v for v in versions[ok] if isinstance(v, str)}):
                try:
                    model = load(root, s, version)
                except ModelStoreError:
                    continue  # never served: the scan alerts and uses rule confidence
                if model.feature_set_version != fsv:
                    continue
                sel = rows.loc[ok & (versions == version)]
                if frames is None:
                    frames = feature_rows(wh, ts.min(), ts.max() + pd.Timedelta(microseconds=1))
                keys = pd.DataFrame({"symbol": sel["symbol"].reset_index(drop=True),
                                     "setup_time": sel["timestamp"].reset_index(drop=True)})
                feats = model_feature_frame(keys, sel, *frames, tier_of, cfg=cfg)
                targets = model.predict_targets(feats)
                parts.append(pd.DataFrame({"confidence": model.predict_proba(feats),
                                           **{c: targets[c].to_numpy(dtype="float64") for c in SCORE_COLUMNS[1:]}},
                                          index=sel["scan_id"].to_numpy()))
        return pd.concat(parts) if parts else empty

    return score
