"""Pandera schemas of the scan rows (``scan_history`` / ``scan_preview``), ``strategy_setups`` and the readiness
board (SPEC §3.4–§3.6); never imports dagster.

Broken invariants are errors: unknown enum values, a reason that contradicts its decision, a status of another
strategy, readiness outside [0, 100], a firing setup that is not READY / BUY_ZONE, a CHANNEL top-of-range row with a
long setup, more than one row per symbol × strategy × cycle point, duplicate or malformed ids.
``ScanPreviewSchema`` allows undecided candidates (decision and reason null: steps 4–6 not run);
``ScanHistorySchema`` (what the engine writes) requires a decision on every row.
"""

from __future__ import annotations

from typing import Annotated, Any, Optional

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from .config import Strategy, Tier
from .feature_schemas import feature_field
from .features import SCAN_FEATURE_SPECS
from .ledger import SCAN_ID_RE
from .regime import BestStrategy, Regime
from .setups import STATUSES, Decision, DecisionReason, ListType, ReadinessStatus

UtcTime = Series[Annotated[pd.DatetimeTZDtype, "ns", "UTC"]]

_STRATEGIES = [s.value for s in Strategy]
_TIERS = [t.value for t in Tier]
_REASONS = [r.value for r in DecisionReason]
_STEP = {r.value: r.step for r in DecisionReason}
_FIRING = {s.value: STATUSES[s][0].value for s in Strategy}
_VALID_PAIRS = [f"{s.value}|{x.value}" for s in Strategy for x in STATUSES[s]]
_SOURCE_RE = r"^(rule|model:(dca|swing|channel)_\d{12})$"


def _row_check(fn, error: str):
    def check(cls, df: pd.DataFrame) -> pd.Series:
        return pd.Series(np.asarray(fn(df), dtype=bool), index=df.index)

    return pa.dataframe_check(error=error)(check)


def _step(df: pd.DataFrame) -> np.ndarray:
    """The §3.4 step of each row's reason (0 where null)."""
    return df["reason"].map(_STEP).fillna(0).to_numpy(dtype="int64")


def _null(df: pd.DataFrame, col: str) -> np.ndarray:
    return df[col].isna().to_numpy()


def _status_ok(df: pd.DataFrame) -> np.ndarray:
    pair = df["strategy"].astype(str) + "|" + df["status"].astype(str)
    return (df["status"].isna() | pair.isin(_VALID_PAIRS)).to_numpy()


def _firing_ok(df: pd.DataFrame) -> np.ndarray:
    firing = df["strategy"].map(_FIRING).to_numpy(dtype=object)
    return ~df["setup"].to_numpy(dtype=bool) | (df["status"].to_numpy(dtype=object) == firing)


def _id_ok(df: pd.DataFrame, id_col: str, t_col: str) -> np.ndarray:
    times = pd.DatetimeIndex(df[t_col])
    uniq, inverse = np.unique(times.asi8, return_inverse=True)  # few cycle points, many rows: format each once
    stamp = pd.DatetimeIndex(uniq.view("datetime64[ns]")).strftime("%y%m%d%H%M").to_numpy(dtype=object)[inverse]
    expected = df["strategy"].astype(str).to_numpy(dtype=object) + "_" + df["symbol"].astype(str).to_numpy(
        dtype=object) + "_" + stamp
    ids = df[id_col].astype(str)
    return (ids.to_numpy(dtype=object) == expected) & ids.str.match(SCAN_ID_RE.pattern).to_numpy()


def _decision_ok(df: pd.DataFrame) -> np.ndarray:
    """decision ↔ reason per SPEC §3.4: both null or both set; TAKE ⇔ entered; NEAR_MISS only for
    ml_below_threshold; candidate ⇔ passed steps 1–3 (reason null or from steps 4–6)."""
    dec, rea = df["decision"].to_numpy(dtype=object), df["reason"].to_numpy(dtype=object)
    d_null, r_null = _null(df, "decision"), _null(df, "reason")
    step = _step(df)
    cand = df["candidate"].to_numpy(dtype=bool)
    take = dec == Decision.TAKE.value
    entered = rea == DecisionReason.ENTERED.value
    near = dec == Decision.NEAR_MISS.value
    return ((d_null == r_null) & (take == entered) & (~near | (rea == DecisionReason.ML_BELOW_THRESHOLD.value))
            & (cand == (r_null | (step >= 4))))


