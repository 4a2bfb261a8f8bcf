"""Row layouts of the scan rows, setups and readiness board, and their empty frames."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from ..features import SCAN_FEATURES

_TS = "datetime64[ns, UTC]"
SETUP_NUMBERS = ("price", "setup_value", "setup_threshold", "volume_filter_ratio")
SCAN_ROW_COLUMNS: tuple[str, ...] = (
    "scan_id", "timestamp", "bar_timestamp", "symbol", "tier", "strategy", "decision", "reason", "candidate", "setup",
    "confidence", "confidence_source", "threshold", "readiness", "status", "price", "setup_value", "setup_threshold",
    *SCAN_FEATURES, "volume_filter_ratio", "regime", "best_strategy", "btc_close", "list_type", "config_version",
)
SETUP_COLUMNS: tuple[str, ...] = (
    "setup_id", "strategy", "symbol", "tier", "detected_at", "bar_timestamp", *SETUP_NUMBERS, "confidence",
    "confidence_source", "threshold", "decision", "reason", "candidate", "readiness", "status", *SCAN_FEATURES,
    "regime", "best_strategy", "btc_close", "config_version",
)
BOARD_COLUMNS: tuple[str, ...] = (
    "timestamp", "strategy", "rank", "symbol", "tier", "readiness", "status", "setup", "candidate", "decision",
    "reason", "price", "setup_value", "setup_threshold", "bar_timestamp",
)
_DTYPES: dict[str, str] = {
    "timestamp": _TS, "bar_timestamp": _TS, "detected_at": _TS, "candidate": "bool", "setup": "bool",
    "config_version": "int64", "rank": "int64",
    **{c: "object" for c in ("scan_id", "setup_id", "symbol", "tier", "strategy", "decision", "reason",
                             "confidence_source", "status", "regime", "best_strategy", "list_type")},
}


def empty_rows(columns: Iterable[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=_DTYPES.get(c, "float64")) for c in columns})
