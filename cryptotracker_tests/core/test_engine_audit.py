"""Naming the first row where a replay differs from the stored rows (hand-made frames)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cryptotracker_assets.core.engine_audit import first_row_difference

T = pd.Timestamp("2026-01-01", tz="UTC")


def rows(**over) -> pd.DataFrame:
    df = pd.DataFrame({"scan_id": ["DCA_BTC_1", "DCA_ETH_1", "DCA_BTC_2"], "timestamp": [T, T, T],
                       "price": [1.0, 2.0, np.nan], "reason": [None, "no_setup", None]})
    for k, v in over.items():
        df[k] = v
    return df


def test_equal_rows_in_another_order_and_with_nulls_pass():
    assert first_row_difference("scan_history", rows().iloc[::-1], rows()) is None


def test_the_first_difference_in_replay_order_names_key_column_and_values():
    stored = rows(price=[1.0, 2.0 + 1e-15, 5.0])
    assert first_row_difference("scan_history", stored, rows()) == (
        "scan_history: row scan_id=DCA_ETH_1, column price: stored 2.000000000000001, replay 2.0")


def test_missing_extra_and_duplicated_rows_are_named():
    assert first_row_difference("scan_history", rows().iloc[:2], rows()) == (
        "scan_history: the replay has a row the live run did not store (scan_id=DCA_BTC_2)")
    assert first_row_difference("scan_history", rows(), rows().iloc[:2]) == (
        "scan_history: a stored row the replay does not give (scan_id=DCA_BTC_2)")
    twice = pd.concat([rows(), rows().iloc[:1]], ignore_index=True)
    assert first_row_difference("scan_history", twice, rows()) == "scan_history: the key scan_id=DCA_BTC_1 is stored 2 times"
    assert first_row_difference("scan_history", None, rows()).startswith("scan_history: the replay has a row")


def test_a_null_against_a_value_differs():
    assert "column reason" in first_row_difference("scan_history", rows(reason=[None, "no_setup", "x"]), rows())