def _setup_ok(df: pd.DataFrame) -> np.ndarray:
    """Rows past step 2 (ml_below_threshold, gates, priority, execution, entered, undecided candidates) have a
    setup; no_setup / top_of_range rows do not; top_of_range is CHANNEL's only."""
    step = _step(df)
    setup = df["setup"].to_numpy(dtype=bool)
    cand = df["candidate"].to_numpy(dtype=bool)
    rea = df["reason"].to_numpy(dtype=object)
    top = rea == DecisionReason.TOP_OF_RANGE.value
    past_setup = (step >= 3) | cand
    return ((~past_setup | setup) & ~((step == 2) & setup)
            & (~top | (df["strategy"].to_numpy(dtype=object) == Strategy.CHANNEL.value)))


def _confidence_ok(df: pd.DataFrame) -> np.ndarray:
    """A confidence comes with its source, and every setup row has both (steps 1–3 always run)."""
    c_null, s_null = _null(df, "confidence"), _null(df, "confidence_source")
    return (c_null == s_null) & (~df["setup"].to_numpy(dtype=bool) | ~c_null)


def _col(annotations: dict[str, Any], attrs: dict[str, Any], name: str, typ: Any, **field: Any) -> None:
    annotations[name] = typ
    attrs[name] = pa.Field(**field)


def _common_columns(annotations: dict[str, Any], attrs: dict[str, Any], time_col: str, time_desc: str) -> None:
    c = lambda *a, **k: _col(annotations, attrs, *a, **k)  # noqa: E731
    c("strategy", Series[str], isin=_STRATEGIES, description="strategy: DCA, SWING or CHANNEL")
    c("symbol", Series[str], description="active symbol of the universe (BASE or BASE-QUOTE)")
    c("tier", Series[str], isin=_TIERS, description="tier(symbol) (SPEC §1): large_cap, mid_cap, small_cap, memecoin")
    c(time_col, UtcTime, description=time_desc)
    c("bar_timestamp", UtcTime, nullable=True,
      description="open time (UTC) of the decision bar c, the latest bar opening before T; null when stale")
    c("decision", Series[str], nullable=True, isin=[d.value for d in Decision],
      description="TAKE / SKIP / NEAR_MISS (SPEC §3.4); null = candidate not yet through steps 4–6 (preview)")
    c("reason", Series[str], nullable=True, isin=_REASONS,
      description="reason code of SPEC §3.4 (first failing step; entered for TAKE); null with the decision")
    c("candidate", Series[bool], description="passed steps 1–3 (data, setup, confidence): the engine's input")
    c("confidence", Series[float], nullable=True, ge=0.0, le=1.0,
      description="WIN probability used (SPEC §3.3) on setup rows; null without a setup")
    c("confidence_source", Series[str], nullable=True, str_matches=_SOURCE_RE,
      description="'rule' or 'model:<model_version>' (the champion); null with the confidence")
    c("threshold", Series[float], gt=0.0, le=1.0,
      description="confidence threshold in use: ml.confidence_threshold.<s> with a champion, else ml.rule.threshold")
    c("readiness", Series[float], nullable=True, ge=0.0, le=100.0,
      description="readiness 0–100 (SPEC §3.6); null where its inputs are null")
    c("status", Series[str], nullable=True, isin=[s.value for s in ReadinessStatus],
      description="DCA/SWING: READY, CLOSE, WAITING; CHANNEL: BUY_ZONE, NEUTRAL, SELL_ZONE; a firing setup is "
                  "READY / BUY_ZONE; null with the readiness")
    c("price", Series[float], nullable=True, gt=0.0, description="close of the decision bar (quote currency)")
    c("setup_value", Series[float], nullable=True,
      description="the setup's own number: DCA drop, SWING breakout (fractions), CHANNEL channel_position (0–1)")
    c("setup_threshold", Series[float],
      description="what setup_value is compared with: the tier's drop threshold, breakout threshold, buy zone")


