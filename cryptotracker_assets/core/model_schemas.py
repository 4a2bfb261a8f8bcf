"""Pandera schemas of the model tables (SPEC §11): ``training_labels`` and ``model_metrics``. Never imports dagster."""

from __future__ import annotations

from typing import Annotated

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from .config import Strategy
from .ml.labels import LABEL_SCHEMA

UtcTime = Series[Annotated[pd.DatetimeTZDtype, "ns", "UTC"]]
_DESC = dict(LABEL_SCHEMA)


class TrainingLabelSchema(pa.DataFrameModel):
    """``training_labels``: one row per labelled setup, append-only, never pruned (the model features are further
    float columns, NaN where unknown — never filled)."""

    label_id: Series[str] = pa.Field(unique=True, description=_DESC["label_id"])
    source: Series[str] = pa.Field(isin=["real", "simulated", "shadow"], description=_DESC["source"])
    scan_id: Series[str] = pa.Field(description=_DESC["scan_id"])
    strategy: Series[str] = pa.Field(isin=[s.value for s in Strategy], description=_DESC["strategy"])
    setup_time: UtcTime = pa.Field(description=_DESC["setup_time"])
    first_label_bar: UtcTime = pa.Field(description=_DESC["first_label_bar"])
    outcome_end: UtcTime = pa.Field(description=_DESC["outcome_end"])
    final_day: UtcTime = pa.Field(description=_DESC["final_day"])
    max_feature_time: UtcTime = pa.Field(description=_DESC["max_feature_time"])
    weight: Series[float] = pa.Field(gt=0, le=1, description=_DESC["weight"])
    label: Series["int64"] = pa.Field(isin=[0, 1], description=_DESC["label"])  # noqa: F821
    feature_set_version: Series[str] = pa.Field(description=_DESC["feature_set_version"])

    class Config:
        strict = "filter"
        coerce = False

    @pa.dataframe_check(error="a feature is known after the first label bar (leakage, SPEC §11.1)")
    def features_before_outcome(cls, df: pd.DataFrame) -> pd.Series:
        return df["max_feature_time"] < df["first_label_bar"]

    @pa.dataframe_check(error="final_day is the UTC day of outcome_end")
    def final_day_of_outcome(cls, df: pd.DataFrame) -> pd.Series:
        return df["final_day"] == df["outcome_end"].dt.floor("1D")

    @pa.dataframe_check(error="the setup comes before its outcome")
    def setup_before_outcome(cls, df: pd.DataFrame) -> pd.Series:
        return (df["setup_time"] <= df["first_label_bar"]) & (df["first_label_bar"] <= df["outcome_end"])


class ModelMetricsSchema(pa.DataFrameModel):
    """``model_metrics``: per trained model its validation and test splits and its walk-forward windows."""

    model_version: Series[str] = pa.Field(str_matches=r"^(dca|swing|channel)_\d{12}$")
    strategy: Series[str] = pa.Field(isin=[s.value for s in Strategy])
    part: Series[str] = pa.Field(str_matches=r"^(validation|test|walk_forward_-?\d+)$")
    rows: Series["int64"] = pa.Field(ge=0)  # noqa: F821
    accuracy: Series[float] = pa.Field(nullable=True, ge=0, le=1)
    precision: Series[float] = pa.Field(nullable=True, ge=0, le=1)
    recall: Series[float] = pa.Field(nullable=True, ge=0, le=1)
    composite: Series[float] = pa.Field(nullable=True, ge=0, le=1)
    auc: Series[float] = pa.Field(nullable=True, ge=0, le=1)

    class Config:
        strict = "filter"
        coerce = False
        unique = ["model_version", "part"]
