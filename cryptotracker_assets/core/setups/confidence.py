"""Confidence sources (SPEC §3.3): the rule confidence, a champion model's, and which one a strategy uses."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from ..config import Config, Strategy

RULE_SOURCE = "rule"
_MODEL_SOURCE = re.compile(r"^model:(?P<version>(dca|swing|channel)_\d{12})$")


@runtime_checkable
class ConfidenceSource(Protocol):
    """Where a setup's confidence comes from: ``name`` is ``rule`` or ``model:<model_version>``; ``confidence``
    returns one WIN probability in [0, 1] per row of ``rows`` (the strategy's setup rows: symbol, tier, timestamp
    = T, bar_timestamp, price and the scan features; a model joins its own features by (symbol, T))."""

    name: str

    def confidence(self, strategy: Strategy, rows: pd.DataFrame) -> np.ndarray: ...


@dataclass(frozen=True)
class RuleConfidence:
    """The rule confidence without a champion: ``ml.rule.confidence`` for every setup."""

    value: float
    name: str = RULE_SOURCE

    @classmethod
    def from_config(cls, cfg: Config) -> "RuleConfidence":
        return cls(cfg.ml.rule.confidence)

    def confidence(self, strategy: Strategy, rows: pd.DataFrame) -> np.ndarray:
        return np.full(len(rows), self.value, dtype="float64")


@dataclass(frozen=True)
class ModelConfidence:
    """A champion model's WIN probability; ``predict(rows)`` returns one probability per row."""

    model_version: str
    predict: Callable[[pd.DataFrame], np.ndarray]

    def __post_init__(self) -> None:
        if not _MODEL_SOURCE.match(f"model:{self.model_version}"):
            raise ValueError(f"model_version {self.model_version!r} is not {{strategy}}_{{yyyymmddHHMM}} (SPEC §0.3)")

    @property
    def name(self) -> str:
        return f"model:{self.model_version}"

    def confidence(self, strategy: Strategy, rows: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.predict(rows), dtype="float64")


ConfidenceArg = ConfidenceSource | Mapping[Strategy | str, ConfidenceSource] | None


def confidence_source(cfg: Config, strategy: Strategy, confidence: ConfidenceArg = None
                      ) -> tuple[ConfidenceSource, float]:
    """(source, threshold) for ``strategy``: a champion (a ``model:<version>`` source) is used only with
    ``ml.use_champion_for_entries``, with threshold ``ml.confidence_threshold.<s>``; otherwise the rule source with
    ``ml.rule.threshold``. ``confidence`` is one source for every strategy, a mapping per strategy (a missing
    strategy has no champion) or None (rule)."""
    strategy = Strategy(strategy)
    src = confidence
    if isinstance(confidence, Mapping):
        by = {Strategy(k) if isinstance(k, Strategy) else Strategy(str(k).upper()): v for k, v in confidence.items()}
        src = by.get(strategy)
    if src is None:
        return RuleConfidence.from_config(cfg), cfg.ml.rule.threshold
    if not isinstance(src, ConfidenceSource):
        raise TypeError(f"{src!r} is not a ConfidenceSource (name + confidence(strategy, rows))")
    if src.name == RULE_SOURCE:
        return src, cfg.ml.rule.threshold
    m = _MODEL_SOURCE.match(src.name)
    if m is None:
        raise ValueError(f"confidence source name {src.name!r} is neither 'rule' nor 'model:<model_version>'")
    if not m.group("version").startswith(strategy.key + "_"):
        raise ValueError(f"{src.name} is not a {strategy.value} model")
    if not cfg.ml.use_champion_for_entries:
        return RuleConfidence.from_config(cfg), cfg.ml.rule.threshold
    return src, cfg.ml.confidence_threshold.of(strategy)