def _features(annotations: dict[str, Any], attrs: dict[str, Any]) -> None:
    for s in SCAN_FEATURE_SPECS:
        annotations[s.name] = Series[float]
        attrs[s.name] = feature_field(s)
    _col(annotations, attrs, "volume_filter_ratio", Series[float], nullable=True, ge=0.0,
         description="DCA volume filter: mean volume of the DCA window / mean volume over "
                     "strategies.dca.volume_filter.baseline_min, both incl. c (ratio); null if a window is invalid")


def _market(annotations: dict[str, Any], attrs: dict[str, Any]) -> None:
    c = lambda *a, **k: _col(annotations, attrs, *a, **k)  # noqa: E731
    c("regime", Series[str], isin=[r.value for r in Regime], description="SPEC §8.1 regime at T (UNKNOWN = stale_data)")
    c("best_strategy", Series[str], isin=[b.value for b in BestStrategy], description="SPEC §9.1 best strategy at T")
    c("btc_close", Series[float], nullable=True, gt=0.0, description="decision-bar close of universe.market_symbol")
    c("config_version", Series[np.int64], ge=0, description="version of the effective config (0 = file + user file)")


def _no_inf(cls, df: pd.DataFrame) -> pd.Series:
    floats = df.select_dtypes("float64").to_numpy()
    return pd.Series(~np.isinf(floats).any(axis=1), index=df.index)


def _finish(name: str, doc: str, annotations: dict[str, Any], attrs: dict[str, Any], unique: list[str]
            ) -> type[pa.DataFrameModel]:
    attrs["__annotations__"] = annotations
    attrs["__doc__"] = doc

    class Config:
        strict = True
        ordered = False

    Config.unique = unique
    attrs["Config"] = Config
    attrs["no_inf"] = pa.dataframe_check(error="values must be finite or null, never inf")(_no_inf)
    return type(name, (pa.DataFrameModel,), attrs)


def _scan_row_model() -> type[pa.DataFrameModel]:
    a: dict[str, Any] = {}
    attrs: dict[str, Any] = {}
    _col(a, attrs, "scan_id", Series[str], unique=True,
         description="{STRATEGY}_{SYMBOL}_{yymmddHHMM} of T (SPEC §0.3), = setup_id; unique")
    _common_columns(a, attrs, "timestamp", "cycle point T (UTC); only bars opening before T are used")
    _col(a, attrs, "setup", Series[bool], description="the §3.2 setup fires (whatever the data step says)")
    _features(a, attrs)
    _market(a, attrs)
    _col(a, attrs, "list_type", Series[str], nullable=True, isin=[t.value for t in ListType],
         description="§9.2 list the candidate was ordered in (recommended / fallback); null until the engine")
    attrs["id_matches"] = _row_check(lambda df: _id_ok(df, "scan_id", "timestamp"),
                                     "scan_id is not {STRATEGY}_{SYMBOL}_{yymmddHHMM} of the row's T")
    attrs["decision_matches_reason"] = _row_check(_decision_ok, "decision, reason and candidate contradict SPEC §3.4")
    attrs["setup_matches_reason"] = _row_check(_setup_ok, "setup flag contradicts the reason (or top_of_range "
                                                          "outside CHANNEL)")
    attrs["status_of_strategy"] = _row_check(_status_ok, "status label of another strategy")
    attrs["firing_setup_is_ready"] = _row_check(_firing_ok, "a firing setup must be READY / BUY_ZONE (SPEC §3.6)")
    attrs["confidence_on_setups"] = _row_check(_confidence_ok, "confidence without source, or a setup without one")
    attrs["bar_before_t"] = _row_check(lambda df: (df["bar_timestamp"].isna() | (df["bar_timestamp"] < df["timestamp"]))
                                       .to_numpy(), "the decision bar must open before T")
    return _finish("ScanRowSchema", "Scan rows (SPEC §3.5): one per active symbol × strategy × cycle point.", a, attrs,
                   ["symbol", "strategy", "timestamp"])


ScanRowSchema = _scan_row_model()


class ScanPreviewSchema(ScanRowSchema):  # type: ignore[misc, valid-type]
    """scan_preview: the scan-row schema with steps 1–3 only (candidates undecided) and each row's bar watermark
    (the stored table always has it; the core scan, which reads no stored rows, has none)."""

    bars_watermark: Optional[UtcTime] = pa.Field(nullable=True, description="W(T) of the features_scan and market_regime "
                                                                  "rows it was computed from (SPEC §0.5)")


class ScanHistorySchema(ScanRowSchema):  # type: ignore[misc, valid-type]
    """scan_history (written by the engine tick): the scan-row schema, and every row decided (steps 4–6 ran)."""

    @pa.dataframe_check(error="a scan_history row without a decision (candidate not resolved by the engine)")
    def every_row_decided(cls, df: pd.DataFrame) -> pd.Series:
        return df["decision"].notna()


def _setup_model() -> type[pa.DataFrameModel]:
    a: dict[str, Any] = {}
    attrs: dict[str, Any] = {}
    _col(a, attrs, "setup_id", Series[str], unique=True,
         description="{STRATEGY}_{SYMBOL}_{yymmddHHMM} of the cycle point T (= scan_id of its scan row); unique")
    _common_columns(a, attrs, "detected_at", "cycle point T (UTC) at which the setup fired")
    _features(a, attrs)
    _market(a, attrs)
    attrs["id_matches"] = _row_check(lambda df: _id_ok(df, "setup_id", "detected_at"),
                                     "setup_id is not {STRATEGY}_{SYMBOL}_{yymmddHHMM} of detected_at")
    attrs["status_of_strategy"] = _row_check(_status_ok, "status label of another strategy")
    attrs["firing_setup_is_ready"] = _row_check(
        lambda df: df["status"].to_numpy(dtype=object) == df["strategy"].map(_FIRING).to_numpy(dtype=object),
        "a setup must be READY / BUY_ZONE (SPEC §3.6)")
    attrs["reason_allows_setup"] = _row_check(lambda df: ~np.isin(_step(df), [2]),
                                              "a setup row cannot have reason no_setup / top_of_range")
    attrs["has_confidence"] = _row_check(lambda df: df["confidence"].notna().to_numpy()
                                         & df["confidence_source"].notna().to_numpy(),
                                         "every setup carries its confidence and source")
    attrs["bar_before_t"] = _row_check(lambda df: (df["bar_timestamp"] < df["detected_at"]).to_numpy(),
                                       "the decision bar must exist and open before T")
    return _finish("StrategySetupSchema", "strategy_setups (SPEC §3.5): the scan rows whose setup fires.", a, attrs, [])


StrategySetupSchema = _setup_model()


def _board_model() -> type[pa.DataFrameModel]:
    a: dict[str, Any] = {}
    attrs: dict[str, Any] = {}
    _common_columns(a, attrs, "timestamp", "the latest cycle point T (UTC) of the scan; the same on every row")
    for col in ("confidence", "confidence_source", "threshold", "candidate"):
        a.pop(col), attrs.pop(col)
    _col(a, attrs, "candidate", Series[bool], description="passed steps 1–3 (data, setup, confidence)")
    _col(a, attrs, "setup", Series[bool], description="the §3.2 setup fires")
    _col(a, attrs, "rank", Series[np.int64], ge=1,
         description="rank within the strategy: firing setups first, then readiness descending, then symbol")
    attrs["one_cycle_point"] = _row_check(lambda df: (df["timestamp"] == df["timestamp"].max()).to_numpy(),
                                          "the board holds one cycle point only")
    attrs["rank_unique"] = _row_check(lambda df: ~df.duplicated(["strategy", "rank"]).to_numpy(),
                                      "ranks are unique within a strategy")
    attrs["status_of_strategy"] = _row_check(_status_ok, "status label of another strategy")
    attrs["firing_setup_is_ready"] = _row_check(_firing_ok, "a firing setup must be READY / BUY_ZONE (SPEC §3.6)")
    return _finish("ReadinessBoardSchema", "The readiness board (SPEC §3.6): the latest cycle point's scan rows, one "
                   "per symbol × strategy.", a, attrs, ["symbol", "strategy"])


ReadinessBoardSchema = _board_model()
